"""A setting's identity: a short id computed from its parameter values alone.

The id is what makes resuming work: the store knows a setting by its id, never by its
position in a grid, so a reordered, widened or narrowed search finds the settings it
already ran. The id must therefore be the same in every process, run and supported
Python version, and differ for different values.

How a value is encoded (a canonical JSON text, hashed with BLAKE2b to 16 hex digits):

* First the value is canonicalised by its field's annotation: in a ``float`` field,
  ``1``, ``1.0`` and ``numpy.float64(1)`` are all the float ``1.0``; numpy scalars become
  Python scalars; a ``str`` in a ``Path`` field becomes a ``Path``. (:func:`conform` has
  already checked the value against that annotation, once per class and per instance
  made, never per setting; it refuses what does not fit, e.g. ``2.7`` in an ``int`` field.)
* ``None``, ``bool``, ``int``, ``str`` are themselves; a float is its shortest exact
  ``repr``; lists and tuples are JSON arrays.
* Everything else is a one-key object naming its kind: ``{"$dict": ...}``,
  ``{"$set": [...]}`` (sorted), ``{"$bytes": hex}``, ``{"$path": str}``,
  ``{"$enum": "module.Class.MEMBER"}``, ``{"$ndarray": [dtype, shape, XXH3-128 of data]}``
  (anything with ``__array__``, e.g. a torch tensor, the same way),
  ``{"$experiment": ["module.Class", {field: value}]}`` for nested experiments and other
  dataclasses, ``{"$ref": "module.qualname"}`` for importable functions and classes.
* A value of any other kind (a lambda, an open file, a model object) raises
  :class:`IdentityError`. Give such an object a method ``__superparams_id__(self) -> str``
  returning a stable text, or keep it out of the parameters (a ``ClassVar``, or built in
  ``run()``).

The id hashes ``{field name: encoding}`` with the names sorted, so reordering fields
keeps ids; adding, removing or renaming a field changes every id. The store carries
earlier results across an added field with a default (they count as run with that
default); see :mod:`superparams._store`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import json
import math
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any

from superparams.errors import IdentityError

_quote = json.encoder.encode_basestring_ascii

ID_LENGTH = 16  # hex digits: 64 bits, so a million settings collide with odds below 1e-7


def setting_id(encodings: Mapping[str, str]) -> str:
    """The id of a setting whose fields encode to ``encodings``, in any order.

    >>> setting_id({"lr": "0.1", "steps": "100"}) == setting_id({"steps": "100", "lr": "0.1"})
    True
    """
    text = "{" + ",".join(f"{json.dumps(k)}:{encodings[k]}" for k in sorted(encodings)) + "}"
    return digest(text)


def digest(text: str) -> str:
    """The id of a setting whose canonical text is ``text``."""
    return hashlib.blake2b(text.encode(), digest_size=ID_LENGTH // 2).hexdigest()


def encode(value: Any, where: str = "value") -> str:
    """The canonical JSON text of a value; ``where`` names it in an error.

    >>> encode([1, 2.5, "a"])
    '[1,2.5,"a"]'
    """
    # The common scalars directly, exactly as json.dumps writes them: ids are made for
    # every setting, and a grid of a million values encodes a million of them.
    kind = type(value)
    if kind is int:
        return int.__repr__(value)
    if kind is str:
        return _quote(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    if kind is bool:
        return "true" if value else "false"
    return json.dumps(_plain(value, where), sort_keys=True, separators=(",", ":"))


def _plain(value: Any, where: str) -> Any:  # one return per kind of value
    if isinstance(value, enum.Enum):
        return {"$enum": f"{_qualname(type(value))}.{value.name}"}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        items = [(encode(k, where), _plain(v, f"{where}[{k!r}]")) for k, v in value.items()]
        return {"$dict": sorted(items)}
    if isinstance(value, (set, frozenset)):
        return {"$set": sorted(encode(v, where) for v in value)}
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": bytes(value).hex()}
    if isinstance(value, PurePath):
        return {"$path": value.as_posix()}
    custom = getattr(value, "__superparams_id__", None)
    if callable(custom):
        return {"$custom": [_qualname(type(value)), str(custom())]}
    own: Callable[[], Mapping[str, str]] | None = getattr(value, "_sp_encodings", None)
    if callable(own) and not isinstance(value, type):  # a nested experiment: its own fields
        fields = {k: json.loads(v) for k, v in own().items()}
        return {"$experiment": [_qualname(type(value)), fields]}
    if not isinstance(value, type) and dataclasses.is_dataclass(value):
        fields = {
            f.name: _plain(getattr(value, f.name), f"{where}.{f.name}")
            for f in dataclasses.fields(value)
            if not f.name.startswith("_")
        }
        return {"$experiment": [_qualname(type(value)), fields]}
    if hasattr(value, "dtype") and hasattr(value, "item") and getattr(value, "shape", None) == ():
        return _plain(value.item(), where)  # a numpy scalar
    if hasattr(value, "__array__"):
        return {"$ndarray": _array_digest(value)}
    if isinstance(value, (types.FunctionType, type, types.BuiltinFunctionType)):
        name = _qualname(value)
        if "<" not in name:  # <lambda>, <locals>: nothing to import it by
            return {"$ref": name}
    msg = (
        f"{where} holds {_describe(value)}, which has no stable encoding for a setting's id; "
        "use plain data (numbers, strings, lists, dicts, arrays), give its class a "
        "__superparams_id__(self) -> str method, or make it a ClassVar"
    )
    raise IdentityError(msg)


def _array_digest(value: Any) -> list[Any]:
    import numpy as np  # only reached for arrays, so numpy is already there
    import xxhash

    array = np.ascontiguousarray(np.asarray(value))
    if array.dtype.hasobject:  # pointers, not data: encode the objects themselves
        return [array.dtype.str, list(array.shape), _plain(array.tolist(), "array")]
    # XXH3 reads gigabytes a second where BLAKE2b reads a few hundred megabytes: an
    # experiment holding a large dataset hashes it once per run, before anything runs.
    digest = xxhash.xxh3_128(array.view(np.uint8).data).hexdigest()
    return [array.dtype.str, list(array.shape), digest]


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"a {type(value).__name__} ({text})"


def canonical(value: Any, annotation: Any) -> Any:
    """``value`` converted to the type its field declares, where that is lossless.

    >>> canonical(1, float)
    1.0
    """
    kind = _kind_of(annotation)
    if kind is None or kind is type(value):
        if type(value) in _PLAIN:
            return value  # already the field's type: the common case, made fast
        if kind is None:
            return _unwrap_scalar(value)
    value = _unwrap_scalar(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is PurePath and isinstance(value, str):
        return annotation_path_type(annotation)(value)
    if isinstance(kind, type) and issubclass(kind, enum.Enum) and not isinstance(value, kind):
        try:
            return kind(value)
        except ValueError:
            return value
    return value


_PLAIN = frozenset({int, float, str, bool, type(None)})
_KINDS: dict[Any, Any] = {}


def _kind_of(annotation: Any) -> Any:
    if annotation is None:
        return None
    try:
        return _KINDS[annotation]
    except KeyError:
        kind = _KINDS[annotation] = _scalar_kind(annotation)
        return kind
    except TypeError:  # an unhashable annotation: work it out each time
        return _scalar_kind(annotation)


def _unwrap_scalar(value: Any) -> Any:
    # numpy scalars (and 0-d arrays) hold one Python number; compare and store that.
    if (
        type(value) not in (bool, int, float, str)
        and hasattr(value, "dtype")
        and getattr(value, "shape", None) == ()
        and hasattr(value, "item")
    ):
        return value.item()
    return value


def _scalar_kind(annotation: Any) -> Any:
    """``float``, ``int``, ``bool``, ``PurePath``, an Enum class, or None, from a hint."""
    if isinstance(annotation, str):
        name = annotation.replace(" ", "")
        known = {"float": float, "int": int, "bool": bool, "Path": PurePath}
        for options in (name.split("|"), [name.removeprefix("Optional[").removesuffix("]")]):
            named = {o for o in options if o != "None"}
            if len(named) == 1:
                return known.get(named.pop())
        return None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _scalar_kind(kinds[0]) if len(kinds) == 1 else None
    if isinstance(annotation, type):
        if issubclass(annotation, PurePath):
            return PurePath
        if annotation in (float, int, bool) or issubclass(annotation, enum.Enum):
            return annotation
    return None


def annotation_path_type(annotation: Any) -> type[PurePath]:
    """The concrete path class a ``Path``-like annotation asks for."""
    if isinstance(annotation, type) and issubclass(annotation, PurePath):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, PurePath):
                return arg
    from pathlib import Path

    return Path


# -- what a field's annotation accepts -----------------------------------------------------


class Mismatch(TypeError):
    """A value its field's annotation does not accept; ``part`` is the item that is wrong."""

    def __init__(self, value: Any, part: Any) -> None:
        super().__init__(repr(value))
        self.value, self.part = value, part


