"""``experiment results EXPERIMENT``: the results table, sorted, shown or exported."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superparams._cli._find import shown
from superparams._cli._shared import (
    columns_of,
    none_stored,
    only_one,
    print_results,
    results_of,
    say,
    say_outdated,
    write_json,
)
from superparams._cli._table import cell, table
from superparams._declared import declared
from superparams._versions import SUPERSEDED
from superparams.errors import UsageError, did_you_mean

if TYPE_CHECKING:
    import polars as pl

    from superparams._cli._find import Found
    from superparams._cli._requests import ResultsRequest
    from superparams._space import Space
    from superparams._summary import Summarised


def results(found: Found, spaces: list[Space[Any]], request: ResultsRequest, prog: str) -> None:
    if request.csv or request.json or request.parquet:
        only_one(found, spaces, "export")
    for space in spaces:
        _results_one(found, space, request, prog, several=len(spaces) > 1)


def _results_one(
    found: Found, space: Space[Any], request: ResultsRequest, prog: str, *, several: bool
) -> None:
    if request.parquet:
        _check_export(Path(request.parquet), force=bool(request.force))
    if request.over is not None:
        _summary_one(found, space, request, prog, several=several)
        return
    frame = results_of(space, request.code_version)
    cls = space.experiment_class
    if request.last and "id" in frame.columns:
        frame = frame.group_by("id", maintain_order=True).last()
    if request.where is not None:
        frame = where(frame, request.where)
    sort = request.sort
    if sort:
        frame = _sorted(frame, sort, desc=bool(request.desc), choices=frame.columns)
    chosen = None
    marked = frame  # each row's outdated mark, whichever columns are shown
    if request.columns is not None:
        varying = [c for c in columns_of(frame, cls) if c in _parameters(cls)]
        chosen = _chosen(varying, request.columns, frame.columns, list(frame.columns))
        frame = frame.select(chosen)
    _write(frame, found, space, request, prog, several=several, columns=chosen, sort=sort)
    if not (request.parquet or request.csv or request.json):
        if SUPERSEDED in marked.columns:  # a setting's replaced outcomes are not its own
            marked = marked.filter(~marked[SUPERSEDED])
        say_outdated(marked, space, prog, found)


def _write(
    frame: pl.DataFrame,
    found: Found,
    space: Space[Any],
    request: ResultsRequest,
    prog: str,
    *,
    several: bool,
    columns: list[str] | None,
    sort: str | None,
) -> None:
    cls = space.experiment_class
    if request.parquet:
        path = Path(request.parquet)
        if request.force:
            frame.write_parquet(path)
        else:
            try:  # made new, so a file that appeared since is not overwritten either
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            except FileExistsError:
                _check_export(path, force=False)
                raise
            with os.fdopen(fd, "wb") as f:
                frame.write_parquet(f)
        say(f"wrote {frame.height} rows to {shown(path)}")
        return
    if request.csv:
        sys.stdout.write(_flat(frame).write_csv())
        return
    if request.json:
        over = list(request.over) if request.over is not None else None
        body = {"experiment": cls.__name__, "over": over}
        write_json("results", body, frame)
        return
    if several:
        sys.stdout.write(f"{cls.__name__}:\n")
    if frame.is_empty():
        say(none_stored(space, prog, found))
        return
    if columns is None:
        columns = columns_of(frame, cls)
        column = sort.removeprefix("-") if sort and sort not in frame.columns else sort
        if column and column not in columns:
            columns = [column, *columns]
    print_results(space, frame, None, prog, found, columns)


def _sorted(
    frame: pl.DataFrame,
    sort: str,
    *,
    desc: bool,
    choices: list[str],
    as_: dict[str, str] | None = None,
) -> pl.DataFrame:
    """``frame`` sorted by ``--sort``'s column (``-name``: largest first, as ``--desc``);
    ``as_`` names the column that a name of ``choices`` sorts by, where it is another."""
    as_ = as_ or {}
    known = {*frame.columns, *as_}
    name = sort if sort in known else sort.removeprefix("-")
    if name not in known:
        msg = f"--sort: no column {name!r}{did_you_mean(name, choices)}; columns: "
        raise UsageError(msg + ", ".join(choices))
    descending = desc or sort.startswith("-")
    return frame.sort(
        as_.get(name, name), descending=descending, nulls_last=True, maintain_order=True
    )


def _parameters(cls: type[Any]) -> set[str]:
    info = declared(cls)
    return set(info.fields) | {n for n, _ in info.derived}


def _chosen(
    first: list[str], names: tuple[str, ...], known: list[str], listed: list[str]
) -> list[str]:
    """The columns ``--columns`` names, after ``first``, each checked to exist."""
    for name in names:
        if name not in known:
            msg = (
                f"--columns: no column {name!r}{did_you_mean(name, known)}; "
                f"columns: {', '.join(listed)}"
            )
            raise UsageError(msg)
    return list(dict.fromkeys([*first, *names]))


def where(frame: pl.DataFrame, text: str) -> pl.DataFrame:
    """The rows of ``frame`` an SQL condition (``acc > 0.9 AND lr < 0.1``) holds for.

    The text is parsed by polars' SQL parser into an expression, never run as Python.

    Raises:
        UsageError: the text is no condition, or names no column of the table.
    """
    import polars as pl

    columns = [c for c in frame.columns if not c.startswith("_sp_")]
    try:
        condition = pl.sql_expr(text)
        kept = frame.filter(condition)
    except pl.exceptions.ColumnNotFoundError as error:
        name = _missing_column(str(error))
        hint = did_you_mean(name, columns) if name else ""
        msg = (
            f"--where {text!r}: no column {name!r}{hint}; columns: {', '.join(columns)}"
            if name
            else f"--where {text!r} names no column of the table; columns: {', '.join(columns)}"
        )
        raise UsageError(msg) from None
    except (pl.exceptions.PolarsError, ValueError, TypeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        msg = (
            f"--where {text!r} is not a condition on the table's columns ({first}); "
            "write one such as 'acc > 0.9' or 'lr = 0.01 AND acc >= 0.8' (quote a column "
            'name with a dot or a space: "model.width" > 8)'
        )
        raise UsageError(msg) from None
    return kept


def _missing_column(message: str) -> str:
    import re

    found = re.search(r'unable to find column "([^"]*)"', message) or re.search(
        r"^([^\s:]+)", message.strip()
    )
    return found.group(1) if found else ""


def _summary_one(
    found: Found, space: Space[Any], request: ResultsRequest, prog: str, *, several: bool
) -> None:
    """``--over seed``: one row per setting of the other fields, mean ± std of each metric."""
    import polars as pl

    from superparams._outdated import OUTDATED
    from superparams._summary import LEFT_OUT, OUTDATED_ROW, STATISTICS, summarise

    summarised = summarise(space, list(request.over or ()))
    frame, keys, metrics = summarised.frame, list(summarised.keys), list(summarised.metrics)
    column = summarised.column
    if request.where is not None:
        # a metric's name stands for its mean; <metric>_std, _sem, _n are there too
        named = {m: column(m, "mean") for m in metrics}
        for m in metrics:
            named.update({f"{m}_{s}": column(m, s) for s in STATISTICS if f"{m}_{s}" not in keys})
        named.setdefault("left_out", LEFT_OUT)
        named.setdefault(OUTDATED, OUTDATED_ROW)
        view = frame.with_columns(pl.col(c).alias(n) for n, c in named.items() if n not in keys)
        view = view.with_row_index("_sp_row")
        rows = where(view, request.where)["_sp_row"]
        frame = frame.with_row_index("_sp_row").filter(pl.col("_sp_row").is_in(rows.implode()))
        frame = frame.drop("_sp_row")
    if request.sort:
        means = {m: column(m, "mean") for m in metrics}  # a metric sorts by its mean
        choices = [*keys, *metrics]
        frame = _sorted(frame, request.sort, desc=bool(request.desc), choices=choices, as_=means)
    shown = metrics
    if request.columns is not None:
        picked = _chosen([], request.columns, [*keys, *metrics], [*keys, *metrics])
        shown = [c for c in picked if c in metrics]
        keys = list(dict.fromkeys([*keys, *(c for c in picked if c in keys)]))
        chosen = [column(m, s) for m in shown for s in STATISTICS]
        frame = frame.select(*keys, *chosen, LEFT_OUT, OUTDATED_ROW)
    if request.parquet or request.csv or request.json:
        public = summarised.with_frame(frame).public()
        _write(public, found, space, request, prog, several=several, columns=None, sort=None)
        return
    if request.format is not None:
        from superparams._cli._paper import Row, paper_table

        sort = request.sort or ""
        lowest = {sort} if sort and not request.desc and not sort.startswith("-") else set()
        lines: list[Row] = []
        for row in frame.iter_rows(named=True):
            stats = [
                (row[column(m, "mean")], row[column(m, "std")], row[column(m, "n")]) for m in shown
            ]
            lines.append(([cell(row[k], k) for k in keys], stats))
        marked = [i for i, old in enumerate(frame[OUTDATED_ROW].to_list()) if old]
        text = paper_table(request.format, keys, shown, lines, lowest=lowest, marked=marked)
        sys.stdout.write(text)
        say_outdated(frame.select(pl.col(OUTDATED_ROW).alias(OUTDATED)), space, prog, found)
        return
    if several:
        sys.stdout.write(f"{space.experiment_class.__name__}:\n")
    if frame.is_empty():
        say(none_stored(space, prog, found))
        return
    headers = [*keys, *shown]
    left_out = frame[LEFT_OUT].sum() > 0
    if left_out:
        headers.append("left_out")
    outdated = bool(frame[OUTDATED_ROW].any())
    if outdated:
        headers.append(OUTDATED)
    cells = []
    for row in frame.iter_rows(named=True):
        line = [cell(row[k], k) for k in keys]
        line += [
            mean_std(row[column(m, "mean")], row[column(m, "std")], row[column(m, "n")])
            for m in shown
        ]
        if left_out:
            line.append(str(row[LEFT_OUT]))
        if outdated:
            line.append(cell(row[OUTDATED_ROW], OUTDATED))
        cells.append(line)
    table(headers, cells, sys.stdout)
    ranked_by = (request.sort or "").removeprefix("-")
    if ranked_by in metrics and request.where is None and frame.height > 1:
        descending = bool(request.desc) or (request.sort or "").startswith("-")
        sys.stdout.write(_judged(summarised, ranked_by, descending=descending) + "\n")
    say_outdated(frame.select(pl.col(OUTDATED_ROW).alias(OUTDATED)), space, prog, found)


def _judged(summarised: Summarised, metric: str, *, descending: bool) -> str:
    """What the first row of a summary sorted by ``metric`` is: a clear winner, a tie, or
    a claim the seeds cannot back."""
    import polars as pl

    from superparams._summary import OUTDATED_ROW, judge

    mean = summarised.column(metric, "mean")
    ranked = summarised.frame.filter(pl.col(mean).is_not_null() & pl.col(mean).is_not_nan())
    ranked = ranked.sort(mean, descending=descending, maintain_order=True)
    verdict, ties = judge(summarised, ranked, metric, alpha=0.05)
    row = ranked.row(0, named=True)
    label = ",".join(f"{k}={cell(row[k], k)}" for k in summarised.keys) or "defaults"
    if row.get(OUTDATED_ROW):
        label += " (outdated: made by an earlier version of the code)"
    how = "paired t-tests over the shared seeds, Holm-corrected, 95%"
    if verdict == "clear":
        return f"best {metric}: {label}, ahead of every other row ({how})"
    if verdict == "tie":
        return f"best {metric}: {label}, a tie with {'; '.join(ties)} ({how})"
    return (
        f"best {metric}: {label} on the mean, but too few shared seeds to tell it from the "
        "others (a comparison needs 2)"
    )


def mean_std(mean: float | None, std: float | None, n: int) -> str:
    """A summary's cell: ``0.9889 ± 0.0038 (n=3)``; the std is left out when n < 2.

    >>> mean_std(0.98891, 0.00382, 3)
    '0.9889 ± 0.0038 (n=3)'
    >>> mean_std(12.0, None, 1)
    '12 (n=1)'
    """
    if mean is None or n == 0:
        return "(n=0)"
    if std is None or std != std:
        return f"{mean:.4g} (n={n})"
    return f"{mean:.4g} ± {std:.2g} (n={n})"


def _check_export(path: Path, *, force: bool) -> None:
    """Refuse an export that would replace a file unasked, or that has no folder to go in.

    Raises:
        UsageError: before anything is written.
    """
    folder = path.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        msg = (
            f"--parquet {str(path)!r}: {str(folder)!r} {what}; make the folder, or give "
            "another path"
        )
        raise UsageError(msg)
    if path.is_dir():
        msg = f"--parquet {str(path)!r} is a folder; give the path of a file in it"
        raise UsageError(msg)
    if not force and (path.exists() or path.is_symlink()):
        msg = f"--parquet {str(path)!r} exists; add --force to replace it, or give another path"
        raise UsageError(msg)


def _flat(frame: pl.DataFrame) -> pl.DataFrame:
    """The table with nested columns (lists, structs) as JSON text, which CSV can hold."""
    import json

    import polars as pl

    nested = [name for name, dtype in frame.schema.items() if dtype.is_nested()]
    return frame.with_columns(
        pl.Series(name, [None if v is None else json.dumps(v) for v in frame[name].to_list()])
        for name in nested
    )
