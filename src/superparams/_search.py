"""Adaptive search: a sampler proposes configurations, each runs on every declared seed.

This room turns a space into an Optuna search space, asks Optuna's sampler (TPE, CMA-ES,
random, or any sampler object) for configurations, runs each as settings of the space on
every seed the space declares (:func:`~superparams.seeds`), and tells the sampler the
configuration's mean over its seeds once they have all ended. Up to ``num_proc``
configurations are proposed at a time.

The store is the search's only state. A proposal is an ordinary setting of the typed
space (its values checked by the one checker, its id made of its values) stored in the
same table as any other, so a rerun rebuilds the study from the stored outcomes, in the
order they were recorded, completes a configuration whose seeds were cut short before it
proposes anything new, and goes on to the budget. Nothing stored runs again. A rebuilt
study starts its sampler afresh from a seed made of the given seed and the history's
size, so two resumes of the same history propose the same next configuration; a search
that starts with an empty store asks exactly as Optuna's own ask-and-tell loop does.

It imports Optuna only when called (the ``search`` extra), and runs nothing itself: the
whole search is one run of the space (:func:`superparams._api.run_fed`) that takes each
proposal's settings as it is made, so workers start once, and a proposal costs what the
sampler and the store cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from superparams._search_space import Searched, searched_of
from superparams.errors import SearchSpaceError, UsageError, did_you_mean

if TYPE_CHECKING:
    import optuna
    import polars as pl

    from superparams._outcome import Outcome
    from superparams._runner import Feed, Proposed
    from superparams._space import Space
    from superparams._store._writer import Store

Mode = Literal["max", "min"]

#: The samplers known by name, and what each needs.
SAMPLERS = ("tpe", "cmaes", "random", "gp")


@dataclass(frozen=True)
class Told:
    """A configuration whose seeds have all ended, as a search tells whoever listens:
    the ``number``-th of ``budget``."""

    number: int
    budget: int
    configuration: _Configuration
    #: The best configuration on the mean of the first metric among those ended so far,
    #: stored ones included (None while none completed, or with several metrics).
    best: _Configuration | None = None


@dataclass
class _Configuration:
    """One proposal: its values of the searched fields, and how its seeds went."""

    values: dict[str, Any]
    state: str = "pending"  # complete, fail, pruned, or pending (seeds still to run)
    means: list[float] = field(default_factory=list)
    seeds: int = 0  # how many of its seeds completed


def optimize(
    space: Space[Any],
    metric: str | Sequence[str],
    mode: Mode | Sequence[Mode] = "max",
    *,
    budget: int,
    sampler: str | optuna.samplers.BaseSampler = "tpe",
    seed: int | None = None,
    width: int = 1,
    dry_run: bool = False,
    store: Store | None = None,
    told: Callable[[Told], None] | None = None,
    run_feed: Callable[[Feed], object],
    **run: Any,
) -> pl.DataFrame:
    """Search ``space`` for the best mean of ``metric`` over its seeds, ``width``
    configurations at a time; see :func:`superparams._api.optimize`. ``told`` hears of
    each configuration once its seeds have ended. ``run_feed`` runs the proposals: one
    run of ``space`` that takes the settings a feed gives (``run`` are its keywords, for
    the settings of stored configurations to complete first)."""
    metrics = [metric] if isinstance(metric, str) else list(metric)
    modes = [mode] * len(metrics) if isinstance(mode, str) else list(mode)
    optuna, searched, history = _ready(space, metrics, modes, budget, sampler, run.get("folder"))
    # A resumed search's sampler starts from a seed of its own, made from the seed and the
    # size of the history: the same history gives the same next proposal, and the
    # random stream does not replay the one that made the history (a TPE sampler started
    # again from the same seed proposes the very configurations it proposed before).
    resumed = (seed * 1_000_003 + len(history)) % 2**32 if seed is not None and history else seed
    chosen = _sampler(optuna, sampler, resumed, len(metrics))
    study = optuna.create_study(
        sampler=chosen,
        directions=["maximize" if m == "max" else "minimize" for m in modes],
    )
    kept = _sampler_states(store, searched)
    for configuration in history:
        _add(optuna, study, searched, configuration, kept.get(searched.key(configuration.values)))
    pending = [c for c in history if c.state == "pending"]
    if dry_run:
        return _progress(history, metrics)
    if store is not None:
        store.keep_search(
            {
                "metrics": metrics,
                "modes": modes,
                "budget": budget,
                "sampler": sampler if isinstance(sampler, str) else type(sampler).__name__,
                "seed": seed,
            }
        )
    if pending:  # cut short by a kill or an interruption: complete them first
        _complete(space, pending, metrics, run)
        for configuration in pending:
            state = kept.get(searched.key(configuration.values))
            _add(optuna, study, searched, configuration, state)
            if told is not None:
                best = _best(history, modes)
                told(Told(history.index(configuration) + 1, budget, configuration, best))
    feed = _Proposals(space, searched, study, history, metrics, modes, budget, width)
    feed.store, feed.listener = store, told
    if feed.wanted():
        run_feed(feed)
        if feed.error is not None:
            raise feed.error
    return _progress(history, metrics)


def _best(history: list[_Configuration], modes: list[Any]) -> _Configuration | None:
    """The completed configuration with the best mean of the one metric searched (None
    with several metrics, whose best is a front, or when none completed)."""
    done = [c for c in history if c.state == "complete" and c.means]
    if len(modes) != 1 or not done:
        return None
    sign = -1.0 if modes[0] == "max" else 1.0
    return min(done, key=lambda c: sign * c.means[0])


#: How many proposals in a row may repeat stored configurations before a search ends:
#: a sampler that has nothing new left to propose.
_MAX_REPEATS = 200


def check(
    space: Space[Any],
    metric: str | Sequence[str],
    mode: Mode | Sequence[Mode],
    budget: object,
    sampler: object,
    folder: Any = None,
) -> None:
    """Everything :func:`optimize` refuses before it runs anything: the budget, the modes,
    the sampler and its package, the space, and a metric the stored settings lack.

    Raises:
        UsageError, SearchSpaceError: as :func:`superparams._api.optimize` says.
    """
    metrics = [metric] if isinstance(metric, str) else list(metric)
    modes = [mode] * len(metrics) if isinstance(mode, str) else list(mode)
    _ready(space, metrics, modes, budget, sampler, folder)


def _ready(
    space: Space[Any],
    metrics: list[str],
    modes: list[Any],
    budget: object,
    sampler: object,
    folder: Any,
) -> tuple[Any, Searched, list[_Configuration]]:
    """Optuna, the search space and the stored history, once every argument is checked."""
    _check(space, metrics, modes, budget)
    optuna = _optuna()
    _sampler(optuna, sampler, 0, len(metrics))  # its name, and its package, are there
    searched = searched_of(space)
    return optuna, searched, _history(space, searched, metrics, folder)


# -- what is stored --------------------------------------------------------------------


def _history(
    space: Space[Any], searched: Searched, metrics: list[str], folder: Any
) -> list[_Configuration]:
    """The configurations of this search stored so far, in the order first recorded.

    A configuration is the stored settings that share the searched fields' values and
    hold the space's constant values; its state comes from their latest outcomes.
    """
    import polars as pl

    table = space.results(folder=folder)
    if table.is_empty():
        return []
    _check_metrics(space, table.columns, metrics)
    constants = _constants(space, searched, table.columns)
    for name, value in constants.items():
        table = table.filter(pl.col(name) == value) if value is not None else table
    names = list(searched.distributions)
    missing = [m for m in metrics if m not in table.columns]
    if missing or any(n not in table.columns for n in names):
        return []
    last = table.group_by("id", maintain_order=True).agg(
        *(pl.col(n).last() for n in names),
        pl.col("status").last(),
        pl.col("stopped").last() if "stopped" in table.columns else pl.lit(None).alias("stopped"),
        pl.col("started").min() if "started" in table.columns else pl.lit(0).alias("started"),
        *(pl.col(m).drop_nulls().last().alias(m) for m in metrics),
    )
    seeds = seed_count(space)
    found: dict[tuple[Any, ...], tuple[Any, list[dict[str, Any]]]] = {}
    for row in last.iter_rows(named=True):
        key = tuple(repr(row[n]) for n in names)
        first, rows = found.setdefault(key, (row["started"], []))
        rows.append(row)
        if row["started"] is not None and (first is None or row["started"] < first):
            found[key] = (row["started"], rows)
    ordered = sorted(found.values(), key=lambda item: (item[0] is None, item[0]))
    history = []
    for _, rows in ordered:
        values = {n: rows[0][n] for n in names}
        if searched.params(values) is None:
            continue  # a setting of another search space of the same class
        history.append(_judged(_Configuration(values), rows, metrics, seeds))
    return history


def _constants(space: Space[Any], searched: Searched, columns: list[str]) -> dict[str, Any]:
    """The space's constant fields that are stored as plain columns."""
    from superparams._space import Dimension

    out = {}
    for name in getattr(space, "__dataclass_fields__", {}):
        held = space.__dict__.get(name)
        if name in searched.distributions or isinstance(held, Dimension) or name not in columns:
            continue
        if held is None or type(held) in (bool, int, float, str):
            out[name] = held
    return out


