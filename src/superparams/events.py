"""What the runner reports as a run goes: the only way the core speaks.

Displays and log writers subscribe with a callable taking an :class:`Event`; the runner
calls each subscriber in turn, in the driver process. A setting is reported finished
only once its outcome is durable in the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from superparams._outcome import Failure


@dataclass(frozen=True)
class Event:
    """Something that happened in a run, at ``time`` (seconds since the epoch)."""

    time: float


@dataclass(frozen=True)
class RunStarted(Event):
    """A run begins: what it found stored and what it will do."""

    experiment: str
    folder: Path
    total: int  # settings in the space
    completed: int  # stored as completed: skipped
    failed: int  # stored as failed
    interrupted: int  # stored as interrupted
    new: int
    stale: int  # stored but not in this space
    to_run: int
    num_proc: int
    engine: str
    overview: str = ""
    outdated: int = 0  # completed by an earlier version of the code, and kept as stored
    # completed in another environment and kept as stored: what changed, a line each
    # ("12 settings ran with optuna 4.9.0, now 5.0.0")
    environment_changes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Notice(Event):
    """Something the person running should know, in one line: the run goes on.

    For example that ``num_proc=0`` runs as ``num_proc=1`` does. Emitted before
    :class:`RunStarted`; displays show it, the core never prints it.
    """

    text: str


@dataclass(frozen=True)
class SettingStarted(Event):
    """A setting began to run on a worker."""

    id: str
    label: str
    attempt: int
    worker: int
    log: str = ""


@dataclass(frozen=True)
class SettingReported(Event):
    """A running setting reported a row (``self.report``); it is stored."""

    id: str
    row: dict[str, Any]


@dataclass(frozen=True)
class SettingFinished(Event):
    """A setting completed; its results are stored."""

    id: str
    label: str
    attempt: int
    worker: int
    seconds: float
    results: dict[str, Any] = field(default_factory=dict)  # its last result row
    log: str = ""


@dataclass(frozen=True)
class SettingFailed(Event):
    """A setting failed; the failure is stored unless it will be retried."""

    id: str
    label: str
    attempt: int
    worker: int
    seconds: float
    failure: Failure
    log: str = ""
    will_retry: bool = False


@dataclass(frozen=True)
class RunStopping(Event):
    """The run was asked to stop: ``graceful`` lets running settings finish.

    ``signal`` names what asked (``"SIGINT"`` for Ctrl-C); after SIGTERM or SIGHUP the
    running settings get ``grace`` seconds, then are stopped.
    """

    graceful: bool
    signal: str = "SIGINT"
    grace: float | None = None


@dataclass(frozen=True)
class RunFinished(Event):
    """A run ended; ``interrupted`` if it stopped before running everything."""

    completed: int  # completed in this run
    failed: int  # failed in this run
    skipped: int  # completed before, not run again
    remaining: int  # left unrun by an interruption
    seconds: float
    interrupted: bool
    results: Path
    failures: tuple[SettingFailed, ...] = ()
    notes: tuple[str, ...] = ()  # what the stored table holds otherwise than run() said
    queued: int = 0  # left in an engine's queue, to run without this driver (--detach)
