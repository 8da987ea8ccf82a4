"""The contract of the executor seam, as tests any engine can run: :class:`ExecutorContract`.

Each test runs one small experiment through the ``experiment`` command on the engine
under test and checks a promise the runner relies on (every outcome once, a failure
kept to its setting, ranks, logs, reported rows, the base shipped once per worker,
Ctrl-C once and twice). An engine's test module subclasses it and gives the engine in
the ``engine`` fixture, which may start the engine's cluster first::

    import pytest
    from superparams.executors.testing import EngineUnderTest, ExecutorContract

    class TestMyEngine(ExecutorContract):
        @pytest.fixture
        def engine(self):
            return EngineUnderTest("mine")

It needs pytest, which it imports; :mod:`superparams.executors.testing` loads it only
when a test asks for it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from superparams.executors import get_executor

# A field's value that notes each unpickling of it as a line of unpickled.txt, the
# process's pid: what crosses to workers, and how often.
BIG = """
import os
import time
from pathlib import Path
from superparams import Experiment, search

COUNT = Path(__file__).with_name("unpickled.txt")

def _rebuild(payload):
    with open(COUNT, "a") as f:
        f.write(f"{os.getpid()}\\n")
    return Big(payload)

class Big:
    def __init__(self, payload):
        self.payload = payload

    def __superparams_id__(self):
        return "big-v1"

    def __reduce__(self):
        return (_rebuild, (self.payload,))
"""

# Each setting says its rank; n=3 raises or kills its worker as `how` says; from n=2 on
# a setting sleeps $NAP seconds. Every unpickling of its data is noted in unpickled.txt.
WORK = (
    BIG
    + """
class Work(Experiment):
    data: Big = Big(b"x" * 100_000)
    n: int = search(*range(6))
    how: str = "well"

    def run(self):
        print(f"setting n={self.n} rank {self.rank} of {self.n_proc}", flush=True)
        if self.n == 3 and self.how == "raises":
            raise ValueError("n=3 is wrong")
        if self.n == 3 and self.how == "dies":
            os._exit(7)
        if self.n == 3 and self.how == "segfaults":
            import ctypes

            ctypes.string_at(0)  # reads address 0: the process dies of SIGSEGV
        if self.how in ("streams", "streams then dies"):  # a row a step, as training does
            for step in range(12):
                self.report(step=step, loss=self.n * step)
                if step == 3 and self.how == "streams then dies":
                    os._exit(7)
                time.sleep(float(os.environ.get("STEP", "0.3")))
            return {"pid": os.getpid(), "rank": self.rank, "n_proc": self.n_proc}
        if self.how == "reports":  # two rows reported; n=3 then fails
            self.report(step=0)
            self.report(step=1)
            if self.n == 3:
                raise ValueError("n=3 is wrong")
        time.sleep(float(os.environ.get("NAP", "0")) if self.n >= 2 else 0)
        return {"pid": os.getpid(), "rank": self.rank, "n_proc": self.n_proc}
