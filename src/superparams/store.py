"""The results folder of one experiment class: the one writer, and its readers.

A folder ``progress/<module>/<Class>/`` holds::

    record.jsonl      append-only: one line when a setting starts, one when it ends
    results.parquet   the latest outcome of every setting, rebuilt from the record; its
                      metadata says how far into the record it goes, and for which fields
    logs/<id>.log     each setting's stdout and stderr, and its traceback on failure
    lock              held (flock) by the run writing here; it dies with the process

Durability: an outcome line is written and fsynced before the runner reports it done
(:meth:`Store.commit`), and nothing already written is ever rewritten. A line torn by a
crash is at the end of the record; it is ignored on reading and cut before appending.
``results.parquet`` is written to a temporary file and renamed, at the start and end of
each run, so readers never see half a file.

Identity across edits: when a field with a default is added to the class, the settings
stored before count as run with that default. Each outcome line keeps its fields'
encodings, so the store can compute what the id of the stored setting is now.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superparams.errors import StoreError, StoreLockedError
from superparams.identity import setting_id

if TYPE_CHECKING:
    import polars as pl

    from superparams._code import CodeVersion
    from superparams.experiment import Experiment
    from superparams.space import Space
    from superparams.worker import Outcome

RECORD = "record.jsonl"
RESULTS = "results.parquet"
META = "meta.json"  # earlier versions kept the record offset here; now in the parquet
_META_KEY = "superparams"  # the key in results.parquet's metadata: record offset, fields
LOGS = "logs"
LOCK = "lock"

#: The bookkeeping columns every results table has, after the parameters and results.
BOOKKEEPING = (
    "status",
    "attempt",
    "cause",
    "error",
    "traceback",
    "started",
    "seconds",
    "worker",
    "log",
    "code_version",
    "git_commit",
    "git_dirty",
)
LOCK_PATIENCE = 0.5  # seconds a writer waits for the lock before it says a run holds it


def folder_for(cls: type[Experiment]) -> Path:
    """Where an experiment class keeps its results: beside the file that defines it.

    ``experiments/params.py`` with class ``Hyperparams`` stores under
    ``experiments/progress/params/Hyperparams``. ``SUPERPARAMS_PROGRESS`` replaces the
    ``experiments/progress`` part. A class from a notebook or an interactive session
    stores under ``./progress/<module>/<Class>``.
    """
    import inspect
    import sys

    module = sys.modules.get(cls.__module__)
    source = getattr(module, "__file__", None)
    try:
        source = source or inspect.getfile(cls)
    except (TypeError, OSError):
        source = None
    if source and not source.startswith("<"):
        path = Path(source).resolve()
        base, stem = path.parent / "progress", path.stem
    else:
        base, stem = Path.cwd() / "progress", cls.__module__.rsplit(".", 1)[-1]
    root = os.environ.get("SUPERPARAMS_PROGRESS")
    if root:
        base = Path(root).expanduser().resolve()
    return base / stem / cls.__qualname__.replace("<locals>.", "").replace(".", "_")


@dataclass
class Known:
    """What the store knows of one setting: its latest status and how often it ran."""

    status: str
    attempt: int


@dataclass
class Plan:
    """What a run of a space would do, by setting id."""

    new: list[int] = field(default_factory=list)  # positions in the space
    done: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    interrupted: list[int] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # stored ids no longer in the space
    # done positions whose stored code_version is known and not the current one
    outdated: list[int] = field(default_factory=list)
    attempts: dict[int, int] = field(default_factory=dict)  # position -> attempts so far
    ids: list[str] = field(default_factory=list)  # id of every position

    @property
    def total(self) -> int:
        return len(self.ids)

    def summary(self) -> str:
        earlier = f" ({len(self.outdated)} by earlier code)" if self.outdated else ""
        parts = [
            f"{len(self.done)} completed{earlier}",
            f"{len(self.failed)} failed",
            f"{len(self.interrupted)} interrupted",
            f"{len(self.new)} new",
        ]
        if self.stale:
            parts.append(f"{len(self.stale)} stored but no longer in the space")
        return ", ".join(parts)


class Store:
    """The results folder of one experiment class.

    Reading needs no lock; writing (:meth:`open`) takes the folder's lock, so a second
    run of the same experiment gets :class:`StoreLockedError` instead of corrupting it.
    """

    def __init__(
        self,
        folder: Path | str,
        fields: Iterable[str] = (),
        defaults: Mapping[str, tuple[str, Any]] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self._logs = f"{self.folder / LOGS}{os.sep}"
        self.fields = tuple(fields)
        # Each field's constant default as (encoding, value): what an added field means
        # for the settings stored before it existed.
        self.defaults = dict(defaults or {})
        self._lock_file: Any = None
        self._record: Any = None
        self._unsynced = 0
        self._synced_at = 0.0
        self._stamp = ""  # the run's code version as record text, made once per run

    @classmethod
    def for_space(cls, space: Space[Any], folder: Path | str | None = None) -> Store:
        from superparams.identity import canonical, encode
        from superparams.space import Dimension
        from superparams.space import Space as SpaceType

        experiment = space.experiment_class
        info = experiment._sp_info()
        defaults = {}
        for name in info.fields:
            default = info.defaults.get(name)
            if name in info.defaults and not isinstance(default, (Dimension, SpaceType)):
                with contextlib.suppress(Exception):  # no stable encoding: no carrying over
                    plain = canonical(default, info.annotations.get(name))
                    defaults[name] = (encode(plain, name), plain)
        return cls(folder or folder_for(experiment), info.fields, defaults)

    # -- paths ---------------------------------------------------------------------------

    @property
    def record_path(self) -> Path:
        return self.folder / RECORD

    @property
    def results_path(self) -> Path:
        return self.folder / RESULTS

    def log_path(self, setting_id: str) -> str:
        """Where a setting's log goes (a string: it is made for every setting)."""
        return f"{self._logs}{setting_id}.log"

    # -- the lock and the writer -----------------------------------------------------------

    def open(self) -> Store:
        """Take the folder for writing: lock it, cut a torn tail, bring results up to date."""
        (self.folder / LOGS).mkdir(parents=True, exist_ok=True)
        lock = open(self.folder / LOCK, "a+")  # noqa: SIM115  # held until close()
        if not _lock(lock):
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            lock.close()
            msg = (
                f"another run is writing to {self.folder} ({holder}); wait for it to "
                "finish or stop it, then run again"
            )
            raise StoreLockedError(msg) from None
        lock.seek(0)
        lock.truncate()
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        lock.write(f"pid {os.getpid()} on {socket.gethostname()}, started {started}")
        lock.flush()
        self._lock_file = lock
        try:
            _cut_torn_tail(self.record_path)
            self.compact()
            self._record = open(self.record_path, "ab")  # noqa: SIM115  # the run's writer
        except BaseException:
            self.close()  # never keep the folder locked for a run that cannot start
            raise
        return self

    def close(self) -> None:
        """Sync the record, write results.parquet, and release the lock."""
        try:
            if self._record is not None:
                self.commit()
                self._record.close()
                self._record = None
                self.compact()
        finally:  # even if writing results.parquet failed: the record has everything
            if self._lock_file is not None:
                self._lock_file.close()  # releases the flock
                self._lock_file = None

    def __enter__(self) -> Store:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stamp(self, code: CodeVersion) -> None:
        """Mark every line this run writes with the version of the code that runs."""
        fields = {
            "code_version": code.version,
            "git_commit": code.git_commit,
            "git_dirty": code.git_dirty,
        }
        self._stamp = "," + _dumps(fields)[1:-1]

    def started(self, setting_id: str, attempt: int, worker: int, described: str) -> None:
        """Note that a setting started (not synced: a lost line only loses 'interrupted').

        The line carries the setting's parameters (``described``, from :func:`describe`),
        so a setting interrupted by a crash shows in the results with them.
        """
        line = {"event": "started", "id": setting_id, "attempt": attempt, "worker": worker}
        self._write(line, described)
        self._record.flush()  # so `experiment status` sees it running at once

    def append(self, outcome: Outcome, described: str) -> None:
        """Write an outcome; it is durable after the next :meth:`commit`."""
        line = {
            "event": "outcome",
            "id": outcome.id,
            "status": outcome.status,
            "attempt": outcome.attempt,
            "started": outcome.started,
            "seconds": round(outcome.finished - outcome.started, 6),
            "worker": outcome.worker,
            "log": outcome.log,
            "rows": outcome.rows,
        }
        if outcome.failure is not None:
            line["cause"] = outcome.failure.cause
            line["error"] = outcome.failure.error
            line["traceback"] = outcome.failure.traceback
        self._write(line, described)
        self._unsynced += 1

    def _write(self, line: dict[str, Any], described: str) -> None:
        if self._record is None:
            msg = "the store is not open for writing; use it as `with Store(...) as store:`"
            raise StoreError(msg)
        text = _dumps(line)
        self._record.write(f"{text[:-1]},{described}{self._stamp}}}\n".encode())

    def commit(self) -> None:
        """Make every outcome written so far durable (write, then fsync)."""
        if self._record is None:
            return
        self._record.flush()
        if self._unsynced:
            os.fsync(self._record.fileno())
            self._unsynced = 0
        self._synced_at = time.monotonic()

    def seconds_since_commit(self) -> float:
        return time.monotonic() - self._synced_at

    # -- compaction: record -> results.parquet ---------------------------------------------

    def _compacted(self, *, read: bool = True) -> tuple[int, pl.DataFrame | None] | None:
        """How far into the record results.parquet goes, and its table (if ``read``).

        Both come from one open file: the offset lives in the parquet's own metadata, so
        a crash or a reader between two writes can never pair a table with another
        table's offset. None when there is no parquet made for the class's fields.
        """
        import polars as pl

        try:
            f = open(self.results_path, "rb")  # noqa: SIM115  # closed just below
        except FileNotFoundError:
            return None
        with f:
            try:
                meta = json.loads(pl.read_parquet_metadata(f).get(_META_KEY) or "{}")
                if meta.get("fields") != list(self.fields):
                    return None
                f.seek(0)
                return int(meta.get("offset", 0)), pl.read_parquet(f) if read else None
            except (pl.exceptions.PolarsError, OSError, ValueError):
                return None  # not one of ours: results are rebuilt from the record

    def compact(self) -> None:
        """Bring results.parquet up to date with the record, atomically.

        Reads only the record past what results.parquet already holds, unless the class's
        fields changed since (then the whole record, to re-key the stored settings).
        """
        import polars as pl

        stored = self._compacted(read=False)
        offset = 0 if stored is None else stored[0]
        lines, end = _read_record(self.record_path, offset)
        if not lines and stored is not None:
            return
        new = _frame(_rows(lines, self.fields, self.defaults, live=False))
        table = new if stored is None else _concat([pl.read_parquet(self.results_path), new])
        table = _latest(table)
        meta = {_META_KEY: json.dumps({"offset": end, "fields": list(self.fields)})}
        _atomic_write(self.results_path, lambda path: table.write_parquet(path, metadata=meta))
        with contextlib.suppress(FileNotFoundError):
            (self.folder / META).unlink()  # where earlier versions kept the offset

    # -- readers ---------------------------------------------------------------------------

    def table(self) -> pl.DataFrame:
        """Every stored setting's latest outcome, including a run in progress."""
        stored = self._compacted()
        # never compacted, or compacted for other fields: read the whole record
        offset, base = stored if stored is not None else (0, None)
        lines, _ = _read_record(self.record_path, offset)
        live = self.is_locked()
        tail = _frame(_rows(lines, self.fields, self.defaults, live=live))
        frames = [f for f in (base, tail) if f is not None and f.height]
        if not frames:
            return _frame([])
        return _latest(_concat(frames))

    def known(self) -> dict[str, Known]:
        """The latest status and attempt count of every stored setting, by id."""
        table = self.table()
        if table.is_empty():
            return {}
        firsts = table.unique(subset="id", keep="first", maintain_order=True)
        return {
            i: Known(s, a)
            for i, s, a in zip(
                firsts["id"].to_list(),
                firsts["status"].to_list(),
                firsts["attempt"].to_list(),
                strict=True,
            )
        }

    def plan(self, space: Space[Any], code_version: str | None = None) -> Plan:
        """Sort a space's settings by what the store knows of them.

        A setting that stands twice in the space (in both parts of a union, say) is
        planned once, at its first position. With ``code_version`` (the current code's),
        completed settings stored with another version are also *outdated*; a row stored
        with no version (before versions were recorded) is not: its code is unknown.
        """
        import polars as pl

        ids = list(space._sp_ids())
        table = self.table() if self.folder.exists() else _frame([])
        if "code_version" not in table.columns:
            table = table.with_columns(pl.lit(None, pl.String).alias("code_version"))
        stored = table.select("id", "status", "attempt", "code_version").unique(
            subset="id", keep="first", maintain_order=True
        )
        positions = (
            pl.DataFrame({"id": ids}, schema={"id": pl.String})
            .with_row_index("position")
            .unique(subset="id", keep="first", maintain_order=True)
        )
        joined = positions.join(stored, on="id", how="left", maintain_order="left")
        status = pl.col("status")

        def where(condition: pl.Expr) -> list[int]:
            return joined.filter(condition)["position"].to_list()

        known = joined.filter(status.is_not_null())
        return Plan(
            new=where(status.is_null()),
            done=where(status == "completed"),
            outdated=[]
            if code_version is None
            else where((status == "completed") & (pl.col("code_version") != code_version)),
            failed=where(status == "failed"),
            interrupted=where(status.is_in(["completed", "failed"]).not_()),
            stale=stored.join(positions, on="id", how="anti")["id"].to_list(),
            attempts=dict(
                zip(known["position"].to_list(), known["attempt"].to_list(), strict=True)
            ),
            ids=ids,
        )

    def is_locked(self) -> bool:
        """Whether a run is writing to this folder right now."""
        path = self.folder / LOCK
        if self._lock_file is not None:
            return True
        if not path.exists():
            return False
        with open(path) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
        return False

    def clean(self) -> None:
        """Remove every stored result and log of this experiment."""
        import shutil

        if not self.folder.exists():
            return
        with self:  # holding the lock: never clean under a running run
            for name in (RECORD, RESULTS, META):
                with contextlib.suppress(FileNotFoundError):
                    (self.folder / name).unlink()
            shutil.rmtree(self.folder / LOGS, ignore_errors=True)
            self._record.close()
            self._record = None
        shutil.rmtree(self.folder, ignore_errors=True)


