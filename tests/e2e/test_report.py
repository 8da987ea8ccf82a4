"""Inside a long setting: rows reported as they come, a folder of its own, resume from it.

Each experiment here is written into a user's project and run as a user runs it: by the
``experiment`` command in a subprocess, or by a script killed with a real ``kill -9``.
"""

from __future__ import annotations

import signal

import polars as pl
import pytest
from tests.conftest import wait_for, with_group_killed
from tests.e2e.conftest import project, stored
from tests.e2e.sources import MODES
from tests.e2e.test_cli import experiment, write

pytestmark = pytest.mark.slow

# Two settings, each reporting three epochs and returning nothing.
TRAIN = """
from superparams import Experiment, search

class Train(Experiment):
    n: int = search(1, 2)

    def run(self):
        for epoch in range(3):
            self.report(epoch=epoch, loss=1.0 / (epoch + 1) / self.n)
"""

# Reports one row, then returns one.
BOTH = """
from superparams import Experiment, search

class Both(Experiment):
    n: int = search(1)

    def run(self):
        self.report(epoch=0, loss=0.5)
        return {"final": 1.0}
"""

# run() is a generator: each dict it yields is a reported row.
YIELDS = """
from superparams import Experiment, search

class Yields(Experiment):
    n: int = search(1, 2)

    def run(self):
        for epoch in range(3):
            yield {"epoch": epoch, "score": 10 * self.n + epoch}
"""

# Reports two epochs, then fails in one of three ways ($HOW: raise, hang or die).
BREAKS = """
import os
import time
from superparams import Experiment, search

class Breaks(Experiment):
    n: int = search(1)

    def run(self):
        self.report(epoch=0)
        self.report(epoch=1)
        how = os.environ["HOW"]
        if how == "raise":
            raise RuntimeError("the loss diverged")
        if how == "die":
            os._exit(9)
        time.sleep(60)
"""

# Reports a row, then waits for the file $GO: a setting the tests watch while it runs.
WAITS = """
import os
import time
from pathlib import Path
from superparams import Experiment, search

class Waits(Experiment):
    n: int = search(1)

    def run(self):
        self.report(epoch=0, loss=0.9)
        self.report(epoch=1, loss=0.5)
        Path(os.environ["REPORTED"]).write_text("")
        while not Path(os.environ["GO"]).exists():
            time.sleep(0.05)
"""

# Reports a row and, the moment report() returns, kills the whole run: the driver's
# process group, then itself (a worker lives in a session of its own).
SUDDEN = """
import os
import signal
from superparams import Experiment, search

class Sudden(Experiment):
    n: int = search(1)

    def run(self):
        self.report(epoch=0, loss=0.25)
        os.killpg(int(os.environ["DRIVER"]), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
"""

DRIVE_SUDDEN = """
import os
import sys
from sudden import Sudden

os.environ["DRIVER"] = str(os.getpid())  # its process group: it leads a session
engine = sys.argv[2] if len(sys.argv) > 2 else None
Sudden().run_all(num_proc=int(sys.argv[1]), engine=engine, display=False)
"""

# Which try this is, from a counter file beside the experiment: the first try fails
# after reporting a row, later ones complete.
TRIES = """
from pathlib import Path
from superparams import Experiment, search

COUNT = Path(__file__).with_name("tries")

class Tries(Experiment):
    n: int = search(1)

    def run(self):
        tried = int(COUNT.read_text()) + 1 if COUNT.exists() else 1
        COUNT.write_text(str(tried))
        self.report(run=tried)
        if tried == 1:
            raise RuntimeError("the first try fails")
"""


