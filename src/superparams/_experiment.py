"""The Experiment base class: a dataclass whose instance is a space of settings.

This room owns what a user's class becomes: the dataclass behaviour (with or without
``@dataclass``, mutable defaults allowed), the product of its fields' dimensions, the
materialised settings, their ids and labels, and the overview ``print(space)`` shows. It
runs nothing and stores nothing; :meth:`Space.run_all` hands the space to the runner.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import inspect
import itertools
import json
import random
import sys
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, ClassVar, Literal, overload

from superparams._identity import Mismatch, canonical, conform, digest, encode, setting_id
from superparams._space import Derived, Dimension, Distribution, Grid, Space, _RandInt, _short
from superparams.errors import ExperimentError, SearchSpaceError, did_you_mean

if sys.version_info >= (3, 11):
    from typing import Self, dataclass_transform
else:  # pragma: no cover - exercised on Python 3.10 only
    from typing_extensions import Self, dataclass_transform

# ``run`` and ``is_valid`` are hooks, meant to be overridden by methods, never by fields;
# ``stop`` is the class's stop rules, a class attribute to set, never a field.
_HOOKS = frozenset({"run", "is_valid", "stop"})
_MUTABLE = (list, dict, set, bytearray)
_SCALARS = frozenset({int, float, str, bool})


@dataclass(frozen=True)
class _ClassInfo:
    """What an experiment class declares, worked out once per class."""

    fields: tuple[str, ...]  # parameters, in declaration order (derived fields excluded)
    derived: tuple[tuple[str, Derived], ...]
    annotations: dict[str, Any]
    defaults: dict[str, Any]
    post_init: Callable[[Any], None] | None
    has_validity: bool


class _Axis:
    """One independent direction of a product: a field, or fields linked to vary together."""

    def __init__(
        self, names: tuple[str, ...], dims: tuple[Dimension, ...], info: _ClassInfo
    ) -> None:
        self.names, self.dims = names, dims
        self._annotations = tuple(info.annotations.get(n) for n in names)
        self.enumerable = all(d.enumerable for d in dims)
        self.size = dims[0].size() if self.enumerable else 0
        # Where the names stand in the id text, and their '"name":' prefixes; set by _Layout.
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


class _Layout:
    """How a space instance splits into fixed values and axes, for mixed-radix indexing."""

    def __init__(self, space: Experiment, key: tuple[int, ...]) -> None:
        cls = type(space)
        info = cls._sp_info()
        self.key = key
        self.cls, self.info = cls, info
        self.fixed: dict[str, Any] = {}
        self.axes: list[_Axis] = []
        groups: dict[str, list[tuple[str, Dimension]]] = {}
        order: list[str | tuple[str, Dimension]] = []
        for name in info.fields:
            raw = space.__dict__[name]
            dim = _as_dimension(raw)
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
            if type(v) in _MUTABLE:  # each setting gets its own copy of a mutable value
                state[name] = copy.deepcopy(v)
        state["_sp_where"] = (self, index)
        for v in values.values():  # a nested setting whose own derived field raised
            if isinstance(v, Experiment) and "_sp_error" in v.__dict__:
                state.setdefault("_sp_error", v.__dict__["_sp_error"])
        if self.info.derived:
            _derive(setting, self.info.derived)
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


def _as_dimension(value: Any) -> Dimension | None:
    """The dimension a field's value spans, or None for a plain value."""
    if isinstance(value, Derived):
        return None
    if isinstance(value, Dimension):
        return value
    if isinstance(value, Space) and not (isinstance(value, Experiment) and value._sp_is_setting()):
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


