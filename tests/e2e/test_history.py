"""Every code version's outcome is kept, shown and compared: the `experiment` command.

Each test starts from a grid of two learning rates and two seeds, run once; then its
run() gets a bug fix (the score is now ten times what it was) and the outdated settings
are run again with --rerun-outdated. The old outcomes go to history.parquet; results
shows the new ones, `results --code-version all` both, and `experiment diff` compares.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import environment, experiment, wait_for, with_group_killed, write
from tests.e2e.test_outdated import FIT as OUTDATED_FIT
from tests.e2e.test_outdated import edit
from tests.test_code import git

pytestmark = pytest.mark.slow

# Fit of test_outdated, which may also wait (see TestKilledDuringTheRerun).
FIT = "import os\nimport time\n" + OUTDATED_FIT

FIXED = ("self.lr + self.seed", "10 * self.lr + self.seed")

OLD = {  # (lr, seed) -> the score the first version gave
    (1, 0): 1.0,
    (1, 1): 1.1,
    (2, 0): 2.0,
    (2, 1): 2.1,
}
NEW = {key: 10 * lr + seed / 10 for key, (lr, seed) in zip(OLD, OLD, strict=True)}


def python(cwd: Path, code: str) -> str:
    """What Python code printed, run in a process of its own in ``cwd``."""
    path = f"{cwd}:{environment().get('PYTHONPATH', '')}"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=environment(PYTHONPATH=path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def command(cwd: Path, *args: str) -> tuple[str, str]:
    done = experiment(*args, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


def folder(root: Path) -> Path:
    return root / "progress" / "params" / "Fit"


def every_row(root: Path) -> pl.DataFrame:
    out, _ = command(root, "results", "params", "--code-version", "all", "--json")
    return pl.DataFrame(json.loads(out)["rows"])


def versions(root: Path) -> tuple[str, str]:
    """The old code version and the new, as stored on the rows."""
    rows = every_row(root)
    old = rows.filter(pl.col("superseded"))["code_version"].unique().to_list()
    new = rows.filter(~pl.col("superseded"))["code_version"].unique().to_list()
    assert len(old) == 1, rows
    assert len(new) == 1, rows
    return old[0], new[0]


def outcomes(root: Path) -> list[dict[str, object]]:
    """The outcome lines of the record."""
    lines = (folder(root) / "record.jsonl").read_text().splitlines()
    return [line for line in map(json.loads, lines) if line["event"] == "outcome"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fit run, its run() fixed, and its outdated settings run again."""
    root = tmp_path_factory.mktemp("history")
    path = write(root / "params.py", FIT)
    assert experiment("params", "-q", cwd=root).returncode == 0
    edit(path, *FIXED)
    again = experiment("params", "-q", "--rerun-outdated", cwd=root)
    assert again.returncode == 0, again.stderr
    return root


class TestTheOldOutcomeIsKept:
    def test_history_holds_exactly_the_superseded_rows(self, project):
        """history.parquet, listed in experiment.json, holds each replaced outcome's rows,
        with their code version, status and times, and nothing else."""
        history = pl.read_parquet(folder(project) / "history.parquet")
        scores = {(r["lr"], r["seed"]): r["score"] for r in history.iter_rows(named=True)}
        assert scores == OLD
        assert history.height == 4
        old, new = versions(project)
        assert history["code_version"].to_list() == [old] * 4
        assert history["status"].to_list() == ["completed"] * 4
        assert history["started"].null_count() == 0
        assert history["seconds"].null_count() == 0
        assert "git_commit" in history.columns
        files = json.loads((folder(project) / "experiment.json").read_text())["files"]
        assert "history.parquet" in files
        current = pl.read_parquet(folder(project) / "results.parquet")
        assert current["code_version"].to_list() == [new] * 4

    def test_results_alone_is_unchanged(self, project, tmp_path):
        """`results` without --code-version shows each setting's latest outcome alone,
        as a folder that only ever ran the fixed code shows it, with the old kept beside."""
        write(tmp_path / "params.py", FIT.replace(*FIXED))
        command(tmp_path, "params", "-q")
        for args in (("--columns", "score"), ("--over", "seed")):
            assert command(project, "results", "params", *args) == command(
                tmp_path, "results", "params", *args
            )
        assert (folder(project) / "history.parquet").exists()
        assert not (folder(tmp_path) / "history.parquet").exists()


