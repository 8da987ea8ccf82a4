"""What a person sees of a run: plain lines, and the live view, driven event by event."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from superparams._display import LiveDisplay, PlainDisplay, clock_time, duration, last_line
from superparams._outcome import Failure
from superparams.events import (
    RunFinished,
    RunStarted,
    RunStopping,
    SettingFailed,
    SettingFinished,
    SettingReported,
    SettingStarted,
)

T0 = 1_000_000.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def started(to_run: int = 4, completed: int = 0) -> RunStarted:
    return RunStarted(
        T0,
        experiment="Train",
        folder=Path("progress/train/Train"),
        total=to_run + completed,
        completed=completed,
        failed=0,
        interrupted=0,
        new=to_run,
        stale=0,
        to_run=to_run,
        num_proc=2,
        engine="local",
    )


def begin(
    sid: str, label: str, at: float, log: str = "", attempt: int = 1, worker: int = 0
) -> SettingStarted:
    return SettingStarted(at, sid, label, attempt, worker, log)


def finish(sid: str, label: str, at: float, **results: object) -> SettingFinished:
    return SettingFinished(at, sid, label, 1, 0, 2.0, dict(results), "")


def fail(sid: str, label: str, at: float, *, retry: bool = False) -> SettingFailed:
    failure = Failure("raised", "ValueError: lr too large")
    return SettingFailed(at, sid, label, 1, 0, 1.0, failure, f"logs/{sid}.log", will_retry=retry)


def ended(*, interrupted: bool = False, completed: int = 3, failed: int = 1) -> RunFinished:
    return RunFinished(
        T0 + 10,
        completed=completed,
        failed=failed,
        skipped=0,
        remaining=0 if not interrupted else 1,
        seconds=10.0,
        interrupted=interrupted,
        results=Path("progress/train/Train/results.parquet"),
    )


def text_console(width: int = 100) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=width, color_system=None, highlight=False), out


def terminal(width: int = 100) -> tuple[Console, io.StringIO]:
    """A console that takes its output for a terminal's: the live view is drawn in it."""
    out = io.StringIO()
    return Console(file=out, width=width, force_terminal=True, color_system=None), out


CONTROL = re.compile(r"(\x1b\[\??[0-9;]*[A-Za-z]|\r|\n)")


def screen(written: str) -> list[str]:
    """What a terminal shows once ``written`` reached it: the cursor moves and line
    erasures a live view draws with are applied (others, such as hiding the cursor, show
    nothing); trailing blank lines are dropped."""
    lines, row, column = [""], 0, 0
    for token in CONTROL.split(written):
        if token == "\n":
            row, column = row + 1, 0
            if row == len(lines):
                lines.append("")
        elif token == "\r":
            column = 0
        elif token.endswith("A") and token.startswith("\x1b["):
            row = max(0, row - int(token[2:-1] or 1))
        elif token == "\x1b[2K":
            lines[row] = ""
        elif token and not token.startswith("\x1b"):
            line = lines[row].ljust(column)
            lines[row] = line[:column] + token + line[column + len(token) :]
            column += len(token)
    shown = [line.rstrip() for line in lines]
    while shown and not shown[-1]:
        shown.pop()
    return shown


def region(display: LiveDisplay, width: int = 100) -> str:
    """The live region as plain text, as it would be drawn now."""
    console, out = text_console(width)
    console.print(display)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


class TestFormats:
    def test_duration_reads_at_a_glance(self):
        """Durations are seconds with a decimal, then minutes and seconds, then hours."""
        assert [duration(s) for s in (0.04, 59.9, 61, 3725)] == ["0.0s", "59.9s", "1m01s", "1h02m"]

    @given(st.floats(min_value=0, max_value=59.94))
    def test_under_a_minute_it_is_the_seconds_to_a_tenth(self, seconds):
        """Any duration under a minute reads as its seconds to a tenth, then an s."""
        text = duration(seconds)
        assert re.fullmatch(r"[0-9]{1,2}\.[0-9]s", text)
        assert abs(float(text[:-1]) - seconds) <= 0.05 + 1e-9

    def test_clock_time_is_a_stopwatch(self):
        """Elapsed time reads m:ss, or h:mm:ss past an hour."""
        assert [clock_time(s) for s in (5, 75, 3725)] == ["0:05", "1:15", "1:02:05"]