@dataclass_transform(kw_only_default=True)
class Experiment(Space[Any]):
    """Subclass me: my fields are the parameters, ``run()`` is one setting's work.

    An instance is a space of settings: the product of the fields' ``search(...)`` values
    in declaration order, the first field varying slowest. ``len(space)``, ``space[i]``
    and iteration are lazy.

    >>> from superparams import Experiment, search
    >>> class Hyperparams(Experiment):
    ...     steps: int = 100
    ...     batch_size: int = search(16, 32)
    ...
    ...     def run(self) -> dict:
    ...         return {"samples": self.steps * self.batch_size}
    >>> [h.run() for h in Hyperparams()]
    [{'samples': 1600}, {'samples': 3200}]
    """

    #: The worker's index in a parallel run, from 0; 0 outside one.
    rank: ClassVar[int] = 0
    #: How many workers the run has; 1 outside a parallel run.
    n_proc: ClassVar[int] = 1
    #: The class's stop rules (:mod:`superparams.stopping`): a rule or a list of them,
    #: used by every run that is given none, ``stop = median("loss", step="epoch")``.
    stop: ClassVar[Any] = None

    # -- the class ---------------------------------------------------------------------

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        annotations = inspect.get_annotations(cls)
        columns, attributes = reserved_names()
        inherited = getattr(cls, "__dataclass_fields__", {})  # the bases' fields, so far
        for name, value in cls.__dict__.items():
            if name in annotations or _is_behaviour(value):
                continue
            if isinstance(value, Dimension) or name in inherited:
                raise ExperimentError(_unannotated(cls, name, value))
        hints = _class_hints(cls, annotations)
        for name, annotation in annotations.items():
            if _is_classvar(annotation):
                continue
            if name in columns:
                msg = (
                    f"{cls.__name__}.{name} clashes with the results column {name!r}; "
                    f"rename the field (e.g. {name}_)"
                )
                raise ExperimentError(msg)
            if name in attributes or name.startswith("_sp_"):
                msg = (
                    f"{cls.__name__}.{name} clashes with Experiment.{name}, which superparams "
                    f"uses; rename the field (e.g. {name}_)"
                )
                raise ExperimentError(msg)
            default = cls.__dict__.get(name, dataclasses.MISSING)
            if isinstance(default, dataclasses.Field):
                if default.default is not dataclasses.MISSING:
                    given = default.default
                    default.default = _checked(cls.__name__, name, given, hints.get(name), None)
            elif default is not dataclasses.MISSING:
                checked = _checked(cls.__name__, name, default, hints.get(name), None)
                if not isinstance(checked, Dimension) and type(checked).__hash__ is None:
                    # A mutable default: a constant whose value each instance copies.
                    checked = Grid((checked,))
                if checked is not default:
                    setattr(cls, name, checked)
        for name in attributes - _HOOKS:
            if name in cls.__dict__:
                msg = (
                    f"{cls.__name__} defines {name!r}, which is Experiment.{name}; "
                    f"rename it (e.g. {name}_)"
                )
                raise ExperimentError(msg)
        if "run" in cls.__dict__:
            cls.run = _guard_run(cls.__dict__["run"])  # type: ignore[method-assign]
        if "__post_init__" in cls.__dict__:
            cls.__post_init__ = _guard_post_init(cls.__dict__["__post_init__"])  # type: ignore[method-assign,assignment]
        dataclass(cls, kw_only=True)  # a later @dataclass on the class redoes the same

    @classmethod
    def _sp_info(cls) -> _ClassInfo:
        info: _ClassInfo | None = cls.__dict__.get("_sp_info_cache")
        if info is None:
            fields = dataclasses.fields(cls)  # type: ignore[arg-type]
            hints = _class_hints(cls, {f.name: f.type for f in fields})  # the rest stay text
            defaults = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}
            derived = tuple((n, d) for n, d in defaults.items() if isinstance(d, Derived))
            post_init = getattr(cls, "__post_init__", None)
            info = _ClassInfo(
                fields=tuple(f.name for f in fields if not isinstance(f.default, Derived)),
                derived=derived,
                annotations={f.name: hints.get(f.name, f.type) for f in fields},
                defaults=defaults,
                post_init=getattr(post_init, "__wrapped__", None),
                has_validity=cls.is_valid is not Experiment.is_valid,
            )
            type.__setattr__(cls, "_sp_info_cache", info)
        return info

    @classmethod
    def _sp_has_validity(cls) -> bool:
        return cls._sp_info().has_validity

    # -- an instance -------------------------------------------------------------------

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        if cls is Experiment:
            msg = "Experiment is a base class: subclass it with your parameters and run()"
            raise ExperimentError(msg)
        if kwargs:
            info = cls._sp_info()
            for name in kwargs:
                if name not in info.annotations:
                    msg = (
                        f"{cls.__name__} has no field {name!r}"
                        f"{did_you_mean(name, info.fields)}; its fields are "
                        f"{', '.join(info.fields)}"
                    )
                    raise ExperimentError(msg)
        return super().__new__(cls)

    def __post_init__(self) -> None:
        info = type(self)._sp_info()
        state = self.__dict__
        for name, der in info.derived:
            if state[name] is not der:
                msg = (
                    f"{type(self).__name__}.{name} is derived from the other fields; "
                    f"it cannot be set (got {name}={state[name]!r})"
                )
                raise ExperimentError(msg)
        owner = type(self).__name__
        given = set()
        for name in info.fields:
            v, default = state[name], info.defaults.get(name, dataclasses.MISSING)
            if v is not default:  # the class checked its own defaults when it was made
                state[name] = _checked(owner, name, v, info.annotations.get(name), owner)
                given.add(name)
        for name in info.fields:
            v = state[name]
            if type(v) is Grid and len(v.points) == 1 and _is_plain(v.points[0]):
                v = state[name] = _own_copy(v.points[0])
            if _as_dimension(v) is None:  # as in a setting made from a space: 1 -> 1.0, say
                state[name] = canonical(v, info.annotations.get(name))
        if given:  # after search(x) became x: one value given is a pinned value
            _keep_links(self, info, given)
        if info.derived and self._sp_is_setting():
            _derive(self, info.derived)

    def __getstate__(self) -> dict[str, Any]:
        # Where a setting came from is its whole space: never worth pickling.
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_sp_")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def run(self) -> Any:
        """One setting's work; override it and return its results (a dict, rows, or None)."""
        msg = f"{type(self).__name__} has no run(): define run(self) to say what a setting does"
        raise ExperimentError(msg)

    def report(self, **values: Any) -> None:
        """Append one row to this setting's results (a step, an epoch), from inside run().

        It returns once the row is durable, so what run() writes after it (a
        checkpoint) never runs ahead of the stored rows. Nested dicts become dotted
        columns, as in what run() returns. Outside a run (``setting.run()`` called by
        hand) it does nothing.
        """
        from superparams._worker import report_row

        report_row(values)

    def is_valid(self) -> bool:
        """Whether a setting is worth running; override it to skip invalid combinations.

        Settings for which it returns False are not in the space at all: ``len``, indexing
        and iteration skip them (which makes ``len`` scan the space once).
        """
        return True

    # -- the space ---------------------------------------------------------------------

    def _sp_values(self) -> list[Any]:
        state = self.__dict__
        return [state[n] for n in type(self)._sp_info().fields]

    def _sp_layout(self) -> _Layout:
        key = tuple(map(id, self._sp_values()))
        layout: _Layout | None = self.__dict__.get("_sp_layout_cache")
        if layout is None or layout.key != key:
            layout = _Layout(self, key)
            self.__dict__["_sp_layout_cache"] = layout
        return layout

    def _sp_is_setting(self) -> bool:
        for v in self._sp_values():
            if isinstance(v, Dimension) and not isinstance(v, Derived):
                return False
            if isinstance(v, Space) and not (isinstance(v, Experiment) and v._sp_is_setting()):
                return False
        return True

    @property
    def experiment_class(self) -> type[Self]:
        return type(self)

    @property
    def enumerable(self) -> bool:
        return self._sp_layout().enumerable

    def _raw_size(self) -> int:
        layout = self._sp_layout()
        if not layout.enumerable:
            return len(self)  # raises, with the message for spaces that draw
        return layout.size

    def _raw_get(self, i: int) -> Self:
        return self._sp_layout().get(i)  # type: ignore[return-value]

    def _raw_draw(self, rng: random.Random) -> Self:
        return self._sp_layout().draw(rng)  # type: ignore[return-value]

    def _sp_ids(self) -> Iterator[str]:
        layout = self._sp_layout()
        if not layout.enumerable:
            len(self)  # raises, with the message for spaces that draw
        if not self._filters():
            yield from layout.all_ids()
            return
        for i in self._valid_index():
            yield layout.setting_id(i)

    def __iter__(self) -> Iterator[Self]:
        layout = self._sp_layout()
        if self._filters() or not layout.enumerable:
            yield from super().__iter__()
            return
        get = layout.get
        for i in range(layout.size):
            yield get(i)  # type: ignore[misc]

    @overload
    def __getitem__(self, i: int) -> Self: ...
    @overload
    def __getitem__(self, i: slice) -> list[Self]: ...
    def __getitem__(self, i: int | slice) -> Self | list[Self]:
        layout = self._sp_layout()
        if isinstance(i, slice) or self._filters() or not layout.enumerable:
            return super().__getitem__(i)
        j = i + layout.size if i < 0 else i
        if not 0 <= j < layout.size:
            msg = f"setting index {i} is out of range for a space of {layout.size} settings"
            raise IndexError(msg)
        return layout.get(j)  # type: ignore[return-value]

    def sample(self, n: int, seed: int = 0) -> Space[Self]:
        return super().sample(n, seed)

    def __or__(self, other: Space[Self]) -> Space[Self]:
        return super().__or__(other)

    # -- one setting -------------------------------------------------------------------

    def _sp_encodings(self) -> dict[str, str]:
        where = self.__dict__.get("_sp_where")
        if where is not None and where[1] is not None:
            encodings: dict[str, str] = where[0].encodings(where[1])
            return encodings
        self._sp_require_setting("an id")
        fields = type(self)._sp_info().fields
        return {n: encode(v, n) for n, v in zip(fields, self._sp_values(), strict=True)}

    @property
    def id(self) -> str:
        """The setting's id: 16 hex digits computed from its parameter values alone."""
        found: str | None = self.__dict__.get("_sp_id")
        if found is None:
            where: tuple[_Layout, int | None] | None = self.__dict__.get("_sp_where")
            if where is not None and where[1] is not None:
                found = where[0].setting_id(where[1])
            else:
                found = setting_id(self._sp_encodings())
            self.__dict__["_sp_id"] = found
        return found

    @property
    def workdir(self) -> Path:
        """This setting's own folder, ``work/<id>/`` in its results folder, made on first
        use and kept across attempts and resumes: for checkpoints and artifacts.

        A fresh start (``fresh=True``, a rerun of an outdated setting) finds it empty.
        On a worker that does not share the results folder's file system, it is a
        folder of the worker's machine. Outside a run, it is where a run to the class's
        default folder keeps it.
        """
        from superparams._store import _workdir

        self._sp_require_setting("a workdir")
        return _workdir.of(self).made()

    @property
    def resumed(self) -> bool:
        """Whether :attr:`workdir` held something when this attempt first looked at it:
        what an earlier attempt left (a checkpoint to continue from)."""
        from superparams._store import _workdir

        self._sp_require_setting("a workdir")
        return _workdir.of(self).resumed

    @property
    def label(self) -> str:
        """A readable name from the fields that vary, e.g. ``"batch_size=16"``."""
        self._sp_require_setting("a label")
        where = self.__dict__.get("_sp_where")
        if where is not None:
            names = where[0].varied
        else:  # made by hand: the fields that differ from the class's plain defaults
            info = type(self)._sp_info()
            names = tuple(n for n in info.fields if _differs_from_default(self, n))
        return ",".join(f"{n}={_brief(self.__dict__[n])}" for n in names) or "defaults"

    def _sp_require_setting(self, what: str) -> None:
        if not self._sp_is_setting():
            n = len(self) if self.enumerable else "many"
            msg = (
                f"this {type(self).__name__} is a space of {n} settings, so it has no single "
                f"{what.split()[-1]}; take one setting (space[0], or iterate) for {what}"
            )
            raise ExperimentError(msg)

    # -- what print() shows ------------------------------------------------------------

    def __str__(self) -> str:
        return repr(self) if self._sp_is_setting() else overview(self)


