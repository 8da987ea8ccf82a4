"""The Slurm engine: job files only this user wrote, submit and leave, and a driver
killed at any instant that loses nothing and submits nothing twice.

The tests that submit jobs need a Slurm cluster (``.ci/run`` starts a single-node one);
they skip, saying so, where none answers. The job-file checks need none.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import COMMAND, environment, wait_for, write
from tests.slurm import need_slurm

from superparams.executors.slurm._files import (
    JobFileError,
    append_signed,
    job_key,
    own_folder,
    read_signed,
    read_signed_lines,
    write_signed,
)

# Each run() notes itself in runs.txt: a setting run twice shows there twice.
COUNTED = """
import os
import time
from pathlib import Path
from superparams import Experiment, search

RUNS = Path(__file__).with_name("runs.txt")

class Counted(Experiment):
    n: int = search(*range(6))
    blob: str = os.environ.get("BLOB", "")

    def run(self):
        resumed = self.resumed  # what an earlier attempt left: its checkpoint
        (self.workdir / "checkpoint").write_text("begun")
        with open(RUNS, "a") as f:
            f.write(f"{self.n}\\n")
        began = time.time()
        nap = float(os.environ.get("NAP", "0"))
        time.sleep(nap * (8 if str(self.n) == os.environ.get("LONG") else 1))
        if str(self.n) == os.environ.get("FAIL"):
            raise ValueError(f"n={self.n} fails")
        if str(self.n) == os.environ.get("KILL"):
            print(f"n={self.n} got this far", flush=True)
            os.kill(os.getpid(), 9)  # the job's own process, as the OOM killer would
        return {
            "square": self.n * self.n,
            "resumed": resumed,
            "rank": self.rank,
            "n_proc": self.n_proc,
            "began": began,
            "ended": time.time(),
        }
