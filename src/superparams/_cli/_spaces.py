"""A request's field values applied to each space an experiment's name stands for.

A class becomes ``cls(**values)``; a space the file defines (a union) gets the values in
each of its parts; a dotted flag (``--model.width``) sets the field in each nested
experiment its field holds. A value the class refuses is a usage error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from superparams._declared import declared
from superparams.errors import UsageError

if TYPE_CHECKING:
    from superparams._cli._requests import Request
    from superparams._experiment import Experiment
    from superparams._space import Space


def space_of(target: type[Experiment] | Space[Any], request: Request) -> Space[Any]:
    """The space a class (or a space the file defines) spans with the request's values."""
    from superparams.errors import ExperimentError, SearchSpaceError

    cls = target if isinstance(target, type) else target.experiment_class
    info = declared(cls)
    derived = {n for n, _ in info.derived}
    values: dict[str, Any] = {}
    nested: dict[str, dict[str, tuple[str, str | None]]] = {}
    for name, (flag, text) in request.overrides.items():
        head, dot, rest = name.partition(".")
        if head in derived:
            msg = (
                f"{flag}: {cls.__name__}.{head} is derived from the other fields; it cannot be set"
            )
            raise UsageError(msg)
        if dot and head in info.annotations:
            nested.setdefault(head, {})[rest] = (flag, text)
        elif name in info.annotations:
            values[name] = _field_value(flag, text, info.annotations.get(name))
    try:
        if isinstance(target, type):
            missing = [n for n in info.required if n not in values]
            if missing:
                flags = ", ".join(f"--{n}" for n in missing)
                why = "they have no default" if len(missing) > 1 else "it has no default"
                msg = f"{cls.__name__} needs {flags}: {why}"
                raise UsageError(msg)
            space: Space[Any] = cls(**values)
        else:
            space = _with_values(target, values)
        if nested:
            space = _with_nested(space, nested)
    except (ExperimentError, SearchSpaceError) as error:  # a value the class refuses
        raise UsageError(str(error)) from None
    sample = request.sample
    if sample is not None:
        try:
            space = space.sample(sample, request.seed if request.seed is not None else 0)
        except SearchSpaceError as error:  # more than the space holds: the words are wrong
            msg = f"--sample {sample}: {error}"
            raise UsageError(msg) from None
    elif request.seed is not None and not getattr(request, "optimize", None):
        flag = request.given["seed"].split()[0]
        msg = f"{flag} is the seed of --sample; add --sample N"
        raise UsageError(msg)
    try:
        if not space.enumerable:
            if request.command in ("status", "results"):
                return space  # no list of settings: they show everything stored
            if getattr(request, "optimize", None):
                return space  # a search proposes its settings itself
            drawn = [n for n in info.fields if is_distribution(space, n)]
            msg = (
                f"{cls.__name__} draws {', '.join(drawn) or 'a field'} from a distribution, so "
                "its settings cannot be listed; run a sample of them: --sample N [--sample-seed S]"
            )
            raise UsageError(msg)
        len(space)
    except SearchSpaceError as error:  # linked fields of unequal lengths, say
        raise UsageError(str(error)) from None
    return space


def _with_values(space: Space[Any], values: dict[str, Any]) -> Space[Any]:
    """A space the file defines, with the fields given set in each of its parts."""
    import dataclasses

    from superparams._experiment import Experiment
    from superparams._space import Union

    if not values:
        return space
    if isinstance(space, Union):
        return Union([_with_values(part, values) for part in space.parts])
    if isinstance(space, Experiment):
        return dataclasses.replace(space, **values)  # type: ignore[type-var]
    flags = ", ".join(f"--{n}" for n in values)
    msg = f"{flags}: {space!r} is a sample; set fields in the space it samples"
    raise UsageError(msg)


def _with_nested(space: Space[Any], nested: dict[str, dict[str, tuple[str, str | None]]]) -> Any:
    """The space with dotted flags (``--model.width 512``) set in each nested experiment
    its fields hold: in each candidate of a search, keeping what else they set."""
    import dataclasses

    from superparams._space import Union

    if isinstance(space, Union):
        return Union([_with_nested(part, nested) for part in space.parts])
    where = type(space).__name__
    changes = {h: _set_in(space.__dict__.get(h), f, f"{where}.{h}") for h, f in nested.items()}
    return dataclasses.replace(space, **changes)  # type: ignore[type-var]


def _set_in(held: Any, flags: dict[str, tuple[str, str | None]], where: str) -> Any:
    """``held`` (a nested experiment, or a search over some) with the dotted values set."""
    import dataclasses

    from superparams._experiment import Experiment
    from superparams._space import Grid

    if isinstance(held, Grid):
        points = [_set_in(p, flags, where) for p in held.points]
        return type(held)(points, link=held.link, weights=held.weights)
    if not isinstance(held, Experiment):
        flag = next(iter(flags.values()))[0]
        msg = f"{flag}: {where} holds {held!r}, not an experiment whose fields could be set"
        raise UsageError(msg)
    info = declared(type(held))
    values: dict[str, Any] = {}
    deeper: dict[str, dict[str, tuple[str, str | None]]] = {}
    for name, (flag, text) in flags.items():
        head, dot, rest = name.partition(".")
        if head in {n for n, _ in info.derived}:
            msg = f"{flag}: {type(held).__name__}.{head} is derived from the other fields"
            raise UsageError(msg + "; it cannot be set")
        if dot:
            deeper.setdefault(head, {})[rest] = (flag, text)
        else:
            values[name] = _field_value(flag, text, info.annotations.get(name))
    for head, more in deeper.items():
        values[head] = _set_in(held.__dict__.get(head), more, f"{where}.{head}")
    return dataclasses.replace(held, **values)  # type: ignore[type-var]


def is_distribution(space: Any, name: str) -> bool:
    from superparams._values import Distribution

    return isinstance(space.__dict__.get(name), Distribution)


def _field_value(flag: str, text: str | None, annotation: Any) -> Any:
    """A field's value from its text: one value, or a search over several."""
    from superparams._cli._values import (
        BadRange,
        BadValue,
        Unsettable,
        expected,
        numbers,
        parse,
        split,
    )
    from superparams._identity import Mismatch, conform
    from superparams._values import search

    if text is None:
        return True
    items = split(text)
    values: list[Any] = []
    for item in items:
        try:
            spanned = numbers(item, annotation)
        except BadValue:
            example = (
                "1:5 or 1:9:2" if "int" in expected(annotation) else "0.1:0.5:0.1 or 1e-4:1:x10"
            )
            msg = (
                f"{flag} expects {expected(annotation)}, or a range of them such as "
                f"{example}, got {item!r}"
            )
            raise UsageError(msg) from None
        except BadRange as error:
            msg = f"{flag} {error}"
            raise UsageError(msg) from None
        try:
            # the text read by the annotation, then the check a value from Python meets
            if spanned is not None:
                values.extend(conform(v, annotation) for v in spanned)
            else:
                values.append(conform(parse(item, annotation), annotation))
        except (BadValue, Mismatch) as error:
            hint = error.hint if isinstance(error, BadValue) else ""
            within = f" (in {text!r})" if len(items) > 1 else ""
            msg = f"{flag} expects {expected(annotation)}, got {item!r}{within}{hint}"
            raise UsageError(msg) from None
        except Unsettable as error:
            msg = f"{flag} cannot be set from the command line: {error}"
            raise UsageError(msg) from None
    return values[0] if len(values) == 1 else search(*values)