def reserved_names() -> tuple[frozenset[str], frozenset[str]]:
    """The names a field may not take: the results' own columns, and superparams' attributes.

    Both are worked out when a class is made, from the results' bookkeeping columns (with
    ``id`` and ``label``) and from the public attributes of Experiment and Space, so a
    column or a method added to either is reserved with no list to keep.
    """
    from superparams._store import _columns

    columns = frozenset({*_columns.BOOKKEEPING, "id", "label"})
    attributes = frozenset(
        name for base in (Experiment, Space) for name in dir(base) if not name.startswith("_")
    )
    return columns, attributes


def _class_hints(cls: type, annotations: dict[str, Any]) -> dict[str, Any]:
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


def _checked(owner: str, name: str, value: Any, annotation: Any, made: str | None) -> Any:
    """A field's value checked against its annotation, converted where that is lossless.

    ``made`` is the class whose construction gave the value, or None for a class default;
    a search gives back a new one only when some value was converted.
    """
    if isinstance(value, Derived):
        return value
    if isinstance(value, Distribution):
        _check_drawn(owner, name, value, annotation)
        return value
    if isinstance(value, Grid):
        if type(annotation) is type and annotation in _SCALARS and _all_of(annotation, value):
            _check_distinct(owner, name, value, value.points)
            return value  # a long search of ints or floats, checked at C speed
        points = [_conformed(owner, name, p, annotation, value) for p in value.points]
        _check_distinct(owner, name, value, points)
        if all(a is b for a, b in zip(points, value.points, strict=True)):
            return value
        return _regrid(value, points, value.link)
    where = "its default is" if made is None else f"{made}({name}={_short(value, 60)}) gives it"
    try:
        return conform(value, annotation)
    except Mismatch as error:
        raise ExperimentError(_mismatch(owner, name, annotation, where, error)) from None


