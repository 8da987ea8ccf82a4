"""Hypothesis strategies for random experiment classes and their search spaces.

A :class:`Spec` is the plain description of a space: field names, their types and
the points each field is searched over. It builds the ``Experiment`` subclass with
``type(...)``, so the tests can compare a space with what ``itertools.product`` says
it should hold.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from superparams import Experiment, search

# Short names that are not taken by Experiment (see test_experiment's reserved names).
NAMES = ("a", "b", "c", "lr", "steps", "width", "depth", "seed_", "mode", "tag")
MAX_SETTINGS = 200  # keeps every example fast

_POINTS: dict[type, st.SearchStrategy[Any]] = {
    int: st.integers(-1000, 1000),
    float: st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    str: st.text("abcxyz_", max_size=4),
    bool: st.booleans(),
}


@dataclass(frozen=True)
class Spec:
    """An experiment class described as data: each field's type and searched points."""

    names: tuple[str, ...]
    types: tuple[type, ...]
    points: tuple[tuple[Any, ...], ...]  # one point is a constant

    def experiment_class(self, name: str = "Random", order: tuple[int, ...] | None = None) -> Any:
        """The Experiment subclass with these fields, declared in ``order``."""
        order = order if order is not None else tuple(range(len(self.names)))
        namespace: dict[str, Any] = {
            "__module__": __name__,
            "__annotations__": {self.names[k]: self.types[k] for k in order},
        }
        for k in order:
            namespace[self.names[k]] = _declare(self.points[k])
        return type(name, (Experiment,), namespace)

    def space(self) -> Any:
        """An instance of :meth:`experiment_class`: the whole grid."""
        return self.experiment_class()()

    def size(self) -> int:
        return math.prod(len(p) for p in self.points)

    def product(self) -> list[tuple[Any, ...]]:
        """The value combinations, in the order the space must list them."""
        return list(itertools.product(*self.points))

    def varied(self) -> tuple[str, ...]:
        return tuple(n for n, p in zip(self.names, self.points, strict=True) if len(p) > 1)


def _declare(points: tuple[Any, ...]) -> Any:
    return search(*points) if len(points) > 1 else points[0]


@st.composite
def points(draw: st.DrawFn, kind: type, max_size: int = 4) -> tuple[Any, ...]:
    """Distinct points for a field of type ``kind`` (one point makes a constant)."""
    values = draw(st.lists(_POINTS[kind], min_size=1, max_size=max_size, unique=True))
    if kind is float:  # 0.0 and -0.0 are one point to `unique`, but two ids; keep it simple
        values = [v + 0.0 for v in values]
    return tuple(values)


@st.composite
def specs(draw: st.DrawFn, max_fields: int = 4) -> Spec:
    """A random experiment: up to ``max_fields`` fields, at most MAX_SETTINGS settings."""
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=max_fields, unique=True))
    types, all_points, size = [], [], 1
    for _ in names:
        kind = draw(st.sampled_from([int, float, str, bool]))
        room = max(1, min(4, MAX_SETTINGS // size))
        field_points = draw(points(kind, max_size=room))
        types.append(kind)
        all_points.append(field_points)
        size *= len(field_points)
    return Spec(tuple(names), tuple(types), tuple(all_points))


@st.composite
def widened(draw: st.DrawFn, spec: Spec) -> Spec:
    """The same fields with each search reordered and given extra points."""
    new_points = []
    for kind, old in zip(spec.types, spec.points, strict=True):
        extra = draw(st.lists(_POINTS[kind], max_size=2))
        merged = list(dict.fromkeys([*old, *(v + 0.0 if kind is float else v for v in extra)]))
        new_points.append(tuple(draw(st.permutations(merged))))
    return Spec(spec.names, spec.types, tuple(new_points))
