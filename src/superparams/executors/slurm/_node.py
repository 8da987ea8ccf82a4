"""What each Slurm array task runs: ``python -m superparams.executors.slurm._node FOLDER
BATCH``, with the array index in ``SLURM_ARRAY_TASK_ID``. It checks the batch's manifest
and the base against their keyed hashes before unpickling either, runs the array task's
settings (:func:`superparams._worker.run_task`) with a rank no other running job of the
folder holds, and writes each outcome to a signed file, which the driver collects.
It imports no part of the driver.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from superparams._outcome import Failure, Outcome
from superparams._worker import error_line, run_task
from superparams.executors._shipping import loaded
from superparams.executors.slurm._files import (
    BASE_NAME,
    BATCH_NAME,
    JobFileError,
    append_signed,
    job_key,
    own_folder,
    read_signed,
    task_of,
    write_signed,
)


def _dumps(outcome: Outcome) -> bytes:
    """An outcome as a pickle; results of classes that travelled by value, too."""
    import cloudpickle

    try:
        blob: bytes = cloudpickle.dumps(outcome)
    except Exception as error:  # a result that cannot be pickled at all
        failed = Outcome(outcome.id, outcome.attempt, started=outcome.started)
        failed.finished, failed.output = outcome.finished, outcome.output
        failed.failure = Failure(
            "unpicklable", f"its results cannot be pickled: {error_line(error)}"
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


class Rows:
    """Where a setting on Slurm reports its rows: appended, each with its keyed hash, to
    ``<number>.rows`` in its batch's folder (this user's alone, mode 0600), durable
    before :meth:`__call__` returns; the run's driver reads them from there as they come.
    A stop rule the driver applied is the rule's name in ``<number>.stop``, read back at
    each report (see :class:`superparams.executors.Reports`)."""

    def __init__(self, folder: Path, number: int, key: bytes) -> None:
        self.path, self.stop = folder / f"{number}.rows", folder / f"{number}.stop"
        self.key = key
        self.fd: int | None = None

    def __call__(self, row: dict[str, Any]) -> str | None:
        import cloudpickle  # classes of the experiment's module travel by value

        if self.fd is None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
            self.fd = os.open(self.path, flags, 0o600)
        append_signed(self.fd, self.key, cloudpickle.dumps(row))
        try:
            fd = os.open(self.stop, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None  # no rule stopped it: go on
        with os.fdopen(fd, "rb") as file:
            return file.read().decode("utf-8", "replace").strip() or None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def job(folder: Path, batch: str, index: int) -> int:
    """Run array task ``index`` of ``batch``: its settings, each outcome to a signed file.

    Its exit code is 1 when one of them failed, so that Slurm, too, reads the job FAILED.
    """
    try:
        own_folder(folder, make=False)  # a job never makes a folder its results left
        key = job_key(folder)
        if not BATCH_NAME.fullmatch(batch):
            msg = f"no batch named {batch!r}"
            raise JobFileError(msg)
        manifest = json.loads(read_signed(folder / "jobs" / f"{batch}.json", key))
        if not BASE_NAME.fullmatch(str(manifest["base"])):
            msg = f"the manifest of {batch} names no base file: {manifest['base']!r}"
            raise JobFileError(msg)
        base = loaded(read_signed(folder / manifest["base"], key))
    except JobFileError as error:
        print(f"superparams: {error}", file=sys.stderr, flush=True)
        return 3
    per_job, n_proc = int(manifest["per_job"]), int(manifest["n_proc"])
    rank, _held = _rank(folder, index, n_proc)  # held while this process lives
    tasks = manifest["tasks"]
    failed = False
    for number in range(index * per_job, min(len(tasks), (index + 1) * per_job)):
        path = folder / "jobs" / batch / f"{number}.out"
        if path.exists():
            continue  # run before this array task was requeued
        kept = str(folder / "jobs" / batch / f"{number}.log")  # read if it is killed
        rows = Rows(folder / "jobs" / batch, number, key)
        try:
            outcome = run_task(base, task_of(tasks[number]), rank, n_proc, kept=kept, report=rows)
        finally:
            rows.close()
        write_signed(path, key, _dumps(outcome))
        failed = failed or outcome.failure is not None
    return 1 if failed else 0  # so Slurm's accounting says FAILED too


if __name__ == "__main__":  # pragma: no cover - what each array task runs
    sys.exit(job(Path(sys.argv[1]), sys.argv[2], int(os.environ.get("SLURM_ARRAY_TASK_ID", "0"))))