def seed_count(space: Space[Any]) -> int:
    """How many seeds each configuration of ``space`` runs on (1 without seeds)."""
    from superparams._space import replicate_values

    return max(1, len(replicate_values(space)))


def _judged(
    configuration: _Configuration, rows: list[dict[str, Any]], metrics: list[str], seeds: int
) -> _Configuration:
    """A configuration's state from its settings' latest outcomes (one row each)."""
    statuses = [r["status"] for r in rows]
    if len(rows) < seeds or any(s not in ("completed", "failed") for s in statuses):
        configuration.state = "pending"
        return configuration
    configuration.seeds = statuses.count("completed")
    if any(r["stopped"] is not None for r in rows):
        configuration.state = "pruned"
    elif "failed" in statuses:
        configuration.state = "fail"
    else:
        means = []
        for metric in metrics:
            values = [r[metric] for r in rows]
            numbers = [float(v) for v in values if isinstance(v, (int, float))]
            if len(numbers) < len(values) or any(math.isnan(v) for v in numbers):
                configuration.state = "fail"  # a seed without the metric, or NaN
                return configuration
            means.append(math.fsum(numbers) / len(numbers))
        configuration.state, configuration.means = "complete", means
    return configuration


def _sampler_states(store: Store | None, searched: Searched) -> dict[tuple[str, ...], Any]:
    """What the sampler kept of each stored configuration, by its key (the last line
    written for it wins)."""
    if store is None:
        return {}
    return {searched.key(line["values"]): line["state"] for line in store.sampler_states()}


