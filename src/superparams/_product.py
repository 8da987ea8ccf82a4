"""The product of a space's axes: its settings by mixed-radix index, and their ids.

This room owns how an experiment instance splits into fixed values and axes (a field,
or fields linked to vary together), the ``i``-th setting of the product (the first
field varying slowest), a random draw from it, and each setting's id and encodings
computed without making the setting. It checks no value (:mod:`superparams._fields`
does, when the instance is made) and knows the class only by what it declares.
"""

from __future__ import annotations

import copy
import itertools
import json
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from superparams._declared import ClassInfo, declared
from superparams._identity import canonical, digest, encode
from superparams._space import Dimension, Grid, Space, is_setting
from superparams._values import Derived
from superparams.errors import SearchSpaceError

if TYPE_CHECKING:
    from superparams._experiment import Experiment


# The kinds of value each setting (and each instance) gets its own copy of.
MUTABLE = (list, dict, set, bytearray)


class _Axis:
    """One independent direction of a product: a field, or fields linked to vary together."""

    def __init__(
        self, names: tuple[str, ...], dims: tuple[Dimension, ...], info: ClassInfo
    ) -> None:
        self.names, self.dims = names, dims
        self._annotations = tuple(info.annotations.get(n) for n in names)
        self.enumerable = all(d.enumerable for d in dims)
        self.size = dims[0].size() if self.enumerable else 0
        # Where the names stand in the id text, and their '"name":' prefixes; set by Layout.
        self.slots: tuple[int, ...] = ()
        self.prefixes: tuple[str, ...] = ()
        # Plain lists of points are canonicalised once here, not once per setting.
        self._rows: list[tuple[Any, ...]] | None = None
        if all(isinstance(d, Grid) and not d.expands() for d in dims):
            columns = [
                [canonical(p, info.annotations.get(n)) for p in d.points]  # type: ignore[attr-defined]
                for n, d in zip(names, dims, strict=True)
            ]
            self._rows = list(zip(*columns, strict=True))
        self._encodings: dict[int, tuple[str, ...]] = {}

    def values(self, j: int) -> tuple[Any, ...]:
        if self._rows is not None:
            return self._rows[j]
        # A nested space linked with plain values: those still take their field's type.
        return tuple(
            canonical(d.get(j), a) for d, a in zip(self.dims, self._annotations, strict=True)
        )

    def all_id_parts(self) -> list[tuple[str, ...]]:
        """The ``"name":encoding`` texts of every value, as the id text holds them."""
        if self._rows is None:
            return [
                tuple(p + e for p, e in zip(self.prefixes, self.encodings(j), strict=True))
                for j in range(self.size)
            ]
        named = list(zip(self.prefixes, self.names, strict=True))
        return [
            tuple(p + encode(v, n) for (p, n), v in zip(named, row, strict=True))
            for row in self._rows
        ]

    def encodings(self, j: int) -> tuple[str, ...]:
        """The canonical encodings of the ``j``-th values, computed once each."""
        found = self._encodings.get(j)
        if found is None:
            found = tuple(encode(v, n) for n, v in zip(self.names, self.values(j), strict=True))
            # A cache, not a copy of a huge grid: an axis that long has each value in
            # few settings, and 100,000 entries held ~18 MB through a run.
            if len(self._encodings) < _ENCODINGS_CACHED:
                self._encodings[j] = found
        return found


# How many values of one axis keep their encodings (see _Axis.encodings).
_ENCODINGS_CACHED = 10_000


