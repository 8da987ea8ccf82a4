"""A result made by earlier code is never passed off as current: the `experiment` command.

Each test writes an experiment file, runs it, edits the file the way a user fixing a bug
does, and runs the command again in a subprocess.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from tests.e2e.test_cli import experiment, write

pytestmark = pytest.mark.slow

GRID = """
from superparams import Experiment, search


def scale(x):
    return x * 1


def unrelated():
    return "not used by run()"


class SVCGrid(Experiment):
    c: int = search(1, 2)

    def run(self):
        # the score
        return {"score": scale(1)}
"""


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new))


def stored(folder: Path) -> pl.DataFrame:
    return pl.read_parquet(folder / "results.parquet").sort("c")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """experiments/params.py holding SVCGrid, already run once: both settings scored 1."""
    write(tmp_path / "experiments/params.py", GRID)
    done = experiment("params.SVCGrid", cwd=tmp_path / "experiments")
    assert done.returncode == 0, done.stderr
    return tmp_path


def folder_of(project: Path) -> Path:
    return project / "experiments/progress/params/SVCGrid"


class TestARunRecordsItsCode:
    def test_every_row_has_a_code_version(self, project):
        """Every stored row carries the code version that made it, and git columns."""
        table = stored(folder_of(project))
        assert table["code_version"].dtype == pl.String
        assert table["code_version"].n_unique() == 1
        assert len(table["code_version"][0]) >= 8
        assert table["git_commit"].dtype == pl.String
        assert table["git_dirty"].dtype == pl.Boolean

    def test_outside_git_the_git_columns_are_null(self, project):
        """A file outside any git repository has null git_commit and git_dirty."""
        table = stored(folder_of(project))
        assert table["git_commit"].null_count() == table.height
        assert table["git_dirty"].null_count() == table.height


class TestFixingRunMakesResultsOutdated:
    def test_the_run_says_the_stored_settings_are_outdated(self, project):
        """After run() changes, the next run says the results came from earlier code."""
        edit(project / "experiments/params.py", "scale(1)", "scale(2)")
        again = experiment("params.SVCGrid", cwd=project / "experiments")
        assert again.returncode == 0, again.stderr
        assert "2 stored settings were made by an earlier version of SVCGrid's code" in again.stderr
        assert "--rerun-outdated" in again.stderr
        # resume stays the default: nothing is rerun silently, and the rows stay as stored
        assert stored(folder_of(project))["score"].to_list() == [1, 1]

    def test_dry_run_shows_the_outdated_settings(self, project):
        """`--dry-run` lists the outdated settings and says how to rerun them."""
        edit(project / "experiments/params.py", "scale(1)", "scale(2)")
        dry = experiment("params.SVCGrid", "--dry-run", cwd=project / "experiments")
        assert dry.returncode == 0, dry.stderr
        assert "2 stored settings were made by an earlier version of SVCGrid's code" in dry.stderr
        assert "outdated     c=1" in dry.stderr
        plan = experiment(
            "params.SVCGrid", "--dry-run", "--rerun-outdated", cwd=project / "experiments"
        )
        assert plan.returncode == 0, plan.stderr
        assert "would run 2 settings" in plan.stderr
        assert "run   outdated     c=2" in plan.stderr

    def test_status_shows_the_outdated_settings(self, project):
        """`experiment status` counts the settings made by earlier code."""
        edit(project / "experiments/params.py", "scale(1)", "scale(2)")
        status = experiment("status", "params.SVCGrid", cwd=project / "experiments")
        assert status.returncode == 0, status.stderr
        assert "outdated     2" in status.stdout
        assert "made by an earlier version of SVCGrid's code" in status.stdout
        assert "--rerun-outdated" in status.stdout

    def test_rerun_outdated_reruns_exactly_those(self, project):
        """`--rerun-outdated` reruns the outdated settings; results then show the new code."""
        path = project / "experiments/params.py"
        before = stored(folder_of(project))["code_version"][0]
        edit(path, "scale(1)", "scale(2)")
        edit(path, "search(1, 2)", "search(1, 2, 3)")  # one new setting besides
        rerun = experiment("params.SVCGrid", "--rerun-outdated", cwd=project / "experiments")
        assert rerun.returncode == 0, rerun.stderr
        assert "running 3 settings" in rerun.stderr
        shown = experiment("results", "params.SVCGrid", "--json", cwd=project / "experiments")
        assert shown.returncode == 0, shown.stderr
        rows = json.loads(shown.stdout)["rows"]
        assert [(r["c"], r["score"]) for r in rows] == [(1, 2), (2, 2), (3, 2)]
        versions = {r["code_version"] for r in rows}
        assert len(versions) == 1
        assert before not in versions
        again = experiment("params.SVCGrid", cwd=project / "experiments")
        assert "nothing to run" in again.stderr
        assert "earlier version" not in again.stderr

    def test_results_show_which_code_made_each_row(self, project):
        """When the rows come from different code, `experiment results` shows code_version."""
        path = project / "experiments/params.py"
        edit(path, "scale(1)", "scale(2)")
        edit(path, "search(1, 2)", "search(1, 2, 3)")
        assert experiment("params.SVCGrid", cwd=project / "experiments").returncode == 0
        shown = experiment("results", "params.SVCGrid", cwd=project / "experiments")
        assert shown.returncode == 0, shown.stderr
        header, _, *rows = shown.stdout.splitlines()
        assert header.split() == ["c", "score", "code_version", "outdated", "time"]
        versions = [row.split()[2] for row in rows]
        assert versions[0] == versions[1] != versions[2]
        assert [row.split()[3] for row in rows] == ["true", "true", "false"]

    def test_rerun_outdated_and_fresh_do_not_go_together(self, project):
        """`--fresh --rerun-outdated` is a usage error: fresh already reruns everything."""
        both = experiment(
            "params.SVCGrid", "--fresh", "--rerun-outdated", cwd=project / "experiments"
        )
        assert both.returncode == 2
        assert both.stderr.strip().splitlines() == [
            "error: --fresh runs every setting again, outdated ones included; drop --rerun-outdated"
        ]


class TestWhatIsNotACodeChange:
    def test_widening_a_search_keeps_the_results_current(self, project):
        """Adding values to a search changes no code: nothing stored is outdated."""
        edit(project / "experiments/params.py", "search(1, 2)", "search(1, 2, 3)")
        again = experiment("params.SVCGrid", cwd=project / "experiments")
        assert again.returncode == 0, again.stderr
        assert "earlier version" not in again.stderr
        assert "running 1 setting" in again.stderr

    def test_adding_a_field_with_a_default_keeps_the_results_current(self, project):
        """A new field with a default keeps what was run, and it is not outdated."""
        edit(project / "experiments/params.py", "    c: int", "    kernel: str = 'rbf'\n    c: int")
        again = experiment("params.SVCGrid", cwd=project / "experiments")
        assert again.returncode == 0, again.stderr
        assert "earlier version" not in again.stderr
        assert "nothing to run" in again.stderr

    def test_editing_a_comment_or_an_unused_function_changes_nothing(self, project):
        """A comment, a blank line or a function run() does not use is no code change."""
        path = project / "experiments/params.py"
        edit(path, "# the score", "# the score, as the paper defines it\n\n")
        edit(path, '"not used by run()"', '"still not used"')
        again = experiment("params.SVCGrid", cwd=project / "experiments")
        assert again.returncode == 0, again.stderr
        assert "earlier version" not in again.stderr

    def test_editing_a_helper_that_run_calls_is_a_code_change(self, project):
        """A module-level function run() calls is part of the experiment's code."""
        edit(project / "experiments/params.py", "x * 1", "x * 10")
        again = experiment("params.SVCGrid", cwd=project / "experiments")
        assert "2 stored settings were made by an earlier version of SVCGrid's code" in (
            again.stderr
        )


