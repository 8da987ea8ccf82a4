"""The folder's lock: held (flock) by the run writing to it, and who holds it.

The lock is the file ``lock`` of the folder. The run holding it writes there which
process it is (:func:`write_holder`), so a second run, or ``experiment status``, can
say who is writing (:func:`holder`). The lock dies with the process that holds it.
A reader that must not take the lock even for an instant asks the kernel's table of
locks instead (:func:`held`).
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from typing import TextIO

from superparams._store._layout import LOCK, RECORD, opener

LOCK_PATIENCE = 0.5  # seconds a writer waits for the lock before it says a run holds it


def try_lock(file: TextIO) -> bool:
    """Take the folder's lock for writing, or say that a run holds it.

    A reader asking :meth:`Store.is_locked` holds the lock (shared) for an instant; a
    writer waits that out rather than take the reader for another run.
    """
    deadline = time.monotonic() + LOCK_PATIENCE
    while True:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)


def write_holder(file: TextIO) -> None:
    """Say in the lock file, held, which process holds it."""
    file.seek(0)
    file.truncate()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    file.write(f"pid {os.getpid()} on {socket.gethostname()}, started {started}")
    file.flush()


def read_holder(file: TextIO) -> str:
    """Who the lock file says holds it ("another process" if it says nothing)."""
    file.seek(0)
    return file.read().strip() or "another process"


def is_held(folder: Path) -> bool:
    """Whether a run holds the lock of ``folder`` right now (a shared flock for an instant)."""
    path = folder / LOCK
    if not path.exists():
        return False
    with open(path, opener=opener) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def holder(folder: Path) -> str | None:
    """Which process holds the lock of ``folder`` (``pid 12 on host, started ...``), or
    None if no run holds it."""
    if not is_held(folder):
        return None
    try:
        with open(folder / LOCK, opener=opener) as f:
            return read_holder(f)
    except OSError:
        return "another process"


def held(folder: Path) -> bool:
    """Whether a run holds the lock of ``folder``, read from ``/proc/locks`` (Linux)
    without taking the lock; elsewhere, whether the record changed in the last minute."""
    try:
        inode = os.stat(folder / LOCK).st_ino
    except OSError:
        return False
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            table = f.read()
    except OSError:
        try:
            return time.time() - os.stat(folder / RECORD).st_mtime < 60
        except OSError:
            return False
    for line in table.splitlines():
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF": the inode ends the 6th
        if len(parts) > 5 and parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(inode):
            return True
    return False
