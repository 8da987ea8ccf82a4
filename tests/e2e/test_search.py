"""The adaptive search through the real command: what it says as it goes, its standing in
`experiment status` and `--dry-run`, a search killed with kill -9 that a rerun takes to
exactly its budget, the same search on Dask, pruning with --stop and a class's own rules,
and bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import COMMAND, environment, experiment, wait_for, write

pytestmark = pytest.mark.slow

QUAD = """
import time

from superparams import Experiment, search, seeds, uniform


class Quad(Experiment):
    x: float = uniform(-5, 5)
    kind: str = search("a", "b")
    seed: int = seeds(2)

    def run(self) -> dict:
        time.sleep(float(__import__("os").environ.get("QUAD_SLEEP", "0")))
        return {"loss": (self.x - 1) ** 2 + (self.kind == "b") + self.seed / 100}
"""


def search(root: Path, budget: int, *more: str, **env: str) -> subprocess.Popen[str]:
    """``experiment quad.Quad --optimize loss --min --budget N``, in a session of its own."""
    return subprocess.Popen(
        [
            str(COMMAND),
            "quad.Quad",
            "--optimize",
            "loss",
            "--min",
            "--budget",
            str(budget),
            "--sample-seed",
            "0",
            *more,
        ],
        cwd=root,
        env=environment(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its workers with it, for a kill -9 of them all
    )


class TestStatus:
    def test_status_shows_the_budget_used_and_the_best_so_far(self, tmp_path):
        """After a search, `experiment status` says how much of the budget it used and the
        best configuration so far, on the mean over its seeds."""
        write(tmp_path / "experiments/quad.py", QUAD)
        child = search(tmp_path, 5)
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        status = experiment("status", "quad.Quad", cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        lines = status.stdout.splitlines()
        assert "search: 5 of 5 configurations (minimise loss; sampler tpe, seed 0)" in lines
        best = next(line for line in lines if line.startswith("  best so far: loss "))
        assert best.endswith(")")
        assert "over 2 seeds (x=" in best


class TestKilled:
    def test_a_search_killed_mid_run_reaches_exactly_its_budget(self, tmp_path):
        """kill -9 while a search runs, then the same search again: it reaches its budget of
        8 configurations, each on both seeds, and no setting completed twice."""
        write(tmp_path / "experiments/quad.py", QUAD)
        record = tmp_path / "experiments/progress/quad/Quad/record.jsonl"
        child = search(tmp_path, 8, QUAD_SLEEP="0.2")
        wait_for(lambda: record.exists() and record.read_text().count('"outcome"') >= 5, "outcomes")
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate(timeout=30)
        again = search(tmp_path, 8)
        _, err = again.communicate(timeout=120)
        assert again.returncode == 0, err
        lines = [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
        completed = Counter(
            line["id"]
            for line in lines
            if line.get("event") == "outcome" and line.get("status") == "completed"
        )
        assert len(completed) == 16
        assert set(completed.values()) == {1}
        table = pl.read_parquet(record.with_name("results.parquet"))
        assert table.select("x", "kind").unique().height == 8


class TestTheCommand:
    def test_a_line_per_configuration_then_the_best(self, tmp_path):
        """The command says what it searches, a line for each configuration with its mean
        over the seeds and the best so far, then the best; --dry-run then says what more
        it would propose."""
        write(tmp_path / "experiments/quad.py", QUAD)
        child = search(tmp_path, 4, "-j", "2")
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        lines = err.splitlines()
        assert lines[0] == (
            "Quad: searching 4 configurations (minimise loss; sampler tpe, seed 0), 2 at a "
            "time, each on 2 seeds; results in experiments/progress/quad/Quad"
        )
        assert [line.split("]")[0] for line in lines[1:5]] == ["[1/4", "[2/4", "[3/4", "[4/4"]
        assert all(" over 2 seeds (x=" in line for line in lines[1:5])
        best = [float(line.split("best so far: loss ")[1].split()[0]) for line in lines[1:5]]
        told = [float(line.split("] loss ")[1].split()[0]) for line in lines[1:5]]
        assert best == [min(told[: i + 1]) for i in range(4)]  # the running best, shown
        assert lines[5] == "search: 4 of 4 configurations (minimise loss; sampler tpe, seed 0)"
        dry = experiment(
            "quad.Quad", "--optimize", "loss", "--min", "--budget", "6", "--dry-run", cwd=tmp_path
        )
        assert dry.returncode == 0, dry.stderr
        assert dry.stderr.splitlines()[-1] == (
            "would propose 2 more configurations (1 at a time, each on 2 seeds)"
        )

    @pytest.mark.parametrize("engine", ["inline", "ray", "slurm"])
    def test_on_every_engine(self, tmp_path, engine):
        """The search runs as one run on each engine, which takes each proposal's settings
        as it is made (they are not in the space its workers were given): it reaches its
        budget, each configuration on both seeds, with the same proposals as locally."""
        if engine == "ray":
            pytest.importorskip("ray")
        if engine == "slurm":
            from tests.slurm import need_slurm

            need_slurm()
        write(tmp_path / "experiments/quad.py", QUAD)
        child = search(tmp_path, 3, "--engine", engine)
        _, err = child.communicate(timeout=600)
        assert child.returncode == 0, err
        table = pl.read_parquet(tmp_path / "experiments/progress/quad/Quad/results.parquet")
        assert table.height == 6
        assert sorted(Counter(table["label"].str.replace(r",?seed=\d", "")).values()) == [2, 2, 2]
        local = tmp_path / "local"
        write(local / "experiments/quad.py", QUAD)
        child = search(local, 3)
        child.communicate(timeout=300)
        here = pl.read_parquet(local / "experiments/progress/quad/Quad/results.parquet")
        assert sorted(table["id"].to_list()) == sorted(here["id"].to_list())

    def test_on_dask(self, tmp_path):
        """The same search on the Dask engine (a local cluster of its own) reaches its
        budget, each configuration on both seeds."""
        pytest.importorskip("distributed")
        write(tmp_path / "experiments/quad.py", QUAD)
        child = search(tmp_path, 3, "--engine", "dask", "-j", "2")
        _, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
        table = pl.read_parquet(tmp_path / "experiments/progress/quad/Quad/results.parquet")
        assert table.height == 6
        assert table.select("x", "kind").unique().height == 3


REPORTS = """
from superparams import Experiment, search
from superparams.stopping import threshold


