"""Every field name the class accepts works with every command, through the real command.

A field called ``n``, ``mean``, ``std`` or ``left_out`` collides with no column the summary
or the plot makes; a field called like a command's option (``x``, ``y``, ``out``, ``sort``)
leaves the option to the command and is set with ``--set NAME=VALUES``; in a run a field
keeps its flag and the option it hides is ``--run-NAME``; values are drawn as text, never
as matplotlib's mathtext.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from tests.conftest import experiment, write

pytestmark = pytest.mark.slow

NAMES = """
import time
from superparams import Experiment, search, seeds

class Stats(Experiment):
    n: int = search(1, 2)
    mean: float = search(0.5, 1.5)
    std: str = "a"
    left_out: str = search("none", "layer1")
    seed: int = seeds(2)

    def run(self):
        return {"acc": self.n * self.mean + self.seed}

class Options(Experiment):
    x: int = search(1, 2)
    y: int = search(3, 4)
    hue: str = "h"
    out: str = "o"
    sort: str = "s"
    over: int = 0
    seed: int = seeds(2)

    def run(self):
        return {"acc": 10 * self.x + self.y + self.seed / 10}

class Hidden(Experiment):
    timeout: float = 1.0
    retries: int = 0
    nap: float = 0.0

    def run(self):
        time.sleep(self.nap)
        return {"timeout_seen": self.timeout, "retries_seen": self.retries}

class Money(Experiment):
    tag: str = search("$\\\\frac{a$", "cost $5 and $6")
    seed: int = seeds(2)

    def run(self):
        return {"acc": len(self.tag) + self.seed}

