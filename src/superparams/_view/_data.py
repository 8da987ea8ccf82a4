"""What the page shows of one experiment, as data: its rows by column, which columns are
which, and the summary over the declared replicates.

Made from a results table by polars (:func:`payload`), so the page (served live, or
written as a report) only draws: the means, stds and intervals are those of
:func:`superparams._summary.summary`. It reads the store through the reader that takes
no lock (:func:`superparams._store._read.reader`) and writes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

    from superparams._space import Space
    from superparams._store._read import Reader

#: Names that always count a row's step, whatever their values.
STEP_NAMES = ("epoch", "step", "iteration", "iter")
#: The bookkeeping columns the page shows (``started`` as seconds since the epoch).
SHOWN_BOOKKEEPING = (
    "status",
    "attempt",
    "cause",
    "error",
    "traceback",
    "started",
    "seconds",
    "log",
    "stopped",
    "code_version",
    "git_commit",
    "git_dirty",
    "outdated",
)


def read(space: Space[Any]) -> tuple[Reader, pl.DataFrame]:
    """The lock-free reader of ``space``'s store, and the space's rows in it."""
    from superparams._api import select_settings
    from superparams._api import store_of as made
    from superparams._space import setting_ids
    from superparams._store._read import reader

    store = reader(made(space))
    store.check()
    table = store.table()
    if space.enumerable:
        table = select_settings(table, list(setting_ids(space)))
    return store, table


def payload(space: Space[Any], table: pl.DataFrame, *, current_code: str | None) -> dict[str, Any]:
    """The page's data of one experiment: its name, columns by kind, rows, summary.

    Each row, summary row and winner says whether it is ``outdated``: made by another
    version of the code than ``current_code`` (see :mod:`superparams._outdated`).
    """
    from superparams._outdated import mark
    from superparams._summary import DeclaredColumns, is_numeric

    table = mark(table, current_code)
    declared = DeclaredColumns(space)
    found = declared.columns(table.columns)
    candidates = [m for m in found.metrics if is_numeric(table.schema[m])]
    steps = _steps(table, candidates)
    metrics = [m for m in candidates if m not in steps]
    parameters = [c for c in found.parameters if c in table.columns]
    replicates = [c for c in found.replicates if c in table.columns]
    varied = [c for c in found.varied if c in table.columns]
    other = [m for m in found.metrics if m not in candidates]
    keep = [
        "id",
        "label",
        *parameters,
        *replicates,
        *steps,
        *metrics,
        *other,
        *(c for c in SHOWN_BOOKKEEPING if c in table.columns),
    ]
    summary = _summary(space, table, replicates, metrics) if table.height and metrics else {}
    ranked = summary and len(next(iter(summary.values()))) <= BEST_ROWS
    best = _best(space, table, replicates, metrics) if ranked else {}
    settings, series = split(table, keep, [*steps, *metrics], steps)
    return {
        "name": space.experiment_class.__name__,
        "overview": _overview(space),
        "parameters": parameters,
        "varied": varied,
        "replicates": replicates,
        "steps": steps,
        "metrics": metrics,
        "columns": keep,
        "current_code": current_code,
        "settings": settings,
        "series": series,
        "summary": summary,
        "best": best,
        "types": {c: "number" if is_numeric(table.schema[c]) else "text" for c in keep},
    }


#: Significant digits of the values of the rows per step (the curves): what a chart
#: can show, and half the bytes of a float's 17.
SERIES_DIGITS = 7


def split(
    table: pl.DataFrame, keep: list[str], valued: list[str], steps: list[str]
) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """The page's two tables: one row per setting (its last row's bookkeeping, and each
    step and metric's last value), and the rows per step of the settings that have
    several (``setting``: the position of its setting in the first)."""
    import polars as pl

    if not table.height:
        return {c: [] for c in keep}, {"setting": [], **{c: [] for c in valued}}
    settings = table.group_by("id", maintain_order=True).agg(
        *(pl.col(c).last() for c in keep if c != "id" and c not in valued),
        *(pl.col(c).drop_nulls().last() for c in valued),
    )
    settings = settings.select(keep)
    ids = settings["id"].to_list()
    series = table.filter(pl.len().over("id") > 1)
    if steps:
        series = series.filter(pl.any_horizontal(pl.col(s).is_not_null() for s in steps))
    else:
        series = series.clear()
    position = pl.col("id").replace_strict(ids, range(len(ids)), return_dtype=pl.Int64)
    series = series.select(
        position.alias("setting"),
        *(
            pl.col(c).cast(pl.Float64).round_sig_figs(SERIES_DIGITS)
            if table.schema[c].is_float()
            else pl.col(c)
            for c in valued
        ),
    )
    return columnar(settings), columnar(series)


def _overview(space: Space[Any]) -> dict[str, Any] | None:
    """The space's fields: its size, and each field's name, type, values and size."""
    from superparams._experiment import Experiment
    from superparams._overview import overview_rows

    if not isinstance(space, Experiment):
        return None
    title, rows = overview_rows(space)
    return {"title": title, "rows": [list(row) for row in rows]}


def _summary(
    space: Space[Any], table: pl.DataFrame, over: list[str], metrics: list[str]
) -> dict[str, list[Any]]:
    """The summary over ``over`` of each metric, from each setting's last row holding it
    (a metric reported per step is summarised at its last step, not at the row run()
    returned)."""
    import polars as pl

    from superparams._summary import LEFT_OUT, OUTDATED_ROW, STATISTICS, summarise

    frame: pl.DataFrame | None = None
    for metric in metrics:
        made = summarise(space, over, rows=pl.col(metric).is_not_null(), table=table)
        if metric not in made.metrics:
            continue
        names = made.public_names()
        public = made.frame.rename(names)
        own = [names[made.column(metric, s)] for s in STATISTICS]
        if frame is None:
            frame = public.select(*made.keys, *own, names[LEFT_OUT], names[OUTDATED_ROW])
        else:
            frame = frame.with_columns(public.select(own))
    return columnar(frame) if frame is not None else {}


#: Past this many rows of the summary, the page names no winner (each comparison is a
#: paired test, and the view makes them again at every change).
BEST_ROWS = 2000


def _best(
    space: Space[Any], table: pl.DataFrame, over: list[str], metrics: list[str]
) -> dict[str, dict[str, Any]]:
    """For each metric, the summary row with the highest mean and the one with the
    lowest, and whether each is a real winner (:func:`superparams._summary.best`'s
    verdict and ties, over the declared seeds)."""
    import polars as pl

    from superparams._outdated import OUTDATED
    from superparams._summary import best

    out: dict[str, dict[str, Any]] = {}
    for metric in metrics:
        rows = pl.col(metric).is_not_null()
        for mode in ("max", "min"):
            found = best(space, metric, mode, over=over, rows=rows, table=table)
            if found.is_empty() or f"{metric}_verdict" not in found.columns:
                continue
            row = found.row(0, named=True)
            out.setdefault(metric, {})[mode] = {
                "setting": {
                    k: v
                    for k, v in row.items()
                    if k not in ("left_out", OUTDATED)
                    and not _of_metric(k, list(table.columns))
                    and not k.startswith(f"{metric}_")
                },
                "mean": row[f"{metric}_mean"],
                "verdict": row[f"{metric}_verdict"],
                "ties": row[f"{metric}_ties"],
                OUTDATED: row[OUTDATED],
            }
    return out


def _of_metric(column: str, metrics: list[str]) -> bool:
    from superparams._summary import STATISTICS

    return any(column == f"{m}_{s}" for m in metrics for s in STATISTICS)


def _steps(table: pl.DataFrame, candidates: list[str]) -> list[str]:
    """The columns that count a setting's rows: named so, or whole numbers that increase
    within every setting that has two or more of them. They are x axes, never metrics."""
    import polars as pl

    named = [c for c in candidates if c.lower() in STEP_NAMES]
    rest = [c for c in candidates if c not in named and table.schema[c].is_integer()]
    if not rest or not table.height:
        return named
    multi = table.filter(pl.len().over("id") > 1)
    if multi.is_empty():
        return named
    per = multi.group_by("id").agg(
        expression
        for c in rest
        for expression in (
            (pl.col(c).drop_nulls().diff().drop_nulls() > 0).all().alias(c),
            pl.col(c).drop_nulls().len().alias(f"{c}\0n"),
        )
    )
    steps = []
    for c in rest:
        counted = per.filter(pl.col(f"{c}\0n") >= 2)
        if counted.height and counted[c].all():
            steps.append(c)
    return named + steps


def columnar(frame: pl.DataFrame) -> dict[str, list[Any]]:
    """Each column of ``frame`` as a JSON-ready list: times as seconds since the epoch,
    NaN and infinities as null (JSON has neither), anything else not JSON as text."""
    import polars as pl

    exprs = []
    for name, dtype in frame.schema.items():
        column = pl.col(name)
        if dtype.is_temporal():
            exprs.append(column.dt.epoch("ms").cast(pl.Float64) / 1000)
        elif dtype.is_float():
            exprs.append(pl.when(column.is_finite()).then(column).otherwise(None))
        elif dtype.is_numeric() or dtype in (pl.Boolean, pl.String, pl.Null):
            exprs.append(column)
        else:
            exprs.append(column.map_elements(_text, return_dtype=pl.String))
    return {name: series.to_list() for name, series in frame.select(exprs).to_dict().items()}


def _text(value: Any) -> str:
    import json

    return json.dumps(value, default=str)
