"""The Experiment base class: a dataclass whose instance is a space of settings.

This room owns what a user's class becomes: the class machinery (with or without
``@dataclass``, mutable defaults allowed, fields checked when the class is made and when
an instance is), the instance as a space, and each materialised setting: its id, label
and workdir. The rooms it builds on own the rest: what a class declares
(:mod:`superparams._declared`), a value checked against its field's type
(:mod:`superparams._fields`), the product of the axes (:mod:`superparams._product`) and
the overview ``print(space)`` shows (:mod:`superparams._overview`). It runs nothing and
stores nothing; :meth:`Space.run_all` hands the space to the runner.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import random
import sys
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, ClassVar, overload

from superparams._declared import ClassInfo, class_hints, declared
from superparams._fields import checked_value, regrid, type_name
from superparams._identity import canonical, encode, setting_id
from superparams._overview import overview
from superparams._product import MUTABLE, Layout, as_dimension, derive
from superparams._space import Dimension, Grid, Space, bookkeeping_columns, setting_workdir, short
from superparams._values import Derived, Distribution, RandInt
from superparams.errors import ExperimentError, SearchSpaceError, did_you_mean

if sys.version_info >= (3, 11):
    from typing import Self, dataclass_transform
else:  # pragma: no cover - exercised on Python 3.10 only
    from typing_extensions import Self, dataclass_transform

# ``run`` and ``is_valid`` are hooks, meant to be overridden by methods, never by fields;
# ``stop`` is the class's stop rules, a class attribute to set, never a field.
_HOOKS = frozenset({"run", "is_valid", "stop"})


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
        hints = class_hints(cls, annotations)
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
                    default.default = checked_value(
                        cls.__name__, name, given, hints.get(name), None
                    )
            elif default is not dataclasses.MISSING:
                checked = checked_value(cls.__name__, name, default, hints.get(name), None)
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
    def _sp_info(cls) -> ClassInfo:
        # Kept for code that tells an experiment class by it; superparams calls declared().
        return declared(cls)

    @classmethod
    def _sp_has_validity(cls) -> bool:
        return cls.is_valid is not Experiment.is_valid

    # -- an instance -------------------------------------------------------------------

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        if cls is Experiment:
            msg = "Experiment is a base class: subclass it with your parameters and run()"
            raise ExperimentError(msg)
        if kwargs:
            info = declared(cls)
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
        info = declared(type(self))
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
                state[name] = checked_value(owner, name, v, info.annotations.get(name), owner)
                given.add(name)
        for name in info.fields:
            v = state[name]
            if type(v) is Grid and len(v.points) == 1 and _is_plain(v.points[0]):
                v = state[name] = _own_copy(v.points[0])
            if as_dimension(v) is None:  # as in a setting made from a space: 1 -> 1.0, say
                state[name] = canonical(v, info.annotations.get(name))
        if given:  # after search(x) became x: one value given is a pinned value
            _keep_links(self, info, given)
        if info.derived and self._sp_is_setting():
            derive(self, info.derived)

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
        return [state[n] for n in declared(type(self)).fields]

    def _sp_layout(self) -> Layout:
        key = tuple(map(id, self._sp_values()))
        layout: Layout | None = self.__dict__.get("_sp_layout_cache")
        if layout is None or layout.key != key:
            layout = Layout(self, key)
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
        fields = declared(type(self)).fields
        return {n: encode(v, n) for n, v in zip(fields, self._sp_values(), strict=True)}

    @property
    def id(self) -> str:
        """The setting's id: 16 hex digits computed from its parameter values alone."""
        found: str | None = self.__dict__.get("_sp_id")
        if found is None:
            where: tuple[Layout, int | None] | None = self.__dict__.get("_sp_where")
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
        self._sp_require_setting("a workdir")
        return setting_workdir(self).made()

    @property
    def resumed(self) -> bool:
        """Whether :attr:`workdir` held something when this attempt first looked at it:
        what an earlier attempt left (a checkpoint to continue from)."""
        self._sp_require_setting("a workdir")
        return setting_workdir(self).resumed

    @property
    def label(self) -> str:
        """A readable name from the fields that vary, e.g. ``"batch_size=16"``."""
        self._sp_require_setting("a label")
        where = self.__dict__.get("_sp_where")
        if where is not None:
            names = where[0].varied
        else:  # made by hand: the fields that differ from the class's plain defaults
            info = declared(type(self))
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


def space_layout(space: Experiment) -> Layout:
    """How ``space`` splits into fixed values and axes, made once per instance."""
    return space._sp_layout()


def setting_encodings(setting: Experiment) -> dict[str, str]:
    """The canonical encoding of each field of ``setting``, which its id is made from."""
    return setting._sp_encodings()


def reserved_names() -> tuple[frozenset[str], frozenset[str]]:
    """The names a field may not take: the results' own columns, and superparams' attributes.

    Both are worked out when a class is made, from the results' bookkeeping columns (with
    ``id`` and ``label``) and from the public attributes of Experiment and Space, so a
    column or a method added to either is reserved with no list to keep.
    """
    columns = frozenset({*bookkeeping_columns(), "id", "label"})
    attributes = frozenset(
        name for base in (Experiment, Space) for name in dir(base) if not name.startswith("_")
    )
    return columns, attributes


def _keep_links(setting: Experiment, info: ClassInfo, given: set[str]) -> None:
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
                state[name] = regrid(v, v.points, link)
        pinned = [n for n in names if n in given and as_dimension(state[n]) is None]
        partners = [n for n in names if n not in given]
        if not pinned or not partners:
            continue
        positions: list[int] | None = None
        for name in pinned:
            found = _positions(setting, info, name, link, partners)
            positions = found if positions is None else [j for j in positions if j in found]
        if not positions:
            values = ", ".join(f"{n}={short(state[n], 60)}" for n in pinned)
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
    setting: Experiment, info: ClassInfo, name: str, link: str, partners: list[str]
) -> list[int]:
    """Where a pinned value stands among its field's searched values (several if repeated)."""
    annotation = info.annotations.get(name)
    dim: Grid = info.defaults[name]
    target = encode(canonical(setting.__dict__[name], annotation), name)
    searched = [canonical(dim.get(j), annotation) for j in range(dim.size())]
    found = [j for j, v in enumerate(searched) if encode(v, name) == target]
    if not found:
        shown = ", ".join(short(v, 24) for v in searched[:12])
        if len(searched) > 12:
            shown += f", … ({len(searched):,} values)"
        msg = (
            f"{type(setting).__name__}.{name} is linked by {link!r} to {', '.join(partners)}, "
            f"so it takes one of its searched values {shown}, not "
            f"{short(setting.__dict__[name], 60)}; pin {', '.join(partners)} too, or override "
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
        annotation = type_name(annotation)
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
        return "int" if isinstance(value, RandInt) else "float"
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
    if type(value) in MUTABLE or isinstance(value, Experiment):
        return copy.deepcopy(value)
    return value


def _is_plain(value: Any) -> bool:
    """Whether a value is one value, not a space of them (a nested setting is one)."""
    return not isinstance(value, Space) or (
        isinstance(value, Experiment) and value._sp_is_setting()
    )


def _differs_from_default(setting: Experiment, name: str) -> bool:
    info = declared(type(setting))
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
        if error is not None:  # its derived field or its is_valid() raised: see derive
            raise error
        return run(self, *args, **kwargs)

    return guarded


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
