"""A field's value checked against its annotation, and the messages when it does not fit.

This room owns the one checker of a value against its field's type (:func:`checked_value`),
for a default, a value given to the class, or each value of a search; a search that
lists one setting twice; and what an annotation means as a phrase (:func:`type_name`)
and as a results column's type (:func:`annotation_type`). It makes no class and no
setting: :mod:`superparams._experiment` calls it.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import PurePath
from typing import Any, Literal

from superparams._identity import Mismatch, conform, encode
from superparams._space import Grid, Space, setting_ids, short
from superparams._values import Derived, Distribution, RandInt
from superparams.errors import ExperimentError

_SCALARS = frozenset({int, float, str, bool})


def checked_value(owner: str, name: str, value: Any, annotation: Any, made: str | None) -> Any:
    """A field's value checked against its annotation, converted where that is lossless.

    ``made`` is the class whose construction gave the value, or None for a class default;
    a search gives back a new one only when some value was converted.
    """
    if isinstance(value, Derived):
        return value
    if isinstance(value, Distribution):
        _check_drawn(owner, name, value, annotation)
        return value
    if isinstance(value, Grid):
        if type(annotation) is type and annotation in _SCALARS and _all_of(annotation, value):
            _check_distinct(owner, name, value, value.points)
            return value  # a long search of ints or floats, checked at C speed
        points = [_conformed(owner, name, p, annotation, value) for p in value.points]
        _check_distinct(owner, name, value, points)
        if all(a is b for a, b in zip(points, value.points, strict=True)):
            return value
        return regrid(value, points, value.link)
    where = "its default is" if made is None else f"{made}({name}={short(value, 60)}) gives it"
    try:
        return conform(value, annotation)
    except Mismatch as error:
        raise ExperimentError(_mismatch(owner, name, annotation, where, error)) from None


def _check_distinct(owner: str, name: str, grid: Grid, points: Sequence[Any]) -> None:
    """Refuse a search that lists one setting twice: two settings with one id, counted
    twice and run once. Linked values may repeat (their partners tell them apart).

    Raises:
        ExperimentError: naming the value given twice.
    """
    if grid.link is not None or len(points) < 2:
        return
    if all(type(p) in _SCALARS for p in points):
        if len(set(points)) == len(points):  # the common case, at C speed
            return
        keys: list[Any] = [encode(p, name) for p in points]
    else:
        keys = []
        for point in points:  # a nested experiment stands for each of its settings
            keys.extend(setting_ids(point) if isinstance(point, Space) else [encode(point, name)])
    seen: set[Any] = set()
    for key, point in zip(keys, _expanded(points), strict=True):
        if key in seen:
            msg = (
                f"{owner}.{name}: {grid.maker}() holds {short(point, 60)} twice, which is "
                "one setting counted twice; give each value once"
            )
            raise ExperimentError(msg)
        seen.add(key)


def _expanded(points: Sequence[Any]) -> Iterator[Any]:
    """Each point, a nested experiment's space as each of its settings."""
    for point in points:
        if isinstance(point, Space):
            yield from point
        else:
            yield point


def _all_of(kind: type, grid: Grid) -> bool:
    return all(type(p) is kind for p in grid.points)


def regrid(grid: Grid, points: Any, link: str | None) -> Grid:
    """The same search or choice over other points, or with another link."""
    new = Grid(points, link=link, weights=grid.weights)
    new.maker, new.replicate = grid.maker, grid.replicate
    return new


def _conformed(owner: str, name: str, point: Any, annotation: Any, grid: Grid) -> Any:
    try:
        return conform(point, annotation)
    except Mismatch as error:
        where = f"{grid.maker}() gives it"
        raise ExperimentError(_mismatch(owner, name, annotation, where, error)) from None


def _check_drawn(owner: str, name: str, dist: Distribution, annotation: Any) -> None:
    if all(_accepts(bound, annotation) for bound in (dist.low, dist.high)):  # type: ignore[attr-defined]
        return
    kind = "ints" if isinstance(dist, RandInt) else "floats"
    msg = f"{owner}.{name} is {_a(annotation)}, but {dist!r} draws {kind}"
    if kind == "floats" and _accepts(1, annotation):
        msg += "; draw ints with randint(low, high)"
    raise ExperimentError(msg)


def _accepts(value: Any, annotation: Any) -> bool:
    try:
        conform(value, annotation)
    except Mismatch:
        return False
    return True


def _mismatch(owner: str, name: str, annotation: Any, where: str, error: Mismatch) -> str:
    shown = f"{short(error.value, 60)} ({_a(type(error.part))})"
    if error.value is None:
        shown = "None"
    elif error.part is None:  # an item of a list, say
        shown = f"{short(error.value, 60)} (it holds None)"
    elif error.part is not error.value:
        shown = f"{short(error.value, 60)} ({short(error.part, 60)} is {_a(type(error.part))})"
    return f"{owner}.{name} is {_a(annotation)}, but {where} {shown}"


def _a(annotation: Any) -> str:
    """An annotation as a phrase: ``an int``, ``an int or None``, ``one of 'a', 'b'``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if isinstance(annotation, str) or origin not in (typing.Union, types.UnionType, Literal):
        if annotation is type(None):
            return "None"
        text = type_name(annotation)
        if isinstance(annotation, type) and issubclass(annotation, PurePath):
            text = "Path"
        return f"{'an' if text[:1].lower() in 'aeiou' else 'a'} {text}"
    if origin is Literal:
        return "one of " + ", ".join(short(a, 60) for a in args)
    return " or ".join(_a(a) for a in args)


def type_name(annotation: Any) -> str:
    if isinstance(annotation, str):
        return annotation
    # list[int] is no class, though Python 3.10's isinstance says it is a type.
    if isinstance(annotation, type) and typing.get_origin(annotation) is None:
        return annotation.__name__
    return str(annotation).replace("typing.", "")


_SCALAR_TYPES = {bool: "Boolean", int: "Int64", float: "Float64", str: "String"}


def unoptional(annotation: Any) -> Any:
    """``X`` for ``X | None`` and ``Optional[X]``; any other annotation as it is."""
    import types
    import typing

    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def annotation_type(annotation: Any) -> str | None:
    """The column type of a parameter annotated ``annotation``, if it fixes one."""
    import enum
    import typing
    from collections.abc import Mapping, Sequence
    from pathlib import PurePath

    # list[int] is no class, though Python 3.10's isinstance says it is a type.
    if isinstance(annotation, type) and typing.get_origin(annotation) is None:
        if annotation in _SCALAR_TYPES:
            return _SCALAR_TYPES[annotation]
        if issubclass(annotation, (PurePath, enum.Enum, dict)):
            return "String"  # a path's text, an enum member's name, a dict's JSON
        return None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        kinds = {_SCALAR_TYPES.get(type(a)) for a in args}
        if kinds == {"Int64", "Float64"}:
            return "Float64"
        return kinds.pop() if len(kinds) == 1 else None
    if origin in (dict, Mapping):
        return "String"
    homogeneous = origin is tuple and len(args) == 2 and args[1] is Ellipsis
    if (origin in (list, Sequence) and len(args) == 1) or homogeneous:
        inner = args[0]
        return f"List({_SCALAR_TYPES[inner]})" if inner in _SCALAR_TYPES else None
    return None
