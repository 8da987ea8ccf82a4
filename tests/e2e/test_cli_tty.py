"""The experiment command in a terminal: the resume prompt, the live view, pdb, Ctrl-C.

Each test runs the installed command in a pseudo-terminal (pexpect), types the answers
a person would, and reads what the terminal shows.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pexpect
import polars as pl
import pytest
from tests.e2e.sources import FLAKY

pytestmark = pytest.mark.slow

COMMAND = Path(sys.executable).with_name("experiment")

SEED = """
from superparams import Experiment, search

class Hyperparams(Experiment):
    steps: int = 100
    batch_size: int = search(16, 32)

    def run(self) -> dict:
        print("training", self.batch_size)
        return {"total samples": self.batch_size * self.steps}
"""


LIVE = """
import time
from superparams import Experiment, search

class Live(Experiment):
    n: int = search(0, 1, 2, 3)
    pause: float = 0.4

    def run(self):
        for step in range(4):
            print(f"n={self.n} at step {step}", flush=True)
            time.sleep(self.pause)
        if self.n == 3:
            raise ValueError("n=3 diverged")
        return {"loss": 1 / (self.n + 1)}
"""


# Reports an epoch at a time, slowly enough to be watched.
EPOCHS = """
import time
from superparams import Experiment, search

class Epochs(Experiment):
    n: int = search(0, 1)

    def run(self):
        for epoch in range(30):
            self.report(epoch=epoch, loss=round(1 / (epoch + 1), 3), val_acc=0.5 + self.n / 10)
            time.sleep(0.1)
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SUPERPARAMS_PROGRESS", None)
    env.pop("NO_COLOR", None)
    env["TERM"] = "xterm-256color"
    return env


def spawn(*args: str, cwd: Path) -> pexpect.spawn:
    """The installed command in a terminal of 40 rows and 120 columns."""
    return pexpect.spawn(
        str(COMMAND),
        list(args),
        cwd=str(cwd),
        env=environment(),
        encoding="utf-8",
        dimensions=(40, 120),
        timeout=60,
    )


def finish(child: pexpect.spawn) -> tuple[int, str]:
    """Wait for the command to end; its exit code and what it printed since the last match.

    The text comes without colours and cursor moves, as a person reads it.
    """
    child.expect(pexpect.EOF)
    rest = child.before
    child.close()
    return child.exitstatus, plain(rest)


ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


def plain(text: str) -> str:
    return ANSI.sub("", text).replace("\r", "")


