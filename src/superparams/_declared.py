"""What an experiment class declares: its fields, their annotations and defaults.

This room owns reading a class's declaration, once per class (:func:`declared`), and
resolving its annotations (:func:`class_hints`). It checks nothing and makes nothing:
:mod:`superparams._experiment` makes the class, :mod:`superparams._fields` checks values.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from superparams._values import Derived


@dataclass(frozen=True)
class ClassInfo:
    """What an experiment class declares, worked out once per class."""

    fields: tuple[str, ...]  # parameters, in declaration order (derived fields excluded)
    derived: tuple[tuple[str, Derived], ...]
    annotations: dict[str, Any]
    defaults: dict[str, Any]
    post_init: Callable[[Any], None] | None
    # Fields with neither a default nor a default_factory: a space must be given them.
    required: tuple[str, ...] = ()


def class_hints(cls: type, annotations: dict[str, Any]) -> dict[str, Any]:
    """The class's annotations, each resolved where it can be.

    A name that is not defined yet, or only under ``TYPE_CHECKING``, leaves that one
    annotation as its text (which the checker takes as it is, unless it is ``"int"``...).
    """
    try:
        return typing.get_type_hints(cls)
    except Exception:  # a name not defined yet, say: resolve the others one by one
        module = sys.modules.get(cls.__module__)
        namespace = dict(vars(module)) if module is not None else {}
        hints = {}
        for name, annotation in annotations.items():
            hints[name] = annotation
            if isinstance(annotation, str):
                with contextlib.suppress(Exception):
                    hints[name] = eval(annotation, namespace, dict(vars(cls)))
        return hints


def declared(cls: type) -> ClassInfo:
    """What the experiment class ``cls`` declares, worked out on first use and kept."""
    info: ClassInfo | None = cls.__dict__.get("_sp_info_cache")
    if info is None:
        fields = dataclasses.fields(cls)
        hints = class_hints(cls, {f.name: f.type for f in fields})  # the rest stay text
        defaults = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}
        derived = tuple((n, d) for n, d in defaults.items() if isinstance(d, Derived))
        post_init = getattr(cls, "__post_init__", None)
        info = ClassInfo(
            fields=tuple(f.name for f in fields if not isinstance(f.default, Derived)),
            derived=derived,
            annotations={f.name: hints.get(f.name, f.type) for f in fields},
            defaults=defaults,
            post_init=getattr(post_init, "__wrapped__", None),
            required=tuple(
                f.name
                for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            ),
        )
        type.__setattr__(cls, "_sp_info_cache", info)
    return info
