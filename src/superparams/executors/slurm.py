"""Settings as Slurm job arrays: submitted, left, and collected by a later run.

``SlurmExecutor(...)`` (``engine="slurm"``, ``--engine slurm``) hands the settings of a
run to Slurm as one job array (``sbatch --array=0-N%P``: at most ``parallel`` run at
once, ``-j`` by default; past the cluster's MaxArraySize, as several arrays, each
waiting for the one before it), ``per_job`` settings to an array task (1 by default; give
cheap settings several per job so each job's start-up, a Python process and the base
unpickled, is paid once for them). Slurm's options are the engine's: ``partition``,
``time``, ``cpus`` and ``gpus_per_setting`` per setting, ``mem``, ``account``, ``qos``,
and ``sbatch`` for any other ``#SBATCH`` lines (separated by ``;``). None is sent that
the user did not give: with no options a job runs on the cluster's default partition,
with its default limits.

Where its files are: under the results folder, in ``slurm/`` (mode 0700, the user's
alone): the base, pickled once with the experiment's module by value (nodes need
superparams and the libraries the experiment imports, not the user's file), one
manifest per array (which settings, in JSON), what each setting produced (a pickle)
and Slurm's own output of each array task. Every file is written with a keyed hash
(HMAC-SHA256, the key in ``slurm/key``, mode 0600), and the driver and the jobs read a
file only after checking its owner, its mode and its hash: a file anyone else wrote
or changed is refused, never unpickled.

Submit, leave, come back: each setting is recorded ``queued`` in the store as soon as
``sbatch`` returns, so no other run (a local one included) starts it. With
``detach=True`` (``--detach``) the run returns then. A later run on this engine
collects what finished and waits for the rest; it submits only settings that are
neither done nor in Slurm's queue. Jobs are named ``superparams-<store>-<array>``, the
store's identity and the manifest that lists their settings' ids, so a driver killed at
any instant, even between ``sbatch`` returning and the store recording the job, is
found again by name (``squeue``, then ``sacct``) and nothing is submitted twice.

States: an exception in ``run()`` is that setting's failure with its traceback, as
everywhere; an array task that Slurm ended before its settings finished (time limit,
``scancel``, out of memory, node failure, or the process dying) fails them with
Slurm's state and reason from ``sacct`` (cause ``timeout`` for the time limit, else
``killed``). The run reads its settings' outcomes from the folder as they land, and asks
Slurm (``squeue``, and ``sacct`` for jobs that left the queue) every ``poll`` seconds
(2; give a busy cluster 30). ``n_proc`` is the array's ``parallel`` limit, and
``rank`` one below it that no other running job of the results folder holds (a lock on
a file of ``slurm/ranks/``, held while the job's process lives). Ctrl-C in an attached
run cancels the settings not yet running (first press) and then the running ones
(second), as on every engine.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from superparams._outcome import Cause, Failure, Outcome, Queued, Started, Task
from superparams.errors import EngineError, UsageError
from superparams.executors._base import Detaching

if TYPE_CHECKING:
    from superparams._space import Space
    from superparams._store._logfile import SettingLog

FOLDER = "slurm"  # under the results folder
KEY = "key"
PREFIX = "superparams"
POLL = 2.0  # seconds between looks at Slurm's queue
# A manifest with no job of its name is taken as never submitted once it is this old (an
# sbatch still under way when its driver was killed has finished by then).
SUBMITTING = 30.0
# Slurm's default MaxArraySize: an array's indices run from 0 to one below it.
ARRAY_SIZE = 1001
# How long a job Slurm no longer lists may wait for sacct to say how it ended.
ACCOUNTING = 60.0
# Slurm states in which an array task may still run its settings.
LIVE = {
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SUSPENDED",
    "STOPPED",
    "SIGNALING",
    "STAGE_OUT",
    "RESV_DEL_HOLD",
    "PREEMPTED",
}
_BASE_NAME = re.compile(r"base-[0-9a-f]{32}\.pkl")
_BATCH_NAME = re.compile(r"[0-9a-f]{8,40}")


class JobFileError(EngineError):
    """A job file that this user's driver or jobs did not write, or that was changed."""


# -- files only this user wrote ----------------------------------------------------------


