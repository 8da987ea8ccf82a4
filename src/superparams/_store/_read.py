"""Reading a results folder while a run writes it, without ever writing or locking it.

The one incremental reader of the record: :class:`Follower` reads the rows recorded
since a byte offset of ``record.jsonl``, with the store's own line parser and row maker
(:mod:`superparams._store._record`), and says which settings they belong to. It cuts no
torn tail, restores nothing and takes no lock, not even for an instant: whether a run
holds the folder is read from the kernel's table of locks (:func:`held`). A reader that
follows a run (``experiment view``) reads the folder through :func:`reader` once, then
asks its follower every second or so.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superparams._store._files import LOCK
from superparams._store._record import SEQ, make_rows, open_rows, record_chunks

if TYPE_CHECKING:
    from superparams._store._core import Store


def held(folder: Path) -> bool:
    """Whether a run holds the lock of ``folder``, read from ``/proc/locks`` (Linux)
    without taking the lock; elsewhere, whether the record changed in the last minute."""
    import time

    try:
        inode = os.stat(folder / LOCK).st_ino
    except OSError:
        return False
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            table = f.read()
    except OSError:
        try:
            return time.time() - os.stat(folder / "record.jsonl").st_mtime < 60
        except OSError:
            return False
    for line in table.splitlines():
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF": the inode ends the 6th
        if len(parts) > 5 and parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(inode):
            return True
    return False


def reader(store: Store) -> Store:
    """A copy of ``store`` for reading alone: it tells a run in progress by
    :func:`held`, never by taking the lock."""
    from superparams._store._core import Store

    class _Reader(Store):
        def is_locked(self) -> bool:
            return held(self.folder)

    copy = object.__new__(_Reader)
    copy.__dict__.update(store.__dict__)
    return copy


class Follower:
    """The rows recorded in a store since a position of its record, poll after poll.

    It starts where ``results.parquet`` ends (what is before is compacted: the rows of
    the settings still open are after it), so the first :meth:`poll` knows every setting
    that started and has not ended, and the rows each later line adds to it.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        stored = store._compacted(read=False)
        self.position = stored.offset if stored is not None and stored.intact else 0
        self._number = 0  # lines read so far: the order of rows across polls
        self._pending: dict[str, Any] = {}  # settings started and not ended

    def poll(self) -> tuple[dict[str, list[dict[str, Any]]], bool]:
        """The rows of every setting a line since the last poll was about, by setting id
        (all its rows now, replacing those read before), and whether the record was
        replaced (cut short, emptied: then read the folder afresh)."""
        store = self.store
        try:
            size = os.stat(store.record_path).st_size
        except FileNotFoundError:
            size = 0
        if size < self.position:
            return {}, True
        latest: dict[str, list[dict[str, Any]]] = {}
        touched: set[str] = set()
        live = held(store.folder)
        for lines, _, after in record_chunks(store.record_path, self.position):
            self.position = after
            touched.update(str(line.get("id")) for line in lines)
            rows = make_rows(
                lines,
                store.fields,
                store.defaults,
                live=live,
                logs=store._logs,
                first=self._number,
                pending=self._pending,
            )
            self._number += len(lines)
            _keep_latest(latest, rows)
        still_open = {sid: self._pending[sid] for sid in touched if sid in self._pending}
        _keep_latest(
            latest,
            open_rows(still_open, store.fields, store.defaults, live=live, logs=store._logs),
        )
        for rows in latest.values():
            for row in rows:
                row.pop(SEQ, None)
        return latest, False


def _keep_latest(latest: dict[str, list[dict[str, Any]]], rows: list[dict[str, Any]]) -> None:
    """Add ``rows`` to ``latest``, keeping for each setting only the rows of its latest
    record line (a rerun's outcome, or its start, replaces what an earlier one said)."""
    for row in rows:
        sid = row["id"]
        had = latest.get(sid)
        if had is None or had[0][SEQ] < row[SEQ]:
            latest[sid] = [row]
        elif had[0][SEQ] == row[SEQ]:
            had.append(row)