def _check_distinct(owner: str, name: str, grid: Grid, points: Sequence[Any]) -> None:
    """Refuse a search that lists one setting twice: two settings with one id, counted
    twice and run once. Linked values may repeat (their partners tell them apart).

    Raises:
        ExperimentError: naming the value given twice.
    """
    if grid.link is not None or len(points) < 2:
        return
    if all(type(p) in _SCALARS for p in points):
        if len(set(points)) == len(points):  # the common case, at C speed
            return
        keys: list[Any] = [encode(p, name) for p in points]
    else:
        keys = []
        for point in points:  # a nested experiment stands for each of its settings
            keys.extend(point._sp_ids() if isinstance(point, Space) else [encode(point, name)])
    seen: set[Any] = set()
    for key, point in zip(keys, _expanded(points), strict=True):
        if key in seen:
            msg = (
                f"{owner}.{name}: {grid.maker}() holds {_short(point, 60)} twice, which is "
                "one setting counted twice; give each value once"
            )
            raise ExperimentError(msg)
        seen.add(key)


def _expanded(points: Sequence[Any]) -> Iterator[Any]:
    """Each point, a nested experiment's space as each of its settings."""
    for point in points:
        if isinstance(point, Space):
            yield from point
        else:
            yield point


def _all_of(kind: type, grid: Grid) -> bool:
    return all(type(p) is kind for p in grid.points)


