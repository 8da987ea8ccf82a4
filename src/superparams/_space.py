"""Search spaces: a finite list of values, and spaces built from other spaces.

This room owns the dimension a field ranges over (:class:`Dimension`, and :class:`Grid`,
the list :func:`~superparams.search` makes; the other declarations are in
:mod:`superparams._values`) and the algebra of spaces (union, sampling, filtering by
validity). It is pure: no I/O, no processes, nothing printed. An :class:`~superparams.Experiment`
instance is the product space; this module knows it only through :class:`Space`.

Every space is lazy. Its length and its ``i``-th setting are computed from the sizes of
its dimensions (mixed-radix indexing), so a space of a million settings costs no memory
until its settings are asked for.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, TypeVar, overload

# The one import up, kept by design: a space's front-door methods (run_all, plan,
# results, summary, best) are the front door's, and _api imports the rooms that do the
# work (runner, store, summary) only inside its functions.
from superparams import _api
from superparams.errors import SearchSpaceError

if TYPE_CHECKING:
    from pathlib import Path

    import polars as pl

    from superparams._experiment import Experiment
    from superparams._store._workdir import Workdir

E = TypeVar("E", bound="Experiment")

# How many draws ``sample`` may reject (for settings that are not valid) before it gives up.
_MAX_REJECTIONS = 10_000


class Dimension:
    """The values one field ranges over.

    A dimension is *enumerable* when it is a finite list (``search``, ``choice``); the
    distributions are not, and can only be drawn from by :meth:`Space.sample`.
    """

    link: str | None = None

    @property
    def enumerable(self) -> bool:
        """Whether the dimension is a finite list of values."""
        raise NotImplementedError

    def size(self) -> int:
        """How many values the dimension holds; only for enumerable dimensions."""
        raise NotImplementedError

    def get(self, i: int) -> Any:
        """The ``i``-th value, ``0 <= i < size()``."""
        raise NotImplementedError

    def draw(self, rng: random.Random) -> Any:
        """One value chosen at random."""
        raise NotImplementedError

    def expands(self) -> bool:
        """Whether some value is itself a space, whose settings are spliced in."""
        return False


class Grid(Dimension):
    """A finite list of values, made by :func:`search` or :func:`choice`.

    A value that is itself a space (an Experiment instance with searches, say) stands for
    all of its settings: the dimension is the concatenation of them.
    """

    maker = "search"  # the function that made it, as errors name it
    replicate = False  # made by seeds(): repeats of one setting, to summarise over

    def __init__(
        self,
        points: Sequence[Any],
        *,
        link: str | None = None,
        weights: Sequence[float] | None = None,
    ) -> None:
        self.points = tuple(points)
        self.link = link
        self.weights = tuple(weights) if weights is not None else None
        self._offsets: list[int] | None = None
        self._expands = any(isinstance(p, Space) for p in self.points)

    @property
    def enumerable(self) -> bool:
        return not self._expands or all(
            not isinstance(p, Space) or p.enumerable for p in self.points
        )

    def expands(self) -> bool:
        return self._expands

    def _cumulative(self) -> list[int]:
        if self._offsets is None:
            offsets, total = [], 0
            for p in self.points:
                offsets.append(total)
                total += len(p) if isinstance(p, Space) else 1
            offsets.append(total)
            self._offsets = offsets
        return self._offsets

    def size(self) -> int:
        if not self._expands:
            return len(self.points)
        return self._cumulative()[-1]

    def get(self, i: int) -> Any:
        if not self._expands:
            return self.points[i]
        offsets = self._cumulative()
        lo, hi = 0, len(self.points) - 1
        while lo < hi:  # the last point whose offset is <= i
            mid = (lo + hi + 1) // 2
            if offsets[mid] <= i:
                lo = mid
            else:
                hi = mid - 1
        point = self.points[lo]
        return point[i - offsets[lo]] if isinstance(point, Space) else point

    def draw(self, rng: random.Random) -> Any:
        if self.weights is not None:
            point = rng.choices(self.points, weights=self.weights)[0]
        elif self.enumerable:
            return self.get(rng.randrange(self.size()))
        else:
            point = self.points[rng.randrange(len(self.points))]
        return point._draw(rng) if isinstance(point, Space) else point

    def __repr__(self) -> str:
        first, n = self.points[0], len(self.points)
        if self.replicate and type(first) is int and self.points == tuple(range(first, first + n)):
            return f"seeds({n}{f', start={first}' if first else ''})"
        shown = [short(p) for p in self.points[:12]]
        if len(self.points) > 12:
            shown.append(f"… {len(self.points):,} values")
        inner = ", ".join(shown)
        link = f", link={self.link!r}" if self.link else ""
        weights = f", weights={list(self.weights)!r}" if self.weights is not None else ""
        return f"{self.maker}({inner}{link}{weights})"


class Space(Generic[E]):
    """A lazy, indexable sequence of settings of one experiment class.

    Subclasses give the raw size and the raw ``i``-th setting; this base adds validity
    filtering (a class's ``is_valid``), indexing, iteration, sampling and union.
    """

    # -- what a subclass provides ------------------------------------------------------

    # (No ABC here: an Experiment is a Space, and ABCMeta would slow every isinstance.)

    @property
    def experiment_class(self) -> type[E]:
        """The class every setting of this space is an instance of."""
        raise NotImplementedError

    @property
    def enumerable(self) -> bool:
        """Whether the space is a finite list (it has no distributions)."""
        raise NotImplementedError

    def _raw_size(self) -> int:
        """The number of settings before filtering out those that are not valid."""
        raise NotImplementedError

    def _raw_get(self, i: int) -> E:
        """The ``i``-th setting before filtering, ``0 <= i < _raw_size()``."""
        raise NotImplementedError

    def _raw_draw(self, rng: random.Random) -> E:
        """One setting chosen at random, before filtering."""
        raise NotImplementedError

    def _sp_is_setting(self) -> bool:
        """Whether this is one setting, not a space of them: a union or a sample never is."""
        return False

    # -- validity ----------------------------------------------------------------------

    def _filters(self) -> bool:
        return self.experiment_class._sp_has_validity()

    def _valid_index(self) -> array[int]:
        return self._validity()[0]

    def _validity(self) -> tuple[array[int], frozenset[int]]:
        """The raw positions of the valid settings, and those whose is_valid() raised.

        A setting whose ``is_valid()`` raises counts as valid: it is in the space, and
        when it is taken from the space it carries the error, so its run fails with it.
        """
        cached: tuple[int, array[int], frozenset[int]] | None = self.__dict__.get("_sp_valid")
        size = self._raw_size()
        if cached is None or cached[0] != size:
            keep: array[int] = array("q")
            raised = set()
            for i in range(size):
                try:
                    valid = self._raw_get(i).is_valid()
                except Exception:
                    valid = True
                    raised.add(i)
                if valid:
                    keep.append(i)
            cached = (size, keep, frozenset(raised))
            self.__dict__["_sp_valid"] = cached
        return cached[1], cached[2]

    def _valid_get(self, j: int) -> E:
        """The ``j``-th valid setting; if its is_valid() raised, it carries the error."""
        keep, raised = self._validity()
        raw = keep[j]
        setting = self._raw_get(raw)
        if raised and raw in raised:
            _carry_validity_error(setting)
        return setting

    # -- the sequence ------------------------------------------------------------------

    def __len__(self) -> int:
        if not self.enumerable:
            msg = (
                f"this {self.experiment_class.__name__} space draws from a distribution, so it "
                "has no length; take a finite sample with space.sample(n, seed=...)"
            )
            raise SearchSpaceError(msg)
        return len(self._valid_index()) if self._filters() else self._raw_size()

    @overload
    def __getitem__(self, i: int) -> E: ...
    @overload
    def __getitem__(self, i: slice) -> list[E]: ...
    def __getitem__(self, i: int | slice) -> E | list[E]:
        n = len(self)
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(n))]
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            msg = f"setting index {i} is out of range for a space of {n} settings"
            raise IndexError(msg)
        return self._valid_get(j) if self._filters() else self._raw_get(j)

    def __iter__(self) -> Iterator[E]:
        if self._filters():
            for j in range(len(self._valid_index())):
                yield self._valid_get(j)
        else:
            for j in range(len(self)):
                yield self._raw_get(j)

    def _draw(self, rng: random.Random) -> E:
        for _ in range(_MAX_REJECTIONS):
            setting = self._raw_draw(rng)
            if not self._filters():
                return setting
            try:
                valid = setting.is_valid()
            except Exception as error:  # in the space, and its run fails with the error
                setting.__dict__.setdefault("_sp_error", error)
                return setting
            if valid:
                return setting
        msg = (
            f"sampling drew {_MAX_REJECTIONS} settings of {self.experiment_class.__name__} "
            "and none was valid; check its is_valid()"
        )
        raise SearchSpaceError(msg)

    def _sp_ids(self) -> Iterator[str]:
        """The id of each setting, in order; subclasses compute them without settings."""
        for setting in self:
            yield setting.id

    # -- running and results: the front door, typed and documented in superparams._api --

    # Final: each is exactly the front door's function, as a method (checkers bind it).
    run_all: Final = _api.run_all
    optimize: Final = _api.optimize
    plan: Final = _api.plan
    results: Final = _api.results
    diff: Final = _api.diff

    # -- after the run: the front door too, which imports superparams._summary when used --

    def summary(
        self,
        over: str | Sequence[str] | None = None,
        *,
        rows: str | pl.Expr = "last",
        folder: Path | str | None = None,
        level: float = 0.95,
    ) -> pl.DataFrame:
        """Each metric's mean, std, sem, n and interval over the seeds, one row per other
        setting.

        ``over`` names the fields to summarise over (by default those declared with
        :func:`seeds`; ``[]`` for one row per setting). The columns are the parameters
        that vary, then ``<metric>_mean``, ``_std`` (ddof=1), ``_sem``, ``_n``,
        ``_ci_low`` and ``_ci_high`` (the t-interval of the mean at ``level``; null with
        fewer than two values) for each numeric metric, then ``left_out``: how many
        stored settings of the row did not complete (failed, interrupted or running),
        which count in no statistic. A setting with several rows counts by its last
        (``rows="first"``, ``"max"``, ``"min"``, ``"mean"`` reduce each metric over them
        instead, and a polars expression keeps the rows it is true for, then takes the
        last).

        Raises:
            UsageError: when there is nothing to summarise over, ``over`` or ``rows``
                names something the space does not have, or ``level`` is not in (0, 1).
        """
        return _api.summary(self, over, rows=rows, folder=folder, level=level)

    def best(
        self,
        metric: str | Sequence[str],
        mode: Literal["max", "min"] | Sequence[Literal["max", "min"]] = "max",
        *,
        over: str | Sequence[str] | None = None,
        rows: str | pl.Expr = "last",
        folder: Path | str | None = None,
        level: float = 0.95,
    ) -> pl.DataFrame:
        """The row of :meth:`summary` with the highest mean ``metric`` (``mode="min"``: lowest).

        The winner on the mean over seeds, not on one lucky seed; without seeds, the best
        setting. No row when no setting completed. Two more columns say whether the
        winner is real: ``<metric>_verdict`` is ``"clear"`` when a paired t-test over the
        seeds it shares with each other row (Holm-corrected across them, at ``level``)
        tells it from all of them, ``"tie"`` when some cannot be told from it, and
        ``"too few seeds"`` when the winner, or a row it is compared with, shares fewer
        than two completed seeds; ``<metric>_ties`` lists the labels of the rows in a tie.
        For several metrics (``best(["acc", "latency"], mode=["max", "min"])``), the rows
        on the Pareto front of their means: those no other row matches or beats on every
        metric, sorted by the first.

        Raises:
            UsageError: for a metric the summary does not hold, a mode not max or min, or a
                ``level`` not in (0, 1).
        """
        return _api.best(self, metric, mode, over=over, rows=rows, folder=folder, level=level)

    def _repr_html_(self) -> str:
        """What a notebook shows: the overview print() gives, as a table."""
        return _api.space_html(self)

    # -- algebra -----------------------------------------------------------------------

    def __or__(self, other: Space[E]) -> Space[E]:
        """The settings of both spaces, this one's first."""
        return Union((self, other))

    def sample(self, n: int, seed: int = 0) -> Space[E]:
        """``n`` settings drawn at random, the same ones for the same ``seed``.

        A finite space is sampled without replacement (``n`` may not exceed its length);
        a space with distributions draws every setting independently. A larger ``n`` with
        the same seed extends a smaller one: its first settings are the same.

        >>> from superparams import Experiment, loguniform
        >>> class Train(Experiment):
        ...     lr: float = loguniform(1e-4, 1e-1)
        >>> len(Train().sample(5, seed=1))
        5
        """
        if n < 0:
            msg = f"sample() needs n >= 0, got {n!r}"
            raise SearchSpaceError(msg)
        return Sample(self, n, seed)


class Union(Space[E]):
    """Several spaces of one experiment class, one after another."""

    def __init__(self, parts: Sequence[Space[E]]) -> None:
        flat: list[Space[E]] = []
        for part in parts:
            flat.extend(part.parts if isinstance(part, Union) else [part])
        classes = {p.experiment_class for p in flat}
        if len(classes) > 1:
            names = ", ".join(sorted(c.__name__ for c in classes))
            msg = (
                f"cannot join spaces of different experiments ({names}); a union holds "
                "settings of one experiment class, which share one results folder"
            )
            raise SearchSpaceError(msg)
        self.parts: tuple[Space[E], ...] = tuple(flat)

    @property
    def experiment_class(self) -> type[E]:
        return self.parts[0].experiment_class

    @property
    def enumerable(self) -> bool:
        return all(p.enumerable for p in self.parts)

    def _filters(self) -> bool:
        return False  # each part filters its own settings

    def _raw_size(self) -> int:
        return sum(len(p) for p in self.parts)

    def _raw_get(self, i: int) -> E:
        for part in self.parts:
            n = len(part)
            if i < n:
                return part[i]
            i -= n
        msg = "index past the end of a union"
        raise AssertionError(msg)

    def _sp_ids(self) -> Iterator[str]:
        for part in self.parts:
            yield from part._sp_ids()

    def _raw_draw(self, rng: random.Random) -> E:
        if self.enumerable:
            return self._raw_get(rng.randrange(self._raw_size()))
        return self.parts[rng.randrange(len(self.parts))]._draw(rng)

    def __repr__(self) -> str:
        return " | ".join(repr(p) for p in self.parts)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.parts)


