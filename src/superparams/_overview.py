"""The overview of a space: what ``print(space)`` shows, one line per field.

This room owns the overview's title (the class and its number of settings) and its rows
(each field's name, type, values and size), which the command before a run and a
notebook's table (:func:`superparams._summary.space_html`) show too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from superparams._declared import declared
from superparams._fields import type_name
from superparams._product import as_dimension
from superparams._space import Dimension
from superparams.errors import SearchSpaceError

if TYPE_CHECKING:
    from superparams._experiment import Experiment


def overview(space: Experiment) -> str:
    """What ``print(space)`` shows, and the ``experiment`` command before a run: the
    class and its number of settings, then a line per field with its type and values."""
    title, rows = overview_rows(space)
    w0 = max((len(r[0]) for r in rows), default=0)
    w1 = max((len(r[1]) for r in rows), default=0)
    w2 = max((len(r[2]) for r in rows), default=0)
    lines = [title]
    lines += [f"  {a:<{w0}}  {b:<{w1}}  {c:<{w2}}  {d}".rstrip() for a, b, c, d in rows]
    return "\n".join(lines)


def overview_rows(space: Experiment) -> tuple[str, list[tuple[str, str, str, str]]]:
    """The overview's title and its rows: each field's name, type, values and size."""
    cls = type(space)
    info = declared(cls)
    try:
        n = len(space) if space.enumerable else None
        count = "sampled only" if n is None else f"{n:,} setting{'s' if n != 1 else ''}"
    except SearchSpaceError as error:
        count = str(error)
    rows = []
    for name in info.fields + tuple(n for n, _ in info.derived):
        v = space.__dict__[name]
        dim = as_dimension(v)
        shown = repr(dim) if isinstance(dim, Dimension) and dim is not v else repr(v)
        if len(shown) > 60:
            shown = shown[:59] + "…"
        size = ""
        if dim is not None and dim.enumerable:
            size = f"{dim.size()} values"
        elif dim is not None:
            size = "drawn"
        rows.append((name, type_name(info.annotations.get(name, "")), shown, size))
    return f"{cls.__name__}: {count}", rows