def _regrid(grid: Grid, points: Any, link: str | None) -> Grid:
    """The same search or choice over other points, or with another link."""
    new = Grid(points, link=link, weights=grid.weights)
    new.maker, new.replicate = grid.maker, grid.replicate
    return new


def _conformed(owner: str, name: str, point: Any, annotation: Any, grid: Grid) -> Any:
    try:
        return conform(point, annotation)
    except Mismatch as error:
        where = f"{grid.maker}() gives it"
        raise ExperimentError(_mismatch(owner, name, annotation, where, error)) from None


def _check_drawn(owner: str, name: str, dist: Distribution, annotation: Any) -> None:
    if all(_accepts(bound, annotation) for bound in (dist.low, dist.high)):  # type: ignore[attr-defined]
        return
    kind = "ints" if isinstance(dist, _RandInt) else "floats"
    msg = f"{owner}.{name} is {_a(annotation)}, but {dist!r} draws {kind}"
    if kind == "floats" and _accepts(1, annotation):
        msg += "; draw ints with randint(low, high)"
    raise ExperimentError(msg)


def _accepts(value: Any, annotation: Any) -> bool:
    try:
        conform(value, annotation)
    except Mismatch:
        return False
    return True


def _mismatch(owner: str, name: str, annotation: Any, where: str, error: Mismatch) -> str:
    shown = f"{_short(error.value, 60)} ({_a(type(error.part))})"
    if error.value is None:
        shown = "None"
    elif error.part is None:  # an item of a list, say
        shown = f"{_short(error.value, 60)} (it holds None)"
    elif error.part is not error.value:
        shown = f"{_short(error.value, 60)} ({_short(error.part, 60)} is {_a(type(error.part))})"
    return f"{owner}.{name} is {_a(annotation)}, but {where} {shown}"