class TestReportedRows:
    @pytest.mark.parametrize("mode", MODES)
    def test_reported_rows_are_the_settings_results(self, tmp_path, mode):
        """A run() that reports three epochs and returns nothing has exactly those rows."""
        cwd = project(tmp_path, "train", TRAIN)
        done = experiment("train.Train", *MODES[mode], cwd=cwd)
        assert done.returncode == 0, done.stderr
        table = stored(cwd, "train.Train").sort("n", "epoch")
        assert table["n"].to_list() == [1, 1, 1, 2, 2, 2]
        assert table["epoch"].to_list() == [0, 1, 2] * 2
        assert table["loss"].to_list() == pytest.approx([1, 1 / 2, 1 / 3, 1 / 2, 1 / 4, 1 / 6])
        assert set(table["status"]) == {"completed"}

    @pytest.mark.parametrize("mode", MODES)
    def test_reported_and_returned_rows_are_kept_in_order(self, tmp_path, mode):
        """Rows reported and rows returned are both the setting's, reported ones first."""
        cwd = project(tmp_path, "both", BOTH)
        assert experiment("both.Both", *MODES[mode], cwd=cwd).returncode == 0
        table = stored(cwd, "both.Both")
        assert table.select("epoch", "loss", "final").rows() == [(0, 0.5, None), (None, None, 1.0)]

    @pytest.mark.parametrize("mode", MODES)
    def test_a_generator_run_reports_what_it_yields(self, tmp_path, mode):
        """A run() that yields dicts reports each of them (it is not a pickling error)."""
        cwd = project(tmp_path, "yields", YIELDS)
        done = experiment("yields.Yields", *MODES[mode], cwd=cwd)
        assert done.returncode == 0, done.stderr
        table = stored(cwd, "yields.Yields")
        assert sorted(table.select("n", "epoch", "score").rows()) == [
            (1, 0, 10), (1, 1, 11), (1, 2, 12), (2, 0, 20), (2, 1, 21), (2, 2, 22)
        ]  # fmt: skip


class TestRowsSurviveFailures:
    @pytest.mark.parametrize(
        ("how", "cause", "options"),
        [
            ("raise", "raised", ()),
            ("hang", "timeout", ("--timeout", "3")),
            ("die", "killed", ()),
        ],
    )
    def test_a_failed_setting_keeps_what_it_reported(self, tmp_path, start, how, cause, options):
        """A setting that raises, times out or whose worker dies keeps its reported rows,
        each beside its failure."""
        cwd = project(tmp_path, "breaks", BREAKS)
        done = start(cwd, "breaks.Breaks", "-j", "2", *options, HOW=how)
        done.communicate(timeout=60)
        assert done.returncode == 1
        table = stored(cwd, "breaks.Breaks")
        assert table["epoch"].to_list() == [0, 1]
        assert set(table["status"]) == {"failed"}
        assert set(table["cause"]) == {cause}

    @pytest.mark.parametrize(("num_proc", "engine"), [(1, "inline"), (2, "local")])
    def test_a_row_is_stored_before_report_returns(self, workspace, num_proc, engine):
        """kill -9 of the whole run the instant report() returns keeps that row; the
        setting is interrupted, or failed (killed) where it ran in the dead process."""
        workspace.write("sudden", SUDDEN)
        workspace.write("drive_sudden", DRIVE_SUDDEN)
        child = workspace.start("drive_sudden", str(num_proc), engine)
        child.communicate(timeout=60)
        assert child.returncode == -signal.SIGKILL
        table = workspace.load("sudden").Sudden().results()
        status = "failed" if engine == "inline" else "interrupted"
        assert table.select("epoch", "loss", "status").rows() == [(0, 0.25, status)]


class TestWhileRunning:
    def test_rows_and_status_show_while_the_setting_runs(self, tmp_path, start):
        """While a setting runs, `experiment results` shows what it reported and
        `experiment status` says it is running."""
        cwd = project(tmp_path, "waits", WAITS)
        reported, go = tmp_path / "reported", tmp_path / "go"
        child = start(cwd, "waits.Waits", "-j", "2", REPORTED=str(reported), GO=str(go))
        try:
            wait_for(reported.exists, "the setting to report its rows")
            table = stored(cwd, "waits.Waits")
            assert table.select("epoch", "loss", "status").rows() == [
                (0, 0.9, "running"),
                (1, 0.5, "running"),
            ]
            status = experiment("status", "waits.Waits", cwd=cwd)
            assert "running" in status.stdout, status.stdout
        finally:
            go.write_text("")
            child.communicate(timeout=60)
        assert child.returncode == 0
        assert set(stored(cwd, "waits.Waits")["status"]) == {"completed"}

    def test_after_a_kill_the_rows_are_kept_and_the_setting_is_interrupted(self, tmp_path, start):
        """kill -9 of the run while a setting runs: its rows stay, marked interrupted."""
        cwd = project(tmp_path, "waits", WAITS)
        reported, go = tmp_path / "reported", tmp_path / "go"
        child = start(cwd, "waits.Waits", "-j", "2", REPORTED=str(reported), GO=str(go))
        wait_for(reported.exists, "the setting to report its rows")
        with_group_killed(child)
        table = stored(cwd, "waits.Waits")
        assert table.select("epoch", "status").rows() == [(0, "interrupted"), (1, "interrupted")]


