"""After the run: which columns of the results are which, and summaries over seeds.

This room reads: a space's declaration (its parameters, which of them vary, which are
replicates made by :func:`~superparams.seeds`) and the results the store gives for it.
It writes nothing and runs nothing. It is imported only when used, and imports polars
only inside its functions, so ``import superparams`` stays light.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from superparams._declared import declared
from superparams._fields import annotation_type, unoptional
from superparams._outdated import OUTDATED, any_outdated, mark
from superparams.errors import UsageError, did_you_mean

if TYPE_CHECKING:
    import polars as pl

    from superparams._experiment import Experiment
    from superparams._space import Space

#: How ``summary(rows=...)`` reduces the rows of one setting, besides an expression.
REDUCERS = ("last", "first", "max", "min", "mean")


@dataclass(frozen=True)
class Columns:
    """The columns of a space's results, by what they hold; each column is in one group.

    Attributes:
        parameters: the parameter columns (a nested experiment's are dotted,
            ``model.width``; derived fields are parameters too), replicates excepted.
        varied: the parameters that take more than one value in the space.
        replicates: the fields declared with :func:`~superparams.seeds` (or overridden
            with it): repeats of one setting, to summarise over.
        metrics: what ``run()`` returned, in the order of the results.
        bookkeeping: ``id``, ``label``, the columns the store adds to every row, and
            ``outdated`` (worked out when read).
    """

    parameters: tuple[str, ...]
    varied: tuple[str, ...]
    replicates: tuple[str, ...]
    metrics: tuple[str, ...]
    bookkeeping: tuple[str, ...]


def columns(space: Space[Any], results: pl.DataFrame | None = None) -> Columns:
    """Which columns of ``space``'s results are parameters, metrics, replicates, bookkeeping.

    ``results`` is the space's results table (``space.results()`` when not given), from
    which the metrics are known.

    >>> import tempfile
    >>> from superparams import Experiment, columns, search, seeds
    >>> class Train(Experiment):
    ...     lr: float = search(0.1, 0.01)
    ...     steps: int = 100
    ...     seed: int = seeds(3)
    ...
    ...     def run(self) -> dict:
    ...         return {"acc": 1 - self.lr}
    >>> space = Train()
    >>> found = columns(space, space.run_all(folder=tempfile.mkdtemp(), display=False))
    >>> found.parameters, found.varied, found.replicates, found.metrics
    (('lr', 'steps'), ('lr',), ('seed',), ('acc',))
    >>> found.bookkeeping[:4]
    ('id', 'label', 'status', 'attempt')
    """
    if results is None:
        results = space.results()
    return DeclaredColumns(space).columns(results.columns)


class DeclaredColumns:
    """What a space declares about its columns: parameters, derived, varied, replicates."""

    def __init__(self, space: Space[Any]) -> None:
        self.name = space.experiment_class.__name__
        cls = space.experiment_class
        info = declared(cls)
        self.fields = info.fields
        self.parameters = _parameter_columns(cls)  # declaration order, derived included
        self.derived = set(_parameter_columns(cls, derived_only=True))
        from superparams._experiment import space_layout

        parts = list(_experiments(space))
        self.replicates = tuple(
            name
            for name in info.fields
            if _is_replicate(info.defaults.get(name))
            or any(_is_replicate(part.__dict__.get(name)) for part in parts)
        )
        varied: set[str] = set()
        seen: dict[str, set[str]] = {}
        for part in parts:
            layout = space_layout(part)
            for name, value in layout.fixed.items():
                for column, encoding in _flat(name, value):
                    seen.setdefault(column, set()).add(encoding)
            for axis in layout.axes:
                for name, dim in zip(axis.names, axis.dims, strict=True):
                    if dim.expands() and dim.enumerable:  # nested experiments: which differ
                        for j in range(dim.size()):
                            for column, encoding in _flat(name, dim.get(j)):
                                seen.setdefault(column, set()).add(encoding)
                    else:
                        varied.add(name)
        varied |= {column for column, found in seen.items() if len(found) > 1}
        self.varied = varied

    def is_varied(self, column: str) -> bool:
        """Whether a parameter column varies: itself, or the nested field it is part of."""
        if column in self.derived:
            return False
        parts = column.split(".")
        return any(".".join(parts[:k]) in self.varied for k in range(1, len(parts) + 1))

    def columns(self, present: Sequence[str]) -> Columns:
        from superparams._store._columns import BOOKKEEPING, COMPUTED

        # outdated is on every table read; the others only on those that asked for them
        computed = (c for c in COMPUTED if c == OUTDATED or c in present)
        book = ("id", "label", *BOOKKEEPING, *computed)
        parameters: list[str] = []
        for c in self.parameters:
            if c in self.replicates:
                continue
            # A field annotated with no experiment class may still hold one: dotted columns.
            dotted = [p for p in present if p.startswith(f"{c}.") and p not in self.parameters]
            parameters.extend(dotted if c in self.fields and dotted else [c])
        taken = {*parameters, *self.replicates, *book}
        return Columns(
            parameters=tuple(parameters),
            varied=tuple(c for c in parameters if self.is_varied(c)),
            replicates=self.replicates,
            metrics=tuple(c for c in present if c not in taken),
            bookkeeping=book,
        )


def _parameter_columns(
    cls: type[Experiment], prefix: str = "", *, derived_only: bool = False
) -> list[str]:
    """The parameter columns of a class: a nested experiment's fields are dotted."""
    from superparams._experiment import Experiment

    info = declared(cls)
    derived = [n for n, _ in info.derived]
    out: list[str] = []
    for name in (*info.fields, *derived):
        annotation = unoptional(info.annotations.get(name))
        if isinstance(annotation, type) and issubclass(annotation, Experiment):
            inner = _parameter_columns(annotation, f"{prefix}{name}.", derived_only=derived_only)
            out.extend(inner)
        elif not derived_only or name in derived:
            out.append(f"{prefix}{name}")
    return out


