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
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import experiment as command
from tests.conftest import wait_for
from tests.e2e.sources import MODES
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

import signal

class Leaves(Experiment):
    how: str = search("popen", "daemon")
    then: str = "return"  # or "crash": its process dies; "sleep": it waits to be killed

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
        if self.then == "crash":
            os._exit(3)
        if self.then == "sleep":
            time.sleep(60)
        if self.then == "hang":  # deaf to its timeout: its worker is killed
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(60)
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

    @pytest.mark.parametrize("mode", MODES)
    @pytest.mark.parametrize(
        ("how", "error"),
        [
            ("KeyboardInterrupt", "KeyboardInterrupt: raised by the setting's own code"),
            ("SystemExit", "SystemExit: the setting called sys.exit"),
        ],
    )
    def test_fails_the_setting_and_the_rest_run(self, project, mode, how, error):
        """The setting is failed with its error, the other three complete, the exit code
        says some failed, and a second run tries it again instead of stopping at it."""
        done = experiment("raises.Raises", "--how", how, *MODES[mode], cwd=project)
        assert done.returncode == 1, done.stderr
        rows = table(project, "raises", "Raises").sort("n")
        assert rows["status"].to_list() == ["completed", "failed", "completed", "completed"]
        failed = rows.row(1, named=True)
        assert (failed["cause"], failed["error"]) == ("raised", error)
        again = experiment("raises.Raises", "--how", how, *MODES[mode], cwd=project)
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


