"""Plan, schedule, report: the loop between a space, an executor and the store.

The runner asks the store which settings are done, submits the rest to an executor,
records each outcome (durably, before reporting it), retries what may be retried, and
turns Ctrl-C into a clean stop. It prints nothing: it emits events
(:mod:`superparams.events`) to its subscribers, and imports neither rich nor argparse.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superparams.errors import StoreWriteError
from superparams.events import (
    Event,
    Notice,
    RunFinished,
    RunStarted,
    RunStopping,
    SettingFailed,
    SettingFinished,
    SettingStarted,
)
from superparams.executors import GPU_UUID, Executor, Started, get_executor
from superparams.outcome import Outcome, Task
from superparams.space import DEFAULT_NUM_PROC
from superparams.store import Plan, Store, describe
from superparams.worker import RunStopped

if TYPE_CHECKING:
    import polars as pl

    from superparams._logfile import SettingLog
    from superparams.experiment import Experiment
    from superparams.space import Space

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


def plan(space: Space[Any], *, folder: Path | str | None = None) -> Plan:
    """What is stored for each setting of ``space``: done, failed, interrupted or new.

    A space that draws from distributions has no list of settings to plan: plan a
    sample of it (``space.sample(n, seed=...).plan()``); :class:`SearchSpaceError` says so.
    ``outdated`` lists the done settings made by another version of the experiment's
    code (see :mod:`superparams._code`).
    """
    from superparams._code import code_hash

    return Store.for_space(space, folder).plan(space, code_hash(space.experiment_class))


def results(space: Space[Any], *, folder: Path | str | None = None) -> pl.DataFrame:
    """The latest stored outcome of each setting of ``space``, in the space's order.

    A setting that returned several rows has several rows; one never run has none. A
    space that draws from distributions has no list of settings to select by: its
    results are every row stored for the experiment, in the order they were recorded.
    """
    table = Store.for_space(space, folder).table()
    if not space.enumerable:
        return table
    return _select(table, list(space._sp_ids()))


def clean(space: Space[Any], *, folder: Path | str | None = None) -> None:
    """Delete every stored result and log of the experiment ``space`` belongs to."""
    Store.for_space(space, folder).clean()


def _select(table: pl.DataFrame, ids: list[str]) -> pl.DataFrame:
    import polars as pl

    if table.is_empty() or not ids:
        return table.clear()
    order = pl.DataFrame({"id": ids}).unique(subset="id", keep="first", maintain_order=True)
    order = order.with_row_index("_order")
    picked = order.join(table, on="id", how="inner").sort("_order", maintain_order=True)
    return picked.drop("_order")


def run_all(
    space: Space[Any],
    num_proc: int | None = DEFAULT_NUM_PROC,
    *,
    gpus: Sequence[int | str] | None = None,
    only_failed: bool = False,
    fresh: bool = False,
    rerun_outdated: bool = False,
    timeout: float | None = None,
    retries: int = 0,
    folder: Path | str | None = None,
    engine: str | Executor | None = None,
    engine_options: Mapping[str, Any] | None = None,
    debug: bool = False,
    isolate: bool = False,
    display: bool | Subscriber = True,
    subscribers: Iterable[Subscriber] = (),
) -> pl.DataFrame:
    """Run every setting of ``space`` not completed before, and return the results.

    Args:
        num_proc: worker processes (default 1, or one per GPU given); 1 runs in this
            process (breakpoints work). None or -1 is one per core, -2 all cores but
            one, and so on; a count below 1 runs as 1 does, with a :class:`Notice`.
            Never more workers start than there are settings to run.
        gpus: device ids handed to workers round-robin through ``CUDA_VISIBLE_DEVICES``;
            with gpus, settings always run in worker processes.
        only_failed: run only the settings stored as failed.
        fresh: run every setting again, whatever is stored.
        rerun_outdated: also run again the completed settings that an earlier version
            of the experiment's code made (``plan().outdated``); without it they are
            kept, and the run says how many there are.
        timeout: seconds a setting may run before it fails with cause ``timeout``.
        retries: how many more times a failed setting is tried in this run.
        folder: where results go (default: ``progress/<module>/<Class>`` beside the
            experiment's file or notebook, see :func:`superparams._location.folder_for`);
            needed for a class that no file defines (``python -c``, a REPL, stdin).
        engine: an executor name (``"local"``, ``"inline"``, ``"dask"``) or instance.
        engine_options: the named engine's own keywords, e.g. ``{"address":
            "tcp://head:8786"}`` for Dask (text is read by the keyword's type).
        debug: run in this process and let the first exception through.
        isolate: run each setting in a new worker process of its own, for code that
            leaves its process in a state the next setting should not inherit.
        display: False for silence, True for plain progress lines on stderr, or a
            subscriber that shows the run.
        subscribers: more callables that receive every event.

    Raises:
        UsageError: ``num_proc`` is not a whole number or None; ``timeout`` is not a
            positive, finite number; a GPU id is neither an index from 0 nor a GPU
            UUID; no such engine; no ``folder`` for a class that no file or notebook
            defines.
        StoreConflictError: the folder holds another experiment's results.
        SearchSpaceError: the space draws from distributions (run a sample of it).
        StoreLockedError: another run is writing to the same folder.
        StoreWriteError: the store could not be written (no space left, read-only); what
            was stored before is safe, and a run after it resumes.
        KeyboardInterrupt: after Ctrl-C, once everything finished has been stored.
    """
    import polars as pl  # noqa: F401  # fail here, not after the run, if it is missing

    check_num_proc(num_proc)
    _check_timeout(timeout)
    _check_gpus(gpus)
    if isolate and (debug or engine not in (None, "local")):
        from superparams.errors import UsageError

        where = "debug=True" if debug else f"engine={engine!r}"
        msg = (
            "isolate=True runs each setting in a local worker process of its own, "
            f"and {where} does not; drop one of the two"
        )
        raise UsageError(msg)
    if not isinstance(engine, Executor):  # an unknown name or option: before anything starts
        get_executor(engine or "local").read_options(engine_options or {})
    elif engine_options:
        from superparams.errors import UsageError

        msg = "engine_options are for an engine given by name; this one is made already"
        raise UsageError(msg)
    if not space.enumerable:
        len(space)  # raises, saying to take a sample, before the store is made
    subs = list(subscribers)
    if display is True:
        from superparams.display import PlainDisplay

        subs.insert(0, PlainDisplay())
    elif callable(display):
        subs.insert(0, display)
    from superparams._code import code_version

    store = Store.for_space(space, folder)
    code = code_version(space.experiment_class)  # once per run: every line carries it
    store.stamp(code)
    with store:
        stored = store.plan(space, code.version)
        positions = stored.to_run(
            fresh=fresh, only_failed=only_failed, rerun_outdated=rerun_outdated
        )
        executor, notice = _executor(
            engine, num_proc, gpus, debug, len(positions), isolate=isolate, options=engine_options
        )
        run = _Run(space, store, executor, subs, timeout=timeout, retries=retries)
        if store.restored:
            run.emit(Notice(time.time(), _restored_text(store)))
        if notice:
            run.emit(Notice(time.time(), notice))
        run.execute(stored, positions)
    if run.write_error is not None:
        raise run.write_error
    run.emit(run.finished_event(stored, positions))
    if run.interrupted:
        raise KeyboardInterrupt
    return _select(store.table(), stored.ids)


def _restored_text(store: Store) -> str:
    n = store.restored
    return (
        f"{store.record_path.name} no longer held what {store.results_path.name} was made "
        f"from (cut short, emptied or an older copy): {n} stored setting{'s' if n != 1 else ''} "
        "written to it again, nothing lost"
    )


def check_num_proc(num_proc: object, flag: str = "num_proc") -> None:
    """Refuse a ``num_proc`` that is neither a whole number nor None (True, 2.0, "2")."""
    from superparams.errors import UsageError

    if num_proc is None or (isinstance(num_proc, int) and not isinstance(num_proc, bool)):
        return
    if not isinstance(num_proc, (bool, float, str)) and hasattr(num_proc, "__index__"):
        return  # a numpy integer
    msg = (
        f"{flag} expects a whole number of worker processes (None or -1: one per core), "
        f"got {num_proc!r}"
    )
    raise UsageError(msg)


def _check_timeout(timeout: object) -> None:
    """Refuse a timeout that is not a positive, finite number of seconds (inf, nan, 0)."""
    from superparams.errors import UsageError

    if timeout is None:
        return
    number = timeout if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) else 0
    if not (number > 0 and math.isfinite(number)):
        msg = (
            "timeout expects a positive, finite number of seconds (None for no limit), "
            f"got {timeout!r}"
        )
        raise UsageError(msg)


def _check_gpus(gpus: Sequence[int | str] | None) -> None:
    """Refuse GPU ids CUDA_VISIBLE_DEVICES does not take: indices from 0, or UUIDs."""
    import re

    from superparams.errors import UsageError

    for gpu in gpus or ():
        whole = hasattr(gpu, "__index__") and not isinstance(gpu, (bool, str))
        index = whole and gpu.__index__() >= 0  # type: ignore[union-attr]
        uuid = isinstance(gpu, str) and re.fullmatch(GPU_UUID, gpu)
        if not (index or uuid):
            msg = (
                "gpus expects GPU ids: indices from 0 ([0, 1]) or UUIDs "
                f"('GPU-...', 'MIG-...'), got {gpu!r}"
            )
            raise UsageError(msg)


def cores() -> int:
    """The cores this process may run on (its CPU affinity, where the system says)."""
    count = getattr(os, "process_cpu_count", None)  # Python 3.13
    if count is not None:
        return int(count() or 1)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def worker_count(
    num_proc: int | None, to_run: int, *, flag: str = "num_proc", equals: str = "="
) -> tuple[int, int, str]:
    """How many workers ``num_proc`` asks for, how many start, and a notice (or "").

    None and -1 are every core, -k every core but k - 1; a count below 1 is 1, with a
    notice that says so (``flag`` and ``equals`` spell the option in it: ``-j 0``).
    Never more workers start than there are settings to run.

    >>> worker_count(4, to_run=3)
    (4, 3, '')
    """
    n = cores()
    asked = n if num_proc is None else int(num_proc)
    if asked < 0:
        asked = n + 1 + asked
    notice = ""
    if asked < 1:
        one = f"running as {flag}{equals}1 does"
        if num_proc is not None and int(num_proc) < 0:
            notice = f"{flag}{equals}{num_proc} leaves less than one of the {n} cores: {one}"
        else:
            notice = (
                f"{flag}{equals}{num_proc} is less than one process: {one} "
                f"({flag}{equals}-1 uses all {n} cores)"
            )
        asked = 1
    return asked, min(asked, max(to_run, 1)), notice


def _executor(
    engine: str | Executor | None,
    num_proc: int | None,
    gpus: Sequence[int | str] | None,
    debug: bool,
    to_run: int,
    *,
    isolate: bool = False,
    options: Mapping[str, Any] | None = None,
) -> tuple[Executor, str]:
    if isinstance(engine, Executor):
        return engine, ""
    if num_proc is DEFAULT_NUM_PROC and gpus:
        num_proc = len(gpus)  # one worker per GPU
    asked, workers, notice = worker_count(num_proc, to_run)
    if isolate:
        from superparams.executors.local import LocalExecutor

        return LocalExecutor(workers, gpus=gpus, isolate=True), notice
    if debug or (engine is None and asked == 1 and not gpus):
        from superparams.executors.inline import InlineExecutor

        return InlineExecutor(debug=debug), notice
    made = get_executor(engine or "local").from_options(workers, gpus, **(options or {}))
    return made, notice


@dataclass
class _InFlight:
    position: int
    label: str
    described: str  # label, parameters and encodings as record text, made once
    first_attempt: int


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
        self.write_error: StoreWriteError | None = None  # the store could not be written
        self.began = time.time()

    def emit(self, event: Event) -> None:
        for subscriber in self.subscribers:
            subscriber(event)

    # -- the loop ----------------------------------------------------------------------

    def execute(self, stored: Plan, positions: list[int]) -> None:
        from superparams.experiment import Experiment

        experiment = self.space.experiment_class
        self.emit(
            RunStarted(
                time.time(),
                experiment=experiment.__name__,
                folder=self.store.folder,
                total=len(stored.ids),
                completed=len(stored.done),
                failed=len(stored.failed),
                interrupted=len(stored.interrupted),
                new=len(stored.new),
                stale=len(stored.stale),
                to_run=len(positions),
                outdated=len(set(stored.outdated) - set(positions)) if stored.outdated else 0,
                num_proc=self.executor.num_proc,
                engine=self.executor.name,
                overview=str(self.space) if isinstance(self.space, Experiment) else "",
            )
        )
        if not positions:
            return
        pending = deque(positions)
        previous = _catch_interrupts(self._interrupt)
        dropped = False
        try:
            # Inside the try: a base that cannot be pickled still ends the run cleanly.
            self.executor.start(self.space, self._started)
            while pending or self.executor.busy:
                if self.stops and not dropped:  # not in the handler: it may interrupt a send
                    self.executor.drop_queued()
                    dropped = True
                free = self.executor.free
                while pending and free > 0 and not self.stops:
                    position = pending.popleft()
                    self._submit(position, stored.ids[position], 1)  # a rerun is no retry
                    free -= 1
                if self.stops and not self.executor.busy:
                    break
                # Short enough that the first Ctrl-C is acted on at once (PEP 475 resumes
                # an interrupted wait), long enough to cost nothing while settings run.
                wait = COMMIT_INTERVAL if self.unreported else 0.25
                for outcome in self.executor.wait(wait):
                    self._record(outcome)
                if self.write_error is not None:  # from _started, called by the executor
                    raise self.write_error
                if self.unreported and (
                    self.store.seconds_since_commit() >= COMMIT_INTERVAL or not self.executor.busy
                ):
                    self._report()
        except KeyboardInterrupt:
            self.emit(RunStopping(time.time(), graceful=False))
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
            self._report()
        self.remaining = len(pending) + len(self.inflight)
        self.interrupted = self.stops > 0

    def _submit(self, position: int, sid: str, attempt: int) -> None:
        setting: Experiment = self.space[position]
        setting.__dict__["_sp_id"] = sid  # known from the plan: no need to hash it again
        if sid not in self.inflight:
            label = setting.label
            described = describe(label, _params(setting), setting._sp_encodings())
            self.inflight[sid] = _InFlight(position, label, described, attempt)
        self.executor.submit(Task(position, sid, attempt, self.timeout))

    def _started(self, started: Started) -> SettingLog | None:
        """Record a start; the setting's log, for the engine to write what it prints."""
        task = started.task
        info = self.inflight[task.id]
        try:
            log = self.store.started(task.id, task.attempt, started.worker, info.described)
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
        if outcome.failure is not None and outcome.failure.cause == "interrupted":
            self.stops = max(self.stops, 2)  # Ctrl-C inside an in-process setting
            return  # stays 'started' in the record: interrupted
        log = self.store.append(outcome, info.described)
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
            retry = outcome.attempt - info.first_attempt < self.retries and not self.stops
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
                self.executor.submit(
                    Task(info.position, outcome.id, outcome.attempt + 1, self.timeout)
                )
            else:
                del self.inflight[outcome.id]
                self.failed += 1
                self.failures.append(event)
        self.unreported.append(event)

    def _report(self) -> None:
        """Sync what was recorded, then tell the subscribers: durable before reported."""
        try:
            self.store.commit()
        except StoreWriteError as error:
            self.write_error = self.write_error or error
            self.unreported = []  # not durable: never reported done
            return
        events, self.unreported = self.unreported, []
        for event in events:
            self.emit(event)

    def _interrupt(self, signum: int) -> None:
        self.stops += 1
        if self.stops > 1:
            raise RunStopped
        name = signal.Signals(signum).name
        grace = None if signum == signal.SIGINT else _stop_grace()
        self.emit(RunStopping(time.time(), graceful=True, signal=name, grace=grace))
        if grace is not None:  # then the same signal again, as a second Ctrl-C
            # A real signal to the main thread, so a setting asleep in it wakes to it.
            main = threading.main_thread().ident
            self._grace = threading.Timer(grace, signal.pthread_kill, (main, signum))
            self._grace.daemon = True
            self._grace.start()

    def finished_event(self, stored: Plan, positions: list[int]) -> RunFinished:
        skipped = len(set(stored.done) - set(positions))  # completed before, not run again
        return RunFinished(
            time.time(),
            completed=self.completed,
            failed=self.failed,
            skipped=skipped,
            remaining=self.remaining,
            seconds=time.time() - self.began,
            interrupted=self.interrupted,
            results=self.store.results_path,
            failures=tuple(self.failures),
            notes=tuple(self.store.clashes(_labels(self.space, stored.ids))),
        )


def _labels(space: Space[Any], ids: list[str]) -> Callable[[str], str | None]:
    """The label a setting of ``space`` has, by id (None if it is not in the space)."""

    def label(sid: str) -> str | None:
        try:
            shown: str = space[ids.index(sid)].label
        except ValueError:
            return None
        return shown

    return label


def _params(setting: Experiment) -> dict[str, Any]:
    """A setting's parameter values as table columns; a nested experiment is its fields'
    dotted columns (``model.width``)."""
    from superparams.experiment import Experiment

    info = type(setting)._sp_info()
    out: dict[str, Any] = {}
    for name in (*info.fields, *(n for n, _ in info.derived)):
        value = setting.__dict__[name]
        if isinstance(value, Experiment):
            out.update({f"{name}.{k}": v for k, v in _params(value).items()})
        else:
            out[name] = _column_value(value)
    return out


def _column_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and all(
        v is None or isinstance(v, (bool, int, float, str)) for v in value
    ):
        return list(value)
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"array{tuple(value.shape)} {value.dtype}"
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        from superparams.store import _dumps

        with contextlib.suppress(TypeError, ValueError):  # keys JSON cannot hold
            return _dumps(value)
    import enum

    if isinstance(value, enum.Enum):
        return value.name
    text = repr(value)
    return text if len(text) <= 200 else text[:199] + "…"


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
