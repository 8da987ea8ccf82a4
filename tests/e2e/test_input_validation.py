"""Input the command or the API cannot honour is a usage error before anything runs.

Each one exits 2 with one line on stderr that names the value and what to do, and writes
nothing: no ``progress/`` folder is made. From Python the same checks raise UsageError.
"""

from __future__ import annotations

import pytest
from tests.conftest import experiment, write

from superparams.errors import UsageError

pytestmark = pytest.mark.slow

SMALL = """
from superparams import Experiment, search

class Small(Experiment):
    a: int = search(1, 2)

    def run(self):
        if self.a == 2:
            raise ValueError("two")
        return {"v": self.a}
"""

REFUSED = [
    (
        ["small.Small", "--timeout", "1e300"],
        "--timeout expects a duration of at most a year (365d), got '1e300'; leave --timeout "
        "out for no limit",
    ),
    (
        ["small.Small", "--timeout", "400d"],
        "--timeout expects a duration of at most a year (365d), got '400d'; leave --timeout "
        "out for no limit",
    ),
    (
        ["small.Small", "--retries", "-1"],
        "--retries expects a whole number from 0 to 1000, got '-1'",
    ),
    (
        ["small.Small", "--retries", "100000000000000000000"],
        "--retries expects a whole number from 0 to 1000, got '100000000000000000000'",
    ),
    (
        ["small.Small", "--sample", "5"],
        "--sample 5: cannot sample 5 distinct settings from a space of 2; ask for at most 2, "
        "or run the whole space",
    ),
    (
        ["status", "small.Small", "--sample", "3"],
        "--sample 3: cannot sample 3 distinct settings from a space of 2; ask for at most 2, "
        "or run the whole space",
    ),
    (
        ["logs", "small.Small"],
        "no logs yet: none of the 2 matching settings of small.Small has run",
    ),
    (
        ["logs", "small.Small", "--a", "7"],
        "no logs yet: none of the 1 matching setting of small.Small has run",
    ),
    (
        ["small.Small", "--dryrun"],
        "--dryrun is not an option, nor a field of Small (did you mean '--dry-run'?); its "
        "fields are a",
    ),
    (
        ["stauts", "small.Small"],
        "'stauts' is no command, nor an experiment here (did you mean 'status'? experiment "
        "status small.Small); commands: status, results, plot, report, view, logs, clean, diff",
    ),
    (
        ["reslts", "small.Small", "--a", "1"],
        "'reslts' is no command, nor an experiment here (did you mean 'results'? experiment "
        "results small.Small); commands: status, results, plot, report, view, logs, clean, diff",
    ),
]


class TestTheCommandRefuses:
    """Each refusal: exit 2, its one line, and no progress/ folder made."""

    @pytest.mark.parametrize(("args", "message"), REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
    def test_a_usage_error(self, tmp_path, args, message):
        """The command says what was wrong and what to do, in one line, and writes nothing."""
        write(tmp_path / "small.py", SMALL)
        done = experiment(*args, cwd=tmp_path)
        assert (done.returncode, done.stderr) == (2, f"error: {message}\n")
        assert done.stdout == ""
        assert not (tmp_path / "progress").exists()

    def test_a_year_is_still_a_timeout(self, tmp_path):
        """--timeout 365d runs, and the setting that raises fails as itself, not killed."""
        write(tmp_path / "small.py", SMALL)
        done = experiment("small.Small", "--timeout", "365d", "-q", cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert "1 completed, 1 failed" in done.stderr
        assert "killed" not in done.stderr
        assert "exited with code" not in done.stderr


class TestTheAPIRefuses:
    """run_all() checks retries, timeout and folder before it makes anything."""

    @pytest.mark.parametrize(
        ("keywords", "message"),
        [
            (
                {"retries": "x"},
                "retries expects a whole number from 0 to 1000 (the times a failed setting is "
                "tried again), got 'x'",
            ),
            (
                {"retries": -1},
                "retries expects a whole number from 0 to 1000 (the times a failed setting is "
                "tried again), got -1",
            ),
            (
                {"retries": 2**64},
                "retries expects a whole number from 0 to 1000 (the times a failed setting is "
                f"tried again), got {2**64}",
            ),
            (
                {"retries": True},
                "retries expects a whole number from 0 to 1000 (the times a failed setting is "
                "tried again), got True",
            ),
            (
                {"timeout": 1e300},
                "timeout expects at most a year (31536000 seconds), got 1e+300; give None for "
                "no limit",
            ),
            (
                {"folder": ""},
                "folder='' names no folder (it would be the working directory); give a path, "
                "or leave folder out for progress/<module>/<Class>",
            ),
        ],
        ids=[
            "retries-text",
            "retries-negative",
            "retries-huge",
            "retries-bool",
            "timeout",
            "folder",
        ],
    )
    def test_a_bad_keyword(self, workspace, keywords, message):
        """run_all raises UsageError with the message, and nothing is written anywhere."""
        module = workspace.load("small", SMALL)
        before = sorted(p.name for p in workspace.root.iterdir())
        with pytest.raises(UsageError) as raised:
            module.Small().run_all(display=False, **keywords)
        assert str(raised.value) == message
        assert sorted(p.name for p in workspace.root.iterdir()) == before
        assert not (workspace.experiments / "progress").exists()

    def test_an_empty_folder_is_refused_by_the_readers_too(self, workspace):
        """results(folder='') is refused, not read from the working directory."""
        module = workspace.load("small", SMALL)
        with pytest.raises(UsageError, match="names no folder"):
            module.Small().results(folder="")
