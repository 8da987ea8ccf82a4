"""The seam between the runner and whatever runs settings: processes here, or a cluster.

An executor takes :class:`~superparams._outcome.Task` s and hands back
:class:`~superparams._outcome.Outcome` s; the runner never learns how. To add an engine,
subclass :class:`Executor` in a new module and fill in its abstract methods::

    Executor
     ├── InlineExecutor       "inline"  in the calling process: debuggers work
     ├── LocalExecutor        "local"   worker processes on this machine (the default)
     ├── FuturesExecutor                the template for engines that hand back futures
     │    ├── DaskExecutor    "dask"    a Dask cluster (superparams[dask])
     │    └── RayExecutor     "ray"     a Ray cluster (superparams[ray])
     └── Detaching                      settings that outlive the driver (queued)
          └── SlurmExecutor   "slurm"   Slurm job arrays (sbatch on the PATH)

An executor turns every fault of its engine (a dead worker, a timeout, an engine's own
exception) into a failed outcome of the setting it hit (:meth:`Outcome.failed`): it
never raises for a setting. Its workers never write the results folder: what a setting
printed comes back in the outcome (:func:`superparams._worker.run_task`), or, for an
engine whose workers share this machine, the driver copies it from the worker's own file
into the log that ``notify`` returns as the setting starts, while it runs (the local
engine does). Every engine passes the contract of the seam,
:class:`superparams.executors.testing.ExecutorContract`; an engine of another package
runs it with one subclass.
"""

from __future__ import annotations

from superparams._outcome import Failure, Outcome, Queued, Started, Task
from superparams.executors._base import GPU_UUID, Detaching, Executor, Reports
from superparams.executors._futures import FuturesExecutor

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


__all__ = [
    "GPU_UUID",
    "Detaching",
    "Executor",
    "Failure",
    "FuturesExecutor",
    "Outcome",
    "Queued",
    "Reports",
    "Started",
    "Task",
    "engines",
    "get_executor",
]