class Dollars(Experiment):
    tag: str = search("cost $5 and $6", "plain")
    seed: int = seeds(2)

    def run(self):
        return {"acc": len(self.tag) + self.seed}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A folder where every experiment of names.py has run, every setting completed."""
    root = tmp_path_factory.mktemp("names")
    write(root / "names.py", NAMES)
    for name in ("Stats", "Options", "Hidden", "Money", "Dollars"):
        done = experiment(f"names.{name}", "-q", cwd=root)
        assert done.returncode == 0, done.stderr
    return root


def ok(*args: str, cwd: Path) -> str:
    done = experiment(*args, cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


class TestFieldsNamedLikeStatistics:
    """A field named n, mean, std or left_out breaks no summary, plot or report."""

    def test_plot_draws_against_a_field_named_n(self, project):
        """`plot --x n --y acc` writes the plot when fields are called n, mean and std."""
        ok("plot", "names.Stats", "--x", "n", "--y", "acc", "--out", "n.svg", cwd=project)
        assert (project / "n.svg").read_text().count("<svg") == 1

    def test_plot_draws_against_a_field_named_mean(self, project):
        """`plot --x mean --y acc --hue n` draws one line per n."""
        ok("plot", "names.Stats", "--x", "mean", "--y", "acc", "--hue", "n", cwd=project)
        assert (project / "acc-by-mean.png").stat().st_size > 0

    def test_the_report_is_written(self, project):
        """`report` writes its page, the fields under their own names in its table and its
        summary, the count of settings left out apart from the field left_out."""
        from tests.e2e.test_report_html import page_data

        ok("report", "names.Stats", "--out", "stats.html", cwd=project)
        (data,) = page_data((project / "stats.html").read_text())["experiments"]
        assert data["parameters"] == ["n", "mean", "std", "left_out"]
        assert data["metrics"] == ["acc"]
        summary = data["summary"]
        assert list(summary)[:3] == ["n", "mean", "left_out"]
        assert summary["left_out"][0] == "none"  # the field's value, not a count
        assert set(summary["left_out_"]) == {0}

    def test_the_summary_keeps_the_fields_and_says_left_out_apart(self, project):
        """`results --over seed --csv`: the fields keep their names, the count that clashes
        with the field left_out is left_out_, and the means are right."""
        table = rows(ok("results", "names.Stats", "--over", "seed", "--csv", cwd=project))
        assert list(table[0]) == [
            "n",
            "mean",
            "left_out",
            "acc_mean",
            "acc_std",
            "acc_sem",
            "acc_n",
            "acc_ci_low",
            "acc_ci_high",
            "left_out_",
            "outdated",
        ]
        first = table[0]
        assert (first["n"], first["mean"], first["left_out"]) == ("1", "0.5", "none")
        assert float(first["acc_mean"]) == pytest.approx(1 * 0.5 + 0.5)
        assert first["acc_n"] == "2"
        assert {r["left_out_"] for r in table} == {"0"}

    def test_where_and_sort_read_the_fields(self, project):
        """`--where` and `--sort` name a field called mean, and a metric by its mean."""
        out = ok(
            "results",
            "names.Stats",
            "--over",
            "seed",
            "--where",
            "mean > 1 AND acc > 2",
            "--sort",
            "-acc",
            "--csv",
            cwd=project,
        )
        table = rows(out)
        assert {r["mean"] for r in table} == {"1.5"}
        assert [float(r["acc_mean"]) for r in table] == sorted(
            (float(r["acc_mean"]) for r in table), reverse=True
        )
        assert {r["n"] for r in table} == {"2"}


class TestACommandsOptionsWin:
    """Outside a run the command's options win; --set NAME=VALUES sets any field."""

    def test_plot_takes_x_when_a_field_is_named_x(self, project):
        """`plot --x x --y acc` plots against the field x."""
        out = project / "x.svg"
        ok("plot", "names.Options", "--x", "x", "--y", "acc", "--out", str(out), cwd=project)
        assert out.exists()

    def test_set_selects_by_a_field_the_options_hide(self, project):
        """`--set y=3 --set out=o` select the settings; --out is still where the plot goes."""
        out = project / "y3.svg"
        ok(
            "plot",
            "names.Options",
            "--x",
            "x",
            "--y",
            "acc",
            "--set",
            "y=3",
            "--set",
            "out=o",
            "--out",
            str(out),
            cwd=project,
        )
        assert out.exists()
        table = json.loads(ok("results", "names.Options", "--set", "y=3", "--json", cwd=project))[
            "rows"
        ]
        assert {r["y"] for r in table} == {3}
        assert len(table) == 4

    def test_set_searches_as_the_fields_flag_does(self, project):
        """`--set x=1:2` reads a range as --x would in a run."""
        table = json.loads(
            ok("results", "names.Options", "--set", "x=1:2", "--set", "y=4", "--json", cwd=project)
        )["rows"]
        assert sorted({r["x"] for r in table}) == [1, 2]
        assert {r["y"] for r in table} == {4}

    def test_sort_and_over_are_the_options(self, project):
        """`results --over seed --sort -acc` with fields named over and sort."""
        table = rows(
            ok("results", "names.Options", "--over", "seed", "--sort", "-acc", "--csv", cwd=project)
        )
        means = [float(r["acc_mean"]) for r in table]
        assert means == sorted(means, reverse=True)
        assert len(table) == 4

    def test_status_and_logs_take_set(self, project):
        """`status` and `logs` select settings by --set too."""
        out = ok("status", "names.Options", "--set", "x=1", "--set", "y=3", cwd=project)
        assert "2 settings" in out
        done = experiment("logs", "names.Options", "--set", "x=1", "--set", "y=3", cwd=project)
        assert done.returncode == 0, done.stderr

    def test_set_of_no_field_is_refused(self, project):
        """`--set zz=1` names no field: one line, exit 2, with the fields listed."""
        done = experiment(
            "plot", "names.Options", "--x", "x", "--y", "acc", "--set", "zz=1", cwd=project
        )
        assert done.returncode == 2
        assert done.stderr == (
            "error: --set zz: Options has no field 'zz'; its fields are x, y, hue, out, sort, "
            "over, seed\n"
        )

    def test_set_without_a_value_is_refused(self, project):
        """`--set x` is no NAME=VALUES: one line, exit 2."""
        done = experiment("results", "names.Options", "--set", "x", cwd=project)
        assert done.returncode == 2
        assert done.stderr == (
            "error: --set expects NAME=VALUES, a field and its value (or values separated by "
            "commas), e.g. --set lr=0.1,0.01; got 'x'\n"
        )

    def test_help_lists_a_hidden_field_under_set(self, project):
        """`plot X --help` lists the fields x, y, hue and out as --set NAME=..."""
        out = ok("plot", "names.Options", "--help", cwd=project)
        for line in ("--set x=INT", "--set y=INT", "--set hue=STR", "--set out=STR"):
            assert line in out
        assert "  --x COL" in out
        assert "--sort STR" in out  # plot has no --sort: the field keeps its flag


