"""The files of a results folder: their names, and opening them never through a link.

Every file inside the folder is opened as itself (:func:`open_in_store`): a planted
symbolic link is :class:`StoreWriteError`. The folder itself, or ``progress/``, may be
one. A file that is replaced (results.parquet, experiment.json) is written whole or not
at all (:func:`_atomic_write`).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from superparams.errors import StoreWriteError

RECORD = "record.jsonl"


RESULTS = "results.parquet"


META = "meta.json"  # earlier versions kept the record offset here; now in the parquet


LOGS = "logs"


LOCK = "lock"


EXPERIMENT = "experiment.json"  # whose results these are: {"file": ..., "class": ...}


def open_in_store(path: str | os.PathLike[str], flags: int, mode: int = 0o644) -> int:
    """A descriptor of a file inside a results folder, opened as itself, never through a
    symbolic link (the folder itself may be one).

    Raises:
        StoreWriteError: ``path`` is a symbolic link.
    """
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            raise StoreWriteError(linked(path)) from None
        raise


def linked(path: str | os.PathLike[str]) -> str:
    """What a user reads about a link planted inside a results folder."""
    return (
        f"{os.fspath(path)!r} is a symbolic link; superparams never reads or writes "
        "through a link inside a results folder: remove it, then run again"
    )


def _opener(path: str, flags: int) -> int:
    return open_in_store(path, flags)


def _refuse_links(folder: Path, *, logs: bool = False) -> None:
    """Refuse a folder where a file or folder of the store is a link (with ``logs``,
    where a setting's log is one): read or written through, it would reach any file.

    Raises:
        StoreWriteError: naming the first link found.
    """
    for name in (LOCK, RECORD, EXPERIMENT, LOGS):
        if os.path.islink(folder / name):
            raise StoreWriteError(linked(folder / name))
    if logs:
        with contextlib.suppress(FileNotFoundError), os.scandir(folder / LOGS) as entries:
            for entry in entries:
                if entry.is_symlink():
                    raise StoreWriteError(linked(entry.path))


def _atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Replace ``path``, whole or not at all, by what ``write`` writes into the binary file
    it is given: a temporary file, synced, then renamed.

    The temporary file is made new (a leftover or a link at its name is removed, never
    followed), writable by its owner only.

    Raises:
        OSError: for ``path``, if it could not be written (a polars error that is one,
            such as no space left, too); the temporary file is removed.
    """
    import re

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        try:
            fd = open_in_store(tmp, flags)
        except FileExistsError:
            os.unlink(tmp)
            fd = open_in_store(tmp, flags)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except Exception as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        code = error.errno if isinstance(error, OSError) else None
        found = re.search(r"\(os error (\d+)\)", str(error))
        if code is None and found is not None:
            code = int(found.group(1))
        if code is None:
            raise
        raise OSError(code, os.strerror(code), str(path)) from error
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
