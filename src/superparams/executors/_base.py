"""What every engine is: the :class:`Executor` the runner drives, the :class:`Reports` it
streams rows to, and the :class:`Detaching` capability of an engine whose settings
outlive the driver. It never names an engine: :mod:`superparams.executors` finds them.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    from superparams._outcome import Outcome, Started, Task
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
    #: Whether its settings outlive the driver (a :class:`Detaching` engine's do): the
    #: store then records them queued, and the engine's next run takes them back (see
    #: :meth:`Plan.to_run`).
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
        self.num_proc: int = num_proc
        self.gpus: list[int | str] = list(gpus) if gpus else []
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


class Detaching(Executor):
    """An engine whose settings outlive the driver: submitted, left, collected later.

    It tells the runner of a setting it queued with ``notify(Started(..., queued=Queued(
    name, job)))`` (:class:`~superparams._outcome.Queued`), and of one it let go of before
    it ran with ``released=True``; the store records the engine's name with the queued
    setting. What a run left queued is then the business of the engine of that name,
    asked through these class methods (:func:`~superparams.executors.get_executor`): a
    later run of it collects the settings, ``experiment status`` asks how they stand, and
    ``experiment clean`` cancels them. Another run starts none of them meanwhile.
    """

    reattaches: ClassVar[bool] = True

    @classmethod
    @abc.abstractmethod
    def waiting(cls, results: Path) -> dict[str, str]:
        """How the settings earlier runs left queued on this engine for ``results`` (a
        results folder) stand, by setting id: ``PENDING``, ``RUNNING``, ``FINISHED`` (to
        collect) or how its job ended. Reads only; {} when the engine cannot be asked."""

    @classmethod
    @abc.abstractmethod
    def cancel_left(cls, results: Path) -> int:
        """Cancel what earlier runs left queued on this engine for ``results`` (a results
        folder about to be deleted), so none runs into it; how many settings had not
        finished."""


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