class Sample(Space[E]):
    """``n`` settings drawn from a space, reproducible by their seed.

    A space that declares seeds (:func:`seeds`) is sampled by configuration: ``n``
    configurations are drawn from its other fields, and each runs on every declared seed,
    its settings side by side. That is the protocol of a paper's table: N random
    configurations, each averaged over the same seeds.
    """

    def __init__(self, source: Space[E], n: int, seed: int) -> None:
        self.source, self.n, self.seed = source, n, seed
        self._indices: list[int] | None = None
        replicates = replicate_values(source)
        #: One space per combination of the declared seeds, each with those pinned: the
        #: same configurations in the same order, so position c is configuration c in all.
        self._spaces: tuple[Space[E], ...] = tuple(
            pinned(source, values) for values in replicates
        ) or (source,)
        self.seeds = len(self._spaces)
        if source.enumerable:
            sizes = {len(space) for space in self._spaces}
            if len(sizes) > 1:
                msg = (
                    f"cannot sample {source!r} by configuration: its is_valid() keeps "
                    f"different settings for different seeds ({sorted(sizes)} of them); "
                    "make is_valid() independent of the seed"
                )
                raise SearchSpaceError(msg)
            size = sizes.pop()
            if n > size:
                what = "settings" if self.seeds == 1 else "configurations"
                msg = (
                    f"cannot sample {n} distinct {what} from a space of {size}; "
                    f"ask for at most {size}, or run the whole space"
                )
                raise SearchSpaceError(msg)

    @property
    def experiment_class(self) -> type[E]:
        return self.source.experiment_class

    @property
    def enumerable(self) -> bool:
        return True

    def _filters(self) -> bool:
        return False  # the source filters

    def _raw_size(self) -> int:
        return self.n * self.seeds

    def _raw_get(self, i: int) -> E:
        configuration, replicate = divmod(i, self.seeds)
        space = self._spaces[replicate]
        if space.enumerable:
            if self._indices is None:
                self._indices = _distinct(len(space), self.n, self.seed)
            setting = space[self._indices[configuration]]
        else:
            # Each draw has its own generator, so any one is computed without the others,
            # and a configuration's draw is the same whichever seed is pinned.
            setting = space._draw(random.Random(f"superparams:{self.seed}:{configuration}"))
        return setting

    def _raw_draw(self, rng: random.Random) -> E:
        return self._raw_get(rng.randrange(self._raw_size()))

    def __repr__(self) -> str:
        return f"{self.source!r}.sample({self.n}, seed={self.seed})"

    def __str__(self) -> str:
        if self.seeds == 1:
            drawn = f"{self.n} setting{'s' * (self.n != 1)} sampled (seed {self.seed})"
        else:
            drawn = (
                f"{self.n} configuration{'s' * (self.n != 1)} sampled (seed {self.seed}), "
                f"each on {self.seeds} seeds"
            )
        return f"{drawn}, from\n{self.source}" if self.seeds > 1 else f"{drawn} from\n{self.source}"