def conform(value: Any, annotation: Any) -> Any:
    """``value`` as its field's annotation declares it, converted where that is lossless.

    The one check of a field's value, at class creation, at construction and on the
    command line alike: a ``float`` field takes ``1`` as ``1.0``, numpy scalars of the
    matching kind become Python scalars, a ``str`` becomes a ``Path`` or an Enum's value
    its member; an ``int`` field refuses ``2.7`` and ``True``. Optional and union types,
    ``Literal``, lists, tuples, sets and dicts (with their items), Enums, paths, nested
    experiments and other classes are checked; an annotation it does not understand (a
    ``Callable``, a ``TypeVar``, a name that cannot be resolved) takes any value.

    Raises:
        Mismatch: the value is not of the annotated type.

    >>> conform(1, float), conform([1, 2], list[float])
    (1.0, [1.0, 2.0])
    """
    kind = type(value)
    if kind is annotation and kind in _PLAIN:
        return value  # the common case, made fast: an int, float, str or bool as declared
    try:
        return _conform(value, annotation)
    except Mismatch as error:
        if error.value is not value:  # an item was wrong: say so about the whole value
            raise Mismatch(value, error.part) from None
        raise


_NONE = type(None)
_TEXT: dict[str, Any] = {"int": int, "float": float, "str": str, "bool": bool, "None": _NONE}


