"""Faults inside a setting and signals to the run, through the real ``experiment`` command.

Each test writes an experiment whose ``run()`` misbehaves the way research code does
(forks a daemon, raises ``KeyboardInterrupt``, leaves a child running), or sends the run
the signals a scheduler sends, and checks what the user sees and what is stored.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import wait_for
from tests.e2e.test_cli import COMMAND, environment, experiment, write

pytestmark = pytest.mark.slow

RAISES = """
import sys
from superparams import Experiment, search

class Raises(Experiment):
    n: int = search(0, 1, 2, 3)
    how: str = "KeyboardInterrupt"

    def run(self):
        if self.n == 1:
            if self.how == "KeyboardInterrupt":
                raise KeyboardInterrupt("raised by the setting's own code")
            sys.exit("the setting called sys.exit")
        return {"double": 2 * self.n}
"""

# Setting 0 forks a child that keeps every descriptor the worker had, and sleeps; then
# the worker itself dies. Setting 1 runs normally.
FORKS = """
import os
import time
from pathlib import Path
from superparams import Experiment, search

PIDS = Path(__file__).with_name("pids")

class Forks(Experiment):
    n: int = search(0, 1)

    def run(self):
        if self.n == 0:
            child = os.fork()
            if child == 0:
                time.sleep(60)
                os._exit(0)
            PIDS.mkdir(exist_ok=True)
            (PIDS / "child").write_text(str(child))
            os._exit(3)
        return {"n": self.n}
"""

# A setting that leaves a subprocess running, and one that starts a double-forked daemon
# (which leaves its session and its parent): both must be gone when the setting ends.
LEAVES = """
import os
import subprocess
import sys
import time
from pathlib import Path
from superparams import Experiment, search

PIDS = Path(__file__).with_name("pids")

class Leaves(Experiment):
    how: str = search("popen", "daemon")

    def run(self):
        PIDS.mkdir(exist_ok=True)
        if self.how == "popen":
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            (PIDS / "popen").write_text(str(child.pid))
        else:
            read, write = os.pipe()
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    os.write(write, str(os.getpid()).encode())
                    time.sleep(60)
                os._exit(0)
            os.close(write)
            (PIDS / "daemon").write_text(os.read(read, 32).decode())
        return {"started": self.how}
"""


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie has finished running)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def table(root: Path, module: str, cls: str) -> pl.DataFrame:
    return pl.read_parquet(root / "experiments/progress" / module / cls / "results.parquet")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name, source in {"raises": RAISES, "forks": FORKS, "leaves": LEAVES}.items():
        write(tmp_path / f"experiments/{name}.py", source)
    return tmp_path


def kill_all(root: Path) -> None:
    """Whatever a failing test leaves running is stopped."""
    for path in (root / "experiments/pids").glob("*"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(path.read_text()), signal.SIGKILL)


class TestSettingRaisesAnInterrupt:
    """``KeyboardInterrupt`` or ``SystemExit`` raised by ``run()`` fails that setting only."""

    @pytest.mark.parametrize("jobs", ["1", "2"])
    @pytest.mark.parametrize(
        ("how", "error"),
        [
            ("KeyboardInterrupt", "KeyboardInterrupt: raised by the setting's own code"),
            ("SystemExit", "SystemExit: the setting called sys.exit"),
        ],
    )
    def test_fails_the_setting_and_the_rest_run(self, project, jobs, how, error):
        """The setting is failed with its error, the other three complete, the exit code
        says some failed, and a second run tries it again instead of stopping at it."""
        done = experiment("raises.Raises", "--how", how, "-j", jobs, cwd=project)
        assert done.returncode == 1, done.stderr
        rows = table(project, "raises", "Raises").sort("n")
        assert rows["status"].to_list() == ["completed", "failed", "completed", "completed"]
        failed = rows.row(1, named=True)
        assert (failed["cause"], failed["error"]) == ("raised", error)
        again = experiment("raises.Raises", "--how", how, "-j", jobs, cwd=project)
        assert again.returncode == 1, again.stderr
        assert "1 failed" in again.stderr
        assert table(project, "raises", "Raises").height == 4


class TestDeadWorkerWithChildren:
    def test_a_worker_whose_child_holds_its_pipe(self, project):
        """A worker that dies while a child it forked still holds its pipe fails that
        setting at once: the run does not wait for the child."""
        began = time.monotonic()
        try:
            done = experiment("forks.Forks", "-j", "2", cwd=project, timeout=45)
        finally:
            kill_all(project)
        assert time.monotonic() - began < 30  # not the 60 s the child sleeps
        assert done.returncode == 1, done.stderr
        rows = table(project, "forks", "Forks").sort("n")
        assert rows["status"].to_list() == ["failed", "completed"]
        assert rows["error"][0] == "worker process exited with code 3 while running this setting"

    def test_exec_children_get_no_pipe(self, project):
        """A program that run() starts inherits none of the worker's pipes."""
        write(
            project / "experiments/fds.py",
            """
            import subprocess
            import sys
            from superparams import Experiment, search

            CHILD = "import os; print(sorted(int(f) for f in os.listdir('/proc/self/fd')))"

            class Fds(Experiment):
                n: int = search(0, 1)

                def run(self):
                    out = subprocess.run(
                        [sys.executable, "-c", CHILD], close_fds=False, capture_output=True,
                        text=True, stdin=subprocess.DEVNULL,
                    )
                    return {"fds": out.stdout.strip()}
            """,
        )
        done = experiment("fds.Fds", "-j", "2", cwd=project)
        assert done.returncode == 0, done.stderr
        # stdin, stdout and stderr (captured), and the one the child opens to list them
        assert set(table(project, "fds", "Fds")["fds"]) == {"[0, 1, 2, 3]"}