def own_folder(path: Path, *, make: bool = True) -> Path:
    """``path``, made if need be (and ``make``) with mode 0700; refused unless it is this
    user's alone."""
    if make:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        msg = f"job folder {str(path)!r} is gone (its results were cleaned); nothing to run"
        raise JobFileError(msg) from None
    if not os.path.isdir(path) or os.path.islink(path):
        msg = f"{str(path)!r} is not a folder; remove it and run again"
        raise JobFileError(msg)
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        msg = (
            f"job folder {str(path)!r} is not yours alone (owner uid {info.st_uid}, mode "
            f"{info.st_mode & 0o777:o}); its files are pickles: `chmod 700` it if it is "
            "yours, else remove it"
        )
        raise JobFileError(msg)
    return path


def job_key(folder: Path, *, make: bool = False) -> bytes:
    """The key the job files of ``folder`` are signed with (made on first use)."""
    path = folder / KEY
    if make and not path.exists():
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(32).hex().encode())
    return bytes.fromhex(_owned(path).decode())


def _owned(path: Path) -> bytes:
    """The bytes of ``path``, if it is a file of this user's that no one else may write."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as error:
        msg = f"refused job file {str(path)!r}: {error.strerror or error}"
        raise JobFileError(msg) from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if info.st_uid != os.getuid() or info.st_mode & 0o077 or not os.path.isfile(path):
            msg = (
                f"refused job file {str(path)!r}: owner uid {info.st_uid}, mode "
                f"{info.st_mode & 0o777:o}, where only this user's files of mode 600 are read"
            )
            raise JobFileError(msg)
        return f.read()


def write_signed(path: Path, key: bytes, data: bytes) -> None:
    """Write ``data`` to ``path`` (mode 0600, atomically) with its keyed hash."""
    mac = hmac.new(key, data, hashlib.sha256).hexdigest().encode()
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(mac + b"\n" + data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, path)


def read_signed(path: Path, key: bytes) -> bytes:
    """The data of a file :func:`write_signed` wrote with ``key``.

    Raises:
        JobFileError: not this user's, others may write it, or its hash does not match
            (written with another key, or changed since); it is not to be unpickled.
    """
    blob = _owned(path)
    mac, _, data = blob.partition(b"\n")
    good = hmac.new(key, data, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(mac, good):
        msg = (
            f"refused job file {str(path)!r}: its keyed hash does not match, so it was "
            "changed or written by someone else since this store's driver wrote it; it is "
            "not unpickled (remove it and run again)"
        )
        raise JobFileError(msg)
    return data


# -- the engine --------------------------------------------------------------------------


@dataclass
class _Batch:
    """One job array: its manifest's settings, and what is known of its array tasks."""

    name: str
    tasks: list[Task]
    per_job: int
    job_name: str
    job: str = ""  # Slurm's job id, once known
    states: dict[int, tuple[str, str]] = field(default_factory=dict)  # index -> state, why

    @property
    def folder_name(self) -> str:
        return self.name


@dataclass
class _Held:
    """A setting of this run in a batch: where, and what the run has said of it."""

    task: Task
    batch: _Batch
    number: int  # its place in the batch's manifest
    since: float
    running: bool = False
    gone: float = 0.0  # when Slurm stopped listing its array task without sacct's word


