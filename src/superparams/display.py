"""What a person sees of a run, built from the runner's events.

:class:`PlainDisplay` writes one line per finished setting: for logs, CI and ``nohup``.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from superparams.events import (
    Event,
    RunFinished,
    RunStarted,
    RunStopping,
    SettingFailed,
    SettingFinished,
)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _metrics(results: dict[str, object], width: int = 60) -> str:
    parts = []
    for key, value in results.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        parts.append(f"{key}={shown}")
    text = " ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


class PlainDisplay:
    """Plain lines, one per finished or failed setting, then a summary."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.done = 0
        self.total = 0
        self.started = time.time()

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.total, self.started = event.to_run, event.time
            if not self.quiet:
                self._line(
                    f"{event.experiment}: {event.total} settings, {event.completed} done before, "
                    f"running {event.to_run} on {event.num_proc} "
                    f"process{'es' if event.num_proc != 1 else ''}; results in {event.folder}"
                )
        elif isinstance(event, SettingFinished):
            self.done += 1
            if not self.quiet:
                self._line(
                    f"[{self.done}/{self.total}] done   {event.label} "
                    f"({_duration(event.seconds)}) {_metrics(event.results)}".rstrip()
                )
        elif isinstance(event, SettingFailed):
            if not event.will_retry:
                self.done += 1
            if not self.quiet:
                retry = ", retrying" if event.will_retry else ""
                self._line(
                    f"[{self.done}/{self.total}] FAILED {event.label}: {event.failure.error}"
                    f"{retry} (log: {event.log})"
                )
        elif isinstance(event, RunStopping):
            self._line(
                "stopping: waiting for running settings to finish (Ctrl-C again to kill them)"
                if event.graceful
                else "stopping now: killing running settings"
            )
        elif isinstance(event, RunFinished):
            state = "interrupted" if event.interrupted else "finished"
            self._line(
                f"{state} in {_duration(event.seconds)}: {event.completed} completed, "
                f"{event.failed} failed, {event.skipped} done before"
                + (f", {event.remaining} not run" if event.remaining else "")
                + f"; results: {event.results}"
            )
