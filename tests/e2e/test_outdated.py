"""Rows made by earlier code are marked wherever results are read: the `experiment` command.

Each test starts from an experiment run once, whose run() the user then edits (the score
is now ten times the old one) and whose search is widened by one value, run again: the
settings of lr 1 and 2 hold outcomes of the earlier code, those of lr 3 of the current.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import experiment, write
from tests.e2e.test_report_html import page_data

pytestmark = pytest.mark.slow

FIT = """
from superparams import Experiment, search, seeds


class Fit(Experiment):
    lr: int = search(1, 2)
    seed: int = seeds(2)

    def run(self):
        return {"score": self.lr + self.seed / 10}
"""

CLOSING = (
    "4 of 6 settings are outdated (made by an earlier version of Fit's code): "
    "rerun them with `experiment params --rerun-outdated`"
)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fit run, its run() edited and its search widened, then run again (resumed)."""
    root = tmp_path_factory.mktemp("outdated")
    path = write(root / "params.py", FIT)
    assert experiment("params", "-q", cwd=root).returncode == 0
    edit(path, "self.lr + self.seed", "10 * self.lr + self.seed")
    edit(path, "search(1, 2)", "search(1, 2, 3)")
    again = experiment("params", "-q", cwd=root)
    assert again.returncode == 0, again.stderr
    return root


def command(project: Path, *args: str) -> tuple[str, str]:
    done = experiment(*args, cwd=project)
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


class TestTheResultsTable:
    def test_outdated_rows_are_marked_and_counted(self, project):
        """`experiment results` shows an outdated column and says how many are outdated."""
        out, err = command(project, "results", "params")
        header, _, *rows = out.splitlines()
        names = header.split()
        assert "outdated" in names
        marks = {(r.split()[0], r.split()[1]): r.split()[names.index("outdated")] for r in rows}
        assert marks == {
            ("1", "0"): "true",
            ("1", "1"): "true",
            ("2", "0"): "true",
            ("2", "1"): "true",
            ("3", "0"): "false",
            ("3", "1"): "false",
        }
        assert err.strip().splitlines()[-1] == CLOSING

    def test_exports_carry_the_column(self, project):
        """--csv and --json carry outdated for every row; --parquet writes it too."""
        out, _ = command(project, "results", "params", "--csv")
        table = pl.read_csv(io.StringIO(out))
        assert table.sort("lr", "seed")["outdated"].to_list() == [True] * 4 + [False] * 2
        out, _ = command(project, "results", "params", "--json")
        rows = json.loads(out)["rows"]
        assert [r["outdated"] for r in rows if r["lr"] == 3] == [False, False]
        assert [r["outdated"] for r in rows if r["lr"] != 3] == [True] * 4
        command(project, "results", "params", "--parquet", "out.parquet", "--force")
        written = pl.read_parquet(project / "out.parquet")
        assert written.schema["outdated"] == pl.Boolean
        assert written["outdated"].sum() == 4

    def test_a_paper_table_marks_them_with_a_dagger(self, project):
        """--format markdown and latex: a dagger on each outdated setting, a note under
        the table saying what it means, and the closing line on stderr."""
        out, err = command(project, "results", "params", "--over", "seed", "--format", "markdown")
        lines = out.splitlines()
        assert [line.split(" | ")[0] for line in lines[2:5]] == ["| 1 †", "| 2 †", "| 3"]
        assert lines[-1] == "† outdated: made by an earlier version of the code"
        assert err.strip().splitlines()[-1] == CLOSING.replace("4 of 6", "2 of 3")
        latex, _ = command(project, "results", "params", "--over", "seed", "--format", "latex")
        assert "1$^\\dagger$ &" in latex
        assert "\n3 &" in latex
        assert (
            latex.splitlines()[-1]
            == "% $^\\dagger$ outdated: made by an earlier version of the code"
        )

    def test_the_summary_over_seeds_is_marked(self, project):
        """--over seed marks a setting any of whose seeds is outdated, and counts them."""
        out, err = command(project, "results", "params", "--over", "seed")
        header, _, *rows = out.splitlines()
        assert header.split()[-1] == "outdated"
        assert [(r.split()[0], r.split()[-1]) for r in rows] == [
            ("1", "true"),
            ("2", "true"),
            ("3", "false"),
        ]
        assert err.strip().splitlines()[-1] == (
            "2 of 3 settings are outdated (made by an earlier version of Fit's code): "
            "rerun them with `experiment params --rerun-outdated`"
        )
        out, _ = command(project, "results", "params", "--over", "seed", "--csv")
        assert pl.read_csv(io.StringIO(out))["outdated"].to_list() == [True, True, False]

    def test_nothing_outdated_shows_no_mark(self, project, tmp_path):
        """With every row made by the current code, no outdated column and no closing line."""
        write(tmp_path / "params.py", FIT)
        assert experiment("params", "-q", cwd=tmp_path).returncode == 0
        out, err = command(tmp_path, "results", "params")
        assert "outdated" not in out
        assert "outdated" not in err


class TestPlotsAndPages:
    def test_plot_draws_outdated_points_dashed(self, project, tmp_path):
        """`experiment plot` draws a series holding outdated points dashed, and only then."""
        out, _ = command(project, "plot", "params", "--x", "lr", "--y", "score", "--out", "p.svg")
        assert out == ""
        assert "stroke-dasharray" in (project / "p.svg").read_text()
        write(tmp_path / "params.py", FIT)
        assert experiment("params", "-q", cwd=tmp_path).returncode == 0
        command(tmp_path, "plot", "params", "--x", "lr", "--y", "score", "--out", "p.svg")
        assert "stroke-dasharray" not in (tmp_path / "p.svg").read_text()

    def test_report_marks_outdated_rows_and_the_winner(self, project):
        """`experiment report` holds outdated per row, per summary row and for the winner."""
        command(project, "report", "params", "--out", "report.html")
        data = page_data((project / "report.html").read_text())["experiments"][0]
        settings = data["settings"]
        marks = sorted(zip(settings["lr"], settings["outdated"], strict=True))
        assert marks == [(1, True), (1, True), (2, True), (2, True), (3, False), (3, False)]
        assert sorted(zip(data["summary"]["lr"], data["summary"]["outdated"], strict=True)) == [
            (1, True),
            (2, True),
            (3, False),
        ]
        assert data["best"]["score"]["max"]["outdated"] is False  # lr 3: current code
        assert data["best"]["score"]["min"]["outdated"] is True  # lr 1: earlier code
