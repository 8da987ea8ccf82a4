"""The version of an experiment's code: what counts as a change, and what a run does with it.

The hash tests import real files the way a user's script does; the run tests call
``run_all``, ``plan`` and ``results`` from Python, as a notebook does.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from superparams._code import code_hash, code_version, git_state

SOURCE = '''
from superparams import Experiment, derived, search


def helper(x):
    return x + {bump}


def unused():
    return "{unused}"


class Grid(Experiment):
    """A grid."""

    c: int = search(1, 2)
    twice: int = derived(lambda s: s.c * {factor})

    def run(self):
        """{doc}"""{comment}
{blank}        return {{"score": helper(self.c)}}
'''

_names = itertools.count()


def load(folder: Path, source: str, name: str | None = None) -> type:
    """Import ``source`` as a module file in ``folder`` and return its class Grid."""
    name = name or f"codemod{next(_names)}"
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module.Grid


def grid(folder: Path, **parts: object) -> type:
    return load(folder, SOURCE.format(**_defaults(**parts)))


class TestWhatChangesTheVersion:
    @settings(max_examples=25, deadline=None)
    @given(
        comment=st.text("abc #xyz", max_size=20),
        blank=st.integers(0, 3),
        doc=st.text("abc xyz.", max_size=20),
        unused=st.text("abcxyz", max_size=8),
    )
    def test_comments_blank_lines_docstrings_and_unused_code_do_not(
        self, tmp_path_factory, comment, blank, doc, unused
    ):
        """Comments, blank lines, docstrings and functions run() does not use are no change."""
        folder = tmp_path_factory.mktemp("code")
        base = code_hash(grid(folder))
        edited = grid(folder, comment=f"  # {comment}", blank="\n" * blank, doc=doc, unused=unused)
        assert code_hash(edited) == base

    @settings(max_examples=25, deadline=None)
    @given(bump=st.integers(2, 10**6))
    def test_a_helper_run_calls_does(self, tmp_path_factory, bump):
        """A module-level function that run() calls is part of the code."""
        folder = tmp_path_factory.mktemp("code")
        assert code_hash(grid(folder, bump=bump)) != code_hash(grid(folder))

    def test_what_helpers_use_does_transitively(self, tmp_path):
        """A helper of a helper, and the methods of a module-level class run() uses, count."""
        source = """
        from superparams import Experiment, search

        def inner():
            return {v[0]}

        def outer():
            return inner()

        class Net:
            def forward(self):
                return {v[1]}

        class Grid(Experiment):
            c: int = search(1, 2)

            def run(self):
                return {{"a": outer(), "b": Net().forward()}}
        """
        base = code_hash(load(tmp_path, source.format(v=[0, 0])))
        assert code_hash(load(tmp_path, source.format(v=[1, 0]))) != base
        assert code_hash(load(tmp_path, source.format(v=[0, 1]))) != base

    def test_a_derived_function_does(self, tmp_path):
        """The function of a derived field is part of the code."""
        assert code_hash(grid(tmp_path, factor=3)) != code_hash(grid(tmp_path))

    def test_field_declarations_do_not(self, tmp_path):
        """Widening a search or adding a field with a default changes no code."""
        base = code_hash(grid(tmp_path))
        wider = SOURCE.replace("search(1, 2)", "search(1, 2, 3)")
        added = SOURCE.replace("    c: int", "    kernel: str = 'rbf'\n    c: int")
        for source in (wider, added):
            assert code_hash(load(tmp_path, source.format(**_defaults()))) == base

    def test_a_method_run_calls_does(self, tmp_path):
        """Any method of the class, and of its experiment bases, is part of the code."""
        source = """
        from superparams import Experiment, search

        class Base(Experiment):
            c: int = search(1, 2)

            def score(self):
                return {value}

        class Grid(Base):
            def run(self):
                return {{"score": self.score()}}
        """
        assert code_hash(load(tmp_path, source.format(value=1))) != code_hash(
            load(tmp_path, source.format(value=2))
        )

    def test_a_file_edited_after_import_is_not_taken_for_the_code(self, tmp_path):
        """If the file changed since it was imported, the code loaded is what is hashed."""
        name = f"stale{next(_names)}"
        loaded = load(tmp_path, SOURCE.format(**_defaults()), name)
        edited_source = textwrap.dedent(SOURCE.format(**_defaults(bump=5)))
        (tmp_path / f"{name}.py").write_text(edited_source)  # not imported again
        edited = load(tmp_path, edited_source, f"{name}_new")
        assert code_hash(loaded) != code_hash(edited)

    def test_without_source_the_bytecode_is_hashed(self, tmp_path):
        """A class from `python -c` has a version: the same code gives the same one."""

        def version(body: str) -> str:
            program = f"{body}\nfrom superparams._code import code_hash\nprint(code_hash(Grid))"
            done = subprocess.run(
                [sys.executable, "-c", program],
                capture_output=True,
                text=True,
                check=True,
                cwd=tmp_path,
            )
            return done.stdout.strip()

        source = textwrap.dedent(SOURCE.format(**_defaults()))
        commented = textwrap.dedent(SOURCE.format(**_defaults(comment="  # a note", blank="\n")))
        assert version(source) == version(commented)
        assert version(source) != version(source.replace("x + 1", "x + 2"))


def _defaults(**parts: object) -> dict[str, object]:
    values: dict[str, object] = {
        "bump": 1,
        "unused": "x",
        "factor": 2,
        "doc": "Score one setting.",
        "comment": "",
        "blank": "",
    }
    values.update(parts)
    return values


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=u", "-c", "user.email=u@example.com", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


class TestGit:
    def test_a_committed_file(self, tmp_path):
        """In a repository: git_commit is HEAD, git_dirty says whether the worktree changed."""
        git(tmp_path, "init", "-q")
        path = tmp_path / "params.py"
        path.write_text("x = 1\n")
        git(tmp_path, "add", "params.py")
        git(tmp_path, "commit", "-qm", "first")
        head = git(tmp_path, "rev-parse", "HEAD")
        assert git_state(path) == (head, False)
        path.write_text("x = 2\n")
        assert git_state(path) == (head, True)

    def test_an_untracked_file_is_dirty(self, tmp_path):
        """A file never committed is dirty, even when every tracked file is clean."""
        git(tmp_path, "init", "-q")
        (tmp_path / "other.py").write_text("y = 1\n")
        git(tmp_path, "add", "other.py")
        git(tmp_path, "commit", "-qm", "first")
        path = tmp_path / "params.py"
        path.write_text("x = 1\n")
        assert git_state(path) == (git(tmp_path, "rev-parse", "HEAD"), True)

    def test_outside_a_repository(self, tmp_path):
        """Outside a repository, or with no file at all, both are None."""
        path = tmp_path / "params.py"
        path.write_text("x = 1\n")
        assert git_state(path) == (None, None)
        assert git_state(None) == (None, None)

    def test_the_class_s_file_is_looked_up(self, tmp_path):
        """code_version finds the repository of the file that defines the class."""
        git(tmp_path, "init", "-q")
        cls = grid(tmp_path)
        git(tmp_path, "add", ".")
        git(tmp_path, "commit", "-qm", "first")
        version = code_version(cls)
        assert version.git_commit == git(tmp_path, "rev-parse", "HEAD")
        assert version.git_dirty is False
        assert version.version == code_hash(cls)


FILE = """
from superparams import Experiment, search