def _lock(file: Any) -> bool:
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


# -- the record ------------------------------------------------------------------------


def describe(label: str, params: Mapping[str, Any], enc: Mapping[str, str]) -> str:
    """A setting's label, parameters and encodings as record text, for every line of it.

    Made once per setting: its started and outcome lines both carry it.
    """
    return _dumps({"label": label, "params": params, "enc": enc})[1:-1]


def _dumps(obj: Any) -> str:
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


def _cut_torn_tail(path: Path) -> None:
    """Drop a last line that a crash left without its newline."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return
    with open(path, "rb+") as f:
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


def _read_record(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The whole lines of the record from ``offset``, and the offset after them."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1  # a torn last line is not read
    lines = []
    for raw in data[:end].splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            continue  # a torn line in the middle can only come from a crash: skip it
    return lines, offset + end


def _rows(
    lines: list[dict[str, Any]],
    fields: tuple[str, ...],
    defaults: Mapping[str, tuple[str, Any]],
    *,
    live: bool,
) -> list[dict[str, Any]]:
    """Result rows from record lines: each outcome's rows, and interrupted settings.

    A setting that started and has no outcome after it was interrupted, or, while a run
    holds the folder (``live``), is running.
    """
    rows: list[dict[str, Any]] = []
    open_starts: dict[str, dict[str, Any]] = {}
    for line in lines:
        sid = str(line.get("id"))
        if line.get("event") == "started":
            open_starts[sid] = line
            continue
        if line.get("event") != "outcome":
            continue
        open_starts.pop(sid, None)
        params = dict(line.get("params") or {})
        enc = line.get("enc") or {}
        if fields and set(enc) != set(fields):
            rekeyed = _rekey(enc, params, fields, defaults)
            if rekeyed is None:
                continue  # run with fields the class no longer has: it is not this class's
            sid = rekeyed
        base = {"id": sid, "label": line.get("label"), **params}
        book = {
            "status": line.get("status"),
            "attempt": line.get("attempt"),
            "cause": line.get("cause"),
            "error": line.get("error"),
            "traceback": line.get("traceback"),
            "started": line.get("started"),
            "seconds": line.get("seconds"),
            "worker": line.get("worker"),
            "log": line.get("log"),
            "code_version": line.get("code_version"),
            "git_commit": line.get("git_commit"),
            "git_dirty": line.get("git_dirty"),
        }
        results = line.get("rows") or [{}]
        for result in results:
            row = dict(base)
            for key, val in result.items():
                row[f"result.{key}" if key in base or key in book else key] = val
            row.update(book)
            rows.append(row)
    for sid, start in open_starts.items():
        params = dict(start.get("params") or {})
        enc = start.get("enc") or {}
        if fields and enc and set(enc) != set(fields):
            rekeyed = _rekey(enc, params, fields, defaults)
            if rekeyed is None:
                continue
            sid = rekeyed
        rows.append(
            {
                "id": sid,
                "label": start.get("label"),
                **params,
                "status": "running" if live else "interrupted",
                "attempt": start.get("attempt"),
                "cause": None if live else "interrupted",
                "worker": start.get("worker"),
                "code_version": start.get("code_version"),
                "git_commit": start.get("git_commit"),
                "git_dirty": start.get("git_dirty"),
            }
        )
    return rows


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


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A typed table from rows whose values may differ in type between rows."""
    import polars as pl

    if not rows:
        return pl.DataFrame(schema={"id": pl.String, "status": pl.String, "attempt": pl.Int64})
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    data = {}
    for name in columns:
        data[name] = _series(name, [row.get(name) for row in rows])
    frame = pl.DataFrame(data)
    if "started" in frame.columns and frame.schema["started"].is_numeric():
        started = (pl.col("started") * 1_000_000).cast(pl.Int64)
        frame = frame.with_columns(pl.from_epoch(started, time_unit="us").alias("started"))
    return _typed_code_columns(frame)