def column_types(cls: type[Experiment], prefix: str = "") -> dict[str, str]:
    """The polars type of each parameter column of an experiment class, by annotation.

    A nested experiment gives its fields' dotted columns (``model.width``). A field
    whose annotation fixes no type (``Any``, a union, a class of the user's) is left
    out: its column is typed by its values.
    """
    from superparams._experiment import Experiment

    info = declared(cls)
    out: dict[str, str] = {}
    for name in (*info.fields, *(n for n, _ in info.derived)):
        annotation = unoptional(info.annotations.get(name))
        if isinstance(annotation, type) and issubclass(annotation, Experiment):
            out.update(column_types(annotation, f"{prefix}{name}."))
            continue
        dtype = annotation_type(annotation)
        if dtype is not None:
            out[f"{prefix}{name}"] = dtype
    return out


def _experiments(space: Space[Any]) -> Iterator[Experiment]:
    """The experiment instances a space is made of: itself, a union's parts, a sample's source."""
    from superparams._experiment import Experiment
    from superparams._space import Sample, Union

    if isinstance(space, Experiment):
        yield space
    elif isinstance(space, Union):
        for part in space.parts:
            yield from _experiments(part)
    elif isinstance(space, Sample):
        yield from _experiments(space.source)


def _is_replicate(value: Any) -> bool:
    from superparams._space import Grid

    return isinstance(value, Grid) and value.replicate


def _flat(name: str, value: Any) -> Iterator[tuple[str, str]]:
    """Each column a field's value fills, with the value's encoding to compare it by."""
    from superparams._experiment import Experiment
    from superparams._identity import encode

    if isinstance(value, Experiment):
        for field in declared(type(value)).fields:
            yield from _flat(f"{name}.{field}", value.__dict__[field])
    else:
        yield name, encode(value, name)


# -- summaries -----------------------------------------------------------------------


