"""Command-line text to parameter values, by each field's annotation.

The ``experiment`` command (:mod:`superparams._cli._parse`) owns the grammar; this room owns one
question: what does ``--lr 0.1,0.01`` mean for a field annotated ``float``? It knows the
annotations a dataclass field can carry (scalars, ``Literal``, ``Enum``, ``Optional``
and unions, lists and tuples, paths) and says what it expected when text does not fit.

Top-level commas separate searched values; brackets and quotes group, so
``--layers [64,64],[128]`` searches two lists and ``--name '"a,b"'`` is one string.
In an int or float field, ``START:END[:STEP]`` is a range with both ends included
(``1:5`` is 1 to 5, ``1:10:2`` is 1, 3, 5, 7, 9) and ``START:END:xF`` multiplies by F
(``1e-4:1e-1:x10``, ``16:128:x2``); see :func:`numbers`.
"""

from __future__ import annotations

import ast
import enum
import math
import os
import types
import typing
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any

from superparams.errors import did_you_mean

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_NONE = ("none", "null")


class BadValue(ValueError):
    """Text that does not parse as the annotation asks; ``hint`` may say more.

    :func:`expected` says, for the message, what the field would have accepted.
    """

    def __init__(self, hint: str = "") -> None:
        super().__init__(hint)
        self.hint = hint


class Unsettable(ValueError):
    """A field whose type has no text form (a nested experiment, an object)."""


def split(text: str) -> list[str]:
    """Split at the commas that are outside brackets and quotes.

    >>> split("1,[2,3],'a,b'")
    ['1', '[2,3]', "'a,b'"]
    """
    parts: list[str] = []
    depth, quote, start = 0, "", 0
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "[({":
            depth += 1
        elif char in "])}":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip() if parts else text)
    return parts


class BadRange(ValueError):
    """A range that is written right but gives no values, or too many; the message says."""


_MOST = 1_000_000  # values one range may give


def numbers(text: str, annotation: Any) -> list[Any] | None:
    """The values a range stands for in an int or float field; None if ``text`` is no
    range or the field takes no numbers.

    Both ends are included when the steps land on them; the arithmetic is decimal, so
    ``0.1:0.3:0.1`` gives 0.1, 0.2, 0.3 (never 0.30000000000000004).

    Raises:
        BadValue: the parts are not numbers of the field's type.
        BadRange: the range gives nothing (``5:1``, a step of 0) or too much.

    >>> numbers("1:5", int), numbers("1:10:3", int), numbers("1e-3:1e-1:x10", float)
    ([1, 2, 3, 4, 5], [1, 4, 7, 10], [0.001, 0.01, 0.1])
    """
    import decimal

    kind = _number_kind(annotation)
    parts = text.split(":")
    if kind is None or len(parts) not in (2, 3):
        return None
    start_text, end_text = parts[0].strip(), parts[1].strip()
    step_text = parts[2].strip() if len(parts) == 3 else "1"
    times = step_text[:1] in ("x", "X")
    try:
        if kind is int:
            start, end = decimal.Decimal(int(start_text)), decimal.Decimal(int(end_text))
            step = decimal.Decimal(int(step_text[1:] if times else step_text))
        else:
            start, end = decimal.Decimal(start_text), decimal.Decimal(end_text)
            step = decimal.Decimal(step_text[1:] if times else step_text)
    except (ValueError, decimal.InvalidOperation):
        raise BadValue from None
    if not all(n.is_finite() for n in (start, end, step)):
        raise BadValue
    written = text.strip()
    values = _by_factor(written, start, end, step) if times else _by_step(written, start, end, step)
    return [kind(v) for v in values]


def _number_kind(annotation: Any) -> type | None:
    annotation = _resolve(annotation)
    kinds = [a for a in _union_args(annotation) if a is not type(None)]
    if len(kinds) == 1 and kinds[0] in (int, float):
        return kinds[0]  # type: ignore[no-any-return]
    return None


def _by_step(text: str, start: Any, end: Any, step: Any) -> list[Any]:
    if step == 0:
        msg = f"{text} has a step of 0; write e.g. {_plain(start)}:{_plain(end)}:1"
        raise BadRange(msg)
    if (end - start) * step < 0:
        a, b = _plain(start), _plain(end)
        if step > 0:
            msg = f"{text} is empty: it counts up from {a} and {a} is past {b}; write {b}:{a}, "
            raise BadRange(msg + f"or {a}:{b}:-1 to count down")
        msg = f"{text} is empty: it counts down from {a} and {a} is below {b}; write {b}:{a}:"
        raise BadRange(msg + f"{_plain(-step)}, or {a}:{b} to count up")
    count = int((end - start) / step) + 1
    _check_count(text, count)
    return [start + i * step for i in range(count)]


