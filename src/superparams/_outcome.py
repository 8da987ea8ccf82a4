"""What crosses the seam between the runner and an engine: tasks in, outcomes out.

A leaf module: the runner, the store, the events, the displays and every engine import
it, and it imports nothing of superparams. A :class:`Task` is one attempt at one setting,
named by its position in the base space (and the values it sets there, for a setting
proposed while the run ran); an :class:`Outcome` is what became of it, built
by the worker that ran it (:func:`superparams._worker.run_setting`) or, when no worker
could say (it died, it was lost, it ran too long), by the engine with
:meth:`Outcome.failed`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

Cause = Literal["raised", "killed", "timeout", "unpicklable", "interrupted"]

#: The error of a setting that was running in the run's own process (engine inline,
#: debug) when that process died: a segfault, ``os._exit``, the out-of-memory killer. Its
#: cause is ``killed``; a resume leaves it out, ``--rerun-failed`` runs it again.
DIED_IN_PROCESS = "the run's process died while this setting ran in it (in-process, engine inline)"


@dataclass(frozen=True)
class Task:
    """One setting to run: where it is in the base space, and how long it may take.

    Nothing in it names a file: where a setting's output goes is the engine's to decide,
    and the store's to write (see :class:`Started`).
    """

    position: int
    id: str
    attempt: int
    timeout: float | None = None
    # A setting proposed while the run ran (an adaptive search's) is not in the base
    # space the engine was given: it is at ``position`` in the base with these fields set
    # (their values, as the proposal made them). Empty for every other setting.
    values: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Failure:
    """Why a setting failed: the cause, the error line, and the end of the traceback."""

    cause: Cause
    error: str  # e.g. "ValueError: lr must be positive", or "killed by SIGKILL"
    traceback: str = ""


@dataclass
class Outcome:
    """What became of one attempt at one setting: its result rows, or its failure."""

    id: str
    attempt: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    failure: Failure | None = None
    started: float = 0.0
    finished: float = 0.0
    worker: int = 0
    # What the setting printed, for an engine whose workers are not on the driver's
    # machine: the store writes it to the setting's log. None: the engine copied it
    # there while the setting ran (the log that notify returned), or it printed nothing.
    output: str | None = None
    # Rows the setting reported (``self.report``, or what a generator run() yielded),
    # for an engine that cannot stream them while it runs: they come with the outcome.
    # An engine that streams them (local, inline) leaves this empty.
    reported: list[dict[str, Any]] = field(default_factory=list)
    # The stop rule that ended the setting early (superparams.stopping), or None.
    stopped: str | None = None
    # The id of the environment the setting ran in (superparams._environment), on every
    # outcome a worker made; its details only the first time its process sends that id.
    environment: str | None = None
    environment_details: dict[str, Any] | None = None

    @classmethod
    def failed(cls, task: Task, cause: Cause, error: str, *, worker: int, since: float) -> Outcome:
        """The outcome of a task that no worker reported on: it died, was lost, or ran out
        of time. ``since`` is when it started; it ends now.

        >>> Outcome.failed(Task(0, "ab", 1), "killed", "lost", worker=0, since=0.0).status
        'failed'
        """
        failure = Failure(cause, error)
        return cls(task.id, task.attempt, [], failure, since, time.time(), worker)

    @property
    def status(self) -> str:
        return "completed" if self.failure is None else "failed"


@dataclass(frozen=True)
class Queued:
    """Where a setting waits to run without the driver: as ``job`` in the queue of the
    engine named ``engine`` (a Slurm job array task, say), which a later run of that
    engine collects.

    >>> Queued("slurm", "4242_0")
    Queued(engine='slurm', job='4242_0')
    """

    engine: str
    job: str


@dataclass(frozen=True)
class Started:
    """A setting began to run on a worker.

    The engine tells the runner through the ``notify`` callback of
    :meth:`~superparams.executors.Executor.start`, which returns the setting's log in the
    results folder (a :class:`superparams._store._logfile.SettingLog`, or None when the run
    cannot record it): an engine whose workers share this machine appends what the
    setting prints to it while it runs; others hand it back in :attr:`Outcome.output`.

    With ``queued``, the setting has not begun: it waits in the queue of an engine that
    runs it without the driver (see :class:`~superparams.executors.Detaching`); the runner
    records it ``queued`` there (:meth:`Store.queued`). With ``released``, that engine let
    go of it before it ran (cancelled): it reads as it did before it was queued.
    """

    task: Task
    worker: int
    time: float
    queued: Queued | None = None
    released: bool = False
