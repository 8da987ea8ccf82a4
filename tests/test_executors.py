"""Executors as a user meets them: workers that crash, hang, fail and retry, GPUs handed
out, and the seam a new engine plugs into (with the in-process test double of
:mod:`superparams.executors.testing`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from tests.conftest import Events, environment, write

import superparams.executors._local._driver
from superparams import UsageError, search
from superparams.events import SettingFailed, SettingFinished, SettingStarted
from superparams.executors import _ENGINES, engines, get_executor
from superparams.executors._inline import InlineExecutor
from superparams.executors._local import LocalExecutor
from superparams.executors.testing import ScriptedExecutor

# Setting `doomed` dies the way DEATH says; the others sleep a little and complete.
DEATHS = """
import ctypes
import os
import signal
import sys
import time
from superparams import Experiment, search

class Deaths(Experiment):
    n: int = search(*range(8))
    doomed: int = 1
    how: str = "raise"
    pause: float = 0.05

    def run(self):
        time.sleep(self.pause)
        if self.n == self.doomed:
            print("about to go", flush=True)
            if self.how == "raise":
                raise ValueError("bad value")
            if self.how == "segfault":
                ctypes.string_at(0)
            if self.how == "exit":
                os._exit(3)
            if self.how == "sigkill":
                os.kill(os.getpid(), signal.SIGKILL)
            if self.how == "sys.exit":
                sys.exit("bad arguments")
        return {"seen_rank": self.rank, "pid": os.getpid()}
"""


class TestDeadWorkers:
    @pytest.mark.parametrize(
        ("how", "cause", "error"),
        [
            ("raise", "raised", "ValueError: bad value"),
            ("segfault", "killed", "worker process killed by SIGSEGV"),
            ("exit", "killed", "worker process exited with code 3 while running this setting"),
            ("sigkill", "killed", "worker process killed by SIGKILL"),
        ],
    )
    def test_fails_one_setting_and_the_run_goes_on(self, workspace, how, cause, error):
        """A setting that raises or kills its worker fails alone, with its cause; the other
        settings complete on the same ranks."""
        space = workspace.load("deaths", DEATHS).Deaths(how=how)
        table = space.run_all(num_proc=2, display=False)
        statuses = table["status"].to_list()
        assert statuses == ["completed", "failed"] + ["completed"] * 6
        failed = table.row(1, named=True)
        assert failed["cause"] == cause
        assert failed["error"].startswith(error)
        assert failed["attempt"] == 1
        assert failed["worker"] in (0, 1)
        # both slots ran later settings: a dead worker was replaced in its slot
        completed = table.filter(table["status"] == "completed")
        assert set(completed["seen_rank"]) == {0, 1}
        assert completed["pid"].n_unique() == 2
        log = (workspace.folder("deaths", "Deaths") / failed["log"]).read_text()
        assert "about to go" in log
        if cause == "killed":
            assert f"[superparams] {failed['error']}" in log

    @pytest.mark.parametrize(("num_proc", "engine"), [(1, "inline"), (2, None)])
    def test_sys_exit_fails_one_setting(self, workspace, num_proc, engine):
        """sys.exit() in run() fails that setting and the run goes on, in this process too."""
        space = workspace.load("deaths", DEATHS).Deaths(how="sys.exit", pause=0.0)
        table = space.run_all(num_proc=num_proc, engine=engine, display=False)
        assert table["status"].to_list() == ["completed", "failed"] + ["completed"] * 6
        failed = table.row(1, named=True)
        assert (failed["cause"], failed["error"]) == ("raised", "SystemExit: bad arguments")
        assert 'sys.exit("bad arguments")' in failed["traceback"]

    def test_a_death_loses_no_queued_setting(self, workspace):
        """When a worker with quick settings queued dies, every queued setting still runs."""
        source = DEATHS.replace("range(8)", "range(60)")
        space = workspace.load("deaths", source).Deaths(how="segfault", doomed=40, pause=0.0)
        table = space.run_all(num_proc=2, display=False)
        assert table.height == 60
        assert table.filter(table["status"] == "failed")["n"].to_list() == [40]
        assert table.filter(table["status"] == "completed").height == 59
        assert space.plan().failed == [40]

    def test_a_death_retried(self, workspace):
        """A setting whose worker died may be retried, and then completes."""
        source = DEATHS.replace(
            "        if self.n == self.doomed:",
            "        mark = Path(__file__).with_name(f'died-{self.n}')\n"
            "        if self.n == self.doomed and not mark.exists():\n"
            "            mark.touch()",
        ).replace("import time\n", "import time\nfrom pathlib import Path\n")
        space = workspace.load("deaths", source).Deaths(how="sigkill", n=search(1, 2))
        events = Events()
        table = space.run_all(num_proc=2, display=False, retries=1, subscribers=[events])
        assert table["status"].to_list() == ["completed", "completed"]
        assert table["attempt"].to_list() == [2, 1]
        (failed,) = events.of(SettingFailed)
        assert failed.will_retry
        assert failed.failure.cause == "killed"


SLOW = """
import signal
import time
from superparams import Experiment, search

