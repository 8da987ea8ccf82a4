"""The values a field may take: what a user writes after ``=`` in an experiment class.

This room owns the declarations (:func:`search`, :func:`choice`, :func:`seeds`,
:func:`value`, the distributions :func:`uniform`, :func:`loguniform` and :func:`randint`,
and :func:`derived`) and the dimensions they make beyond a plain list of values
(:class:`Distribution`, :class:`Derived`). It is pure, like the spaces it builds on
(:mod:`superparams._space`): no I/O, nothing printed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from superparams._space import Dimension, Grid
from superparams.errors import SearchSpaceError

T = TypeVar("T")


class Distribution(Dimension):
    """A continuous or very large range that is sampled, never enumerated."""

    @property
    def enumerable(self) -> bool:
        return False

    def size(self) -> int:
        msg = f"{self!r} has no finite list of values; draw from it with space.sample(n, seed=...)"
        raise SearchSpaceError(msg)

    def get(self, i: int) -> Any:
        return self.size()


class Uniform(Distribution):
    def __init__(self, low: float, high: float, *, log: bool) -> None:
        if not low < high:
            msg = f"{'loguniform' if log else 'uniform'}({low!r}, {high!r}) needs low < high"
            raise SearchSpaceError(msg)
        if log and low <= 0:
            msg = f"loguniform({low!r}, {high!r}) needs low > 0: a log scale has no zero"
            raise SearchSpaceError(msg)
        self.low, self.high, self.log = float(low), float(high), log

    def draw(self, rng: random.Random) -> float:
        if self.log:
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return rng.uniform(self.low, self.high)

    def __repr__(self) -> str:
        return f"{'loguniform' if self.log else 'uniform'}({self.low!r}, {self.high!r})"


class RandInt(Distribution):
    def __init__(self, low: int, high: int) -> None:
        if not low <= high:
            msg = f"randint({low!r}, {high!r}) needs low <= high"
            raise SearchSpaceError(msg)
        self.low, self.high = int(low), int(high)

    def draw(self, rng: random.Random) -> int:
        return rng.randint(self.low, self.high)

    def __repr__(self) -> str:
        return f"randint({self.low!r}, {self.high!r})"


class Derived(Dimension):
    """A field computed from the other fields of each setting, made by :func:`derived`."""

    def __init__(self, compute: Callable[[Any], Any]) -> None:
        self.compute = compute

    @property
    def enumerable(self) -> bool:
        return True

    def size(self) -> int:
        return 1

    def get(self, i: int) -> Any:
        msg = "a derived field has no values of its own"
        raise AssertionError(msg)

    draw = get  # type: ignore[assignment]  # never drawn: computed from the setting

    def __repr__(self) -> str:
        return f"derived({getattr(self.compute, '__name__', 'fn')})"


def search(*points: T, link: str | None = None) -> T:
    """Declare the values a field is searched over; one value makes it a constant.

    Fields searched with the same ``link`` name vary together (their ``i``-th values go
    together) instead of in product, so they must list as many values.

    Raises:
        SearchSpaceError: when no value is given.

    >>> from superparams import Experiment
    >>> class Train(Experiment):
    ...     lr: float = search(0.1, 0.01)
    >>> len(Train())
    2
    """
    if not points:
        msg = (
            "search() needs at least one value, e.g. search(16, 32); "
            "for a constant, give the value itself"
        )
        raise SearchSpaceError(msg)
    # A typed lie, like dataclasses.field(): checkers see the field's type, we see a Grid.
    return Grid(points, link=link)  # type: ignore[return-value]


def seeds(n: int, *, start: int = 0) -> int:
    """Declare ``n`` seeds, ``start`` to ``start + n - 1``: repeats of each setting.

    It is ``search(0, 1, ..., n - 1)`` (the same settings, with the same ids), marked as
    a replicate: :meth:`Space.summary` averages over it instead of comparing its values.

    Raises:
        SearchSpaceError: when ``n`` or ``start`` is not an int, or ``n`` is below 1.

    >>> from superparams import Experiment
    >>> class Train(Experiment):
    ...     seed: int = seeds(3, start=10)
    >>> [s.seed for s in Train()]
    [10, 11, 12]
    """
    if type(n) is not int:
        msg = f"seeds() needs a whole number of seeds, got {n!r} (a {type(n).__name__}): seeds(5)"
        raise SearchSpaceError(msg)
    if n < 1:
        msg = f"seeds() needs n >= 1 seeds, got {n!r}; seeds(5) gives the seeds 0 to 4"
        raise SearchSpaceError(msg)
    if type(start) is not int:
        msg = f"seeds() needs an int start, got {start!r} (a {type(start).__name__})"
        raise SearchSpaceError(msg)
    grid = Grid(range(start, start + n))
    grid.replicate = True
    return grid  # type: ignore[return-value]


def value(x: T) -> T:
    """A constant field, with a mutable value copied for each setting: ``value([1, 2])``.

    The same as writing the value itself; it reads well where the value is a list.
    """
    return search(x)


def choice(*points: T, weights: Sequence[float] | None = None) -> T:
    """Like :func:`search`, but :meth:`Space.sample` draws with the given ``weights``."""
    if weights is not None and len(weights) != len(points):
        msg = f"choice() got {len(points)} values but {len(weights)} weights; give one per value"
        raise SearchSpaceError(msg)
    search(*points)  # the same check for no values
    grid = Grid(points, weights=weights)
    grid.maker = "choice"
    return grid  # type: ignore[return-value]


def uniform(low: float, high: float) -> float:
    """A float drawn uniformly from ``[low, high]``; only :meth:`Space.sample` can use it."""
    return Uniform(low, high, log=False)  # type: ignore[return-value]


def loguniform(low: float, high: float) -> float:
    """A float whose logarithm is uniform in ``[log low, log high]``, e.g. a learning rate."""
    return Uniform(low, high, log=True)  # type: ignore[return-value]


def randint(low: int, high: int) -> int:
    """An int drawn uniformly from ``low`` to ``high``, both included."""
    return RandInt(low, high)  # type: ignore[return-value]


def derived(compute: Callable[[Any], T]) -> T:
    """A field computed from the others in each setting: ``derived(lambda s: s.a * s.b)``.

    A derived field shows in the results like any other, but is not part of a setting's
    id (it follows from the fields it is computed from) and cannot be overridden.
    """
    return Derived(compute)  # type: ignore[return-value]
