"""An experiment class as a run records it, so that reads need not import its module.

Importing a user's experiment can take seconds (``import torch``) where reading its
results takes a fraction of one. So each run records, in ``class.json`` (kept by
:mod:`superparams._store._classfile`), what a read needs of the class: its fields with
their annotations and defaults (the values of each ``search(...)``, ``seeds(...)`` as
such, with their encodings), the version of its code, a digest of the ids of its default
space, and the size, time and content hash of each of the user's module files loaded
then (:func:`superparams._code.user_files`).

A read uses the record (:func:`rebuilt`) only while every one of those files is as it
was (:func:`unchanged`), only if none was saved after the run's process started (it may
not be the code the run loaded), and only for a *plain* class, one whose settings follow from the
record alone: fields of ``int``, ``float``, ``str``, ``bool`` (or ``None`` beside one),
holding such values or searches over them; no derived fields, ``__post_init__``,
``is_valid``, properties, nested experiments or bases other than experiments. It
rebuilds a dataclass subclass of ``Experiment`` with those fields and no ``run``, and
checks that its default space gives the recorded ids; anything else (a changed file, a
record missing or of another version, a class not plain, a digest that differs) leaves
the read to import the module as it always did. This room reads and writes no file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from superparams._experiment import Experiment

#: The version of what :func:`describe` writes; a record of another is not used.
VERSION = 1

_SCALARS: dict[str, Any] = {"int": int, "float": float, "str": str, "bool": bool, "None": None}
_NAMES = {v: k for k, v in _SCALARS.items() if v is not None}
# What a class body holds that is no one's code nor data: Python's own, superparams', and
# (with superparams._code.GENERATED) what dataclass writes from the field declarations.
_MADE = frozenset(
    {
        "__module__",
        "__qualname__",
        "__doc__",
        "__annotations__",
        "__annotate__",
        "__dict__",
        "__weakref__",
        "__dataclass_fields__",
        "__dataclass_params__",
        "__match_args__",
        "__firstlineno__",
        "__static_attributes__",
        "__orig_bases__",
        "__parameters__",
        "_sp_info_cache",
        "run",
        "stop",
    }
)


def describe(cls: type, code_version: str) -> dict[str, Any]:
    """What a run records of ``cls``, whose code is at ``code_version``.

    ``plain`` says whether a read may rebuild the class from it; a class that is not
    plain is recorded as such, with its files, so a read knows to import it.
    """
    from superparams._code import code_hash, process_started, user_files

    files = {path: _file_facts(path) for path in user_files(cls)}
    # A file saved since this process started may not be what it runs (an edit made
    # while torch was being imported): then the record must not stand for the class.
    started = process_started()
    edited = started is not None and any(
        f is None or f["mtime_ns"] > started * 1e9 for f in files.values()
    )
    recorded: dict[str, Any] = {
        "version": VERSION,
        "class": cls.__qualname__,
        "module": cls.__module__,
        "code_version": code_version,
        "files": {p: f for p, f in files.items() if f is not None},
        "plain": False,
    }
    try:
        fields = _plain_fields(cls)
        # the code as it is on disk now is the code that runs (else it was edited)
        same = code_hash(cls) == code_version
    except Exception:  # a class too odd to read: it is not plain, and reads import it
        fields, same = None, False
    if fields is not None and same and not edited:
        ids = _ids_digest(cls)
        if ids is not None:
            recorded.update(plain=True, fields=fields, ids=ids)
    return recorded


def _file_facts(path: str) -> dict[str, Any] | None:
    try:
        info = os.stat(path)
        with open(path, "rb") as f:
            content = f.read()
    except OSError:
        return None
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "xxh3": _hash(content)}


def _hash(content: bytes) -> str:
    import xxhash

    return str(xxhash.xxh3_128_hexdigest(content))


def unchanged(recorded: Mapping[str, Any]) -> bool:
    """Whether each file the record lists holds what it held: the same size and time,
    or, when those differ (a copy, a checkout), the same content."""
    files = recorded.get("files")
    if not isinstance(files, dict) or not files:
        return False
    for path, facts in files.items():
        if not isinstance(facts, dict):
            return False
        try:
            info = os.stat(path)
        except OSError:
            return False
        if info.st_size != facts.get("size"):
            return False
        if info.st_mtime_ns == facts.get("mtime_ns"):
            continue
        try:
            with open(path, "rb") as f:
                if _hash(f.read()) != facts.get("xxh3"):
                    return False
        except OSError:
            return False
    return True


# -- what a plain class records ------------------------------------------------------------


def _plain_fields(cls: type) -> list[dict[str, Any]] | None:
    """Each field's name, annotation text and default, or None if the class is not plain."""
    from superparams._code import GENERATED
    from superparams._declared import declared
    from superparams._experiment import Experiment
    from superparams._space import Space

    if not isinstance(cls, type) or not issubclass(cls, Experiment):
        return None
    info = declared(cls)
    if info.derived or info.post_init is not None or cls.is_valid is not Experiment.is_valid:
        return None
    for klass in cls.__mro__:
        if klass in (Experiment, Space, typing.Generic, object):
            continue
        if not issubclass(klass, Experiment):
            return None  # a mixin: its code may shape what a setting is
        for name, member in vars(klass).items():
            if name in _MADE or name in info.annotations or _generated(name, member, GENERATED):
                continue
            if name.startswith("__") or not _is_function(member):
                return None  # a property, a class attribute, a hook of Python's
    fields = []
    for name in info.fields:
        text = annotation_text(info.annotations.get(name))
        if text is None:
            return None
        field: dict[str, Any] = {"name": name, "annotation": text}
        if name in info.defaults:
            default = _default_record(info.defaults[name], name)
            if default is None:
                return None
            field["default"] = default
        fields.append(field)
    return fields