class TestEveryVersionIsShown:
    def test_code_version_all_shows_both_and_marks_the_old(self, project):
        """`results --code-version all` shows the old rows (superseded) and the new, each
        with the code version that made it."""
        out, _ = command(project, "results", "params", "--code-version", "all")
        old, new = versions(project)
        header, _, *rows = out.splitlines()
        assert header.split() == [
            "lr",
            "seed",
            "score",
            "code_version",
            "outdated",
            "superseded",
            "time",
        ]
        found = [tuple(r.split()[:6]) for r in rows]
        expected = []
        for (lr, seed), score in OLD.items():
            expected.append((str(lr), str(seed), f"{score:g}", old, "true", "true"))
            new_score = f"{NEW[lr, seed]:g}"
            expected.append((str(lr), str(seed), new_score, new, "false", "false"))
        assert found == expected

    def test_a_prefix_shows_that_version_alone(self, project):
        """`results --code-version <prefix>` shows the outcomes that version made."""
        old, _ = versions(project)
        out, _ = command(project, "results", "params", "--code-version", old[:6], "--json")
        rows = json.loads(out)["rows"]
        assert {(r["lr"], r["seed"]): r["score"] for r in rows} == OLD
        assert {r["superseded"] for r in rows} == {True}

    def test_from_python(self, project):
        """results(code_version="all") gives the same rows as the command."""
        code = (
            "import json, params\n"
            "t = params.Fit().results(code_version='all')\n"
            "print(json.dumps(t.select('lr', 'seed', 'score', 'superseded').rows()))\n"
        )
        rows = json.loads(python(project, code))
        assert sorted(rows) == sorted(
            [[lr, seed, OLD[lr, seed], True] for lr, seed in OLD]
            + [[lr, seed, NEW[lr, seed], False] for lr, seed in OLD]
        )


class TestDiff:
    def test_each_settings_old_and_new_metric_and_the_mean_over_seeds(self, project):
        """`diff X OLD NEW` prints each setting's metric under both and the change, then
        the mean ± std over the seeds under each and the change of the mean."""
        old, new = versions(project)
        out, err = command(project, "diff", "params", old[:7], new[:7])
        assert out == (
            "setting      score A  score B  change\n"
            "-----------  -------  -------  ------\n"
            "lr=1,seed=0        1       10      +9\n"
            "lr=1,seed=1      1.1     10.1      +9\n"
            "lr=2,seed=0        2       20     +18\n"
            "lr=2,seed=1      2.1     20.1     +18\n"
            "\n"
            "over seed:\n"
            "lr  score A             score B              change of mean\n"
            "--  ------------------  -------------------  --------------\n"
            " 1  1.05 ± 0.071 (n=2)  10.05 ± 0.071 (n=2)              +9\n"
            " 2  2.05 ± 0.071 (n=2)  20.05 ± 0.071 (n=2)             +18\n"
        )
        assert err == (
            f"A: {old} (4 settings)\nB: {new} (4 settings)\n4 settings have an outcome under both\n"
        )

    def test_json(self, project):
        """`diff --json` writes one superparams.diff/1 object: the versions, each
        setting's values and change, and the summary over seeds."""
        old, new = versions(project)
        out, _ = command(project, "diff", "params", old, new, "--json", "--metric", "score")
        body = json.loads(out)
        assert body["schema"] == "superparams.diff/1"
        assert body["a"]["code_version"] == old
        assert body["b"]["code_version"] == new
        assert body["metrics"] == ["score"]
        changes = {(r["lr"], r["seed"]): round(r["score_change"], 9) for r in body["rows"]}
        assert changes == {(1, 0): 9.0, (1, 1): 9.0, (2, 0): 18.0, (2, 1): 18.0}
        means = [(r["lr"], r["score_mean_a"], r["score_mean_b"]) for r in body["summary"]]
        assert [(lr, round(a, 9), round(b, 9)) for lr, a, b in means] == [
            (1, 1.05, 10.05),
            (2, 2.05, 20.05),
        ]

    def test_from_python(self, project):
        """space.diff(a, b) gives one row per setting, summary=True the means over seeds."""
        old, new = versions(project)
        code = (
            "import json, params\n"
            f"t = params.Fit().diff({old[:5]!r}, {new[:5]!r}, 'score')\n"
            "print(json.dumps(t.select('lr', 'seed', 'score_a', 'score_b').rows()))\n"
            f"s = params.Fit().diff({old!r}, {new!r}, summary=True)\n"
            "print(json.dumps(s.select('lr', 'score_mean_change').rows()))\n"
        )
        rows, summary = (json.loads(line) for line in python(project, code).splitlines())
        assert rows == [[lr, seed, OLD[lr, seed], NEW[lr, seed]] for lr, seed in OLD]
        assert [(lr, round(c, 9)) for lr, c in summary] == [(1, 9.0), (2, 18.0)]

    def test_git_commits_name_the_versions(self, tmp_path):
        """In a git repository, A and B may be the commits recorded on the rows."""
        git(tmp_path, "init", "-q")
        path = write(tmp_path / "params.py", FIT)
        git(tmp_path, "add", "params.py")
        git(tmp_path, "commit", "-qm", "first")
        before = git(tmp_path, "rev-parse", "HEAD")
        command(tmp_path, "params", "-q")
        edit(path, *FIXED)
        git(tmp_path, "commit", "-qam", "the fix")
        after = git(tmp_path, "rev-parse", "HEAD")
        command(tmp_path, "params", "-q", "--rerun-outdated")
        out, _ = command(tmp_path, "diff", "params", before[:8], after[:8], "--json")
        body = json.loads(out)
        assert (body["a"]["git_commit"], body["b"]["git_commit"]) == (before, after)
        changes = {(r["lr"], r["seed"]): round(r["score_change"], 9) for r in body["rows"]}
        assert changes == {(1, 0): 9.0, (1, 1): 9.0, (2, 0): 18.0, (2, 1): 18.0}
        history = pl.read_parquet(folder(tmp_path) / "history.parquet")
        assert history["git_commit"].to_list() == [before] * 4


