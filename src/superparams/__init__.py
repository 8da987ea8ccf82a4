"""superparams: one Python file per experiment, every setting run, stored and resumable.

The public face is this package and five modules: :mod:`superparams.errors` (every
error, with its exit code), :mod:`superparams.events` (what a run reports as it goes),
:mod:`superparams.stopping` (stop rules), and :mod:`superparams.executors` (the seam an
engine plugs into, with ``.dask``, ``.ray``, ``.slurm`` and ``.testing``). Every other
module is private; ``docs/design.md`` draws them, in the order data flows through them:
the model (``_experiment``, ``_space``), the front door (``_api``), the runner, the
engines, the store (``_store/``), the command line (``_cli/``) and the view.
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