def run_plain(*args: str, cwd: Path) -> int:
    done = subprocess.run(
        [str(COMMAND), *args],
        cwd=cwd,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return done.returncode


class TestResumePrompt:
    @pytest.fixture
    def failed_once(self, tmp_path):
        """A run in the past: two settings completed, one failed."""
        write(tmp_path / "flaky.py", FLAKY)
        assert run_plain("flaky.Flaky", cwd=tmp_path) == 1
        return tmp_path

    PROMPT = "Resume (skip the 2 completed, run 1)? [Y]es, [f]resh: run all again, [n]o: quit "

    def test_says_what_was_found_and_asks(self, failed_once):
        """Earlier results in a terminal: what is stored, then a question; n quits."""
        record = (failed_once / "progress/flaky/Flaky/record.jsonl").read_bytes()
        child = spawn("flaky.Flaky", cwd=failed_once)
        child.expect_exact("stored:  2 completed, 1 failed, 0 interrupted, 0 new")
        child.expect_exact(self.PROMPT)
        child.sendline("n")
        child.expect_exact("nothing run")
        code, _ = finish(child)
        assert code == 0
        assert (failed_once / "progress/flaky/Flaky/record.jsonl").read_bytes() == record

    def test_enter_resumes(self, failed_once):
        """Enter takes the default: run what is left, keep what completed."""
        child = spawn("flaky.Flaky", cwd=failed_once)
        child.expect_exact(self.PROMPT)
        child.sendline("")
        code, shown = finish(child)
        assert code == 0, shown
        table = pl.read_parquet(failed_once / "progress/flaky/Flaky/results.parquet")
        assert table["status"].to_list() == ["completed"] * 3
        assert table["attempt"].to_list() == [1, 1, 1]  # the first try of this run

    def test_fresh_runs_everything_again(self, failed_once):
        """f starts afresh: every setting runs again."""
        child = spawn("flaky.Flaky", cwd=failed_once)
        child.expect_exact(self.PROMPT)
        child.sendline("f")
        code, shown = finish(child)
        assert code == 0
        table = pl.read_parquet(failed_once / "progress/flaky/Flaky/results.parquet")
        assert table.height == 3
        assert table["attempt"].to_list() == [1, 1, 1]  # a rerun is not a retry
        assert "3 completed, 0 failed, 0 done before" in shown

    def test_a_wrong_answer_is_asked_again(self, failed_once):
        """An answer that is none of the choices gets the question again."""
        child = spawn("flaky.Flaky", cwd=failed_once)
        child.expect_exact(self.PROMPT)
        child.sendline("maybe")
        child.expect_exact("please answer y, f or n")
        child.expect_exact(self.PROMPT)
        child.sendline("n")
        assert finish(child)[0] == 0

    def test_yes_does_not_ask(self, failed_once):
        """--yes resumes without a question, even in a terminal."""
        child = spawn("flaky.Flaky", "--yes", cwd=failed_once)
        code, shown = finish(child)
        assert code == 0
        assert "Resume" not in shown

    def test_nothing_stored_nothing_asked(self, tmp_path):
        """A first run starts at once."""
        write(tmp_path / "experiments/params.py", SEED)
        child = spawn("params.Hyperparams", cwd=tmp_path)
        code, shown = finish(child)
        assert code == 0
        assert "Resume" not in shown


class TestLiveView:
    def test_counts_pace_running_settings_and_failures(self, tmp_path):
        """While running: counts, pace and ETA, each running setting's last line, failures."""
        write(tmp_path / "live.py", LIVE)
        child = spawn("live.Live", "-j", "2", cwd=tmp_path)
        child.expect_exact("running 4 settings on 2 worker processes")
        child.expect_exact("▶ 2 running")
        child.expect(r"n=[01] at step [1-3]")  # the last line a running setting printed
        child.expect(r"settings/(s|min)   elapsed 0:0\d   ETA 0:0\d")
        child.expect_exact("ValueError: n=3 diverged")  # printed as it happens
        code, shown = finish(child)
        assert code == 1
        lines = shown.splitlines()
        assert "✓ 3 completed  ✗ 1 failed" in shown
        assert "failed: n=3: ValueError: n=3 diverged" in lines
        assert "results: progress/live/Live/results.parquet" in lines
        table = [
            line.split() for line in lines if line.strip().startswith(("0 ", "1 ", "2 ", "3 "))
        ]
        assert [row[0] for row in table] == ["0", "1", "2", "3"]

    def test_a_running_setting_shows_its_latest_reported_row(self, tmp_path):
        """A setting that reports rows shows its latest one beside it while it runs."""
        write(tmp_path / "epochs.py", EPOCHS)
        child = spawn("epochs.Epochs", "-j", "2", cwd=tmp_path)
        child.expect(r"epoch [3-9]  loss 0\.\d+  val_acc 0\.[56]")
        code, _ = finish(child)
        assert code == 0

    def test_a_failure_line_appears_while_others_run(self, tmp_path):
        """A failure is printed above the view while other settings still run."""
        write(tmp_path / "live.py", LIVE)
        child = spawn("live.Live", "-j", "2", "--n", "3,0,1", cwd=tmp_path)
        # the failure line, styled piece by piece (a running line may show the error too)
        child.expect(r"✗ (?:\x1b\[[\d;]*m)*n=3(?:\x1b\[[\d;]*m)*  ValueError: n=3 diverged")
        child.expect_exact("▶ 1 running")  # the others are still going
        code, _ = finish(child)
        assert code == 1

    def test_the_results_table_at_the_end(self, tmp_path):
        """At the end: the varying parameters and the results, as a table."""
        write(tmp_path / "experiments/params.py", SEED)
        child = spawn("params.Hyperparams", "-j", "2", cwd=tmp_path)
        code, shown = finish(child)
        assert code == 0
        rows = [line.split() for line in shown.splitlines()]
        header = rows.index(["batch_size", "total", "samples", "time"])
        assert [row[:2] for row in rows[header + 2 : header + 4]] == [
            ["16", "1600"],
            ["32", "3200"],
        ]

    def test_quiet_in_a_terminal_too(self, tmp_path):
        """--quiet draws no live view, only the summary."""
        write(tmp_path / "experiments/params.py", SEED)
        child = spawn("params.Hyperparams", "--quiet", cwd=tmp_path)
        code, shown = finish(child)
        assert code == 0
        assert next(line for line in shown.splitlines() if line.strip()).startswith("finished ")


class TestInterrupt:
    def test_ctrl_c_stops_after_the_running_settings(self, tmp_path):
        """Ctrl-C: the view says it is stopping, running settings finish, exit 130."""
        write(tmp_path / "live.py", LIVE)
        child = spawn("live.Live", "--n", "0,1,2", "--pause", "0.5", cwd=tmp_path)
        child.expect_exact("n=0 at step 1")  # running, past the worker's start-up
        child.sendintr()
        child.expect_exact("stopping: waiting for running settings to finish")
        code, shown = finish(child)
        assert code == 130
        assert "run the same command again to resume" in shown
        table = pl.read_parquet(tmp_path / "progress/live/Live/results.parquet")
        assert table["status"].to_list() == ["completed"]


class TestDebug:
    def test_pdb_opens_at_the_failure(self, tmp_path):
        """--debug: the first failure opens pdb in the frame that raised."""
        write(tmp_path / "flaky.py", FLAKY)
        child = spawn("flaky.Flaky", "--debug", cwd=tmp_path)
        child.expect_exact("RuntimeError: the first try fails")
        child.expect_exact("(Pdb) ")
        child.sendline("p self.n * 100")
        child.expect_exact("200")
        child.expect_exact("(Pdb) ")
        child.sendline("q")
        code, _ = finish(child)
        assert code == 1


class TestClean:
    @pytest.fixture
    def ran(self, tmp_path):
        write(tmp_path / "experiments/params.py", SEED)
        assert run_plain("params.Hyperparams", cwd=tmp_path) == 0
        return tmp_path

    QUESTION = (
        "Delete 2 stored settings of Hyperparams and their logs in "
        "experiments/progress/params/Hyperparams? [y/N] "
    )

    def test_clean_asks_and_y_deletes(self, ran):
        """clean says what it would delete, and deletes it on y."""
        child = spawn("clean", "params.Hyperparams", cwd=ran)
        child.expect_exact(self.QUESTION)
        child.sendline("y")
        child.expect_exact("deleted 2 stored settings of Hyperparams")
        assert finish(child)[0] == 0
        assert not (ran / "experiments/progress/params/Hyperparams").exists()

    def test_anything_but_yes_keeps_everything(self, ran):
        """Enter (the default, no) deletes nothing."""
        child = spawn("clean", "params.Hyperparams", cwd=ran)
        child.expect_exact(self.QUESTION)
        child.sendline("")
        child.expect_exact("nothing deleted")
        assert finish(child)[0] == 0
        assert (ran / "experiments/progress/params/Hyperparams/results.parquet").exists()
