"""The columns of an experiment's results: those the store adds, and the parameters' types.

Every results table ends with the bookkeeping columns (:data:`BOOKKEEPING`), each with
its type even in an empty table; a parameter column whose annotation fixes a type
(:func:`column_types`) has that type too. The model reads this to reserve the names (a
field may not be called ``status``), the store to type its tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from superparams._experiment import Experiment

#: The bookkeeping columns every results table ends with, and their polars types (see
#: :func:`_dtype`): each column here has its type in every table, even an empty one.
BOOKKEEPING = {
    "status": "String",
    "attempt": "Int64",
    "cause": "String",
    "error": "String",
    "traceback": "String",
    "started": "Datetime(us, UTC)",
    "seconds": "Float64",
    "worker": "Int64",
    "log": "String",
    "workdir": "String",
    "stopped": "String",
    "code_version": "String",
    "git_commit": "String",
    "git_dirty": "Boolean",
}


_SCALAR_TYPES = {bool: "Boolean", int: "Int64", float: "Float64", str: "String"}


def column_types(cls: type[Experiment], prefix: str = "") -> dict[str, str]:
    """The polars type of each parameter column of an experiment class, by annotation.

    A nested experiment gives its fields' dotted columns (``model.width``). A field
    whose annotation fixes no type (``Any``, a union, a class of the user's) is left
    out: its column is typed by its values.
    """
    from superparams._experiment import Experiment

    info = cls._sp_info()
    out: dict[str, str] = {}
    for name in (*info.fields, *(n for n, _ in info.derived)):
        annotation = _unoptional(info.annotations.get(name))
        if isinstance(annotation, type) and issubclass(annotation, Experiment):
            out.update(column_types(annotation, f"{prefix}{name}."))
            continue
        dtype = _annotation_type(annotation)
        if dtype is not None:
            out[f"{prefix}{name}"] = dtype
    return out


def _unoptional(annotation: Any) -> Any:
    """``X`` for ``X | None`` and ``Optional[X]``; any other annotation as it is."""
    import types
    import typing

    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def _annotation_type(annotation: Any) -> str | None:
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