class Curve(Experiment):
    lr: float = search(0.5, 2.0)
    stop = threshold("loss", above=100)

    def run(self):
        for epoch in range(1, 6):
            self.report(epoch=epoch, loss=self.lr ** (2 * epoch))
"""


class TestStopFromTheCommandLine:
    def test_a_class_rule_and_a_stop_given_on_the_command_line(self, tmp_path):
        """The class's own rule stops lr=2.0 when its loss passes 100 (epoch 4); --stop
        in its place stops it at epoch 2 instead; the stopped column names the rule."""
        write(tmp_path / "experiments/curve.py", REPORTS)
        done = experiment("curve.Curve", "-q", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        stored = tmp_path / "experiments/progress/curve/Curve/results.parquet"
        table = pl.read_parquet(stored).filter(pl.col("lr") == 2.0)
        assert table["epoch"].to_list() == [1, 2, 3, 4]
        assert table["stopped"].to_list()[-1] == "threshold(loss)"
        again = experiment(
            "curve.Curve", "-q", "--fresh", "--stop", "threshold(loss, above=10)", cwd=tmp_path
        )
        assert again.returncode == 0, again.stderr
        table = pl.read_parquet(stored).filter(pl.col("lr") == 2.0)
        assert table["epoch"].to_list() == [1, 2]
        assert pl.read_parquet(stored).filter(pl.col("lr") == 0.5).height == 5

    def test_several_stop_rules(self, tmp_path):
        """--stop given twice: either rule stops a setting."""
        write(tmp_path / "experiments/curve.py", REPORTS)
        done = experiment(
            "curve.Curve",
            "-q",
            "--stop",
            "threshold(loss, above=1000)",
            "--stop",
            "threshold(loss, below=0.01)",
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        table = pl.read_parquet(tmp_path / "experiments/progress/curve/Curve/results.parquet")
        assert table.group_by("lr").agg(pl.len()).sort("lr").rows() == [(0.5, 4), (2.0, 5)]


class TestBadInput:
    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (
                ("--optimize", "loss", "--budget", "0"),
                "--budget expects a whole number of at least 1, got '0'",
            ),
            (
                ("--optimize", "loss"),
                "--optimize needs --budget N: how many configurations to try in all, e.g. "
                "--budget 40",
            ),
            (("--budget", "4"), "--budget go with --optimize METRIC, which is not given"),
            (
                ("--optimize", "loss", "--budget", "4", "--sampler", "tpee"),
                "--sampler: no sampler 'tpee' (did you mean 'tpe'?); samplers: tpe, cmaes, "
                "random, gp",
            ),
            (
                ("--stop", "median(loss"),
                "--stop 'median(loss' is not a rule; write one of median, threshold, halving "
                "as a call, e.g. median(loss, step=epoch, warmup=2)",
            ),
            (
                ("--optimize", "loss", "--budget", "4", "--sample", "3"),
                "--sample does not go with --optimize: a search proposes its own settings and "
                "resumes from what is stored",
            ),
        ],
    )
    def test_is_one_line_exit_2_and_nothing_written(self, tmp_path, args, message):
        """Bad search and stop options: one line, exit 2, nothing written."""
        write(tmp_path / "experiments/quad.py", QUAD)
        done = experiment("quad.Quad", *args, cwd=tmp_path)
        assert (done.returncode, done.stderr) == (2, f"error: {message}\n")
        assert not (tmp_path / "experiments/progress").exists()

    def test_a_sampler_whose_package_is_missing(self, tmp_path):
        """--sampler gp without torch says what to install, and writes nothing."""
        try:
            import torch  # noqa: F401
        except ImportError:
            pass
        else:
            pytest.skip("torch is installed here")
        write(tmp_path / "experiments/quad.py", QUAD)
        done = experiment(
            "quad.Quad", "--optimize", "loss", "--budget", "2", "--sampler", "gp", cwd=tmp_path
        )
        assert (done.returncode, done.stderr) == (
            2,
            "error: sampler='gp' needs the package 'torch', which is not installed: "
            "pip install torch\n",
        )
        assert not (tmp_path / "experiments/progress").exists()

    def test_an_unknown_metric(self, tmp_path):
        """A metric the stored settings do not report: one line naming those they do,
        exit 2, and the store unchanged."""
        write(tmp_path / "experiments/quad.py", QUAD)
        first = search(tmp_path, 2)
        _, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
        record = tmp_path / "experiments/progress/quad/Quad/record.jsonl"
        before = record.read_bytes()
        done = experiment("quad.Quad", "--optimize", "los", "--budget", "3", cwd=tmp_path)
        assert (done.returncode, done.stderr) == (
            2,
            "error: Quad has no metric 'los' to optimise (did you mean 'loss'?); its run() "
            "reports loss\n",
        )
        assert record.read_bytes() == before


EXAMPLES = Path(__file__).parents[2] / "examples"


class TestTheExample:
    def test_the_search_is_at_least_as_good_as_the_grid(self, tmp_path):
        """examples/experiments/tuned.py: a search of 30 configurations on 3 seeds finds a
        best mean accuracy at least as good as the 30-point grid's, within its std."""
        pytest.importorskip("sklearn")
        shutil.copytree(EXAMPLES, tmp_path / "examples")
        root = tmp_path / "examples"
        grid = experiment(
            "tuned.Digits",
            "--C",
            "0.1,1,10,100,1000",
            "--gamma",
            "1e-4,3e-4,1e-3,3e-3,0.01,0.03",
            "-j",
            "2",
            "-q",
            cwd=root,
            timeout=600,
        )
        assert grid.returncode == 0, grid.stderr
        summary = json.loads(
            experiment("results", "tuned.Digits", "--over", "seed", "--json", cwd=root).stdout
        )["rows"]
        top = max(summary, key=lambda r: r["acc_mean"])
        search = experiment(
            "tuned.Digits",
            "--optimize",
            "acc",
            "--budget",
            "30",
            "--sample-seed",
            "0",
            "-j",
            "2",
            "-q",
            cwd=root,
            timeout=600,
            SUPERPARAMS_PROGRESS=str(tmp_path / "search"),
        )
        assert search.returncode == 0, search.stderr
        stored = pl.read_parquet(tmp_path / "search/tuned/Digits/results.parquet")
        means = stored.group_by("C", "gamma").agg(pl.col("acc").mean(), pl.len())
        assert means.height == 30
        assert set(means["len"].to_list()) == {3}
        assert means["acc"].max() >= top["acc_mean"] - top["acc_std"]