class Slow(Experiment):
    n: int = search(1, 2, 3)
    stubborn: bool = False

    def run(self):
        if self.n == 2:
            if self.stubborn:  # a C extension that never returns to Python, say
                signal.signal(signal.SIGALRM, signal.SIG_IGN)
            time.sleep(30)
        return {"n2": self.n * 2}
"""


class TestTimeout:
    @pytest.mark.parametrize(("num_proc", "engine"), [(1, "inline"), (2, None)])
    def test_a_slow_setting_times_out(self, workspace, num_proc, engine):
        """A setting past its timeout fails with cause 'timeout'; the others complete."""
        space = workspace.load("slow", SLOW).Slow()
        began = time.monotonic()
        table = space.run_all(num_proc=num_proc, engine=engine, display=False, timeout=0.3)
        assert time.monotonic() - began < 10
        assert table["status"].to_list() == ["completed", "failed", "completed"]
        failed = table.row(1, named=True)
        assert failed["cause"] == "timeout"
        assert failed["error"] == "timed out after 0.3 s"
        assert "Traceback" in (workspace.folder("slow", "Slow") / failed["log"]).read_text()

    def test_a_stubborn_setting_is_killed(self, workspace, monkeypatch):
        """A setting that does not stop at its timeout has its worker killed, after a grace."""
        monkeypatch.setattr(superparams.executors._local._driver, "TIMEOUT_GRACE", 0.3)
        space = workspace.load("slow", SLOW).Slow(stubborn=True)
        began = time.monotonic()
        table = space.run_all(num_proc=2, display=False, timeout=0.3)
        assert time.monotonic() - began < 10
        assert table["status"].to_list() == ["completed", "failed", "completed"]
        failed = table.row(1, named=True)
        assert failed["cause"] == "timeout"
        assert failed["error"] == "timed out after 0.3 s; worker killed"


# n=2 fails its first `failures` tries; each try is counted in tries-<n> and printed.
FAILS_FIRST_TRIES = """
from pathlib import Path
from superparams import Experiment, search

HERE = Path(__file__).parent

class Flaky(Experiment):
    n: int = search(1, 2)
    failures: int = 1  # how many first attempts of n=2 fail

    def run(self):
        tries = HERE / f"tries-{self.n}"
        count = int(tries.read_text()) + 1 if tries.exists() else 1
        tries.write_text(str(count))
        print(f"try {count}")
        if self.n == 2 and count <= self.failures:
            raise RuntimeError(f"try {count} failed")
        return {"count": count}
"""


class TestRetries:
    @pytest.mark.parametrize(("num_proc", "engine"), [(1, "inline"), (2, None)])
    def test_a_retry_completes(self, workspace, num_proc, engine):
        """With retries=1 a setting that fails once completes on its second attempt."""
        space = workspace.load("flaky", FAILS_FIRST_TRIES).Flaky()
        events = Events()
        table = space.run_all(
            num_proc=num_proc, engine=engine, display=False, retries=1, subscribers=[events]
        )
        assert table["status"].to_list() == ["completed", "completed"]
        assert table["attempt"].to_list() == [1, 2]
        assert table["count"].to_list() == [1, 2]
        (failed,) = events.of(SettingFailed)
        assert failed.will_retry
        assert failed.attempt == 1
        assert [e.attempt for e in events.of(SettingStarted) if e.id == space[1].id] == [1, 2]
        log = (workspace.folder("flaky", "Flaky") / table["log"][1]).read_text()
        assert "try 1" in log
        assert "RuntimeError: try 1 failed" in log
        assert "----- attempt 2," in log
        assert log.rstrip().endswith("try 2")

    def test_retries_run_out(self, workspace):
        """A setting that keeps failing is tried 1 + retries times, then stored as failed."""
        space = workspace.load("flaky", FAILS_FIRST_TRIES).Flaky(failures=10)
        events = Events()
        table = space.run_all(display=False, retries=2, subscribers=[events])
        failed = table.row(1, named=True)
        assert failed["status"] == "failed"
        assert failed["attempt"] == 3
        assert failed["error"] == "RuntimeError: try 3 failed"
        assert [e.will_retry for e in events.of(SettingFailed)] == [True, True, False]

    def test_attempts_count_within_a_run(self, workspace):
        """A failed setting run again by a later run is its first attempt in that run."""
        module = workspace.load("flaky", FAILS_FIRST_TRIES)
        module.Flaky().run_all(display=False)
        table = module.Flaky().run_all(display=False)
        assert table["attempt"].to_list() == [1, 1]
        assert table["status"].to_list() == ["completed", "completed"]
        log = (workspace.folder("flaky", "Flaky") / table["log"][1]).read_text()
        earlier, _, later = log.partition("\n----- attempt 1, ")
        assert "RuntimeError: try 1 failed" in earlier
        assert later.rstrip().endswith("try 2")  # the earlier run's log is kept, then this one


GPUS = """
import os
import time
from superparams import Experiment, search