def setting_ids(space: Space[Any]) -> Iterator[str]:
    """The id of each setting of ``space``, in order; most spaces compute them without
    making the settings."""
    return space._sp_ids()


def labels_of(space: Space[Any], ids: list[str]) -> Callable[[str], str | None]:
    """The label a setting of ``space`` has, by id (None if it is not in the space)."""

    def label(sid: str) -> str | None:
        try:
            shown: str = space[ids.index(sid)].label
        except ValueError:
            return None
        return shown

    return label


def is_setting(space: Space[Any]) -> bool:
    """Whether ``space`` is one setting (an experiment searching no field), not a space."""
    return space._sp_is_setting()


# -- what the model asks of the front door (the one import up, see the imports) ---------


def bookkeeping_columns() -> frozenset[str]:
    """The columns the store adds to every results table, which no field may be called."""
    return _api.bookkeeping_columns()


def setting_workdir(setting: Experiment) -> Workdir:
    """A setting's own folder in its results folder (see :attr:`Experiment.workdir`)."""
    return _api.setting_workdir(setting)


def replicate_values(space: Space[Any]) -> list[dict[str, Any]]:
    """Each combination of the seeds a space declares (:func:`seeds`), in product order;
    none for a space that declares none (or pins them).

    A union's parts must declare the same seeds: a configuration of one part runs on them.
    """
    import itertools

    if isinstance(space, Union):
        found = [replicate_values(part) for part in space.parts]
        if any(f != found[0] for f in found):
            msg = (
                f"cannot sample {space!r} by configuration: its parts declare different "
                "seeds; declare the same seeds(...) in each part"
            )
            raise SearchSpaceError(msg)
        return found[0]
    fields = getattr(space, "__dataclass_fields__", None)
    if fields is None:
        return []  # a sample of a sample draws its settings as they are
    axes = {
        name: held.points
        for name in fields
        if isinstance(held := space.__dict__.get(name), Grid)
        and held.replicate
        and held.link is None
    }
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def pinned(space: Space[E], values: dict[str, Any]) -> Space[E]:
    """``space`` with the given fields set, in each part of a union. Its settings' labels
    still name what varies in ``space`` (a pinned seed or a proposed value included), so
    labels follow the space being run, not the one pinned to run a part of it."""
    import dataclasses

    if isinstance(space, Union):
        return Union([pinned(part, values) for part in space.parts])
    layout = getattr(space, "_sp_layout", None)
    shown = layout().varied if layout is not None else None
    made = dataclasses.replace(space, **values)  # type: ignore[type-var]
    if shown is not None:
        made.__dict__["_sp_shown"] = shown
    return made


def _carry_validity_error(setting: Any) -> None:
    """Ask a setting's is_valid() again; if it raises, the setting carries the error."""
    try:
        setting.is_valid()
    except Exception as error:
        setting.__dict__.setdefault("_sp_error", error)


def _distinct(size: int, n: int, seed: int) -> list[int]:
    """``n`` distinct indices below ``size``: a partial Fisher-Yates shuffle, kept sparse.

    Each prefix of the result is the result for a smaller ``n``, so samples nest.
    """
    rng = random.Random(f"superparams:{seed}")
    moved: dict[int, int] = {}
    out = []
    for k in range(n):
        j = k + rng.randrange(size - k)
        out.append(moved.get(j, j))
        moved[j] = moved.get(k, k)
    return out


def short(value: Any, width: int = 24) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"
