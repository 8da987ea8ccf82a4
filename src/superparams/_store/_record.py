"""The record: ``record.jsonl``, append-only, one line when a setting starts and one
when it ends, and between them one for each row it reports; and its reading back into
result rows.

A setting's rows are those its attempts reported since it last started fresh, then
those its run() returned. Each started and outcome line holds, under ``reported``, the
rows reported before it (``[attempt, row]`` pairs); a ``rows`` line holds rows reported
since the started line before it. So the latest outcome line alone says what the
setting's rows are, and a setting with no outcome yet shows what its started line and
the rows lines after it hold. Records written before rows were reported read the same.

A line torn by a crash is at the end of the record; it is ignored on reading
(:func:`record_chunks`) and cut before appending (:func:`cut_torn_tail`). A line that
is not one the store writes (not JSON, NUL bytes, the wrong shape, :func:`_intact`) is
skipped and counted. The record is read a chunk at a time, so a reader holds one
chunk's lines as Python objects whatever the record's length.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from superparams._identity import setting_id
from superparams._outcome import DIED_IN_PROCESS
from superparams._store._columns import BOOKKEEPING, COMPUTED
from superparams._store._layout import LOGS, WORK, opener

_HEAD = 4096  # bytes of the record's start whose hash results.parquet keeps


def record_start(path: Path) -> tuple[int, bytes]:
    """The record's size and its first 4 KiB (0 and nothing if there is no record)."""
    try:
        with open(path, "rb", opener=opener) as f:
            return os.fstat(f.fileno()).st_size, f.read(_HEAD)
    except FileNotFoundError:
        return 0, b""


def head_digest(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()[:16]


def head_lines(head: bytes) -> list[list[str]]:
    """Each line of the record's start (the last one maybe cut short) as ``[hash, id]``:
    what results.parquet keeps beside the start's hash, to tell a damaged line there
    from a record replaced by another (see :func:`head_damage`)."""
    import re

    found = re.compile(rb'"id"\s*:\s*"([0-9A-Za-z]*)"').search
    out = []
    for piece in head.split(b"\n"):
        named = found(piece)
        out.append([head_digest(piece)[:8], named.group(1).decode() if named else ""])
    return out


def head_damage(kept: Any, head: bytes) -> tuple[int, list[str]] | None:
    """How many lines of the record's start ``head`` are damaged, and the ids of the
    settings whose lines they were, when the start differs from the one results.parquet
    was made from (``kept``, from :func:`head_lines`) in one or two neighbouring lines
    (a flipped bit, a newline flipped away or into one); None when it differs more: the
    record was replaced.
    """
    if not isinstance(kept, list) or not all(
        isinstance(k, list) and len(k) == 2 and all(isinstance(v, str) for v in k) for k in kept
    ):
        return None
    now = [h for h, _ in head_lines(head)]
    before = [h for h, _ in kept]
    same = min(len(now), len(before))
    first = next((i for i in range(same) if now[i] != before[i]), same)
    last = 0  # lines alike at the end
    while last < same - first and now[-1 - last] == before[-1 - last]:
        last += 1
    damaged = len(now) - first - last
    lost = kept[first : len(before) - last]
    if not 1 <= damaged <= 2 or len(lost) > 2:
        return None
    return damaged, [sid for _, sid in lost if sid]


def describe(label: str, params: Mapping[str, Any], enc: Mapping[str, str]) -> dict[str, Any]:
    """A setting's label, parameters and encodings, as every record line of it holds them.

    Made once per setting: its started and outcome lines both carry it.
    """
    return {"label": label, "params": params, "enc": enc}


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=_jsonable, separators=(",", ":"), allow_nan=True)


def _jsonable(value: Any) -> Any:
    """A JSON stand-in for a value run() returned that JSON has no type for."""
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()  # a numpy scalar
    if hasattr(value, "tolist"):
        return value.tolist()  # an array
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def cut_torn_tail(path: Path) -> None:
    """Drop a last line that a crash left without its newline."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return
    with open(path, "rb+", opener=opener) as f:
        f.seek(max(0, size - 1))
        if f.read(1) == b"\n":
            return
        chunk = 1 << 16
        pos = size
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            data = f.read(pos - start)
            nl = data.rfind(b"\n")
            if nl >= 0:
                f.truncate(start + nl + 1)
                return
            pos = start
        f.truncate(0)


@contextlib.contextmanager
def uncollected() -> Iterator[None]:
    """The cyclic garbage collector paused: reading the record makes many objects and no
    cycles, and its collections took ~15% of the time of compacting a long record."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def read_record(path: Path, offset: int) -> tuple[list[dict[str, Any]], int, int]:
    """The whole lines of the record from ``offset``, the offset after them, and how
    many lines were damaged: not JSON, or not of the shape the store writes (see
    :func:`_intact`). Damaged lines are skipped: each costs at most its setting's line.
    """
    lines: list[dict[str, Any]] = []
    end, damaged = offset, 0
    for chunk, bad, after in record_chunks(path, offset):
        lines += chunk
        end = after
        damaged += bad
    return lines, end, damaged