AT_IMPORT = os.environ.get("CUDA_VISIBLE_DEVICES")

class Gpus(Experiment):
    n: int = search(*range(8))

    die: int = -1

    def run(self):
        time.sleep(0.05)
        if self.n == self.die:
            os._exit(3)
        return {
            "device": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "at_import": AT_IMPORT,
            "seen_rank": self.rank,
            "pid": os.getpid(),
        }
"""


class TestGpus:
    def test_one_device_per_worker(self, workspace):
        """gpus=[0, 1] gives each of two workers its own CUDA_VISIBLE_DEVICES, before import."""
        space = workspace.load("gpus", GPUS).Gpus()
        table = space.run_all(num_proc=2, display=False, gpus=[0, 1])
        assert set(table["seen_rank"]) == {0, 1}
        for rank, device, at_import in table.select("seen_rank", "device", "at_import").rows():
            assert device == at_import == str(rank)

    def test_two_workers_per_device(self, workspace):
        """num_proc=4 with gpus=[0, 1] puts two workers on each device."""
        space = workspace.load("gpus", GPUS).Gpus()
        table = space.run_all(num_proc=4, display=False, gpus=[0, 1])
        devices = dict(table.select("seen_rank", "device").unique().rows())
        assert devices == {0: "0", 1: "1", 2: "0", 3: "1"}

    def test_a_replaced_worker_keeps_its_device(self, workspace):
        """A worker that dies is replaced by one on the same device."""
        space = workspace.load("gpus", GPUS).Gpus(die=1)
        table = space.run_all(num_proc=2, display=False, gpus=[0, 1])
        assert table.filter(table["status"] == "failed")["n"].to_list() == [1]
        completed = table.filter(table["status"] == "completed")
        assert set(completed["seen_rank"]) == {0, 1}
        for rank, device in completed.select("seen_rank", "device").rows():
            assert device == str(rank)

    def test_device_names(self, workspace):
        """Devices may be given as strings, such as GPU UUIDs."""
        space = workspace.load("gpus", GPUS).Gpus(n=search(0, 1))
        table = space.run_all(num_proc=2, display=False, gpus=["GPU-aa", "GPU-bb"])
        assert dict(table.select("seen_rank", "device").rows()) == {
            0: "GPU-aa",
            1: "GPU-bb",
        }


SEAM = """
from superparams import Experiment, search

class Seam(Experiment):
    n: int = search(*range(5))

    def run(self):
        if self.n == 3:
            raise KeyError("three")
        return {"n2": self.n * 2}