def _from_text(annotation: str) -> Any:
    """A simple annotation left as text (``"int"``, ``"float | None"``), or None."""
    from pathlib import Path

    named = {**_TEXT, "Path": Path}
    text = annotation.replace(" ", "")
    if text.startswith("Optional[") and text.endswith("]"):
        text = text[len("Optional[") : -1] + "|None"
    options = [named.get(part) for part in text.split("|")]
    if None in options:
        return None
    if len(options) == 1:
        return options[0]
    return typing.Union[tuple(options)]  # noqa: UP007  # built from parts at runtime


def _conform(value: Any, annotation: Any) -> Any:  # one branch per kind of annotation
    if annotation is None or annotation is Any or annotation is object:
        return value
    if isinstance(annotation, str):
        annotation = _from_text(annotation)
        if annotation is None:
            return value
    origin = typing.get_origin(annotation)
    if origin is None:
        return _conform_to_type(value, annotation) if isinstance(annotation, type) else value
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _conform(value, args[0])
    if origin in (typing.Union, types.UnionType):
        return _conform_union(value, args)
    if origin is typing.Literal:
        plain = _unwrap_scalar(value)
        for choice in args:
            if type(plain) is type(choice) and plain == choice:
                return choice
        raise Mismatch(value, value)
    if origin in (list, set, frozenset, tuple, dict):
        return _conform_collection(value, origin, args)
    return value  # Callable[...], type[...], abstract collections: taken as they are


def _conform_union(value: Any, args: tuple[Any, ...]) -> Any:
    converted: list[Any] = []
    for arg in args:
        try:
            out = _conform(value, arg)
        except Mismatch:
            continue
        if out is value:
            return value  # an option that takes it as it is beats one that converts it
        converted.append(out)
    if converted:
        return converted[0]
    raise Mismatch(value, value)


def _conform_to_type(value: Any, kind: type) -> Any:
    if kind is _NONE:
        if value is None:
            return None
        raise Mismatch(value, value)
    if kind in (bool, int, float, str):
        plain = _unwrap_scalar(value)
        if kind is float and type(plain) is int:
            with contextlib.suppress(OverflowError):
                if float(plain) == plain:  # lossless: every int up to 2**53, and more
                    return float(plain)
            raise Mismatch(value, value)
        if type(plain) is kind or (
            kind is not bool and isinstance(plain, kind) and not isinstance(plain, bool)
        ):
            return plain if kind is not float else float(plain)
        raise Mismatch(value, value)
    if issubclass(kind, PurePath):
        if isinstance(value, kind):
            return value
        if isinstance(value, (str, PurePath)):
            return annotation_path_type(kind)(value)
        raise Mismatch(value, value)
    if issubclass(kind, enum.Enum):
        if isinstance(value, kind):
            return value
        try:
            return kind(_unwrap_scalar(value))
        except ValueError:
            raise Mismatch(value, value) from None
    experiment_class = getattr(value, "experiment_class", None)
    if hasattr(kind, "_sp_info") and isinstance(experiment_class, type):
        if issubclass(experiment_class, kind):  # a nested space (a union, a sample) too
            return value
        raise Mismatch(value, value)
    try:
        fits = isinstance(value, kind)
    except TypeError:  # a protocol that cannot be checked at runtime: taken as it is
        return value
    if not fits:
        raise Mismatch(value, value)
    return value


def _conform_collection(value: Any, origin: Any, args: tuple[Any, ...]) -> Any:
    if not isinstance(value, origin):
        raise Mismatch(value, value)
    if not args:
        return value
    if origin is dict:
        key, item = (*args, Any)[:2]
        pairs = [(_conform(k, key), _conform(v, item)) for k, v in value.items()]
        same = all(a is k and b is v for (a, b), (k, v) in zip(pairs, value.items(), strict=True))
        return value if same or type(value) is not dict else dict(pairs)
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        if len(value) != len(args):
            raise Mismatch(value, value)
        items = [_conform(v, a) for v, a in zip(value, args, strict=True)]
    else:
        items = [_conform(v, args[0]) for v in value]
    if all(a is b for a, b in zip(items, value, strict=True)) or type(value) is not origin:
        return value  # nothing converted, or a subclass (a namedtuple) kept as it is
    return origin(items)