def _a(annotation: Any) -> str:
    """An annotation as a phrase: ``an int``, ``an int or None``, ``one of 'a', 'b'``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if isinstance(annotation, str) or origin not in (typing.Union, types.UnionType, Literal):
        if annotation is type(None):
            return "None"
        text = _type_name(annotation)
        if isinstance(annotation, type) and issubclass(annotation, PurePath):
            text = "Path"
        return f"{'an' if text[:1].lower() in 'aeiou' else 'a'} {text}"
    if origin is Literal:
        return "one of " + ", ".join(_short(a, 60) for a in args)
    return " or ".join(_a(a) for a in args)


def _keep_links(setting: Experiment, info: _ClassInfo, given: set[str]) -> None:
    """Overrides of fields the class links keep the link (an override gives the values).

    A search for one field of a group replaces its values in place (so it needs as many);
    a pinned value selects its position in the group, and the fields not given take
    their values at that position.
    """
    state = setting.__dict__
    groups: dict[str, list[str]] = {}
    for name in info.fields:
        default = info.defaults.get(name)
        if isinstance(default, Grid) and default.link is not None:
            groups.setdefault(default.link, []).append(name)
    for link, names in groups.items():
        for name in set(names) & given:
            v = state[name]
            if type(v) is Grid and v.link is None:
                state[name] = _regrid(v, v.points, link)
        pinned = [n for n in names if n in given and _as_dimension(state[n]) is None]
        partners = [n for n in names if n not in given]
        if not pinned or not partners:
            continue
        positions: list[int] | None = None
        for name in pinned:
            found = _positions(setting, info, name, link, partners)
            positions = found if positions is None else [j for j in positions if j in found]
        if not positions:
            values = ", ".join(f"{n}={_short(state[n], 60)}" for n in pinned)
            msg = (
                f"{type(setting).__name__}: {values} are linked by {link!r} but never searched "
                f"together, so {', '.join(partners)} has no value to take; pin it too"
            )
            raise SearchSpaceError(msg)
        for name in partners:
            dim = info.defaults[name]
            picked = [dim.get(j) for j in positions]
            state[name] = _own_copy(picked[0]) if len(picked) == 1 else Grid(picked, link=link)


def _positions(
    setting: Experiment, info: _ClassInfo, name: str, link: str, partners: list[str]
) -> list[int]:
    """Where a pinned value stands among its field's searched values (several if repeated)."""
    annotation = info.annotations.get(name)
    dim: Grid = info.defaults[name]
    target = encode(canonical(setting.__dict__[name], annotation), name)
    searched = [canonical(dim.get(j), annotation) for j in range(dim.size())]
    found = [j for j, v in enumerate(searched) if encode(v, name) == target]
    if not found:
        shown = ", ".join(_short(v, 24) for v in searched[:12])
        if len(searched) > 12:
            shown += f", … ({len(searched):,} values)"
        msg = (
            f"{type(setting).__name__}.{name} is linked by {link!r} to {', '.join(partners)}, "
            f"so it takes one of its searched values {shown}, not "
            f"{_short(setting.__dict__[name], 60)}; pin {', '.join(partners)} too, or override "
            f"{name} with search(...)"
        )
        raise SearchSpaceError(msg)
    return found


