"""What an adaptive search varies, as Optuna sees it: each field of the space that is
searched, as a distribution (a categorical one by index for values Optuna cannot hold,
such as tuples), and the way back from Optuna's parameters to the fields' values and
from stored values to Optuna's parameters. The seeds are not searched: every
configuration runs on all of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from superparams.errors import SearchSpaceError

if TYPE_CHECKING:
    from superparams._space import Space


@dataclass
class Searched:
    """The fields a search varies, as Optuna distributions, and the way back to values."""

    distributions: dict[str, Any]
    choices: dict[str, tuple[Any, ...]]  # fields whose values Optuna sees by index

    def values(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The fields' values for Optuna's parameters."""
        return {
            name: self.choices[name][value] if name in self.choices else value
            for name, value in params.items()
        }

    def key(self, values: Mapping[str, Any]) -> tuple[str, ...]:
        """What a configuration is known by: its values' canonical encodings."""
        from superparams._identity import encode

        return tuple(encode(values[name]) for name in self.distributions)

    def size(self) -> float:
        """How many configurations there are: infinite with a continuous field."""
        size = 1.0
        for distribution in self.distributions.values():
            if hasattr(distribution, "choices"):
                size *= len(distribution.choices)
            elif distribution.step is not None and not distribution.log:
                size *= (distribution.high - distribution.low) // distribution.step + 1
            else:
                return math.inf
        return size

    def params(self, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """Optuna's parameters for stored values; None when a value is outside the space."""
        params: dict[str, Any] = {}
        for name, distribution in self.distributions.items():
            value = values.get(name)
            if name in self.choices:
                found = [i for i, c in enumerate(self.choices[name]) if _same(c, value)]
                if not found:
                    return None
                value = found[0]
            else:
                try:
                    inside = distribution._contains(distribution.to_internal_repr(value))
                except (ValueError, TypeError):  # not one of its choices, or not a number
                    inside = False
                if not inside:
                    return None
            params[name] = value
        return params


def _same(choice: Any, stored: Any) -> bool:
    """Whether a stored value (as the table holds it: a tuple comes back a list) is the
    choice: the same canonical encoding, the one a setting's id is made of."""
    from superparams._identity import encode

    try:
        return encode(choice) == encode(stored)
    except Exception:  # a value with no encoding is no stored value
        return False


def searched_of(space: Space[Any]) -> Searched:
    """The search space of ``space``: each field it varies, as an Optuna distribution."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    from superparams._space import Dimension, Grid, Space
    from superparams._values import Derived, RandInt, Uniform

    fields = getattr(space, "__dataclass_fields__", None)
    if fields is None:
        msg = (
            f"optimize() searches one experiment's space, not {space!r}; search each part, "
            "or declare the choice as a field: opt: str = search('sgd', 'adam')"
        )
        raise SearchSpaceError(msg)
    distributions: dict[str, Any] = {}
    choices: dict[str, tuple[Any, ...]] = {}
    name_of = type(space).__name__
    for name in fields:
        held = space.__dict__.get(name)
        if not isinstance(held, Dimension) or isinstance(held, Derived):
            continue
        if isinstance(held, Grid):
            if held.replicate:
                continue  # the seeds: every configuration runs on all of them
            if held.link is not None or any(isinstance(p, Space) for p in held.points):
                what = "is linked" if held.link is not None else "holds nested experiments"
                msg = (
                    f"{name_of}.{name} {what}, which an adaptive search cannot propose yet; "
                    f"pin it (--{name} VALUE) or search it with a grid"
                )
                raise SearchSpaceError(msg)
            if len(held.points) == 1:
                continue
            if all(type(p) in (bool, int, float, str) for p in held.points):
                distributions[name] = CategoricalDistribution(held.points)
            else:  # Optuna holds plain values only: it sees these by their index
                choices[name] = held.points
                distributions[name] = CategoricalDistribution(range(len(held.points)))
        elif isinstance(held, Uniform):
            distributions[name] = FloatDistribution(held.low, held.high, log=held.log)
        elif isinstance(held, RandInt):
            distributions[name] = IntDistribution(held.low, held.high)
    if not distributions:
        msg = (
            f"{name_of} searches no field, so there is nothing to propose; give a field "
            "search(...) values or a distribution such as loguniform(1e-4, 1e-1)"
        )
        raise SearchSpaceError(msg)
    return Searched(distributions, choices)