"""


class Pwned:
    """A pickle that leaves a mark if it is ever unpickled."""

    def __init__(self, mark: Path) -> None:
        self.mark = mark

    def __reduce__(self):
        return (Path.touch, (self.mark,))


@pytest.fixture
def jobs(tmp_path: Path) -> Path:
    folder = own_folder(tmp_path / "slurm")
    job_key(folder, make=True)
    return folder


class TestJobFiles:
    def test_a_signed_file_reads_back(self, jobs):
        """What the driver signed is read back as written."""
        key = job_key(jobs)
        write_signed(jobs / "f.pkl", key, b"data")
        assert read_signed(jobs / "f.pkl", key) == b"data"
        assert (jobs / "f.pkl").stat().st_mode & 0o777 == 0o600
        assert (jobs / "key").stat().st_mode & 0o777 == 0o600
        assert jobs.stat().st_mode & 0o777 == 0o700

    def test_a_changed_file_is_refused(self, jobs, tmp_path):
        """A job file whose bytes changed after signing is refused, saying why."""
        key = job_key(jobs)
        write_signed(jobs / "f.pkl", key, pickle.dumps({"rows": []}))
        mark = tmp_path / "unpickled"
        blob = (jobs / "f.pkl").read_bytes()
        mac = blob.partition(b"\n")[0]
        (jobs / "f.pkl").write_bytes(mac + b"\n" + pickle.dumps(Pwned(mark)))
        with pytest.raises(JobFileError, match=r"keyed hash does not match.*not unpickled"):
            read_signed(jobs / "f.pkl", key)
        assert not mark.exists()

    def test_a_file_others_may_write_is_refused(self, jobs):
        """A job file of mode 644 is refused even with a good hash."""
        key = job_key(jobs)
        write_signed(jobs / "f.pkl", key, b"data")
        os.chmod(jobs / "f.pkl", 0o644)
        with pytest.raises(JobFileError, match="mode 644, where only this user's files"):
            read_signed(jobs / "f.pkl", key)

    def test_reported_rows_read_back_line_by_line(self, jobs):
        """Rows appended as signed lines read back whole lines only, from where the last
        read stopped."""
        key = job_key(jobs)
        fd = os.open(jobs / "0.rows", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            append_signed(fd, key, b"one")
            append_signed(fd, key, b"two")
            os.write(fd, b"half a line")
        finally:
            os.close(fd)
        found, offset = read_signed_lines(jobs / "0.rows", key, 0)
        assert found == [b"one", b"two"]
        assert read_signed_lines(jobs / "0.rows", key, offset) == ([], offset)

    @pytest.mark.parametrize("damage", ["changed", "mode 644"])
    def test_a_rows_file_changed_or_open_to_others_is_refused(self, jobs, damage, tmp_path):
        """A rows file with a line whose hash does not match, or that others may write,
        is refused whole, and nothing of it is unpickled."""
        key = job_key(jobs)
        fd = os.open(jobs / "0.rows", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        append_signed(fd, key, pickle.dumps({"loss": 1}))
        os.close(fd)
        if damage == "changed":
            mark = tmp_path / "unpickled"
            mac = (jobs / "0.rows").read_bytes().partition(b" ")[0]
            forged = base64.b64encode(pickle.dumps(Pwned(mark)))
            (jobs / "0.rows").write_bytes(mac + b" " + forged + b"\n")
            with pytest.raises(JobFileError, match="keyed hash does not match"):
                read_signed_lines(jobs / "0.rows", key, 0)
            assert not mark.exists()
        else:
            os.chmod(jobs / "0.rows", 0o644)
            with pytest.raises(JobFileError, match="mode 644"):
                read_signed_lines(jobs / "0.rows", key, 0)

    def test_a_folder_others_may_enter_is_refused(self, tmp_path):
        """The job folder must be the user's alone."""
        (tmp_path / "open").mkdir(mode=0o755)
        os.chmod(tmp_path / "open", 0o755)
        with pytest.raises(JobFileError, match=r"is not yours alone .*mode 755"):
            own_folder(tmp_path / "open")

    def test_a_job_refuses_a_tampered_base_and_never_unpickles_it(self, jobs, tmp_path):
        """The job program checks the base before unpickling: a forged one is refused."""
        key = job_key(jobs)
        mark = tmp_path / "unpickled"
        base = "base-" + "0" * 32 + ".pkl"
        (jobs / "jobs").mkdir(mode=0o700)
        manifest = b'{"base": "%s", "n_proc": 1, "per_job": 1, "tasks": [[0, "a", 1, null]]}'
        write_signed(jobs / "jobs" / "00000000aa.json", key, manifest % base.encode())
        fd = os.open(jobs / base, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"0" * 64 + b"\n" + pickle.dumps(Pwned(mark)))
        os.close(fd)
        done = subprocess.run(
            [sys.executable, "-m", "superparams.executors.slurm._node", str(jobs), "00000000aa"],
            env={**os.environ, "SLURM_ARRAY_TASK_ID": "0"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 3, done.stderr
        assert "refused job file" in done.stderr
        assert "keyed hash does not match" in done.stderr
        assert not mark.exists()
        assert not (jobs / "jobs" / "00000000aa" / "0.out").exists()


# -- against a real Slurm --------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    need_slurm()
    write(tmp_path / "experiments/counted.py", COUNTED)
    return tmp_path


SLURM_RUN = ("counted.Counted", "--engine", "slurm", "-j", "2")


def run(root: Path, *args: str, nap: float = 0, timeout: float = 180, env=None):
    """``experiment counted.Counted --engine slurm -j 2 ARGS``, each setting ``nap`` s."""
    return experiment(root, *SLURM_RUN, *args, nap=nap, timeout=timeout, env=env)


def experiment(root: Path, *args: str, nap: float = 0, timeout: float = 180, env=None):
    """The ``experiment`` command with ``args``, in ``root`` (``env`` added to its
    environment, which Slurm's jobs inherit; a name set to None is left out)."""
    env = {**environment(), "NAP": str(nap), **(env or {})}
    return subprocess.run(
        [str(COMMAND), *args],
        cwd=root,
        env={name: value for name, value in env.items() if value is not None},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def folder(root: Path) -> Path:
    return root / "experiments/progress/counted/Counted"


def statuses(root: Path) -> list[str]:
    table = pl.read_parquet(folder(root) / "results.parquet").sort("n")
    return table["status"].to_list()


def runs(root: Path) -> list[int]:
    path = root / "experiments/runs.txt"
    return sorted(int(n) for n in path.read_text().split()) if path.exists() else []


def outcomes(root: Path) -> int:
    record = (folder(root) / "record.jsonl").read_text()
    return record.count('"event":"outcome"')


def submitted(root: Path) -> int:
    """How many job arrays Slurm ran or holds for this store (named after it)."""
    return len(_job_names(root))


def _job_names(root: Path) -> set[str]:
    """The names of the job arrays Slurm ran or holds for this store."""
    store = _store(root)
    names = subprocess.run(
        ["sacct", "-n", "-P", "-X", "-S", "now-1hour", "-o", "JobName%200"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    names += subprocess.run(
        ["squeue", "-h", "-o", "%j"], capture_output=True, text=True, check=True
    ).stdout.split()
    return {n for n in names if n.startswith(f"superparams-{store}-")}


def queued(root: Path) -> int:
    record = folder(root) / "record.jsonl"
    return record.read_text().count('"event":"queued"') if record.exists() else 0


class TestDetachNeedsAQueue:
    def test_detach_on_a_local_engine_is_a_usage_error(self, tmp_path):
        """--detach with an engine that runs settings in the run is refused, run nothing."""
        write(tmp_path / "experiments/counted.py", COUNTED)
        done = experiment(tmp_path, "counted.Counted", "--detach")
        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == [
            "error: --detach leaves settings queued on a cluster, and the local engine runs "
            "them in this run; use --engine slurm"
        ]
        assert not (tmp_path / "experiments/runs.txt").exists()


class TestEngineOptions:
    @pytest.mark.parametrize(
        ("option", "said"),
        [
            ("per_job=0", "option per_job takes a whole number from 1, not 0"),
            ("parallel=-2", "option parallel takes a whole number from 1, not -2"),
            ("poll=0", "option poll takes seconds above 0, not 0.0"),
        ],
    )
    def test_a_value_the_engine_cannot_use_is_refused_before_anything(self, tmp_path, option, said):
        """An option's value out of range is one line, exit 2, and nothing is written."""
        write(tmp_path / "experiments/counted.py", COUNTED)
        done = experiment(tmp_path, *SLURM_RUN, "--engine-option", option)
        assert done.returncode == 2
        assert done.stderr == f"error: the slurm engine's {said}\n"
        assert done.stdout == ""
        assert not (tmp_path / "experiments/progress").exists()

    def test_a_cluster_that_does_not_answer_is_one_line_and_exit_6(self, tmp_path):
        """With no cluster to reach (no slurm.conf to find), the run stops with Slurm's
        last word and what to check, exit 6, and makes no job files."""
        if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
            pytest.skip("Slurm's commands are not installed here")
        if Path("/etc/slurm/slurm.conf").exists():
            pytest.skip("this machine has a Slurm configuration of its own")
        write(tmp_path / "experiments/counted.py", COUNTED)
        done = run(tmp_path, "-q", env={"SLURM_CONF": None})
        assert done.returncode == 6, done.stderr
        [line] = [line for line in done.stderr.splitlines() if "error" in line]
        assert line.startswith("error: Slurm's sinfo failed (exit 1): sinfo: fatal: ")
        assert line.endswith(
            "; check that the cluster is up and that SLURM_CONF names its slurm.conf"
        )
        assert done.stderr.endswith(f"{line}\n")
        assert not (folder(tmp_path) / "slurm").exists()

    @pytest.mark.parametrize(
        ("options", "asked"),
        [
            ([], {"TimeLimit": "UNLIMITED", "Partition": "debug", "MinMemoryNode": "0"}),
            (
                ["--engine-option", "time=7,mem=50M,partition=debug,sbatch=--comment=sp"],
                {"TimeLimit": "00:07:00", "MinMemoryNode": "50M", "Comment": "sp"},
            ),
        ],
    )
    def test_slurm_gets_what_was_asked_and_nothing_else(self, project, options, asked):
        """With no options a job asks for no time or memory (the partition's defaults);
        the options given reach Slurm as they were written."""
        done = run(project, "--detach", *options, nap=30)
        assert done.returncode == 0, done.stderr
        try:

            def listed() -> list[str]:  # the array's id, once Slurm's queue lists it
                names = _job_names(project)
                if len(names) != 1:
                    return []
                return subprocess.run(
                    ["squeue", "-h", "-n", names.pop(), "-o", "%F"],
                    capture_output=True,
                    text=True,
                    check=False,
                ).stdout.split()

            job = wait_for(listed, "the job in Slurm's queue", timeout=30)[0]
            shown = subprocess.run(
                ["scontrol", "show", "job", job], capture_output=True, text=True, check=True
            ).stdout
        finally:
            subprocess.run(["scancel", "--name", _job_name(project)], check=False)
        fields = dict(re.findall(r"(\w+)=(\S*)", shown))
        assert {k: fields.get(k) for k in asked} == asked
        assert "gpu" not in fields.get("TRES", "")  # nor a GPU


@pytest.mark.slow
class TestDetach:
    def test_detach_returns_once_queued_and_a_later_run_collects(self, project):
        """--detach returns with the settings queued in the store; a local run leaves
        them alone, --fresh too; a later Slurm run collects them and submits nothing more."""
        began = time.monotonic()
        done = run(project, "--detach", nap=3)
        assert done.returncode == 0, done.stderr
        assert time.monotonic() - began < 15
        assert "6 settings queued on slurm" in done.stdout + done.stderr
        assert "0 done before, 6 queued\n" in done.stderr  # queued, not "not run"
        assert "not run" not in done.stderr
        assert statuses(project) == ["queued"] * 6
        shown = experiment(project, "status", "counted.Counted")
        assert "  queued       6" in shown.stdout
        assert re.search(r"queued on slurm: 6 \(\d+ (pending|running)", shown.stdout), shown.stdout
        for fresh in ([], ["--fresh"]):
            local = experiment(project, "counted.Counted", *fresh)
            assert local.returncode == 0, local.stderr
            said = local.stdout + local.stderr
            assert "Counted: 6 settings are queued on slurm and left to it" in said
            assert "Counted: nothing else to run" in said
        done = run(project)
        assert done.returncode == 0, done.stderr
        assert statuses(project) == ["completed"] * 6
        assert runs(project) == list(range(6))
        assert outcomes(project) == 6
        assert submitted(project) == 1

    def test_run_all_in_python_collects_what_the_command_left_queued(self, project):
        """``run_all(engine="slurm")`` from Python takes back what a detached command
        queued: every setting completes once, and nothing is submitted again."""
        done = run(project, "--detach", nap=2)
        assert done.returncode == 0, done.stderr
        script = (
            "import sys; sys.path.insert(0, 'experiments')\n"
            "from counted import Counted\n"
            "frame = Counted().run_all(engine='slurm', num_proc=2, display=False)\n"
            "print(sorted(frame['status'].to_list()))\n"
        )
        collected = subprocess.run(
            [sys.executable, "-c", script],
            cwd=project,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert collected.returncode == 0, collected.stderr
        assert collected.stdout.strip() == str(["completed"] * 6)
        assert runs(project) == list(range(6))
        assert outcomes(project) == 6
        assert submitted(project) == 1

    def test_clean_cancels_the_jobs_of_queued_settings(self, project):
        """Cleaning a store whose settings wait on Slurm says so, cancels their jobs, and
        leaves nothing running into the deleted folder."""
        done = run(project, "--detach", nap=60)
        assert done.returncode == 0, done.stderr
        name = _job_name(project)
        asked = experiment(project, "clean", "counted.Counted")
        assert asked.returncode == 2
        assert asked.stderr.startswith("error: clean deletes 6 stored settings of Counted")
        assert asked.stderr.endswith(
            ", cancelling the slurm jobs of its 6 queued settings; with no terminal to "
            "confirm, add --yes\n"
        )
        cleaned = experiment(project, "clean", "counted.Counted", "--yes")
        assert cleaned.returncode == 0, cleaned.stderr
        assert "cancelled the slurm jobs of 6 queued settings" in cleaned.stdout + cleaned.stderr
        assert not folder(project).exists()

        def gone() -> bool:
            listed = subprocess.run(
                ["squeue", "-h", "-n", name, "-o", "%i"], capture_output=True, text=True
            )
            return listed.returncode == 0 and not listed.stdout.strip()

        wait_for(gone, "the jobs to leave Slurm's queue", timeout=60)
        time.sleep(1)
        assert not folder(project).exists()  # no job ran on into it

    def test_more_settings_than_an_array_may_hold_go_out_as_several(self, project, tmp_path):
        """A cluster whose arrays hold fewer tasks than the run has settings (its
        MaxArraySize) gets several arrays, one after another, so that -j still bounds
        how many run at once; each setting runs once."""
        bin_ = tmp_path / "bin"
        bin_.mkdir()
        scontrol = shutil.which("scontrol")
        (bin_ / "scontrol").write_text(  # this cluster's arrays: at most 4 tasks
            '#!/bin/sh\nif [ "$*" = "show config" ]; then echo "MaxArraySize = 4"; '
            f'else exec {scontrol} "$@"; fi\n'
        )
        (bin_ / "scontrol").chmod(0o755)
        done = run(project, nap=1, env={"PATH": f"{bin_}{os.pathsep}{os.environ['PATH']}"})
        assert done.returncode == 0, done.stderr
        rows = pl.read_parquet(folder(project) / "results.parquet").sort("n").to_dicts()
        assert [r["status"] for r in rows] == ["completed"] * 6
        assert runs(project) == list(range(6))
        assert submitted(project) == 2
        for row in rows:  # never more than -j 2 at once
            at_once = [r for r in rows if r["began"] <= row["began"] < r["ended"]]
            assert len(at_once) <= 2, rows

    def test_with_no_count_all_settings_may_run_at_once(self, project):
        """Without -j, a Slurm run does not limit itself to one job at a time (what a
        local run's default would mean): its array may run all six settings at once."""
        done = experiment(project, "counted.Counted", "--engine", "slurm", "--detach", nap=30)
        assert done.returncode == 0, done.stderr
        try:
            shown = subprocess.run(
                ["squeue", "-h", "-n", _job_name(project), "-o", "%F|%r|%T"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            array = shown.split("|")[0]
            job = subprocess.run(
                ["scontrol", "show", "job", array], capture_output=True, text=True, check=True
            ).stdout
        finally:
            subprocess.run(["scancel", "--name", _job_name(project)], check=False)
        assert re.search(r"ArrayTaskId=\S*%6\b", job) or "ArrayTaskThrottle=6" in job, job

    def test_a_result_file_forged_while_detached_is_refused(self, project, tmp_path):
        """A result file changed while the driver was away fails its setting, unread."""
        done = run(project, "--detach")
        assert done.returncode == 0, done.stderr
        results = folder(project) / "slurm" / "jobs"
        wait_for(lambda: len(list(results.glob("*/*.out"))) == 6, "the jobs", timeout=90)
        forged = next(results.glob("*/0.out"))
        mark = tmp_path / "unpickled"
        mac = forged.read_bytes().partition(b"\n")[0]
        forged.write_bytes(mac + b"\n" + pickle.dumps(Pwned(mark)))
        done = run(project)
        assert done.returncode == 1, done.stderr
        table = pl.read_parquet(folder(project) / "results.parquet").sort("n")
        assert table["status"].to_list() == ["failed"] + ["completed"] * 5
        assert "keyed hash does not match" in table["error"][0]
        assert not mark.exists()


@pytest.mark.slow
class TestStatesAndRanks:
    def test_a_setting_that_raised_fails_in_slurms_accounting_too(self, project):
        """A setting whose run() raised is failed in the results with its traceback, and
        its array task is FAILED in sacct (not COMPLETED); the others are COMPLETED."""
        done = run(project, env={"FAIL": "2"})
        assert done.returncode == 1, done.stderr
        table = pl.read_parquet(folder(project) / "results.parquet").sort("n")
        assert table["status"].to_list() == ["completed"] * 2 + ["failed"] + ["completed"] * 3
        assert table["error"][2] == "ValueError: n=2 fails"
        assert "n=2 fails" in table["traceback"][2]
        job = _job_name(project)

        def ended() -> dict[str, str]:  # once accounting has caught up with all six
            lines = subprocess.run(
                ["sacct", "-n", "-P", "-X", "--name", job, "-o", "JobID,State"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            states = dict(line.split("|") for line in lines)
            done = len(states) == 6 and not {"PENDING", "RUNNING"} & set(states.values())
            return states if done else {}

        states = wait_for(ended, "sacct to record the six array tasks", timeout=60)
        assert sorted(states.values()) == ["COMPLETED"] * 5 + ["FAILED"], states
        assert next(k for k, v in states.items() if v == "FAILED").endswith("_2")

    def test_a_job_killed_by_a_signal_says_which(self, project):
        """A setting whose job is killed by a signal fails saying which signal (Slurm's
        0:9), never "exit code 0"."""
        done = run(project, "--engine-option", "per_job=1", env={"KILL": "2"})
        assert done.returncode == 1, done.stderr
        table = pl.read_parquet(folder(project) / "results.parquet").sort("n")
        assert table["status"].to_list() == ["completed"] * 2 + ["failed"] + ["completed"] * 3
        assert "killed by signal 9 (SIGKILL)" in table["error"][2], table["error"][2]
        assert "exit code 0" not in table["error"][2]

    def test_a_killed_setting_keeps_what_it_printed(self, project):
        """What a setting printed before its job was killed is in its log, as on the
        local engine (it came back only with an outcome, which a killed job never
        writes)."""
        done = run(project, "--engine-option", "per_job=1", env={"KILL": "2"})
        assert done.returncode == 1, done.stderr
        table = pl.read_parquet(folder(project) / "results.parquet").sort("n")
        log = folder(project) / table["log"][2]
        assert "n=2 got this far" in log.read_text()
        logs = experiment(project, "logs", "counted.Counted", "--n", "2")
        assert "n=2 got this far" in logs.stdout, logs.stdout + logs.stderr

    def test_a_job_slurm_cancels_is_failed_with_slurms_word(self, project):
        """A job scancel ends fails its settings, with Slurm's state in the error."""
        done = run(project, "--detach", nap=60)
        assert done.returncode == 0, done.stderr
        wait_for(lambda: runs(project), "a setting to start", timeout=60)
        subprocess.run(["scancel", "--name", _job_name(project)], check=True)
        done = run(project)
        assert done.returncode == 1, done.stderr
        table = pl.read_parquet(folder(project) / "results.parquet")
        assert set(table["status"]) == {"failed"}
        assert all("ended CANCELLED" in e for e in table["error"])

    def test_a_job_past_its_time_limit_is_failed_with_cause_timeout(self, project):
        """A job Slurm ends at its time limit fails its settings, cause timeout."""
        done = run(project, "--engine-option", "time=1,per_job=3", nap=600, timeout=400)
        assert done.returncode == 1, done.stderr
        table = pl.read_parquet(folder(project) / "results.parquet")
        assert set(table["status"]) == {"failed"}
        assert set(table["cause"]) == {"timeout"}
        assert all("ended TIMEOUT" in e for e in table["error"])

    def test_a_requeued_job_comes_back_and_resumes_from_its_checkpoint(self, project):
        """Jobs Slurm stops and puts back in its queue (SIGTERM, then requeue: what
        preemption does) run again, with ``self.resumed`` true, since their workdir
        holds what they checkpointed; every setting completes once in the results."""
        done = run(project, "--detach", nap=8)
        assert done.returncode == 0, done.stderr
        first = wait_for(lambda: runs(project)[:2] if len(runs(project)) >= 2 else None, "2 runs")
        running = subprocess.run(
            ["squeue", "-h", "-t", "RUNNING", "-n", _job_name(project), "-o", "%i"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert len(running) == 2, running
        for job in running:
            subprocess.run(["scontrol", "requeue", job], check=True)
        for job in running:
            _start_again(job)
        done = run(project, timeout=400)
        assert done.returncode == 0, done.stderr
        table = pl.read_parquet(folder(project) / "results.parquet").sort("n")
        assert table["status"].to_list() == ["completed"] * 6
        assert [n for n, r in zip(table["n"], table["resumed"], strict=True) if r] == first
        assert sorted(set(runs(project))) == list(range(6))
        assert sorted(runs(project)) == sorted([*range(6), *first])
        assert outcomes(project) == 6

    def test_settings_running_at_once_never_share_a_rank(self, project):
        """Two settings that run at the same time have two ranks, below n_proc, even when
        a long one holds its rank while short ones come and go beside it."""
        done = run(project, nap=1, env={"LONG": "0"})
        assert done.returncode == 0, done.stderr
        rows = pl.read_parquet(folder(project) / "results.parquet").sort("n").to_dicts()
        assert {r["n_proc"] for r in rows} == {2}
        assert {r["rank"] for r in rows} <= {0, 1}
        long, others = rows[0], rows[1:]
        beside = [r for r in others if r["began"] < long["ended"] and long["began"] < r["ended"]]
        assert len(beside) >= 2, rows  # several short ones ran beside the long one
        assert all(r["rank"] != long["rank"] for r in beside), rows
        for a in others:
            for b in others:
                if a["n"] < b["n"] and a["began"] < b["ended"] and b["began"] < a["ended"]:
                    assert a["rank"] != b["rank"], (a, b)


def _start_again(job: str) -> None:
    """Let a requeued job start at once: Slurm holds one back two minutes, from when it
    has finished completing (an earlier StartTime=now is overridden)."""

    def started() -> bool:
        state = subprocess.run(
            ["squeue", "-h", "-j", job, "-o", "%T|%r"], capture_output=True, text=True
        ).stdout.strip()
        if state.startswith("PENDING"):
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=False)
        time.sleep(0.2)
        return state.startswith("RUNNING") or not state

    wait_for(started, f"requeued job {job} to run again", timeout=60)


def _job_name(root: Path) -> str:
    """The name of the one job array the store's runs submitted: the store's, the batch's."""
    names = _job_names(root)
    assert len(names) == 1, names
    return names.pop()


def _store(root: Path) -> str:
    return hashlib.sha256(str(folder(root).resolve()).encode()).hexdigest()[:10]


# sbatch, slowed where a driver may be killed: before it submits, or after it submitted
# and before it answers (so the driver has not recorded the job). It calls the real one.
SLOW_SBATCH = {
    "before sbatch submits": 'sleep 3; exec {sbatch} "$@"',
    "after sbatch submits, before the store records": (
        'out=$({sbatch} "$@"); code=$?; sleep 60; echo "$out"; exit $code'
    ),
}


@pytest.mark.slow
class TestKilledDriver:
    @pytest.mark.parametrize(
        "instant",
        [
            "before sbatch submits",
            "after sbatch submits, before the store records",
            "while the settings run",
        ],
    )
    def test_kill_9_loses_nothing_and_submits_nothing_twice(self, project, tmp_path, instant):
        """A driver killed by SIGKILL at any instant of a run, even while it submits,
        is followed by a run that reattaches: each setting runs once, in one array."""
        env = {**environment(), "NAP": "2"}
        if instant in SLOW_SBATCH:
            bin_ = tmp_path / "bin"
            bin_.mkdir()
            script = SLOW_SBATCH[instant].format(sbatch=shutil.which("sbatch"))
            (bin_ / "sbatch").write_text(f"#!/bin/sh\n{script}\n")
            (bin_ / "sbatch").chmod(0o755)
            env["PATH"] = f"{bin_}{os.pathsep}{env['PATH']}"
        child = subprocess.Popen(
            [str(COMMAND), *SLURM_RUN],
            cwd=project,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        jobs = folder(project) / "slurm" / "jobs"
        try:
            wait_for(lambda: jobs.exists() and list(jobs.glob("*.json")), "a manifest", 60)
            if instant == "after sbatch submits, before the store records":
                wait_for(lambda: _listed(jobs), "the job in squeue", 60)
            elif instant == "while the settings run":
                wait_for(lambda: runs(project), "a setting to run", 60)
            child.send_signal(signal.SIGKILL)  # the driver alone: its sbatch goes on
            child.wait(timeout=30)
            if instant != "while the settings run":
                assert queued(project) == 0  # killed before it recorded the job
            done = run(project, timeout=240)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)  # a slowed sbatch still asleep
        assert done.returncode == 0, done.stderr
        assert statuses(project) == ["completed"] * 6
        assert runs(project) == list(range(6))
        assert outcomes(project) == 6
        assert submitted(project) == 1


def _listed(jobs: Path) -> bool:
    stems = [m.stem for m in jobs.glob("*.json")]
    names = subprocess.run(
        ["squeue", "-h", "-o", "%j"], capture_output=True, text=True, check=False
    ).stdout.split()
    return any(n.endswith(s) for n in names for s in stems)


# -- the store's queued status (no Slurm needed) ----------------------------------------


def _stored(workspace, lines):
    """The statuses and plan of Counted after these (event, n, job) lines."""
    from superparams._api import store_of
    from superparams._store._record import describe

    module = workspace.load("counted", COUNTED)
    space = module.Counted()
    store = store_of(space)
    ids = list(space._sp_ids())
    with store:
        for event, n, job in lines:
            described = describe(f"n={n}", {"n": n}, space[n]._sp_encodings())
            if event == "queued":
                store.queued(ids[n], 1, job, described, "slurm")
            else:
                store.started(ids[n], 1, 0, described)
        store.commit()
    table = store.table().sort("n")  # read once the run let go of the folder
    shown = dict(zip(table["n"].to_list(), table["status"].to_list(), strict=True))
    return shown, store.plan(space)


class TestQueuedInTheStore:
    def test_a_queued_setting_is_queued_and_left_to_its_engine(self, workspace):
        """A setting queued on Slurm reads queued, even when it started there, and no
        run takes it but one on the engine that collects it."""
        shown, plan = _stored(
            workspace, [("queued", 0, "7_0"), ("queued", 1, "7_1"), ("started", 1, "")]
        )
        assert shown == {0: "queued", 1: "queued"}
        assert plan.queued == [0, 1]
        assert plan.interrupted == []
        assert plan.to_run() == [2, 3, 4, 5]
        assert plan.to_run(queued=True) == [0, 1, 2, 3, 4, 5]

    def test_a_setting_let_go_of_reads_as_before_it_was_queued(self, workspace):
        """Let go of before it ran, a setting is new again; after it started, interrupted."""
        shown, plan = _stored(
            workspace,
            [
                ("queued", 0, "7_0"),
                ("queued", 1, "7_1"),
                ("started", 1, ""),
                ("queued", 0, ""),
                ("queued", 1, ""),
            ],
        )
        assert shown == {1: "interrupted"}
        assert plan.queued == []
        assert plan.interrupted == [1]
        assert 0 in plan.new

    def test_the_store_names_the_engine_each_setting_is_queued_on(self, workspace):
        """A queued line names the engine whose queue holds the setting; one written before
        lines named theirs reads as slurm, the only engine that queued settings then."""
        from superparams._api import queued_on, store_of
        from superparams._store._record import describe

        module = workspace.load("counted", COUNTED)
        space = module.Counted()
        store = store_of(space)
        ids = list(space._sp_ids())
        with store:
            for n, engine in ((0, "slurm"), (1, "elsewhere"), (2, "older")):
                described = describe(f"n={n}", {"n": n}, space[n]._sp_encodings())
                store.queued(ids[n], 1, f"7_{n}", described, engine)
            store.commit()
        record = store.record_path.read_text()
        assert record.count('"engine":') == 3
        store.record_path.write_text(re.sub(r',\s*"engine":\s*"older"', "", record))
        assert store.queued_on() == {ids[0]: "slurm", ids[1]: "elsewhere", ids[2]: "slurm"}
        assert queued_on(store) == {"slurm": 2, "elsewhere": 1}


@pytest.mark.slow
class TestWhatARunLeaves:
    def test_runs_leave_no_base_that_no_queued_setting_needs(self, project):
        """Each run ships its experiment as a base file; once its settings have all
        ended, the job files no queued setting needs are removed: three runs of a
        changed experiment leave no base behind, a detached run keeps the one its
        queued settings need."""
        for blob in ("a", "b", "c"):
            done = run(project, "--fresh", env={"BLOB": blob * 100_000})
            assert done.returncode == 0, done.stderr
        slurm = folder(project) / "slurm"
        assert sorted(p.name for p in slurm.glob("base-*.pkl")) == []
        assert sorted(p.name for p in (slurm / "jobs").glob("*.json")) == []
        done = run(project, "--fresh", "--detach", env={"BLOB": "d" * 100_000}, nap=30)
        assert done.returncode == 0, done.stderr
        assert len(list(slurm.glob("base-*.pkl"))) == 1
        subprocess.run(["scancel", "--name", ",".join(_job_names(project))], check=True)

    def test_a_refused_submission_leaves_nothing_for_the_next_run_to_wait_on(self, project):
        """When sbatch refuses a run's options the run fails saying so, and leaves no
        job file: the next run submits at once rather than waiting to see whether the
        refused submission was still under way."""
        done = run(project, "--engine-option", "sbatch=--no-such-flag")
        assert done.returncode == 6, done.stderr
        assert "sbatch" in done.stderr
        jobs = folder(project) / "slurm" / "jobs"
        assert sorted(p.name for p in jobs.iterdir()) == []
        done = run(project)
        assert done.returncode == 0, done.stderr
        assert statuses(project) == ["completed"] * 6

    def test_a_traceback_names_the_users_file_and_line(self, project):
        """A setting that raised on Slurm keeps a traceback that names the experiment's
        file and shows its line, with no frame of superparams's own shipping code."""
        done = run(project, env={"FAIL": "2"})
        assert done.returncode == 1, done.stderr
        table = pl.read_parquet(folder(project) / "results.parquet").sort("n")
        text = table["traceback"][2]
        assert "<dynamic-code>" not in text, text
        assert "counted.py" in text, text
        assert 'raise ValueError(f"n={self.n} fails")' in text, text
        assert "guarded" not in text, text


# Reports a row a step; `loss` grows with `lr`, so a threshold rule stops lr=9 midway.
STEPS = """
import os
import time
from superparams import Experiment, search
from superparams.stopping import threshold


class Steps(Experiment):
    lr: float = search(1.0, 9.0)
    stop = threshold("loss", above=50)

    def run(self):
        for step in range(20):
            self.report(step=step, loss=self.lr * step)
            time.sleep(float(os.environ.get("NAP", "0.3")))
        return {"done": 1}
"""


@pytest.fixture
def steps(tmp_path: Path) -> Path:
    need_slurm()
    write(tmp_path / "experiments/steps.py", STEPS)
    return tmp_path


def steps_folder(root: Path) -> Path:
    return root / "experiments/progress/steps/Steps"


NEVER = "threshold(loss, above=1e9)"  # a rule in place of the class's, which never stops


def start_steps(root: Path, *args: str) -> subprocess.Popen[str]:
    """``experiment steps.Steps --engine slurm ARGS``, started, no rule stopping it."""
    return subprocess.Popen(
        [
            str(COMMAND),
            "steps.Steps",
            "--engine",
            "slurm",
            *args,
            "--stop",
            "threshold(loss, above=1e9)",
        ],
        cwd=root,
        env={**environment(), "NAP": "0.5"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def reported(root: Path) -> int:
    record = steps_folder(root) / "record.jsonl"
    return record.read_text().count('"event":"rows"') if record.exists() else 0


@pytest.mark.slow
class TestRowsAsTheyCome:
    def test_rows_reach_the_store_while_the_setting_runs(self, steps):
        """A setting's rows are in the store while it runs on Slurm, and `experiment
        status` shows its latest step, as on the local engine."""
        child = start_steps(steps)
        try:
            wait_for(lambda: reported(steps) >= 6, "six rows in the record", timeout=90)
            status = experiment(steps, "status", "steps.Steps")
            assert status.returncode == 0, status.stderr
            assert "step" in status.stdout + status.stderr, status.stdout
            assert child.poll() is None  # still running: the rows came before the end
        finally:
            _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        table = pl.read_parquet(steps_folder(steps) / "results.parquet")
        assert table.filter(pl.col("lr") == 1.0)["step"].drop_nulls().to_list() == list(range(20))

    def test_a_killed_job_keeps_every_row_it_reported(self, steps):
        """A job killed mid-setting keeps the rows it reported before: the setting is
        failed with them, not with none."""
        child = start_steps(steps, "--lr", "1.0")
        try:
            wait_for(lambda: reported(steps) >= 8, "eight rows in the record", timeout=90)
            subprocess.run(["scancel", "--name", ",".join(_job_names_of(steps))], check=True)
        finally:
            _, err = child.communicate(timeout=180)
        assert child.returncode == 1, err
        table = pl.read_parquet(steps_folder(steps) / "results.parquet")
        assert set(table["status"]) == {"failed"}
        steps_kept = table["step"].drop_nulls().to_list()
        assert len(steps_kept) >= 8
        assert steps_kept == list(range(len(steps_kept)))  # each once, in order

    def test_a_stop_rule_ends_a_setting_midway(self, steps):
        """The class's threshold rule stops the setting whose loss passes it while it runs
        on Slurm; the other runs to its end."""
        done = experiment(steps, "steps.Steps", "--engine", "slurm", env={"NAP": "0.3"})
        assert done.returncode == 0, done.stderr
        table = pl.read_parquet(steps_folder(steps) / "results.parquet")
        bad = table.filter(pl.col("lr") == 9.0)
        good = table.filter(pl.col("lr") == 1.0)
        assert bad["stopped"].drop_nulls().to_list()[-1:] == ["threshold(loss)"], bad
        assert bad["step"].max() < 19
        assert good["step"].max() == 19
        assert good["stopped"].drop_nulls().to_list() == []


def _job_names_of(root: Path) -> set[str]:
    store = hashlib.sha256(str(steps_folder(root).resolve()).encode()).hexdigest()[:10]
    names = subprocess.run(
        ["squeue", "-h", "-o", "%j"], capture_output=True, text=True, check=True
    ).stdout.split()
    return {n for n in names if n.startswith(f"superparams-{store}-")}
