"""What the commands share: how they speak, the store and plan of a space, its results.

Everything a command says goes to stderr through :func:`say`; tables and logs go to
stdout, so ``experiment results X --csv > table.csv`` holds the table alone.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from superparams._cli._find import shown
from superparams._cli._table import cell, table
from superparams._declared import declared

if TYPE_CHECKING:
    import polars as pl

    from superparams._cli._find import Found
    from superparams._experiment import Experiment
    from superparams._space import Space
    from superparams._store._plan import Plan
    from superparams._store._writer import Store


def say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def store_of(space: Space[Any]) -> Store:
    from superparams._api import store_of as made

    store = made(space)
    store.check()  # another experiment's folder: refused before anything else is said
    return store


def plan_of(space: Space[Any], store: Store) -> Plan:
    """What is stored for each setting; the code's version is worked out only if needed."""

    def code() -> str:
        from superparams._code import code_hash

        return code_hash(space.experiment_class)

    return store.plan(space, code)


def check_unlocked(store: Store) -> None:
    from superparams.errors import StoreLockedError

    holder = store.holder()
    if holder is not None:
        msg = (
            f"another run is writing to {shown(store.folder)} ({holder}); wait for it to "
            "finish or stop it, then run again"
        )
        raise StoreLockedError(msg)


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def ask(question: str) -> str | None:
    """A line typed in answer (lowercased), or None at end of input."""
    sys.stderr.write(question)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        sys.stderr.write("\n")
        return None
    return line.strip().lower()


def results_of(space: Space[Any], code_version: str | None = None) -> pl.DataFrame:
    """The space's results: each setting's latest outcome, or with ``code_version`` the
    outcomes of that version (``all``: of every one), see :func:`~superparams._api.results`."""
    from superparams._api import results

    return results(space, code_version=code_version)


def only_one(found: Found, spaces: list[Space[Any]], verb: str) -> None:
    """Refuse a command that works on one experiment, for a name that holds several.

    Raises:
        UsageError: naming them, and how to name one (``verb``: what is done to it).
    """
    from superparams.errors import UsageError

    if len(spaces) > 1:
        names = ", ".join(s.experiment_class.__name__ for s in spaces)
        msg = f"{found.name} holds several experiments ({names}); {verb} one: {found.name}.CLASS"
        raise UsageError(msg)


def write_json(schema: str, body: dict[str, Any], rows: pl.DataFrame | None = None) -> None:
    """One JSON object on stdout: ``{"schema": "superparams.<schema>/1", ...body}``, with
    the table ``rows`` (as polars writes one: an array of objects) under ``"rows"``.

    Later versions add keys without changing the schema's number. The rows go straight to
    stdout's bytes, never held as a second copy in a string: a table of a million rows
    is written as fast as polars writes it.
    """
    import json

    text = json.dumps({"schema": f"superparams.{schema}/1", **body}, default=str)
    if rows is None:
        sys.stdout.write(text + "\n")
        return
    sys.stdout.write(f'{text[:-1]}, "rows": ')
    binary = getattr(sys.stdout, "buffer", None)
    if binary is None:  # a stream of text alone (a StringIO)
        sys.stdout.write(rows.write_json())
    else:
        sys.stdout.flush()
        rows.write_json(binary)
        binary.flush()
    sys.stdout.write("}\n")


def none_stored(space: Space[Any], prog: str, found: Found) -> str:
    """What to say when a read finds no results: that none are stored yet, or, when the
    folder holds some, that none is of the settings asked for (a value outside what ran)."""
    name = space.experiment_class.__name__
    stored = store_of(space)
    count = stored.count() if stored.folder.exists() else 0
    if not count:
        return f"no results stored for {name} yet (`{prog} {found.name}` runs it)"
    settings = "setting" if count == 1 else "settings"
    return (
        f"none of the {count} {settings} stored for {name} is among those asked for; "
        f"`{prog} results {found.name}` without field values shows them all"
    )


def columns_of(frame: pl.DataFrame, cls: type[Experiment]) -> list[str]:
    """The columns worth a look: parameters that vary, results, and status if mixed."""
    from superparams._outdated import OUTDATED, outdated_count
    from superparams._store._columns import BOOKKEEPING, COMPUTED
    from superparams._versions import SUPERSEDED

    info = declared(cls)
    params = set(info.fields) | {n for n, _ in info.derived}

    def is_param(column: str) -> bool:
        return column in params or column.split(".", 1)[0] in params

    varying = [c for c in frame.columns if is_param(c) and _n_unique(frame[c]) > 1]
    results = [
        c
        for c in frame.columns
        if not is_param(c) and c not in ("id", "label", *BOOKKEEPING, *COMPUTED)
    ]
    extra = []
    if "status" in frame.columns and set(frame["status"].to_list()) != {"completed"}:
        extra.append("status")
    if "code_version" in frame.columns and frame["code_version"].drop_nulls().n_unique() > 1:
        extra.append("code_version")  # rows made by different code: say which is which
    if outdated_count(frame):
        extra.append(OUTDATED)
    if SUPERSEDED in frame.columns:  # every version's outcomes: which are replaced
        extra.append(SUPERSEDED)
    if "seconds" in frame.columns:
        extra.append("seconds")
    return varying + results + extra


def _n_unique(series: Any) -> int:
    try:
        return int(series.n_unique())
    except Exception:  # a column polars cannot hash: compare the texts
        return len({repr(v) for v in series.to_list()})


def say_outdated(frame: pl.DataFrame, space: Space[Any], prog: str, found: Found) -> None:
    """After a table of results: how many of its settings earlier code made, if any, and
    how to run them again."""
    import polars as pl

    from superparams._outdated import OUTDATED, closing_line

    if OUTDATED not in frame.columns:
        return
    if "id" in frame.columns:  # a setting's rows: it counts once
        frame = frame.group_by("id", maintain_order=True).agg(pl.col(OUTDATED).any())
    count = int(frame[OUTDATED].sum())
    if count:
        name = space.experiment_class.__name__
        say(closing_line(count, frame.height, name, f"{prog} {found.name} --rerun-outdated"))


def print_results(
    space: Space[Any],
    frame: pl.DataFrame,
    limit: int | None,
    prog: str,
    found: Found,
    columns: list[str] | None = None,
) -> None:
    if frame.is_empty():
        return
    columns = columns or columns_of(frame, space.experiment_class)
    if not columns:
        return
    rows = frame.select(columns).rows()
    more = 0
    if limit is not None and len(rows) > limit:
        rows, more = rows[:limit], len(rows) - limit
    headers = ["time" if c == "seconds" else c for c in columns]
    cells = [[cell(v, c) for v, c in zip(row, columns, strict=True)] for row in rows]
    table(headers, cells, sys.stdout)
    if more:
        say(f"... {more} more rows: {prog} results {found.name}")