def _typed_code_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """The columns saying which code made an outcome, typed even when all null."""
    import polars as pl

    types = {"code_version": pl.String, "git_commit": pl.String, "git_dirty": pl.Boolean}
    return frame.with_columns(
        pl.col(name).cast(dtype) for name, dtype in types.items() if name in frame.columns
    )


_INT64 = (-(2**63), 2**63 - 1)


def _series(name: str, values: list[Any]) -> pl.Series:
    import polars as pl

    kinds = {type(v) for v in values if v is not None}
    if int in kinds and any(type(v) is int and not _INT64[0] <= v <= _INT64[1] for v in values):
        # Past 64 bits polars makes Int128, which pandas and most readers cannot open:
        # such numbers are kept exactly, as text.
        return pl.Series(name, [None if v is None else str(v) for v in values], pl.String)
    if kinds == {int, float}:  # an int in one setting, a float in another: all floats
        return pl.Series(name, values, dtype=pl.Float64, strict=False)
    if kinds <= {int} or kinds <= {float} or kinds <= {bool} or kinds <= {str}:
        return pl.Series(name, values)
    try:
        series = pl.Series(name, values, strict=False)
    except (TypeError, ValueError, pl.exceptions.PolarsError):
        series = None
    if series is None or series.dtype == pl.Object:  # parquet cannot hold Object columns
        return pl.Series(name, [None if v is None else _dumps(v) for v in values], pl.String)
    return series


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    import polars as pl

    kept = [f for f in frames if f.height]
    if len(kept) <= 1:
        return kept[0] if kept else frames[0]
    frames = kept
    try:
        return pl.concat(frames, how="diagonal_relaxed")
    except pl.exceptions.PolarsError:
        # Columns whose types cannot be reconciled (a list here, a number there): as text.
        dtypes: dict[str, set[pl.DataType]] = {}
        for f in frames:
            for name, dtype in f.schema.items():
                if dtype != pl.Null:
                    dtypes.setdefault(name, set()).add(dtype)
        clashing = [name for name, kinds in dtypes.items() if len(kinds) > 1]
        # Numbers against numbers or text reconcile; only the lists need to become text.
        nested = [n for n in clashing if any(k.is_nested() for k in dtypes[n])]
        clashing = nested or clashing
        frames = [f.with_columns(_text(f[c]) for c in clashing if c in f.columns) for f in frames]
        return pl.concat(frames, how="diagonal_relaxed")


def _text(column: pl.Series) -> pl.Series:
    """A column as text: the common ground of types that cannot be reconciled."""
    import polars as pl

    if column.dtype.is_nested() or column.dtype == pl.Object:  # lists cannot be cast
        values = [None if v is None else _dumps(v) for v in column.to_list()]
        return pl.Series(column.name, values, pl.String)
    text: pl.Series = column.cast(pl.String, strict=False)
    return text


def _latest(table: pl.DataFrame) -> pl.DataFrame:
    """Only the rows of each setting's latest outcome (the highest attempt)."""
    import polars as pl

    if table.is_empty():
        return table
    latest = pl.col("attempt").fill_null(0).max().over("id")
    return table.filter(pl.col("attempt").fill_null(0) == latest)


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(str(tmp))
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