def _keep_states(
    store: Store | None, study: Any, trials: list[Any], proposed: list[_Configuration]
) -> None:
    """Keep in the store what the sampler noted on each trial it was asked for (CMA-ES:
    its generation and optimizer), before the trial runs: a resumed search hands it back
    (:func:`_add`), so the sampler goes on from where it was."""
    if store is None:
        return
    frozen = study.get_trials(deepcopy=False)
    for trial, configuration in zip(trials, proposed, strict=True):
        state = frozen[trial.number].system_attrs
        if state:
            store.keep_sampler_state(configuration.values, state)


def _add(
    optuna: Any,
    study: Any,
    searched: Searched,
    configuration: _Configuration,
    state: Mapping[str, Any] | None = None,
) -> None:
    """Put a stored configuration that has ended into the study, as it ended, with what
    its sampler kept of it (``state``: the trial's system attributes)."""
    if configuration.state == "pending":
        return
    states = {
        "complete": optuna.trial.TrialState.COMPLETE,
        "fail": optuna.trial.TrialState.FAIL,
        "pruned": optuna.trial.TrialState.PRUNED,
    }
    study.add_trial(
        optuna.trial.create_trial(
            params=searched.params(configuration.values),
            distributions=searched.distributions,
            values=configuration.means if configuration.state == "complete" else None,
            state=states[configuration.state],
            system_attrs=dict(state or {}),
        )
    )


