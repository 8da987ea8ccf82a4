"""The Dask engine against a real Dask cluster on loopback (the contract every engine
passes, on a local Dask cluster, is in tests/executors/test_contract.py).

A module fixture starts ``dask scheduler`` and two ``dask worker`` processes (one thread
each) on 127.0.0.1, as a user's cluster would run, and stops them at the end. The
experiment's file is not on the workers' path: its module travels by value.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import wait_for
from tests.e2e.sources import WORK
from tests.e2e.test_cli import COMMAND, environment, write

pytest.importorskip("distributed")
pytestmark = pytest.mark.slow

DASK = Path(sys.executable).with_name("dask")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A scheduler and two one-thread workers on loopback; the scheduler's address."""
    folder = tmp_path_factory.mktemp("dask")
    scheduler_file = folder / "scheduler.json"
    env = {
        **os.environ,
        # A setting that kills its worker is that setting's failure, never retried.
        "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
        "PYTHONPATH": "",
    }
    common = {"cwd": folder, "env": env, "stdin": subprocess.DEVNULL}
    logs = open(folder / "cluster.log", "w")  # noqa: SIM115  # closed below
    scheduler = [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0"]
    worker = [str(DASK), "worker", "--scheduler-file", str(scheduler_file)]
    worker += ["--host", "127.0.0.1", "--nworkers", "1", "--nthreads", "1", "--no-dashboard"]
    processes = [
        subprocess.Popen(
            [*scheduler, "--scheduler-file", str(scheduler_file), "--dashboard-address", ":0"],
            stdout=logs,
            stderr=logs,
            **common,
        )
    ]
    try:
        wait_for(scheduler_file.exists, "the Dask scheduler to start", timeout=60)
        processes += [
            subprocess.Popen(worker, stdout=logs, stderr=logs, **common) for _ in range(2)
        ]
        import json

        address = json.loads(scheduler_file.read_text())["address"]
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        logs.close()


def run(root: Path, *args: str, address: str | None = None, **env: str):
    extra = {"DASK_SCHEDULER_ADDRESS": address} if address else {}
    return subprocess.run(
        [str(COMMAND), "work.Work", "--engine", "dask", *args],
        cwd=root,
        env={**environment(), **extra, **env},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def table(root: Path) -> pl.DataFrame:
    return pl.read_parquet(root / "experiments/progress/work/Work/results.parquet").sort("n")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path / "experiments/work.py", WORK)
    return tmp_path


class TestOnACluster:
    def test_every_setting_once_with_its_rank(self, project, cluster):
        """Each setting runs once, on the cluster's workers, with a rank below n_proc;
        its output reaches the store's log."""
        done = run(project, address=cluster)
        assert done.returncode == 0, done.stderr
        rows = table(project)
        assert rows["status"].to_list() == ["completed"] * 6
        assert set(rows["n_proc"]) == {2}
        assert set(rows["rank"]) <= {0, 1}
        assert rows["pid"].n_unique() == 2  # the two Dask workers, not the command
        assert os.getpid() not in set(rows["pid"])
        folder = project / "experiments/progress/work/Work"
        log = (folder / rows["log"][5]).read_text()
        assert log.startswith(f"setting n=5 rank {rows['rank'][5]} of 2")

    def test_the_base_reaches_each_worker_once(self, project, cluster):
        """The experiment's data is unpickled once per worker, never once per setting."""
        done = run(project, address=cluster)
        assert done.returncode == 0, done.stderr
        loads = (project / "experiments/unpickled.txt").read_text().split()
        assert len(loads) <= 2, loads
        assert len(set(loads)) == len(loads)

    def test_an_exception_fails_one_setting(self, project, cluster):
        """run() raising fails that setting with its traceback; the others complete."""
        done = run(project, "--how", "raises", address=cluster)
        assert done.returncode == 1, done.stderr
        rows = table(project)
        assert rows["status"].to_list() == ["completed"] * 3 + ["failed"] + ["completed"] * 2
        failed = rows.row(3, named=True)
        assert (failed["cause"], failed["error"]) == ("raised", "ValueError: n=3 is wrong")
        assert (
            "ValueError: n=3 is wrong"
            in (project / "experiments/progress/work/Work" / failed["log"]).read_text()
        )

    def test_a_dead_worker_fails_the_setting_it_ran(self, project, cluster):
        """A setting that kills its Dask worker fails with cause killed, once; the run goes
        on with the rest."""
        done = run(project, "--how", "dies", address=cluster)
        assert done.returncode == 1, done.stderr
        rows = table(project)
        assert rows["status"].to_list() == ["completed"] * 3 + ["failed"] + ["completed"] * 2
        assert rows["cause"][3] == "killed"
        assert "the Dask worker running this setting was lost" in rows["error"][3]


class TestEngineOptions:
    def test_the_address_from_the_command_line(self, project, cluster):
        """--engine-option address=... runs on that scheduler's workers."""
        done = subprocess.run(
            [
                str(COMMAND),
                "work.Work",
                "--engine",
                "dask",
                "--engine-option",
                f"address={cluster}",
            ],
            cwd=project,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stderr
        assert "running 6 settings on the dask engine" in done.stdout + done.stderr
        rows = table(project)
        assert rows["pid"].n_unique() == 2
        assert set(rows["n_proc"]) == {2}

    def test_an_option_the_engine_does_not_take(self, project):
        """An unknown option is one line with a suggestion, exit code 2, nothing written."""
        done = run(project, "--engine-option", "adress=tcp://127.0.0.1:1")
        assert done.returncode == 2
        assert done.stderr == (
            "error: the dask engine has no option 'adress' (did you mean 'address'?); "
            "its options: address\n"
        )
        assert not (project / "experiments/progress").exists()


class TestWithoutDask:
    def test_the_missing_extra_is_one_line(self, project):
        """Without Dask installed, --engine dask says what to install, exit code 2."""
        code = (
            "import sys; sys.modules['distributed'] = None\n"
            "from superparams.cli import main\n"
            "sys.exit(main(['work.Work', '--engine', 'dask']))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=project,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert done.stderr == (
            "error: the dask engine needs distributed, which is not installed: "
            "pip install 'superparams[dask]'\n"
        )
        assert not (project / "experiments/progress").exists()