def summary(
    space: Space[Any],
    over: str | Sequence[str] | None = None,
    *,
    rows: str | pl.Expr = "last",
    folder: Path | str | None = None,
    level: float = 0.95,
) -> pl.DataFrame:
    """Each metric's mean, std, sem, n and t-interval over replicates, one row per other
    setting.

    See :meth:`superparams.Space.summary`. A statistic's name (``acc_mean``, ``left_out``)
    that a parameter column already has gets an underscore after it (``left_out_``).

    >>> import tempfile
    >>> from superparams import Experiment, search, seeds
    >>> class Train(Experiment):
    ...     lr: float = search(0.1, 0.01)
    ...     seed: int = seeds(3)
    ...
    ...     def run(self) -> dict:
    ...         return {"acc": 1 - self.lr + self.seed / 100}
    >>> folder = tempfile.mkdtemp()
    >>> _ = Train().run_all(folder=folder, display=False)
    >>> Train().summary(folder=folder).select("lr", "acc_mean", "acc_n").rows()
    [(0.1, 0.91, 3), (0.01, 1.0, 3)]
    >>> row = Train().summary(folder=folder).row(0, named=True)
    >>> round(row["acc_ci_low"], 4), round(row["acc_ci_high"], 4), row["left_out"], row["outdated"]
    (0.8852, 0.9348, 0, False)
    """
    return summarise(space, over, rows=rows, folder=folder, level=level).public()


#: What :func:`summary` gives each metric, as ``<metric>_<statistic>`` columns: the mean,
#: the sample std, the standard error, the count, and the ends of the mean's t-interval.
STATISTICS = ("mean", "std", "sem", "n", "ci_low", "ci_high")
#: The column of :class:`Summarised` counting the settings of a row that did not complete.
LEFT_OUT = "_sp_left_out"
#: The column of :class:`Summarised` saying whether a row summarises an outdated setting.
OUTDATED_ROW = "_sp_outdated"
#: What :func:`best` says of its winner, in ``<metric>_verdict``.
VERDICTS = ("clear", "tie", "too few seeds")


@dataclass(frozen=True)
class Summarised:
    """A summary as the commands lay it out, under names no parameter can take.

    The key columns (the parameters it groups by) keep their names; a metric's statistics
    are :meth:`column` ``(metric, statistic)`` and the count of settings left out is
    :data:`LEFT_OUT`, both starting with ``_sp_``, which no field may, so a field called
    ``mean``, ``n`` or ``left_out`` collides with nothing. ``per_setting`` keeps one value
    per setting and metric (metric ``i`` as ``_sp_<i>``), with the values of ``over``,
    for comparing two rows seed by seed.
    """

    frame: pl.DataFrame
    keys: tuple[str, ...]
    metrics: tuple[str, ...]
    per_setting: pl.DataFrame | None = None
    over: tuple[str, ...] = ()

    def column(self, metric: str, statistic: str) -> str:
        """The column holding ``statistic`` (one of :data:`STATISTICS`) of ``metric``."""
        return _stat(self.metrics.index(metric), statistic)

    def with_frame(self, frame: pl.DataFrame) -> Summarised:
        """The same summary over other rows (filtered, sorted) or fewer columns."""
        keys = tuple(k for k in self.keys if k in frame.columns)
        return Summarised(frame, keys, self.metrics, self.per_setting, self.over)

    def public(self) -> pl.DataFrame:
        """The frame :func:`summary` gives: ``<metric>_<statistic>``, ``left_out`` and
        ``outdated``."""
        return self.frame.rename(self.public_names())

    def public_names(self) -> dict[str, str]:
        """Each statistic's column and the name :meth:`public` gives it."""
        taken = set(self.keys)
        names: dict[str, str] = {}
        wanted = [(self.column(m, s), f"{m}_{s}") for m in self.metrics for s in STATISTICS]
        for column, name in [*wanted, (LEFT_OUT, "left_out"), (OUTDATED_ROW, OUTDATED)]:
            if column not in self.frame.columns:
                continue
            while name in taken:
                name += "_"
            taken.add(name)
            names[column] = name
        return names


def _stat(index: int, statistic: str) -> str:
    return f"_sp_{index}_{statistic}"


