"""The runner on test doubles: a scripted executor in this process and a fake clock.

No worker process starts and no real time passes: each setting takes the seconds the
script says on :class:`FakeClock`, and the runner reads only that clock. The store is
the real one, in ``tmp_path``, so what is durable is what is in its record.
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from tests.conftest import Events

from superparams import Experiment, search
from superparams._api import results, store_of
from superparams._runner import COMMIT_INTERVAL, _Run
from superparams.events import (
    Event,
    RunStarted,
    RunStopping,
    SettingFailed,
    SettingFinished,
    SettingStarted,
)
from superparams.executors.testing import FakeClock, ScriptedExecutor

TRIES: Counter[int] = Counter()  # how many times each n's run() was called


class Flaky(Experiment):
    """Its setting n=2 fails its first ``failures`` tries (counted in TRIES)."""

    n: int = search(1, 2, 3)
    failures: int = 2

    def run(self) -> dict[str, int]:
        TRIES[self.n] += 1
        if self.n == 2 and TRIES[self.n] <= self.failures:
            msg = f"try {TRIES[self.n]} failed"
            raise RuntimeError(msg)
        return {"tries": TRIES[self.n]}


class Quick(Experiment):
    n: int = search(*range(12))

    def run(self) -> dict[str, int]:
        return {"n2": 2 * self.n}


@pytest.fixture(autouse=True)
def no_tries() -> Iterator[None]:
    TRIES.clear()
    yield
    TRIES.clear()


def execute(
    space: Any,
    folder: Path,
    engine: ScriptedExecutor,
    clock: FakeClock,
    *subscribers: Callable[[Event], None],
    retries: int = 0,
) -> _Run:
    """Run ``space`` as run_all does, with ``engine`` and ``clock``; the finished run."""
    store = store_of(space, folder)
    with store:
        stored = store.plan(space)
        run = _Run(
            space, store, engine, list(subscribers), timeout=None, retries=retries, clock=clock
        )
        run.execute(stored, stored.to_run())
    return run


def outcomes(folder: Path) -> list[tuple[str, int, str]]:
    """The outcome lines of the record: (id, attempt, status), in the order written."""
    lines = [json.loads(line) for line in (folder / "record.jsonl").read_text().splitlines()]
    return [(x["id"], x["attempt"], x["status"]) for x in lines if x["event"] == "outcome"]


class TestRetries:
    def test_a_setting_failing_twice_completes_on_its_third_attempt(self, tmp_path):
        """With retries=2 a setting that fails twice completes on attempt 3: each attempt is
        recorded, and each failure says it will be retried."""
        clock, space = FakeClock(), Flaky()
        engine = ScriptedExecutor(2, clock=clock, seconds=1.0)
        events = Events()
        run = execute(space, tmp_path, engine, clock, events, retries=2)
        table = results(space, folder=tmp_path)
        assert table["status"].to_list() == ["completed"] * 3
        assert table["attempt"].to_list() == [1, 3, 1]
        assert table["tries"].to_list() == [1, 3, 1]
        flaky = space[1].id
        assert [(e.attempt, e.will_retry) for e in events.of(SettingFailed)] == [
            (1, True),
            (2, True),
        ]
        assert [e.attempt for e in events.of(SettingStarted) if e.id == flaky] == [1, 2, 3]
        assert [o for o in outcomes(tmp_path) if o[0] == flaky] == [
            (flaky, 1, "failed"),
            (flaky, 2, "failed"),
            (flaky, 3, "completed"),
        ]
        assert (run.completed, run.failed, run.remaining) == (3, 0, 0)

    def test_retries_run_out(self, tmp_path):
        """A setting that keeps failing is tried 1 + retries times, then counts as failed
        with its last error."""
        clock, space = FakeClock(), Flaky(failures=5)
        events = Events()
        run = execute(space, tmp_path, ScriptedExecutor(2, clock=clock), clock, events, retries=2)
        failed = results(space, folder=tmp_path).row(1, named=True)
        assert (failed["status"], failed["attempt"]) == ("failed", 3)
        assert failed["error"] == "RuntimeError: try 3 failed"
        assert [e.will_retry for e in events.of(SettingFailed)] == [True, True, False]
        assert (run.completed, run.failed) == (2, 1)
        assert [f.id for f in run.failures] == [space[1].id]


def press_ctrl_c(times: int) -> Callable[[ScriptedExecutor], None]:
    """An on_wait hook: Ctrl-C (a real SIGINT to this process) at the first wait."""

    def on_wait(engine: ScriptedExecutor) -> None:
        if engine.calls.count("wait") == 1:
            for _ in range(times):
                signal.raise_signal(signal.SIGINT)

    return on_wait


class TestCtrlC:
    def test_the_first_drops_queued_work_and_lets_running_settings_finish(self, tmp_path):
        """On the first Ctrl-C the settings running finish and are stored; those the engine
        holds queued and those not handed over never start, and count as not run."""
        clock, space = FakeClock(), Quick()
        engine = ScriptedExecutor(2, queue=2, clock=clock, seconds=1.0, on_wait=press_ctrl_c(1))
        events = Events()
        run = execute(space, tmp_path, engine, clock, events)
        assert [position for position, _, _ in engine.ran] == [0, 1]
        assert engine.calls[:6] == ["start", "submit 0", "submit 1", "submit 2", "submit 3", "wait"]
        assert "drop_queued" in engine.calls
        assert "cancel" not in engine.calls
        assert not [c for c in engine.calls[6:] if c.startswith("submit")]
        (stopping,) = events.of(RunStopping)
        assert (stopping.graceful, stopping.signal) == (True, "SIGINT")
        assert {e.id for e in events.of(SettingFinished)} == {space[0].id, space[1].id}
        plan = space.plan(folder=tmp_path)
        assert plan.done == [0, 1]
        assert plan.new == list(range(2, 12))
        assert run.interrupted
        assert (run.completed, run.remaining) == (2, 10)

    def test_the_second_stops_running_settings(self, tmp_path):
        """A second Ctrl-C stops the running settings at once: nothing more is stored, and
        they are left interrupted, to run again."""
        clock, space = FakeClock(), Quick()
        engine = ScriptedExecutor(2, queue=2, clock=clock, seconds=1.0, on_wait=press_ctrl_c(2))
        events = Events()
        run = execute(space, tmp_path, engine, clock, events)
        assert "cancel" in engine.calls
        assert [e.graceful for e in events.of(RunStopping)] == [True, False]
        assert events.of(SettingFinished) == []
        plan = space.plan(folder=tmp_path)
        assert plan.interrupted == [0, 1]
        assert plan.done == []
        assert run.interrupted


class TestCommitBatching:
    @pytest.fixture
    def quick_run(self, tmp_path, monkeypatch):
        """Twelve settings on two workers, one finishing every 0.025 s of the fake clock;
        what each event found when it came, and how many times the record was synced."""
        clock, space = FakeClock(), Quick()
        engine = ScriptedExecutor(2, clock=clock, seconds=0.05, finish=1)
        record = tmp_path / "record.jsonl"
        syncs: list[float] = []
        fsync = os.fsync

        def counted(fd: int) -> None:
            if os.path.realpath(f"/proc/self/fd/{fd}") == os.path.realpath(record):
                syncs.append(clock())
            fsync(fd)

        monkeypatch.setattr(os, "fsync", counted)
        seen: list[tuple[float, Event, list[str], int]] = []  # time, event, durable, rows

        def look(event: Event) -> None:
            durable = [o[0] for o in outcomes(tmp_path)] if record.exists() else []
            parquet = pl.read_parquet(tmp_path / "results.parquet").height
            seen.append((clock(), event, durable, parquet))

        execute(space, tmp_path, engine, clock, look)
        return space, seen, syncs, tmp_path

    def test_outcomes_are_synced_and_reported_in_batches(self, quick_run):
        """While settings keep finishing, their outcomes are synced together, one fsync at
        most every COMMIT_INTERVAL of the run's clock, and reported after it: the first at
        once, then a batch each interval, the rest as soon as nothing runs."""
        space, seen, syncs, _ = quick_run
        reported = [(t, e) for t, e, _, _ in seen if isinstance(e, SettingFinished)]
        times = sorted({t for t, _ in reported})
        batches = [sum(1 for t, _ in reported if t == at) for at in times]
        assert batches == [1, 8, 3]
        assert sorted(e.id for _, e in reported) == sorted(s.id for s in space)
        # the first as it ends (0.05 s in), the next a COMMIT_INTERVAL later, the rest as
        # the last two end (0.3 s in), though less than an interval has passed
        began = seen[0][0]
        assert [round(t - began, 6) for t in times] == [0.05, round(0.05 + COMMIT_INTERVAL, 6), 0.3]
        assert syncs == times  # one fsync per batch, just before it is reported

    def test_reported_only_once_durable(self, quick_run):
        """Each setting is reported finished only once its outcome is in the record."""
        _, seen, _, _ = quick_run
        for _, event, durable, _ in seen:
            if isinstance(event, SettingFinished):
                assert event.id in durable

    def test_results_parquet_is_written_when_the_run_ends(self, quick_run):
        """results.parquet is not rewritten as batches are synced: during the run readers
        see what it held before (nothing, here); when the run ends, every setting."""
        space, seen, _, folder = quick_run
        assert isinstance(seen[0][1], RunStarted)
        assert {rows for _, _, _, rows in seen} == {0}
        table = pl.read_parquet(folder / "results.parquet")
        assert sorted(table["id"]) == sorted(s.id for s in space)