class Grid(Experiment):
    c: int = search(1, 2)

    def run(self):
        return {"score": 1}
"""


class TestARunWithOutdatedResults:
    def fixed(self, workspace):
        """Grid run once with score 1, then its file fixed to score 2, imported afresh."""
        workspace.load("grid", FILE).Grid().run_all(display=False)
        return workspace.load("grid", FILE.replace('"score": 1', '"score": 2')).Grid()

    def test_plan_lists_the_outdated(self, workspace):
        """plan().outdated holds the completed settings that earlier code made."""
        space = self.fixed(workspace)
        plan = space.plan()
        assert plan.outdated == [0, 1]
        assert plan.done == [0, 1]
        assert plan.summary() == "2 completed (2 by earlier code), 0 failed, 0 interrupted, 0 new"

    def test_resume_keeps_them_and_says_so(self, workspace, capsys):
        """A plain run_all reruns nothing, returns the stored rows and says they are outdated."""
        space = self.fixed(workspace)
        table = space.run_all()
        assert table["score"].to_list() == [1, 1]
        assert "2 stored settings were made by an earlier version of Grid's code" in (
            capsys.readouterr().err
        )
        assert space.results()["score"].to_list() == [1, 1]

    def test_rerun_outdated(self, workspace):
        """run_all(rerun_outdated=True) reruns them; the new outcome replaces the old one."""
        space = self.fixed(workspace)
        before = space.results()["code_version"].to_list()
        table = space.run_all(rerun_outdated=True, display=False)
        assert table["score"].to_list() == [2, 2]
        assert table["code_version"].to_list() != before
        assert space.plan().outdated == []
        stored = pl.read_parquet(workspace.folder("grid", "Grid") / "results.parquet")
        assert stored.sort("c")["score"].to_list() == [2, 2]  # one row each, the new one

    def test_only_outdated_settings_are_rerun(self, workspace):
        """Settings already made by this code are not rerun with the outdated ones."""
        space = workspace.load("grid", FILE).Grid(c=1)
        space.run_all(display=False)
        fixed = workspace.load("grid", FILE.replace('"score": 1', '"score": 2'))
        fixed.Grid(c=2).run_all(display=False)
        before = fixed.Grid().results()
        table = fixed.Grid().run_all(rerun_outdated=True, display=False)
        assert table["score"].to_list() == [2, 2]
        assert table["code_version"].n_unique() == 1
        assert table["started"][0] > before["started"][0]  # c=1 ran again
        assert table["started"][1] == before["started"][1]  # c=2 did not

    def test_rows_from_before_versions_are_not_outdated(self, workspace):
        """A row stored with no code version is of unknown code: not called outdated."""
        workspace.load("grid", FILE).Grid().run_all(display=False)
        folder = workspace.folder("grid", "Grid")
        lines = [json.loads(line) for line in (folder / "record.jsonl").read_text().splitlines()]
        for line in lines:
            for name in ("code_version", "git_commit", "git_dirty"):
                line.pop(name)
        (folder / "record.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        (folder / "results.parquet").unlink()
        space = workspace.load("grid", FILE.replace('"score": 1', '"score": 2')).Grid()
        assert space.plan().outdated == []
        assert space.results()["code_version"].to_list() == [None, None]
        assert space.results()["code_version"].dtype == pl.String
        assert space.results()["outdated"].to_list() == [None, None]


SEEDED = """
from superparams import Experiment, search, seeds

