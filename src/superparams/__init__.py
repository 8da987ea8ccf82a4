"""superparams: one Python file per experiment, every setting run, stored and resumable.

The rooms, in the order data flows through them::

    experiment.py  space.py    the user's dataclass, its search space, each setting's id
    _api.py                    the front door: run_all, plan, results (methods of a space)
    runner.py                  schedules what is left, retries, stops; emits events
    executors/  worker.py      run settings in worker processes (or on a cluster)
    store/                     the one writer: outcomes, parquet results, logs, a lock
    display.py  cli/           what the `experiment` command shows and accepts
    _summary.py                after the run: which column is which, mean ± std over seeds
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from superparams._experiment import Experiment
from superparams._space import Space
from superparams._summary import columns
from superparams._values import (
    choice,
    derived,
    loguniform,
    randint,
    search,
    seeds,
    uniform,
    value,
)
from superparams.errors import (
    EngineError,
    ExperimentError,
    IdentityError,
    Interrupted,
    LoadError,
    SearchSpaceError,
    StoreConflictError,
    StoreError,
    StoreLockedError,
    StoreWriteError,
    SuperparamsError,
    UsageError,
    WorkerError,
)

if TYPE_CHECKING:
    from superparams._cli import entrypoint

__all__ = [
    "EngineError",
    "Experiment",
    "ExperimentError",
    "IdentityError",
    "Interrupted",
    "LoadError",
    "SearchSpaceError",
    "Space",
    "StoreConflictError",
    "StoreError",
    "StoreLockedError",
    "StoreWriteError",
    "SuperparamsError",
    "UsageError",
    "WorkerError",
    "choice",
    "columns",
    "derived",
    "entrypoint",
    "loguniform",
    "randint",
    "search",
    "seeds",
    "uniform",
    "value",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from superparams._version import __version__

        return __version__
    if name == "entrypoint":  # the command line's module, loaded only by who uses it
        from superparams._cli import entrypoint

        return entrypoint
    msg = f"module 'superparams' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted({*globals(), "__version__", "entrypoint"})
