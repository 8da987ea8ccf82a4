"""``class.json``: the experiment class as a run recorded it, kept for reads.

This room writes the file whole or not at all (:func:`write_class`) and reads it back only
when no other user could have written it (:func:`read_class`). What the file says, and
how a read uses it, is :mod:`superparams._recorded`'s; this room only keeps it.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from superparams._store._layout import CLASS, atomic_write, open_in_store
from superparams.errors import StoreWriteError


def write_class(folder: Path, recorded: Mapping[str, Any]) -> None:
    """Write ``class.json`` whole (a temporary file renamed), or not at all."""
    text = (json.dumps(dict(recorded), indent=1) + "\n").encode()
    atomic_write(folder / CLASS, lambda tmp: tmp.write(text))


def read_class(folder: Path) -> dict[str, Any] | None:
    """What ``class.json`` in ``folder`` holds; None when there is none, it cannot be
    read, or another user could have written it (owned by someone other than you or
    root, or writable by group or others): then it is not used at all."""
    try:
        fd = open_in_store(folder / CLASS, os.O_RDONLY)
    except (OSError, StoreWriteError):
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if info.st_uid not in (os.geteuid(), 0) or stat.S_IMODE(info.st_mode) & 0o022:
            return None
        try:
            found = json.loads(f.read())
        except (OSError, ValueError):
            return None
    return found if isinstance(found, dict) else None
