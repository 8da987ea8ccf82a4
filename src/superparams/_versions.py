"""Every code version's outcomes: read together, one version named, two compared.

This room works on what the store keeps of each setting: its latest outcome and the
outcomes reruns replaced (``history.parquet``, see
:meth:`~superparams._store._read.Reader.every_outcome`). It makes them one table whose
:data:`SUPERSEDED` column says which rows are no longer a setting's latest
(:func:`joined`, :func:`of_version`), names a code version by a prefix of its hash or of the git
commit recorded on its rows (:func:`pick`), and compares the outcomes of two versions
setting by setting, and over the seeds with the summaries of
:mod:`superparams._summary` (:func:`compare`). It reads no store itself (the front door
gives it the tables), writes nothing and prints nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from superparams.errors import UsageError, did_you_mean

if TYPE_CHECKING:
    from collections.abc import Sequence

    import polars as pl

    from superparams._space import Space
    from superparams._summary import Summarised

#: The column saying whether a row is of an outcome that a rerun replaced (True) or of
#: its setting's latest (False): worked out when read, never stored.
SUPERSEDED = "superseded"

#: What ``code_version`` takes to give every outcome of every version.
ALL = "all"


def joined(latest: pl.DataFrame, older: pl.DataFrame) -> pl.DataFrame:
    """Every outcome in one table: the ``older`` ones (a rerun replaced them) before the
    ``latest``, told apart by :data:`SUPERSEDED`."""
    import polars as pl

    from superparams._store._table import concat

    return concat(
        [
            older.with_columns(pl.lit(True).alias(SUPERSEDED)),
            latest.with_columns(pl.lit(False).alias(SUPERSEDED)),
        ]
    )


def of_version(table: pl.DataFrame, code_version: str, owner: str) -> pl.DataFrame:
    """The rows of :func:`joined`'s ``table`` that ``code_version`` made (a prefix of
    its hash or of a git commit, or ``"all"``: every row), :data:`SUPERSEDED` last.

    Raises:
        UsageError: ``code_version`` names no version stored, or several.
    """
    import polars as pl

    if code_version != ALL:
        version = pick(table, code_version, owner, "code_version=")
        table = table.filter(pl.col("code_version") == version.code_version)
    return table.select(pl.exclude(SUPERSEDED), SUPERSEDED)


@dataclass(frozen=True)
class Version:
    """A code version of the stored outcomes: its hash, the git commit on its rows
    (None if not recorded), and how many settings it made an outcome of."""

    code_version: str
    git_commit: str | None
    settings: int

    def __str__(self) -> str:
        git = f", git {self.git_commit[:12]}" if self.git_commit else ""
        many = "setting" if self.settings == 1 else "settings"
        return f"{self.code_version} ({self.settings} {many}{git})"


def versions(table: pl.DataFrame) -> list[Version]:
    """The code versions of ``table``'s rows, in the order they first made one."""
    import polars as pl

    if table.is_empty():
        return []
    found = (
        table.filter(pl.col("code_version").is_not_null())
        .group_by("code_version", maintain_order=True)
        .agg(pl.col("git_commit").drop_nulls().last(), pl.col("id").n_unique())
    )
    return [Version(v, g, n) for v, g, n in found.iter_rows()]


def pick(table: pl.DataFrame, text: str, owner: str, flag: str) -> Version:
    """The code version ``text`` names among ``table``'s rows: a prefix of its hash, or
    else of the git commit recorded on its rows. ``flag`` names ``text`` in messages
    (``"A "``, ``"code_version="``).

    Raises:
        UsageError: ``text`` names none of them, or several; the message lists them.
    """
    known = versions(table)
    listed = "; ".join(str(v) for v in known) or "none (no outcome records its version)"
    if not text:
        msg = f"{flag}{text!r} names no code version; versions stored for {owner}: {listed}"
        raise UsageError(msg)
    found = [v for v in known if v.code_version.startswith(text)]
    if not found:
        found = [v for v in known if v.git_commit and v.git_commit.startswith(text)]
    if len(found) == 1:
        return found[0]
    if not found:
        hint = did_you_mean(text, [v.code_version for v in known])
        msg = (
            f"{flag}{text!r}: no outcome of {owner} was made by such a code version or git "
            f"commit{hint}; versions stored: {listed}"
        )
        raise UsageError(msg)
    several = ", ".join(v.code_version for v in found)
    msg = (
        f"{flag}{text!r} is the start of {len(found)} code versions of {owner} "
        f"({several}); give more of it, e.g. {found[0].code_version}"
    )
    raise UsageError(msg)


@dataclass(frozen=True)
class Compared:
    """Two code versions' outcomes of the settings both made one of.

    ``settings``: one row per setting (``id``, ``label``, its parameters) with
    ``<metric>_a``, ``<metric>_b`` (its last value under each, null if the setting did
    not complete) and ``<metric>_change`` (b - a). ``summary``, when the space declares
    replicates (:func:`~superparams.seeds`): one row per setting of the other fields with
    ``<metric>_mean_a``, ``_std_a``, ``_n_a``, the same under b, and
    ``<metric>_mean_change``; None without replicates.
    """

    a: Version
    b: Version
    metrics: tuple[str, ...]
    over: tuple[str, ...]
    settings: pl.DataFrame
    summary: pl.DataFrame | None


