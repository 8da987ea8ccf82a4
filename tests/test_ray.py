"""The Ray engine through the ``experiment`` command, on a real two-node Ray cluster (the
contract every engine passes runs on the same cluster, in tests/executors/test_contract.py).

The cluster (``ray start --head`` and a second ``ray start --address``, one CPU each) and
every command that talks to it run in a network namespace with only loopback, made by
tests/ray_cluster.py; the experiment's file is not on the workers' path: its module
travels by value.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from tests.e2e.test_cli import COMMAND, environment, write
from tests.ray_cluster import ENV, Namespace, open_namespace

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

NODES = """
import os
import sys
import time
from pathlib import Path
from superparams import Experiment, search

RUNS = Path(__file__).with_name("runs.txt")

class Nodes(Experiment):
    n: int = search(*range(6))
    how: str = "well"

    def run(self):
        with open(RUNS, "a") as f:
            f.write(f"{self.n}\\n")
        if self.n == 3 and self.how == "dies":
            os._exit(7)
        if self.how == "slow":
            time.sleep(4)
            RUNS.with_name("finished.txt").write_text(str(self.n))
        time.sleep(0.5)  # long enough for settings to overlap
        ray = sys.modules.get("ray")  # in a Ray worker, and only there
        return {
            "pid": os.getpid(),
            "node": ray.get_runtime_context().get_node_id() if ray else "-",
            "gpu": os.environ.get("CUDA_VISIBLE_DEVICES", "-"),
            "rank": self.rank,
            "n_proc": self.n_proc,
        }
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path / "experiments/nodes.py", NODES)
    return tmp_path


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    """A namespace with only loopback and no cluster in it."""
    made = open_namespace()
    try:
        yield made
    finally:
        made.close()