class TestLastLine:
    def test_the_last_line_with_text(self, tmp_path):
        """The last non-empty line of a log is what a setting said last."""
        log = tmp_path / "a.log"
        log.write_text("epoch 1\nepoch 2 loss=0.3\n\n")
        assert last_line(log) == "epoch 2 loss=0.3"

    def test_a_progress_bar_shows_its_latest_state(self, tmp_path):
        """Carriage returns redraw a line: only the latest drawing counts; colours go."""
        log = tmp_path / "a.log"
        log.write_text("start\n 10%|#    |\r 50%|##   |\r\x1b[32m 90%|#### |\x1b[0m")
        assert last_line(log) == "90%|#### |"

    def test_a_missing_or_empty_log_says_nothing(self, tmp_path):
        """A setting that printed nothing (so has no log yet) shows an empty line."""
        assert last_line(tmp_path / "missing.log") == ""
        (tmp_path / "empty.log").write_text("")
        assert last_line(tmp_path / "empty.log") == ""

    def test_only_the_end_of_a_long_log_is_read(self, tmp_path):
        """A huge log costs one small read: the tail is enough for its last line."""
        log = tmp_path / "big.log"
        log.write_text("x" * 1_000_000 + "\nthe end\n")
        assert last_line(log, size=64) == "the end"


class TestPlainDisplay:
    def test_one_line_per_setting_then_a_summary(self):
        """Each finished or failed setting is a line with its count; the end is a summary."""
        out = io.StringIO()
        display = PlainDisplay(out)
        for event in (
            started(2),
            begin("a", "lr=0.1", T0),
            finish("a", "lr=0.1", T0 + 2, loss=0.123456),
            fail("b", "lr=1.0", T0 + 3),
            ended(completed=1, failed=1),
        ):
            display(event)
        lines = out.getvalue().splitlines()
        assert lines[0].startswith("Train: 2 settings, 0 done before, running 2 on 2 processes")
        assert lines[1] == "[1/2] done   lr=0.1 (2.0s) loss=0.1235"
        assert lines[2] == "[2/2] FAILED lr=1.0: ValueError: lr too large (log: logs/b.log)"
        assert lines[3].startswith("finished in 10.0s: 1 completed, 1 failed, 0 done before")

    def test_a_caller_may_own_the_first_and_last_lines(self):
        """With header and summary off, only the settings' lines are written."""
        out = io.StringIO()
        display = PlainDisplay(out, header=False, summary=False)
        for event in (started(1), finish("a", "lr=0.1", T0 + 1), ended(completed=1, failed=0)):
            display(event)
        assert out.getvalue().splitlines() == ["[1/1] done   lr=0.1 (2.0s)"]

    def test_quiet_keeps_only_stopping_and_the_summary(self):
        """--quiet: no line per setting, but a stop and the end are still said."""
        out = io.StringIO()
        display = PlainDisplay(out, quiet=True)
        for event in (
            started(2),
            finish("a", "lr=0.1", T0 + 1),
            RunStopping(T0 + 2, graceful=True),
            ended(interrupted=True, completed=1, failed=0),
        ):
            display(event)
        lines = out.getvalue().splitlines()
        assert len(lines) == 2
        assert lines[0].startswith("stopping: waiting for running settings")
        assert lines[1].startswith("interrupted in 10.0s: 1 completed, 0 failed")
        assert ", 1 not run" in lines[1]

    def test_a_retry_is_not_counted_as_done(self):
        """A failure that will be retried says so, and does not advance the count."""
        out = io.StringIO()
        display = PlainDisplay(out, header=False)
        display(started(1))
        display(fail("a", "lr=1.0", T0 + 1, retry=True))
        display(finish("a", "lr=1.0", T0 + 2))
        lines = out.getvalue().splitlines()
        assert lines[0].startswith("[0/1] FAILED lr=1.0: ValueError: lr too large, retrying")
        assert lines[1].startswith("[1/1] done   lr=1.0")

    def test_a_reported_row_is_said_at_most_once_a_minute_and_at_the_end(self):
        """A long setting's latest row is a progress line every 60 s (not one per row),
        and its done line shows the row it reported last."""
        out = io.StringIO()
        display = PlainDisplay(out, header=False)
        display(started(1))
        display(begin("a", "lr=0.1", T0))
        for step, at in enumerate((10, 50, 61, 90, 125)):
            display(SettingReported(T0 + at, "a", {"epoch": step, "loss": 1 / (step + 1)}))
        display(finish("a", "lr=0.1", T0 + 130))
        assert out.getvalue().splitlines() == [
            "[0/1] running lr=0.1: epoch 2  loss 0.3333",
            "[0/1] running lr=0.1: epoch 4  loss 0.2",
            "[1/1] done   lr=0.1 (2.0s) epoch=4 loss=0.2",
        ]