def compare(
    space: Space[Any],
    table: pl.DataFrame,
    a: str,
    b: str,
    metric: str | Sequence[str] | None = None,
) -> Compared:
    """The outcomes code versions ``a`` and ``b`` made of each setting both made one of,
    among ``table``: ``space``'s results of every version (``code_version="all"``).

    A setting with several outcomes under one version counts by its latest; a metric is
    its last value among a setting's rows, and over the seeds, the mean ± std as
    :func:`~superparams._summary.summarise` gives them.

    Raises:
        UsageError: ``a`` or ``b`` names no version or several, both name the same one,
            no setting has an outcome under both, or ``metric`` is not a metric of both.
    """
    import polars as pl

    from superparams._summary import DeclaredColumns, summarise

    owner = space.experiment_class.__name__
    first, second = pick(table, a, owner, "A "), pick(table, b, owner, "B ")
    if first.code_version == second.code_version:
        msg = (
            f"{a!r} and {b!r} both name code version {first.code_version} of {owner}; "
            "give two different versions to compare"
        )
        raise UsageError(msg)
    under_a, under_b = _latest_of(table, first), _latest_of(table, second)
    both = set(under_a["id"].to_list()) & set(under_b["id"].to_list())
    if not both:
        msg = (
            f"no setting of {owner} has an outcome under both {first.code_version} "
            f"({first.settings} under A) and {second.code_version} ({second.settings} under "
            "B); diff compares the settings both versions ran"
        )
        raise UsageError(msg)
    under_a = under_a.filter(pl.col("id").is_in(list(both)))
    under_b = under_b.filter(pl.col("id").is_in(list(both)))
    over = list(DeclaredColumns(space).replicates)
    sum_a = summarise(space, over, table=under_a)
    sum_b = summarise(space, over, table=under_b)
    metrics = _metrics(metric, sum_a.metrics, sum_b.metrics, owner)
    assert sum_a.per_setting is not None  # summarise() keeps it
    assert sum_b.per_setting is not None
    named = [*sum_a.keys, *(k for k in sum_a.over if k not in sum_a.keys)]
    labels = under_a.group_by("id", maintain_order=True).agg(pl.col("label").first())
    per_a = sum_a.per_setting.select(
        "id", *named, *(pl.col(_value(sum_a.metrics, m)).alias(f"{m}_a") for m in metrics)
    )
    per_b = sum_b.per_setting.select(
        "id", *(pl.col(_value(sum_b.metrics, m)).alias(f"{m}_b") for m in metrics)
    )
    settings = labels.join(per_a, on="id", maintain_order="left").join(
        per_b, on="id", maintain_order="left"
    )
    settings = settings.select(
        "id",
        "label",
        *named,
        *(
            e
            for m in metrics
            for e in (
                pl.col(f"{m}_a"),
                pl.col(f"{m}_b"),
                (pl.col(f"{m}_b") - pl.col(f"{m}_a")).alias(f"{m}_change"),
            )
        ),
    )
    summary = _summary_of(sum_a, sum_b, metrics) if over else None
    return Compared(first, second, tuple(metrics), tuple(over), settings, summary)


def _latest_of(table: pl.DataFrame, version: Version) -> pl.DataFrame:
    """The rows of each setting's latest outcome under ``version``."""
    import polars as pl

    rows = table.filter(pl.col("code_version") == version.code_version)
    started = pl.col("started").dt.epoch("us").fill_null(-1)  # an interrupted start: first
    return rows.filter(started == started.max().over("id"))


def _value(metrics: tuple[str, ...], metric: str) -> str:
    """The column of a summary's ``per_setting`` holding ``metric``'s value."""
    return f"_sp_{metrics.index(metric)}"


def _metrics(
    asked: str | Sequence[str] | None, in_a: tuple[str, ...], in_b: tuple[str, ...], owner: str
) -> list[str]:
    """The metrics to compare: those asked, each checked to be a metric under both
    versions; by default every metric of both."""
    shared = [m for m in in_a if m in in_b]
    if asked is None:
        if not shared:
            msg = f"the two versions of {owner} share no metric to compare (no numbers)"
            raise UsageError(msg)
        return shared
    names = [asked] if isinstance(asked, str) else list(asked)
    for name in names:
        if name not in shared:
            msg = (
                f"metric {name!r} is not a metric of {owner} under both versions"
                f"{did_you_mean(name, shared)}; metrics: {', '.join(shared) or 'none'}"
            )
            raise UsageError(msg)
    return names


def _summary_of(sum_a: Summarised, sum_b: Summarised, metrics: list[str]) -> pl.DataFrame:
    """Each setting of the other fields: each metric's mean, std and n over the seeds
    under each version, and the change of the mean."""
    import polars as pl

    def side(summarised: Summarised, end: str) -> pl.DataFrame:
        column = summarised.column
        return summarised.frame.select(
            *summarised.keys,
            *(
                pl.col(column(m, s)).alias(f"{m}_{s}_{end}")
                for m in metrics
                for s in ("mean", "std", "n")
            ),
        )

    left, right = side(sum_a, "a"), side(sum_b, "b")
    keys = list(sum_a.keys)
    joined = (
        left.join(right, on=keys, how="left", nulls_equal=True, maintain_order="left")
        if keys
        else pl.concat([left, right], how="horizontal")
    )
    change = [
        (pl.col(f"{m}_mean_b") - pl.col(f"{m}_mean_a")).alias(f"{m}_mean_change") for m in metrics
    ]
    ordered = [
        column
        for m in metrics
        for column in (
            *(f"{m}_{s}_{end}" for end in ("a", "b") for s in ("mean", "std", "n")),
            f"{m}_mean_change",
        )
    ]
    return joined.with_columns(change).select(*keys, *ordered)