def _generated(name: str, member: Any, generated: frozenset[str]) -> bool:
    """Whether a class attribute is a method dataclass wrote (not one of the user's)."""
    code = getattr(member, "__code__", None)
    made_in = ("<string>", dataclasses.__file__)  # __repr__ is wrapped by dataclasses'
    return name in generated and (code is None or code.co_filename in made_in)


def _is_function(member: Any) -> bool:
    import types

    if isinstance(member, (staticmethod, classmethod)):
        member = member.__func__
    return isinstance(member, types.FunctionType)


def annotation_text(annotation: Any) -> str | None:
    """An annotation as text a plain class may have (``int``, ``float | None``), or None."""
    import types

    if annotation is type(None) or annotation is None:
        return "None"
    if isinstance(annotation, type) and annotation in _NAMES:
        return _NAMES[annotation]
    args = typing.get_args(annotation)
    parts = [annotation_text(a) for a in args]
    if not args or None in parts:
        return None
    if isinstance(annotation, types.UnionType):
        return " | ".join(typing.cast("list[str]", parts))
    if typing.get_origin(annotation) is typing.Union:
        return f"Union[{', '.join(typing.cast('list[str]', parts))}]"
    return None


def annotation_of(text: str) -> Any:
    """The annotation :func:`annotation_text` wrote as ``text``.

    Raises:
        KeyError: ``text`` is not one it writes.
    """
    import functools
    import operator

    if text.startswith("Union[") and text.endswith("]"):
        return typing.Union[tuple(_scalar(t) for t in text[6:-1].split(", "))]  # noqa: UP007
    if " | " in text:
        return functools.reduce(operator.or_, (_scalar(t) for t in text.split(" | ")))
    return _scalar(text)


def _scalar(text: str) -> Any:
    kind = _SCALARS[text]
    return type(None) if kind is None else kind


def _is_scalar(value: Any) -> bool:
    return value is None or type(value) in (int, float, str, bool)


def _default_record(default: Any, name: str) -> dict[str, Any] | None:
    """A field's default as the record keeps it, with the encoding of each value."""
    from superparams._identity import encode
    from superparams._space import Grid

    if _is_scalar(default):
        return {"value": default, "encoding": encode(default, name)}
    if type(default) is not Grid or not all(_is_scalar(p) for p in default.points):
        return None
    return {
        "points": list(default.points),
        "encodings": [encode(p, name) for p in default.points],
        "link": default.link,
        "weights": list(default.weights) if default.weights is not None else None,
        "replicate": default.replicate,
        "maker": default.maker,
    }


def _ids_digest(cls: type) -> str | None:
    """A digest of the size of the class's default space and the ids of a spread of its
    settings (the first 64, and 64 more across it), or None if it has no default space.

    The ids follow from the fields' encodings, which the record holds and a read checks
    one by one; this checks that they combine as they did (field order, links, seeds)
    without working out every id.
    """
    from superparams._experiment import space_layout

    try:
        space = cls()
        if not space.enumerable:
            return None
        layout = space_layout(space)
        size = layout.size
    except Exception:  # no default space (a field without a default), or no list of it
        return None
    step = max(1, size // 64)
    positions = sorted({*range(min(size, 64)), *range(0, size, step), size - 1} - {-1})
    ids = [str(size), *(layout.setting_id(i) for i in positions)]
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


# -- a read --------------------------------------------------------------------------------


def rebuilt(recorded: Mapping[str, Any], path: Path) -> type[Experiment] | None:
    """The class ``recorded`` describes, defined in ``path``, or None when the record
    cannot stand for it (not plain, another version, or a rebuilt class whose default
    space has other ids than the recorded)."""
    if recorded.get("version") != VERSION or recorded.get("plain") is not True:
        return None
    try:
        cls = _make(recorded, path)
    except Exception:  # a record this code did not write: the module is imported
        return None
    if cls is None or _ids_digest(cls) != recorded.get("ids"):
        return None
    return cls


def _make(recorded: Mapping[str, Any], path: Path) -> type[Experiment] | None:
    from superparams._experiment import Experiment
    from superparams._identity import encode
    from superparams._space import Grid

    name, module = recorded["class"], recorded["module"]
    if not isinstance(name, str) or not isinstance(module, str) or "." in name:
        return None
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__module__": module, "__qualname__": name}
    for field in recorded["fields"]:
        field_name = field["name"]
        annotations[field_name] = annotation_of(field["annotation"])
        default = field.get("default")
        if default is None:
            continue
        if "points" in default:
            points = default["points"]
            if [encode(p, field_name) for p in points] != default["encodings"]:
                return None
            weights = default["weights"]
            grid = Grid(points, link=default["link"], weights=weights)
            if default["replicate"]:
                grid.replicate = True
            if default["maker"] != Grid.maker:
                grid.maker = default["maker"]
            namespace[field_name] = grid
        else:
            if encode(default["value"], field_name) != default["encoding"]:
                return None
            namespace[field_name] = default["value"]
    namespace["__annotations__"] = annotations
    cls: type[Experiment] = type(name, (Experiment,), namespace)
    type.__setattr__(cls, "_sp_source", path)
    type.__setattr__(cls, "_sp_code", recorded["code_version"])
    return cls if dataclasses.is_dataclass(cls) else None
