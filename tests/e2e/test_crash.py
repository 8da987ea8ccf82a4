"""Real crashes of real runs: ``kill -9`` of the whole run, of the driver alone, Ctrl-C,
a segfault, the out-of-memory killer.

A script runs an experiment with ``num_proc=2`` in its own session; the test kills it at
some instant, looks at what it left, and runs the experiment again in this process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import COMMAND, environment, experiment, wait_for, with_group_killed, workers_of

from superparams.events import SettingStarted

# Settings sleep $PAUSE seconds (0 when run from the tests' own process); `slow` ones
# sleep $SLOW. The reporter notes every event, unbuffered, as the run emits it.
MANY = """
import json
import os
import time
from superparams import Experiment, search

class Many(Experiment):
    n: int = search(*range(60))

    def run(self):
        print(f"setting {self.n}", flush=True)
        slow = os.environ.get("SLOW")
        time.sleep(float(slow if slow and self.n >= 2 else os.environ.get("PAUSE", "0")))
        return {"square": self.n * self.n}

def reporter(path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def report(event):
        line = {
            "event": type(event).__name__,
            "id": getattr(event, "id", None),
            "label": getattr(event, "label", None),
        }
        os.write(fd, (json.dumps(line) + "\\n").encode())

    return report
"""

DRIVE = """
import sys
from superparams import search
from many import Many, reporter

space = Many(n=search(*range(int(sys.argv[1])))) if len(sys.argv) > 1 else Many()
num_proc = int(sys.argv[2]) if len(sys.argv) > 2 else 2
engine = sys.argv[3] if len(sys.argv) > 3 else None
space.run_all(
    num_proc=num_proc, engine=engine, display=False, subscribers=[reporter("events.jsonl")]
)
print("run finished")
"""


def record_lines(record: Path) -> list[dict]:
    """The whole lines of the record, as a reader after a crash sees them."""
    if not record.exists():
        return []
    data = record.read_bytes()
    lines = []
    for raw in data[: data.rfind(b"\n") + 1].splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    return lines


def outcomes(record: Path) -> list[str]:
    return [line["id"] for line in record_lines(record) if line["event"] == "outcome"]


def events(workspace, kind: str) -> list[dict]:
    path = workspace.root / "events.jsonl"
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
    return [line for line in lines if line["event"] == kind]


class Started:
    def __init__(self) -> None:
        self.ids: list[str] = []

    def __call__(self, event: object) -> None:
        if isinstance(event, SettingStarted):
            self.ids.append(event.id)


def written(workspace, **sources: str):
    """The workspace with ``experiments/<name>.py`` written for each source."""
    for name, source in sources.items():
        workspace.write(name, source)
    return workspace


@pytest.fixture
def many(workspace):
    return written(workspace, many=MANY, drive=DRIVE)


class TestKill9:
    @pytest.mark.parametrize("after", [0, 1, 12, 30])
    def test_nothing_reported_is_lost_and_the_next_run_resumes(self, many, after):
        """kill -9 of the whole run after `after` outcomes: every outcome in the record (and
        every one reported) is in the results and is not run again; what ran is left
        interrupted; the next run does the rest."""
        record = many.folder("many", "Many") / "record.jsonl"
        child = many.start("drive", PAUSE="0.01")
        if after == 0:
            wait_for(lambda: events(many, "SettingStarted"), "a setting to start")
        else:
            wait_for(lambda: len(outcomes(record)) >= after, f"{after} outcomes")
        with_group_killed(child)
        assert child.returncode == -signal.SIGKILL
        # Workers live in their own session; the kernel kills them as the driver dies.
        wait_for(lambda: workers_of(child.pid) == [], "the workers to die", timeout=5)

        done = set(outcomes(record))
        reported = {e["id"] for e in events(many, "SettingFinished")}
        assert reported <= done  # durable before reported
        starts = {line["id"] for line in record_lines(record) if line["event"] == "started"}
        in_flight = starts - done

        space = many.load("many").Many()
        ids = [s.id for s in space]
        table = space.results()
        status = dict(zip(table["id"], table["status"], strict=True))
        assert {i for i, s in status.items() if s == "completed"} == done
        assert {i for i, s in status.items() if s == "interrupted"} == in_flight
        assert "running" not in status.values()
        interrupted = table.filter(table["status"] == "interrupted")
        assert interrupted["n"].null_count() == 0  # shown with their parameters
        plan = space.plan()
        assert {ids[p] for p in plan.done} == done
        assert {ids[p] for p in plan.interrupted} == in_flight
        assert len(plan.new) == 60 - len(starts)

        started = Started()
        table = space.run_all(num_proc=2, display=False, subscribers=[started])
        assert set(started.ids) == set(ids) - done
        assert table["status"].to_list() == ["completed"] * 60
        assert table["square"].to_list() == [n * n for n in range(60)]
        finished = outcomes(record)
        assert sorted(finished) == sorted(ids)  # each setting completed exactly once

    def test_a_torn_last_line_after_a_kill(self, many):
        """A record whose last line a crash tore still resumes, losing nothing before it."""
        record = many.folder("many", "Many") / "record.jsonl"
        child = many.start("drive", PAUSE="0.01")
        wait_for(lambda: len(outcomes(record)) >= 5, "5 outcomes")
        with_group_killed(child)
        done = set(outcomes(record))
        with open(record, "ab") as f:
            f.write(b'{"event":"outcome","id":"deadbeefdeadbeef","label":"n=')
        space = many.load("many").Many()
        table = space.results()
        assert set(table.filter(table["status"] == "completed")["id"]) == done
        started = Started()
        table = space.run_all(num_proc=2, display=False, subscribers=[started])
        assert not done & set(started.ids)
        assert table["status"].to_list() == ["completed"] * 60
        assert record.read_bytes().endswith(b"\n")

    def test_workers_die_with_the_driver(self, many):
        """kill -9 of the driver alone takes its workers with it."""
        child = many.start("drive", PAUSE="0.05")
        wait_for(lambda: events(many, "SettingStarted"), "a setting to start")
        workers = wait_for(lambda: len(workers_of(child.pid)) == 2 and workers_of(child.pid), "2")
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        wait_for(lambda: not any(Path(f"/proc/{w}").exists() for w in workers), "workers to die")


def labels(workspace, kind: str) -> list[str]:
    return [e["label"] for e in events(workspace, kind)]


class TestCtrlC:
    def six(self, workspace):
        module = workspace.load("many")
        return module.Many(n=module.search(*range(6)))

    def test_once_lets_running_settings_finish(self, many):
        """The first Ctrl-C lets running settings finish and stores them, starts nothing
        more, and ends the script with KeyboardInterrupt."""
        child = many.start("drive", "6", SLOW="3")
        wait_for(lambda: len(labels(many, "SettingFinished")) == 2, "the quick settings")
        wait_for(lambda: len(labels(many, "SettingStarted")) == 4, "two slow settings to start")
        running = set(labels(many, "SettingStarted")) - {"n=0", "n=1"}
        os.killpg(child.pid, signal.SIGINT)  # as a terminal does: the whole group
        _, stderr = child.communicate(timeout=30)
        assert child.returncode != 0
        assert "KeyboardInterrupt" in stderr
        # Workers live in their own session; the kernel kills them as the driver dies.
        wait_for(lambda: workers_of(child.pid) == [], "the workers to die", timeout=5)
        assert labels(many, "SettingStarted")[4:] == []  # nothing started after Ctrl-C
        assert set(labels(many, "SettingFinished")) == {"n=0", "n=1", *running}
        space = self.six(many)
        table = space.results()
        assert set(table["label"]) == {"n=0", "n=1", *running}
        assert set(table["status"]) == {"completed"}
        plan = space.plan()
        assert len(plan.done) == 4
        assert len(plan.new) == 2
        assert plan.interrupted == []

    def test_twice_kills_running_settings(self, many):
        """A second Ctrl-C kills running settings and leaves them interrupted; what finished
        is kept."""
        child = many.start("drive", "6", SLOW="60")
        wait_for(lambda: len(labels(many, "SettingFinished")) == 2, "the quick settings")
        wait_for(lambda: len(labels(many, "SettingStarted")) == 4, "two slow settings to start")
        running = set(labels(many, "SettingStarted")) - {"n=0", "n=1"}
        workers = workers_of(child.pid)
        began = time.monotonic()
        os.killpg(child.pid, signal.SIGINT)
        wait_for(lambda: events(many, "RunStopping"), "the first Ctrl-C to be seen")
        os.killpg(child.pid, signal.SIGINT)
        _, stderr = child.communicate(timeout=30)
        assert time.monotonic() - began < 20  # not the 60 s the settings sleep
        assert child.returncode != 0
        assert "KeyboardInterrupt" in stderr
        assert not any(Path(f"/proc/{w}").exists() for w in workers)
        space = self.six(many)
        ids = [s.id for s in space]
        table = space.results()
        status = dict(zip(table["id"], table["status"], strict=True))
        assert status[ids[0]] == status[ids[1]] == "completed"
        interrupted = {ids[int(label[2:])] for label in running}
        assert {i for i, s in status.items() if s == "interrupted"} == interrupted
        assert len(status) == 4
        plan = space.plan()
        assert plan.done == [0, 1]
        assert {ids[p] for p in plan.interrupted} == interrupted
        assert len(plan.new) == 2
        assert sorted(labels(many, "SettingFinished")) == ["n=0", "n=1"]


class TestCtrlCInOneProcess:
    """With engine="inline" the setting runs in the script's own process, Ctrl-C and all."""

    def test_once_lets_the_running_setting_finish(self, many):
        """The first Ctrl-C lets the running setting finish and store, and runs no more."""
        child = many.start("drive", "4", "1", "inline", SLOW="1.5")
        wait_for(lambda: "n=2" in labels(many, "SettingStarted"), "a slow setting to start")
        os.killpg(child.pid, signal.SIGINT)
        _, stderr = child.communicate(timeout=30)
        assert child.returncode != 0
        assert "KeyboardInterrupt" in stderr
        plan = TestCtrlC().six(many).plan()
        assert plan.done == [0, 1, 2]
        assert plan.new == [3, 4, 5]

    def test_twice_interrupts_the_running_setting(self, many):
        """A second Ctrl-C interrupts the running setting, which is left interrupted."""
        child = many.start("drive", "4", "1", "inline", SLOW="60")
        wait_for(lambda: "n=2" in labels(many, "SettingStarted"), "a slow setting to start")
        began = time.monotonic()
        os.killpg(child.pid, signal.SIGINT)
        wait_for(lambda: events(many, "RunStopping"), "the first Ctrl-C to be seen")
        os.killpg(child.pid, signal.SIGINT)
        _, stderr = child.communicate(timeout=30)
        assert time.monotonic() - began < 20
        assert child.returncode != 0
        assert "KeyboardInterrupt" in stderr
        space = TestCtrlC().six(many)
        table = space.results()
        assert table.select("n", "status").rows() == [
            (0, "completed"),
            (1, "completed"),
            (2, "interrupted"),
        ]
        assert space.plan().interrupted == [2]


# Setting 1 ends the process it runs in: a segmentation fault, the SIGKILL that the
# out-of-memory killer sends, or (how="oom", in a memory cgroup) the killer itself.
CRASHES = """
import ctypes
import os
import signal
from superparams import Experiment, search

class Crashes(Experiment):
    n: int = search(0, 1, 2)
    how: str = "segfault"

    def run(self):
        if self.n == 1:
            if self.how == "segfault":
                ctypes.string_at(0)
            if self.how == "oom":  # memory it writes to, until the kernel says no more
                held = []
                while True:
                    held.append(b"x" * (32 << 20))
            os.kill(os.getpid(), signal.SIGKILL)
        return {"double": 2 * self.n}
"""

# Runs Crashes from Python as a user's script does: run_all(), with the engine named on
# the command line, if any; then prints each setting's status and cause.
CRASH_DRIVE = """
import sys
from crashes import Crashes

options = {"engine": sys.argv[2]} if len(sys.argv) > 2 else {}
table = Crashes(how=sys.argv[1]).run_all(display=True, **options).sort("n")
print(list(zip(table["status"], table["cause"])))
print(table["error"][1])
"""

DEATHS = {"segfault": signal.SIGSEGV, "kill": signal.SIGKILL}


@pytest.fixture
def crashes(workspace):
    return written(workspace, crashes=CRASHES, crash_drive=CRASH_DRIVE)


class TestCrashInOneProcess:
    """A setting that ends its process (a segfault, os._exit, the OOM killer's SIGKILL)
    fails that setting, not the run; only an in-process run (engine inline) dies with it,
    and the next run records the setting failed and runs the others."""

    @pytest.mark.parametrize("how", DEATHS)
    def test_run_all_with_no_num_proc_survives_it(self, crashes, how):
        """run_all() with no num_proc runs settings in a worker process: the dead setting
        fails, with the signal as its cause, and the others complete."""
        child = crashes.start("crash_drive", how)
        stdout, stderr = child.communicate(timeout=60)
        assert child.returncode == 0, stderr
        statuses, error = stdout.splitlines()
        assert statuses == str([("completed", None), ("failed", "killed"), ("completed", None)])
        assert error.startswith(f"worker process killed by {DEATHS[how].name}")

    @pytest.mark.parametrize("how", DEATHS)
    @pytest.mark.parametrize("where", ["python", "command"])
    def test_the_next_run_records_it_failed_and_runs_the_others(self, crashes, how, where):
        """engine="inline" (--engine inline) dies with the setting; the next run records
        that setting failed (cause killed, as it ran in-process), says so and that
        --rerun-failed runs it again, and runs the others; a third run has nothing to do."""

        def run() -> tuple[int, str, str]:
            if where == "python":
                child = crashes.start("crash_drive", how, "inline")
                stdout, stderr = child.communicate(timeout=60)
                return child.returncode, stdout, stderr
            done = experiment(
                "crashes.Crashes", "--how", how, "--engine", "inline", cwd=crashes.root
            )
            return done.returncode, done.stdout, done.stderr

        code, _, stderr = run()
        assert code == -DEATHS[how], stderr  # the process died with the setting
        code, _, stderr = run()
        assert code == (0 if where == "python" else 1), stderr
        said = " ".join(stderr.split())
        assert "n=1 was running in-process when the run's process died" in said, stderr
        assert "recorded as failed (killed); --rerun-failed runs it again" in said, stderr
        space = crashes.load("crashes").Crashes(how=how)
        table = space.results().sort("n")
        assert table.select("n", "status", "cause").rows() == [
            (0, "completed", None),
            (1, "failed", "killed"),
            (2, "completed", None),
        ]
        assert table["error"][1] == (
            "the run's process died while this setting ran in it (in-process, engine inline)"
        )
        assert space.plan().failed == [1]
        code, _, stderr = run()  # the record says it once: the setting is failed now
        assert "recorded as failed" not in stderr
        if where == "command":
            assert "a resume leaves it out (--rerun-failed runs it again)" in stderr
        again = experiment("crashes.Crashes", "--how", how, "--rerun-failed", cwd=crashes.root)
        assert "running 1 setting on 1 worker process" in again.stderr  # it is run again
        assert space.results().sort("n")["error"][1].startswith("worker process killed by")


@pytest.fixture
def memory_cgroup() -> Iterator[Path]:
    """A memory cgroup of 300 MB without swap, below this process's own (root only;
    CI runs as root); processes started in it meet the real out-of-memory killer."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("a memory cgroup needs root, and CI runs as root")
        pytest.skip("making a memory cgroup needs root (CI runs .ci/run as root)")
    own = next(
        line.split(":", 2)[2]
        for line in Path("/proc/self/cgroup").read_text().splitlines()
        if line.split(":")[1] == "memory"
    )
    group = Path(f"/sys/fs/cgroup/memory{own}") / f"superparams-oom-{os.getpid()}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text(str(300 << 20))
        with contextlib.suppress(OSError):  # no swap accounting: no swap to limit
            (group / "memory.memsw.limit_in_bytes").write_text(str(300 << 20))
        yield group
    finally:
        deadline = time.monotonic() + 10
        while True:
            try:
                group.rmdir()
                break
            except OSError:  # its last processes are still dying
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def in_group(group: Path, *command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``command`` to its end inside the cgroup ``group``."""

    def enter() -> None:
        (group / "cgroup.procs").write_text(str(os.getpid()))

    return subprocess.run(
        command,
        cwd=cwd,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        preexec_fn=enter,  # it only writes a file: safe in the child of a fork
    )


class TestOutOfMemory:
    """The real out-of-memory killer, in a memory cgroup, fails one setting, not the run."""

    def test_run_all_with_no_num_proc_survives_it(self, crashes, memory_cgroup):
        """run_all() with no num_proc loses only the worker the kernel killed: that
        setting fails, saying what killed it, and the others complete."""
        script = str(crashes.experiments / "crash_drive.py")
        done = in_group(memory_cgroup, sys.executable, script, "oom", cwd=crashes.root)
        assert done.returncode == 0, done.stderr
        statuses, error = done.stdout.splitlines()
        assert statuses == str([("completed", None), ("failed", "killed"), ("completed", None)])
        assert error.startswith("worker process killed by SIGKILL (the kernel's out-of-memory")

    def test_in_process_the_next_run_records_it_failed(self, crashes, memory_cgroup):
        """--engine inline dies with the setting the kernel killed it for; the next run
        records that setting failed (killed) and runs the others."""
        command = (str(COMMAND), "crashes.Crashes", "--how", "oom", "--engine", "inline")
        done = in_group(memory_cgroup, *command, cwd=crashes.root)
        assert done.returncode == -signal.SIGKILL, done.stderr
        again = in_group(memory_cgroup, *command, cwd=crashes.root)  # bounded, always
        assert "n=1 was running in-process when the run's process died" in again.stderr
        table = crashes.load("crashes").Crashes(how="oom").results().sort("n")
        assert table.select("n", "status", "cause").rows() == [
            (0, "completed", None),
            (1, "failed", "killed"),
            (2, "completed", None),
        ]