"""
)


@dataclass
class EngineUnderTest:
    """The engine a contract test runs on, and how the ``experiment`` command reaches it.

    ``name`` is what ``--engine`` takes; ``prefix`` goes before the command (a network
    namespace, say); ``env`` is added to the command's environment; ``options`` are the
    command-line arguments that make six settings share at most two worker processes
    with ``-j 2`` (``["--engine-option", "per_job=3"]`` where each job is a process);
    ``streams`` whether it stores reported rows as they come.
    """

    name: str
    prefix: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    options: tuple[str, ...] = ()
    #: Whether the engine stores rows as they are reported (``report()`` returns once the
    #: row is durable, a lost worker keeps them, stop rules act midway); one that hands
    #: them back with the outcome says False, and the contract's tests of that skip.
    streams: bool = True

    def command(self) -> list[str]:
        """The ``experiment`` command beside this Python, after :attr:`prefix`."""
        found = Path(sys.executable).with_name("experiment")
        run = [str(found)] if found.exists() else [sys.executable, "-m", "superparams"]
        return [*self.prefix, *run]

    def environment(self, **settings: str) -> dict[str, str]:
        """The command's environment, with ``settings`` for the settings' processes too
        (an engine whose workers keep an environment of their own passes them on)."""
        env = dict(os.environ)
        env.pop("SUPERPARAMS_PROGRESS", None)
        return {**env, "PYTHONUNBUFFERED": "1", **self.env, **settings}


class ExecutorContract:
    """What every engine must do: subclass it and give the ``engine`` fixture."""

    @pytest.fixture
    def engine(self) -> EngineUnderTest:
        """The engine under test: override it (and start its cluster there, if any)."""
        pytest.fail(f"{type(self).__name__} gives no engine: override the engine fixture")

    @pytest.fixture
    def project(self, tmp_path: Path) -> Path:
        """A user's project: the contract's experiment in ``experiments/work.py``."""
        path = tmp_path / "experiments" / "work.py"
        path.parent.mkdir(parents=True)
        path.write_text(textwrap.dedent(WORK))
        return tmp_path

    def test_every_outcome_arrives_once(self, project: Path, engine: EngineUnderTest) -> None:
        """Each setting's outcome is recorded exactly once, and all complete."""
        done = _run(project, engine)
        assert done.returncode == 0, done.stderr
        assert _table(project)["status"].to_list() == ["completed"] * 6
        assert len(_outcome_lines(project)) == 6

    def test_an_exception_fails_one_setting(self, project: Path, engine: EngineUnderTest) -> None:
        """run() raising fails that setting, with its error and traceback; the rest run."""
        done = _run(project, engine, "--how", "raises")
        assert done.returncode == 1, done.stderr
        rows = _table(project)
        assert rows["status"].to_list() == ["completed"] * 3 + ["failed"] + ["completed"] * 2
        assert rows["error"][3] == "ValueError: n=3 is wrong"
        assert "n=3 is wrong" in rows["traceback"][3]

    def test_a_dead_worker_fails_the_setting_it_ran(
        self, project: Path, engine: EngineUnderTest
    ) -> None:
        """A setting that kills its worker fails with cause killed; the run goes on."""
        if _in_process(engine):
            pytest.skip("it runs settings in the run's own process: its death is the run's")
        done = _run(project, engine, "--how", "dies")
        assert done.returncode == 1, done.stderr
        rows = _table(project)
        assert rows["status"].to_list() == ["completed"] * 3 + ["failed"] + ["completed"] * 2
        assert rows["cause"][3] == "killed"

    def test_rank_and_n_proc(self, project: Path, engine: EngineUnderTest) -> None:
        """Every setting has a rank below n_proc; n_proc is the engine's parallelism."""
        done = _run(project, engine)
        assert done.returncode == 0, done.stderr
        rows = _table(project)
        n_proc = 1 if _in_process(engine) else 2
        assert set(rows["n_proc"]) == {n_proc}
        assert set(rows["rank"]) <= set(range(n_proc))

    def test_logs_reach_the_store(self, project: Path, engine: EngineUnderTest) -> None:
        """What a setting prints is in its log in the results folder."""
        done = _run(project, engine)
        assert done.returncode == 0, done.stderr
        rows = _table(project)
        for n, rank, log in zip(rows["n"], rows["rank"], rows["log"], strict=True):
            text = (_folder(project) / log).read_text()
            assert f"setting n={n} rank {rank} of " in text

    def test_reported_rows_reach_the_store(self, project: Path, engine: EngineUnderTest) -> None:
        """Rows a setting reports are stored, before what it returns; a setting that fails
        keeps them (an engine that cannot stream them delivers them with the outcome)."""
        import polars as pl

        done = _run(project, engine, "--how", "reports")
        assert done.returncode == 1, done.stderr
        rows = _table(project).sort("n", "step", nulls_last=True, maintain_order=True)
        assert rows["n"].to_list() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4, 5, 5, 5]
        assert rows["step"].to_list() == [0, 1, None] * 3 + [0, 1] + [0, 1, None] * 2
        kept = rows.filter(pl.col("n") == 3)
        assert kept["status"].to_list() == ["failed", "failed"]
        assert kept["error"].to_list() == ["ValueError: n=3 is wrong"] * 2

    def test_rows_reach_the_store_while_a_setting_runs(
        self, project: Path, engine: EngineUnderTest
    ) -> None:
        """The rows a setting reports are in the store while it still runs (so status and
        the view show its progress), and each is stored once."""
        _streams(engine)
        child = _start(project, engine, [*STREAMS, "--n", "1"], STEP="0.5")
        record = _folder(project) / "record.jsonl"

        def rows_before_the_end() -> bool:
            text = record.read_text() if record.exists() else ""
            return text.count('"event":"rows"') >= 3 and '"event":"outcome"' not in text

        try:
            _wait_for(rows_before_the_end, "three rows stored while the setting runs", 90)
        finally:
            _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert _table(project)["step"].drop_nulls().to_list() == list(range(12))

    def test_a_lost_worker_keeps_the_rows_it_reported(
        self, project: Path, engine: EngineUnderTest
    ) -> None:
        """A setting whose worker dies after reporting four rows fails with those rows:
        each was durable when report() returned."""
        _streams(engine)
        if _in_process(engine):
            pytest.skip("it runs settings in the run's own process: its death is the run's")
        done = _run(project, engine, "--n", "3", "--how", "streams then dies")
        assert done.returncode == 1, done.stderr
        rows = _table(project)
        assert rows["step"].to_list() == [0, 1, 2, 3]
        assert set(rows["status"]) == {"failed"}
        assert set(rows["cause"]) == {"killed"}

    def test_a_stop_rule_ends_a_setting_midway(
        self, project: Path, engine: EngineUnderTest
    ) -> None:
        """A rule given with --stop ends the setting that crosses it while it runs (at
        the report that crossed it, or soon after where the engine's word takes a look
        to arrive); the setting is completed with its rows, the rule named."""
        _streams(engine)
        done = _run(
            project, engine, "--n", "5", "--how", "streams", "--stop", "threshold(loss, above=10)"
        )
        assert done.returncode == 0, done.stderr
        rows = _table(project)
        assert set(rows["status"]) == {"completed"}
        assert 3 <= rows["step"].max() < 11, rows["step"].to_list()
        assert rows["stopped"].drop_nulls().to_list()[-1:] == ["threshold(loss)"]

    def test_the_base_reaches_a_worker_at_most_once(
        self, project: Path, engine: EngineUnderTest
    ) -> None:
        """The experiment's data is unpickled at most once per worker process."""
        done = _run(project, engine, *engine.options)
        assert done.returncode == 0, done.stderr
        count = project / "experiments/unpickled.txt"
        loads = count.read_text().split() if count.exists() else []
        assert len(loads) == len(set(loads)) <= (0 if _in_process(engine) else 2)

    def test_ctrl_c_once_then_twice(self, project: Path, engine: EngineUnderTest) -> None:
        """The first Ctrl-C starts nothing more and lets running settings go on; the
        second stops them, and they are left interrupted."""
        child = _start(project, engine, ["-j", "2"], NAP="60")
        running = 1 if _in_process(engine) else 2
        record = _folder(project) / "record.jsonl"

        def count(event: str) -> int:
            return record.read_text().count(f'"event":"{event}"') if record.exists() else 0

        _wait_for(
            lambda: count("outcome") == 2 and count("started") == 2 + running,
            "the slow settings to start",
        )
        os.killpg(child.pid, signal.SIGINT)
        time.sleep(1.0)
        assert count("started") == 2 + running  # nothing more started
        os.killpg(child.pid, signal.SIGINT)
        _, err = child.communicate(timeout=60)
        assert child.returncode == 130, err
        rows = _table(project)
        assert rows["status"].to_list() == ["completed"] * 2 + ["interrupted"] * running