# Bytes of the record read and parsed at a time: what a reader holds as Python objects
# is one chunk's lines, whatever the size of the record.
_CHUNK = 1 << 20


def record_chunks(
    path: Path, offset: int, size: int = _CHUNK
) -> Iterator[tuple[list[dict[str, Any]], int, int]]:
    """:func:`read_record` a chunk at a time: each chunk's whole lines, how many lines
    of it were damaged, and the offset after it. A torn last line is not read."""
    try:
        f = open(path, "rb", opener=opener)  # noqa: SIM115  # closed below
    except FileNotFoundError:
        return
    with f:
        f.seek(offset)
        rest = b""
        while block := f.read(size):
            data = rest + block if rest else block
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            if cut:
                offset += cut
                # Not bound to a name here: the caller's dropping a chunk frees it.
                yield (*_parse(data[:cut]), offset)


# json.loads's own decoder (NaN and Infinity too), called without json.loads's wrapping.
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _parse(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """The record lines in ``data`` (whole lines), and how many were damaged."""
    try:  # decoded once, not line by line: reading is most of what compaction costs
        raws: list[str] | list[bytes] = data.decode().split("\n")[:-1]
    except UnicodeDecodeError:  # a damaged line: only it is lost
        raws = data.split(b"\n")[:-1]
    lines = []
    damaged = 0
    loads, scan = json.loads, _SCAN
    for raw in raws:
        try:
            try:
                line, end = scan(raw, 0)  # type: ignore[arg-type]  # bytes: TypeError
            except (StopIteration, ValueError, TypeError):  # bytes, spaces, damage: json.loads
                line, end = loads(raw), len(raw)
            if end != len(raw):  # more after the value: what json.loads makes of it
                line = loads(raw)
        except (ValueError, RecursionError):  # torn by a crash, NUL bytes, not UTF-8
            damaged += 1
            continue
        if _intact(line):
            lines.append(line)
        else:
            damaged += 1
    return lines, damaged


_TEXT = (str, type(None))

#: The engine a queued line written before queued lines named theirs was queued on: the
#: only one that queued settings then.
QUEUED_BEFORE = "slurm"


_NUMBER = (int, float, type(None))


# What each key of a started, queued or outcome line holds, when it is there.
_SHAPE: dict[str, tuple[type, ...]] = {
    "engine": _TEXT,  # a queued line's: the engine that holds it
    "label": _TEXT,
    "params": (dict, type(None)),
    "enc": (dict, type(None)),
    "worker": (int, type(None)),
    "code_version": _TEXT,
    "git_commit": _TEXT,
    "git_dirty": (bool, type(None)),
    "keyed": (list,),
    "reported": (list,),
}


_OUTCOME_SHAPE: dict[str, tuple[type, ...]] = {
    **_SHAPE,
    "status": (str,),
    "started": _NUMBER,
    "seconds": _NUMBER,
    "log": _TEXT,
    "workdir": _TEXT,
    "stopped": _TEXT,
    "environment": _TEXT,
    "rows": (list, type(None)),
    "cause": _TEXT,
    "error": _TEXT,
    "traceback": _TEXT,
}


def _intact(line: Any) -> bool:
    """Whether a record line has the shape the store writes it in.

    A started, queued or outcome line has a text ``id``, a whole ``attempt``, and each
    other key of the type it is written with (a queued line's ``job`` is text); an
    outcome's rows are objects. A line of another event (from a later version) is
    intact, and ignored.
    """
    if type(line) is not dict:
        return False
    get = line.get
    event = get("event")
    if event not in ("started", "outcome", "rows", "queued"):
        return type(event) is str
    if type(get("id")) is not str or type(get("attempt")) is not int:
        return False
    if event == "queued" and type(get("job")) is not str:
        return False
    if event == "rows":
        rows = get("rows")
        return type(rows) is list and all(type(row) is dict for row in rows)
    for pair in get("reported") or ():
        if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not int:
            return False
        if type(pair[1]) is not dict:
            return False
    if event == "outcome":
        if "status" not in line:
            return False
        shape = _OUTCOME_SHAPE
    else:
        shape = _SHAPE
    # Exact types: JSON gives no subclasses (a bool is no int here), and compaction
    # checks every line, so this loop is most of what reading the record costs.
    for key, value in line.items():
        types = shape.get(key)
        if types is not None and type(value) not in types:
            return False
    rows = get("rows")
    if rows:
        for row in rows:
            if type(row) is not dict:
                return False
    enc = get("enc")
    if enc:
        for v in enc.values():
            if type(v) is not str:
                return False
    keyed = get("keyed")
    if keyed:
        for name in keyed:
            if type(name) is not str:
                return False
    return True


def queued_engines(path: Path) -> dict[str, str]:
    """The engine each setting was last queued on, by id, read from the record at
    ``path``, for settings queued and not ended since (it let go of none of them, and
    none has an outcome after): the name its queued line records, or
    :data:`QUEUED_BEFORE` for a line written before lines named one."""
    engines: dict[str, str] = {}
    for lines, _, _ in record_chunks(path, 0):
        for line in lines:
            event = line.get("event")
            if event == "queued":
                sid = line["id"]
                if line["job"]:
                    engines[sid] = line.get("engine") or QUEUED_BEFORE
                else:  # the engine let go of it
                    engines.pop(sid, None)
            elif event == "outcome":
                engines.pop(line["id"], None)
    return engines


def make_rows(
    lines: list[dict[str, Any]],
    fields: tuple[str, ...],
    defaults: Mapping[str, tuple[str, Any]],
    *,
    live: bool,
    logs: str = "",
    first: int = 0,
    pending: dict[str, tuple[int, dict[str, Any], list[list[Any]]]] | None = None,
) -> list[dict[str, Any]]:
    """Result rows from record lines: each outcome's rows, and interrupted settings.

    A setting that started and has no outcome after it was interrupted, or, while a run
    holds the folder (``live``), is running; one queued in an engine's own queue (a
    Slurm job) and not ended is queued, running there or not. Its log is what it printed
    so far (in ``logs``, the folder's logs), or None; its rows are those it reported.
    ``first`` is the number of the first line in the record (its rows' order among the
    rows of other chunks, see :func:`latest_outcomes`). With ``pending``, settings still open
    at the end are kept there, not read as rows: a caller reading the record a chunk at
    a time passes the same one to each chunk, then reads it with :func:`open_rows`.
    """
    rows: list[dict[str, Any]] = []
    open_starts = {} if pending is None else pending
    for number, line in enumerate(lines, first):
        sid = str(line.get("id"))
        event = line.get("event")
        if event == "started" or event == "queued":
            earlier = open_starts.get(sid)
            job = earlier[1].get("job") if earlier is not None else None
            if event == "queued" and not line["job"]:  # the engine let go of it
                if earlier is not None and job:  # as it was before: new, or interrupted
                    if earlier[1]["event"] == "queued":
                        del open_starts[sid]
                    else:
                        open_starts[sid] = (earlier[0], {**earlier[1], "job": None}, earlier[2])
                continue
            if job and event == "started":  # its job began: still the job's to end
                line = {**line, "job": job}
            open_starts[sid] = (number, line, list(line.get("reported") or ()))
            continue
        if event == "interrupted":  # left interrupted by a run that lived on
            start = open_starts.get(sid)
            if start is not None and start[1].get("in_process"):
                open_starts[sid] = (start[0], {**start[1], "in_process": False}, start[2])
            continue
        if event == "rows":
            start = open_starts.get(sid)
            if start is not None:
                attempt = line["attempt"]
                start[2].extend([attempt, row] for row in line["rows"])
            continue
        if event != "outcome":
            continue
        open_starts.pop(sid, None)
        params = dict(line.get("params") or {})
        enc = line.get("enc") or {}
        if "keyed" in line and "enc" not in line:  # restored from results.parquet
            if fields and line["keyed"] != list(fields):
                continue  # its encodings are not known: it cannot be re-keyed
        elif fields and set(enc) != set(fields):
            rekeyed = _rekey(enc, params, fields, defaults)
            if rekeyed is None:
                continue  # run with fields the class no longer has: it is not this class's
            sid = rekeyed
        base = {"id": sid, "label": line.get("label"), **params}
        log = line.get("log") or None
        if log is not None and log[0] == os.sep:  # made by an earlier version: absolute
            log = f"{LOGS}/{os.path.basename(log)}"
        book = {
            "status": line.get("status"),
            "attempt": line.get("attempt"),
            "cause": line.get("cause"),
            "error": line.get("error"),
            "traceback": line.get("traceback"),
            "started": line.get("started"),
            "seconds": line.get("seconds"),
            "worker": line.get("worker"),
            "log": log,
            "workdir": line.get("workdir"),
            "stopped": line.get("stopped"),
            "code_version": line.get("code_version"),
            "git_commit": line.get("git_commit"),
            "git_dirty": line.get("git_dirty"),
            "environment": line.get("environment"),
        }
        attempt = line.get("attempt")
        results = [*(line.get("reported") or ()), *([attempt, r] for r in line.get("rows") or ())]
        for by, result in results or [[attempt, {}]]:
            row = dict(base)
            for key, val in result.items():
                if key in _TAKEN or key in base:
                    key = _kept_as(key, result, base)
                row[key] = val
            row.update(book)
            row["attempt"] = by
            row[SEQ] = number
            rows.append(row)
    if pending is None:
        rows += open_rows(open_starts, fields, defaults, live=live, logs=logs)
    return rows


def open_rows(
    open_starts: Mapping[str, tuple[int, dict[str, Any], list[list[Any]]]],
    fields: tuple[str, ...],
    defaults: Mapping[str, tuple[str, Any]],
    *,
    live: bool,
    logs: str = "",
) -> list[dict[str, Any]]:
    """The rows of settings that started and have no outcome: running or interrupted;
    queued, if an engine's job holds them (their line names the job); failed (killed),
    if it ran in the run's own process and that process died (:data:`DIED_IN_PROCESS`)."""
    rows: list[dict[str, Any]] = []
    for sid, (number, start, reported) in open_starts.items():
        log = f"{LOGS}/{sid}.log"
        try:
            printed = os.stat(f"{logs}{sid}.log").st_size > 0 if logs else False
        except OSError:
            printed = False
        params = dict(start.get("params") or {})
        enc = start.get("enc") or {}
        if "keyed" in start and "enc" not in start:  # restored from results.parquet
            if fields and start["keyed"] != list(fields):
                continue
        elif fields and enc and set(enc) != set(fields):
            rekeyed = _rekey(enc, params, fields, defaults)
            if rekeyed is None:
                continue
            sid = rekeyed
        base = {"id": sid, "label": start.get("label"), **params}
        queued = bool(start.get("job"))
        died = not live and not queued and bool(start.get("in_process"))
        status = "queued" if queued else "running" if live else "interrupted"
        book = {
            "status": "failed" if died else status,
            "attempt": start.get("attempt"),
            "cause": "killed" if died else None if live or queued else "interrupted",
            "error": DIED_IN_PROCESS if died else None,
            "worker": start.get("worker"),
            "log": log if printed else None,
            "workdir": _workdir_of(logs, sid),
            SEQ: number,
            "code_version": start.get("code_version"),
            "git_commit": start.get("git_commit"),
            "git_dirty": start.get("git_dirty"),
        }
        if not reported:
            rows.append({**base, **book})
        for by, result in reported:
            row = dict(base)
            for key, val in result.items():
                if key in _TAKEN or key in base:
                    key = _kept_as(key, result, base)
                row[key] = val
            row.update(book)
            row["attempt"] = by
            rows.append(row)
    return rows


def _kept_as(key: str, result: Mapping[str, Any], base: Mapping[str, Any]) -> str:
    """The column a value run() returned under ``key`` is stored in, when ``key`` names
    one superparams fills (a bookkeeping column, ``id``, ``label``, a parameter):
    ``key_``, with another ``_`` while that is a name in the row too.

    >>> _kept_as("status", {"status": "ok", "status_": 1}, {"id": "ab"})
    'status__'
    """
    name = f"{key}_"
    while name in result or name in base or name in _TAKEN:
        name += "_"
    return name


def renamed(row: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, str]:
    """The keys of a row run() returned (or reported) that name a column superparams
    fills, each with the column it is stored in (see :func:`_kept_as`); for the run to
    say so. ``params`` holds the setting's parameters."""
    clashing = [key for key in row if key in _TAKEN or key in params]
    base = {**params, "id": None, "label": None}
    return {key: _kept_as(key, row, base) for key in clashing}


def _workdir_of(logs: str, sid: str) -> str | None:
    """The folder of its own a setting that has no outcome has, if it made one (relative
    to the results folder, whose logs are in ``logs``)."""
    if not logs:
        return None
    path = f"{WORK}/{sid}"
    return path if os.path.isdir(f"{os.path.dirname(logs.rstrip(os.sep))}/{path}") else None


def _rekey(
    enc: Mapping[str, str],
    params: dict[str, Any],
    fields: tuple[str, ...],
    defaults: Mapping[str, tuple[str, Any]],
) -> str | None:
    """The id a setting stored under other fields has now, or None if it has none.

    A stored setting lacking a field that now has a constant default counts as run with
    that default; one with a field the class no longer has does not belong to it.
    """
    if set(enc) - set(fields):
        return None
    full = dict(enc)
    for name in fields:
        if name not in full:
            if name not in defaults:
                return None
            full[name], params[name] = defaults[name]  # fills in the column too
    return setting_id(full)


# A column the rows read from the record carry until :func:`latest_outcomes` drops it: the line
# each came from, so the latest outcome is the last one recorded (attempts restart at 1
# in every run: a rerun is not a retry).
SEQ = "__record_line"


# The columns a row of the record fills besides the parameters: a value run() returned
# under one of these names is kept under another (see _kept_as).
_TAKEN = frozenset({"id", "label", *BOOKKEEPING, *COMPUTED, SEQ})