# -- running proposals -----------------------------------------------------------------


@dataclass
class _Running:
    """A proposed configuration whose seeds run: the trials it answers (one, or more
    when the sampler proposed it again meanwhile), its settings' ids, and how each of
    them ended so far (one row each, as :func:`_judged` takes them)."""

    configuration: _Configuration
    trials: list[Any]
    ids: list[str]
    ended: dict[str, dict[str, Any]] = field(default_factory=dict)
    columns: set[str] = field(default_factory=set)  # what its completed seeds reported


class _Proposals:
    """The search as a run's feed (:class:`superparams._runner.Feed`): it asks the
    sampler for up to ``width`` configurations at a time, gives the run each one's
    settings (one per seed), and tells the sampler a configuration's mean over its seeds
    once they have all ended, then proposes the next.

    The budget counts distinct configurations: a sampler that proposes a stored one again
    (a small discrete space) is told its stored outcome, and it costs nothing; one it
    proposes again while it runs is told when it ends.
    """

    def __init__(
        self,
        space: Space[Any],
        searched: Searched,
        study: Any,
        history: list[_Configuration],
        metrics: list[str],
        modes: list[Any],
        budget: int,
        width: int,
    ) -> None:
        self.space, self.searched, self.study, self.history = space, searched, study, history
        self.metrics, self.modes, self.budget, self.width = metrics, modes, budget, width
        self.store: Store | None = None
        self.listener: Callable[[Told], None] | None = None  # hears of each one ended
        self.ended_by_key = {searched.key(c.values): c for c in history}
        self.running: dict[tuple[str, ...], _Running] = {}
        self.by_id: dict[str, _Running] = {}
        self.seeds = seed_count(space)
        self.repeats = 0  # proposals in a row that were not new
        self.error: UsageError | None = None  # raised once the run has ended
        self.checked = False  # whether a completed seed was seen to report the metrics
        self.expected = max(0, self.goal() - len(history)) * self.seeds

    def goal(self) -> int:
        """How many configurations the search ends with: the budget, or all there are."""
        return int(min(self.budget, self.searched.size()))

    def wanted(self) -> bool:
        """Whether to propose another configuration."""
        known = len(self.ended_by_key) + len(self.running)
        return known < self.goal() and self.repeats < _MAX_REPEATS and self.error is None

    def more(self) -> list[Proposed]:
        from superparams._runner import Proposed
        from superparams._space import pinned, setting_ids

        given: list[Proposed] = []
        while len(self.running) < self.width and self.wanted():
            trial = self.study.ask(self.searched.distributions)
            configuration = _Configuration(self.searched.values(trial.params))
            _keep_states(self.store, self.study, [trial], [configuration])
            key = self.searched.key(configuration.values)
            self.repeats += 1
            if key in self.running:
                self.running[key].trials.append(trial)
            elif key in self.ended_by_key:
                self._tell(trial, self.ended_by_key[key])
            else:
                self.repeats = 0
                part = pinned(self.space, configuration.values)
                ids = list(setting_ids(part))
                running = _Running(configuration, [trial], ids)
                self.running[key] = running
                values = tuple(configuration.values.items())
                for position, sid in enumerate(ids):
                    self.by_id[sid] = running
                    given.append(Proposed(part[position], sid, position, values))
        return given

    def ended(self, sid: str, outcome: Outcome, rows: list[dict[str, Any]]) -> None:
        running = self.by_id.pop(sid, None)
        if running is None:
            return
        last: dict[str, Any] = {"status": outcome.status, "stopped": outcome.stopped}
        for metric in self.metrics:
            last[metric] = next(
                (r[metric] for r in reversed(rows) if r.get(metric) is not None), None
            )
        running.ended[sid] = last
        if outcome.failure is None:
            running.columns.update(key for row in rows for key in row)
        if len(running.ended) < len(running.ids):
            return
        configuration = running.configuration
        del self.running[self.searched.key(configuration.values)]
        completed = any(r["status"] == "completed" for r in running.ended.values())
        if completed and not self.checked:
            try:  # a metric no completed seed reports: the search ends, saying so
                _check_metrics(self.space, running.columns, self.metrics)
                self.checked = True  # its run() reports them: no need to look again
            except UsageError as error:
                self.error = error
        _judged(configuration, [running.ended[i] for i in running.ids], self.metrics, self.seeds)
        for trial in running.trials:
            self._tell(trial, configuration)
        self.ended_by_key[self.searched.key(configuration.values)] = configuration
        self.history.append(configuration)
        if self.listener is not None:
            best = _best(self.history, self.modes)
            self.listener(Told(len(self.history), self.budget, configuration, best))

    def _tell(self, trial: Any, configuration: _Configuration) -> None:
        import optuna

        if configuration.state == "complete":
            self.study.tell(trial, configuration.means)
        elif configuration.state == "pruned":
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)


