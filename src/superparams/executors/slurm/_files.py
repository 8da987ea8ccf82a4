"""The Slurm engine's files: its folder under the results folder (this user's alone), the
key its files are signed with, and files written and read only with their keyed hash
(HMAC-SHA256), so that a file anyone else wrote or changed is refused, never unpickled.
The driver and the job program on the nodes both use it; it never runs a Slurm command.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import pickle
import re
from pathlib import Path
from typing import Any

from superparams._outcome import Task
from superparams.errors import EngineError

FOLDER = "slurm"  # under the results folder
KEY = "key"
BASE_NAME = re.compile(r"base-[0-9a-f]{32}\.pkl")
BATCH_NAME = re.compile(r"[0-9a-f]{8,40}")


class JobFileError(EngineError):
    """A job file that this user's driver or jobs did not write, or that was changed."""


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
        _check_owned(path, os.fstat(f.fileno()))
        return f.read()


def _check_owned(path: Path, info: os.stat_result) -> None:
    """Refuse a job file (``info``, its status) that is not this user's alone."""
    import stat

    if info.st_uid != os.getuid() or info.st_mode & 0o077 or not stat.S_ISREG(info.st_mode):
        msg = (
            f"refused job file {str(path)!r}: owner uid {info.st_uid}, mode "
            f"{info.st_mode & 0o777:o}, where only this user's files of mode 600 are read"
        )
        raise JobFileError(msg)


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
    mac, _, data = _owned(path).partition(b"\n")
    return _signed(path, key, mac, data, "its")


def _signed(path: Path, key: bytes, mac: bytes, data: bytes, whose: str) -> bytes:
    """``data``, if ``mac`` is its keyed hash; else refused, saying ``whose`` hash it was."""
    good = hmac.new(key, data, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(mac, good):
        msg = (
            f"refused job file {str(path)!r}: {whose} keyed hash does not match, so it was "
            "changed or written by someone else since this store's driver wrote it; it is "
            "not unpickled (remove it and run again)"
        )
        raise JobFileError(msg)
    return data


def task_entry(task: Task) -> list[Any]:
    """A task as a batch's manifest holds it: position, id, attempt, timeout, and the
    values of a setting proposed while the run ran, pickled (the manifest is signed)."""
    entry: list[Any] = [task.position, task.id, task.attempt, task.timeout]
    if task.values:
        import cloudpickle

        entry.append(base64.b64encode(cloudpickle.dumps(task.values)).decode("ascii"))
    return entry


def task_of(entry: list[Any]) -> Task:
    """The task a manifest's entry (:func:`task_entry`) stands for."""
    position, sid, attempt, timeout, *values = entry
    held = pickle.loads(base64.b64decode(values[0])) if values else ()  # signed
    return Task(int(position), str(sid), int(attempt), timeout, held)


def append_signed(fd: int, key: bytes, data: bytes) -> None:
    """Append ``data`` to the file open at ``fd`` as one line with its keyed hash, and
    make it durable (see :func:`read_signed_lines`)."""
    encoded = base64.b64encode(data)
    mac = hmac.new(key, encoded, hashlib.sha256).hexdigest().encode()
    os.write(fd, mac + b" " + encoded + b"\n")
    os.fsync(fd)


def read_signed_lines(path: Path, key: bytes, offset: int) -> tuple[list[bytes], int]:
    """The data of the whole lines :func:`append_signed` wrote to ``path`` after
    ``offset``, and the offset after them (a line still being written waits).

    Raises:
        JobFileError: not this user's, others may write it, or a line's hash does not
            match: nothing of it is to be unpickled.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return [], offset
    except OSError as error:
        msg = f"refused job file {str(path)!r}: {error.strerror or error}"
        raise JobFileError(msg) from None
    try:
        info = os.fstat(fd)
        _check_owned(path, info)
        blob = os.pread(fd, max(0, info.st_size - offset), offset)
    finally:
        os.close(fd)
    whole = blob[: blob.rfind(b"\n") + 1]
    found = []
    for line in whole.splitlines():
        mac, _, encoded = line.partition(b" ")
        found.append(base64.b64decode(_signed(path, key, mac, encoded, "a line's")))
    return found, offset + len(whole)