def summarise(
    space: Space[Any],
    over: str | Sequence[str] | None = None,
    *,
    rows: str | pl.Expr = "last",
    folder: Path | str | None = None,
    table: pl.DataFrame | None = None,
    level: float = 0.95,
) -> Summarised:
    """The summary :func:`summary` gives, with its parts named apart (see :class:`Summarised`).

    ``table`` is the space's results, when the caller has read them already.
    """
    import polars as pl

    from superparams._stats import t_quantile

    _check_level(level)
    declared = DeclaredColumns(space)
    names = _over(declared, over)
    reduce = _reducer(rows)
    if table is None:
        table = space.results(folder=folder)
    found = declared.columns(table.columns)
    keys = [
        c
        for c in (*found.parameters, *found.replicates)
        if c not in names and c not in declared.derived and c in table.columns
    ]
    kept = [c for c in names if c in table.columns]
    metrics = [c for c in found.metrics if is_numeric(table.schema[c])]
    # metrics by position: a metric may be called anything, a key never starts with _sp_
    at = {m: f"_sp_{i}" for i, m in enumerate(metrics)}
    done = pl.col("status") == "completed"
    keep = done if isinstance(rows, str) else done & rows
    if OUTDATED not in table.columns:  # a table not read by results(): its code unknown
        table = mark(table, None)
    per_setting = table.group_by("id", maintain_order=True).agg(
        *(pl.col(k).first() for k in (*keys, *kept)),
        # each metric's own values: a row without it (a final dict of other metrics
        # after reported ones) is no value of it
        *(
            reduce(pl.col(m).cast(pl.Float64).filter(keep).drop_nulls()).alias(at[m])
            for m in metrics
        ),
        done.any().alias("_sp_done"),
        any_outdated(pl.col(OUTDATED)).alias(OUTDATED_ROW),
    )
    stats: list[pl.Expr] = []
    for i, m in enumerate(metrics):
        value = pl.col(at[m])
        stats += [
            value.mean().alias(_stat(i, "mean")),
            value.std(ddof=1).alias(_stat(i, "std")),
            (value.std(ddof=1) / value.count().sqrt()).alias(_stat(i, "sem")),
            value.count().cast(pl.Int64).alias(_stat(i, "n")),
        ]
    stats.append((~pl.col("_sp_done")).sum().cast(pl.Int64).alias(LEFT_OUT))
    stats.append(any_outdated(pl.col(OUTDATED_ROW)).alias(OUTDATED_ROW))
    if keys:
        frame = per_setting.group_by(keys, maintain_order=True).agg(stats)
    else:
        frame = per_setting.select(stats)
        frame = frame if per_setting.height else frame.clear()
    # The t-interval of each mean: its quantile depends only on n, so it is computed once
    # per distinct n (fewer than two values give no interval).
    counts = {n for i in range(len(metrics)) for n in frame[_stat(i, "n")].to_list() if n}
    quantile = {n: t_quantile(0.5 + level / 2, n - 1) for n in counts if n >= 2}
    frame = frame.with_columns(e for i in range(len(metrics)) for e in _interval(i, quantile))
    shown = [k for k in keys if declared.is_varied(k) or table[k].n_unique() > 1]
    ordered = [_stat(i, s) for i in range(len(metrics)) for s in STATISTICS]
    frame = frame.select(*shown, *ordered, LEFT_OUT, OUTDATED_ROW)
    return Summarised(frame, tuple(shown), tuple(metrics), per_setting, tuple(kept))


def _interval(index: int, quantile: dict[int, float]) -> list[pl.Expr]:
    """The low and high ends of each row's t-interval of metric ``index``'s mean."""
    import polars as pl

    half = pl.col(_stat(index, "n")).replace_strict(
        quantile, default=None, return_dtype=pl.Float64
    ) * pl.col(_stat(index, "sem"))
    mean = pl.col(_stat(index, "mean"))
    return [
        (mean - half).alias(_stat(index, "ci_low")),
        (mean + half).alias(_stat(index, "ci_high")),
    ]


