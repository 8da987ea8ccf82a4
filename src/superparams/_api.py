"""The front door: run a space, see what is stored, read the results.

These are the calls a user makes most, as methods of every space (``space.run_all()``,
``space.plan()``, ``space.results()``); this module composes them from the rooms that
do the work: the store (what is done, the one writer), the engines (where settings run),
the runner (the loop between them) and, when asked, a display subscribed to the run's
events. It imports none of them until a call needs them, so ``import superparams``
stays light.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from superparams._run_options import (
    check_gpus,
    check_num_proc,
    check_retries,
    check_timeout,
    worker_count,
)

if TYPE_CHECKING:
    import polars as pl

    from superparams._experiment import Experiment
    from superparams._runner import Feed, Subscriber
    from superparams._search import Told
    from superparams._space import Space
    from superparams._store._plan import Plan
    from superparams._store._workdir import Workdir
    from superparams._store._writer import Store
    from superparams.executors import Detaching, Executor
    from superparams.stopping import Stopping


class _DefaultNumProc(int):
    """``run_all``'s default ``num_proc``: 1, or one worker per GPU when gpus are given."""

    def __repr__(self) -> str:
        return "1"


DEFAULT_NUM_PROC: int = _DefaultNumProc(1)


def plan(space: Space[Any], *, folder: Path | str | None = None) -> Plan:
    """What is stored for each setting of ``space``: done, failed, interrupted or new.

    A space that draws from distributions has no list of settings to plan: plan a
    sample of it (``space.sample(n, seed=...).plan()``); :class:`SearchSpaceError` says so.
    ``outdated`` lists the done settings made by another version of the experiment's
    code (see :mod:`superparams._code`).

    >>> import tempfile
    >>> from superparams import Experiment, search
    >>> class Half(Experiment):
    ...     x: int = search(0, 2, 4)
    ...     def run(self):
    ...         return {"half": 2 / self.x}
    >>> folder = tempfile.mkdtemp()
    >>> _ = Half(x=search(0, 2)).run_all(folder=folder, display=False)
    >>> stored = Half().plan(folder=folder)
    >>> stored.done, stored.failed, stored.new  # positions in the space
    ([1], [0], [2])
    >>> stored.summary()
    '1 completed, 1 failed, 0 interrupted, 1 new'
    """
    from superparams._code import code_hash

    return store_of(space, folder).plan(space, code_hash(space.experiment_class))


def results(
    space: Space[Any], *, folder: Path | str | None = None, code_version: str | None = None
) -> pl.DataFrame:
    """The latest stored outcome of each setting of ``space``, in the space's order.

    A setting that returned several rows has several rows; one never run has none. A
    space that draws from distributions has no list of settings to select by: its
    results are every row stored for the experiment, in the order they were recorded.

    Besides the parameters and what ``run()`` returned, each row says how the setting
    went (``status``, ``cause``, ``error``, ``attempt``, ``seconds``, ``log``, ...), and
    ``outdated`` says whether another version of the experiment's code made it: True,
    False, or None when the row holds no version (it was stored before versions were).

    ``code_version="all"`` gives every stored outcome instead: each setting's latest and
    those that a rerun (``rerun_outdated``, ``rerun_failed``) replaced, the older first,
    with a column ``superseded`` (True for a replaced outcome's rows); a prefix of a
    code version's hash (or of the git commit recorded on its rows) gives that version's
    outcomes alone.

    >>> import tempfile
    >>> from superparams import Experiment, search
    >>> class Square(Experiment):
    ...     x: int = search(1, 2, 3)
    ...     def run(self):
    ...         return {"square": self.x**2}
    >>> folder = tempfile.mkdtemp()
    >>> _ = Square().run_all(folder=folder, display=False)
    >>> Square(x=search(3, 1)).results(folder=folder).select("x", "square", "status").rows()
    [(3, 9, 'completed'), (1, 1, 'completed')]
    """
    from superparams._outdated import current_version, mark
    from superparams._space import setting_ids

    store = store_of(space, folder)
    if code_version is None:
        table = store.table()
    else:  # history.parquet is read only here
        from superparams._versions import joined

        table = joined(*store.every_outcome())
    if space.enumerable:
        ids = list(setting_ids(space))
        table = relabelled(space, select_settings(table, ids), ids)
    table = mark(table, current_version(space.experiment_class))
    if code_version is not None:
        from superparams._versions import of_version

        table = of_version(table, code_version, space.experiment_class.__name__)
    return table