class SlurmExecutor(Detaching):
    """Run settings as Slurm job arrays (see the module's text)."""

    name: ClassVar[str] = "slurm"
    default_num_proc: ClassVar[int | None] = 256  # as many at once as submitit's default

    def __init__(
        self,
        num_proc: int = 2,
        *,
        gpus: Sequence[int | str] | None = None,
        partition: str | None = None,
        time: str | None = None,
        cpus: int | None = None,
        gpus_per_setting: int | None = None,
        mem: str | None = None,
        account: str | None = None,
        qos: str | None = None,
        sbatch: str | None = None,
        parallel: int | None = None,
        per_job: int = 1,
        detach: bool = False,
        python: str | None = None,
        poll: float = POLL,
    ) -> None:
        super().__init__(num_proc, gpus=gpus)
        _check({"parallel": parallel, "per_job": per_job, "cpus": cpus, "poll": poll})
        self.parallel = parallel or num_proc
        self.per_job = per_job
        self.detach = detach
        self.python = python or sys.executable
        self.poll = poll
        lines = []
        flags: dict[str, object] = {
            "partition": partition,
            "time": time,
            "cpus-per-task": cpus,
            "gpus-per-task": gpus_per_setting or (1 if gpus else None),
            "mem": mem,
            "account": account,
            "qos": qos,
        }
        for flag, given in flags.items():
            if given is not None:
                lines.append(f"--{flag}={given}")
        for extra in (sbatch or "").split(";"):
            if extra.strip():
                lines.append(extra.strip().removeprefix("#SBATCH").strip())
        self.sbatch_lines = lines
        self._notify: Callable[[Started], SettingLog | None] = lambda started: None
        self._dir: Path | None = None
        self._key = b""
        self._base = ""
        self._store = ""
        self._earlier: dict[str, tuple[_Batch, int]] = {}  # id -> where a past run put it
        self._pending: list[Task] = []
        self._held: dict[tuple[str, int], _Held] = {}  # (batch, number) -> setting
        # Settings whose outcome this run handed back (or let go of): by batch, noted in
        # its folder at shutdown, so that a later run does not take them again.
        self._settled: dict[str, list[int]] = {}
        self._looked = 0.0
        self._array_size = ARRAY_SIZE  # the cluster's MaxArraySize, read at start
        self._last = ""  # the job id of the array sent last, which the next one waits for

    @classmethod
    def read_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        read = super().read_options(options)
        _check(read)  # while the command reads its flags: before anything is written
        return read

    # -- start: the folder, the key, the base, and what earlier runs left in Slurm --------

    def start(self, base: Space[Any], notify: Callable[[Started], SettingLog | None]) -> None:
        self._notify = notify
        if shutil.which("sbatch") is None:
            msg = (
                "the slurm engine needs Slurm's sbatch, squeue and sacct, and sbatch is not "
                "on the PATH; run on a machine that submits to the cluster (a login node)"
            )
            raise EngineError(msg)
        if self.folder is None:
            msg = "the slurm engine keeps its job files under the results folder; none was given"
            raise UsageError(msg)
        self._slurm(["sinfo", "-h", "-o", "%P"])  # the cluster answers, or EngineError
        self._array_size = _max_array_size(self._slurm(["scontrol", "show", "config"], check=False))
        store = Path(self.folder)
        self._dir = own_folder(store / FOLDER)
        own_folder(self._dir / "jobs")
        self._key = job_key(self._dir, make=True)
        self._store = hashlib.sha256(str(store.resolve()).encode()).hexdigest()[:10]
        blob = _pickled(base)
        self._base = f"base-{hashlib.sha256(blob).hexdigest()[:32]}.pkl"
        if not (self._dir / self._base).exists():
            write_signed(self._dir / self._base, self._key, blob)
        self._earlier = self._find_earlier()

    def _find_earlier(self, *, wait: bool = True) -> dict[str, tuple[_Batch, int]]:
        """Settings that earlier runs handed to Slurm and whose outcome no run took yet:
        by id, where they are. A manifest whose job is nowhere is removed (never
        submitted), unless only ``wait=False`` (a look, changing nothing)."""
        assert self._dir is not None
        batches = []
        for path in sorted((self._dir / "jobs").glob("*.json")):
            batch = self._read_manifest(path)
            if batch is not None:
                batches.append((batch, path))
        if not batches:
            return {}
        jobs = self._jobs_by_name([b.job_name for b, _ in batches], since=_oldest(batches))
        found: dict[str, tuple[_Batch, int]] = {}
        for batch, path in batches:
            known = jobs.get(batch.job_name)
            if known is None and not wait:
                continue
            if known is None:
                age = time.time() - path.stat().st_mtime
                if age < SUBMITTING:  # its sbatch may still be under way: look again
                    time.sleep(SUBMITTING - age)
                    since = path.stat().st_mtime
                    known = self._jobs_by_name([batch.job_name], since=since).get(batch.job_name)
            if known is None:  # never submitted: its settings are submitted afresh
                path.unlink()
                shutil.rmtree(self._dir / "jobs" / batch.name, ignore_errors=True)
                continue
            batch.job, batch.states = known
            results = self._dir / "jobs" / batch.name
            settled = _settled(results)
            left = [n for n in range(len(batch.tasks)) if n not in settled]
            live = any(s in LIVE for s, _ in batch.states.values())
            if not left and not live and wait:  # every outcome was taken: done with
                path.unlink()
                shutil.rmtree(results, ignore_errors=True)
                continue
            for number in left:  # running, queued, finished, or ended by Slurm
                found[batch.tasks[number].id] = (batch, number)
        return found

    def _read_manifest(self, path: Path) -> _Batch | None:
        assert self._dir is not None
        data = json.loads(read_signed(path, self._key))
        if "job_name" not in data or not _BATCH_NAME.fullmatch(path.stem):
            return None
        tasks = [Task(p, sid, attempt, timeout) for p, sid, attempt, timeout in data["tasks"]]
        return _Batch(path.stem, tasks, int(data["per_job"]), str(data["job_name"]))

    # -- submit: gathered, then sent as one array at the next wait ------------------------

    @property
    def free(self) -> int:
        return 100_000  # Slurm queues them all; the array's limit says how many run

    @property
    def busy(self) -> int:
        return len(self._pending) + len(self._held)

    def submit(self, task: Task) -> None:
        earlier = self._earlier.pop(task.id, None)
        if earlier is None or task.attempt > 1:  # a retry is submitted afresh
            self._pending.append(task)
            return
        batch, number = earlier
        self._held[(batch.name, number)] = _Held(task, batch, number, time.time())
        self._notify(
            Started(task, 0, time.time(), queued=Queued(self.name, self._job_ref(batch, number)))
        )

    def _flush(self) -> None:
        """Send the gathered settings to Slurm as job arrays: one, or as many as the
        cluster's MaxArraySize asks for, each starting once the one before it ended (so
        that ``parallel`` bounds them all)."""
        tasks, self._pending = self._pending, []
        size = self._array_size * self.per_job
        self._last = ""  # a retry's array, sent later, does not wait for the others
        for first in range(0, len(tasks), size):
            self._submit(tasks[first : first + size])

    def _submit(self, tasks: list[Task]) -> None:
        """Send ``tasks`` to Slurm as one job array."""
        assert self._dir is not None
        name = f"{time.time_ns():x}{os.urandom(3).hex()}"
        batch = _Batch(name, tasks, self.per_job, self._job_name(name))
        manifest = {
            "job_name": batch.job_name,
            "base": self._base,
            "n_proc": self.parallel,
            "per_job": self.per_job,
            "tasks": [[t.position, t.id, t.attempt, t.timeout] for t in tasks],
        }
        own_folder(self._dir / "jobs" / name)
        # The manifest first: a driver killed from here on is found again by the name.
        write_signed(self._dir / "jobs" / f"{name}.json", self._key, json.dumps(manifest).encode())
        arrays = -(-len(tasks) // self.per_job)
        out = self._slurm(["sbatch", "--parsable"], script=self._script(name, arrays))
        batch.job = self._last = out.strip().split(";")[0]
        now = time.time()
        for number, task in enumerate(tasks):
            self._held[(name, number)] = _Held(task, batch, number, now)
            self._notify(
                Started(task, 0, now, queued=Queued(self.name, self._job_ref(batch, number)))
            )

    def _script(self, batch: str, arrays: int) -> str:
        assert self._dir is not None
        folder = self._dir / "jobs" / batch
        lines = [
            "#!/bin/sh",
            f"#SBATCH --job-name={self._job_name(batch)}",
            f"#SBATCH --array=0-{arrays - 1}%{min(arrays, self.parallel)}",
            f"#SBATCH --output={folder}/%a.txt",
            "#SBATCH --open-mode=append",
            *([f"#SBATCH --dependency=afterany:{self._last}"] if self._last else []),
            *(f"#SBATCH {line}" for line in self.sbatch_lines),
            f"exec {_quote(self.python)} -m superparams.executors.slurm {_quote(str(self._dir))} "
            f"{batch}",
        ]
        return "\n".join(lines) + "\n"

    def _job_name(self, batch: str) -> str:
        return f"{PREFIX}-{self._store}-{batch}"

    def _job_ref(self, batch: _Batch, number: int) -> str:
        return f"{batch.job or batch.name}_{number // batch.per_job}"

    # -- wait: results from the folder, states from Slurm ---------------------------------

    def wait(self, timeout: float) -> list[Outcome]:
        if self._pending:
            self._flush()
        if self.detach:  # left to Slurm: a later run collects them
            self._held.clear()
            return []
        if not self._held:
            return []
        pause = self._looked + self.poll - time.monotonic()
        if pause > 0:
            time.sleep(min(pause, timeout))
            if pause > timeout:
                return self._collect(slurm=False)
        self._looked = time.monotonic()
        return self._collect(slurm=True)

    def _collect(self, *, slurm: bool) -> list[Outcome]:
        assert self._dir is not None
        outcomes = []
        states = self._states({h.batch.job for h in self._held.values()}) if slurm else {}
        for key, held in list(self._held.items()):
            result = self._dir / "jobs" / held.batch.name / f"{held.number}.out"
            index = held.number // held.batch.per_job
            if result.exists():
                outcomes.append(self._result(held, result, index))
                del self._held[key]
                self._settled.setdefault(held.batch.name, []).append(held.number)
                continue
            if not slurm:
                continue
            state, why = states.get(f"{held.batch.job}_{index}", ("", ""))
            if not state:
                state, why = states.get(held.batch.job, ("", ""))  # pending, not split yet
            if state in LIVE:
                held.gone = 0.0
                if state == "RUNNING" and not held.running:
                    held.running = True
                    self._notify(Started(held.task, index % self.parallel, time.time()))
                continue
            if not state or state == "COMPLETED":
                # Slurm lists it no more and sacct has not said yet; or it ended well and
                # its results are not visible here yet (a shared file system's cache).
                held.gone = held.gone or time.time()
                if time.time() - held.gone < ACCOUNTING:
                    continue
                if not state:
                    state, why = "LOST", "neither squeue nor sacct knows it"
                else:
                    why = "its results never reached the results folder"
            if result.exists():  # written as it ended
                outcomes.append(self._result(held, result, index))
            else:
                outcomes.append(self._ended(held, index, state, why))
            del self._held[key]
            self._settled.setdefault(held.batch.name, []).append(held.number)
        return outcomes

    def _result(self, held: _Held, path: Path, index: int) -> Outcome:
        if not held.running:
            held.running = True
            self._notify(Started(held.task, index % self.parallel, time.time()))
        try:
            data = read_signed(path, self._key)
        except JobFileError as error:
            return Outcome.failed(held.task, "killed", str(error), worker=0, since=held.since)
        try:
            outcome: Outcome = pickle.loads(data)
        except (Exception, SystemExit) as error:  # rows come apart (worker._Carried)
            from superparams._worker import _error_line

            why = f"its outcome could not be read back: {_error_line(error)}"
            return Outcome.failed(held.task, "unpicklable", why, worker=0, since=held.since)
        outcome.id, outcome.attempt = held.task.id, held.task.attempt
        return outcome

    def _ended(self, held: _Held, index: int, state: str, why: str) -> Outcome:
        """The outcome of a setting whose array task Slurm ended before it finished."""
        if not held.running:
            held.running = True
            self._notify(Started(held.task, index % self.parallel, time.time()))
        job = f"{held.batch.job}_{index}"
        cause: Cause = "timeout" if state == "TIMEOUT" else "killed"
        error = f"Slurm job {job} ended {state}" + (f" ({why})" if why else "")
        assert self._dir is not None
        tail = _tail(self._dir / "jobs" / held.batch.name / f"{index}.txt")
        outcome = Outcome.failed(held.task, cause, error, worker=index % self.parallel, since=0)
        outcome.started = held.since
        if tail:
            outcome.failure = Failure(cause, error, tail)
        return outcome

    # -- Slurm's commands ----------------------------------------------------------------

    def _slurm(self, command: list[str], *, script: str | None = None, check: bool = True) -> str:
        try:
            done = subprocess.run(
                command,
                input=script,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            msg = f"Slurm's {command[0]} could not be run ({error}); check the cluster"
            raise EngineError(msg) from None
        if check and done.returncode != 0:
            said = (done.stderr or done.stdout).strip().splitlines()
            text = said[-1] if said else "(it said nothing)"  # its last word: the fatal one
            msg = f"Slurm's {command[0]} failed (exit {done.returncode}): {text}"
            if command[0] == "sbatch":
                msg += "; check the engine's options (partition, account, qos, sbatch lines)"
            elif command[0] == "sinfo":
                msg += "; check that the cluster is up and that SLURM_CONF names its slurm.conf"
            raise EngineError(msg)
        return done.stdout

    def _states(self, jobs: set[str]) -> dict[str, tuple[str, str]]:
        """The state (and why) of each array task of ``jobs``, by ``"12_3"`` (``"12"``
        for tasks pending together): Slurm's queue, then sacct for what left it."""
        jobs = {j for j in jobs if j}
        if not jobs:
            return {}
        ids = ",".join(sorted(jobs))
        states: dict[str, tuple[str, str]] = {}
        queue = self._slurm(["squeue", "-h", "-r", "-j", ids, "-o", "%i|%T"], check=False)
        for line in queue.splitlines():
            job, state = [*line.split("|"), ""][:2]
            states[job.split("_[")[0]] = (state, "")
        unlisted = [
            h
            for h in self._held.values()
            if f"{h.batch.job}_{h.number // h.batch.per_job}" not in states
            and h.batch.job not in states
        ]
        if unlisted:
            names = {h.batch.job_name for h in self._held.values()}
            for job, state, why in self._accounting(ids, names):
                states.setdefault(job, (state, why))
        return states

    def _accounting(self, ids: str, names: set[str]) -> list[tuple[str, str, str]]:
        """sacct's word on the array tasks of ``ids``: (task, state, detail). Only jobs of
        these ``names``: a job id comes back after Slurm's state is reset, and sacct
        keeps the earlier jobs of that id."""
        out = self._slurm(
            ["sacct", "-n", "-P", "-X", "-j", ids, "-o", "JobID,State,ExitCode,JobName"],
            check=False,
        )
        rows: list[tuple[str, str, str]] = []
        for line in out.splitlines():
            job, state, code, name = [*line.split("|"), "", "", ""][:4]
            if not state or name not in names:
                continue
            words = state.split()  # "CANCELLED by 0"
            detail = " ".join(words[1:])
            if words[0] == "FAILED" and code:
                detail = f"exit code {code.split(':')[0]}"
            base, _, index = job.partition("_")
            if index.startswith("["):  # tasks that never started, as one range
                rows.extend((f"{base}_{i}", words[0], detail) for i in _range(index))
            else:
                rows.append((job, words[0], detail))
        return rows

    def _jobs_by_name(
        self, job_names: list[str], *, since: float
    ) -> dict[str, tuple[str, dict[int, tuple[str, str]]]]:
        """Jobs of these names: name -> (job id, state of each array task)."""
        names = ",".join(job_names)
        found: dict[str, tuple[str, dict[int, tuple[str, str]]]] = {}

        def note(name: str, job: str, state: str, why: str) -> None:
            base, _, index = job.partition("_")
            _, states = found.setdefault(name, (base, {}))
            if index.isdigit():
                states.setdefault(int(index), (state, why))
            elif index.startswith("["):
                for i in _range(index):
                    states.setdefault(i, (state, why))

        queue = self._slurm(["squeue", "-h", "-r", "-n", names, "-o", "%j|%i|%T"], check=False)
        for line in queue.splitlines():
            name, job, state = [*line.split("|"), "", ""][:3]
            note(name, job, state, "")
        start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 3600))
        out = self._slurm(
            ["sacct", "-n", "-P", "-X", "-S", start, "--name", names, "-o", "JobName,JobID,State"],
            check=False,
        )
        for line in out.splitlines():
            name, job, state = [*line.split("|"), "", ""][:3]
            note(name, job, (state.split() or [""])[0], "")
        return found

    # -- what earlier runs left ------------------------------------------------------------

    @classmethod
    def waiting(cls, results: Path) -> dict[str, str]:
        return waiting(results)

    @classmethod
    def cancel_left(cls, results: Path) -> int:
        return cancel_left(results)

    # -- stopping ------------------------------------------------------------------------

    def drop_queued(self) -> None:
        waiting = [h for h in self._held.values() if not h.running]
        self._let_go(waiting)

    def cancel(self) -> None:
        self._let_go(list(self._held.values()))
        self._held.clear()

    def _let_go(self, settings: list[_Held]) -> None:
        """Cancel these settings' array tasks and give them back to the store."""
        refs = sorted({f"{h.batch.job}_{h.number // h.batch.per_job}" for h in settings})
        if refs:
            with contextlib.suppress(EngineError):
                self._slurm(["scancel", *refs], check=False)
        for held in settings:
            self._held.pop((held.batch.name, held.number), None)
            self._settled.setdefault(held.batch.name, []).append(held.number)
            self._notify(Started(held.task, 0, time.time(), released=True))

    def shutdown(self) -> None:
        self._pending.clear()
        self._held.clear()
        settled, self._settled = self._settled, {}
        if self._dir is not None:
            for batch, numbers in settled.items():
                with contextlib.suppress(OSError):
                    path = self._dir / "jobs" / batch / "settled"
                    fd = os.open(
                        path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600
                    )
                    os.write(fd, "".join(f"{n}\n" for n in numbers).encode())
                    os.close(fd)


