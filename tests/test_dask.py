"""The Dask engine against a real Dask cluster on loopback (the contract every engine
passes, on a local Dask cluster, is in tests/executors/test_contract.py).

A module fixture starts ``dask scheduler`` and two ``dask worker`` processes (one thread
each) on 127.0.0.1, as a user's cluster would run, and stops them at the end. The
experiment's file is not on the workers' path: its module travels by value.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from tests.conftest import wait_for
from tests.e2e.sources import BIG, WORK
from tests.e2e.test_cli import COMMAND, environment, write

import superparams

pytest.importorskip("distributed")

SOURCE = str(Path(superparams.__file__).parents[1])
pytestmark = pytest.mark.slow

DASK = Path(sys.executable).with_name("dask")


class Cluster:
    """A scheduler and two one-thread workers on loopback, each in its own process group."""

    def __init__(self, folder: Path, *, allowed_failures: str | None = "0") -> None:
        """``allowed_failures``: the scheduler's ``allowed-failures`` (None: Dask's own
        default, 3, as a scheduler started without our advice has)."""
        self.folder = folder
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs = open(folder / "cluster.log", "w")  # noqa: SIM115  # closed in stop()
        scheduler_file = folder / "scheduler.json"
        env = {
            **os.environ,
            # The superparams under test, and none of the experiment's own files.
            "PYTHONPATH": SOURCE,
        }
        env.pop("DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES", None)
        if allowed_failures is not None:
            # A setting that kills its worker is that setting's failure, never retried.
            env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = allowed_failures
        common: dict[str, Any] = {
            "cwd": folder,
            "env": env,
            "stdin": subprocess.DEVNULL,
            "stdout": self.logs,
            "stderr": self.logs,
            "start_new_session": True,
        }
        scheduler = [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0"]
        scheduler += ["--scheduler-file", str(scheduler_file), "--dashboard-address", ":0"]
        worker = [str(DASK), "worker", "--scheduler-file", str(scheduler_file)]
        worker += ["--host", "127.0.0.1", "--nworkers", "1", "--nthreads", "1", "--no-dashboard"]
        try:
            self.scheduler = subprocess.Popen(scheduler, **common)
            self.processes.append(self.scheduler)
            wait_for(
                lambda: scheduler_file.exists() and scheduler_file.read_text().endswith("}"),
                "the Dask scheduler to start",
                timeout=60,
            )
            self.processes += [subprocess.Popen(worker, **common) for _ in range(2)]
            self.address = json.loads(scheduler_file.read_text())["address"]
            from distributed import Client

            with Client(self.address, timeout=30) as client:
                client.wait_for_workers(2, timeout=60)
        except BaseException:
            self.stop(at_once=True)
            raise

    def stop(self, *, at_once: bool = False) -> None:
        """Stop every process started, workers first (``at_once``: SIGKILL, no waiting
        the ~10 s a worker takes to leave on SIGTERM)."""
        for process in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                if at_once:
                    os.killpg(process.pid, signal.SIGKILL)
                else:
                    process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            with contextlib.suppress(ProcessLookupError):  # what a worker left behind
                os.killpg(process.pid, signal.SIGKILL)
        self.logs.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A scheduler and two one-thread workers on loopback; the scheduler's address."""
    started = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        yield started.address
    finally:
        started.stop()


@pytest.fixture
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster for one test, which may kill its processes; stopped at once after."""
    started = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        yield started
    finally:
        started.stop(at_once=True)


@pytest.fixture
def default_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster for one test whose scheduler keeps Dask's default allowed-failures (3)."""
    started = Cluster(tmp_path_factory.mktemp("dask"), allowed_failures=None)
    try:
        yield started
    finally:
        started.stop(at_once=True)