def experiment(
    root: Path, *args: str, inside: Namespace | None = None
) -> subprocess.CompletedProcess[str]:
    """``experiment nodes.Nodes --engine ray ...``, in the namespace ``inside``."""
    return subprocess.run(
        [*(inside.prefix if inside else []), str(COMMAND), "nodes.Nodes", "--engine", "ray", *args],
        cwd=root,
        env={**environment(), **ENV},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def table(root: Path) -> pl.DataFrame:
    return pl.read_parquet(root / "experiments/progress/nodes/Nodes/results.parquet").sort("n")


def runs(root: Path) -> list[int]:
    """The settings' ``n``, once per time one began to run."""
    return sorted(int(n) for n in (root / "experiments/runs.txt").read_text().split())


class TestOnACluster:
    def test_the_address_from_the_command_line(self, project, ray_cluster):
        """--engine-option address=... runs every setting once on the cluster's two
        nodes, n_proc being how many settings fit there at once."""
        address = f"address={ray_cluster.address}"
        done = experiment(project, "--engine-option", address, inside=ray_cluster.namespace)
        assert done.returncode == 0, done.stderr
        assert "running 6 settings on the ray engine" in done.stdout + done.stderr
        rows = table(project)
        assert rows["status"].to_list() == ["completed"] * 6
        assert rows["node"].n_unique() == 2
        assert set(rows["n_proc"]) == {2}
        assert set(rows["rank"]) == {0, 1}
        assert runs(project) == list(range(6))

    def test_a_dead_worker_is_never_retried_by_ray(self, project, ray_cluster):
        """A setting that kills its worker runs once (Ray would run it three more times)
        and fails with cause killed; the others complete."""
        address = f"address={ray_cluster.address}"
        done = experiment(
            project, "--how", "dies", "--engine-option", address, inside=ray_cluster.namespace
        )
        assert done.returncode == 1, done.stderr
        rows = table(project)
        assert rows["status"].to_list() == ["completed"] * 3 + ["failed"] + ["completed"] * 2
        assert rows["cause"][3] == "killed"
        assert "the Ray worker running this setting was lost" in rows["error"][3]
        assert runs(project) == list(range(6))

    def test_retries_are_the_users_only_retry(self, project, ray_cluster):
        """With --retries 1, a setting that kills its worker runs exactly twice."""
        address = f"address={ray_cluster.address}"
        done = experiment(
            project,
            "--how",
            "dies",
            "--retries",
            "1",
            "--engine-option",
            address,
            inside=ray_cluster.namespace,
        )
        assert done.returncode == 1, done.stderr
        assert table(project)["status"][3] == "failed"
        assert runs(project) == [0, 1, 2, 3, 3, 4, 5]

    def test_a_timeout_stops_the_settings_worker(self, project, ray_cluster):
        """A setting past --timeout fails with cause timeout, and Ray stops its worker: no
        attempt goes on in the background while the run tries it again."""
        address = f"address={ray_cluster.address}"
        slow = ["--n", "0", "--how", "slow", "--timeout", "1", "--retries", "5"]
        done = experiment(project, *slow, "--engine-option", address, inside=ray_cluster.namespace)
        assert done.returncode == 1, done.stderr
        assert table(project)["cause"].to_list() == ["timeout"]
        # 6 attempts, 6 s at least: long enough for a first one left running to finish
        # (some attempts time out while Ray starts a new worker, before they begin)
        assert set(runs(project)) == {0}
        assert len(runs(project)) >= 2
        assert not (project / "experiments/finished.txt").exists()

    def test_more_gpus_than_the_cluster_has(self, project, ray_cluster):
        """Settings that ask for a GPU of a cluster with none: one line, exit code 2."""
        options = f"address={ray_cluster.address},num_gpus=1"
        done = experiment(project, "--engine-option", options, inside=ray_cluster.namespace)
        assert done.returncode == 2, done.stderr
        assert done.stderr.splitlines()[-1] == (
            "error: the Ray cluster has 2 CPU, 0 GPU, too little for one setting asking "
            "for num_cpus=1, num_gpus=1; ask for less with --engine-option, or add nodes"
        )


class TestALostHead:
    def test_the_run_stops_with_one_line_and_exit_6(self, project, tmp_path_factory):
        """A head killed mid-run stops the run at once with one line and exit code 6, as
        a lost Dask scheduler does (Ray's driver would wait 60 s, print its own C++
        message and exit 1): what finished is stored, the rest runs again later."""
        import os
        import signal
        import time

        from tests.ray_cluster import start_cluster

        cluster_maker = start_cluster(tmp_path_factory.mktemp("ray-lost"))
        cluster = next(cluster_maker)
        try:
            child = subprocess.Popen(
                [
                    *cluster.namespace.prefix,
                    str(COMMAND),
                    "nodes.Nodes",
                    "--engine",
                    "ray",
                    "--how",
                    "slow",
                    "--engine-option",
                    f"address={cluster.address}",
                ],
                cwd=project,
                env={**environment(), **ENV},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                stdin=subprocess.DEVNULL,
            )
            record = project / "experiments/progress/nodes/Nodes/record.jsonl"
            deadline = time.monotonic() + 90
            while not (record.exists() and '"event":"outcome"' in record.read_text()):
                assert time.monotonic() < deadline, "no setting finished"
                time.sleep(0.2)
            head = _head_node(cluster.namespace.members())
            killed = time.monotonic()
            for pid in head:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            out, err = child.communicate(timeout=120)
            took = time.monotonic() - killed
        finally:
            with contextlib.suppress(Exception):
                next(cluster_maker)
        assert child.returncode == 6, out + err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, err
        assert errors[0].startswith(f"error: the Ray head at {cluster.address} was lost mid-run")
        assert "Traceback" not in err, err
        assert took < 45, f"the run took {took:.0f} s to stop"
        kept = table(project).filter(pl.col("status") != "interrupted")
        assert len(kept) >= 1
        assert set(kept["status"]) == {"completed"}


def _head_node(pids: list[int]) -> list[int]:
    """The processes of the head node among ``pids``: its GCS server, dashboard and
    monitors, and its raylet (the one whose socket is not numbered) with what it
    started (the head node's workers); the other node's raylet and its workers are
    spared."""
    import re

    commands, parents = {}, {}
    for pid in pids:
        with contextlib.suppress(OSError):
            commands[pid] = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text()
            parents[pid] = int(stat.rpartition(")")[2].split()[1])
    head = {
        pid
        for pid, command in commands.items()
        if re.search(rb"gcs_server|dashboard\.py|monitor\.py|sockets/raylet\x00", command)
        and b"raylet.1" not in command
    }
    grew = True
    while grew:  # what the head's processes started, and what those started
        more = {pid for pid, parent in parents.items() if parent in head} - head
        head |= more
        grew = bool(more)
    assert any(b"gcs_server" in commands[pid] for pid in head), commands
    return sorted(head)


class TestALocalRay:
    def test_without_an_address_a_local_ray_for_the_run(self, project, namespace):
        """With no address, the run starts a Ray of -j CPUs, whose GPUs are the --gpus
        ids (Ray sets CUDA_VISIBLE_DEVICES, one GPU a setting), and stops it after."""
        done = experiment(project, "-j", "2", "--gpus", "5,7", inside=namespace)
        assert done.returncode == 0, done.stderr
        rows = table(project)
        assert rows["status"].to_list() == ["completed"] * 6
        assert set(rows["n_proc"]) == {2}
        assert set(rows["gpu"]) == {"5", "7"}
        assert namespace.members() == []  # no Ray process outlives the run

    def test_an_address_where_nothing_listens(self, project, namespace):
        """An address where no cluster runs: one line, exit code 6, within seconds."""
        done = experiment(project, "--engine-option", "address=127.0.0.1:1", inside=namespace)
        assert done.returncode == 6, done.stderr
        assert done.stderr.splitlines()[-1] == (
            "error: the Ray cluster at 127.0.0.1:1 could not be reached within 10 s "
            "(ConnectionRefusedError: [Errno 111] Connection refused); check that it runs "
            "and the address, or name none to run on a local Ray"
        )
        assert "Traceback" not in done.stderr


class TestEngineOptions:
    def test_an_option_the_engine_does_not_take(self, project):
        """An unknown option is one line with a suggestion, exit code 2, nothing written."""
        done = experiment(project, "--engine-option", "adress=127.0.0.1:6380")
        assert done.returncode == 2
        assert done.stderr == (
            "error: the ray engine has no option 'adress' (did you mean 'address'?); "
            "its options: address, num_cpus, num_gpus\n"
        )
        assert not (project / "experiments/progress").exists()

    def test_a_number_that_is_not_one(self, project):
        """num_cpus takes a number: other text is one line, exit code 2."""
        done = experiment(project, "--engine-option", "num_cpus=two")
        assert done.returncode == 2
        assert done.stderr == (
            "error: the ray engine's option num_cpus takes float values, not 'two'\n"
        )


LOADED = """
import sys
from superparams._cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:  # --help
    code = stop.code
print("ray" in sys.modules, file=sys.stderr)
sys.exit(code)
"""


class TestStartUp:
    @pytest.mark.parametrize("args", [["--help"], ["nodes.Nodes", "-j", "2"]])
    def test_help_and_a_local_run_never_import_ray(self, project, args):
        """``experiment --help`` and a run on the local engine leave Ray unimported."""
        done = subprocess.run(
            [sys.executable, "-c", LOADED, *args],
            cwd=project,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr.splitlines()[-1] == "False"