class TestReadsStayFast:
    def test_results_never_reads_history(self, project, tmp_path):
        """`results` without --code-version never opens history.parquet: a damaged one
        changes nothing there, while --code-version all says it is damaged (exit 3)."""
        copy = tmp_path / "copy"
        shutil.copytree(project, copy)
        shown = command(copy, "results", "params", "--columns", "score")
        (folder(copy) / "history.parquet").write_bytes(b"not parquet")
        assert command(copy, "results", "params", "--columns", "score") == shown
        done = experiment("results", "params", "--code-version", "all", cwd=copy)
        assert done.returncode == 3, done.stderr
        assert done.stderr.startswith(f"error: {folder(copy) / 'history.parquet'} is damaged (")
        assert done.stderr.endswith(
            "; move it away: the next run that records an outcome makes it again from the record\n"
        )
        (folder(copy) / "history.parquet").unlink()
        command(copy, "params", "-q", "--lr", "3")  # records an outcome
        history = pl.read_parquet(folder(copy) / "history.parquet")
        assert {(r["lr"], r["seed"]): r["score"] for r in history.iter_rows(named=True)} == OLD


class TestBadInput:
    def fails(self, project: Path, *args: str) -> str:
        before = sorted(p.name for p in folder(project).iterdir())
        done = experiment(*args, cwd=project)
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""
        assert sorted(p.name for p in folder(project).iterdir()) == before  # nothing written
        return done.stderr

    def test_an_unknown_version_lists_those_stored(self, project):
        """A version no outcome was made by: one line naming the versions stored, exit 2."""
        old, new = versions(project)
        err = self.fails(project, "diff", "params", "zzz", new)
        assert err == (
            "error: A 'zzz': no outcome of Fit was made by such a code version or git commit; "
            f"versions stored: {old} (4 settings); {new} (4 settings)\n"
        )
        err = self.fails(project, "results", "params", "--code-version", "zzz")
        assert err.startswith("error: code_version='zzz': no outcome of Fit was made by")

    def test_the_same_version_twice(self, project):
        """A and B naming one version is an error, exit 2."""
        old, _ = versions(project)
        err = self.fails(project, "diff", "params", old[:4], old)
        assert err == (
            f"error: {old[:4]!r} and {old!r} both name code version {old} of Fit; give two "
            "different versions to compare\n"
        )

    def test_an_empty_version(self, project):
        """An empty version names none, and says which there are, exit 2."""
        _, new = versions(project)
        err = self.fails(project, "diff", "params", "", new)
        assert err.startswith("error: A '' names no code version; versions stored for Fit: ")

    def test_no_setting_under_both(self, tmp_path):
        """Two versions that ran different settings: diff says none is under both, exit 2."""
        path = write(tmp_path / "params.py", FIT)
        command(tmp_path, "params", "-q", "--lr", "1")
        edit(path, *FIXED)
        command(tmp_path, "params", "-q", "--lr", "2")
        old, new = (v["code_version"] for v in every_row(tmp_path).to_dicts()[::2])
        err = self.fails(tmp_path, "diff", "params", old, new)
        assert err == (
            f"error: no setting of Fit has an outcome under both {old} (2 under A) and {new} "
            "(2 under B); diff compares the settings both versions ran\n"
        )

    def test_every_version_does_not_go_with_over(self, project):
        """--code-version with --over is refused, saying what to use, exit 2."""
        err = self.fails(project, "results", "params", "--code-version", "all", "--over", "seed")
        assert err == (
            "error: --code-version all shows outcomes row by row; it does not go with --over "
            "(a summary is of each setting's latest outcome; `experiment diff EXPERIMENT A B` "
            "compares two versions over the seeds)\n"
        )