def _complete(
    space: Space[Any],
    configurations: list[_Configuration],
    metrics: list[str],
    run: dict[str, Any],
) -> None:
    """Run the seeds still to run of stored configurations (cut short by a kill or an
    interruption), and judge each."""
    import polars as pl

    from superparams._space import Union, pinned, setting_ids

    spaces = [pinned(space, c.values) for c in configurations]
    joined: Space[Any] = spaces[0] if len(spaces) == 1 else Union(spaces)
    table = joined.run_all(**run)
    if (table["status"] == "completed").any():
        _check_metrics(space, table.columns, metrics)
    seeds = seed_count(space)
    for configuration, part in zip(configurations, spaces, strict=True):
        ids = list(setting_ids(part))
        rows = (
            table.filter(pl.col("id").is_in(ids))
            .group_by("id", maintain_order=True)
            .agg(
                pl.col("status").last(),
                pl.col("stopped").last(),
                *(pl.col(m).drop_nulls().last().alias(m) for m in metrics if m in table.columns),
            )
            .to_dicts()
        )
        for row in rows:
            for m in metrics:
                row.setdefault(m, None)
        _judged(configuration, rows, metrics, seeds)


# -- what it says ----------------------------------------------------------------------


def standing(
    space: Space[Any],
    store: Store,
    metrics: Sequence[str] | None = None,
    modes: Sequence[str] | None = None,
    budget: int | None = None,
) -> list[str]:
    """What ``experiment status`` and ``--dry-run`` say of an adaptive search: how much of
    its budget is used and the best configuration so far. The search is the one given, or
    the one recorded in ``store``; nothing without either."""
    recorded = store.search() or {}
    try:
        metrics = [str(m) for m in (metrics or recorded["metrics"])]
        modes = [str(m) for m in (modes or recorded["modes"])]
        budget = int(budget or recorded["budget"])
        searched = searched_of(space)
        history = _history(space, searched, metrics, store.folder)
    except (KeyError, TypeError, ValueError, ImportError, SearchSpaceError, UsageError):
        return []  # no search, one of another space, or Optuna gone: nothing to say
    goal = ", ".join(
        f"{'maximise' if mode == 'max' else 'minimise'} {metric}"
        for metric, mode in zip(metrics, modes, strict=True)
    )
    pending = sum(c.state == "pending" for c in history)
    how = f"; sampler {recorded['sampler']}, seed {recorded.get('seed')}" if recorded else ""
    lines = [
        f"search: {len(history)} of {budget} configurations ({goal}{how})"
        + (f", {pending} with seeds still to run" if pending else "")
    ]
    complete = [c for c in history if c.state == "complete"]
    if complete:
        sign = 1 if modes[0] == "max" else -1
        top = max(complete, key=lambda c: sign * c.means[0])
        lines.append(f"  best so far: {described(top, metrics[0])}")
    return lines