STREAMS = ("--how", "streams")  # a row a step, 12 steps (see WORK)


def _streams(engine: EngineUnderTest) -> None:
    if not engine.streams:
        pytest.skip(f"the {engine.name} engine hands reported rows back with the outcome")


def _in_process(engine: EngineUnderTest) -> bool:
    return get_executor(engine.name).in_process


def _start(
    root: Path, engine: EngineUnderTest, args: list[str], **env: str
) -> subprocess.Popen[str]:
    """The command on the contract's experiment, started in a session of its own (so a
    test's Ctrl-C reaches it and its workers alone), with ``env`` for its settings."""
    return subprocess.Popen(
        [*engine.command(), "work.Work", "--engine", engine.name, *args],
        cwd=root,
        env=engine.environment(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def _run(root: Path, engine: EngineUnderTest, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*engine.command(), "work.Work", "--engine", engine.name, "-j", "2", *args],
        cwd=root,
        env=engine.environment(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _folder(root: Path) -> Path:
    return root / "experiments/progress/work/Work"


def _table(root: Path) -> Any:
    import polars as pl

    return pl.read_parquet(_folder(root) / "results.parquet").sort("n")


def _outcome_lines(root: Path) -> list[str]:
    record = (_folder(root) / "record.jsonl").read_text().splitlines()
    return [line for line in record if '"event":"outcome"' in line]


def _wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


__all__ = ["EngineUnderTest", "ExecutorContract"]
