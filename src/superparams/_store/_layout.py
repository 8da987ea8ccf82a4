"""The layout of a results folder: every file and folder name in it, what
``experiment.json`` holds, and opening its files never through a link.

Every name the folder holds is here (:data:`FILES` says what each is), and so is
``experiment.json``'s shape (:func:`experiment_json`): its format version
(:data:`FORMAT`), the experiment's identity, and the list of the folder's files. A
feature that keeps something new in the folder adds its name to :data:`FILES`.

Every file inside the folder is opened as itself, and only if it is a regular file, never
waiting (:func:`open_in_store`): a planted symbolic link or FIFO is
:class:`StoreWriteError`. The folder itself, or ``progress/``, may be one. A file that
is replaced (results.parquet, history.parquet, experiment.json) is written whole or not at all
(:func:`atomic_write`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from superparams.errors import StoreError, StoreWriteError

RECORD = "record.jsonl"


RESULTS = "results.parquet"


HISTORY = "history.parquet"  # the outcomes a rerun replaced: see FILES


META = "meta.json"  # earlier versions kept the record offset here; now in the parquet


LOGS = "logs"


LOCK = "lock"


EXPERIMENT = "experiment.json"  # whose results these are: see experiment_json


SEARCH = "search.json"  # the adaptive search that runs here: metrics, modes, budget, sampler
STUDY = "study.jsonl"  # the sampler's own state, a line per configuration it proposed


ENVIRONMENTS = "environments.json"  # each environment settings ran in, by id: see FILES


CLASS = "class.json"  # the class as reads need it without importing its module: see _recorded


GITIGNORE = ".gitignore"  # so that `git add .` leaves results, logs and checkpoints out

#: What the results folder's .gitignore says: everything in the folder, itself included.
GITIGNORE_TEXT = "# Written by superparams: results, logs and checkpoints stay out of git.\n*\n"


#: The folder of the results folder that holds each setting's own, by id.
WORK = "work"


META_KEY = "superparams"  # the key in results.parquet's metadata: record offset, fields


#: The version of the folder's layout this code writes, kept in experiment.json as
#: ``"format"``. 1: experiment.json held the file, the class and the path alone (or a
#: folder older still had none); 2: it says its format and lists the folder's files.
#: A folder of an older format is read as it is, and upgraded by the next run (which
#: holds the lock); one of a newer format is refused (:func:`refuse_newer`).
FORMAT = 2


#: Every file and folder a results folder may hold, and what it is, as experiment.json
#: lists them.
FILES = {
    RECORD: "append-only: one line when a setting starts, one for rows it reports, one "
    "when it ends",
    RESULTS: "the latest outcome of every setting, rebuilt from the record; its metadata "
    "says how far into the record it goes",
    HISTORY: "the outcomes a rerun replaced (an earlier code version's, a failure "
    "retried), rows as in results.parquet; written when one is replaced, absent until then",
    f"{LOGS}/": "each setting's stdout and stderr, <id>.log, and its traceback on failure",
    f"{WORK}/": "each setting's own folder, <id>/, if it used one (self.workdir)",
    LOCK: "held (flock) by the run writing here; it dies with the process",
    EXPERIMENT: "whose results these are (the defining file and class), the folder's "
    "format and this list",
    GITIGNORE: "*: git add . in a project leaves the whole folder out",
    CLASS: "the experiment class as the last run saw it (fields, annotations, search values "
    "and their encodings, code version) and the size, time and hash of each of the user's "
    "module files it loaded: while those are unchanged, reads use it instead of importing",
    SEARCH: "the adaptive search that runs here, if one does: what it optimises, its "
    "budget and sampler",
    STUDY: "append-only: the sampler's own state for each configuration it proposed "
    "(CMA-ES's generation and optimizer), so a resumed search goes on from it",
    ENVIRONMENTS: "each environment settings ran in, by the id on their rows: Python, "
    "platform, the versions of the packages the experiment imported, the GPU",
}


def experiment_json(identity: Mapping[str, Any]) -> bytes:
    """What ``experiment.json`` holds for the experiment ``identity`` names (its file,
    class and path, see :func:`~superparams._store._location.identity_of`): the
    format, the identity, and the folder's files."""
    recorded = {"format": FORMAT, **identity, "files": FILES}
    return (json.dumps(recorded, indent=1) + "\n").encode()


def format_of(recorded: Mapping[str, Any]) -> Any:
    """The format of a folder whose ``experiment.json`` holds ``recorded``: 1 for one
    written before the format was recorded."""
    return recorded.get("format", 1)


def refuse_newer(folder: Path, recorded: Mapping[str, Any]) -> None:
    """Refuse a folder written in a format newer than this code knows (or unknown).

    Raises:
        StoreError: saying to upgrade superparams.
    """
    found = format_of(recorded)
    if type(found) is int and found <= FORMAT:
        return
    msg = (
        f"{folder} was written by a newer superparams (results folder format {found!r}; "
        f"this one reads up to {FORMAT}); upgrade superparams (pip install -U "
        "superparams), then run again"
    )
    raise StoreError(msg)


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

    names = "|".join(re.escape(n) for n in (RESULTS, HISTORY, EXPERIMENT, ENVIRONMENTS, CLASS))
    pattern = re.compile(rf"\.(?:{names})\.\d+\.tmp")
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
