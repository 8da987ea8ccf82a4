"""The seam between the runner and whatever runs settings: processes here, or a cluster.

An executor takes :class:`~superparams._outcome.Task` s and hands back
:class:`~superparams._outcome.Outcome` s; the runner never learns how. To add an engine,
subclass :class:`Executor` in a new module and fill in its abstract methods::

    Executor
     ├── InlineExecutor   "inline"  in the calling process: breakpoints and debuggers work
     ├── LocalExecutor    "local"   worker processes on this machine (the default)
     ├── DaskExecutor     "dask"    a Dask cluster (superparams[dask])
     ├── RayExecutor      "ray"     a Ray cluster (superparams[ray])
     └── SlurmExecutor    "slurm"   Slurm job arrays (sbatch on the PATH)

An executor turns every fault of its engine (a dead worker, a timeout, an engine's own
exception) into a failed outcome of the setting it hit (:meth:`Outcome.failed`): it
never raises for a setting. Its workers never write the results folder: what a setting
printed comes back in the outcome (:func:`superparams._worker.run_task`), or, for an
engine whose workers share this machine, the driver copies it from the worker's own file
into the log that ``notify`` returns as the setting starts, while it runs (the local
engine does). Every engine passes the contract in ``tests/executors/test_contract.py``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from superparams._outcome import Started

if TYPE_CHECKING:
    from pathlib import Path

    from superparams._outcome import Outcome, Task
    from superparams._space import Space
    from superparams._store._logfile import SettingLog


class Reports(Protocol):
    """Where the rows that running settings report go: the runner, into the store.

    An engine that can stream them calls :meth:`add` for each row as it arrives, on the
    driver, then :meth:`commit` once for the rows that arrived together (one fsync for
    all), and only then lets each setting's ``report()`` return, handing it what
    :meth:`add` said (None: go on). An engine that cannot stream them hands them back in
    :attr:`Outcome.reported` instead, and its ``report()`` returns at once.
    """

    def add(self, task: Task, row: dict[str, Any], /) -> str | None: ...

    def commit(self) -> None: ...


class Executor(abc.ABC):
    """Runs settings of one space; subclasses say where.

    The runner calls :meth:`start` once, then :meth:`submit` while :attr:`free` is
    positive and :meth:`wait` for outcomes, then :meth:`shutdown`; on Ctrl-C,
    :meth:`drop_queued` (the first) or :meth:`cancel` (the second). Before
    :meth:`start` it sets :attr:`reports`, where rows reported while a setting runs go.
    """

    name: ClassVar[str] = ""
    #: Whether its settings outlive the driver (Slurm jobs): the store then records them
    #: queued, and the engine's next run takes them back (see :meth:`Plan.to_run`).
    reattaches: ClassVar[bool] = False
    #: How many settings run at once when the user gives no count (``-j``, ``num_proc``);
    #: None: the run's own default (1, or one per GPU). A cluster's queue (Slurm) has its
    #: own: the machine the run starts on says nothing of it.
    default_num_proc: ClassVar[int | None] = None
    #: Whether settings run in the driver's own process (the inline engine): one that
    #: ends the process ends the run, and the next run records it failed.
    in_process: ClassVar[bool] = False
    reports: Reports | None = None

    def __init__(self, num_proc: int = 1, *, gpus: Sequence[int | str] | None = None) -> None:
        self.num_proc = num_proc
        self.gpus = list(gpus) if gpus else []
        #: The results folder of the run, set by the runner before :meth:`start`; an
        #: engine whose jobs need files of their own (Slurm's) keeps them under it.
        self.folder: Path | None = None

    @classmethod
    def from_options(
        cls, num_proc: int, gpus: Sequence[int | str] | None = None, **options: Any
    ) -> Executor:
        """The executor for a run: ``options`` are its own keywords (``address`` for Dask),
        given as values or as the text a command line gives (``"2"`` for an ``int``).

        Raises:
            UsageError: an option the engine does not take, or text it cannot read.
        """
        return cls(num_proc, gpus=gpus, **cls.read_options(options))

    @classmethod
    def read_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` checked against the engine's keywords, text read by annotation."""
        import inspect
        import typing

        from superparams.errors import UsageError, did_you_mean

        hints = typing.get_type_hints(cls.__init__)
        taken = [
            p.name
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.kind is p.KEYWORD_ONLY and p.name != "gpus"
        ]
        out = {}
        for key, value in options.items():
            if key not in taken:
                accepted = ", ".join(taken) or "none"
                msg = (
                    f"the {cls.name} engine has no option {key!r}{did_you_mean(key, taken)}; "
                    f"its options: {accepted}"
                )
                raise UsageError(msg)
            out[key] = _read(cls.name, key, value, hints.get(key))
        return out

    @abc.abstractmethod
    def start(self, base: Space[Any], notify: Callable[[Started], SettingLog | None]) -> None:
        """Get ready to run settings of ``base``; call ``notify`` as each one starts.

        ``notify`` returns the setting's log (None if the run cannot record it): the
        engine may append to it, on the driver, what the setting prints as it runs
        (:meth:`SettingLog.write`, or :meth:`SettingLog.copy` from a file of its own), so
        ``experiment logs -f`` follows it; the store closes it when the outcome is
        recorded. An engine that returns the output in :attr:`Outcome.output` instead
        ignores it. How the base reaches the workers, and any scratch space that takes,
        is the executor's own: nothing of it goes into the results folder.
        """

    @property
    @abc.abstractmethod
    def free(self) -> int:
        """How many more tasks it takes now."""

    @property
    @abc.abstractmethod
    def busy(self) -> int:
        """How many tasks it holds (running or about to)."""

    @abc.abstractmethod
    def submit(self, task: Task) -> None:
        """Take a task to run; :attr:`free` said there is room. Report its start through
        the ``notify`` of :meth:`start` when it starts (or, for an engine that cannot
        tell, when it is handed over, keeping no more in hand than it runs at once)."""

    @abc.abstractmethod
    def wait(self, timeout: float) -> list[Outcome]:
        """The outcomes that arrive within ``timeout`` seconds (maybe none)."""

    def drop_queued(self) -> None:  # noqa: B027  # a default: most engines queue nothing
        """Start none of the settings submitted and not yet running (the first Ctrl-C).

        Settings running now go on and report as usual; :attr:`busy` no longer counts
        the dropped ones. An engine that never queues ahead needs nothing here.
        """

    @abc.abstractmethod
    def cancel(self) -> None:
        """Stop every running setting now; their outcomes are never reported."""

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Release the workers; the executor is not used again."""


def _read(engine: str, key: str, value: Any, annotation: Any) -> Any:
    """An option's text as the type its keyword declares (int, float, bool), else as is."""
    import types
    import typing

    from superparams.errors import UsageError

    if not isinstance(value, str):
        return value
    # int | None; Optional[int] too, which is what Python 3.10's get_type_hints makes
    # of an `int | None = None` keyword.
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    kinds = typing.get_args(annotation) if union else ()
    kind = next((k for k in (bool, int, float) if annotation is k or k in kinds), None)
    if kind is None:
        return value
    if kind is bool and value.lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.lower() in ("true", "yes", "1")
    try:
        if kind is not bool:
            return kind(value)
    except ValueError:
        pass
    msg = f"the {engine} engine's option {key} takes {kind.__name__} values, not {value!r}"
    raise UsageError(msg)