def described(configuration: _Configuration, metric: str) -> str:
    """A configuration's first metric over its seeds, then its values: ``loss 0.1071
    over 2 seeds (x=0.6805,kind='a')``."""
    values = ",".join(
        f"{k}={v!r}"
        if isinstance(v, str)
        else f"{k}={v:.4g}"
        if isinstance(v, float)
        else f"{k}={v}"
        for k, v in configuration.values.items()
    )
    if configuration.state != "complete":
        return f"{configuration.state} ({values})"
    seeds = f" over {configuration.seeds} seeds" if configuration.seeds > 1 else ""
    return f"{metric} {configuration.means[0]:.4g}{seeds} ({values})"


def _brief(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else repr(value)


def _progress(history: list[_Configuration], metrics: list[str]) -> pl.DataFrame:
    """The search's configurations in the order proposed: values, state, means over seeds."""
    import polars as pl

    rows = []
    for number, configuration in enumerate(history):
        row: dict[str, Any] = {"number": number, **configuration.values}
        row["state"] = configuration.state
        for k, metric in enumerate(metrics):
            row[f"{metric}_mean"] = configuration.means[k] if configuration.means else None
        row["seeds"] = configuration.seeds
        rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()


# -- checks ----------------------------------------------------------------------------


def _check(space: Space[Any], metrics: list[str], modes: list[Any], budget: object) -> None:
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        msg = f"budget={budget!r} is not a number of configurations; give a whole number >= 1"
        raise UsageError(msg)
    if not metrics or not all(isinstance(m, str) and m for m in metrics):
        msg = f"optimize() needs the name of a metric run() reports, got {metrics!r}"
        raise UsageError(msg)
    if len(modes) != len(metrics) or any(m not in ("max", "min") for m in modes):
        msg = (
            f"mode={modes!r} does not give 'max' or 'min' for each of {', '.join(metrics)}; "
            "e.g. mode='max', or mode=['max', 'min'] for two metrics"
        )
        raise UsageError(msg)


def _check_metrics(space: Space[Any], names: Sequence[str] | set[str], metrics: list[str]) -> None:
    """Refuse a metric that none of the columns ``names`` is (those the stored settings
    report), naming those that are."""
    from superparams._summary import DeclaredColumns

    known = DeclaredColumns(space).columns(list(names)).metrics
    for metric in metrics:
        if metric not in known:
            name = space.experiment_class.__name__
            msg = (
                f"{name} has no metric {metric!r} to optimise{did_you_mean(metric, known)}; "
                f"its run() reports {', '.join(known) or 'no numbers'}"
            )
            raise UsageError(msg)


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:  # pragma: no cover - the extra is installed where tests run
        msg = "an adaptive search needs Optuna: pip install 'superparams[search]'"
        raise UsageError(msg) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _sampler(optuna: Any, sampler: object, seed: int | None, objectives: int) -> Any:
    """The sampler asked for: a name of :data:`SAMPLERS`, or a sampler object as it is."""
    if isinstance(sampler, optuna.samplers.BaseSampler):
        return sampler
    if not isinstance(sampler, str) or sampler not in SAMPLERS:
        msg = (
            f"sampler={sampler!r} is not a sampler{did_you_mean(str(sampler), SAMPLERS)}; "
            f"give one of {', '.join(SAMPLERS)}, or an Optuna sampler object"
        )
        raise UsageError(msg)
    if sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if sampler == "cmaes":
        if objectives > 1:
            msg = "sampler='cmaes' optimises one metric; give 'tpe' for several"
            raise UsageError(msg)
        _needs("cmaes", "cmaes")
        return optuna.samplers.CmaEsSampler(seed=seed)
    _needs("torch", "gp")
    return optuna.samplers.GPSampler(seed=seed)


def _needs(module: str, sampler: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        msg = (
            f"sampler={sampler!r} needs the package {module!r}, which is not installed: "
            f"pip install {module}"
        )
        raise UsageError(msg)
