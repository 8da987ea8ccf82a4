"""What every engine must do, checked on each one: the contract of the executor seam.

Each test runs the same experiment on every built-in engine (``inline``: this process;
``local``: worker processes; ``dask``: a local Dask cluster made for the run; ``ray``: a
real two-node Ray cluster, see tests/ray_cluster.py; ``slurm``: the Slurm cluster
``sinfo`` answers, see tests/slurm.py) and checks a promise the runner relies on. A new
engine joins the list and must pass them all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import COMMAND, environment, wait_for, write
from tests.e2e.sources import WORK
from tests.slurm import need_slurm

pytestmark = pytest.mark.slow

ENGINES = ["inline", "local", "dask", "ray", "slurm"]


class Engine(str):
    """An engine's name, with what its command needs: a prefix and environment variables."""

    prefix: tuple[str, ...] = ()
    env: dict[str, str] = {}  # noqa: RUF012  # never changed in place

    def environment(self, **settings: str) -> dict[str, str]:
        """The command's environment, with ``settings`` for the settings' processes too
        (a Ray cluster's workers keep their own: Ray's job configuration carries them)."""
        env = {**environment(), **self.env, **settings}
        if self == "ray" and settings:
            job = {"runtime_env": {"env_vars": settings}}
            env["RAY_JOB_CONFIG_JSON_ENV_VAR"] = json.dumps(job)
        return env


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> Engine:
    made = Engine(request.param)
    if made == "ray":  # run inside the cluster's namespace, on the cluster
        cluster = request.getfixturevalue("ray_cluster")
        made.prefix = tuple(cluster.namespace.prefix)
        made.env = {**cluster.namespace.env, "RAY_ADDRESS": cluster.address}
    if made == "slurm":
        need_slurm()
    return made


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path / "experiments/work.py", WORK)
    return tmp_path


def run(root: Path, engine: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*engine.prefix, str(COMMAND), "work.Work", "--engine", engine, "-j", "2", *args],
        cwd=root,
        env=engine.environment(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def folder(root: Path) -> Path:
    return root / "experiments/progress/work/Work"


def table(root: Path) -> pl.DataFrame:
    return pl.read_parquet(folder(root) / "results.parquet").sort("n")


def outcome_lines(root: Path) -> list[str]:
    record = (folder(root) / "record.jsonl").read_text().splitlines()
    return [line for line in record if '"event":"outcome"' in line]


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
class TestContract:
    def test_every_outcome_arrives_once(self, project, engine):
        """Each setting's outcome is recorded exactly once, and all complete."""
        done = run(project, engine)
        assert done.returncode == 0, done.stderr
        assert table(project)["status"].to_list() == ["completed"] * 6
        assert len(outcome_lines(project)) == 6

    def test_an_exception_fails_one_setting(self, project, engine):
        """run() raising fails that setting, with its error and traceback; the rest run."""
        done = run(project, engine, "--how", "raises")
        assert done.returncode == 1, done.stderr
        rows = table(project)
        assert rows["status"].to_list() == ["completed"] * 3 + ["failed"] + ["completed"] * 2
        assert rows["error"][3] == "ValueError: n=3 is wrong"
        assert "n=3 is wrong" in rows["traceback"][3]

    def test_a_dead_worker_fails_the_setting_it_ran(self, project, engine):
        """A setting that kills its worker fails with cause killed; the run goes on."""
        if engine == "inline":
            pytest.skip("inline runs settings in the run's own process: its death is the run's")
        done = run(project, engine, "--how", "dies")
        assert done.returncode == 1, done.stderr
        rows = table(project)
        assert rows["status"].to_list() == ["completed"] * 3 + ["failed"] + ["completed"] * 2
        assert rows["cause"][3] == "killed"

    def test_rank_and_n_proc(self, project, engine):
        """Every setting has a rank below n_proc; n_proc is the engine's parallelism."""
        done = run(project, engine)
        assert done.returncode == 0, done.stderr
        rows = table(project)
        n_proc = 1 if engine == "inline" else 2
        assert set(rows["n_proc"]) == {n_proc}
        assert set(rows["rank"]) <= set(range(n_proc))

    def test_logs_reach_the_store(self, project, engine):
        """What a setting prints is in its log in the results folder."""
        done = run(project, engine)
        assert done.returncode == 0, done.stderr
        rows = table(project)
        for n, rank, log in zip(rows["n"], rows["rank"], rows["log"], strict=True):
            text = (folder(project) / log).read_text()
            assert f"setting n={n} rank {rank} of " in text

    def test_reported_rows_reach_the_store(self, project, engine):
        """Rows a setting reports are stored, before what it returns; a setting that fails
        keeps them (an engine that cannot stream them delivers them with the outcome)."""
        done = run(project, engine, "--how", "reports")
        assert done.returncode == 1, done.stderr
        rows = table(project).sort("n", "step", nulls_last=True, maintain_order=True)
        assert rows["n"].to_list() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4, 5, 5, 5]
        assert rows["step"].to_list() == [0, 1, None] * 3 + [0, 1] + [0, 1, None] * 2
        kept = rows.filter(pl.col("n") == 3)
        assert kept["status"].to_list() == ["failed", "failed"]
        assert kept["error"].to_list() == ["ValueError: n=3 is wrong"] * 2

    def test_the_base_reaches_a_worker_at_most_once(self, project, engine):
        """The experiment's data is unpickled at most once per worker process."""
        # On Slurm each array task is a process of its own: 3 settings to a job, 2 jobs.
        more = ["--engine-option", "per_job=3"] if engine == "slurm" else []
        done = run(project, engine, *more)
        assert done.returncode == 0, done.stderr
        count = project / "experiments/unpickled.txt"
        loads = count.read_text().split() if count.exists() else []
        assert len(loads) == len(set(loads)) <= (0 if engine == "inline" else 2)

    def test_ctrl_c_once_then_twice(self, project, engine):
        """The first Ctrl-C starts nothing more and lets running settings go on; the
        second stops them, and they are left interrupted."""
        child = subprocess.Popen(
            [*engine.prefix, str(COMMAND), "work.Work", "--engine", engine, "-j", "2"],
            cwd=project,
            env={**engine.environment(NAP="60"), "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        running = 1 if engine == "inline" else 2
        record = folder(project) / "record.jsonl"

        def count(event: str) -> int:
            return record.read_text().count(f'"event":"{event}"') if record.exists() else 0

        wait_for(
            lambda: count("outcome") == 2 and count("started") == 2 + running,
            "the slow settings to start",
        )
        os.killpg(child.pid, signal.SIGINT)
        time.sleep(1.0)
        assert count("started") == 2 + running  # nothing more started
        os.killpg(child.pid, signal.SIGINT)
        _, err = child.communicate(timeout=60)
        assert child.returncode == 130, err
        rows = table(project)
        assert rows["status"].to_list() == ["completed"] * 2 + ["interrupted"] * running