#: What CUDA_VISIBLE_DEVICES takes besides an index from 0: a GPU's or a MIG slice's UUID.
GPU_UUID = r"(GPU|MIG)-[0-9A-Za-z][0-9A-Za-z/-]*"


# The engines superparams ships: name -> (where the class is, the module its extra
# brings, the extra). Other packages add engines under the entry-point group
# "superparams.executors" (name = "module:Class").
_ENGINES = {
    "inline": ("superparams.executors._inline:InlineExecutor", None, None),
    "local": ("superparams.executors._local:LocalExecutor", None, None),
    "dask": ("superparams.executors.dask:DaskExecutor", "distributed", "dask"),
    "ray": ("superparams.executors.ray:RayExecutor", "ray", "ray"),
    "slurm": ("superparams.executors.slurm:SlurmExecutor", None, None),
}
_GROUP = "superparams.executors"


def get_executor(name: str) -> type[Executor]:
    """The executor class registered under ``name``.

    Raises:
        UsageError: no engine of that name, or its extra is not installed (the message
            gives the ``pip install`` line).
    """
    import importlib
    import importlib.util

    from superparams.errors import UsageError, did_you_mean

    where, needs, extra = _ENGINES.get(name) or (_plugins().get(name), None, None)
    if where is None:
        known = engines()
        msg = f"no engine named {name!r}{did_you_mean(name, known)}; engines: {', '.join(known)}"
        raise UsageError(msg)
    if needs is not None and importlib.util.find_spec(needs) is None:
        msg = (
            f"the {name} engine needs {needs}, which is not installed: "
            f"pip install 'superparams[{extra}]'"
        )
        raise UsageError(msg)
    module, _, cls = where.partition(":")
    engine: type[Executor] = getattr(importlib.import_module(module), cls)
    return engine


def engines() -> list[str]:
    """The names :func:`get_executor` accepts: the built-in ones, then installed ones."""
    return [*_ENGINES, *(n for n in _plugins() if n not in _ENGINES)]


def _plugins() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {point.name: point.value for point in entry_points(group=_GROUP)}


__all__ = ["Executor", "Reports", "Started", "engines", "get_executor"]  # Started: from outcome