def _by_factor(text: str, start: Any, end: Any, factor: Any) -> list[Any]:
    if start == 0:
        msg = f"{text} starts at 0, which no factor moves; start above 0"
        raise BadRange(msg)
    if start < 0 or end <= 0 or factor <= 0:
        msg = f"{text}: a range that multiplies needs both ends and the factor above 0"
        raise BadRange(msg)
    if factor == 1 or (end - start) * (factor - 1) < 0:
        a, b = _plain(start), _plain(end)
        if factor == 1:
            msg = f"{text} multiplies by 1, which never reaches {b}; write e.g. {a}:{b}:x2"
        else:
            msg = f"{text} is empty: multiplying {a} by {_plain(factor)} never reaches {b}"
        raise BadRange(msg)
    values, value = [], start
    up = factor > 1
    while value <= end if up else value >= end:
        values.append(value)
        _check_count(text, len(values))
        value *= factor
    return values


def _check_count(text: str, count: int) -> None:
    if count > _MOST:
        msg = f"{text} holds {count:,} values, more than {_MOST:,}; use a larger step, or --sample"
        raise BadRange(msg)


def _plain(number: Any) -> str:
    return str(number.normalize()) if number != number.to_integral() else str(int(number))


def is_bool(annotation: Any) -> bool:
    """Whether a field takes true or false (``--flag`` alone means true)."""
    if annotation is bool or annotation == "bool":
        return True
    args = [a for a in _union_args(annotation) if a is not type(None)]
    return len(args) == 1 and args[0] is bool


def parse(text: str, annotation: Any) -> Any:
    """One value from its text, as the annotation asks.

    Raises:
        BadValue: the text is not a value of that type.
        Unsettable: the type cannot be written on a command line.

    >>> parse("16", int), parse("[1,2]", list[int]), parse("none", int | None)
    (16, [1, 2], None)
    """
    annotation = _resolve(annotation)
    if annotation in (None, Any, object) or isinstance(annotation, str):
        return _guess(text)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return parse(text, args[0])
    if origin in (typing.Union, types.UnionType):
        return _parse_union(text, args)
    if origin is typing.Literal:
        return _parse_literal(text, args)
    if origin in (list, tuple, set, frozenset) or (
        origin is not None and _is_sequence(origin) and origin is not str
    ):
        return _parse_collection(text, annotation, origin, args)
    if origin is dict or annotation is dict:
        value = _literal(text)
        if not isinstance(value, dict):
            raise BadValue
        return value
    if annotation in (list, tuple, set, frozenset):
        return _parse_collection(text, annotation, annotation, ())
    if isinstance(annotation, type):
        return _parse_type(text, annotation)
    return _guess(text)


def _resolve(annotation: Any) -> Any:
    """An annotation left as text (unresolvable hints) mapped to a type where simple."""
    if not isinstance(annotation, str):
        return annotation
    simple = {"int": int, "float": float, "str": str, "bool": bool, "Path": PurePath}
    name = annotation.replace(" ", "")
    if name in simple:
        return simple[name]
    return annotation


def _parse_type(text: str, kind: type) -> Any:
    if kind is bool:
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise BadValue
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise BadValue from None
    if kind is float:
        try:
            number = float(text)
        except ValueError:
            raise BadValue from None
        return _finite(number, text)
    if kind is str:
        return _unquote(text)
    if issubclass(kind, enum.Enum):
        return _parse_enum(text, kind)
    if issubclass(kind, PurePath):
        path_type = kind if kind is not PurePath else _path()
        return path_type(os.path.expanduser(_unquote(text)))
    if _is_structured(kind):
        msg = f"{kind.__name__} values cannot be written on the command line"
        raise Unsettable(msg)
    try:
        return kind(_unquote(text))  # type: ignore[call-arg]  # a type built from text
    except Exception:
        raise BadValue from None


def _path() -> type[PurePath]:
    from pathlib import Path

    return Path


def _is_structured(kind: type) -> bool:
    import dataclasses

    return dataclasses.is_dataclass(kind) or hasattr(kind, "_sp_info")


def _parse_enum(text: str, kind: type[enum.Enum]) -> enum.Enum:
    members = list(kind)
    for member in members:
        if text == member.name:
            return member
    for member in members:
        if text.lower() == member.name.lower() or text == str(member.value):
            return member
    spellings = [m.name for m in members] + [str(m.value) for m in members]
    raise BadValue(did_you_mean(text, spellings))


def _parse_literal(text: str, choices: tuple[Any, ...]) -> Any:
    for choice in choices:
        if isinstance(choice, enum.Enum):
            if text in (choice.name, str(choice.value)):
                return choice
            continue
        try:
            value = _parse_type(text, type(choice))
        except BadValue:
            continue
        if value == choice and type(value) is type(choice):
            return choice
    raise BadValue(did_you_mean(text, [str(c) for c in choices]))