"""


class TestTheSeam:
    def test_a_new_engine_runs_a_space(self, workspace):
        """An Executor subclass passed as engine= runs a space through the unchanged runner."""
        space = workspace.load("seam", SEAM).Seam()
        engine = ScriptedExecutor(3)
        events = Events()
        table = space.run_all(engine=engine, display=False, subscribers=[events])
        assert table["status"].to_list() == ["completed"] * 3 + ["failed", "completed"]
        assert table["n2"].to_list() == [0, 2, 4, None, 8]
        worker = {position: worker for position, _, worker in engine.ran}
        assert table["worker"].to_list() == [worker[i] for i in range(5)]
        assert table["error"][3] == "KeyError: 'three'"
        assert engine.calls[0] == "start"
        assert engine.calls[-1] == "shutdown"
        assert engine.calls[1:4] == ["submit 0", "submit 1", "submit 2"]  # free was 3
        assert sorted(e.id for e in events.of(SettingStarted)) == sorted(s.id for s in space)
        assert len(events.of(SettingFinished)) == 4
        assert space.plan().done == [0, 1, 2, 4]
        # and it resumes like any other engine
        again = ScriptedExecutor(3)
        space.run_all(engine=again, display=False)
        assert [c for c in again.calls if c.startswith("submit")] == ["submit 3"]

    def test_engines_by_name(self):
        """The built-in engines are found by name; an unknown name gets a suggestion."""
        assert {"inline", "local", "dask"} <= set(engines())
        assert get_executor("local") is LocalExecutor
        assert get_executor("inline") is InlineExecutor
        with pytest.raises(UsageError, match=r"no engine named 'locl'.*'local'"):
            get_executor("locl")

    def test_unknown_engine_in_run_all(self, workspace):
        """run_all(engine=...) with an unknown name fails before anything runs."""
        space = workspace.load("seam", SEAM).Seam()
        with pytest.raises(UsageError, match="no engine named 'ray2'"):
            space.run_all(num_proc=2, engine="ray2", display=False)
        assert not (workspace.experiments / "progress").exists()

    def test_inline_engine(self, workspace):
        """engine='inline' runs in this process whatever num_proc says."""
        source = SEAM.replace('return {"n2": self.n * 2}', 'import os; return {"pid": os.getpid()}')
        space = workspace.load("seam", source).Seam()
        table = space.run_all(num_proc=2, engine="inline", display=False)
        assert set(table["pid"].drop_nulls()) == {os.getpid()}

    def test_debug_lets_the_exception_through(self, workspace):
        """debug=True runs in this process and lets the first exception reach the caller;
        the setting it came from is left interrupted (its process lives on), not failed."""
        space = workspace.load("seam", SEAM).Seam()
        with pytest.raises(KeyError, match="three"):
            space.run_all(num_proc=2, debug=True, display=False)
        plan = space.plan()
        assert plan.done == [0, 1, 2]
        assert plan.interrupted == [3]
        assert plan.failed == plan.died == []


BROKEN = """
import sys
from superparams import Experiment, search

if sys.argv[0].endswith("_process.py"):  # a local worker process
    raise ImportError("this module cannot load in a worker")

class Broken(Experiment):
    n: int = search(1, 2)

    def run(self):
        return {"n": self.n}
"""


class TestWorkersThatCannotStart:
    def test_an_experiment_that_does_not_load(self, workspace):
        """If workers cannot load the experiment the run stops with why; nothing counts as run."""
        from superparams.errors import WorkerError

        space = workspace.load("broken", BROKEN).Broken()
        with pytest.raises(WorkerError, match="this module cannot load in a worker"):
            space.run_all(num_proc=2, display=False)
        plan = space.plan()
        assert plan.done == plan.failed == []
        space.run_all(engine="inline", display=False)  # the folder is not left locked
        assert space.plan().done == [0, 1]


UNSHIPPABLE = """
import threading
from superparams import Experiment, search

class Holder:
    def __init__(self):
        self.lock = threading.Lock()

    def __superparams_id__(self):
        return "holder"

class Unshippable(Experiment):
    holder: Holder = Holder()
    n: int = search(1, 2)

    def run(self):
        return {"n": self.n}
"""


class TestExperimentsThatCannotTravel:
    def test_fails_before_any_setting_and_leaves_nothing(self, workspace):
        """An experiment holding what cannot be pickled fails before any setting runs in
        workers (one worker by default), leaves no half-written file, and still runs
        with engine="inline", which the error names."""
        space = workspace.load("unshippable", UNSHIPPABLE).Unshippable()
        with pytest.raises(TypeError, match="pickle"):
            space.run_all(num_proc=2, display=False)
        folder = workspace.folder("unshippable", "Unshippable")
        assert not (folder / ".run").exists()
        assert space.plan().new == [0, 1]
        with pytest.raises(TypeError, match="run in this process with engine='inline'"):
            space.run_all(display=False)
        table = space.run_all(engine="inline", display=False)
        assert table["status"].to_list() == ["completed", "completed"]


# One setting that does nothing: for what happens before any setting runs.
SMALL = """
from superparams import Experiment, search

class Small(Experiment):
    n: int = search(1)

    def run(self):
        return {"n": self.n}
"""


class TestMissingExtras:
    @pytest.mark.parametrize(
        ("name", "needs", "extra"),
        [(n, needs, extra) for n, (_, needs, extra) in _ENGINES.items() if extra],
    )
    def test_an_engine_without_its_extra_is_one_line(self, tmp_path, name, needs, extra):
        """Without the library an engine needs, `--engine NAME` says what to install,
        exit code 2, and writes nothing."""
        write(tmp_path / "experiments/small.py", SMALL)
        code = (
            f"import sys; sys.modules[{needs!r}] = None\n"
            "from superparams._cli import main\n"
            f"sys.exit(main(['small.Small', '--engine', {name!r}]))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert done.stderr == (
            f"error: the {name} engine needs {needs}, which is not installed: "
            f"pip install 'superparams[{extra}]'\n"
        )
        assert not (tmp_path / "experiments/progress").exists()
