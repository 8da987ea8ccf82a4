"""``experiment logs EXPERIMENT``: the logs of the settings the field values match.

A log is read from its end when only its last lines are asked for (``-n``), so a large
log costs what is printed; ``-f`` follows the logs of running settings until they end.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from superparams._cli._find import shown
from superparams._cli._shared import say, store_of
from superparams._space import setting_ids
from superparams.errors import UsageError

if TYPE_CHECKING:
    from superparams._cli._find import Found
    from superparams._cli._requests import LogsRequest
    from superparams._space import Space
    from superparams._store._writer import Store


def logs(found: Found, spaces: list[Space[Any]], request: LogsRequest, prog: str) -> None:
    matches: list[_Log] = []
    total = 0
    for space in spaces:
        store = store_of(space)
        known = store.statuses()
        for position, sid in enumerate(setting_ids(space)):
            total += 1
            path = Path(store.log_path(sid))
            if sid in known or path.exists():
                stored = known.get(sid)
                status, ended = (stored.status, stored.ended) if stored else ("", None)
                matches.append(_Log(sid, space[position].label, path, store, status, ended))
    if not matches:
        what = f"the {total} matching setting{'s' if total != 1 else ''}"
        msg = f"no logs yet: none of {what} of {found.name} has run"
        raise UsageError(msg)
    if request.json:
        _list(found, matches, request.lines)
        return
    if request.follow:
        running = [m for m in matches if m.running()]
        if running:
            _follow(running, request.lines)
            return
        say(f"none of the {len(matches)} matching settings is running; their logs:")
    for log in matches:
        if len(matches) > 1:
            sys.stdout.write(f"==> {log.label} [{log.status}] {shown(log.path)} <==\n")
        if log.path.exists() or log.path.is_symlink():
            _print_log(log.path, request.lines)
        else:
            say(f"({log.label} [{log.status}] wrote no output)")
    sys.stdout.flush()


def _list(found: Found, matches: list[_Log], lines: int | None) -> None:
    """The logs as one JSON object: each setting's id, label, status and log file, and
    with ``-n`` its last lines."""
    from superparams._cli._shared import write_json

    listed = []
    for log in matches:
        there = log.path.exists() and not log.path.is_symlink()
        entry: dict[str, Any] = {
            "id": log.id,
            "label": log.label,
            "status": log.status or None,
            "path": str(log.path) if there else None,
            "bytes": log.path.stat().st_size if there else 0,
        }
        if lines is not None:
            tail = ""
            if there:
                with _open_log(log.path) as f:
                    tail = _last_lines(f, os.fstat(f.fileno()).st_size, lines)[1]
            entry["tail"] = tail
        listed.append(entry)
    write_json("logs", {"experiment": found.name, "logs": listed})


@dataclass
class _Log:
    """A setting's log, and the latest outcome stored for it when it was looked up."""

    id: str
    label: str
    path: Path
    store: Store
    status: str
    ended: float | None  # when that outcome ended (seconds since the epoch)

    def running(self) -> bool:
        """Whether a run is writing this log now.

        The record notes a start without flushing it, so a setting running now may
        still show its outcome from an earlier run: a log written to after that outcome
        ended belongs to a new attempt.
        """
        if self.status == "running":
            return True
        if not self.store.is_locked() or not self.path.exists():
            return False
        if self.ended is None:
            return self.status not in ("completed", "failed")
        return self.path.stat().st_mtime > self.ended + 1.0

    def finished(self) -> bool:
        """Whether, looking again, the run is over or this setting has a newer outcome."""
        if not self.store.is_locked():
            return True
        stored = self.store.statuses().get(self.id)
        status, ended = (stored.status, stored.ended) if stored else ("", None)
        return status in ("completed", "failed") and (ended, status) != (self.ended, self.status)


_BLOCK = 1 << 16  # how much of a log is read at a time


def _open_log(path: Path) -> BinaryIO:
    """A setting's log for reading, never through a link planted in its place."""
    from superparams._store._layout import open_in_store

    return os.fdopen(open_in_store(path, os.O_RDONLY), "rb")


def _print_log(path: Path, lines: int | None) -> None:
    """Print a log, or its last ``lines`` lines, read from its end: a large log costs
    what is printed, not its size."""
    with _open_log(path) as f:
        size = os.fstat(f.fileno()).st_size
        if lines is not None:
            text = _last_lines(f, size, lines)[1]
            sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")
            return
        _copy_out(f, size, "")


def _last_lines(f: BinaryIO, end: int, lines: int) -> tuple[int, str]:
    """The last ``lines`` lines of the first ``end`` bytes of a file, read backwards
    from ``end``, and where the bytes read start."""
    import codecs

    data = b""
    pos = end
    block = _BLOCK
    while pos > 0 and data.count(b"\n") <= lines:
        start = max(0, pos - block)
        f.seek(start)
        data = f.read(pos - start) + data
        pos = start
        block *= 2
    if lines == 0:
        return pos, ""
    text = codecs.decode(data, "utf-8", errors="replace")
    return pos, "".join(text.splitlines(keepends=True)[-lines:])


def _copy_out(f: BinaryIO, end: int, label: str) -> None:
    """Print a file's bytes from where it is to ``end``, a block at a time."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    left = end - f.tell()
    text = ""  # a line not yet ended: printed with the next block, labelled once
    while left > 0:
        data = f.read(min(left, 16 * _BLOCK))
        if not data:
            break
        left -= len(data)
        text += decoder.decode(data)
        whole = text.rfind("\n") + 1
        if whole:
            _write_log(text[:whole], label)
            text = text[whole:]
    text += decoder.decode(b"", final=True)
    if text:
        _write_log(text + "\n", label)


def _follow(running: list[_Log], lines: int | None) -> None:
    """Print the logs of running settings as they grow, until each one ends."""
    import time

    prefix = len(running) > 1
    offsets: dict[str, int] = {}
    for log in running:
        label = log.label if prefix else ""
        offsets[log.id] = 0
        if not (log.path.exists() or log.path.is_symlink()):
            continue
        with _open_log(log.path) as f:
            # whole lines now, the rest as it completes
            start, _ = _last_lines(f, os.fstat(f.fileno()).st_size, 0)
            f.seek(start)
            end = offsets[log.id] = start + f.read().rfind(b"\n") + 1
            if lines is None:
                f.seek(0)
                _copy_out(f, end, label)
            else:
                _write_log(_last_lines(f, end, lines)[1], label)
    checked = time.monotonic()
    active = running
    while active:
        time.sleep(0.2)
        for log in active:
            offsets[log.id] = _write_new(log.path, offsets[log.id], log.label if prefix else "")
        if time.monotonic() - checked >= 1.0:
            checked = time.monotonic()
            done = [log for log in active if log.finished()]
            for log in done:
                offsets[log.id] = _write_new(log.path, offsets[log.id], log.label if prefix else "")
            active = [log for log in active if log not in done]


def _write_new(path: Path, offset: int, label: str) -> int:
    try:
        with _open_log(path) as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return offset
    end = data.rfind(b"\n") + 1  # whole lines only; the rest comes with its newline
    if end:
        _write_log(data[:end].decode("utf-8", errors="replace"), label)
    return offset + end


def _write_log(text: str, label: str) -> None:
    if label:
        text = "".join(f"[{label}] {line}" for line in text.splitlines(keepends=True))
    sys.stdout.write(text)
    sys.stdout.flush()