class TestLiveDisplay:
    def test_before_anything_finishes(self):
        """At the start: nothing done, everything waiting, no pace and no ETA yet."""
        clock = Clock()
        display = LiveDisplay(text_console()[0], clock=clock, live=False)
        display(started(4))
        shown = region(display)
        assert "0/4  0%  Train" in shown
        assert "✓ 0 completed  ✗ 0 failed  ▶ 0 running  · 4 waiting" in shown
        assert "? settings/s   elapsed 0:00   ETA ?" in shown

    def test_counts_pace_and_eta(self):
        """Counts follow the events; pace is settings per time since start; ETA the rest."""
        clock = Clock()
        display = LiveDisplay(text_console()[0], clock=clock, live=False)
        display(started(8))
        display(begin("a", "lr=0.1", T0))
        display(begin("b", "lr=0.2", T0, worker=1))
        display(finish("a", "lr=0.1", T0 + 2, loss=0.5))
        display(finish("b", "lr=0.2", T0 + 4, loss=0.25))
        clock.now = T0 + 4
        shown = region(display)
        assert "2/8  25%  Train" in shown
        assert "✓ 2 completed  ✗ 0 failed  ▶ 0 running  · 6 waiting" in shown
        # 2 settings in 4 s: 30 a minute, so the 6 left take 12 s.
        assert "30.0 settings/min   elapsed 0:04   ETA 0:12" in shown
        assert "last: lr=0.2  loss=0.25" in shown

    def test_fast_runs_count_per_second(self):
        """Past one setting a second, the pace reads in settings per second."""
        clock = Clock()
        display = LiveDisplay(text_console()[0], clock=clock, live=False)
        display(started(100))
        for i in range(50):
            display(finish(str(i), f"i={i}", T0 + i / 10))
        clock.now = T0 + 5
        assert "10.0 settings/s   elapsed 0:05   ETA 0:05" in region(display)

    def test_running_settings_show_their_last_line_of_output(self, tmp_path):
        """Each running setting is listed with its time so far and the last line it wrote."""
        log = tmp_path / "a.log"
        log.write_text("loading data\nepoch 3/10 loss=0.21\n")
        clock = Clock()
        display = LiveDisplay(text_console()[0], clock=clock, live=False)
        display(started(3))
        display(begin("a", "lr=0.1", T0 + 1, str(log)))
        display(begin("b", "lr=0.2", T0 + 2, str(tmp_path / "b.log"), attempt=2, worker=1))
        clock.now = T0 + 4.5
        lines = region(display).splitlines()
        assert "▶ 2 running  · 1 waiting" in lines[1]
        assert lines[3].split() == ["▶", "lr=0.1", "3.5s", "epoch", "3/10", "loss=0.21"]
        assert lines[4].split() == ["▶", "lr=0.2", "(attempt", "2)", "2.5s"]
        log.write_text("loading data\nepoch 3/10 loss=0.21\nepoch 4/10 loss=0.19\n")
        assert "epoch 4/10 loss=0.19" in region(display)

    def test_a_running_setting_shows_its_latest_reported_row(self, tmp_path):
        """A setting that reports rows shows its latest one, in place of its output."""
        log = tmp_path / "a.log"
        log.write_text("loading data\n")
        clock = Clock()
        display = LiveDisplay(text_console()[0], clock=clock, live=False)
        display(started(2))
        display(begin("a", "lr=0.1", T0, str(log)))
        display(begin("b", "lr=0.2", T0, worker=1))
        display(SettingReported(T0 + 1, "a", {"epoch": 6, "loss": 0.4, "val_acc": 0.7}))
        display(SettingReported(T0 + 2, "a", {"epoch": 7, "loss": 0.312, "val_acc": 0.81}))
        clock.now = T0 + 3
        lines = region(display).splitlines()
        assert lines[3].endswith("3.0s  epoch 7  loss 0.312  val_acc 0.81")
        assert "loading data" not in region(display)
        assert lines[4].split() == ["▶", "lr=0.2", "3.0s"]

    def test_a_row_reported_after_its_setting_ended_is_not_shown(self):
        """A row that arrives for a setting no longer running draws nothing."""
        display = LiveDisplay(text_console()[0], clock=Clock(), live=False)
        display(started(1))
        display(SettingReported(T0, "gone", {"epoch": 1}))
        assert "epoch" not in region(display)

    def test_only_so_many_running_settings_are_listed(self):
        """With many workers the list stops at max_running and says how many more."""
        display = LiveDisplay(text_console()[0], clock=Clock(), live=False, max_running=2)
        display(started(5))
        for i in range(5):
            display(begin(str(i), f"i={i}", T0 + i, worker=i))
        shown = region(display)
        assert "i=0" in shown
        assert "i=1" in shown
        assert "i=2" not in shown
        assert "… and 3 more" in shown

    def test_a_workers_next_start_ends_its_last_setting_in_the_view(self):
        """A worker runs one setting at a time: its next start ends the one before it."""
        display = LiveDisplay(text_console()[0], clock=Clock(), live=False)
        display(started(3))
        display(begin("a", "lr=0.1", T0, worker=0))
        display(begin("b", "lr=0.2", T0, worker=1))
        display(begin("c", "lr=0.3", T0 + 1, worker=0))  # a's end is not reported yet
        assert "▶ 2 running" in region(display)
        display(finish("a", "lr=0.1", T0 + 1.2))
        shown = region(display)
        assert "✓ 1 completed  ✗ 0 failed  ▶ 2 running  · 0 waiting" in shown
        assert "▶ lr=0.3" in shown
        assert "▶ lr=0.1" not in shown

    def test_a_retry_that_started_before_its_failure_was_reported_stays(self):
        """A retry started before its failure is reported (once durable) stays listed."""
        display = LiveDisplay(text_console()[0], clock=Clock(), live=False)
        display(started(2))
        display(begin("a", "lr=0.1", T0, worker=0))
        display(begin("a", "lr=0.1", T0 + 1, attempt=2, worker=1))
        display(fail("a", "lr=0.1", T0 + 1, retry=True))
        shown = region(display)
        assert "▶ 1 running" in shown
        assert "▶ lr=0.1 (attempt 2)" in shown

    def test_a_failure_is_printed_as_it_happens(self):
        """A failed setting is a line above the view: label, error and log."""
        console, out = text_console()
        display = LiveDisplay(console, clock=Clock(), live=False)
        display(started(2))
        display(begin("b", "lr=1.0", T0))
        display(fail("b", "lr=1.0", T0 + 1))
        assert out.getvalue().splitlines() == [
            "✗ lr=1.0  ValueError: lr too large  log: logs/b.log"
        ]
        assert "✗ 1 failed  ▶ 0 running" in region(display)

    def test_a_retried_failure_says_it_is_retried_and_is_not_counted(self):
        """A failure that will be retried is shown, but the failed count waits for the end."""
        console, out = text_console()
        display = LiveDisplay(console, clock=Clock(), live=False)
        display(started(1))
        display(fail("a", "lr=1.0", T0 + 1, retry=True))
        assert "(attempt 1; retrying)" in out.getvalue()
        assert "✗ 0 failed" in region(display)

    def test_stopping_is_said_above_and_in_the_view(self):
        """Ctrl-C: a line says the run is stopping, and the view says what it waits for."""
        console, out = text_console()
        display = LiveDisplay(console, clock=Clock(), live=False)
        display(started(2))
        display(begin("a", "lr=0.1", T0))
        display(RunStopping(T0 + 1, graceful=True))
        assert out.getvalue().startswith("stopping: waiting for running settings to finish")
        assert "stopping: waiting for 1 running settings (Ctrl-C again to kill them)" in region(
            display
        )

    def test_the_end_is_one_summary_line(self):
        """When the run ends the view goes, and a summary line says how it went."""
        console, out = text_console(200)
        display = LiveDisplay(console, clock=Clock(), live=False)
        display(started(4))
        display(ended())
        assert out.getvalue().strip() == (
            "finished in 10.0s: 3 completed, 1 failed, 0 done before; "
            "results: progress/train/Train/results.parquet"
        )

    def test_the_summary_can_be_left_to_the_caller(self):
        """summary=False: the command line prints its own end."""
        console, out = text_console()
        display = LiveDisplay(console, clock=Clock(), live=False, summary=False)
        display(started(4))
        display(ended())
        assert out.getvalue() == ""

    def test_live_view_starts_with_the_run_and_leaves_no_trace(self):
        """In a terminal the view is drawn from the first setting's start and redrawn in
        place; at the end it is gone from the screen, and only the summary is left."""
        console, out = terminal()
        display = LiveDisplay(console, clock=Clock(), auto_refresh=False)
        display(started(1))
        assert out.getvalue() == ""  # nothing is drawn until a setting starts
        display(begin("a", "lr=0.1", T0))
        shown = screen(out.getvalue())
        assert "0/1  0%  Train" in shown[0]
        assert shown[-1].split() == ["▶", "lr=0.1", "0.0s"]
        display(finish("a", "lr=0.1", T0 + 1))
        shown = screen(out.getvalue())
        assert "1/1  100%  Train" in shown[0]
        assert shown[-1] == "last: lr=0.1"
        assert not [line for line in shown if "0/1" in line or "▶ lr=0.1" in line]
        display(ended(completed=1, failed=0))
        assert screen(out.getvalue()) == [
            "finished in 10.0s: 1 completed, 0 failed, 0 done before; "
            "results: progress/train/Train/results.parquet"
        ]

    def test_nothing_to_run_draws_no_view(self):
        """A run with nothing left to do never draws the view: the summary is all it writes."""
        console, out = terminal()
        display = LiveDisplay(console, clock=Clock(), auto_refresh=False)
        display(started(0, completed=3))
        display(ended(completed=0, failed=0))
        assert out.getvalue() == (
            "finished in 10.0s: 0 completed, 0 failed, 0 done before; "
            "results: progress/train/Train/results.parquet\n"
        )

    def test_rich_waits_for_the_first_setting(self):
        """Without a console given, rich is loaded only once there is something to draw."""
        import subprocess
        import sys

        script = (
            "import sys\n"
            "from superparams._display import LiveDisplay\n"
            "d = LiveDisplay()\n"
            "print('rich' in sys.modules)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout
        assert out.strip() == "False"

    def test_close_is_safe_twice(self):
        """close() before any start, or again after the end, writes nothing and raises
        nothing."""
        console, out = terminal()
        display = LiveDisplay(console, clock=Clock(), auto_refresh=False)
        display.close()
        display.close()
        assert out.getvalue() == ""
        display(started(1))
        display(begin("a", "lr=0.1", T0))
        display(ended(completed=1, failed=0))
        written = out.getvalue()
        display.close()
        display.close()
        assert out.getvalue() == written


QUICK = """
import time
from superparams import Experiment, search

class Quick(Experiment):
    n: int = search(*range(40))

    def run(self):
        time.sleep(0.02)
        return {"n": self.n}
"""


class TestARealRun:
    def test_the_last_row_of_several_is_shown(self, workspace):
        """The live view shows the last row of a setting that returned one per epoch."""
        from tests.e2e.sources import EPOCHS

        space = workspace.load("epochs", EPOCHS).Epochs()
        display = LiveDisplay(text_console()[0], live=False, summary=False)
        space.run_all(display=display)
        assert "last: defaults  epoch=2 val_acc=0.85" in region(display)

    @pytest.mark.parametrize(("num_proc", "engine"), [(1, "inline"), (2, None)])
    def test_never_more_running_than_workers(self, workspace, num_proc, engine):
        """The live view never counts more settings running than there are workers."""
        space = workspace.load("quick", QUICK).Quick()
        display = LiveDisplay(text_console()[0], live=False, summary=False)
        seen: list[int] = []
        space.run_all(
            num_proc=num_proc,
            engine=engine,
            display=display,
            subscribers=[lambda e: seen.append(len(display.running))],
        )
        assert display.completed == 40
        assert max(seen) <= num_proc
        assert seen[-1] == 0