def run(root: Path, *args: str, address: str | None = None, name: str = "work.Work", **env: str):
    extra = {"DASK_SCHEDULER_ADDRESS": address} if address else {}
    return subprocess.run(
        [str(COMMAND), name, "--engine", "dask", *args],
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
        expected = ["completed"] * 3 + ["failed"] + ["completed"] * 2
        assert rows["status"].to_list() == expected, rows["n", "status", "error"].rows()
        assert rows["cause"][3] == "killed"
        assert "the Dask worker running this setting was lost" in rows["error"][3]

    @pytest.mark.parametrize(
        ("how", "why"),
        [
            ("dies", "its process exited with status 7"),
            ("segfaults", "killed by signal 11 (SIGSEGV)"),
        ],
    )
    def test_a_dead_worker_says_why(self, project, cluster, how, why):
        """A setting whose worker process ends (an exit code, a segfault) fails saying how
        it ended, as its nanny saw it, not only that the worker was lost; what it printed
        up to then is in its log."""
        done = run(project, "--how", how, address=cluster)
        assert done.returncode == 1, done.stderr
        rows = table(project)
        assert rows["cause"][3] == "killed"
        assert why in rows["error"][3], rows["error"][3]
        assert rows["log"][3] is not None, rows.row(3, named=True)
        log = project / "experiments/progress/work/Work" / rows["log"][3]
        assert "setting n=3 rank" in log.read_text()


# Moves its own file away, then raises: the worker cannot read the source from disk.
TRACED = """
from pathlib import Path
from superparams import Experiment, search

HERE = Path(__file__)

class Traced(Experiment):
    n: int = search(1)

    def run(self):
        HERE.rename(HERE.with_suffix(".moved"))
        raise ValueError("this line fails")  # on a worker
"""


class TestResultsThatCannotBeReadBack:
    def test_each_fails_alone(self, tmp_path, cluster):
        """Results that pickle on a Dask worker and cannot be loaded by the command fail
        their setting, cause 'unpicklable', as on the local engine; the others complete."""
        from tests.e2e.test_setting_errors import UNREADABLE

        write(tmp_path / "experiments/unreadable.py", UNREADABLE)
        done = run(tmp_path, address=cluster, name="unreadable.Unreadable")
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        folder = tmp_path / "experiments/progress/unreadable/Unreadable"
        rows = pl.read_parquet(folder / "results.parquet")
        got = {r["how"]: (r["status"], r["cause"], r["error"]) for r in rows.iter_rows(named=True)}
        assert got["fine"] == got["after"] == ("completed", None, None)
        assert got["raises"] == (
            "failed",
            "unpicklable",
            "run() returned results that could not be read back: "
            "RuntimeError: this result cannot be loaded",
        )
        assert got["reported"] == (
            "failed",
            "unpicklable",
            "a row it reported could not be read back: RuntimeError: this result cannot be loaded",
        )


class TestTracebacks:
    def test_they_name_the_file_line_and_source(self, tmp_path, cluster):
        """A setting raising on a Dask worker has a traceback naming the experiment's
        file, the line and its text, in its row and its log, though the file travelled
        by value and is not on the worker's disk."""
        path = write(tmp_path / "experiments/traced.py", TRACED)
        done = subprocess.run(
            [str(COMMAND), "traced.Traced", "--engine", "dask", "-j", "1"],
            cwd=tmp_path,
            env={**environment(), "DASK_SCHEDULER_ADDRESS": cluster},
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 1, done.stderr
        folder = tmp_path / "experiments/progress/traced/Traced"
        row = pl.read_parquet(folder / "results.parquet").row(0, named=True)
        shown = (
            f'  File "{path}", line 12, in run\n'
            '    raise ValueError("this line fails")  # on a worker\n'
        )
        assert shown in row["traceback"], row["traceback"]
        assert shown in (folder / row["log"]).read_text()


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

    def test_each_option_adds_its_keys(self, project):
        """--engine-option given twice adds the second's keys to the first's: the engine
        reads both (here it names the second's key it does not take), exit code 2."""
        done = run(
            project,
            "--dry-run",
            "--engine-option",
            "address=tcp://127.0.0.1:1",
            "--engine-option",
            "adress=tcp://127.0.0.1:2",
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr == (
            "error: the dask engine has no option 'adress' (did you mean 'address'?); "
            "its options: address\n"
        )
        assert not (project / "experiments/progress").exists()

    @pytest.mark.parametrize(
        "options",
        [
            ("--engine-option", "address=tcp://127.0.0.1:1", "--engine-option", "address=b"),
            ("--engine-option", "address=tcp://127.0.0.1:1,address=b"),
        ],
        ids=["two options", "one option"],
    )
    def test_a_key_given_twice(self, project, options):
        """A key given twice, in two --engine-option or in one, is one line naming it and
        both values, exit code 2, nothing written."""
        done = run(project, "--dry-run", *options)
        assert done.returncode == 2, done.stderr
        assert done.stderr == (
            f"error: {options[-2]} gives the key 'address' twice ('tcp://127.0.0.1:1', "
            "then 'b'); give each key once\n"
        )
        assert not (project / "experiments/progress").exists()


# Each setting notes the pid of the worker running it in running/<n>; n=0 then sleeps
# as long as the first number in naps says, the others the second (a second each if
# there is no such file: the workers do not share the command's environment); n=4 raises.
SLOW = """
import os
import time
from pathlib import Path
from superparams import Experiment, search

RUNNING = Path(__file__).with_name("running")
NAPS = Path(__file__).with_name("naps")

class Slow(Experiment):
    n: int = search(*range(6))

    def run(self):
        RUNNING.mkdir(exist_ok=True)
        (RUNNING / str(self.n)).write_text(str(os.getpid()))
        naps = NAPS.read_text().split() if NAPS.exists() else ["1", "1"]
        time.sleep(float(naps[0] if self.n == 0 else naps[1]))
        if self.n == 4:
            raise ValueError("n=4 is wrong")
        return {"pid": os.getpid()}
"""


def slow_project(root: Path) -> Path:
    write(root / "experiments/slow.py", SLOW)
    return root


def start(root: Path, address: str, naps: str) -> subprocess.Popen[str]:
    (root / "experiments/naps").write_text(naps)
    return subprocess.Popen(
        [str(COMMAND), "slow.Slow", "--engine", "dask", "--engine-option", f"address={address}"],
        cwd=root,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def running_pid(experiments: Path, n: int) -> int:
    path = experiments / "running" / str(n)
    wait_for(lambda: path.exists() and path.read_text(), f"setting n={n} to start", timeout=60)
    return int(path.read_text())


def slow_table(root: Path) -> pl.DataFrame:
    return pl.read_parquet(root / "experiments/progress/slow/Slow/results.parquet").sort("n")


class TestAKilledWorker:
    def test_one_failed_setting_the_one_it_ran(self, tmp_path, own_cluster):
        """kill -9 of a Dask worker running a setting fails that setting with cause
        killed, and only it; the run goes on on the other worker and exits 1."""
        project = slow_project(tmp_path)
        child = start(project, own_cluster.address, "60 0.2")
        os.kill(running_pid(project / "experiments", 0), signal.SIGKILL)
        out, err = child.communicate(timeout=120)
        assert child.returncode == 1, out + err
        rows = slow_table(project)
        expected = ["failed"] + ["completed"] * 3 + ["failed", "completed"]
        assert rows["status"].to_list() == expected, rows["n", "status", "error"].rows()
        assert rows["cause"].to_list()[0::4] == ["killed", "raised"]
        assert "the Dask worker running this setting was lost" in rows["error"][0]

    def test_settings_waiting_on_it_run_elsewhere(self, tmp_path, own_cluster):
        """Settings handed to a worker but not started there when it is killed run again
        on another worker and complete; only the one it ran fails."""
        import importlib

        from superparams._outcome import Outcome, Task
        from superparams.executors.dask import DaskExecutor

        slow_project(tmp_path)
        sys.path.insert(0, str(tmp_path / "experiments"))
        try:
            base = importlib.import_module("slow").Slow()
        finally:
            sys.path.pop(0)
            sys.modules.pop("slow", None)
        (tmp_path / "experiments/naps").write_text("60 1")
        executor = DaskExecutor(address=own_cluster.address)
        executor.start(base, lambda started: None)
        try:
            assert executor.num_proc == 2
            # More in flight than threads, as when a worker has left the cluster: two
            # settings wait on the workers behind the two that run.
            executor.num_proc = 4
            tasks = [Task(n, f"id{n}", 1) for n in (0, 1, 2, 3)]
            for task in tasks:
                executor.submit(task)
            os.kill(running_pid(tmp_path / "experiments", 0), signal.SIGKILL)
            outcomes: dict[str, Outcome] = {}
            wait_for(
                lambda: (
                    outcomes.update((o.id, o) for o in executor.wait(0.5)) or len(outcomes) == 4
                ),
                "every outcome",
                timeout=60,
            )
        finally:
            executor.shutdown()
        assert outcomes["id0"].failure is not None
        assert outcomes["id0"].failure.cause == "killed"
        assert {i: o.status for i, o in outcomes.items() if i != "id0"} == dict.fromkeys(
            ["id1", "id2", "id3"], "completed"
        )


class TestALostScheduler:
    def test_the_run_stops_and_resumes(self, tmp_path, own_cluster, tmp_path_factory):
        """A scheduler killed mid-run stops the run with one line and exit code 6; what
        finished is kept, and a run on another scheduler does only the rest."""
        project = slow_project(tmp_path)
        child = start(project, own_cluster.address, "60 0")
        running_pid(project / "experiments", 0)
        record = project / "experiments/progress/slow/Slow/record.jsonl"
        wait_for(
            lambda: record.exists() and record.read_text().count('"event":"outcome"') >= 3,
            "three settings to finish",
        )
        os.killpg(own_cluster.scheduler.pid, signal.SIGKILL)
        out, err = child.communicate(timeout=120)
        assert child.returncode == 6, out + err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert "Traceback" not in err, err
        assert len(errors) == 1, err
        lost = f"error: the Dask scheduler at {own_cluster.address} was lost mid-run"
        assert errors[0].startswith(lost), errors[0]
        kept = slow_table(project).filter(pl.col("status") != "interrupted")
        assert len(kept) >= 3
        assert set(kept["status"]) <= {"completed", "failed"}
        assert 0 not in kept["n"].to_list()  # it was running: to run again
        again = Cluster(tmp_path_factory.mktemp("dask"))
        try:
            second = start(project, again.address, "0 0")
            out, err = second.communicate(timeout=120)
        finally:
            again.stop(at_once=True)
        assert second.returncode == 1, out + err  # n=4 raises
        rows = slow_table(project)
        expected = ["completed"] * 4 + ["failed", "completed"]
        assert rows["status"].to_list() == expected, rows["n", "status", "error"].rows()
        lines = [json.loads(line) for line in record.read_text().splitlines()]
        outcomes = [(e["label"], e["status"]) for e in lines if e["event"] == "outcome"]
        # Over both runs: each setting completed once and never again; the only failures
        # are n=4's own (run again by the second run, as a failed setting is), none of a
        # setting the lost scheduler took with it.
        completed = [label for label, status in outcomes if status == "completed"]
        assert sorted(completed) == [f"n={n}" for n in (0, 1, 2, 3, 5)], outcomes
        assert {label for label, status in outcomes if status == "failed"} == {"n=4"}, outcomes


class TestATimeout:
    def test_a_late_setting_is_stopped_on_its_worker(self, tmp_path, own_cluster):
        """--timeout fails a late setting with cause timeout and stops it where it runs:
        its worker process is replaced, and the other settings complete."""
        project = slow_project(tmp_path)
        (project / "experiments/naps").write_text("60 0.2")
        child = subprocess.Popen(
            [str(COMMAND), "slow.Slow", "--engine", "dask", "--timeout", "3"],
            cwd=project,
            env={**environment(), "DASK_SCHEDULER_ADDRESS": own_cluster.address},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        late = running_pid(project / "experiments", 0)
        out, err = child.communicate(timeout=120)
        assert child.returncode == 1, out + err
        rows = slow_table(project)
        assert rows["cause"].to_list()[0::4] == ["timeout", "raised"]
        assert rows["status"].to_list()[1:4] + rows["status"].to_list()[5:] == ["completed"] * 4

        def gone() -> bool:
            try:
                os.kill(late, 0)
            except ProcessLookupError:
                return True
            return False

        wait_for(gone, "the late setting's worker to stop", timeout=20)


class TestGpusOnACluster:
    def test_workers_without_the_gpu_resource_stop_the_run_at_once(self, project, cluster):
        """--gpus on a cluster none of whose workers offers the GPU resource stops the run
        at its start with one line saying how to start such a worker, exit code 6, and
        runs nothing (Dask would wait for one forever)."""
        done = run(project, "--engine-option", f"address={cluster}", "--gpus", "0")
        assert done.returncode == 6, done.stdout + done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, done.stderr
        assert errors[0] == (
            f"error: no worker of the Dask cluster at {cluster} offers the 'GPU' resource "
            "that --gpus needs, so no setting could start; start workers that do: "
            f"`dask worker {cluster} --resources GPU=1` (one per GPU, with "
            "CUDA_VISIBLE_DEVICES set to it), or run without --gpus"
        )
        assert_nothing_ran(project)

    def test_a_local_cluster_says_to_name_one_with_gpu_workers(self, project):
        """--gpus with no scheduler named (a local cluster, whose workers offer no GPU
        resource) stops at the start with one line saying what to do, exit code 6."""
        done = run(project, "-j", "1", "--gpus", "0")
        assert done.returncode == 6, done.stdout + done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert errors == [
            "error: the local Dask cluster made for the run offers no 'GPU' resource, which "
            "--gpus needs; start a scheduler and workers that do (`dask worker ADDRESS "
            "--resources GPU=1`, one per GPU, with CUDA_VISIBLE_DEVICES set to it) and name "
            "it with --engine-option address=ADDRESS, or use --engine local for --gpus on "
            "this machine"
        ], done.stderr
        assert_nothing_ran(project)


def assert_nothing_ran(project: Path) -> None:
    """No setting of work.Work has a result (an interrupted row is not one)."""
    results = project / "experiments/progress/work/Work/results.parquet"
    assert (
        not results.exists()
        or pl.read_parquet(results).filter(pl.col("status") != "interrupted").is_empty()
    )


# Each setting notes that it ran in a file beside the experiment (not in the store), then
# n=1 kills the process that runs it, at once.
CRASHES = """
import os
from pathlib import Path
from superparams import Experiment, search

RAN = Path(__file__).with_name("ran.txt")

class Crashes(Experiment):
    n: int = search(0, 1, 2)

    def run(self):
        with RAN.open("a") as ran:
            ran.write(f"{self.n}\\n")
        if self.n == 1:
            os._exit(1)
        return {"n2": self.n * 2}
"""


class TestASettingThatKillsItsWorker:
    @pytest.mark.parametrize("retries", [0, 1])
    def test_it_runs_as_often_as_retries_say(self, tmp_path, default_cluster, retries):
        """On a scheduler that would retry a task whose worker died (Dask's default
        allowed-failures), a setting that kills its worker runs once, plus --retries,
        and fails with cause killed; the others complete once."""
        write(tmp_path / "experiments/crashes.py", CRASHES)
        done = run(
            tmp_path,
            "--engine-option",
            f"address={default_cluster.address}",
            "--retries",
            str(retries),
            name="crashes.Crashes",
        )
        assert done.returncode == 1, done.stdout + done.stderr
        ran = (tmp_path / "experiments/ran.txt").read_text().split()
        assert sorted(ran) == sorted(["0", "2"] + ["1"] * (1 + retries)), ran
        folder = tmp_path / "experiments/progress/crashes/Crashes"
        rows = pl.read_parquet(folder / "results.parquet").sort("n")
        assert rows["status"].to_list() == ["completed", "failed", "completed"]
        assert rows["cause"][1] == "killed"
        assert "the Dask worker running this setting was lost" in rows["error"][1]


# Each setting carries 50 MB of data, shipped to every worker once per run.
FIELD = 50_000_000
HEAVY = (
    BIG
    + f"""
class Heavy(Experiment):
    data: Big = Big(b"x" * {FIELD})
    n: int = search(0, 1, 2, 3)

    def run(self):
        return {{"size": len(self.data.payload)}}
"""
)


class TestAWorkerAfterARun:
    def test_it_keeps_nothing_of_the_run(self, tmp_path, own_cluster):
        """Three runs in a row of an experiment with a 50 MB field, on one cluster: after
        each, no worker holds that run's data, and each worker's memory is back to what it
        was before the first (within half the field)."""
        from distributed import Client

        def what_workers_hold() -> tuple[int, int]:
            """On a worker (shipped by value): its resident memory, and how many runs'
            data the engine keeps there."""
            import psutil

            from superparams.executors.dask import _node

            return psutil.Process().memory_info().rss, len(_node.BLOBS) + len(_node.BASES)

        write(tmp_path / "experiments/heavy.py", HEAVY)
        held: list[dict[str, tuple[int, int]]] = []
        with Client(own_cluster.address, timeout=30) as client:
            before = client.run(what_workers_hold)
            for _ in range(3):
                done = run(
                    tmp_path,
                    "--fresh",
                    "--engine-option",
                    f"address={own_cluster.address}",
                    name="heavy.Heavy",
                )
                assert done.returncode == 0, done.stdout + done.stderr
                held.append(client.run(what_workers_hold))
        assert {w: kept for after in held for w, (_, kept) in after.items()} == dict.fromkeys(
            held[0], 0
        )
        for worker, (first, _) in before.items():
            grown = [after[worker][0] - first for after in held]
            assert max(grown) < FIELD / 2, (worker, first, [a[worker][0] for a in held])
