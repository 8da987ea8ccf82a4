"""Settings run one by one in the calling process: ``--engine inline`` and ``--debug``.

The one engine where a setting that ends its process (a segfault, ``os._exit``, the
out-of-memory killer) ends the run: the store then holds its start with no outcome,
marked in-process, and the next run records it failed (see :meth:`Store.started`)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from superparams._outcome import Outcome, Started, Task
from superparams._worker import rows_of, run_as_is, run_setting, setting_of, stamp_environment
from superparams.executors._base import Executor

if TYPE_CHECKING:
    from superparams._space import Space
    from superparams._store._logfile import SettingLog


class InlineExecutor(Executor):
    """Runs each setting in this process, with output copied to its log and the terminal.

    The log is written by this process, the run's own, as the setting prints (so
    ``experiment logs -f`` follows it); settings run one at a time.

    With ``debug=True`` an exception is not caught: it reaches the caller (the command
    line opens the post-mortem debugger on it).
    """

    name: ClassVar[str] = "inline"
    in_process: ClassVar[bool] = True

    def __init__(self, num_proc: int = 1, *, gpus: Any = None, debug: bool = False) -> None:
        super().__init__(1, gpus=gpus)
        self.debug = debug
        self._queue: deque[Task] = deque()
        self._base: Space[Any] | None = None
        self._notify: Callable[[Started], SettingLog | None] = lambda started: None

    def start(self, base: Space[Any], notify: Callable[[Started], SettingLog | None]) -> None:
        self._base, self._notify = base, notify

    @property
    def free(self) -> int:
        return 0 if self._queue else 1

    @property
    def busy(self) -> int:
        return len(self._queue)

    def submit(self, task: Task) -> None:
        self._queue.append(task)

    def wait(self, timeout: float) -> list[Outcome]:
        if not self._queue or self._base is None:
            return []
        task = self._queue.popleft()
        setting = setting_of(self._base, task)
        started = time.time()
        log = self._notify(Started(task, 0, started))
        if self.debug:
            reported: list[dict[str, Any]] = []
            result = run_as_is(setting, self._to(task) or reported.append)  # for the debugger
            rows = rows_of(result)
            outcome = Outcome(task.id, task.attempt, rows, None, started, time.time(), 0)
            outcome.reported = reported
            stamp_environment(outcome, type(setting).__module__)
            return [outcome]
        # Python's output copied to the log as it comes (the terminal keeps it too): one
        # setting at a time, in this process, so no other setting writes there meanwhile.
        # A reported row is written through the store, and synced, before report() returns.
        return [
            run_setting(
                setting, task, 0, capture="tee", output=log or _Nowhere(), report=self._to(task)
            )
        ]

    def _to(self, task: Task) -> Callable[[dict[str, Any]], str | None] | None:
        reports = self.reports
        if reports is None:
            return None  # rows come back with the outcome

        def report(row: dict[str, Any]) -> str | None:
            verdict = reports.add(task, row)
            reports.commit()
            return verdict

        return report

    def cancel(self) -> None:
        self._queue.clear()

    def shutdown(self) -> None:
        self._queue.clear()


class _Nowhere:
    """Output with nowhere to go: the run could not record the setting's start."""

    def write(self, data: bytes, /) -> None:
        pass
