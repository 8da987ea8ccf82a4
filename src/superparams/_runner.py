"""Plan, schedule, report: the loop between a space, an executor and the store.

The runner asks the store which settings are done, submits the rest to an executor,
records each outcome (durably, before reporting it), retries what may be retried, and
turns Ctrl-C into a clean stop. It prints nothing: it emits events
(:mod:`superparams.events`) to its subscribers, and imports neither rich nor argparse.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

from superparams._declared import declared
from superparams._experiment import setting_encodings
from superparams._outcome import DIED_IN_PROCESS, Outcome, Task
from superparams._space import labels_of
from superparams._store._plan import Plan
from superparams._store._record import describe, renamed
from superparams._store._workdir import empty, rooted
from superparams._store._writer import Store
from superparams._worker import RunStopped, unreadable
from superparams.errors import StoreWriteError
from superparams.events import (
    Event,
    Notice,
    RunFinished,
    RunStarted,
    RunStopping,
    SettingFailed,
    SettingFinished,
    SettingReported,
    SettingStarted,
)
from superparams.executors import Executor, Started

if TYPE_CHECKING:
    from superparams._experiment import Experiment
    from superparams._space import Space
    from superparams._store._logfile import SettingLog
    from superparams.stopping import Stopping

Subscriber = Callable[[Event], None]

# How long finished outcomes may wait to be synced (and reported) together: one fsync
# per batch, rather than one per setting.
COMMIT_INTERVAL = 0.2

# The signals that stop a run: Ctrl-C, what a scheduler sends to preempt or cancel a job
# (Slurm, docker stop, systemd, timeout), and what a closed ssh session sends.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
# After a first SIGTERM or SIGHUP, running settings get this long to finish before they
# are stopped; a scheduler kills the job soon after (Slurm's default KillWait is 30 s).
# SUPERPARAMS_STOP_GRACE, in seconds, changes it.
STOP_GRACE = 25.0


def run(
    space: Space[Any],
    store: Store,
    executor: Executor,
    subscribers: list[Subscriber],
    *,
    stored: Plan,
    positions: list[int],
    timeout: float | None = None,
    retries: int = 0,
    notices: Sequence[str] = (),
    fresh: Collection[str] = (),
    stopping: Stopping | None = None,
    feed: Feed | None = None,
) -> None:
    """Run the settings of ``space`` at ``positions`` on ``executor``, recording each in
    ``store`` (open, and locked by the caller) and telling ``subscribers`` as it goes.

    ``stored`` is what the store held before, for the run's first and last events;
    ``notices`` are said first. The settings in ``fresh`` (ids) start fresh: each one's
    folder of its own is emptied before its first attempt is handed to the engine, and
    the rows its earlier attempts reported are replaced; a failed or interrupted setting
    not in ``fresh`` keeps them. ``stopping`` holds the run's stop rules: see
    :attr:`_Run.stopping`. ``feed`` gives more settings while the run runs, once those
    at ``positions`` are all handed to the engine (see :class:`Feed`).

    Raises:
        StoreWriteError: the store could not be written; the run stopped there.
        KeyboardInterrupt: after Ctrl-C (or SIGTERM, SIGHUP), once everything finished
            has been stored.
    """
    work = _Run(space, store, executor, subscribers, timeout=timeout, retries=retries)
    work.fresh = set(fresh)
    work.stopping = stopping
    work.feed = feed
    for text in notices:
        work.emit(Notice(time.time(), text))
    work.record_died(stored)
    work.execute(stored, positions, fresh=fresh)
    if work.write_error is not None:
        raise work.write_error
    try:
        finished = work.finished_event(stored, positions)
    except KeyboardInterrupt:  # a signal while results.parquet was brought up to date
        work.interrupted = True
        finished = work.finished_event(stored, positions, compacted=False)
    work.emit(finished)
    if work.interrupted:
        raise KeyboardInterrupt


@dataclass(frozen=True)
class Proposed:
    """A setting a :class:`Feed` gives a run: not in the space the engine was given, but
    at ``position`` in it once ``values`` are set on its fields."""

    setting: Experiment
    id: str
    position: int
    values: tuple[tuple[str, Any], ...]


class Feed(Protocol):
    """Settings a run takes while it runs: an adaptive search's proposals, each made
    once the settings before it have ended. The run asks for more whenever it could
    start a setting and has none left of its own, and tells the feed of every setting
    that ends for good; it ends when nothing runs and the feed gives nothing."""

    #: How many settings it expects to give, for the counts the run starts with.
    expected: int

    def more(self) -> list[Proposed]:
        """Settings to run now; none while what comes next waits on settings running."""
        ...

    def ended(self, sid: str, outcome: Outcome, rows: list[dict[str, Any]]) -> None:
        """The setting ``sid`` ended for good (completed, or failed with no retry
        left): its outcome, and every row it reported or returned, in order."""
        ...


@dataclass
class _InFlight:
    task: Task  # its first attempt in this run
    label: str
    described: dict[str, Any]  # label, parameters and encodings, made once
    # The rows it reported since it last started fresh, as [attempt, row] pairs: of
    # earlier runs (failed, interrupted), earlier attempts, and the one running now.
    reported: list[list[Any]]


class _Run:
    """One run's state: what is pending, in flight, finished, and how to stop."""

    def __init__(
        self,
        space: Space[Any],
        store: Store,
        executor: Executor,
        subscribers: list[Subscriber],
        *,
        timeout: float | None,
        retries: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.space, self.store, self.executor = space, store, executor
        self.subscribers = subscribers
        self.timeout, self.retries = timeout, retries
        self.inflight: dict[str, _InFlight] = {}
        self.unreported: list[Event] = []
        self.completed = 0
        self.failed = 0
        self.failures: list[SettingFailed] = []
        self.stops = 0  # Ctrl-C presses (and SIGTERM, SIGHUP)
        self._grace: threading.Timer | None = None
        self.interrupted = False
        self.remaining = 0
        self.queued: set[str] = set()  # ids left in an engine's queue, not ended here
        self.write_error: StoreWriteError | None = None  # the store could not be written
        self.clock = clock  # seconds since the epoch: event times, batching (tests fake it)
        self.began = clock()
        self.committed = -math.inf  # when the last batch was synced, by the clock
        self.carried: dict[str, list[list[Any]]] = {}  # rows of earlier runs, by id
        self.reports: list[Event] = []  # reported rows written, not yet synced
        self.fresh: set[str] = set()  # ids to start fresh: their workdirs are emptied first
        # Settings started in this process (engine inline) with no outcome yet: id -> attempt.
        self.open_in_process: dict[str, int] = {}
        # The stop rules, if any: for each row a setting reports, the driver asks
        # self.stopping.reported(id, row); a rule's name back means report() raises
        # StoppedEarly in the setting (see superparams.stopping).
        self.stopping: Stopping | None = None
        # Keys run() returned that name a column superparams fills, and the column each
        # is stored in instead (see superparams._store.renamed): the summary says so.
        self.renamed: dict[str, str] = {}
        self.feed: Feed | None = None  # more settings, given while the run runs
        self.proposed: deque[Proposed] = deque()  # given by the feed, not submitted yet

    def emit(self, event: Event) -> None:
        for subscriber in self.subscribers:
            subscriber(event)

    # -- the loop ----------------------------------------------------------------------

    def execute(self, stored: Plan, positions: list[int], *, fresh: Collection[str] = ()) -> None:
        from superparams._experiment import Experiment

        experiment = self.space.experiment_class
        expected = self.feed.expected if self.feed is not None else 0
        self.emit(
            RunStarted(
                self.clock(),
                experiment=experiment.__name__,
                folder=self.store.folder,
                total=len(stored.ids) + expected,
                completed=len(stored.done),
                failed=len(stored.failed),
                interrupted=len(stored.interrupted),
                new=len(stored.new),
                stale=len(stored.stale),
                to_run=len(positions) + expected,
                outdated=_left_out(stored.outdated, positions),
                environment_changes=tuple(stored.env_text())
                if _left_out(stored.env_outdated, positions)
                else (),
                num_proc=self.executor.num_proc,
                engine=self.executor.name,
                overview=str(self.space) if isinstance(self.space, Experiment) else "",
            )
        )
        if not positions and self.feed is None:
            return
        # What a failed or interrupted setting reported stays its own, unless it starts fresh.
        again = {
            stored.ids[p] for p in set(stored.failed + stored.interrupted).intersection(positions)
        }
        if again - set(fresh):
            self.carried = self.store.reported_rows(again - set(fresh))
        pending = deque(positions)
        previous = _catch_interrupts(self._interrupt)
        dropped = False
        try:
            # Inside the try: a base that cannot be pickled still ends the run cleanly.
            self.executor.reports = self
            self.executor.folder = self.store.folder
            self.executor.start(rooted(self.space, self.store.folder), self._started)
            while pending or self.proposed or self.executor.busy or self.feed is not None:
                if self.stops and not dropped:  # not in the handler: it may interrupt a send
                    self.executor.drop_queued()
                    dropped = True
                free = self.executor.free
                while free > 0 and not self.stops and (pending or self._fed()):
                    if pending:
                        position = pending.popleft()
                        task = Task(position, stored.ids[position], 1, self.timeout)
                        self._submit(self.space[position], task)  # a rerun is no retry
                    else:
                        given = self.proposed.popleft()
                        task = Task(given.position, given.id, 1, self.timeout, given.values)
                        self._submit(given.setting, task)
                    free -= 1
                if not self.executor.busy and (self.stops or not (pending or self.proposed)):
                    break  # stopped, or the feed waits on nothing that runs: all done
                # Short enough that the first Ctrl-C is acted on at once (PEP 475 resumes
                # an interrupted wait), long enough to cost nothing while settings run.
                wait = COMMIT_INTERVAL if self.unreported else 0.25
                for outcome in self.executor.wait(wait):
                    self._record(outcome)
                if self.write_error is not None:  # from _started, called by the executor
                    raise self.write_error
                waited = self.clock() - self.committed
                due = not 0 <= waited < COMMIT_INTERVAL  # or the clock was set back
                if self.unreported and (due or not self.executor.busy):
                    self._report()
        except KeyboardInterrupt:
            self.emit(RunStopping(self.clock(), graceful=False))
            self.executor.cancel()
            self.stops = max(self.stops, 2)
        except StoreWriteError as error:  # nothing more can be recorded: stop at once
            self.write_error = self.write_error or error
            self.executor.cancel()
        finally:
            if self._grace is not None:
                self._grace.cancel()
            _restore_interrupts(previous)
            self.executor.shutdown()
            self._left_interrupted()
            self._report()
        self.remaining = len(pending) + len(self.proposed) + len(self.inflight) - len(self.queued)
        self.interrupted = self.stops > 0

    def _left_interrupted(self) -> None:
        """The settings started in this process that end with no outcome while the run
        lives on (stopped, or an exception let through for the debugger) stay
        interrupted: the record says so, or the next run would take their process for
        dead (see :meth:`record_died`)."""
        for sid, attempt in self.open_in_process.items():
            try:
                self.store.interrupted(sid, attempt)
            except StoreWriteError as error:
                self.write_error = self.write_error or error
                break
        self.open_in_process.clear()

    def record_died(self, stored: Plan) -> None:
        """Record as failed the settings an earlier run left running in its own process
        when that process died (``stored.unrecorded``), and say so: a resume leaves them
        out, as they would end this run too."""
        if not stored.unrecorded:
            return
        labels = []
        for position in stored.unrecorded:
            setting: Experiment = self.space[position]
            sid = stored.ids[position]
            described = describe(setting.label, _params(setting), setting_encodings(setting))
            now = self.clock()
            outcome = Outcome.failed(
                Task(position, sid, 1), "killed", DIED_IN_PROCESS, worker=0, since=now
            )
            reported = self.store.reported_rows({sid}).get(sid)
            log = self.store.append(outcome, described, reported)
            labels.append(setting.label)
            assert outcome.failure is not None
            self.failed += 1  # this run records it: its summary and exit code count it
            self.failures.append(
                SettingFailed(now, sid, setting.label, 1, 0, 0.0, outcome.failure, log)
            )
        self.store.commit()
        one = len(labels) == 1
        shown = ", ".join(labels[:5]) + (f" and {len(labels) - 5} more" if len(labels) > 5 else "")
        text = (
            f"{shown} {'was' if one else 'were'} running in-process when the run's process "
            f"died (a segfault, os._exit, a kill): recorded as failed "
            f"(killed); --rerun-failed runs {'it' if one else 'them'} again"
        )
        self.emit(Notice(self.clock(), text))

    def _fed(self) -> bool:
        """Whether a setting the feed gave waits to be submitted, asking it for more."""
        if not self.proposed and self.feed is not None:
            self.proposed.extend(self.feed.more())
        return bool(self.proposed)

    def _submit(self, setting: Experiment, task: Task) -> None:
        """Hand a setting's first attempt in this run to the engine."""
        sid = task.id
        setting.__dict__["_sp_id"] = sid  # known from the plan: no need to hash it again
        label = setting.label
        described = describe(label, _params(setting), setting_encodings(setting))
        carried = list(self.carried.get(sid, ()))
        self.inflight[sid] = _InFlight(task, label, described, carried)
        if sid in self.fresh:  # before the engine has it: run() finds
            empty(self.store.folder, sid)  # its workdir empty (a retry keeps it)
        self.executor.submit(task)

    def _started(self, started: Started) -> SettingLog | None:
        """Record a start; the setting's log, for the engine to write what it prints."""
        task = started.task
        info = self.inflight[task.id]
        try:
            if started.queued is not None:  # in an engine's queue, to run without this driver
                where = started.queued
                self.store.queued(task.id, task.attempt, where.job, info.described, where.engine)
                self.queued.add(task.id)
                return None
            if started.released:  # the engine let go of it: as it was before it was queued
                self.store.queued(task.id, task.attempt, "", info.described, self.executor.name)
                self.queued.discard(task.id)
                return None
            in_process = self.executor.in_process
            log = self.store.started(
                task.id,
                task.attempt,
                started.worker,
                info.described,
                info.reported,
                in_process=in_process,
            )
            if in_process:
                self.open_in_process[task.id] = task.attempt
        except StoreWriteError as error:  # raised in the loop, not inside the executor
            self.write_error = self.write_error or error
            return None
        self.emit(
            SettingStarted(
                started.time, task.id, info.label, task.attempt, started.worker, log.path
            )
        )
        return log

    def _record(self, outcome: Outcome) -> None:
        info = self.inflight[outcome.id]
        if outcome.failure is None or outcome.failure.cause != "interrupted":
            self.open_in_process.pop(outcome.id, None)
        if outcome.failure is not None and outcome.failure.cause == "interrupted":
            self.stops = max(self.stops, 2)  # Ctrl-C inside an in-process setting
            return  # stays 'started' in the record: interrupted
        failure = unreadable(outcome)  # rows an engine's worker sent and none could load
        if failure is not None:
            outcome.rows, outcome.reported, outcome.failure = [], [], failure
        if outcome.reported:  # from an engine that cannot stream them
            info.reported += [[outcome.attempt, row] for row in outcome.reported]
        params = info.described["params"]
        for row in (*outcome.rows, *outcome.reported):
            self.renamed.update(renamed(row, params))
        log = self.store.append(outcome, info.described, info.reported)
        self.queued.discard(outcome.id)  # queued before, ended now: collected
        seconds = outcome.finished - outcome.started
        if outcome.failure is None:
            del self.inflight[outcome.id]
            self.completed += 1
            last = outcome.rows[-1] if outcome.rows else {}  # where a run of epochs ended
            event: Event = SettingFinished(
                outcome.finished,
                outcome.id,
                info.label,
                outcome.attempt,
                outcome.worker,
                seconds,
                last,
                log,
            )
        else:
            retry = outcome.attempt - info.task.attempt < self.retries and not self.stops
            event = SettingFailed(
                outcome.finished,
                outcome.id,
                info.label,
                outcome.attempt,
                outcome.worker,
                seconds,
                outcome.failure,
                log,
                will_retry=retry,
            )
            if retry:
                self.executor.submit(dataclasses.replace(info.task, attempt=outcome.attempt + 1))
            else:
                del self.inflight[outcome.id]
                self.failed += 1
                self.failures.append(event)
        self.unreported.append(event)
        if self.feed is not None and outcome.id not in self.inflight:  # ended for good
            rows = [row for _, row in info.reported]
            self.feed.ended(outcome.id, outcome, [*rows, *outcome.rows])

    # -- rows reported while settings run (see executors.Reports) -----------------------

    def add(self, task: Task, row: dict[str, Any]) -> str | None:
        """Write a row a running setting reported; durable at the next :meth:`commit`.

        What it returns goes back to the setting with the acknowledgement: None to go on,
        or the name of the stop rule (``run_all(stop=...)``) that ends the setting here.
        """
        info = self.inflight.get(task.id)
        if info is None:  # not this run's (it cannot be): dropped, never stored
            return None
        self.store.report(task.id, task.attempt, [row])
        self.renamed.update(renamed(row, info.described["params"]))
        info.reported.append([task.attempt, row])
        self.reports.append(SettingReported(self.clock(), task.id, row))
        if self.stopping is None:
            return None
        return self.stopping.reported(task.id, row)

    def commit(self) -> None:
        """Make the rows written so far durable (one fsync for all), then say so."""
        self.store.commit()
        events, self.reports = self.reports, []
        for event in events:
            self.emit(event)

    def _report(self) -> None:
        """Sync what was recorded, then tell the subscribers: durable before reported."""
        try:
            self.store.commit()
        except StoreWriteError as error:
            self.write_error = self.write_error or error
            self.unreported = []  # not durable: never reported done
            return
        self.committed = self.clock()
        events, self.unreported = self.unreported, []
        for event in events:
            self.emit(event)

    def _interrupt(self, signum: int) -> None:
        self.stops += 1
        if self.stops > 1:
            raise RunStopped
        name = signal.Signals(signum).name
        grace = None if signum == signal.SIGINT else _stop_grace()
        self.emit(RunStopping(self.clock(), graceful=True, signal=name, grace=grace))
        if grace is not None:  # then the same signal again, as a second Ctrl-C
            # A real signal to the main thread, so a setting asleep in it wakes to it.
            main = threading.main_thread().ident
            self._grace = threading.Timer(grace, signal.pthread_kill, (main, signum))
            self._grace.daemon = True
            self._grace.start()

    def finished_event(
        self, stored: Plan, positions: list[int], *, compacted: bool = True
    ) -> RunFinished:
        """How the run ended. It brings results.parquet up to date first, for the notes
        on what the table holds; ``compacted`` False, after a signal stopped that, says
        so instead (the record holds every result)."""
        skipped = _left_out(stored.done, positions)  # completed before, not run again
        if compacted:
            clashes = self.store.clashes(labels_of(self.space, stored.ids))
        else:
            clashes = [
                f"stopped while writing {self.store.results_path.name}: every result is in "
                f"{self.store.record_path.name}, and the next command brings it up to date"
            ]
        return RunFinished(
            self.clock(),
            completed=self.completed,
            failed=self.failed,
            skipped=skipped,
            remaining=self.remaining,
            queued=len(self.queued),
            seconds=self.clock() - self.began,
            interrupted=self.interrupted,
            results=self.store.results_path,
            failures=tuple(self.failures),
            notes=(
                *clashes,
                *(
                    f"run() returned {key!r}, the name of a column superparams fills; it is "
                    f"stored as {kept!r}"
                    for key, kept in self.renamed.items()
                ),
            ),
        )


def _left_out(some: list[int], positions: list[int]) -> int:
    """How many of ``some`` positions are not among ``positions`` (made no set of these:
    every setting's position, for a run of them all)."""
    if not some:
        return 0
    chosen = set(some)
    return len(chosen) - len(chosen.intersection(positions))


def _params(setting: Experiment) -> dict[str, Any]:
    """A setting's parameter values as table columns; a nested experiment is its fields'
    dotted columns (``model.width``)."""
    from superparams._experiment import Experiment

    info = declared(type(setting))
    out: dict[str, Any] = {}
    for name in (*info.fields, *(n for n, _ in info.derived)):
        value = setting.__dict__[name]
        if isinstance(value, Experiment):
            out.update({f"{name}.{k}": v for k, v in _params(value).items()})
        else:
            out[name] = _column_value(value)
    return out


class _Array(Protocol):
    """What an array (numpy's, torch's, jax's) shows of itself in a column."""

    @property
    def shape(self) -> Iterable[int]: ...

    @property
    def dtype(self) -> object: ...


def _is_array(value: object) -> TypeGuard[_Array]:
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _column_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and all(
        v is None or isinstance(v, (bool, int, float, str)) for v in value
    ):
        return list(value)
    if _is_array(value):
        return f"array{tuple(value.shape)} {value.dtype}"
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        from superparams._store._record import dumps

        with contextlib.suppress(TypeError, ValueError):  # keys JSON cannot hold
            return dumps(value)
    import enum

    if isinstance(value, enum.Enum):
        return value.name
    text = repr(value)
    return text if len(text) <= 200 else text[:199] + "…"


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt, as Ctrl-C does, for the whole of a
    run: while the store is opened and brought up to date, planned, and closed, so a
    scheduler's signal there ends the run as Ctrl-C would, with what is stored said
    (the loop that runs settings handles them itself, gracefully: see :func:`run`).
    Outside the main thread, where no handler can be set, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, interrupt) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        _restore_interrupts(previous)


def _catch_interrupts(handler: Callable[[int], None]) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}

    def on_signal(signum: int, frame: object) -> None:
        handler(signum)

    return {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}


def _restore_interrupts(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _stop_grace() -> float:
    text = os.environ.get("SUPERPARAMS_STOP_GRACE", "")
    try:
        grace = float(text) if text else STOP_GRACE
    except ValueError:
        grace = STOP_GRACE  # a typo in the variable must not cost the run its stop
    return grace if grace >= 0 else STOP_GRACE
