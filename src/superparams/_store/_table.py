"""The results table: record rows made a typed polars frame, and the columns' types.

The bookkeeping columns and the parameter columns an annotation fixes (both in
:mod:`superparams._store._columns`) have their types in every table, even an empty one; other
columns are typed by their values. Values that disagree on a type across settings are
stored as text, and said (:data:`Clashes`, :func:`clash_text`). Tables read at
different times (results.parquet, then the record past it) are joined with their types
reconciled (:func:`concat`), keeping each setting's latest outcome (:func:`latest_outcomes`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from superparams._outcome import DIED_IN_PROCESS
from superparams._store._columns import BOOKKEEPING
from superparams._store._layout import LOGS
from superparams._store._record import SEQ, dumps

if TYPE_CHECKING:
    import polars as pl


def lost_outcomes(
    table: pl.DataFrame,
    rows: list[dict[str, Any]],
    fields: tuple[str, ...],
    types: Mapping[str, str],
) -> list[dict[str, Any]]:
    """Record lines for the outcomes ``table`` holds and the record's ``rows`` do not.

    A stored outcome is lost unless the record holds one of the same setting that
    started as late or later (a backup may hold an older one: a failure the table holds
    the completion of). An interrupted setting is lost if the record does not name it.
    The lines carry no encodings: they are ``keyed`` by the fields they were stored for.
    """
    import polars as pl

    held: dict[str, int] = {}  # id -> when its latest recorded outcome started, in µs
    named = set()
    for row in rows:
        named.add(row["id"])
        started = row.get("started")
        if "started" in row and isinstance(started, (int, float)):
            micros = round(started * 1_000_000)
            held[row["id"]] = max(held.get(row["id"], micros), micros)
    if table.is_empty():
        return []
    table = table.with_columns(pl.col("started").dt.epoch("us").alias("started"))
    params = [
        c
        for c in table.columns
        if c in types or c in fields or ("." in c and c.split(".")[0] in fields)
    ]
    skip = {"id", "label", *BOOKKEEPING, *params}
    out: list[dict[str, Any]] = []
    for group in table.partition_by("id", maintain_order=True):
        settings = group.to_dicts()
        first = settings[0]
        sid = first["id"]
        if first["started"] is None:  # interrupted: stored from its started line
            if sid in named:
                continue
            line: dict[str, Any] = {"event": "started", "id": sid}
            if first["error"] == DIED_IN_PROCESS:  # its process died with it
                line["in_process"] = True
            if first["status"] == "queued":  # its engine finds its job again by name
                line = {"event": "queued", "id": sid, "job": "restored"}
        else:
            if held.get(sid, -1) >= first["started"]:
                continue
            line = {"event": "outcome", "id": sid, "status": first["status"]}
        line["attempt"] = first["attempt"] or 1
        if first["started"] is not None:  # an outcome
            line["started"] = first["started"] / 1_000_000
            line["rows"] = [
                {k: v for k, v in r.items() if k not in skip and v is not None} for r in settings
            ]
            for name in ("seconds", "log", "workdir", "stopped", "cause", "error", "traceback"):
                line[name] = first[name]
        line["worker"] = first["worker"]
        line["label"] = first["label"]
        line["params"] = {c: first[c] for c in params}
        line["keyed"] = list(fields)
        for name in ("code_version", "git_commit", "git_dirty", "environment"):
            line[name] = first[name]
        out.append(line)
    return out


#: Columns stored as text because their settings disagree on the type: column -> kind of
#: value ("numbers", "text", ...) -> [id, label] of the first setting found holding it.
Clashes = dict[str, dict[str, list[str]]]


_IDENTITY = {"id": "String", "label": "String"}  # the columns every table starts with


# What a column holds, by the Python type of its values (as read back from JSON).
_KINDS = {int: "numbers", float: "numbers", bool: "booleans", str: "text", list: "lists"}


_KIND_ORDER = ("numbers", "booleans", "text", "lists", "mappings")


# The Python types of values a typed column takes as they are.
_FITS: dict[str, set[type]] = {
    "Int64": {int},
    "Float64": {int, float},
    "Boolean": {bool},
    "String": {str},
}


def _dtype(name: str) -> pl.DataType:
    """The polars type a type name of :data:`BOOKKEEPING` or of ``column_types`` means."""
    import polars as pl

    if name.startswith("List("):
        return pl.List(_dtype(name[5:-1]))
    if name == "Datetime(us, UTC)":
        return pl.Datetime("us", "UTC")
    dtype: pl.DataType = getattr(pl, name)()
    return dtype


def make_frame(
    rows: list[dict[str, Any]],
    types: Mapping[str, str] | None = None,
    clashes: Clashes | None = None,
) -> pl.DataFrame:
    """A typed table from rows whose values may differ in type between rows.

    The bookkeeping columns and the parameter columns in ``types`` have their fixed
    types (a parameter's values that do not fit it are typed as they fall); the rest
    are typed by their values. Columns stored as text because their values disagree
    are added to ``clashes``.
    """
    import polars as pl

    types = types or {}
    columns: dict[str, None] = {"id": None, "label": None}
    for row in rows:
        columns.update(dict.fromkeys(row))
    columns.update(dict.fromkeys(types))
    for name in _nested(types):  # a nested experiment's class, in records made before
        columns.pop(name, None)
    for name in BOOKKEEPING:  # last, in their order
        columns.pop(name, None)
        columns[name] = None
    data = []
    for name in columns:
        values = [row.get(name) for row in rows]
        fixed = BOOKKEEPING.get(name) or _IDENTITY.get(name) or types.get(name)
        series = None if fixed is None else _typed(name, values, fixed)
        if series is None:
            series, kinds = _series(name, values)
            if len(kinds) > 1 and clashes is not None:
                found = clashes.setdefault(name, {})
                for kind, at in kinds.items():
                    found.setdefault(kind, [str(rows[at].get("id")), rows[at].get("label") or ""])
        data.append(series)
    return pl.DataFrame(data)


def _nested(types: Mapping[str, str]) -> set[str]:
    """The names of nested experiments among the columns ``types`` gives: ``model``."""
    out: set[str] = set()
    for name in types:
        parts = name.split(".")[:-1]
        out.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return out - set(types)


def _typed(name: str, values: list[Any], dtype_name: str) -> pl.Series | None:
    """A column of a fixed type, or None for a parameter whose values do not fit it."""
    import polars as pl

    dtype = _dtype(dtype_name)
    if values.count(None) == len(values):  # a column of nulls (most bookkeeping): no buffers
        return pl.Series(name, dtype=dtype).clear(len(values))
    if name == "started" and name in BOOKKEEPING:  # seconds since the epoch, UTC
        seconds = pl.Series(name, values, pl.Float64, strict=False)
        micros = (seconds * 1_000_000).cast(pl.Int64)
        started: pl.Series = pl.from_epoch(micros, time_unit="us").dt.replace_time_zone("UTC")
        return started
    if name in BOOKKEEPING or name in _IDENTITY:  # written by the store itself
        return pl.Series(name, values, dtype, strict=False)
    kinds = {type(v) for v in values if v is not None}
    fits = _FITS.get(dtype_name)
    if fits is not None and kinds <= fits:
        if not (int in kinds and dtype_name == "Int64" and not _all_int64(values)):
            return pl.Series(name, values, dtype)
    elif fits is None and kinds <= {list}:  # a list type: its items are checked by polars
        inner = _FITS.get(dtype_name[5:-1], set())
        if all(type(v) in inner for x in values if x for v in x):
            with contextlib.suppress(TypeError, ValueError, pl.exceptions.PolarsError):
                return pl.Series(name, values, dtype)
    return None


_INT64 = (-(2**63), 2**63 - 1)


def _all_int64(values: list[Any]) -> bool:
    return all(type(v) is not int or _INT64[0] <= v <= _INT64[1] for v in values)


def _series(name: str, values: list[Any]) -> tuple[pl.Series, dict[str, int]]:
    """A column typed by its values, and where each kind of value is first met in it.

    Ints and floats make floats; values of other kinds together (numbers and text, say)
    make text, and more than one kind comes back.
    """
    import polars as pl

    types = {type(v) for v in values if v is not None}
    kinds: dict[str, int] = {}
    if len({_KINDS.get(t, t.__name__) for t in types}) > 1:
        for at, v in enumerate(values):
            if v is not None:
                kinds.setdefault(_KINDS.get(type(v), type(v).__name__), at)
        text = [v if v is None or type(v) is str else dumps(v) for v in values]
        return pl.Series(name, text, pl.String), kinds
    if int in types and not _all_int64(values):
        # Past 64 bits polars makes Int128, which pandas and most readers cannot open:
        # such numbers are kept exactly, as text.
        return pl.Series(name, [None if v is None else str(v) for v in values], pl.String), kinds
    if types == {int, float}:  # an int in one setting, a float in another: all floats
        return pl.Series(name, values, dtype=pl.Float64, strict=False), kinds
    if types <= {int} or types <= {float} or types <= {bool} or types <= {str}:
        return pl.Series(name, values), kinds
    try:
        series = pl.Series(name, values, strict=False)
    except (TypeError, ValueError, pl.exceptions.PolarsError):
        series = None
    if series is None or series.dtype == pl.Object:  # parquet cannot hold Object columns
        return pl.Series(name, [None if v is None else dumps(v) for v in values], pl.String), kinds
    return series, kinds


def _kind(dtype: pl.DataType) -> str:
    """What a column of this type holds, in the words of :data:`_KINDS`."""
    import polars as pl

    if dtype == pl.Boolean:
        return "booleans"
    if dtype.is_numeric():
        return "numbers"
    if dtype == pl.String:
        return "text"
    if isinstance(dtype, (pl.List, pl.Array)):
        return "lists"
    if isinstance(dtype, pl.Struct):
        return "mappings"
    return str(dtype)


def concat(frames: list[pl.DataFrame], clashes: Clashes | None = None) -> pl.DataFrame:
    """Tables one after the other, their columns' types reconciled, bookkeeping last.

    Numbers widen to floats; a column holding different kinds of values in different
    tables becomes text, and is added to ``clashes``.
    """
    import polars as pl

    kept = [f for f in frames if f.height]
    if len(kept) <= 1:
        return kept[0] if kept else frames[0]
    frames = kept
    dtypes: dict[str, set[pl.DataType]] = {}
    for f in frames:
        for name, dtype in f.schema.items():
            if f[name].null_count() < f.height:  # a column of nulls holds no kind of value
                dtypes.setdefault(name, set()).add(dtype)
    mixed = [n for n, ds in dtypes.items() if len({_kind(d) for d in ds}) > 1]
    if mixed:
        clashes = {} if clashes is None else clashes
        for name in mixed:
            found = clashes.setdefault(name, {})
            for f in frames:
                if name not in f.columns or f[name].null_count() == f.height:
                    continue
                if f.schema[name] == pl.String and len(found) > 1:
                    continue  # text already, from a clash found before
                first = f.filter(pl.col(name).is_not_null()).row(0, named=True)
                found.setdefault(_kind(f.schema[name]), [first["id"], first.get("label") or ""])
        frames = [f.with_columns(_text(f[c]) for c in mixed if c in f.columns) for f in frames]
    try:
        table = pl.concat(frames, how="diagonal_relaxed")
    except pl.exceptions.PolarsError:
        # Lists whose items cannot be reconciled (ints here, text there): as text.
        every: dict[str, set[pl.DataType]] = {}
        for f in frames:
            for name, dtype in f.schema.items():
                every.setdefault(name, set()).add(dtype)
        nested = [n for n, ds in every.items() if len(ds) > 1 and any(d.is_nested() for d in ds)]
        frames = [f.with_columns(_text(f[c]) for c in nested if c in f.columns) for f in frames]
        table = pl.concat(frames, how="diagonal_relaxed")
    book = [c for c in BOOKKEEPING if c in table.columns]
    return table.select(*(c for c in table.columns if c not in BOOKKEEPING), *book)


def _text(column: pl.Series) -> pl.Series:
    """A column as text: the common ground of types that cannot be reconciled."""
    import polars as pl

    if column.dtype == pl.String:
        return column
    if column.dtype.is_nested() or column.dtype == pl.Object:  # lists cannot be cast
        values = [None if v is None else dumps(v) for v in column.to_list()]
        return pl.Series(column.name, values, pl.String)
    if column.dtype == pl.Boolean:  # as JSON writes them, like a clash within one table
        words: pl.Series = column.replace_strict(
            {True: "true", False: "false"}, return_dtype=pl.String
        )
        return words
    text: pl.Series = column.cast(pl.String, strict=False)
    return text


def conform_table(table: pl.DataFrame, types: Mapping[str, str]) -> pl.DataFrame:
    """A stored table in today's types: results.parquet made by an earlier version may
    lack a type (null columns), hold naive times, absolute log paths, or a nested
    experiment's class name."""
    import polars as pl

    schema = table.schema
    fixes = []
    for name, dtype_name in (*BOOKKEEPING.items(), *types.items()):
        if name not in schema:
            if name in BOOKKEEPING:
                fixes.append(pl.lit(None, _dtype(dtype_name)).alias(name))
        elif schema[name] == pl.Null:
            fixes.append(pl.col(name).cast(_dtype(dtype_name)))
    if "started" in schema and schema["started"] == pl.Datetime("us"):
        fixes.append(pl.col("started").dt.replace_time_zone("UTC"))
    if "log" in schema and schema["log"] == pl.String:
        log = table["log"]
        if log.str.starts_with(os.sep).any() or (log == "").any():
            fixes.append(
                pl.when(pl.col("log") == "")
                .then(None)
                .otherwise(pl.col("log").str.replace(r"^.*/", f"{LOGS}/"))
                .alias("log")
            )
    drop = [n for n in _nested(types) if n in schema]
    if not fixes and not drop:
        return table
    table = table.drop(drop).with_columns(fixes)
    book = [c for c in BOOKKEEPING if c in table.columns]
    return table.select(*(c for c in table.columns if c not in BOOKKEEPING), *book)


def clash_text(name: str, kinds: Mapping[str, str]) -> str:
    """What a user reads about a column stored as text because its settings disagree."""
    order = sorted(kinds, key=lambda k: _KIND_ORDER.index(k) if k in _KIND_ORDER else 99)
    if len(order) == 2:
        what = f"both {order[0]} and {order[1]}"
    else:
        what = f"{', '.join(order[:-1])} and {order[-1]}"
    settings = ", ".join(kinds[k] for k in order)
    return f"column {name!r} holds {what} (settings {settings}); it is stored as text"


def latest_outcomes(table: pl.DataFrame) -> pl.DataFrame:
    """Only the rows of each setting's latest outcome: the last recorded, per id.

    Rows without a record line come from results.parquet, which holds one outcome per
    setting from before the lines read; so they are older than any line.
    """
    return split_outcomes(table, older=False)[0]


def split_outcomes(
    table: pl.DataFrame, *, older: bool = True
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """:func:`latest_outcomes`, and (if ``older``) the rows it drops: each setting's
    outcomes that a later one replaced, in the order recorded (None when it drops none).
    A setting waiting in an engine's queue has no outcome yet: its row is dropped, not
    kept."""
    import polars as pl

    if SEQ not in table.columns:
        return table, None  # results.parquet alone: one outcome per setting already
    if table.is_empty():
        return table.drop(SEQ), None
    seq = table[SEQ]
    # Each line is one setting's: as many lines as settings is one of each, as a run that
    # retried nothing leaves, and nothing to drop (no copy of every column).
    if seq.null_count() == 0 and seq.n_unique() == table["id"].n_unique():
        return table.drop(SEQ), None
    line = pl.col(SEQ).fill_null(-1)
    if not older:
        return table.filter(line == line.max().over("id")).drop(SEQ), None
    latest = table.select(line == line.max().over("id")).to_series()
    kept = table.filter(latest).drop(SEQ)
    if kept.height == table.height:
        return kept, None
    replaced = table.filter(~latest & (pl.col("status") != "queued").fill_null(True))
    return kept, replaced.drop(SEQ) if replaced.height else None


#: What tells one stored outcome from another of the same setting: a history row is
#: kept once however often the record it comes from is read.
OUTCOME_KEY = ("id", "started", "attempt", "status", "code_version")


def kept_once(history: pl.DataFrame | None, new: pl.DataFrame) -> pl.DataFrame:
    """``history`` with the outcomes of ``new`` it does not hold yet (by
    :data:`OUTCOME_KEY`) after its own, types reconciled."""
    if history is None or history.is_empty():
        return new
    held = history.select(OUTCOME_KEY).unique()
    fresh = new.join(held, on=list(OUTCOME_KEY), how="anti", nulls_equal=True)
    return concat([history, fresh]) if fresh.height else history
