"""The files of a results folder: their names, and opening them never through a link.

Every file inside the folder is opened as itself, and only if it is a regular file, never
waiting (:func:`open_in_store`): a planted symbolic link or FIFO is
:class:`StoreWriteError`. The folder itself, or ``progress/``, may be one. A file that
is replaced (results.parquet, experiment.json) is written whole or not at all
(:func:`atomic_write`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
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


SEARCH = "search.json"  # the adaptive search that runs here: metrics, modes, budget, sampler


GITIGNORE = ".gitignore"  # so that `git add .` leaves results, logs and checkpoints out

#: What the results folder's .gitignore says: everything in the folder, itself included.
GITIGNORE_TEXT = "# Written by superparams: results, logs and checkpoints stay out of git.\n*\n"


def open_in_store(
    path: str | os.PathLike[str],
    flags: int,
    mode: int = 0o644,
    *,
    dir_fd: int | None = None,
    shown: str | None = None,
) -> int:
    """A descriptor of a regular file inside a results folder, opened as itself, never
    through a symbolic link (the folder itself may be one), and never waiting: a FIFO or
    a device in a file's place is refused, not opened for good. ``dir_fd``: ``path`` is
    a name in that folder; ``shown``: the path messages name (default ``path``).

    Raises:
        StoreWriteError: ``path`` is a symbolic link, or not a regular file.
    """
    flags |= os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, mode, dir_fd=dir_fd)
    except OSError as error:
        if error.errno not in (errno.ELOOP, errno.EMLINK, errno.EISDIR, errno.ENXIO):
            raise
        try:
            found = os.lstat(path, dir_fd=dir_fd).st_mode
        except OSError:
            raise error from None
        if stat.S_ISLNK(found):
            raise StoreWriteError(linked(shown or path)) from None
        raise StoreWriteError(_not_a_file(shown or path, found)) from None
    found = os.fstat(fd).st_mode
    if not stat.S_ISREG(found):
        os.close(fd)
        raise StoreWriteError(_not_a_file(shown or path, found))
    os.set_blocking(fd, True)
    return fd


def _not_a_file(path: str | os.PathLike[str], mode: int) -> str:
    """What a user reads about something else in a file's place (a FIFO, a folder)."""
    kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device"
    return (
        f"{os.fspath(path)!r} is {kind}, not a file; superparams opens only regular files "
        "in a results folder: remove it, then run again"
    )


def linked(path: str | os.PathLike[str]) -> str:
    """What a user reads about a link planted inside a results folder."""
    return (
        f"{os.fspath(path)!r} is a symbolic link; superparams never reads or writes "
        "through a link inside a results folder: remove it, then run again"
    )


def opener(path: str, flags: int) -> int:
    return open_in_store(path, flags)


def refuse_links(folder: Path, *, logs: bool = False) -> None:
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


def _write_error(error: BaseException, path: Path) -> OSError:
    """``error``, raised while writing ``path``, as the OSError it stands for.

    A library may wrap the system's error in its own (polars: "... (os error 28)"),
    or panic; its errno is found in the text, or, failing that, a folder with no space
    left is ENOSPC. Anything else keeps the library's own words.
    """
    import re

    code = error.errno if isinstance(error, OSError) else None
    text = str(error)
    found = re.search(r"\(os error (\d+)\)|\[Errno (\d+)\]|code: (\d+)", text)
    if code is None and found is not None:
        code = int(next(g for g in found.groups() if g))
    if code is None:
        with contextlib.suppress(OSError):
            if os.statvfs(path.parent).f_bavail == 0:
                code = errno.ENOSPC
    if code is not None:
        return OSError(code, os.strerror(code), str(path))
    lines = text.strip().splitlines()
    why = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return OSError(errno.EIO, why, str(path))


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Replace ``path``, whole or not at all, by what ``write`` writes into the binary file
    it is given: a temporary file, synced, then renamed.

    The temporary file is made new (a leftover or a link at its name is removed, never
    followed), writable by its owner only.

    Raises:
        OSError: for ``path``, if it could not be written, whatever the writer raised
            (a library's own error, or its panic, on a full disk: see
            :func:`_write_error`); the temporary file is removed.
    """
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
    except BaseException as error:  # a panic of the writing library is no Exception
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(error, (KeyboardInterrupt, SystemExit, StoreWriteError)):
            raise
        raise _write_error(error, path) from error
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_leftovers(folder: Path) -> None:
    """Remove the temporary files of :func:`atomic_write` that a process killed while
    writing (``kill -9``, a power cut) left in ``folder``.

    Called holding the folder's lock, under which alone the store writes one: each found
    then is a dead writer's, whatever its process id now names (on this machine or on
    another sharing the folder). What cannot be removed stays.
    """
    import re

    pattern = re.compile(rf"\.(?:{re.escape(RESULTS)}|{re.escape(EXPERIMENT)})\.\d+\.tmp")
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