class TestAttempts:
    def test_a_retry_adds_to_the_rows_of_the_try_before(self, tmp_path):
        """Rows reported by a failed try stay when a retry runs the setting again."""
        cwd = project(tmp_path, "tries", TRIES)
        done = experiment("tries.Tries", "-j", "2", "--retries", "1", cwd=cwd)
        assert done.returncode == 0, done.stderr
        table = stored(cwd, "tries.Tries")
        assert table.select("run", "attempt").rows() == [(1, 1), (2, 2)]
        assert set(table["status"]) == {"completed"}

    def test_a_resume_after_kill_adds_to_the_rows_of_the_killed_run(self, tmp_path, start):
        """Rows reported before a kill -9 stay when the next run resumes the setting."""
        cwd = project(tmp_path, "waits", WAITS)
        reported, go = tmp_path / "reported", tmp_path / "go"
        child = start(cwd, "waits.Waits", "-j", "2", REPORTED=str(reported), GO=str(go))
        wait_for(reported.exists, "the setting to report its rows")
        with_group_killed(child)
        go.write_text("")
        again = start(cwd, "waits.Waits", "-j", "2", REPORTED=str(reported), GO=str(go))
        _, err = again.communicate(timeout=60)
        assert again.returncode == 0, err
        table = stored(cwd, "waits.Waits")
        assert table.select("epoch", "status").rows() == [
            (0, "completed"), (1, "completed"), (0, "completed"), (1, "completed")
        ]  # fmt: skip

    def test_a_rerun_of_outdated_settings_replaces_the_rows(self, tmp_path):
        """Rerunning a setting made by earlier code starts it over: only the new rows."""
        cwd = project(tmp_path, "train", TRAIN)
        assert experiment("train.Train", "-j", "2", cwd=cwd).returncode == 0
        write(cwd / "experiments/train.py", TRAIN.replace("range(3)", "range(1, 3)"))
        done = experiment("train.Train", "-j", "2", "--rerun-outdated", cwd=cwd)
        assert done.returncode == 0, done.stderr
        assert stored(cwd, "train.Train").sort("n", "epoch")["epoch"].to_list() == [1, 2, 1, 2]

    def test_fresh_replaces_the_rows(self, tmp_path):
        """--fresh starts the setting over: the rows of earlier runs are gone."""
        cwd = project(tmp_path, "tries", TRIES)
        assert experiment("tries.Tries", "-j", "2", cwd=cwd).returncode == 1
        assert experiment("tries.Tries", "-j", "2", "--rerun-failed", cwd=cwd).returncode == 0
        assert stored(cwd, "tries.Tries")["run"].to_list() == [1, 2]
        assert experiment("tries.Tries", "-j", "2", "--fresh", cwd=cwd).returncode == 0
        assert stored(cwd, "tries.Tries")["run"].to_list() == [3]


# Each setting reports its loss per epoch; the loss of a large lr goes up.
DIVERGES = """
from superparams import Experiment, search

class Diverges(Experiment):
    lr: float = search(0.1, 10.0)

    def run(self):
        for epoch in range(5):
            self.report(epoch=epoch, loss=1.0 + epoch * (1 if self.lr > 1 else -0.1))
"""


class TestStopRules:
    @pytest.mark.parametrize(("num_proc", "engine"), [(1, "inline"), (2, None)])
    def test_a_threshold_stops_a_setting_at_the_report_that_crosses_it(
        self, workspace, num_proc, engine
    ):
        """run_all(stop=threshold(...)) ends a setting at the report past the bound: it is
        completed with the rows so far, its `stopped` column names the rule, and a second
        run does not run it again."""
        from superparams.stopping import threshold

        space = workspace.load("diverges", DIVERGES).Diverges()
        table = space.run_all(
            num_proc=num_proc, engine=engine, display=False, stop=threshold("loss", above=2.5)
        )
        slow = table.filter(pl.col("lr") == 10.0)
        assert slow["epoch"].to_list() == [0, 1, 2]
        assert set(slow["status"]) == {"completed"}
        assert slow["stopped"].drop_nulls().unique().len() == 1
        fine = table.filter(pl.col("lr") == 0.1)
        assert fine["epoch"].to_list() == [0, 1, 2, 3, 4]
        assert fine["stopped"].null_count() == fine.height
        assert sorted(space.plan().done) == [0, 1]  # neither runs again