class TestARunKeepsTheFieldsFlags:
    """In a run a field keeps its flag; the run option it hides is --run-NAME."""

    def test_the_field_keeps_its_flag(self, project):
        """`--timeout 7 --retries 2` set the fields of that name, not the run's options."""
        ok("names.Hidden", "--timeout", "7", "--retries", "2", "-q", cwd=project)
        table = json.loads(
            ok("results", "names.Hidden", "--timeout", "7", "--retries", "2", "--json", cwd=project)
        )["rows"]
        assert [(r["timeout_seen"], r["retries_seen"]) for r in table] == [(7.0, 2)]

    def test_run_timeout_is_the_option(self, project):
        """`--run-timeout 1` fails a setting that sleeps for 30 s, as --timeout would."""
        done = experiment("names.Hidden", "--nap", "30", "--run-timeout", "1", cwd=project)
        assert done.returncode == 1, done.stderr
        table = json.loads(ok("results", "names.Hidden", "--nap", "30", "--json", cwd=project))[
            "rows"
        ]
        assert [r["status"] for r in table] == ["failed"]
        assert "1" in table[0]["error"]

    def test_help_lists_the_hidden_options_under_run(self, project):
        """`experiment X --help` lists --run-timeout and --run-retries, the fields as --timeout."""
        out = ok("names.Hidden", "--help", cwd=project)
        assert "  --run-timeout TIME" in out
        assert "  --run-retries N" in out
        assert "  --timeout FLOAT" in out


class TestValuesAreText:
    """A value with dollar signs is drawn as written; it is never read as mathtext."""

    def test_a_value_mathtext_cannot_parse(self, project):
        """plot and report draw '$\\frac{a$' (a ParseSyntaxException as mathtext)."""
        ok("plot", "names.Money", "--x", "tag", "--y", "acc", "--out", "m.svg", cwd=project)
        ok("report", "names.Money", "--out", "money.html", cwd=project)
        assert "frac" in (project / "money.html").read_text()

    def test_a_value_mathtext_parses_is_drawn_as_text(self, project):
        """'cost $5 and $6' is text: no italic (math) glyph in the drawing."""
        out = project / "d.svg"
        ok("plot", "names.Dollars", "--x", "tag", "--y", "acc", "--out", str(out), cwd=project)
        drawing = out.read_text()
        assert "<!-- cost $5 and $6 -->" in drawing
        assert "Oblique" not in drawing  # mathtext sets the letters of 'and' in italics


HELPED = """
from superparams import Experiment, search

class Helped(Experiment):
    help: int = search(1, 2)

    def run(self):
        return {"twice": 2 * self.help}
"""


class TestAFieldNamedHelp:
    """--help always helps; a field called help is set with --set help=..."""

    def test_set_runs_and_help_lists_it(self, tmp_path):
        """`--set help=2` runs one setting; `--help` lists the field as --set help=INT."""
        write(tmp_path / "helped.py", HELPED)
        ok("helped.Helped", "--set", "help=2", "-q", cwd=tmp_path)
        table = json.loads(ok("results", "helped.Helped", "--json", cwd=tmp_path))["rows"]
        assert [(r["help"], r["twice"]) for r in table] == [(2, 4)]
        assert "  --set help=INT" in ok("helped.Helped", "--help", cwd=tmp_path)
