"""The environments a folder's settings ran in: ``environments.json`` (id -> details,
rewritten whole when a run meets a new one) and the ``environment`` lines of the record
that name each the first time; and what changed since, for a plan.

The record line comes first, so a run killed before environments.json was rewritten
still has the details (:func:`from_record`). The store's writer and read side call
these; nothing here checks the folder, which they trust first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from superparams._store._layout import ENVIRONMENTS, atomic_write, opener
from superparams._store._record import record_chunks
from superparams.errors import StoreWriteError

#: The ``event`` of the record line that names an environment the first time.
EVENT = "environment"

#: A change of environment: the package (or ``Python``), its version then and now (None:
#: not installed now).
Change = tuple[str, str, "str | None"]


def read_environments(folder: Path) -> dict[str, dict[str, Any]]:
    """The environments recorded in ``folder``'s environments.json, by id."""
    try:
        with open(folder / ENVIRONMENTS, "rb", opener=opener) as f:
            found = json.loads(f.read())
    except StoreWriteError:
        raise
    except (OSError, ValueError):
        return {}
    if not isinstance(found, dict):
        return {}
    return {k: v for k, v in found.items() if isinstance(k, str) and isinstance(v, dict)}


def write_environments(folder: Path, environments: Mapping[str, Any]) -> None:
    """Write environments.json whole (a temporary file renamed), or not at all."""
    text = json.dumps(dict(environments), indent=1, sort_keys=True) + "\n"
    atomic_write(folder / ENVIRONMENTS, lambda tmp: tmp.write(text.encode()))


def from_record(record: Path, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """The details of the environments ``wanted`` that the record's lines name."""
    found: dict[str, dict[str, Any]] = {}
    for lines, _, _ in record_chunks(record, 0):
        for line in lines:
            if line.get("event") == EVENT and line.get("id") in wanted:
                details = line.get("details")
                if isinstance(details, dict):
                    found[str(line["id"])] = details
    return found


def changes(details: Mapping[str, Any], python: str, now: Mapping[str, str | None]) -> list[Change]:
    """What differs between an environment's ``details`` and today's: the Python
    version, and the version of each package it lists (``now``: installed today)."""
    out: list[Change] = []
    was = details.get("python")
    if isinstance(was, str) and was != python:
        out.append(("Python", was, python))
    packages = details.get("packages")
    if isinstance(packages, dict):
        for name, version in sorted(packages.items()):
            if isinstance(version, str) and now.get(name) != version:
                out.append((name, version, now.get(name)))
    return out


def listed(details: Mapping[str, Any]) -> list[str]:
    """The packages an environment's details name."""
    packages = details.get("packages")
    return [str(name) for name in packages] if isinstance(packages, dict) else []