def _check_level(level: object) -> None:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        msg = f"level={level!r} is not a confidence level between 0 and 1; e.g. level=0.95"
        raise UsageError(msg)


def best(
    space: Space[Any],
    metric: str | Sequence[str],
    mode: Literal["max", "min"] | Sequence[Literal["max", "min"]] = "max",
    *,
    over: str | Sequence[str] | None = None,
    rows: str | pl.Expr = "last",
    folder: Path | str | None = None,
    level: float = 0.95,
    table: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The row of the summary with the best mean of ``metric``, and whether it is a real
    winner; for several metrics, the rows on the Pareto front of their means. See
    :meth:`Space.best`. ``table``: the results to rank (default: the space's stored ones)."""
    import polars as pl

    metrics = [metric] if isinstance(metric, str) else list(metric)
    modes = [mode] * len(metrics) if isinstance(mode, str) else list(mode)
    if len(modes) != len(metrics) or any(m not in ("max", "min") for m in modes):
        given = mode if isinstance(mode, str) else list(mode)
        msg = f"mode={given!r} is not 'max' or 'min'; give mode='min' for a loss"
        if len(metrics) > 1:
            msg += f", and one mode for each of {', '.join(metrics)}"
        raise UsageError(msg)
    if over is None:
        over = DeclaredColumns(space).replicates
    summarised = summarise(space, over, rows=rows, folder=folder, level=level, table=table)
    table = summarised.frame
    for name in metrics:
        if name not in summarised.metrics:
            if table.is_empty():
                return summarised.public()
            known = summarised.metrics
            owner = space.experiment_class.__name__
            msg = (
                f"{owner} has no metric {name!r} to rank by{did_you_mean(name, known)}; "
                f"its metrics are {', '.join(known) or 'none (no numbers were returned)'}"
            )
            raise UsageError(msg)
    means = [summarised.column(m, "mean") for m in metrics]
    ranked = table.filter(*(pl.col(c).is_not_null() & pl.col(c).is_not_nan() for c in means))
    if len(metrics) > 1:
        return summarised.with_frame(_pareto(ranked, means, modes)).public()
    ranked = ranked.sort(means[0], descending=modes[0] == "max", maintain_order=True)
    if ranked.is_empty():  # no setting completed with a value of it yet: no winner
        return summarised.with_frame(ranked).public()
    verdict, ties = judge(summarised, ranked, metrics[0], alpha=1 - level)
    return (
        summarised.with_frame(ranked.head(1))
        .public()
        .with_columns(
            pl.lit(verdict).alias(f"{metrics[0]}_verdict"),
            pl.Series(f"{metrics[0]}_ties", [ties], dtype=pl.List(pl.String)),
        )
    )


def _pareto(table: pl.DataFrame, means: list[str], modes: Sequence[str]) -> pl.DataFrame:
    """The rows no other row matches or beats on every mean (and beats on one), sorted by
    the first."""
    # Each mean as a number to maximise, so that one comparison serves every mode.
    points = [
        tuple(v if mode == "max" else -v for v, mode in zip(row, modes, strict=True))
        for row in table.select(means).iter_rows()
    ]
    front = [
        i
        for i, p in enumerate(points)
        if not any(all(a >= b for a, b in zip(q, p, strict=True)) and q != p for q in points)
    ]
    return table[front].sort(means[0], descending=modes[0] == "max", maintain_order=True)


def judge(
    summarised: Summarised, ranked: pl.DataFrame, metric: str, *, alpha: float
) -> tuple[str, list[str]]:
    """Whether the first of ``ranked`` is a clear winner on ``metric``, and the labels of
    the rows no test could tell from it.

    Each other row is compared with the winner by a paired t-test over the values of the
    summarised columns (the seeds) that both completed; the p-values are corrected with
    Holm's method across the comparisons. A row that shares fewer than two seeds with the
    winner cannot be compared: the verdict is then ``too few seeds``, unless a tie was
    found anyway.
    """
    from superparams._stats import MIN_PAIRS, holm, paired_p

    if ranked.is_empty() or summarised.per_setting is None:
        return "too few seeds", []
    column = f"_sp_{summarised.metrics.index(metric)}"
    keys, over = summarised.keys, summarised.over
    # A summary row is known by the keys it shows: the others are the same on every row.
    values: dict[tuple[Any, ...], dict[tuple[Any, ...], float]] = {}
    for row in summarised.per_setting.iter_rows(named=True):
        value = row[column]
        if value is None or value != value:
            continue
        values.setdefault(tuple(row[k] for k in keys), {})[tuple(row[o] for o in over)] = value
    rows = list(ranked.iter_rows(named=True))
    winner = values.get(tuple(rows[0][k] for k in keys), {})
    if len(winner) < MIN_PAIRS:
        return "too few seeds", []
    labels, pvalues = [], []
    for row in rows[1:]:
        other = values.get(tuple(row[k] for k in keys), {})
        shared = sorted(set(winner) & set(other), key=repr)
        labels.append(",".join(f"{k}={row[k]}" for k in keys) or "defaults")
        if len(shared) < MIN_PAIRS:
            pvalues.append(float("nan"))
            continue
        pvalues.append(paired_p([winner[s] for s in shared], [other[s] for s in shared]))
    adjusted = holm(pvalues)
    ties = [label for label, p in zip(labels, adjusted, strict=True) if p > alpha]
    if ties:
        return "tie", ties
    if any(p != p for p in adjusted):  # a comparison that could not be made
        return "too few seeds", []
    return "clear", []


def _over(declared: DeclaredColumns, over: str | Sequence[str] | None) -> list[str]:
    """The columns to summarise over, checked against the space's parameters."""
    choices = [c for c in declared.parameters if c not in declared.derived]
    if over is None:
        if not declared.replicates:
            msg = (
                f"{declared.name} declares no replicate field (e.g. seed: int = seeds(5)), so "
                "summary() has nothing to summarise over; name the fields to summarise over: "
                f"summary(over={choices[0]!r}), one of {', '.join(choices)}; "
                "or over=[] for one row per setting"
            )
            raise UsageError(msg)
        return list(declared.replicates)
    names = [over] if isinstance(over, str) else list(over)
    for name in names:
        if name not in choices:
            msg = (
                f"{declared.name} has no parameter {name!r} to summarise over"
                f"{did_you_mean(str(name), choices)}; its parameters are {', '.join(choices)}"
            )
            raise UsageError(msg)
    return names


def _reducer(rows: str | pl.Expr) -> Any:
    """How the rows of one setting become one value per metric."""
    import polars as pl

    if isinstance(rows, pl.Expr):
        return pl.Expr.last
    if rows not in REDUCERS:
        listed = ", ".join(repr(r) for r in REDUCERS)
        msg = (
            f"rows={rows!r} is not a way to reduce a setting's rows"
            f"{did_you_mean(str(rows), REDUCERS)}; give one of {listed}, or a polars expression"
        )
        raise UsageError(msg)
    return getattr(pl.Expr, rows)


def is_numeric(dtype: pl.DataType) -> bool:
    import polars as pl

    return dtype.is_numeric() or dtype == pl.Boolean


# -- in a notebook -------------------------------------------------------------------


def space_html(space: Space[Any]) -> str:
    """A space as a notebook shows it: its overview, one table per experiment in it."""
    from superparams._experiment import Experiment
    from superparams._overview import overview_rows
    from superparams._space import Sample, Union

    if isinstance(space, Union):
        return "".join(space_html(part) for part in space.parts)
    if isinstance(space, Sample):
        caption = str(space).partition("\n")[0]  # what it draws, and how
        return f"<div><p>{html.escape(caption)}</p>{space_html(space.source)}</div>"
    if not isinstance(space, Experiment):
        return f"<pre>{html.escape(str(space))}</pre>"
    title, rows = overview_rows(space)
    head = "".join(f"<th>{h}</th>" for h in ("field", "type", "values", "size"))
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return (
        f"<div><table><caption>{html.escape(title)}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )
