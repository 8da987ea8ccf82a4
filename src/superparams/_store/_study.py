"""What an adaptive search keeps in the results folder, beside the record that holds its
outcomes: ``search.json`` (what it optimises, its budget and sampler, whole or not at
all) and ``study.jsonl`` (append-only: what the sampler noted of each configuration it
proposed, such as CMA-ES's generation and optimizer, handed back when the search
resumes). The store's writer and read side call these; nothing here checks the folder,
which they trust first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from superparams._store._layout import SEARCH, STUDY, atomic_write, opener
from superparams.errors import StoreError, StoreWriteError


def read_search(folder: Path) -> dict[str, Any] | None:
    """The adaptive search recorded in ``folder``, if any."""
    try:
        with open(folder / SEARCH, "rb", opener=opener) as f:
            found = json.loads(f.read())
    except StoreWriteError:
        raise
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def write_search(folder: Path, search: Mapping[str, Any]) -> None:
    """Write ``search.json`` whole (a temporary file renamed), or not at all."""
    text = json.dumps(dict(search), indent=1) + "\n"
    atomic_write(folder / SEARCH, lambda tmp: tmp.write(text.encode()))


def append_sampler_state(folder: Path, values: Mapping[str, Any], state: Mapping[str, Any]) -> None:
    """Append one line to ``study.jsonl``, written at once: a line cut by a crash is
    skipped on reading."""
    line = json.dumps({"values": dict(values), "state": dict(state)}, default=repr) + "\n"
    fd = opener(str(folder / STUDY), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read_sampler_states(folder: Path) -> list[dict[str, Any]]:
    """Each line of ``study.jsonl`` as ``{"values": ..., "state": ...}``, in order; a line
    that is not whole is left out.

    The state may hold a sampler's pickle (CMA-ES's optimizer), which Optuna loads: the
    file is read only if it is the user's own and writable by no one else.

    Raises:
        StoreError: the file belongs to another user, or others may write it.
    """
    path = folder / STUDY
    try:
        with open(path, "rb", opener=opener) as f:
            facts = os.fstat(f.fileno())
            if facts.st_uid != os.geteuid() or facts.st_mode & 0o022:
                msg = (
                    f"{path} belongs to another user or others may write it; superparams "
                    "does not read it (it holds a sampler's state that would be unpickled): "
                    "remove it, and the search goes on without that state"
                )
                raise StoreError(msg)
            text = f.read().decode("utf-8", "replace")
    except (StoreWriteError, StoreError):
        raise
    except OSError:
        return []
    states = []
    for line in text.splitlines():
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict) and isinstance(found.get("state"), dict):
            states.append(found)
    return states