class Layout:
    """How a space instance splits into fixed values and axes, for mixed-radix indexing."""

    def __init__(self, space: Experiment, key: tuple[int, ...]) -> None:
        cls = type(space)
        info = declared(cls)
        self.key = key
        self.cls, self.info = cls, info
        self.fixed: dict[str, Any] = {}
        self.axes: list[_Axis] = []
        groups: dict[str, list[tuple[str, Dimension]]] = {}
        order: list[str | tuple[str, Dimension]] = []
        for name in info.fields:
            raw = space.__dict__[name]
            dim = as_dimension(raw)
            if dim is None:
                self.fixed[name] = canonical(raw, info.annotations.get(name))
            elif dim.link is not None:
                if dim.link not in groups:
                    groups[dim.link] = []
                    order.append(dim.link)
                groups[dim.link].append((name, dim))
            else:
                order.append((name, dim))
        for item in order:
            members = groups[item] if isinstance(item, str) else [item]
            names = tuple(n for n, _ in members)
            dims = tuple(d for _, d in members)
            if isinstance(item, str):
                _check_link(item, members)
            axis = _Axis(names, dims, info)
            if axis.enumerable and axis.size == 1:
                self.fixed.update(zip(names, axis.values(0), strict=True))
            else:
                self.axes.append(axis)
        self.enumerable = all(a.enumerable for a in self.axes)
        self.size = 1
        for axis in self.axes:
            self.size *= axis.size
        # A space pinned to run a part of another (a sample's seed, a search's proposal)
        # labels its settings by what varies in that other space.
        shown = space.__dict__.get("_sp_shown")
        self.varied = shown if shown is not None else tuple(n for a in self.axes for n in a.names)
        slot = {name: k for k, name in enumerate(sorted(info.fields))}
        for axis in self.axes:
            axis.slots = tuple(slot[n] for n in axis.names)
            axis.prefixes = tuple(f"{json.dumps(n)}:" for n in axis.names)
        self._id_template: list[str] | None = None
        self._fixed_enc: dict[str, str] | None = None
        self._reversed_axes = self.axes[::-1]

    def get(self, i: int) -> Experiment:
        values = self.fixed.copy()
        index = i
        for axis in self._reversed_axes:
            i, j = divmod(i, axis.size)
            values.update(zip(axis.names, axis.values(j), strict=True))
        return self.materialise(values, index)

    def draw(self, rng: random.Random) -> Experiment:
        values = self.fixed.copy()
        for axis in self.axes:
            weighted = any(getattr(d, "weights", None) is not None for d in axis.dims)
            if axis.enumerable and not weighted:
                j = rng.randrange(axis.size)
                values.update(zip(axis.names, axis.values(j), strict=True))
            else:
                for name, dim in zip(axis.names, axis.dims, strict=True):
                    values[name] = canonical(dim.draw(rng), self.info.annotations.get(name))
        return self.materialise(values, None)

    def materialise(self, values: dict[str, Any], index: int | None) -> Experiment:
        setting = object.__new__(self.cls)
        state = setting.__dict__
        state.update(values)
        for name, v in values.items():
            if type(v) in MUTABLE:  # each setting gets its own copy of a mutable value
                state[name] = copy.deepcopy(v)
        state["_sp_where"] = (self, index)
        for v in values.values():  # a nested setting whose own derived field raised
            if isinstance(v, Space) and "_sp_error" in v.__dict__:
                state.setdefault("_sp_error", v.__dict__["_sp_error"])
        if self.info.derived:
            derive(setting, self.info.derived)
        if self.info.post_init is not None:
            try:
                self.info.post_init(setting)
            except Exception as error:  # this setting's fault: its run raises it
                state.setdefault("_sp_error", error)
        return setting

    def _template(self) -> list[str]:
        template = self._id_template
        if template is None:
            names = sorted(self.info.fields)
            template = [_id_part(n, self.fixed[n]) if n in self.fixed else "" for n in names]
            self._id_template = template
        return template

    def all_ids(self) -> Iterator[str]:
        """Every setting's id in order: each value encoded once, not once per setting."""
        parts = self._template().copy()
        axes = self.axes
        if len(axes) == 1 and len(axes[0].slots) == 1:  # one searched field: the usual case
            (slot,) = axes[0].slots
            head, tail = ",".join(parts[:slot]), ",".join(parts[slot + 1 :])
            head = "{" + head + "," if head else "{"
            tail = "," + tail + "}" if tail else "}"
            for (part,) in axes[0].all_id_parts():
                yield digest(head + part + tail)
            return
        slots = [axis.slots for axis in axes]
        for combination in itertools.product(*(axis.all_id_parts() for axis in axes)):
            for axis_slots, axis_parts in zip(slots, combination, strict=True):
                for slot, part in zip(axis_slots, axis_parts, strict=True):
                    parts[slot] = part
            yield digest("{" + ",".join(parts) + "}")

    def setting_id(self, i: int) -> str:
        """The id of the ``i``-th setting, computed without making the setting."""
        parts = self._template().copy()
        for axis in self._reversed_axes:
            i, j = divmod(i, axis.size)
            for slot, prefix, enc in zip(axis.slots, axis.prefixes, axis.encodings(j), strict=True):
                parts[slot] = prefix + enc
        return digest("{" + ",".join(parts) + "}")

    def encodings(self, i: int) -> dict[str, str]:
        """The canonical encoding of each field of the ``i``-th setting."""
        if self._fixed_enc is None:
            self._fixed_enc = {n: encode(v, n) for n, v in self.fixed.items()}
        out = self._fixed_enc.copy()
        for axis in self._reversed_axes:
            i, j = divmod(i, axis.size)
            out.update(zip(axis.names, axis.encodings(j), strict=True))
        return out


def _id_part(name: str, value: Any) -> str:
    return f"{json.dumps(name)}:{encode(value, name)}"


def as_dimension(value: Any) -> Dimension | None:
    """The dimension a field's value spans, or None for a plain value."""
    if isinstance(value, Derived):
        return None
    if isinstance(value, Dimension):
        return value
    if isinstance(value, Space) and not is_setting(value):
        return Grid((value,))
    return None


def _check_link(link: str, members: list[tuple[str, Dimension]]) -> None:
    for name, dim in members:
        if not dim.enumerable:
            msg = f"field {name!r} is linked ({link!r}) but draws from {dim!r}; link only search()"
            raise SearchSpaceError(msg)
    sizes = {name: dim.size() for name, dim in members}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{n} has {s}" for n, s in sizes.items())
        msg = f"fields linked by {link!r} vary together, so they need as many values each: {listed}"
        raise SearchSpaceError(msg)


def derive(setting: Experiment, derived: tuple[tuple[str, Derived], ...]) -> None:
    """Compute a setting's derived fields.

    One that raises is None, and the setting carries the (first) error: its ``run()``
    raises it, so a run records that setting as failed, with the user's traceback, and
    goes on with the others. The setting's id needs no derived field: it comes from the
    parameters alone.
    """
    state = setting.__dict__
    for name, der in derived:
        try:
            state[name] = der.compute(setting)
        except Exception as error:
            state[name] = None
            state.setdefault("_sp_error", error)