def start(root: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    """The command (``args``: the experiment first) in its own session, as a scheduler
    starts a job."""
    return subprocess.Popen(
        [str(COMMAND), *args],
        cwd=root,
        env={**environment(), "PYTHONUNBUFFERED": "1", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def gone(root: Path, names: set[str]) -> None:
    """Wait until the processes named in experiments/pids are gone."""
    pids = {p.name: int(p.read_text()) for p in (root / "experiments/pids").iterdir()}
    assert set(pids) == names
    for name, pid in pids.items():
        wait_for(lambda pid=pid: not alive(pid), f"the {name} to be gone", timeout=5)


class TestNothingLeftRunning:
    def test_nor_after_its_worker_dies(self, project):
        """A worker that dies after its setting started a subprocess and a setsid daemon
        takes both with it; the run goes on."""
        try:
            done = experiment("leaves.Leaves", "--then", "crash", "-j", "1", cwd=project)
            assert done.returncode == 1, done.stderr
            assert "worker process exited with code 3" in done.stderr
            gone(project, {"popen", "daemon"})
        finally:
            kill_all(project)

    def test_nor_after_its_worker_is_killed_for_time(self, project):
        """A setting killed with its worker for running past its timeout takes the setsid
        daemon it started with it."""
        try:
            done = experiment(
                "leaves.Leaves", "--how", "daemon", "--then", "hang", "--timeout", "1", cwd=project
            )
            assert done.returncode == 1, done.stderr
            assert "timed out after 1 s; worker killed" in done.stderr
            gone(project, {"daemon"})
        finally:
            kill_all(project)

    def test_nor_after_a_kill_9_of_the_run(self, project):
        """kill -9 of the driver alone (not its process group) ends the subprocess and the
        setsid daemon its running settings started."""
        child = start(project, "leaves.Leaves", "--then", "sleep", "-j", "2")
        pids = project / "experiments/pids"
        try:
            wait_for(lambda: pids.exists() and len(list(pids.iterdir())) == 2, "both to start")
            time.sleep(0.2)  # both settings are asleep
            os.kill(child.pid, signal.SIGKILL)
            child.communicate(timeout=30)
            gone(project, {"popen", "daemon"})
        finally:
            kill_all(project)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)

    @pytest.mark.parametrize("mode", MODES)
    def test_processes_started_by_a_setting_end_with_it(self, project, mode):
        """A subprocess left running and a double-forked daemon are both gone when their
        setting ends, in a worker and in this process alike."""
        try:
            done = experiment("leaves.Leaves", *MODES[mode], cwd=project)
            assert done.returncode == 0, done.stderr
            gone(project, {"popen", "daemon"})
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


def started(root: Path) -> int:
    """How many settings have started, by their log files."""
    logs = root / "experiments/progress/sleeps/Sleeps/logs"
    return len(list(logs.glob("*.log"))) if logs.exists() else 0


class TestSchedulerSignals:
    """SIGTERM and SIGHUP stop a run as Ctrl-C does: gracefully once, at once twice."""

    @pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
    @pytest.mark.parametrize("mode", MODES)
    def test_first_signal_lets_running_settings_finish(self, tmp_path, signum, mode):
        """Running settings finish and are stored, nothing more starts, the summary is
        printed, the exit code is 130, and nothing is left behind; sent to the whole
        process group, as Slurm and docker do."""
        write(tmp_path / "experiments/sleeps.py", SLEEPS)
        child = start(tmp_path, "sleeps.Sleeps", *MODES[mode])
        running = 2 if mode == "workers" else 1
        wait_for(lambda: started(tmp_path) >= 1 + running, "the slow settings to start")
        os.killpg(child.pid, signum)
        _, err = child.communicate(timeout=60)
        assert child.returncode == 130, err
        assert "Traceback" not in err
        rows = table(tmp_path, "sleeps", "Sleeps")
        assert set(rows["status"]) == {"completed"}
        assert 1 + running <= rows.height < 6
        assert f"{signal.Signals(signum).name}: stopping" in err
        assert "interrupted in" in err
        assert not (tmp_path / "experiments/progress/sleeps/Sleeps/.run").exists()

    @pytest.mark.parametrize("mode", MODES)
    def test_second_signal_stops_running_settings(self, tmp_path, mode):
        """A second SIGTERM stops the running settings at once; they are interrupted."""
        write(tmp_path / "experiments/sleeps.py", SLEEPS)
        child = start(tmp_path, "sleeps.Sleeps", *MODES[mode], NAP="60")
        running = 2 if mode == "workers" else 1
        wait_for(lambda: started(tmp_path) >= 1 + running, "the slow settings to start")
        began = time.monotonic()
        os.killpg(child.pid, signal.SIGTERM)
        time.sleep(0.5)
        os.killpg(child.pid, signal.SIGTERM)
        _, err = child.communicate(timeout=60)
        assert time.monotonic() - began < 20
        assert child.returncode == 130, err
        rows = table(tmp_path, "sleeps", "Sleeps").sort("n")
        assert rows["status"].to_list() == ["completed"] + ["interrupted"] * running

    @pytest.mark.parametrize("mode", MODES)
    def test_running_settings_get_a_grace_period(self, tmp_path, mode):
        """After the first SIGTERM, settings still running when the grace period ends are
        stopped and left interrupted (Slurm kills the job soon after its SIGTERM)."""
        write(tmp_path / "experiments/sleeps.py", SLEEPS)
        child = start(tmp_path, "sleeps.Sleeps", *MODES[mode], NAP="60", SUPERPARAMS_STOP_GRACE="2")
        running = 2 if mode == "workers" else 1
        wait_for(lambda: started(tmp_path) >= 1 + running, "the slow settings to start")
        began = time.monotonic()
        os.killpg(child.pid, signal.SIGTERM)
        _, err = child.communicate(timeout=60)
        assert 1.5 < time.monotonic() - began < 20
        assert child.returncode == 130, err
        rows = table(tmp_path, "sleeps", "Sleeps").sort("n")
        assert rows["status"].to_list() == ["completed"] + ["interrupted"] * running


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


# Each setting notes the state of its process as it starts, then changes all of it.
MESSY = """
import os
import resource
import signal
import sys
from superparams import Experiment, search

class Messy(Experiment):
    n: int = search(*range(4))

    def run(self):
        seen = {
            "cwd": os.getcwd(),
            "env": os.environ.get("MESSY"),
            "umask": os.umask(0o077),
            "path": sys.path[0],
            "usr1": str(signal.getsignal(signal.SIGUSR1)),
            "core": resource.getrlimit(resource.RLIMIT_CORE)[0],
        }
        os.chdir("/")
        os.environ["MESSY"] = str(self.n)
        sys.path.insert(0, f"/nowhere/{self.n}")
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
        return seen
"""

LIMITS = """
import resource
from superparams import Experiment, search

class Limits(Experiment):
    n: int = search(*range(4))

    def run(self):
        if self.n == 0:  # a setting that caps its own memory, and forgets to undo it
            resource.setrlimit(resource.RLIMIT_AS, (2 << 30, resource.RLIM_INFINITY))
            return {"big": 0}
        return {"big": len(bytearray(3 << 30))}  # 3 GiB, zeroed lazily
"""


class TestNothingLeaksBetweenSettings:
    @pytest.mark.parametrize("mode", MODES)
    def test_each_setting_starts_from_the_same_state(self, tmp_path, mode):
        """What one setting changes in its process (working directory, environment,
        umask, sys.path, signal handlers, limits) is undone before the next one starts."""
        write(tmp_path / "experiments/messy.py", MESSY)
        done = experiment("messy.Messy", *MODES[mode], cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        rows = table(tmp_path, "messy", "Messy")
        for column in ("cwd", "env", "umask", "path", "usr1", "core"):
            assert rows[column].n_unique() == 1, (column, rows[column].to_list())
        assert rows["cwd"][0] == str(tmp_path)
        assert rows["env"][0] is None

    def test_a_lowered_memory_limit_ends_with_its_setting(self, tmp_path):
        """A setting that lowers its memory limit does not make a later one on the same
        worker fail with MemoryError."""
        write(tmp_path / "experiments/limits.py", LIMITS)
        done = experiment("limits.Limits", "--engine", "local", "-j", "1", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        rows = table(tmp_path, "limits", "Limits")
        assert rows["worker"].n_unique() == 1  # one worker ran them all, in order
        assert set(rows["status"]) == {"completed"}

    def test_a_relative_folder_survives_chdir(self, tmp_path, monkeypatch):
        """A relative folder= stays where it was when the run began, whatever run() does
        to the working directory."""
        write(tmp_path / "experiments/messy.py", MESSY)
        monkeypatch.chdir(tmp_path)
        monkeypatch.syspath_prepend(str(tmp_path / "experiments"))
        import importlib

        module = importlib.import_module("messy")
        try:
            frame = module.Messy().run_all(folder="out", engine="inline", display=False)
        finally:
            import sys

            sys.modules.pop("messy", None)
        assert frame["status"].to_list() == ["completed"] * 4
        assert (tmp_path / "out/results.parquet").exists()


class TestIsolatedSettings:
    def test_each_setting_in_a_process_of_its_own(self, tmp_path):
        """--isolate runs every setting in a new worker process: no two share one."""
        write(
            tmp_path / "experiments/pids.py",
            """
            import os
            from superparams import Experiment, search

            class Pids(Experiment):
                n: int = search(*range(5))

                def run(self):
                    return {"pid": os.getpid(), "rank": self.rank}
            """,
        )
        done = experiment("pids.Pids", "-j", "2", "--isolate", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        rows = table(tmp_path, "pids", "Pids")
        assert rows["pid"].n_unique() == 5
        assert set(rows["rank"]) <= {0, 1}


# Setting 0 closes Python's stdout and stderr (as a library that "cleans up" might), then
# completes; setting 1 runs next in the same worker and prints.
CLOSES = """
import sys
from superparams import Experiment, search

class Closes(Experiment):
    n: int = search(0, 1)

    def run(self):
        if self.n == 0:
            sys.stdout.close()
            sys.stderr.close()
            return {"n": self.n}
        print(f"n={self.n} prints")
        print("and warns", file=sys.stderr)
        return {"n": self.n}
"""


class TestClosedStreams:
    @pytest.mark.parametrize("mode", ["in-process", "one worker"])
    def test_the_next_setting_gets_them_back(self, tmp_path, mode):
        """A setting that closes sys.stdout and sys.stderr does not fail the next setting
        of its process, which prints into its own log as usual."""
        write(tmp_path / "experiments/closes.py", CLOSES)
        how = ("--engine", "local", "-j", "1") if mode == "one worker" else MODES[mode]
        done = experiment("closes.Closes", *how, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        rows = table(tmp_path, "closes", "Closes").sort("n")
        assert rows["status"].to_list() == ["completed", "completed"], rows["error"].to_list()
        if mode == "one worker":
            assert rows["worker"].n_unique() == 1  # both ran in one process, in order
        log = tmp_path / "experiments/progress/closes/Closes" / rows["log"][1]
        assert log.read_text() == "n=1 prints\nand warns\n"


# Eight threads of one setting report rows at once, each many times.
THREADS = """
import threading
from superparams import Experiment, search

class Threads(Experiment):
    n: int = search(0, 1)

    def run(self):
        def work(t):
            for step in range(50):
                self.report(thread=t, step=step)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {"thread": -1, "step": -1}
"""


class TestReportFromThreads:
    @pytest.mark.parametrize("mode", MODES)
    def test_every_row_of_every_thread_is_stored(self, tmp_path, mode):
        """self.report() called from several threads at once stores each row once, and
        the setting completes."""
        write(tmp_path / "experiments/threads.py", THREADS)
        done = experiment("threads.Threads", *MODES[mode], cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        rows = table(tmp_path, "threads", "Threads")
        assert set(rows["status"]) == {"completed"}, rows["error"].to_list()
        for n in (0, 1):
            mine = rows.filter(pl.col("n") == n)
            pairs = sorted(zip(mine["thread"], mine["step"], strict=True))
            assert pairs == [(-1, -1)] + [(t, s) for t in range(8) for s in range(50)]


# A large store, so that bringing results.parquet up to date takes long enough to be
# caught at it: each stored setting has a row of two values, one of them 64 hex digits.
BIG = """
import os
from superparams import Experiment, search

class Big(Experiment):
    x: int = search(*range(int(os.environ["BIG_N"])))

    def run(self):
        return {"y": self.x * 10, "note": "new"}
"""

STORED = 80_000  # settings in the large store


def big_store(root: Path) -> Path:
    """A project whose Big experiment has STORED completed settings in its record (as the
    store writes them), and no results.parquet yet; its results folder."""
    import hashlib
    import json

    from superparams._identity import setting_id

    write(root / "experiments/big.py", BIG)
    folder = root / "experiments/progress/big/Big"
    (folder / "logs").mkdir(parents=True)
    with open(folder / "record.jsonl", "w") as f:
        for x in range(STORED):
            about = {"label": f"x={x}", "params": {"x": x}, "enc": {"x": str(x)}}
            row = {"y": x * 10, "note": hashlib.sha256(str(x).encode()).hexdigest()}
            line = {
                "event": "outcome",
                "id": setting_id({"x": str(x)}),
                "status": "completed",
                "attempt": 1,
                "started": 1.7e9 + x,
                "seconds": 0.5,
                "worker": 0,
                "log": None,
                "rows": [row],
                **about,
            }
            f.write(json.dumps(line, separators=(",", ":")) + "\n")
    return folder


def temporary(folder: Path) -> list[str]:
    """The temporary files in a results folder (results.parquet being written)."""
    return [name for name in os.listdir(folder) if name.endswith(".tmp")]


def writing(folder: Path) -> bool:
    """Whether results.parquet is being written (its temporary file is there)."""
    return any(name.startswith(".results.parquet.") for name in temporary(folder))


def big_run(root: Path, total: int) -> subprocess.Popen[str]:
    """The command run on the Big experiment with ``total`` settings, in its own session."""
    return start(root, "big.Big", "-q", BIG_N=str(total))


def signal_when(child: subprocess.Popen[str], ready: Callable[[], bool], signum: int) -> bool:
    """Send ``signum`` to the child's group the moment ``ready()`` holds, polling; False
    if the child ended before it did (the instant was missed)."""
    while child.poll() is None:
        if ready():
            os.killpg(child.pid, signum)
            return True
        time.sleep(0.001)
    return False


class TestSignalsAtTheEdgesOfARun:
    """A signal while the store is opened (brought up to date, planned) or while results
    are written at the end stops the run as Ctrl-C does: exit code 130, a summary that
    counts what is stored, no traceback, no temporary file; and one left by `kill -9`
    there is removed by the next command."""

    @pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
    def test_at_start_up(self, tmp_path, signum):
        """Signalled as it brings results.parquet up to date at the start: nothing ran,
        and it says what is stored (every one of the settings)."""
        folder = big_store(tmp_path)
        child = big_run(tmp_path, STORED + 1)

        def opened() -> bool:  # it holds the folder: bringing results.parquet up to date
            lock = folder / "lock"
            return lock.exists() and f"pid {child.pid} " in lock.read_text()

        assert signal_when(child, opened, signum)
        _, err = child.communicate(timeout=60)
        assert child.returncode == 130, err
        assert "Traceback" not in err, err
        assert f"interrupted before any setting ran; stored: {STORED} completed" in err, err
        assert temporary(folder) == []
        assert not list((folder / "logs").iterdir())  # no setting started

    @pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
    def test_while_results_are_written_at_the_end(self, tmp_path, signum):
        """Signalled as it writes results.parquet at the end: the run's summary, with the
        setting it ran stored, and exit code 130."""
        folder = big_store(tmp_path)
        first = big_run(tmp_path, STORED + 1)  # makes results.parquet
        _, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
        for total in range(STORED + 2, STORED + 6):  # another setting each, till caught
            child = big_run(tmp_path, total)
            if signal_when(child, lambda: writing(folder), signum):
                break
            child.communicate()
        else:
            pytest.fail("results.parquet was never caught being written")
        _, err = child.communicate(timeout=60)
        assert child.returncode == 130, err
        assert "Traceback" not in err, err
        assert f"1 completed, 0 failed, {total - 1} done before" in err, err
        assert temporary(folder) == []
        done = command(
            "results", "big.Big", "--x", str(total - 1), "--json", cwd=tmp_path, BIG_N=str(total)
        )
        assert done.returncode == 0, done.stderr
        assert '"status":"completed"' in done.stdout, done.stdout

    def test_kill_9_while_results_are_written(self, tmp_path):
        """A run killed as it writes results.parquet leaves its temporary file, which the
        next run removes; nothing stored is lost."""
        folder = big_store(tmp_path)
        child = big_run(tmp_path, STORED + 1)
        assert signal_when(child, lambda: writing(folder), signal.SIGKILL)
        child.communicate(timeout=60)
        assert writing(folder)  # what kill -9 leaves
        status = command("status", "big.Big", cwd=tmp_path, BIG_N=str(STORED + 1))
        assert status.returncode == 0, status.stderr
        assert f"completed    {STORED}" in status.stdout, status.stdout
        again = big_run(tmp_path, STORED + 1)
        _, err = again.communicate(timeout=120)
        assert again.returncode == 0, err
        assert f"1 completed, 0 failed, {STORED} done before" in err, err
        assert temporary(folder) == []
