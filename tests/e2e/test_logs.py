"""A setting's log under worker processes, through the real ``experiment`` command.

Workers write what a setting prints to files of their own, in scratch space the local
engine owns, and never into the results folder; the run copies it into
``logs/<id>.log`` as it comes, so ``experiment logs -f`` in another terminal follows a
running setting, and a setting whose worker dies keeps what it printed.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import wait_for
from tests.e2e.test_cli import COMMAND, environment, write

# Each setting prints a line, notes its process, then waits for a file named go-<n>;
# then prints another line.
WAITS = """
import os
import time
from pathlib import Path
from superparams import Experiment, search

HERE = Path(__file__).parent

class Waits(Experiment):
    n: int = search(0, 1)

    def run(self):
        print(f"n={self.n} begins", flush=True)
        (HERE / f"pid-{self.n}").write_text(str(os.getpid()))
        while not (HERE / f"go-{self.n}").exists():
            time.sleep(0.02)
        print(f"n={self.n} ends", flush=True)
        return {"n": self.n}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path / "experiments/waits.py", WAITS)
    (tmp_path / "tmp").mkdir()
    return tmp_path


def store(root: Path) -> Path:
    return root / "experiments/progress/waits/Waits"


def start(root: Path, *args: str) -> subprocess.Popen[str]:
    """The run, on two worker processes, with its own TMPDIR."""
    return subprocess.Popen(
        [str(COMMAND), "waits.Waits", "-j", "2", *args],
        cwd=root,
        env={**environment(), "TMPDIR": str(root / "tmp")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def pid_of(root: Path, n: int) -> int:
    """The process running setting n, once it runs."""
    mark = root / f"experiments/pid-{n}"
    wait_for(lambda: mark.exists() and mark.read_text(), f"setting n={n} to start")
    return int(mark.read_text())


def open_files(pid: int) -> list[str]:
    """Where the descriptors of a process point."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):
            found.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return found


def log_of(root: Path, n: int) -> Path:
    rows = pl.read_parquet(store(root) / "results.parquet")
    return store(root) / rows.filter(pl.col("n") == n)["log"][0]


def finish(run: subprocess.Popen[str]) -> tuple[str, str]:
    return run.communicate(timeout=60)


def stop(run: subprocess.Popen[str]) -> None:
    """Kill the run if it is still there, and reap it."""
    with contextlib.suppress(ProcessLookupError):
        run.kill()
    run.communicate()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads /proc")
class TestWorkersNeverWriteTheStore:
    def test_no_worker_holds_a_file_of_the_results_folder(self, project):
        """While settings run and print, no worker process has a file of the results
        folder open: their output goes to files of the engine's own, under TMPDIR."""
        run = start(project)
        try:
            pids = [pid_of(project, 0), pid_of(project, 1)]
            folder = str(store(project).resolve())
            for pid in pids:
                files = open_files(pid)
                assert not [f for f in files if f.startswith(folder)], files
                stdout = os.readlink(f"/proc/{pid}/fd/1")
                assert stdout.startswith(str((project / "tmp").resolve()) + os.sep), stdout
            for n in (0, 1):
                (project / f"experiments/go-{n}").touch()
            _, stderr = finish(run)
        finally:
            stop(run)
        assert run.returncode == 0, stderr
        assert log_of(project, 0).read_text() == "n=0 begins\nn=0 ends\n"
        assert log_of(project, 1).read_text() == "n=1 begins\nn=1 ends\n"

    def test_the_log_grows_in_the_folder_while_the_setting_runs(self, project):
        """What a running setting printed is in its log in the results folder within a
        moment, for whoever reads the folder."""
        run = start(project)
        try:
            pid_of(project, 0)
            logs = store(project) / "logs"
            printed = lambda: [  # noqa: E731
                p for p in logs.glob("*.log") if p.read_text() == "n=0 begins\n"
            ]
            wait_for(printed, "n=0's first line in its log", timeout=5)
            for n in (0, 1):
                (project / f"experiments/go-{n}").touch()
            _, stderr = finish(run)
        finally:
            stop(run)
        assert run.returncode == 0, stderr


def read_lines(stream: object, count: int, timeout: float) -> list[str]:
    """The next ``count`` lines of a text pipe, or fewer if they take longer than that."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    fd = stream.fileno()  # type: ignore[attr-defined]
    buffered = ""
    while len(lines) < count and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        data = os.read(fd, 4096).decode()
        if not data:
            break
        buffered += data
        *whole, buffered = buffered.split("\n")
        lines += whole
    return lines


class TestFollowingALog:
    def test_logs_f_shows_a_running_settings_output_live(self, project):
        """``experiment logs -f`` in another process prints what a setting running on a
        worker printed while it still runs, then the rest, and stops when it ends."""
        run = start(project)
        follow = None
        try:
            pid_of(project, 0)
            wait_for(lambda: list((store(project) / "logs").glob("*.log")), "a log")
            follow = subprocess.Popen(
                [str(COMMAND), "logs", "waits.Waits", "--n", "0", "-f"],
                cwd=project,
                env=environment(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
            )
            assert read_lines(follow.stdout, 1, timeout=20) == ["n=0 begins"]
            assert follow.poll() is None  # still following: the setting runs on
            (project / "experiments/go-0").touch()
            assert read_lines(follow.stdout, 1, timeout=20) == ["n=0 ends"]
            assert follow.wait(timeout=30) == 0
            (project / "experiments/go-1").touch()
            _, stderr = finish(run)
        finally:
            stop(run)
            if follow is not None:
                follow.kill()
                follow.communicate()
        assert run.returncode == 0, stderr


class TestDeadWorkersKeepTheirLog:
    def test_kill_9_mid_setting_keeps_what_it_printed(self, project):
        """A worker killed by SIGKILL while its setting runs fails that setting; its log
        in the results folder keeps what it printed, and says how it died."""
        run = start(project)
        try:
            os.kill(pid_of(project, 0), signal.SIGKILL)
            (project / "experiments/go-1").touch()
            _, stderr = finish(run)
        finally:
            stop(run)
        assert run.returncode == 1, stderr
        rows = pl.read_parquet(store(project) / "results.parquet").sort("n")
        assert rows["status"].to_list() == ["failed", "completed"]
        assert rows["cause"][0] == "killed"
        assert log_of(project, 0).read_text() == (
            "n=0 begins\n\n[superparams] worker process killed by SIGKILL"
            " (the kernel's out-of-memory killer sends this when memory runs out)\n"
        )


class TestScratchSpace:
    def test_removed_after_the_run(self, project):
        """The files workers write output to live under TMPDIR while the run goes on, and
        nothing of them is left after it."""
        run = start(project)
        try:
            pid = pid_of(project, 0)
            assert os.readlink(f"/proc/{pid}/fd/1").startswith(str(project / "tmp"))
            for n in (0, 1):
                (project / f"experiments/go-{n}").touch()
            _, stderr = finish(run)
        finally:
            stop(run)
        assert run.returncode == 0, stderr
        assert list((project / "tmp").iterdir()) == []

    def test_removed_after_ctrl_c(self, project):
        """Stopped by two Ctrl-Cs while settings run, the run leaves nothing under
        TMPDIR, and the interrupted settings' logs keep what they printed."""
        run = start(project)
        try:
            for n in (0, 1):
                pid = pid_of(project, n)
            assert os.readlink(f"/proc/{pid}/fd/1").startswith(str(project / "tmp"))
            run.send_signal(signal.SIGINT)
            time.sleep(0.5)
            run.send_signal(signal.SIGINT)
            _, stderr = finish(run)
        finally:
            stop(run)
        assert run.returncode == 130, stderr
        assert list((project / "tmp").iterdir()) == []
        logs = sorted(p.read_text() for p in (store(project) / "logs").glob("*.log"))
        assert logs == ["n=0 begins\n", "n=1 begins\n"]

    def test_a_killed_runs_scratch_is_removed_by_the_next_run(self, project):
        """A run killed by SIGKILL cannot clean up; the next run removes what it left
        under TMPDIR, and leaves nothing of its own."""
        run = start(project)
        try:
            pid_of(project, 0)
            run.kill()
        finally:
            stop(run)
        assert len(list((project / "tmp").iterdir())) == 1
        for n in (0, 1):
            (project / f"experiments/go-{n}").touch()
        again = start(project)
        try:
            _, stderr = finish(again)
        finally:
            stop(again)
        assert again.returncode == 0, stderr
        assert list((project / "tmp").iterdir()) == []