def _parse_union(text: str, args: tuple[Any, ...]) -> Any:
    optional = type(None) in args
    if optional and text.lower() in _NONE:
        return None
    kinds = [a for a in args if a is not type(None)]
    for kind in kinds:
        try:
            return parse(text, kind)
        except BadValue:
            continue
    raise BadValue


def _parse_collection(text: str, annotation: Any, origin: Any, args: tuple[Any, ...]) -> Any:
    stripped = text.strip()
    if not (stripped[:1] in "[(" and stripped[-1:] in "])" and len(stripped) >= 2):
        hint = " (write it in brackets, e.g. [1,2])"
        raise BadValue(hint)
    if not balanced(stripped):
        raise BadValue(_UNBALANCED)
    inner = stripped[1:-1].strip()
    items = split(inner) if inner else []
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(items) != len(args):
            hint = f" (with {len(args)} items)"
            raise BadValue(hint)
        return tuple(parse(item, arg) for item, arg in zip(items, args, strict=True))
    element = args[0] if args else None
    values = [parse(item, element) for item in items]
    if origin is tuple:
        return tuple(values)
    if origin in (set, frozenset):
        return origin(values)
    return values


def _is_sequence(origin: Any) -> bool:
    return isinstance(origin, type) and issubclass(origin, Sequence)


def _union_args(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
        if isinstance(value, str):
            return value
    return text


def _literal(text: str) -> Any:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise BadValue from None
    _check_floats(value)
    return value


def _guess(text: str) -> Any:
    """A value of no declared type: a Python literal if it is one, else the text.

    Text in brackets that do not match is refused rather than kept as text: it was
    meant as a list or a tuple.
    """
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        if text.strip()[:1] in "[({" and not balanced(text):
            raise BadValue(_UNBALANCED) from None
        return text
    _check_floats(value)
    return value


_UNBALANCED = " (its brackets do not match)"
_INFINITE = {"inf", "infinity"}
_NAN = " (nan cannot be a parameter: it is not equal to itself)"
_OVERFLOW = " (too large for a float; write inf for infinity)"


def balanced(text: str) -> bool:
    """Whether every bracket outside quotes is closed, by its own kind, in order.

    >>> balanced("[1,(2,3)]"), balanced("[1,[2]"), balanced("((1,2)"), balanced("'[' ")
    (True, False, False, True)
    """
    closing = {"[": "]", "(": ")", "{": "}"}
    stack: list[str] = []
    quote = ""
    for char in text:
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in closing:
            stack.append(closing[char])
        elif char in "])}" and (not stack or stack.pop() != char):
            return False
    return not stack and not quote


def _finite(number: float, text: str) -> float:
    """A float read from ``text``: nan, or an overflow to infinity, is refused.

    ``inf`` written as such is a value; ``1e999`` is a typo that Python reads as inf.
    """
    if math.isnan(number):
        raise BadValue(_NAN)
    if math.isinf(number) and text.strip().lstrip("+-").lower() not in _INFINITE:
        raise BadValue(_OVERFLOW)
    return number


def _check_floats(value: Any) -> None:
    """Refuse a literal whose floats overflowed (``[1e999]``): Python has no nan literal."""
    if isinstance(value, float) and not math.isfinite(value):
        raise BadValue(_OVERFLOW)
    if isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _check_floats(item)
    elif isinstance(value, dict):
        for item in value.values():
            _check_floats(item)


# -- what a type is called ---------------------------------------------------------------


def type_name(annotation: Any) -> str:
    """How a field's type reads in help: ``int``, ``list[int]``, ``{adam,sgd}``."""
    annotation = _resolve(annotation)
    if annotation is None:
        return "value"
    if isinstance(annotation, str):
        return annotation
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Literal:
        return "{" + ",".join(str(getattr(a, "name", a)) for a in args) + "}"
    if origin in (typing.Union, types.UnionType):
        return " | ".join("None" if a is type(None) else type_name(a) for a in args)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "{" + ",".join(m.name for m in annotation) + "}"
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is PurePath:
        return "Path"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def expected(annotation: Any) -> str:
    """What a value of ``annotation`` is, for an error: ``an int``, ``one of 'a', 'b'``."""
    annotation = _resolve(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("none" if a is type(None) else expected(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) if isinstance(a, str) else str(a) for a in args)
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "an int"
    if annotation is float:
        return "a float"
    if annotation is str:
        return "a string"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(m.name for m in annotation)
    if isinstance(annotation, type) and issubclass(annotation, PurePath):
        return "a path"
    name = type_name(annotation)
    return f"an {name}" if name[:1] in "aeiou" else f"a {name}"
