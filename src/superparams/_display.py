"""What a person sees of a run, built from the runner's events.

Two views, both plain subscribers (callables taking an :class:`~superparams.events.Event`):

* :class:`PlainDisplay` writes one line per finished or failed setting: for logs, CI and
  ``nohup``. It needs nothing beyond the standard library.
* :class:`LiveDisplay` keeps a live view in a terminal (rich): counts, throughput and
  ETA, the settings running now with the last line each wrote to its log, and a line
  for each failure as it happens.

Neither decides anything about the run; the time they show comes from an injected
``clock``, so tests can drive them event by event.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

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

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live


def duration(seconds: float) -> str:
    """A short human duration.

    >>> duration(3.25), duration(75), duration(7300)
    ('3.2s', '1m15s', '2h01m')
    """
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def clock_time(seconds: float) -> str:
    """Elapsed time as ``m:ss`` or ``h:mm:ss``, as a stopwatch shows it."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def metrics(results: dict[str, object], width: int = 60) -> str:
    """A setting's results on one line: ``loss=0.1234 acc=0.9``."""
    parts = []
    for key, value in results.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        parts.append(f"{key}={shown}")
    text = " ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


def row_text(row: dict[str, object]) -> str:
    """A reported row as the live view shows it: ``epoch 7  loss 0.312  val_acc 0.81``.

    >>> row_text({"epoch": 7, "loss": 0.31234, "val_acc": 0.81})
    'epoch 7  loss 0.3123  val_acc 0.81'
    """
    return "  ".join(
        f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
        for key, value in row.items()
    )


def short_path(path: str | Path) -> str:
    """``path`` relative to the working directory when it is under it."""
    text = str(path)
    if not text:
        return text
    try:
        return os.path.relpath(text) if Path(text).resolve().is_relative_to(Path.cwd()) else text
    except (ValueError, OSError):
        return text


def summary(event: RunFinished) -> str:
    """The one line that says how a run ended."""
    state = "interrupted" if event.interrupted else "finished"
    text = (
        f"{state} in {duration(event.seconds)}: {event.completed} completed, "
        f"{event.failed} failed, {event.skipped} done before"
    )
    if event.remaining:
        text += f", {event.remaining} not run"
    if event.queued:
        text += f", {event.queued} queued"
    return text


def outdated(count: int, experiment: str) -> str:
    """What a run says of the stored settings an earlier version of the code made."""
    settings = "settings were" if count != 1 else "setting was"
    return f"{count} stored {settings} made by an earlier version of {experiment}'s code"


_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")


def last_line(path: str | Path, size: int = 4096) -> str:
    """The last line of output in a log file, as a terminal would show it.

    Only the end of the file is read. A progress bar that redraws itself with carriage
    returns shows its latest state; colour codes are dropped.
    """
    from superparams._store._layout import open_in_store

    try:
        with os.fdopen(open_in_store(path, os.O_RDONLY), "rb") as f:
            f.seek(0, os.SEEK_END)
            end = f.tell()
            f.seek(max(0, end - size))
            data = f.read()
    except OSError:
        return ""
    text = _ANSI.sub("", data.decode("utf-8", errors="replace"))
    for line in reversed(text.splitlines()):
        for part in reversed(line.split("\r")):
            if part.strip():
                return part.strip()
    return ""


# -- plain lines -------------------------------------------------------------------------


