"""The template for engines whose tasks come back as futures (Dask, Ray, ...).

An engine that hands each setting to a cluster and gets a future back fills in four
methods (:meth:`FuturesExecutor._open`, :meth:`~FuturesExecutor._submit`,
:meth:`~FuturesExecutor._cancel`, :meth:`~FuturesExecutor._close`); this base does the
rest of what the runner asks of an executor: it keeps no more settings in hand than the
engine runs at once (so a setting is reported started when it is handed over, and the
first Ctrl-C has nothing queued to drop), gives each a ``rank`` (its slot among those in
flight), waits for the first future to finish, fails a setting that runs past its
timeout, and turns a future the engine lost into a failed outcome.

A future is anything with ``done()``, ``result()``, ``cancel()`` and
``add_done_callback(fn)``, as :class:`concurrent.futures.Future` and Dask's futures have.
"""

from __future__ import annotations

import abc
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from superparams._outcome import Cause, Outcome, Started, Task
from superparams.executors._base import Executor

if TYPE_CHECKING:
    from superparams._space import Space
    from superparams._store._logfile import SettingLog


class FuturesExecutor(Executor):
    """An engine that runs each task remotely and hands back a future of its outcome."""

    num_proc: int  # what the engine runs at once, once reached (see :meth:`_open`)

    def __init__(self, num_proc: int = 2, *, gpus: Sequence[int | str] | None = None) -> None:
        super().__init__(num_proc, gpus=gpus)
        self._notify: Callable[[Started], SettingLog | None] = lambda started: None
        # In flight: future -> (task, slot, handed over at)
        self._futures: dict[Any, tuple[Task, int, float]] = {}
        self._done = threading.Event()  # some future finished since the last wait()
        self._stopping = False  # the run winds down (Ctrl-C)
        self._broken: str | None = None  # why the engine is gone, if it is

    # -- what an engine fills in ---------------------------------------------------------

    @abc.abstractmethod
    def _open(self, base: Space[Any]) -> int:
        """Reach the engine and ship ``base`` to it once; how many tasks it runs at once."""

    @abc.abstractmethod
    def _submit(self, task: Task, slot: int, n_proc: int) -> Any:
        """Hand one task over; a future of its :class:`Outcome`
        (see :func:`superparams._worker.run_task`)."""

    @abc.abstractmethod
    def _cancel(self, futures: list[Any]) -> None:
        """Stop the tasks of these futures, as far as the engine can."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Let go of the engine (and stop what the run started of it)."""

    def _stop_late(self, future: Any) -> None:
        """Stop the task of ``future``, past its timeout (and failed for it already)."""
        self._cancel([future])

    def _resubmit(self, future: Any, error: BaseException) -> bool:
        """Whether the task of ``future``, lost with ``error``, never started: a worker
        that died with it only waiting there, it is handed over again, not failed."""
        return False

    def _gone(self, error: BaseException) -> str | None:
        """What a person reads if ``error`` means the engine itself is gone (the run
        cannot go on); None if it lost only this task."""
        return None

    def _alive(self) -> str | None:
        """What a person reads if the engine itself is found gone while settings run
        (looked at before each wait; an engine keeps it cheap); None while it is up."""
        return None

    def _lost(self, error: BaseException) -> str:
        """What a person reads when the engine lost a setting with ``error``."""
        name = type(error).__name__
        text = str(error).strip().splitlines()
        return f"the {self.name.capitalize()} worker running this setting was lost ({name}" + (
            f": {text[0]})" if text else ")"
        )

    # -- the executor --------------------------------------------------------------------

    def start(self, base: Space[Any], notify: Callable[[Started], SettingLog | None]) -> None:
        self._notify = notify
        self._broken = None
        self._stopping = False
        try:
            self.num_proc = self._open(base)
        except BaseException:
            self.shutdown()
            raise

    def shutdown(self) -> None:
        self._futures.clear()
        with contextlib.suppress(Exception):  # it is going away either way
            self._close()

    def drop_queued(self) -> None:
        # Nothing is queued: no more settings are handed over than run at once. From here
        # on, a setting whose worker is lost was stopped, not failed.
        self._stopping = True

    def cancel(self) -> None:
        if self._futures:
            with contextlib.suppress(Exception):
                self._cancel(list(self._futures))
        self._futures.clear()

    @property
    def free(self) -> int:
        return 0 if self._broken else max(0, self.num_proc - len(self._futures))

    @property
    def busy(self) -> int:
        return len(self._futures) + (self._broken is not None)  # so the run waits, and hears

    def submit(self, task: Task) -> None:
        used = {slot for _, slot, _ in self._futures.values()}
        slot = min(set(range(self.num_proc)) - used)
        future = self._submit(task, slot, self.num_proc)
        now = time.time()
        self._futures[future] = (task, slot, now)
        future.add_done_callback(lambda _: self._done.set())  # in the engine's thread
        self._notify(Started(task, slot, now))

    def wait(self, timeout: float) -> list[Outcome]:
        if self._broken is None and self._futures:
            self._broken = self._alive()
        if self._broken is not None:  # what is in flight stays started: to run again
            from superparams.errors import EngineError

            raise EngineError(self._broken)
        if not self._futures:
            return []
        self._done.wait(timeout)
        self._done.clear()  # set again by any future that finishes from here on
        outcomes = []
        now = time.time()
        for future, (task, slot, since) in list(self._futures.items()):
            if future.done():
                del self._futures[future]
                outcome = self._outcome(future, task, slot, since)
                if outcome is not None:
                    outcomes.append(outcome)
            elif task.timeout and now - since > task.timeout:
                del self._futures[future]
                with contextlib.suppress(Exception):
                    self._stop_late(future)
                error = f"timed out after {task.timeout:g} s"
                outcomes.append(Outcome.failed(task, "timeout", error, worker=slot, since=since))
        return outcomes

    def _outcome(self, future: Any, task: Task, slot: int, since: float) -> Outcome | None:
        """What a finished future says: the worker's outcome, or how the engine lost it;
        None if the task was handed over again.

        Lost while the run winds down, the setting was stopped: interrupted, to run again.

        The engine itself gone, None too, and the next :meth:`wait` says so.
        """
        try:
            outcome: Outcome = future.result()
            return outcome
        except Exception as error:  # a dead worker, a lost connection, a cancelled future
            if not self._stopping:
                gone = self._gone(error)
                if gone is not None:  # said by the next wait(), after what finished
                    self._broken = self._broken or gone
                    return None
                if self._resubmit(future, error):
                    again = self._submit(task, slot, self.num_proc)
                    self._futures[again] = (task, slot, since)
                    again.add_done_callback(lambda _: self._done.set())
                    return None
            cause: Cause = "interrupted" if self._stopping else "killed"
            return Outcome.failed(task, cause, self._lost(error), worker=slot, since=since)