def _check(options: Mapping[str, Any]) -> None:
    """Raise UsageError for an option whose value the engine cannot use."""
    for key in ("parallel", "per_job", "cpus"):
        value = options.get(key)
        if value is not None and (type(value) is not int or value < 1):
            msg = f"the slurm engine's option {key} takes a whole number from 1, not {value!r}"
            raise UsageError(msg)
    poll = options.get("poll", POLL)
    if not (isinstance(poll, (int, float)) and poll > 0):
        msg = f"the slurm engine's option poll takes seconds above 0, not {poll!r}"
        raise UsageError(msg)


def _left(results: Path) -> tuple[SlurmExecutor, dict[str, tuple[_Batch, int]]] | None:
    """What earlier runs left Slurm of ``results`` (a results folder), as
    :meth:`SlurmExecutor._find_earlier` finds it, changing nothing; None when it has no
    job files or Slurm cannot be asked."""
    engine = SlurmExecutor()
    folder = results / FOLDER
    if not (folder / KEY).exists() or shutil.which("squeue") is None:
        return None
    try:
        engine._dir = own_folder(folder)
        engine._key = job_key(folder)
        return engine, engine._find_earlier(wait=False)
    except EngineError:
        return None


def cancel_left(results: Path) -> int:
    """Cancel the Slurm jobs that earlier runs left holding settings of ``results`` (a
    results folder about to be cleaned); how many settings had not finished in them."""
    found = _left(results)
    if found is None:
        return 0
    engine, earlier = found
    jobs = sorted({batch.job for batch, _ in earlier.values() if batch.job})
    if jobs:
        engine._slurm(["scancel", *jobs], check=False)
    jobs_folder = results / FOLDER / "jobs"
    return sum(not (jobs_folder / b.name / f"{n}.out").exists() for b, n in earlier.values())