class PlainDisplay:
    """Plain lines, one per finished or failed setting, then a summary.

    A setting that reports its rows (``self.report``) shows its latest row when it ends,
    and while it runs, at most once every ``every`` seconds, a line with the row it
    reported last: a log read later (nohup, CI, a cluster's job log) shows the progress
    of a long setting.

    Args:
        quiet: only notices, the lines about stopping, and the summary.
        header: a first line saying what the run will do.
        summary: a last line saying how it went (off when the caller reports the end).
        every: seconds between two progress lines of one running setting.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        quiet: bool = False,
        header: bool = True,
        summary: bool = True,
        every: float = 60.0,
    ) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.header = header
        self.summary = summary
        self.every = every
        self.done = 0
        self.total = 0
        self.started = time.time()
        self.labels: dict[str, str] = {}  # the running settings' labels, by id
        self.latest: dict[str, dict[str, Any]] = {}  # the row each running one reported last
        self.said: dict[str, float] = {}  # when a progress line last said each

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.total, self.started = event.to_run, event.time
            if self.header and not self.quiet:
                self._line(
                    f"{event.experiment}: {event.total} settings, {event.completed} done before, "
                    f"running {event.to_run} on {event.num_proc} "
                    f"process{'es' if event.num_proc != 1 else ''}; results in {event.folder}"
                )
                if event.outdated:
                    self._line(
                        f"{outdated(event.outdated, event.experiment)}; kept as stored "
                        "(run_all(rerun_outdated=True) runs them again)"
                    )
                for change in event.environment_changes:
                    self._line(
                        f"{change}; kept as stored (run_all(rerun_outdated='env') runs them again)"
                    )
        elif isinstance(event, SettingStarted):
            self.labels[event.id] = event.label
            self.said[event.id] = event.time
        elif isinstance(event, SettingReported):
            self.latest[event.id] = event.row
            since = self.said.get(event.id)
            if not self.quiet and since is not None and event.time - since >= self.every:
                self.said[event.id] = event.time
                label = self.labels.get(event.id, event.id)
                self._line(f"[{self.done}/{self.total}] running {label}: {row_text(event.row)}")
        elif isinstance(event, SettingFinished):
            self.done += 1
            latest = self._forget(event.id)
            if not self.quiet:
                shown = event.results or latest
                self._line(
                    f"[{self.done}/{self.total}] done   {event.label} "
                    f"({duration(event.seconds)}) {metrics(shown)}".rstrip()
                )
        elif isinstance(event, SettingFailed):
            self._forget(event.id)
            if not event.will_retry:
                self.done += 1
            if not self.quiet:
                retry = ", retrying" if event.will_retry else ""
                self._line(
                    f"[{self.done}/{self.total}] FAILED {event.label}: {event.failure.error}"
                    f"{retry} (log: {short_path(event.log)})"
                )
        elif isinstance(event, (RunStopping, Notice)):
            self._line(_stopping(event) if isinstance(event, RunStopping) else event.text)
        elif isinstance(event, RunFinished) and self.summary:
            self._line(f"{summary(event)}; results: {short_path(event.results)}")
            for note in event.notes:
                self._line(note)

    def _forget(self, setting_id: str) -> dict[str, Any]:
        """A setting that ended: its latest reported row, and nothing kept of it."""
        self.labels.pop(setting_id, None)
        self.said.pop(setting_id, None)
        return self.latest.pop(setting_id, {})


def _stopping(event: RunStopping) -> str:
    if not event.graceful:
        return "stopping now: killing running settings"
    if event.signal == "SIGINT":
        return "stopping: waiting for running settings to finish (Ctrl-C again to kill them)"
    within = f" (up to {duration(event.grace)})" if event.grace is not None else ""
    return (
        f"{event.signal}: stopping; waiting for running settings to finish{within}, "
        f"then stopping them ({event.signal} again stops them now)"
    )


# -- the live view -----------------------------------------------------------------------


@dataclass
class _Running:
    label: str
    worker: int
    attempt: int
    since: float
    log: str
    row: dict[str, object] | None = None  # the latest row it reported


class LiveDisplay:
    """A live view of a run in a terminal, redrawn a few times a second.

    It shows how many settings completed, failed, run and wait, the throughput and an
    estimate of the time left, and each running setting with its elapsed time and the
    latest row it reported, or else the last line it wrote to its log. A failure is
    printed above the view as it happens.

    Args:
        console: where to draw (default: a rich console on stderr).
        clock: the current time in seconds since the epoch (tests pass a fake one).
        live: redraw in place; False only records state (for tests and ``print``).
        auto_refresh: redraw a few times a second, not only at each event.
        summary: print a line at the end saying how the run went.
        max_running: how many running settings to list.
    """

    def __init__(
        self,
        console: Console | None = None,
        *,
        clock: Callable[[], float] = time.time,
        live: bool = True,
        auto_refresh: bool = True,
        refresh_per_second: float = 4,
        summary: bool = True,
        max_running: int = 8,
    ) -> None:
        self._console = console
        self.clock = clock
        self.live = live
        self.auto_refresh = auto_refresh
        self.refresh_per_second = refresh_per_second
        self.summary = summary
        self.max_running = max_running
        self.experiment = ""
        self.total = 0
        self.completed = 0
        self.failed = 0
        self.began = 0.0
        self.running: dict[str, _Running] = {}
        self.last: SettingFinished | None = None
        self.stopping: RunStopping | None = None
        self.ended = False
        self._live: Live | None = None

    @property
    def console(self) -> Console:
        """Where the view is drawn; rich is imported on first use, not before the run."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True)
        return self._console

    # -- events --------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.experiment, self.total, self.began = event.experiment, event.to_run, event.time
        elif isinstance(event, SettingStarted):
            # A worker runs one setting at a time: whatever it ran before has ended, even
            # if that end is reported later (once it is durable).
            for sid in [s for s, r in self.running.items() if r.worker == event.worker]:
                del self.running[sid]
            self.running[event.id] = _Running(
                event.label, event.worker, event.attempt, event.time, event.log
            )
            if self.live and self._live is None and not self.ended:
                # Drawn from the first start on, so loading rich overlaps a running setting.
                self._start()
        elif isinstance(event, SettingReported):
            running = self.running.get(event.id)
            if running is not None:
                running.row = event.row
        elif isinstance(event, SettingFinished):
            self._ended(event)
            self.completed += 1
            self.last = event
        elif isinstance(event, SettingFailed):
            self._ended(event)
            if not event.will_retry:
                self.failed += 1
            self.console.print(self._failure_line(event), soft_wrap=True)
        elif isinstance(event, RunStopping):
            self.stopping = event
            self.console.print(_stopping(event), style="yellow")
        elif isinstance(event, Notice):
            self.console.print(event.text, style="yellow", highlight=False, soft_wrap=True)
        elif isinstance(event, RunFinished):
            self.ended = True
            self.close()
            if self.summary:
                self.console.print(
                    f"{summary(event)}; results: {short_path(event.results)}",
                    highlight=False,
                    soft_wrap=True,
                )
                for note in event.notes:
                    self.console.print(note, style="yellow", highlight=False, soft_wrap=True)
        self._refresh()

    def _ended(self, event: SettingFinished | SettingFailed) -> None:
        # Reported once durable, so its retry may have started already: keep that one.
        running = self.running.get(event.id)
        if running is not None and running.attempt == event.attempt:
            del self.running[event.id]

    def _start(self) -> None:
        from rich.live import Live

        self._live = Live(
            console=self.console,
            get_renderable=self.__rich__,
            auto_refresh=self.auto_refresh,
            refresh_per_second=self.refresh_per_second,
            transient=True,
        )
        self._live.start()

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.refresh()

    def close(self) -> None:
        """Stop redrawing; the view disappears, what was printed above it stays."""
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()

    # -- what is drawn -------------------------------------------------------------------

    def _failure_line(self, event: SettingFailed) -> RenderableType:
        from rich.text import Text

        line = Text()
        line.append("✗ ", style="bold red")
        line.append(event.label, style="bold")
        line.append(f"  {event.failure.error}", style="red")
        if event.will_retry:
            line.append(f"  (attempt {event.attempt}; retrying)", style="yellow")
        if event.log:
            line.append(f"  log: {short_path(event.log)}", style="dim")
        return line

    def __rich__(self) -> RenderableType:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        now = self.clock()
        done = self.completed + self.failed
        elapsed = max(0.0, now - self.began)
        waiting = max(0, self.total - done - len(self.running))

        bar = Table.grid(padding=(0, 1))
        bar.add_column(width=40)
        bar.add_column(no_wrap=True)
        percent = f"{100 * done / self.total:.0f}%" if self.total else ""
        bar.add_row(
            ProgressBar(total=max(self.total, 1), completed=done, width=40),
            Text(f"{done}/{self.total}  {percent}  {self.experiment}", style="bold"),
        )

        counts = Text()
        counts.append(f"✓ {self.completed} completed", style="green")
        counts.append("  ")
        counts.append(f"✗ {self.failed} failed", style="red" if self.failed else "dim")
        counts.append("  ")
        counts.append(f"▶ {len(self.running)} running", style="cyan")
        counts.append(f"  · {waiting} waiting", style="dim")

        pace = Text(style="dim")
        rate = done / elapsed if done and elapsed > 0 else 0.0
        pace.append(f"{_rate(rate)}   elapsed {clock_time(elapsed)}")
        if rate > 0:
            pace.append(f"   ETA {clock_time((self.total - done) / rate)}")
        else:
            pace.append("   ETA ?")

        parts: list[RenderableType] = [bar, counts, pace]
        if self.last is not None:
            last = Text("last: ", style="dim")
            last.append(self.last.label)
            shown = metrics(self.last.results)
            if shown:
                last.append(f"  {shown}", style="green")
            parts.append(last)
        if self.running:
            parts.append(self._running_table(now))
        if self.stopping is not None:
            text = (
                f"stopping: waiting for {len(self.running)} running settings "
                "(Ctrl-C again to kill them)"
                if self.stopping.graceful
                else "stopping now: killing running settings"
            )
            parts.append(Text(text, style="yellow"))
        return Group(*parts)

    def _running_table(self, now: float) -> RenderableType:
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True, justify="right")
        table.add_column(no_wrap=True, overflow="ellipsis", ratio=1, style="dim")
        items = sorted(self.running.values(), key=lambda r: r.since)
        for item in items[: self.max_running]:
            label = Text("▶ ", style="cyan")
            label.append(item.label)
            if item.attempt > 1:
                label.append(f" (attempt {item.attempt})", style="yellow")
            shown = row_text(item.row) if item.row is not None else last_line(item.log)
            table.add_row(label, duration(max(0.0, now - item.since)), shown)
        if len(items) > self.max_running:
            table.add_row(Text(f"… and {len(items) - self.max_running} more", style="dim"), "", "")
        return table


def _rate(per_second: float) -> str:
    if per_second <= 0:
        return "? settings/s"
    if per_second >= 1:
        return f"{per_second:.1f} settings/s"
    return f"{per_second * 60:.1f} settings/min"
