"""A test double for the executor seam: settings run in this process, on a script.

:class:`ScriptedExecutor` runs each setting's ``run()`` here when the runner waits, keeps
no log, and notes every call the runner makes. With a :class:`FakeClock` each setting
takes ``seconds`` of the clock's time and no real time passes, so a test can follow
retries, a stop and the batching of commits step by step::

    clock = FakeClock()
    engine = ScriptedExecutor(2, clock=clock, seconds=0.05, finish=1)
    space.run_all(engine=engine, display=False)
    engine.calls  # ['start', 'submit 0', 'submit 1', 'wait', ...]

:class:`ExecutorContract` is the contract of the seam as pytest tests: an engine from
any package runs them all with one subclass that names it (see
:mod:`superparams.executors._contract`); it and :class:`EngineUnderTest` load pytest,
and only when asked for.
"""

from __future__ import annotations

import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from superparams._outcome import Failure, Outcome, Started, Task
from superparams._worker import rows_of, setting_of
from superparams.executors._base import Executor

if TYPE_CHECKING:
    from superparams._space import Space
    from superparams._store._logfile import SettingLog
    from superparams.executors._contract import EngineUnderTest, ExecutorContract


class FakeClock:
    """Seconds since the epoch that move only when told."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now: float = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ScriptedExecutor(Executor):
    """Runs settings in this process when waited on, and notes what the runner asked.

    Args:
        num_proc: settings it runs at once, on workers 0 to ``num_proc - 1``.
        queue: settings it takes ahead of those, not started yet, as a pool that queues
            work does; :meth:`drop_queued` (the first Ctrl-C) drops them.
        clock: the clock it moves (default: the real one, which it never moves).
        seconds: how long each setting runs on ``clock``, from its start.
        finish: how many running settings each :meth:`wait` finishes, those started
            first first (None: all of them).
        on_wait: called with the executor at each wait, once the settings that fit have
            started: where a test presses Ctrl-C or changes the script.
    """

    name: ClassVar[str] = "scripted"

    def __init__(
        self,
        num_proc: int = 1,
        *,
        queue: int = 0,
        clock: FakeClock | None = None,
        seconds: float = 0.0,
        finish: int | None = None,
        on_wait: Callable[[ScriptedExecutor], None] | None = None,
    ) -> None:
        super().__init__(num_proc)
        self.queue: int = queue
        self.clock: FakeClock | None = clock
        self.seconds: float = seconds
        self.finish: int | None = finish
        self.on_wait: Callable[[ScriptedExecutor], None] | None = on_wait
        self.calls: list[str] = []  # "start", "submit 3", "wait", "drop_queued", ...
        self.ran: list[tuple[int, int, int]] = []  # (position, attempt, worker), as started
        self._waiting: deque[Task] = deque()
        self._running: dict[int, tuple[Task, float]] = {}  # worker -> (task, since)
        self._base: Space[Any] | None = None
        self._notify: Callable[[Started], object] = lambda started: None

    def _now(self) -> float:
        return self.clock() if self.clock is not None else time.time()

    def start(self, base: Space[Any], notify: Callable[[Started], SettingLog | None]) -> None:
        self.calls.append("start")
        self._base, self._notify = base, notify

    @property
    def busy(self) -> int:
        return len(self._waiting) + len(self._running)

    @property
    def free(self) -> int:
        return self.num_proc + self.queue - self.busy

    def submit(self, task: Task) -> None:
        self.calls.append(f"submit {task.position}")
        self._waiting.append(task)

    def wait(self, timeout: float) -> list[Outcome]:
        self.calls.append("wait")
        for worker in range(self.num_proc):
            if worker not in self._running and self._waiting:
                task = self._waiting.popleft()
                self._running[worker] = (task, self._now())
                self.ran.append((task.position, task.attempt, worker))
                self._notify(Started(task, worker, self._now()))
        if self.on_wait is not None:
            self.on_wait(self)
        first = sorted(self._running, key=lambda worker: self._running[worker][1])
        return [self._finish(worker) for worker in first[: self.finish]]

    def _finish(self, worker: int) -> Outcome:
        task, since = self._running.pop(worker)
        if self.clock is not None:
            self.clock.advance(max(0.0, since + self.seconds - self.clock()))
        assert self._base is not None  # started before anything is submitted
        outcome = Outcome(task.id, task.attempt, started=since, worker=worker)
        try:
            outcome.rows = rows_of(setting_of(self._base, task).run())
        except Exception as error:
            error_line = f"{type(error).__name__}: {error}"
            outcome.failure = Failure("raised", error_line, traceback.format_exc())
        outcome.finished = self._now()
        return outcome

    def drop_queued(self) -> None:
        self.calls.append("drop_queued")
        self._waiting.clear()

    def cancel(self) -> None:
        self.calls.append("cancel")
        self._waiting.clear()
        self._running.clear()

    def shutdown(self) -> None:
        self.calls.append("shutdown")


__all__ = ["EngineUnderTest", "ExecutorContract", "FakeClock", "ScriptedExecutor"]


def __getattr__(name: str) -> Any:
    # The contract needs pytest, which a user of the test double may not have.
    if name in ("ExecutorContract", "EngineUnderTest"):
        from superparams.executors import _contract

        return getattr(_contract, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