class TestTheResumePrompt:
    def test_the_prompt_offers_to_rerun_the_outdated(self, project):
        """In a terminal, the resume question names the outdated settings; o reruns them."""
        from tests.e2e.test_cli_tty import finish, spawn

        path = project / "experiments/params.py"
        edit(path, "scale(1)", "scale(2)")
        edit(path, "search(1, 2)", "search(1, 2, 3)")
        child = spawn("params.SVCGrid", cwd=project / "experiments")
        child.expect_exact("2 stored settings were made by an earlier version of SVCGrid's code")
        child.expect_exact(
            "Resume (skip the 2 completed, run 1)? [Y]es, [o]utdated: also rerun the 2 made "
            "by earlier code, [f]resh: run all again, [n]o: quit "
        )
        child.sendline("o")
        code, shown = finish(child)
        assert code == 0, shown
        assert stored(folder_of(project))["score"].to_list() == [2, 2, 2]

    def test_enter_keeps_them(self, project):
        """Enter resumes: the outdated settings are kept as stored, nothing else runs."""
        from tests.e2e.test_cli_tty import finish, spawn

        edit(project / "experiments/params.py", "scale(1)", "scale(2)")
        child = spawn("params.SVCGrid", cwd=project / "experiments")
        child.expect_exact("[o]utdated: also rerun the 2 made by earlier code")
        child.sendline("")
        code, shown = finish(child)
        assert code == 0, shown
        assert "nothing to run" in shown
        assert stored(folder_of(project))["score"].to_list() == [1, 1]


NOTEBOOK_CELL = """
from superparams import Experiment, search

class Cell(Experiment):
    x: int = search(1, 2)

    def run(self):
        return {"y": VALUE}
"""


class TestANotebook:
    def test_redefining_a_class_in_a_cell(self, tmp_path):
        """A class redefined in a notebook cell with another run() has outdated results;
        redefined with only a comment added, it has none."""
        from tests.conftest import kernel

        folder = str(tmp_path / "store")
        with kernel(tmp_path, tmp_path / "kernels") as cell:

            def outdated() -> list[int]:
                return json.loads(cell(f"print(Cell().plan(folder={folder!r}).outdated)"))

            cell(NOTEBOOK_CELL.replace("VALUE", "1"))
            cell(f"Cell().run_all(folder={folder!r}, display=False)")
            commented = NOTEBOOK_CELL.replace(
                "return", "# the same code, with a comment\n        return"
            )
            cell(commented.replace("VALUE", "1"))
            assert outdated() == []
            cell(NOTEBOOK_CELL.replace("VALUE", "2"))
            assert outdated() == [0, 1]
            shown = cell(
                f"print(Cell().run_all(folder={folder!r}, rerun_outdated=True, display=False)"
                "['y'].to_list())"
            )
            assert json.loads(shown) == [2, 2]
