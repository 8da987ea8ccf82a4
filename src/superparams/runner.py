"""Plan, schedule, report: the loop between a space, an executor and the store.

The runner asks the store which settings are done, submits the rest to an executor,
records each outcome (durably, before reporting it), retries what may be retried, and
turns Ctrl-C into a clean stop. It prints nothing: it emits events
(:mod:`superparams.events`) to its subscribers, and imports neither rich nor argparse.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superparams.events import (
    Event,
    RunFinished,
    RunStarted,
    RunStopping,
    SettingFailed,
    SettingFinished,
    SettingStarted,
)
from superparams.executors import Executor, Started, get_executor
from superparams.store import Plan, Store, describe
from superparams.worker import Outcome, Task

if TYPE_CHECKING:
    import polars as pl

    from superparams.experiment import Experiment
    from superparams.space import Space

Subscriber = Callable[[Event], None]

# How long finished outcomes may wait to be synced (and reported) together: one fsync
# per batch, rather than one per setting.
COMMIT_INTERVAL = 0.2


def plan(space: Space[Any], *, folder: Path | str | None = None) -> Plan:
    """What is stored for each setting of ``space``: done, failed, interrupted or new.

    ``outdated`` lists the done settings made by another version of the experiment's
    code (see :mod:`superparams._code`).
    """
    from superparams._code import code_hash

    return Store.for_space(space, folder).plan(space, code_hash(space.experiment_class))


def results(space: Space[Any], *, folder: Path | str | None = None) -> pl.DataFrame:
    """The latest stored outcome of each setting of ``space``, in the space's order.

    A setting that returned several rows has several rows; one never run has none.
    """
    return _select(Store.for_space(space, folder).table(), list(space._sp_ids()))


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
    num_proc: int = 1,
    *,
    gpus: Sequence[int | str] | None = None,
    only_failed: bool = False,
    fresh: bool = False,
    rerun_outdated: bool = False,
    timeout: float | None = None,
    retries: int = 0,
    folder: Path | str | None = None,
    engine: str | Executor | None = None,
    debug: bool = False,
    display: bool | Subscriber = True,
    subscribers: Iterable[Subscriber] = (),
) -> pl.DataFrame:
    """Run every setting of ``space`` not completed before, and return the results.

    Args:
        num_proc: worker processes; 1 runs in this process (breakpoints work).
        gpus: device ids handed to workers round-robin through ``CUDA_VISIBLE_DEVICES``.
        only_failed: run only the settings stored as failed.
        fresh: run every setting again, whatever is stored.
        rerun_outdated: also run again the completed settings that an earlier version
            of the experiment's code made (``plan().outdated``); without it they are
            kept, and the run says how many there are.
        timeout: seconds a setting may run before it fails with cause ``timeout``.
        retries: how many more times a failed setting is tried in this run.
        folder: where results go (default: ``progress/<module>/<Class>`` beside the
            experiment's file, see :func:`superparams.store.folder_for`).
        engine: an executor name (``"local"``, ``"inline"``) or instance.
        debug: run in this process and let the first exception through.
        display: False for silence, True for plain progress lines on stderr, or a
            subscriber that shows the run.
        subscribers: more callables that receive every event.

    Raises:
        StoreLockedError: another run is writing to the same folder.
        KeyboardInterrupt: after Ctrl-C, once everything finished has been stored.
    """
    import polars as pl  # noqa: F401  # fail here, not after the run, if it is missing

    subs = list(subscribers)
    if display is True:
        from superparams.display import PlainDisplay

        subs.insert(0, PlainDisplay())
    elif callable(display):
        subs.insert(0, display)
    from superparams._code import code_version

    executor = _executor(engine, num_proc, gpus, debug)
    store = Store.for_space(space, folder)
    code = code_version(space.experiment_class)  # once per run: every line carries it
    store.stamp(code)
    run = _Run(space, store, executor, subs, timeout=timeout, retries=retries)
    with store:
        stored = store.plan(space, code.version)
        positions = _choose(
            stored, only_failed=only_failed, fresh=fresh, rerun_outdated=rerun_outdated
        )
        run.execute(stored, positions)
    run.emit(run.finished_event(stored, positions))
    if run.interrupted:
        raise KeyboardInterrupt
    return _select(store.table(), stored.ids)


def _executor(
    engine: str | Executor | None, num_proc: int, gpus: Sequence[int | str] | None, debug: bool
) -> Executor:
    from superparams.errors import UsageError

    if isinstance(engine, Executor):
        return engine
    if num_proc < 1:
        msg = f"num_proc must be at least 1, got {num_proc!r}"
        raise UsageError(msg)
    if debug or (engine is None and num_proc == 1):
        from superparams.executors.inline import InlineExecutor

        return InlineExecutor(debug=debug)
    return get_executor(engine or "local")(num_proc, gpus=gpus)


def _choose(
    stored: Plan, *, only_failed: bool, fresh: bool, rerun_outdated: bool = False
) -> list[int]:
    if fresh:
        seen: set[str] = set()
        positions = []
        for position, sid in enumerate(stored.ids):
            if sid not in seen:
                seen.add(sid)
                positions.append(position)
        return positions
    outdated = stored.outdated if rerun_outdated else []
    if only_failed:
        return sorted(stored.failed + outdated)
    return sorted(stored.new + stored.failed + stored.interrupted + outdated)


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
        self.stops = 0  # Ctrl-C presses
        self.interrupted = False
        self.remaining = 0
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
        attempts = stored.attempts
        workdir = self.store.folder / ".run"
        previous = _catch_interrupts(self._interrupt)
        dropped = False
        try:
            # Inside the try: a base that fails to pickle leaves no half-written file.
            self.executor.start(self.space, self._started, str(workdir))
            while pending or self.executor.busy:
                if self.stops and not dropped:  # not in the handler: it may interrupt a send
                    self.executor.drop_queued()
                    dropped = True
                free = self.executor.free
                while pending and free > 0 and not self.stops:
                    position = pending.popleft()
                    self._submit(position, stored.ids[position], attempts.get(position, 0) + 1)
                    free -= 1
                if self.stops and not self.executor.busy:
                    break
                # Short enough that the first Ctrl-C is acted on at once (PEP 475 resumes
                # an interrupted wait), long enough to cost nothing while settings run.
                wait = COMMIT_INTERVAL if self.unreported else 0.25
                for outcome in self.executor.wait(wait):
                    self._record(outcome)
                if self.unreported and (
                    self.store.seconds_since_commit() >= COMMIT_INTERVAL or not self.executor.busy
                ):
                    self._report()
        except KeyboardInterrupt:
            self.emit(RunStopping(time.time(), graceful=False))
            self.executor.cancel()
            self.stops = max(self.stops, 2)
        finally:
            _restore_interrupts(previous)
            self.executor.shutdown()
            self._report()
            _remove_tree(workdir)
        self.remaining = len(pending) + len(self.inflight)
        self.interrupted = self.stops > 0

    def _submit(self, position: int, sid: str, attempt: int) -> None:
        setting: Experiment = self.space[position]
        setting.__dict__["_sp_id"] = sid  # known from the plan: no need to hash it again
        if sid not in self.inflight:
            label = setting.label
            described = describe(label, _params(setting), setting._sp_encodings())
            self.inflight[sid] = _InFlight(position, label, described, attempt)
        self.executor.submit(Task(position, sid, attempt, self.store.log_path(sid), self.timeout))

    def _started(self, started: Started) -> None:
        task = started.task
        info = self.inflight[task.id]
        self.store.started(task.id, task.attempt, started.worker, info.described)
        self.emit(
            SettingStarted(
                started.time, task.id, info.label, task.attempt, started.worker, task.log
            )
        )

    def _record(self, outcome: Outcome) -> None:
        info = self.inflight[outcome.id]
        if outcome.failure is not None and outcome.failure.cause == "interrupted":
            self.stops = max(self.stops, 2)  # Ctrl-C inside an in-process setting
            return  # stays 'started' in the record: interrupted
        self.store.append(outcome, info.described)
        seconds = outcome.finished - outcome.started
        if outcome.failure is None:
            del self.inflight[outcome.id]
            self.completed += 1
            first = outcome.rows[0] if outcome.rows else {}
            event: Event = SettingFinished(
                outcome.finished,
                outcome.id,
                info.label,
                outcome.attempt,
                outcome.worker,
                seconds,
                first,
                outcome.log,
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
                outcome.log,
                will_retry=retry,
            )
            if retry:
                self.executor.submit(
                    Task(info.position, outcome.id, outcome.attempt + 1, outcome.log, self.timeout)
                )
            else:
                del self.inflight[outcome.id]
                self.failed += 1
                self.failures.append(event)
        self.unreported.append(event)

    def _report(self) -> None:
        """Sync what was recorded, then tell the subscribers: durable before reported."""
        self.store.commit()
        events, self.unreported = self.unreported, []
        for event in events:
            self.emit(event)

    def _interrupt(self) -> None:
        self.stops += 1
        if self.stops == 1:
            self.emit(RunStopping(time.time(), graceful=True))
        else:
            raise KeyboardInterrupt

    def finished_event(self, stored: Plan, positions: list[int]) -> RunFinished:
        skipped = len(stored.done) if positions is not None else 0
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
        )


def _params(setting: Experiment) -> dict[str, Any]:
    """A setting's parameter values as table columns; nested experiments flattened."""
    from superparams.experiment import Experiment

    info = type(setting)._sp_info()
    out: dict[str, Any] = {}
    for name in (*info.fields, *(n for n, _ in info.derived)):
        value = setting.__dict__[name]
        if isinstance(value, Experiment):
            out[name] = type(value).__name__
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
    import enum

    if isinstance(value, enum.Enum):
        return value.name
    text = repr(value)
    return text if len(text) <= 200 else text[:199] + "…"


def _catch_interrupts(handler: Callable[[], None]) -> Any:
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_sigint(signum: int, frame: object) -> None:
        handler()

    return signal.signal(signal.SIGINT, on_sigint)


def _restore_interrupts(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGINT, previous)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