def _is_behaviour(value: Any) -> bool:
    """A method, property or nested class: what a class body holds besides data."""
    return (
        inspect.isroutine(value)
        or isinstance(value, (property, classmethod, staticmethod, type))
        or hasattr(value, "__get__")
    )


def _unannotated(cls: type, name: str, value: Any) -> str:
    """The message for ``x = search(...)`` with no annotation: the line to write instead.

    Without one, a dataclass takes the attribute for shared data, not a field; and one
    that repeats an inherited field's name leaves the field's default as it was.
    """
    written = _written(value)
    inherited = {f.name: f.type for f in getattr(cls, "__dataclass_fields__", {}).values()}
    annotation = inherited[name] if name in inherited else _guess_annotation(value)
    if not isinstance(annotation, str):
        annotation = _type_name(annotation)
    why = "so it would not be a field"
    if name in inherited:
        why = f"so it would not change the default of the field {name} it inherits"
    return (
        f"{cls.__name__}.{name} = {written} has no annotation, {why}; "
        f"annotate it: `{name}: {annotation} = {written}`"
    )


def _written(value: Any) -> str:
    """A search, choice, distribution, derived or plain value as it would be written."""
    if not isinstance(value, Dimension):
        text = repr(value)
        return text if len(text) <= 60 else "..."
    if isinstance(value, Derived):
        fn = getattr(value.compute, "__name__", "<lambda>")
        return f"derived({fn if fn.isidentifier() else '...'})"
    if not isinstance(value, Grid):
        return repr(value)
    inner = ", ".join(repr(p) for p in value.points)
    if value.link is not None:
        inner += f", link={value.link!r}"
    if value.weights is not None:
        inner += f", weights={value.weights!r}"
    if len(inner) > 60 or value.expands():
        inner = "..."
    return f"{value.maker}({inner})"


def _guess_annotation(value: Dimension) -> str:
    if isinstance(value, Distribution):
        return "int" if isinstance(value, _RandInt) else "float"
    if not isinstance(value, Grid):
        return "Any"
    kinds = set()
    for p in value.points:
        kind = p.experiment_class if isinstance(p, Space) else type(p)
        kinds.add(PurePath if isinstance(p, PurePath) else kind)
    if kinds == {int, float}:
        kinds = {float}
    if len(kinds) != 1:
        return "Any"
    (kind,) = kinds
    return "Path" if kind is PurePath else kind.__name__


def _own_copy(value: Any) -> Any:
    """A copy of a list, dict, set or nested setting; anything else (an array) is shared.

    Copying is what makes a mutable default safe; a large array or a dataset is the
    kind of value no one wants copied per instance, and it is never mutated by accident
    through a shared class attribute the way a list of layers is.
    """
    if type(value) in _MUTABLE or isinstance(value, Experiment):
        return copy.deepcopy(value)
    return value