def relabelled(space: Space[Any], table: pl.DataFrame, ids: list[str]) -> pl.DataFrame:
    """``table`` with each row labelled as ``space`` labels its setting.

    A label names the fields its run's space varied: a slice of a grid run first
    (``--seed 0``) stored ``lr=0.1`` where the whole grid says ``lr=0.1,seed=0``. The
    rows whose label names another number of fields than the space's first setting's
    are labelled again (only those: a label costs a setting made from the space).
    """
    import polars as pl

    from superparams._experiment import Experiment

    if table.is_empty() or not isinstance(space, Experiment) or "label" not in table.columns:
        return table
    expected = space[0].label.count("=")
    named = pl.col("label").str.count_matches("=", literal=True).fill_null(-1)
    odd = table.filter(named != expected)["id"].unique().to_list()
    if not odd:
        return table
    position = {sid: i for i, sid in enumerate(ids)}
    fresh = {sid: space[position[sid]].label for sid in odd if sid in position}
    return table.with_columns(
        pl.col("id")
        .replace_strict(fresh, default=pl.col("label"), return_dtype=pl.String)
        .alias("label")
    )


def summary(
    space: Space[Any],
    over: str | Sequence[str] | None = None,
    *,
    rows: str | pl.Expr = "last",
    folder: Path | str | None = None,
    level: float = 0.95,
) -> pl.DataFrame:
    """Each metric's statistics over the seeds, one row per other setting: see
    :meth:`superparams.Space.summary`."""
    from superparams._summary import summary

    return summary(space, over, rows=rows, folder=folder, level=level)


def best(
    space: Space[Any],
    metric: str | Sequence[str],
    mode: Literal["max", "min"] | Sequence[Literal["max", "min"]] = "max",
    *,
    over: str | Sequence[str] | None = None,
    rows: str | pl.Expr = "last",
    folder: Path | str | None = None,
    level: float = 0.95,
) -> pl.DataFrame:
    """The best row of the summary: see :meth:`superparams.Space.best`."""
    from superparams._summary import best

    return best(space, metric, mode, over=over, rows=rows, folder=folder, level=level)


def diff(
    space: Space[Any],
    a: str,
    b: str,
    metric: str | Sequence[str] | None = None,
    *,
    summary: bool = False,
    folder: Path | str | None = None,
) -> pl.DataFrame:
    """Each setting's metrics under two versions of the experiment's code, and the change.

    ``a`` and ``b`` name code versions by a prefix of their hash (``results(
    code_version="all")`` shows each row's), or of the git commit recorded on their rows.
    One row per setting that has an outcome under both (its latest under each): ``id``,
    ``label``, the parameters, then for each metric (``metric``, or every numeric one
    both have) ``<metric>_a``, ``<metric>_b`` (its last value, null if the setting did
    not complete) and ``<metric>_change`` (b - a). With ``summary``, one row per setting
    of the other fields over the declared seeds: ``<metric>_mean_a``, ``_std_a``,
    ``_n_a``, the same with ``_b``, and ``<metric>_mean_change``.

    Raises:
        UsageError: ``a`` or ``b`` names no stored version or several, both name the
            same, no setting has an outcome under both, ``metric`` is not a metric of
            both, or ``summary`` for a space with no seeds.
    """
    from superparams._versions import ALL, compare

    table = results(space, folder=folder, code_version=ALL)
    compared = compare(space, table, a, b, metric)
    if not summary:
        return compared.settings
    if compared.summary is None:
        from superparams.errors import UsageError

        msg = (
            f"{space.experiment_class.__name__} declares no replicate field (e.g. seed: int = "
            "seeds(5)), so there is no summary over seeds to compare; leave summary=True out "
            "for the settings one by one"
        )
        raise UsageError(msg)
    return compared.summary