def waiting(results: Path) -> dict[str, str]:
    """What Slurm says of the settings earlier runs left it in ``results`` (a results
    folder), by id: ``PENDING``, ``RUNNING``, ``FINISHED`` (to collect) or how the job
    ended. Reads only; {} when Slurm cannot be asked."""
    found = _left(results)
    if found is None:
        return {}
    folder = results / FOLDER
    earlier = found[1]
    out = {}
    for sid, (batch, number) in earlier.items():
        if (folder / "jobs" / batch.name / f"{number}.out").exists():
            out[sid] = "FINISHED"
        else:
            state = batch.states.get(number // batch.per_job, ("PENDING", ""))[0]
            out[sid] = state
    return out


def _max_array_size(config: str) -> int:
    """How many tasks an array may hold, from ``scontrol show config``'s MaxArraySize
    (indices run below it); Slurm's default when it does not say."""
    found = re.search(r"^MaxArraySize\s*=\s*(\d+)", config, re.MULTILINE)
    return max(1, int(found.group(1))) if found else ARRAY_SIZE


def _settled(folder: Path) -> set[int]:
    """The settings of a batch whose outcomes a run took (see ``shutdown``)."""
    try:
        text = (folder / "settled").read_text()
    except OSError:
        return set()
    return {int(n) for n in text.split() if n.isdigit()}


def _oldest(batches: list[tuple[_Batch, Path]]) -> float:
    return min(path.stat().st_mtime for _, path in batches)


def _range(text: str) -> list[int]:
    """The indices of a Slurm array range such as ``[3-5,7%2]``."""
    out: list[int] = []
    for part in text.strip("[]").split("%")[0].split(","):
        low, _, high = part.partition("-")
        if low.isdigit():
            out.extend(range(int(low), int(high or low) + 1))
    return out


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _pickled(base: Space[Any]) -> bytes:
    """The base, pickled once, with the experiment's own module by value."""
    import cloudpickle

    module = sys.modules.get(base.experiment_class.__module__)
    by_value = module is not None and module.__name__ not in ("__main__", "builtins")
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        blob: bytes = cloudpickle.dumps(base)
        return blob
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)


