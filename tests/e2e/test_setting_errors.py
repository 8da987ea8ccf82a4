"""A derived field or ``is_valid()`` that raises for one setting fails that setting only.

Through the real ``experiment`` command, in its own process and in worker processes:
the run goes on, the setting is a failed row with the traceback of the user's code, the
exit code says some failed.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from tests.e2e.sources import MODES
from tests.e2e.test_cli import experiment, write

pytestmark = pytest.mark.slow


SOURCE = """
from superparams import Experiment, derived, search

class Ratios(Experiment):
    width: int = search(0, 1, 2, 4)
    inverse: float = derived(lambda s: 1 / s.width)

    def run(self):
        return {"doubled": 2 * self.inverse}

class Checked(Experiment):
    n: int = search(1, 2, 3, 4)

    def is_valid(self):
        if self.n == 3:
            raise ValueError(f"is_valid cannot tell for n={self.n}")
        return self.n != 4

    def run(self):
        return {"doubled": 2 * self.n}
"""


def table(root: Path, cls: str) -> pl.DataFrame:
    return pl.read_parquet(root / "progress/ratios" / cls / "results.parquet")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path / "ratios.py", SOURCE)
    return tmp_path


class TestARaisingSettingFailsAlone:
    """The setting whose derived field or is_valid raises fails; the others complete."""

    @pytest.mark.parametrize("mode", MODES)
    def test_a_derived_field_that_raises(self, project, mode):
        """width=0 divides by zero: a failed row with its traceback; 1, 2 and 4 complete."""
        done = experiment("ratios.Ratios", *MODES[mode], cwd=project)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        rows = table(project, "Ratios").sort("width")
        assert rows["status"].to_list() == ["failed", "completed", "completed", "completed"]
        assert rows["doubled"].to_list() == [None, 2.0, 1.0, 0.5]
        failed = rows.row(0, named=True)
        assert (failed["cause"], failed["error"]) == (
            "raised",
            "ZeroDivisionError: division by zero",
        )
        assert "1 / s.width" in failed["traceback"]
        assert failed["inverse"] is None

    @pytest.mark.parametrize("mode", MODES)
    def test_an_is_valid_that_raises(self, project, mode):
        """n=3 raises in is_valid: it counts as in the space and fails; n=4 is skipped."""
        done = experiment("ratios.Checked", *MODES[mode], cwd=project)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        rows = table(project, "Checked").sort("n")
        assert rows["n"].to_list() == [1, 2, 3]
        assert rows["status"].to_list() == ["completed", "completed", "failed"]
        failed = rows.row(2, named=True)
        assert (failed["cause"], failed["error"]) == (
            "raised",
            "ValueError: is_valid cannot tell for n=3",
        )
        assert "in is_valid" in failed["traceback"]

    def test_one_setting_pinned_from_the_command_line(self, project):
        """--width 0 is a space of one setting, which fails; nothing crashes."""
        done = experiment("ratios.Ratios", "--width", "0", cwd=project)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        rows = table(project, "Ratios")
        assert rows["status"].to_list() == ["failed"]

    def test_the_failed_setting_is_run_again_by_rerun_failed(self, project):
        """It is a failed setting like any other: --rerun-failed tries it again."""
        experiment("ratios.Ratios", cwd=project)
        again = experiment("ratios.Ratios", "--rerun-failed", cwd=project)
        assert again.returncode == 1, again.stderr
        assert "1 failed" in again.stderr
        assert table(project, "Ratios").height == 4


# Results that pickle in the worker and cannot be loaded in the driver: an object whose
# __reduce__ names a function that raises, and an object of a class that only worker
# processes define (the module defines it when it is imported by a worker).
UNREADABLE = """
import sys

from superparams import Experiment, search


def refuse(text):
    raise RuntimeError(text)


class Poison:
    def __reduce__(self):
        return (refuse, ("this result cannot be loaded",))


if sys.argv[0].endswith("_process.py"):  # a local worker process

    class WorkerOnly:
        pass


class Unreadable(Experiment):
    how: str = search("fine", "raises", "worker-only", "reported", "after")

    def run(self):
        if self.how == "raises":
            return {"value": Poison()}
        if self.how == "worker-only":
            return {"value": WorkerOnly()}
        if self.how == "reported":
            self.report(step=0)
            self.report(step=1, value=Poison())
            return {"done": 1}
        return {"value": 1}
"""


class TestResultsThatCannotBeReadBack:
    """A result that pickles in the worker but cannot be loaded in the driver fails its
    setting, with cause 'unpicklable'; the run goes on."""

    @pytest.mark.parametrize("workers", ["1", "2"])
    def test_each_fails_alone(self, tmp_path, workers):
        """The three unreadable settings are failed rows saying their results could not
        be read back; the others complete; exit code 1, no traceback."""
        write(tmp_path / "unreadable.py", UNREADABLE)
        done = experiment("unreadable.Unreadable", "-j", workers, cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        rows = pl.read_parquet(tmp_path / "progress/unreadable/Unreadable/results.parquet")
        outcome = {
            row["how"]: (row["status"], row["cause"], row["error"])
            for row in rows.iter_rows(named=True)
        }
        assert outcome["fine"] == ("completed", None, None)
        assert outcome["after"] == ("completed", None, None)
        for how in ("raises", "worker-only"):
            status, cause, error = outcome[how]
            assert (status, cause) == ("failed", "unpicklable"), how
            assert error.startswith("run() returned results that could not be read back: ")
        assert outcome["raises"][2].endswith("RuntimeError: this result cannot be loaded")
        assert "WorkerOnly" in outcome["worker-only"][2]
        status, cause, error = outcome["reported"]
        assert (status, cause) == ("failed", "unpicklable")
        assert error == (
            "a row it reported could not be read back: RuntimeError: this result cannot be loaded"
        )
        reported = rows.filter(pl.col("how") == "reported")
        assert reported["step"].to_list() == [0]  # the row before it is kept
        again = experiment("unreadable.Unreadable", "-j", workers, cwd=tmp_path)
        assert again.returncode == 1, again.stderr
        assert "3 failed" in again.stderr


KEYS = """
from superparams import Experiment, search


class Keys(Experiment):
    n: int = search(1, 2)

    def run(self):
        if self.n == 2:
            return {"a.b": 1, "a": {"b": 2}}
        return {"status": "mine", "n": 10, "result": {"status": 3}}
"""


class TestReturnedKeys:
    def test_the_summary_says_where_each_went(self, tmp_path):
        """A returned key that names a column superparams fills is stored as key_, and
        the run's summary says so; 'a.b' beside a nested 'a' fails its setting."""
        write(tmp_path / "keys.py", KEYS)
        done = experiment("keys.Keys", cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        for key in ("status", "n"):
            said = f"run() returned {key!r}, the name of a column superparams fills;"
            assert f"{said} it is stored as '{key}_'" in done.stderr, done.stderr
        assert "failed: n=2: ValueError: run() returned both ['a.b'] and ['a']['b']" in (
            done.stderr
        )
        rows = pl.read_parquet(tmp_path / "progress/keys/Keys/results.parquet").sort("n")
        first = rows.row(0, named=True)
        assert (first["status_"], first["n_"], first["result.status"]) == ("mine", 10, 3)
        assert (first["status"], first["n"]) == ("completed", 1)