def space_html(space: Space[Any]) -> str:
    """What a notebook shows of a space: its overview as a table."""
    from superparams._summary import space_html

    return space_html(space)


def bookkeeping_columns() -> frozenset[str]:
    """The columns every results table ends with (the store's, and those worked out when
    read), which no field may be called."""
    from superparams._store._columns import BOOKKEEPING, COMPUTED

    return frozenset({*BOOKKEEPING, *COMPUTED})


def setting_workdir(setting: Experiment) -> Workdir:
    """A setting's own folder in its results folder (see :attr:`Experiment.workdir`)."""
    from superparams._store import _workdir

    return _workdir.of(setting)


def clean(space: Space[Any], *, folder: Path | str | None = None) -> None:
    """Delete every stored result and log of the experiment ``space`` belongs to; its
    settings queued on an engine's queue (Slurm's) are cancelled first
    (:func:`cancel_queued`)."""
    store = store_of(space, folder)
    cancel_queued(store)
    store.clean()


def queued_count(store: Store) -> int:
    """How many settings ``store`` holds queued on an engine's queue (Slurm's)."""
    return sum(queued_on(store).values())


def queued_on(store: Store) -> dict[str, int]:
    """How many settings ``store`` holds queued, by the name of the engine whose queue
    holds them (``{"slurm": 6}``); {} when none is."""
    from collections import Counter

    if not store.folder.exists():
        return {}
    return dict(Counter(store.queued_on().values()))


def detaching(name: str) -> type[Detaching] | None:
    """The engine named ``name`` if its settings outlive the driver; None if not, or
    if it is not installed (nothing of it can be asked then)."""
    from superparams.errors import UsageError
    from superparams.executors import Detaching, get_executor

    try:
        engine = get_executor(name)
    except UsageError:
        return None
    return engine if issubclass(engine, Detaching) else None


def cancel_queued(store: Store, queued: int | None = None) -> int:
    """Cancel the engines' jobs (Slurm's) that hold settings of ``store`` queued, so none
    runs into a folder about to be deleted; how many settings had not finished there.
    ``queued``: what :func:`queued_count` said, if the caller asked already."""
    if queued == 0:
        return 0
    cancelled = 0
    for name in queued_on(store):
        engine = detaching(name)
        if engine is not None:
            cancelled += engine.cancel_left(store.folder)
    return cancelled


def queued_where(counts: Mapping[str, int]) -> str:
    """The engines of :func:`queued_on` for a message: ``"slurm"``, ``"slurm and x"``."""
    names = list(counts)
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def store_of(space: Space[Any], folder: Path | str | None = None) -> Store:
    """The store of ``space``'s experiment: ``folder``, or where the class keeps results.

    The store is told what it needs of the class: its fields, the constant default of
    each (what an added field means for settings stored before it existed), and the
    column types their annotations fix.
    """
    import contextlib

    from superparams._declared import declared
    from superparams._identity import canonical, encode
    from superparams._space import Dimension, Space
    from superparams._store._writer import Store
    from superparams._summary import column_types

    if folder is not None and not str(folder).strip():
        from superparams.errors import UsageError

        msg = (
            f"folder={str(folder)!r} names no folder (it would be the working directory); "
            "give a path, or leave folder out for progress/<module>/<Class>"
        )
        raise UsageError(msg)
    experiment = space.experiment_class
    info = declared(experiment)
    defaults = {}
    for name in info.fields:
        default = info.defaults.get(name)
        if name in info.defaults and not isinstance(default, (Dimension, Space)):
            with contextlib.suppress(Exception):  # no stable encoding: no carrying over
                plain = canonical(default, info.annotations.get(name))
                defaults[name] = (encode(plain, name), plain)
    return Store.for_class(experiment, folder, info.fields, defaults, column_types(experiment))


