"""The Slurm engine's driver: it submits settings as job arrays, records them queued,
collects their outcomes from the engine's folder, asks Slurm how their jobs stand, and
finds what earlier runs left (to collect, to show, or to cancel). The jobs themselves run
:mod:`superparams.executors.slurm._node`; the engine's whole story is told in
:mod:`superparams.executors.slurm`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from superparams._outcome import Cause, Failure, Outcome, Queued, Started, Task
from superparams._worker import Unreadable, error_line, printed, read_back
from superparams.errors import EngineError, UsageError
from superparams.executors._base import Detaching
from superparams.executors._shipping import pickled
from superparams.executors.slurm._files import (
    BASE_NAME,
    BATCH_NAME,
    FOLDER,
    KEY,
    JobFileError,
    job_key,
    own_folder,
    read_signed,
    read_signed_lines,
    task_entry,
    task_of,
    write_signed,
)
from superparams.executors.slurm._queue import (
    ARRAY_SIZE,
    Refused,
    accounting,
    command,
    jobs_by_name,
    max_array_size,
)

if TYPE_CHECKING:
    from superparams._space import Space
    from superparams._store._logfile import SettingLog

PREFIX = "superparams"
NODE = "superparams.executors.slurm._node"  # what each array task runs
POLL = 2.0  # seconds between looks at Slurm's queue
# A manifest with no job of its name is taken as never submitted once it is this old (an
# sbatch still under way when its driver was killed has finished by then).
SUBMITTING = 30.0
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
    # Its rows file (see _node.Rows): how far it was read, and what came of it.
    offset: int = 0
    reported: list[dict[str, Any]] = field(default_factory=list)  # with no runner to add to
    unreadable: Unreadable | None = None  # a row that could not be loaded: it fails
    refused: str = ""  # a rows file not this user's, or changed: nothing of it is read
    stopped: bool = False  # a stop rule ended it: told once, in its .stop file


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
        self.parallel: int = parallel or num_proc
        self.per_job = per_job
        self.detach = detach
        self.python: str = python or sys.executable
        self.poll = poll
        lines: list[str] = []
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
        self.sbatch_lines: list[str] = lines
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
        command(["sinfo", "-h", "-o", "%P"])  # the cluster answers, or EngineError
        self._array_size = max_array_size(command(["scontrol", "show", "config"], check=False))
        store = Path(self.folder)
        self._dir = own_folder(store / FOLDER)
        own_folder(self._dir / "jobs")
        self._key = job_key(self._dir, make=True)
        self._store = hashlib.sha256(str(store.resolve()).encode()).hexdigest()[:10]
        blob = pickled(base)
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
        jobs = jobs_by_name([b.job_name for b, _ in batches], since=_oldest(batches))
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
                    known = jobs_by_name([batch.job_name], since=since).get(batch.job_name)
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
        if "job_name" not in data or not BATCH_NAME.fullmatch(path.stem):
            return None
        tasks = [task_of(entry) for entry in data["tasks"]]
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
            "tasks": [task_entry(t) for t in tasks],
        }
        own_folder(self._dir / "jobs" / name)
        # The manifest first: a driver killed from here on is found again by the name.
        write_signed(self._dir / "jobs" / f"{name}.json", self._key, json.dumps(manifest).encode())
        arrays = -(-len(tasks) // self.per_job)
        try:
            out = command(["sbatch", "--parsable"], script=self._script(name, arrays))
        except Refused:  # nothing was submitted: no later run need wait to find it
            (self._dir / "jobs" / f"{name}.json").unlink()
            shutil.rmtree(self._dir / "jobs" / name, ignore_errors=True)
            raise
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
            f"exec {_quote(self.python)} -m {NODE} {_quote(str(self._dir))} {batch}",
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
        taken = False
        for key, held in list(self._held.items()):
            result = self._dir / "jobs" / held.batch.name / f"{held.number}.out"
            index = held.number // held.batch.per_job
            done = result.exists()
            if held.running or done:
                taken = self._take_rows(held, index) or taken
            if done:
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
            taken = self._take_rows(held, index) or taken  # all it reported, to its end
            if result.exists():  # written as it ended
                outcomes.append(self._result(held, result, index))
            else:
                outcomes.append(self._ended(held, index, state, why))
            del self._held[key]
            self._settled.setdefault(held.batch.name, []).append(held.number)
        if taken and self.reports is not None:
            self.reports.commit()  # one sync for the rows that came together
        return outcomes

    def _take_rows(self, held: _Held, index: int) -> bool:
        """Hand the run the rows a setting reported since the last look (its ``.rows``
        file, see :class:`~superparams.executors.slurm._node.Rows`), and write the name
        of a stop rule that ends it where the setting reads it; whether any came.

        A run that takes over a setting an earlier run left queued reads its rows from
        the start: the outcome's line then holds every row of the attempt once."""
        assert self._dir is not None
        if held.refused:
            return False
        folder = self._dir / "jobs" / held.batch.name
        try:
            found, held.offset = read_signed_lines(
                folder / f"{held.number}.rows", self._key, held.offset
            )
        except JobFileError as error:
            held.refused = str(error)
            return False
        if not found:
            return False
        if not held.running:
            held.running = True
            self._notify(Started(held.task, index % self.parallel, time.time()))
        for data in found:
            row = read_back(data)
            if isinstance(row, Unreadable):  # not stored: the setting fails when it ends
                held.unreadable = held.unreadable or row
            elif self.reports is None:
                held.reported.append(row)
            else:
                verdict = self.reports.add(held.task, row)
                if verdict and not held.stopped:
                    held.stopped = True
                    _tell_stop(folder / f"{held.number}.stop", verdict)
        return True

    def _with_rows(self, held: _Held, outcome: Outcome) -> Outcome:
        """``outcome`` with what its rows file said: rows kept for it with no runner to
        hand them to, a row that could not be loaded, a file that was refused."""
        if held.reported:
            outcome.reported = [*held.reported, *outcome.reported]
        if held.unreadable is not None:
            outcome.reported = held.unreadable  # the runner fails it, saying why
        if held.refused:
            outcome.rows, outcome.reported = [], []
            outcome.failure = Failure("unpicklable", held.refused)
        return outcome

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
            why = f"its outcome could not be read back: {error_line(error)}"
            return Outcome.failed(held.task, "unpicklable", why, worker=0, since=held.since)
        outcome.id, outcome.attempt = held.task.id, held.task.attempt
        return self._with_rows(held, outcome)

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
        outcome.output = printed(str(self._dir / "jobs" / held.batch.name / f"{held.number}.log"))
        if tail:
            outcome.failure = Failure(cause, error, tail)
        return self._with_rows(held, outcome)

    # -- Slurm's word ------------------------------------------------------------------------

    def _states(self, jobs: set[str]) -> dict[str, tuple[str, str]]:
        """The state (and why) of each array task of ``jobs``, by ``"12_3"`` (``"12"``
        for tasks pending together): Slurm's queue, then sacct for what left it."""
        jobs = {j for j in jobs if j}
        if not jobs:
            return {}
        ids = ",".join(sorted(jobs))
        states: dict[str, tuple[str, str]] = {}
        queue = command(["squeue", "-h", "-r", "-j", ids, "-o", "%i|%T"], check=False)
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
            for job, state, why in accounting(ids, names):
                states.setdefault(job, (state, why))
        return states

    # -- what earlier runs left ------------------------------------------------------------

    @classmethod
    def waiting(cls, results: Path) -> dict[str, str]:
        """What Slurm says of the settings earlier runs left it in ``results`` (a
        results folder), by id: ``PENDING``, ``RUNNING``, ``FINISHED`` (to collect) or
        how the job ended. Reads only; {} when Slurm cannot be asked."""
        found = _left(results)
        if found is None:
            return {}
        folder = results / FOLDER
        out = {}
        for sid, (batch, number) in found[1].items():
            if (folder / "jobs" / batch.name / f"{number}.out").exists():
                out[sid] = "FINISHED"
            else:
                out[sid] = batch.states.get(number // batch.per_job, ("PENDING", ""))[0]
        return out

    @classmethod
    def cancel_left(cls, results: Path) -> int:
        """Cancel the Slurm jobs that earlier runs left holding settings of ``results``
        (a results folder about to be cleaned); how many settings had not finished."""
        found = _left(results)
        if found is None:
            return 0
        earlier = found[1]
        jobs = sorted({batch.job for batch, _ in earlier.values() if batch.job})
        if jobs:
            command(["scancel", *jobs], check=False)
        jobs_folder = results / FOLDER / "jobs"
        return sum(not (jobs_folder / b.name / f"{n}.out").exists() for b, n in earlier.values())

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
                command(["scancel", *refs], check=False)
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
            self._tidy()

    def _tidy(self) -> None:
        """Remove the job files no queued setting needs: a batch's once a run took the
        outcome of each of its settings, and the bases no batch left names."""
        assert self._dir is not None
        needed = set()
        for path in (self._dir / "jobs").glob("*.json"):
            try:
                manifest = json.loads(read_signed(path, self._key))
                results = self._dir / "jobs" / path.stem
                if len(_settled(results)) < len(manifest["tasks"]):
                    needed.add(str(manifest["base"]))
                    continue
                path.unlink()
                shutil.rmtree(results, ignore_errors=True)
            except (OSError, ValueError, KeyError, TypeError, EngineError):
                return  # a file it cannot read: leave every base, as one may need it
        for base in self._dir.glob("base-*.pkl"):
            if BASE_NAME.fullmatch(base.name) and base.name not in needed:
                with contextlib.suppress(OSError):
                    base.unlink()


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


def _tell_stop(path: Path, rule: str) -> None:
    """Write the name of the stop rule that ends a setting where it reads it at its next
    report (mode 0600, never through a link)."""
    with contextlib.suppress(OSError):  # it ended meanwhile, say: nothing to stop
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(rule.encode())


def _settled(folder: Path) -> set[int]:
    """The settings of a batch whose outcomes a run took (see ``shutdown``)."""
    try:
        text = (folder / "settled").read_text()
    except OSError:
        return set()
    return {int(n) for n in text.split() if n.isdigit()}


def _oldest(batches: list[tuple[_Batch, Path]]) -> float:
    return min(path.stat().st_mtime for _, path in batches)


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])
