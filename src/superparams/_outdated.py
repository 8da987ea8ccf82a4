"""Which stored rows another version of the experiment's code made: the ``outdated`` column.

This room owns what *outdated* means when results are read: a row is outdated when its
stored ``code_version`` is not the version of the code loaded now
(:func:`superparams._code.code_hash`); current when it is; unknown (null) when the row
holds no version (it was made before versions were recorded) or the current one cannot
be worked out. It is the definition :meth:`superparams._store._read.Reader.plan` uses
for the completed settings, applied to every row.

The column is added when the results are read (:func:`results`, the view, the report)
and never stored: the results folder's files stay as they are. This room reads no store
and prints nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

#: The column: True, False, or null (unknown).
OUTDATED = "outdated"


def current_version(cls: type) -> str | None:
    """The version of ``cls``'s code now, or None when it cannot be worked out."""
    from superparams._code import code_hash

    try:
        return code_hash(cls)
    except Exception:  # no source and no bytecode to read: no row is called outdated
        return None


def mark(table: pl.DataFrame, current: str | None) -> pl.DataFrame:
    """``table`` with its :data:`OUTDATED` column (last), against the version ``current``."""
    import polars as pl

    if current is None or "code_version" not in table.columns:
        column = pl.lit(None, dtype=pl.Boolean)
    else:
        column = pl.col("code_version") != pl.lit(current, dtype=pl.String)
    return table.with_columns(column.alias(OUTDATED))


def any_outdated(outdated: pl.Expr) -> pl.Expr:
    """Whether rows summarised together are outdated: any of them is; else unknown if
    one is; else not."""
    return outdated.any(ignore_nulls=False)


def outdated_count(frame: pl.DataFrame) -> int:
    """How many rows of ``frame`` are outdated (a missing column: none)."""
    if OUTDATED not in frame.columns:
        return 0
    return int(frame[OUTDATED].sum())


def closing_line(count: int, total: int, experiment: str, rerun: str) -> str:
    """What a table of results says after its rows when ``count`` of its ``total``
    settings are outdated; ``rerun`` is the command that runs them again."""
    are = "is" if count == 1 else "are"
    return (
        f"{count} of {total} settings {are} outdated (made by an earlier version of "
        f"{experiment}'s code): rerun them with `{rerun}`"
    )