class Fit(Experiment):
    lr: int = search(1, 2)
    seed: int = seeds(2)

    def run(self):
        return {"score": self.lr + self.seed / 10}
"""


class TestOutdatedRowsAreMarked:
    def edited(self, workspace):
        """Fit run once; its run() edited to score ten times more, lr 3 added and run."""
        workspace.load("fit", SEEDED).Fit().run_all(display=False)
        fixed = SEEDED.replace("self.lr + self.seed", "10 * self.lr + self.seed")
        space = workspace.load("fit", fixed.replace("search(1, 2)", "search(1, 2, 3)")).Fit()
        space.run_all(display=False)
        return space

    def test_results_say_which_rows_are_outdated(self, workspace):
        """results() has a boolean outdated column: true for rows made by earlier code."""
        table = self.edited(workspace).results()
        assert table.schema["outdated"] == pl.Boolean
        assert table.select("lr", "outdated").rows() == [
            (1, True),
            (1, True),
            (2, True),
            (2, True),
            (3, False),
            (3, False),
        ]
        assert table.columns[-1] == "outdated"  # with the bookkeeping, after the metrics

    def test_outdated_is_no_metric_or_parameter(self, workspace):
        """columns() counts outdated as bookkeeping, never as a metric or a parameter."""
        from superparams import columns

        space = self.edited(workspace)
        found = columns(space)
        assert found.metrics == ("score",)
        assert "outdated" in found.bookkeeping
        assert "outdated" not in found.parameters

    def test_the_stored_files_do_not_hold_it(self, workspace):
        """outdated is worked out when read: results.parquet does not hold it."""
        self.edited(workspace)
        stored = pl.read_parquet(workspace.folder("fit", "Fit") / "results.parquet")
        assert "outdated" not in stored.columns

    def test_summary_marks_a_setting_with_any_outdated_seed(self, workspace):
        """summary() has outdated per row: true when any of its seeds is outdated."""
        summary = self.edited(workspace).summary()
        assert summary.select("lr", "outdated").rows() == [(1, True), (2, True), (3, False)]
        assert "outdated_mean" not in summary.columns

    def test_best_shows_whether_its_winner_is_outdated(self, workspace):
        """best()'s row says whether the winner was made by earlier code."""
        space = self.edited(workspace)
        assert space.best("score", "min").select("lr", "outdated").rows() == [(1, True)]
        assert space.best("score", "max").select("lr", "outdated").rows() == [(3, False)]

    def test_a_metric_called_outdated_is_kept_beside_it(self, workspace):
        """A value run() returns as outdated is kept as outdated_, as for any results column."""
        space = workspace.load("grid", FILE.replace('{"score": 1}', '{"outdated": 1}')).Grid()
        table = space.run_all(display=False)
        assert table["outdated_"].to_list() == [1, 1]
        assert table["outdated"].to_list() == [False, False]
        assert space.results().equals(table)


class TestWhatIsHashed:
    def test_properties_static_class_and_cached_methods(self, tmp_path):
        """Every kind of method defined on the class is part of the code."""
        source = """
        import functools
        from superparams import Experiment, search

        class Grid(Experiment):
            c: int = search(1, 2)

            @property
            def a(self):
                return {v[0]}

            @staticmethod
            def b():
                return {v[1]}

            @classmethod
            def d(cls):
                return {v[2]}

            @functools.cached_property
            def e(self):
                return {v[3]}

            def run(self):
                return {{}}
        """
        base = code_hash(load(tmp_path, source.format(v=[0, 0, 0, 0])))
        for k in range(4):
            changed = [0, 0, 0, 0]
            changed[k] = 1
            assert code_hash(load(tmp_path, source.format(v=changed))) != base, k