class TestNothingLeftRunning:
    @pytest.mark.parametrize("jobs", ["1", "2"])
    def test_processes_started_by_a_setting_end_with_it(self, project, jobs):
        """A subprocess left running and a double-forked daemon are both gone when their
        setting ends, in a worker and in this process alike."""
        try:
            done = experiment("leaves.Leaves", "-j", jobs, cwd=project)
            assert done.returncode == 0, done.stderr
            pids = {p.name: int(p.read_text()) for p in (project / "experiments/pids").iterdir()}
            assert set(pids) == {"popen", "daemon"}
            for name, pid in pids.items():
                wait_for(lambda pid=pid: not alive(pid), f"the {name} to be gone", timeout=5)
        finally:
            kill_all(project)


SLEEPS = """
import os
import time
from superparams import Experiment, search

class Sleeps(Experiment):
    n: int = search(*range(6))

    def run(self):
        print(f"n={self.n} starts", flush=True)
        time.sleep(float(os.environ.get("NAP", "1.5")) if self.n >= 1 else 0)
        return {"n": self.n}
"""


def start(root: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    """The command in its own session, as a scheduler starts a job."""
    return subprocess.Popen(
        [str(COMMAND), "sleeps.Sleeps", *args],
        cwd=root,
        env={**environment(), "PYTHONUNBUFFERED": "1", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def started(root: Path) -> int:
    """How many settings have started, by their log files."""
    logs = root / "experiments/progress/sleeps/Sleeps/logs"
    return len(list(logs.glob("*.log"))) if logs.exists() else 0


class TestSchedulerSignals:
    """SIGTERM and SIGHUP stop a run as Ctrl-C does: gracefully once, at once twice."""

    @pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
    @pytest.mark.parametrize("jobs", ["1", "2"])
    def test_first_signal_lets_running_settings_finish(self, tmp_path, signum, jobs):
        """Running settings finish and are stored, nothing more starts, the summary is
        printed, the exit code is 130, and nothing is left behind; sent to the whole
        process group, as Slurm and docker do."""
        write(tmp_path / "experiments/sleeps.py", SLEEPS)
        child = start(tmp_path, "-j", jobs)
        wait_for(lambda: started(tmp_path) >= 1 + int(jobs), "the slow settings to start")
        os.killpg(child.pid, signum)
        _, err = child.communicate(timeout=60)
        assert child.returncode == 130, err
        assert "Traceback" not in err
        rows = table(tmp_path, "sleeps", "Sleeps")
        assert set(rows["status"]) == {"completed"}
        assert 1 + int(jobs) <= rows.height < 6
        assert f"{signal.Signals(signum).name}: stopping" in err
        assert "interrupted in" in err
        assert not (tmp_path / "experiments/progress/sleeps/Sleeps/.run").exists()

    def test_second_signal_stops_running_settings(self, tmp_path):
        """A second SIGTERM stops the running settings at once; they are interrupted."""
        write(tmp_path / "experiments/sleeps.py", SLEEPS)
        child = start(tmp_path, "-j", "2", NAP="60")
        wait_for(lambda: started(tmp_path) >= 3, "the slow settings to start")
        began = time.monotonic()
        os.killpg(child.pid, signal.SIGTERM)
        time.sleep(0.5)
        os.killpg(child.pid, signal.SIGTERM)
        _, err = child.communicate(timeout=60)
        assert time.monotonic() - began < 20
        assert child.returncode == 130, err
        rows = table(tmp_path, "sleeps", "Sleeps").sort("n")
        assert rows["status"].to_list() == ["completed", "interrupted", "interrupted"]

    def test_running_settings_get_a_grace_period(self, tmp_path):
        """After the first SIGTERM, settings still running when the grace period ends are
        stopped and left interrupted (Slurm kills the job soon after its SIGTERM)."""
        write(tmp_path / "experiments/sleeps.py", SLEEPS)
        child = start(tmp_path, "-j", "2", NAP="60", SUPERPARAMS_STOP_GRACE="2")
        wait_for(lambda: started(tmp_path) >= 3, "the slow settings to start")
        began = time.monotonic()
        os.killpg(child.pid, signal.SIGTERM)
        _, err = child.communicate(timeout=60)
        assert 1.5 < time.monotonic() - began < 20
        assert child.returncode == 130, err
        rows = table(tmp_path, "sleeps", "Sleeps").sort("n")
        assert rows["status"].to_list() == ["completed", "interrupted", "interrupted"]


# What a hostile user with write access to the progress folder plants: a pickle that,
# when loaded, leaves a mark (it could run anything).
PLANT = """
import os
import pickle
import sys

class Payload:
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2],))

data = pickle.dumps(Payload())
header = (repr((len(data), [])) + "\\n").encode()
with open(sys.argv[1], "wb") as f:
    f.write(header + data)
"""

DIES = """
import os
import time
from superparams import Experiment, search

class Dies(Experiment):
    n: int = search(*range(4))

    def run(self):
        time.sleep(1.0)
        if self.n == 0:
            os._exit(1)  # its worker is replaced, and the new one loads the base
        return {"n": self.n}
"""


class TestProgressFolderIsNotCode:
    def test_a_planted_base_is_never_loaded(self, tmp_path):
        """Whoever can write the progress folder cannot make a worker run their code: a
        pickle planted where the base used to be is never loaded, not even by the worker
        started to replace a dead one."""
        import sys

        write(tmp_path / "experiments/dies.py", DIES)
        write(tmp_path / "plant.py", PLANT)
        folder = tmp_path / "experiments/progress/dies/Dies"
        mark = tmp_path / "pwned"
        child = subprocess.Popen(
            [str(COMMAND), "dies.Dies", "-j", "2"],
            cwd=tmp_path,
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        wait_for(lambda: list(folder.glob("logs/*.log")), "the first settings to start")
        (folder / ".run").mkdir(exist_ok=True)
        plant = [sys.executable, str(tmp_path / "plant.py"), str(folder / ".run/base.pkl")]
        subprocess.run([*plant, str(mark)], check=True)  # in place before the worker dies
        _, err = child.communicate(timeout=60)
        assert child.returncode == 1, err
        assert not mark.exists()
        rows = table(tmp_path, "dies", "Dies").sort("n")
        assert rows["status"].to_list() == ["failed", "completed", "completed", "completed"]