# -- the job: python -m superparams.executors.slurm FOLDER BATCH ------------------------


def _dumps(outcome: Outcome) -> bytes:
    """An outcome as a pickle; results of classes that travelled by value, too."""
    import cloudpickle

    try:
        blob: bytes = cloudpickle.dumps(outcome)
    except Exception as error:  # a result that cannot be pickled at all
        from superparams._worker import _error_line

        failed = Outcome(outcome.id, outcome.attempt, started=outcome.started)
        failed.finished, failed.output = outcome.finished, outcome.output
        failed.failure = Failure(
            "unpicklable", f"its results cannot be pickled: {_error_line(error)}"
        )
        blob = cloudpickle.dumps(failed)
    return blob


def _rank(folder: Path, index: int, n_proc: int) -> tuple[int, int | None]:
    """A rank below ``n_proc`` that no other running job of ``folder`` holds, and the
    descriptor that holds it: the first file of ``ranks/`` this process can lock (the
    lock goes with the process, however it ends). The array index modulo ``n_proc`` if
    every one is held (arrays of several runs at once) or the file system has no locks.
    """
    import fcntl

    try:
        ranks = own_folder(folder / "ranks")
    except (OSError, JobFileError):
        return index % n_proc, None
    for rank in range(n_proc):
        try:
            fd = os.open(
                ranks / str(rank), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
        except OSError:
            break
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another job's
            os.close(fd)
            continue
        except OSError:  # no locks on this file system
            os.close(fd)
            break
        return rank, fd
    return index % n_proc, None


def job(folder: Path, batch: str, index: int) -> int:
    """Run array task ``index`` of ``batch``: its settings, each outcome to a signed file.

    Its exit code is 1 when one of them failed, so that Slurm, too, reads the job FAILED.
    """
    from superparams._worker import run_task

    try:
        own_folder(folder, make=False)  # a job never makes a folder its results left
        key = job_key(folder)
        if not _BATCH_NAME.fullmatch(batch):
            msg = f"no batch named {batch!r}"
            raise JobFileError(msg)
        manifest = json.loads(read_signed(folder / "jobs" / f"{batch}.json", key))
        if not _BASE_NAME.fullmatch(str(manifest["base"])):
            msg = f"the manifest of {batch} names no base file: {manifest['base']!r}"
            raise JobFileError(msg)
        base = pickle.loads(read_signed(folder / manifest["base"], key))
    except JobFileError as error:
        print(f"superparams: {error}", file=sys.stderr, flush=True)
        return 3
    per_job, n_proc = int(manifest["per_job"]), int(manifest["n_proc"])
    rank, _held = _rank(folder, index, n_proc)  # held while this process lives
    tasks = manifest["tasks"]
    failed = False
    for number in range(index * per_job, min(len(tasks), (index + 1) * per_job)):
        position, sid, attempt, timeout = tasks[number]
        path = folder / "jobs" / batch / f"{number}.out"
        if path.exists():
            continue  # run before this array task was requeued
        outcome = run_task(base, Task(position, sid, attempt, timeout), rank, n_proc)
        write_signed(path, key, _dumps(outcome))
        failed = failed or outcome.failure is not None
    return 1 if failed else 0  # so Slurm's accounting says FAILED too


if __name__ == "__main__":  # pragma: no cover - what each array task runs
    sys.exit(job(Path(sys.argv[1]), sys.argv[2], int(os.environ.get("SLURM_ARRAY_TASK_ID", "0"))))