def select_settings(table: pl.DataFrame, ids: list[str]) -> pl.DataFrame:
    """The rows of ``table`` whose ids are among ``ids`` (a space's, in order), in that
    order; a setting's own rows keep theirs."""
    import polars as pl

    if table.is_empty() or not ids:
        return table.clear()
    # Each row's position in the space, found in a dict rather than by a polars join,
    # whose hash tables held ~30 MB more for 200,000 settings; a slice of ids at a time.
    first = dict(zip(reversed(ids), range(len(ids) - 1, -1, -1), strict=True))  # first of each
    order = pl.concat(
        pl.Series("_order", [first.get(i) for i in part["id"].to_list()], pl.UInt32)
        for part in table.select("id").iter_slices(1 << 16)
    )
    del first
    rows = order.to_frame().with_row_index("_row").drop_nulls()
    picked = rows.sort("_order", "_row")["_row"]
    del order, rows
    # The table is copied once, by the gather, and not at all if it is in order already;
    # a column of nulls (most bookkeeping) is made anew, as gathered it would hold buffers.
    if picked.len() == table.height and (picked.diff().drop_nulls() == 1).all():
        return table
    n = picked.len()
    return pl.DataFrame(
        column.clear(n) if column.null_count() == column.len() else column.gather(picked)
        for column in table.get_columns()
    )