def _is_plain(value: Any) -> bool:
    """Whether a value is one value, not a space of them (a nested setting is one)."""
    return not isinstance(value, Space) or (
        isinstance(value, Experiment) and value._sp_is_setting()
    )


def _differs_from_default(setting: Experiment, name: str) -> bool:
    info = type(setting)._sp_info()
    default = info.defaults.get(name)
    if type(default) is Grid and len(default.points) == 1 and _is_plain(default.points[0]):
        default = default.points[0]  # a constant written search(x), or a mutable default
    if isinstance(default, (Dimension, Space)):
        return True
    default = canonical(default, info.annotations.get(name))
    return encode(setting.__dict__[name], name) != encode(default, name)


def _guard_run(run: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(run)
    def guarded(self: Experiment, *args: Any, **kwargs: Any) -> Any:
        if not self._sp_is_setting():
            n = len(self) if self.enumerable else "many"
            msg = (
                f"run() runs one setting, but this {type(self).__name__} is a space of {n} "
                "settings; call .run_all() to run them all, or run one: space[0].run()"
            )
            raise ExperimentError(msg)
        error = self.__dict__.get("_sp_error")
        if error is not None:  # its derived field or its is_valid() raised: see _derive
            raise error
        return run(self, *args, **kwargs)

    return guarded


def _derive(setting: Experiment, derived: tuple[tuple[str, Derived], ...]) -> None:
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


def _guard_post_init(post_init: Callable[[Any], None]) -> Callable[[Any], None]:
    # A user's __post_init__ sees plain values only: it runs on settings, not on spaces.
    @functools.wraps(post_init)
    def guarded(self: Experiment) -> None:
        Experiment.__post_init__(self)
        if self._sp_is_setting():
            post_init(self)

    return guarded


def _is_classvar(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return annotation.startswith(("ClassVar", "typing.ClassVar"))
    return typing.get_origin(annotation) is ClassVar or annotation is ClassVar


def _brief(value: Any, width: int = 32) -> str:
    if isinstance(value, Experiment):
        label = value.label
        text = f"{type(value).__name__}({'' if label == 'defaults' else label})"
    else:
        text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 1] + "…"


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, str):
        return annotation
    # list[int] is no class, though Python 3.10's isinstance says it is a type.
    if isinstance(annotation, type) and typing.get_origin(annotation) is None:
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def overview(space: Experiment) -> str:
    """What ``print(space)`` shows, and the ``experiment`` command before a run: the
    class and its number of settings, then a line per field with its type and values."""
    title, rows = _overview_rows(space)
    w0 = max((len(r[0]) for r in rows), default=0)
    w1 = max((len(r[1]) for r in rows), default=0)
    w2 = max((len(r[2]) for r in rows), default=0)
    lines = [title]
    lines += [f"  {a:<{w0}}  {b:<{w1}}  {c:<{w2}}  {d}".rstrip() for a, b, c, d in rows]
    return "\n".join(lines)


def _overview_rows(space: Experiment) -> tuple[str, list[tuple[str, str, str, str]]]:
    """The overview's title and its rows: each field's name, type, values and size."""
    cls = type(space)
    info = cls._sp_info()
    try:
        n = len(space) if space.enumerable else None
        count = "sampled only" if n is None else f"{n:,} setting{'s' if n != 1 else ''}"
    except SearchSpaceError as error:
        count = str(error)
    rows = []
    for name in info.fields + tuple(n for n, _ in info.derived):
        v = space.__dict__[name]
        dim = _as_dimension(v)
        shown = repr(dim) if isinstance(dim, Dimension) and dim is not v else repr(v)
        if len(shown) > 60:
            shown = shown[:59] + "…"
        size = ""
        if dim is not None and dim.enumerable:
            size = f"{dim.size()} values"
        elif dim is not None:
            size = "drawn"
        rows.append((name, _type_name(info.annotations.get(name, "")), shown, size))
    return f"{cls.__name__}: {count}", rows