class TestKilledDuringTheRerun:
    def test_kill_9_loses_neither_the_old_outcome_nor_a_new_row(self, tmp_path):
        """kill -9 of a --rerun-outdated midway: the old outcomes and the new rows made
        before it are all still shown, and once the rerun ends, the old are in history."""
        path = write(tmp_path / "params.py", FIT)
        command(tmp_path, "params", "-q")
        fixed = FIT.replace(*FIXED).replace(
            "    def run(self):\n",
            "    def run(self):\n"
            "        if self.lr == 2 and os.environ.get('HOLD'):\n"
            "            open(os.environ['HOLD'], 'w').close()\n"
            "            time.sleep(120)\n",
        )
        path.write_text(fixed)
        hold = tmp_path / "holding"
        child = subprocess.Popen(
            [str(Path(sys.executable).with_name("experiment")), "params", "-q", "--rerun-outdated"],
            cwd=tmp_path,
            env=environment(HOLD=str(hold)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for(
                lambda: hold.exists() and len(outcomes(tmp_path)) == 6,
                "both settings of lr 1 to end again, and one of lr 2 to start",
                timeout=60,
            )
        finally:
            with_group_killed(child)  # type: ignore[arg-type]
        rows = every_row(tmp_path)
        completed = rows.filter(pl.col("status") == "completed")
        scores = sorted((r["lr"], r["seed"], r["score"]) for r in completed.iter_rows(named=True))
        made_new = [(lr, seed, NEW[lr, seed]) for lr, seed in OLD if lr == 1]
        assert scores == sorted([(lr, seed, s) for (lr, seed), s in OLD.items()] + made_new)
        again = experiment("params", "-q", "--rerun-outdated", cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        history = pl.read_parquet(folder(tmp_path) / "history.parquet")
        done = history.filter(pl.col("status") == "completed")
        assert {(r["lr"], r["seed"]): r["score"] for r in done.iter_rows(named=True)} == OLD
        assert done.height == 4
        current = pl.read_parquet(folder(tmp_path) / "results.parquet")
        assert {(r["lr"], r["seed"]): r["score"] for r in current.iter_rows(named=True)} == NEW


class TestAFolderFromBefore:
    def test_its_replaced_outcomes_are_recovered_from_the_record(self, tmp_path):
        """A folder written before history.parquet existed (its table's metadata does not
        say it keeps one) gets every outcome its record holds a later one of, the first
        time a rerun replaces one."""
        path = write(tmp_path / "params.py", FIT)
        command(tmp_path, "params", "-q")
        edit(path, *FIXED)
        command(tmp_path, "params", "-q", "--rerun-outdated")
        results = folder(tmp_path) / "results.parquet"
        table = pl.read_parquet(results)
        meta = pl.read_parquet_metadata(results)
        info = json.loads(meta["superparams"])
        info.pop("history", None)  # as a table written before history.parquet was
        table.write_parquet(results, metadata={"superparams": json.dumps(info)})
        (folder(tmp_path) / "history.parquet").unlink(missing_ok=True)
        assert every_row(tmp_path)["superseded"].to_list() == [False] * 4  # empty history
        edit(path, "10 * self.lr", "100 * self.lr")
        command(tmp_path, "params", "-q", "--rerun-outdated")
        history = pl.read_parquet(folder(tmp_path) / "history.parquet")
        assert history.height == 8
        assert sorted(history["score"].to_list()) == sorted([*OLD.values(), *NEW.values()])