def run_all(
    space: Space[Any],
    num_proc: int | None = DEFAULT_NUM_PROC,
    *,
    gpus: Sequence[int | str] | None = None,
    only_failed: bool = False,
    fresh: bool = False,
    rerun_outdated: bool | str = False,
    timeout: float | None = None,
    retries: int = 0,
    folder: Path | str | None = None,
    engine: str | Executor | None = None,
    engine_options: Mapping[str, Any] | None = None,
    debug: bool = False,
    isolate: bool = False,
    display: bool | Subscriber = True,
    subscribers: Iterable[Subscriber] = (),
    stop: Any = None,
) -> pl.DataFrame:
    """Run every setting of ``space`` not completed before, and return the results.

    The results are :func:`results`: a polars DataFrame with a row for each row a
    setting's ``run()`` returned, its parameters, and how it went. Each setting is
    stored the moment it ends, so a run stopped in any way resumes where it stopped.

    >>> import tempfile
    >>> from superparams import Experiment, search
    >>> class Square(Experiment):
    ...     x: int = search(1, 2, 3)
    ...     def run(self):
    ...         return {"square": self.x**2}
    >>> folder = tempfile.mkdtemp()
    >>> Square().run_all(folder=folder, display=False)["square"].to_list()
    [1, 4, 9]
    >>> Square(x=search(1, 2, 3, 4)).run_all(folder=folder, display=False).height  # runs x=4
    4

    Args:
        num_proc: worker processes (default 1, or one per GPU given; on Slurm, up to
            256 jobs at once). None or -1 is
            one per core, -2 all cores but one, and so on; a count below 1 runs as 1
            does, with a :class:`Notice`. Never more workers start than there are
            settings to run.
        gpus: device ids handed to workers round-robin through ``CUDA_VISIBLE_DEVICES``;
            with gpus, settings always run in worker processes.
        only_failed: run only the settings stored as failed.
        fresh: run every setting again, whatever is stored.
        rerun_outdated: also run again completed settings that are outdated: True or
            ``"code"``, those an earlier version of the experiment's code made
            (``plan().outdated``); ``"env"``, those that ran with another version of a
            package they imported, or of Python (``plan().env_outdated``); ``"all"``,
            both. Without it they are kept, and the run says how many there are.
        timeout: seconds a setting may run before it fails with cause ``timeout``.
        retries: how many more times a failed setting is tried in this run.
        folder: where results go (default: ``progress/<module>/<Class>`` beside the
            experiment's file or notebook, see :func:`superparams._store._location.folder_for`);
            needed for a class that no file defines (``python -c``, a REPL, stdin).
        engine: an executor name (``"local"``, ``"inline"``, ``"dask"``) or instance.
            ``"inline"`` runs settings in this process (breakpoints work), where a
            setting that ends the process (a segfault) ends the run: the next run
            records it failed, and leaves it out unless ``only_failed``.
        engine_options: the named engine's own keywords, e.g. ``{"address":
            "tcp://head:8786"}`` for Dask (text is read by the keyword's type).
        debug: run in this process, as ``engine="inline"`` does, and let the first
            exception through.
        isolate: run each setting in a new worker process of its own, for code that
            leaves its process in a state the next setting should not inherit.
        display: False for silence, True for plain progress lines on stderr, or a
            subscriber that shows the run.
        subscribers: more callables that receive every event.
        stop: a rule, or a list of rules, that stops a setting early as it reports its
            rows (:mod:`superparams.stopping`: ``median(...)``, ``threshold(...)``,
            ``halving(...)``, or a function ``rule(rows, others) -> bool``); the setting
            is completed with its rows, its ``stopped`` column names the rule. By default
            the class's own ``stop`` rules; ``stop=[]`` for none.

    Raises:
        UsageError: ``num_proc`` is not a whole number or None; ``timeout`` is not a
            positive number up to a year; ``retries`` not a whole number from 0 to 1000;
            ``folder`` is empty; a GPU id is neither an index from 0 nor a GPU
            UUID; no such engine; no ``folder`` for a class that no file or notebook
            defines.
        StoreConflictError: the folder holds another experiment's results.
        SearchSpaceError: the space draws from distributions (run a sample of it).
        StoreLockedError: another run is writing to the same folder.
        StoreWriteError: the store could not be written (no space left, read-only); what
            was stored before is safe, and a run after it resumes.
        KeyboardInterrupt: after Ctrl-C, once everything finished has been stored.
    """
    return run_fed(
        space,
        None,
        num_proc,
        gpus=gpus,
        only_failed=only_failed,
        fresh=fresh,
        rerun_outdated=rerun_outdated,
        timeout=timeout,
        retries=retries,
        folder=folder,
        engine=engine,
        engine_options=engine_options,
        debug=debug,
        isolate=isolate,
        display=display,
        subscribers=subscribers,
        stop=stop,
    )


def run_fed(
    space: Space[Any],
    feed: Feed | None,
    num_proc: int | None = DEFAULT_NUM_PROC,
    *,
    gpus: Sequence[int | str] | None = None,
    only_failed: bool = False,
    fresh: bool = False,
    rerun_outdated: bool | str = False,
    timeout: float | None = None,
    retries: int = 0,
    folder: Path | str | None = None,
    engine: str | Executor | None = None,
    engine_options: Mapping[str, Any] | None = None,
    debug: bool = False,
    isolate: bool = False,
    display: bool | Subscriber = True,
    subscribers: Iterable[Subscriber] = (),
    stop: Any = None,
) -> pl.DataFrame:
    """:func:`run_all`'s work, and settings ``feed`` gives while the run runs (an
    adaptive search's proposals, settings of ``space`` once their values are set: see
    :class:`superparams._runner.Feed`); with a feed, the space's own are not run."""
    import polars as pl  # noqa: F401  # fail here, not after the run, if it is missing

    from superparams.executors import Executor, get_executor

    check_num_proc(num_proc)
    check_timeout(timeout)
    check_retries(retries)
    from superparams.stopping import check_rules

    rules = check_rules(stop if stop is not None else space.experiment_class.stop)
    check_gpus(gpus)
    from superparams._store._plan import outdated_kind

    outdated_kind(rerun_outdated)  # a kind it does not know: before anything starts
    if isolate and (debug or engine not in (None, "local")):
        from superparams.errors import UsageError

        where = "debug=True" if debug else f"engine={engine!r}"
        msg = (
            "isolate=True runs each setting in a local worker process of its own, "
            f"and {where} does not; drop one of the two"
        )
        raise UsageError(msg)
    if not isinstance(engine, Executor):  # an unknown name or option: before anything starts
        get_executor(engine or "local").read_options(engine_options or {})
    elif engine_options:
        from superparams.errors import UsageError

        msg = "engine_options are for an engine given by name; this one is made already"
        raise UsageError(msg)
    if not space.enumerable and feed is None:
        len(space)  # raises, saying to take a sample, before the store is made
    subs = list(subscribers)
    if display is True:
        from superparams._display import PlainDisplay

        subs.insert(0, PlainDisplay())
    elif callable(display):
        subs.insert(0, display)
    from superparams import _runner as runner
    from superparams._code import code_version
    from superparams._outdated import mark
    from superparams._recorded import describe
    from superparams._store._plan import Plan

    # From here a scheduler's SIGTERM or SIGHUP stops the run as Ctrl-C does.
    with runner.stop_signals():
        store = store_of(space, folder)
        code = code_version(space.experiment_class)  # once per run: every line carries it
        store.stamp(code)
        with store:
            stored = store.plan(space, code.version) if feed is None else Plan()
            store.keep_class(describe(space.experiment_class, code.version))
            positions = stored.to_run(
                fresh=fresh,
                only_failed=only_failed,
                rerun_outdated=rerun_outdated,
                queued=reattaches(engine),
            )
            executor, notice = _executor(
                engine,
                num_proc,
                gpus,
                debug,
                len(positions) if feed is None else feed.expected,
                isolate=isolate,
                options=engine_options,
            )
            notices = [_restored_text(store)] if store.restored else []
            starting = _fresh(stored, positions, fresh=fresh, rerun_outdated=rerun_outdated)
            runner.run(
                space,
                store,
                executor,
                subs,
                stored=stored,
                positions=positions,
                timeout=timeout,
                retries=retries,
                notices=[*notices, notice] if notice else notices,
                fresh=starting,
                stopping=_stopping(rules, store, starting) if rules else None,
                feed=feed,
            )
        # The table the run wrote to results.parquet, rather than a second copy read back.
        table = store.written if store.written is not None else store.table()
        store.written = None
        if feed is not None:
            return mark(table, code.version)
        return mark(select_settings(table, stored.ids), code.version)  # as results() reads


def reattaches(engine: str | Executor | None) -> bool:
    """Whether ``engine`` takes back the settings the store holds queued on it (a
    :class:`~superparams.executors.Detaching` engine's)."""
    from superparams.executors import Executor, get_executor

    if isinstance(engine, Executor):
        return engine.reattaches
    return get_executor(engine or "local").reattaches


def _fresh(
    stored: Plan, positions: list[int], *, fresh: bool, rerun_outdated: bool | str
) -> set[str]:
    """The ids of the settings a run starts fresh (their workdirs emptied first): every
    one with ``fresh``, the outdated ones with ``rerun_outdated``; the others resume, and
    so do queued ones, whose jobs may be running them (collected, not started again)."""
    if fresh:
        held = set(stored.queued)
        return {stored.ids[p] for p in positions if p not in held}
    if rerun_outdated:
        running = set(positions)
        return {stored.ids[p] for p in stored.rerun(rerun_outdated) if p in running}
    return set()


def _stopping(rules: list[Any], store: Store, fresh: set[str]) -> Stopping:
    """The run's stop rules, with every row stored before but those of the settings it
    starts fresh: settings completed in an earlier run count among the others."""
    from superparams.stopping import Stopping

    table = store.table()
    if fresh and not table.is_empty():
        import polars as pl

        table = table.filter(~pl.col("id").is_in(list(fresh)))
    return Stopping.seeded(rules, table.to_dicts())


def _restored_text(store: Store) -> str:
    n = store.restored
    return (
        f"{store.record_path.name} no longer held what {store.results_path.name} was made "
        f"from (cut short, emptied or an older copy): {n} stored setting{'s' if n != 1 else ''} "
        "written to it again, nothing lost"
    )


def _executor(
    engine: str | Executor | None,
    num_proc: int | None,
    gpus: Sequence[int | str] | None,
    debug: bool,
    to_run: int,
    *,
    isolate: bool = False,
    options: Mapping[str, Any] | None = None,
) -> tuple[Executor, str]:
    from superparams.executors import Executor, get_executor

    if isinstance(engine, Executor):
        return engine, ""
    if num_proc is DEFAULT_NUM_PROC and gpus:
        num_proc = len(gpus)  # one worker per GPU
    elif num_proc is DEFAULT_NUM_PROC:
        num_proc = get_executor(engine or "local").default_num_proc or num_proc
    _, workers, notice = worker_count(num_proc, to_run)
    if isolate:
        local = get_executor("local").from_options(workers, gpus, isolate=True)
        return local, notice
    if debug:  # in this process, with the debugger; engine="inline" alone is made below
        return get_executor("inline").from_options(1, debug=debug), notice
    made = get_executor(engine or "local").from_options(workers, gpus, **(options or {}))
    return made, notice


def optimize(
    space: Space[Any],
    metric: str | Sequence[str],
    mode: Literal["max", "min"] | Sequence[Literal["max", "min"]] = "max",
    *,
    budget: int,
    sampler: Any = "tpe",
    seed: int | None = None,
    told: Callable[[Told], None] | None = None,
    **run: Any,
) -> pl.DataFrame:
    """Search ``space`` adaptively for the best mean of ``metric`` over its seeds.

    A sampler of Optuna's (``"tpe"``, ``"cmaes"``, ``"random"``, ``"gp"``, or a sampler
    object) proposes configurations of the fields the space varies; each runs as settings
    of the space on every seed it declares, stored like any other, and the sampler is told
    its mean over the seeds once they all ended (a failed seed fails it, a stop rule
    prunes it). ``budget`` counts configurations, stored ones included: a rerun rebuilds
    the search from the store and goes on to the budget, completing first a configuration
    whose seeds were cut short. Up to ``num_proc`` configurations run at a time. Several
    metrics (with a mode each) make a multi-objective search. ``run`` takes
    :func:`run_all`'s keywords (``num_proc``, ``folder``, ``engine``, ``stop``, ...);
    ``told`` is called with each configuration once its seeds have all ended.

    Returns the search's configurations in the order proposed: their values, ``state``
    (``complete``, ``fail``, ``pruned``), each metric's ``<metric>_mean`` and ``seeds``.

    Raises:
        UsageError: a budget below 1, a mode not max or min, an unknown sampler or one
            whose package is missing, no Optuna (``pip install 'superparams[search]'``).
        SearchSpaceError: a space that varies no field, or one a sampler cannot propose
            (linked fields, nested experiments, a union).
    """
    from superparams._search import optimize as search

    check_num_proc(run.get("num_proc", DEFAULT_NUM_PROC))
    width, _, _ = worker_count(run.get("num_proc", DEFAULT_NUM_PROC), to_run=budget)
    store = store_of(space, run.get("folder"))
    return search(
        space,
        metric,
        mode,
        budget=budget,
        sampler=sampler,
        seed=seed,
        width=width,
        store=store,
        told=told,
        run_feed=lambda feed: run_fed(space, feed, **run),
        **run,
    )
