"""What runs on a Dask worker for the Dask engine: the base of each run it serves, handed
over once by :class:`~superparams.executors.dask._plugin.Base` and unpickled on its first
setting, and each setting, run with the worker telling the scheduler it began.
It imports no Dask at import; the driver ships :func:`run` by reference.
"""

from __future__ import annotations

import os
import time
from typing import Any

from superparams._outcome import Outcome, Task
from superparams._worker import run_task
from superparams.executors._shipping import loaded

# On a worker: the pickled base of the run it serves, from when it joins (see
# superparams.executors.dask._plugin), then the base, unpickled on its first setting.
BLOBS: dict[str, bytes] = {}
BASES: dict[str, Any] = {}


def run(key: str, task: Task, slot: int, n_proc: int) -> Outcome:
    """Run one setting on a Dask worker (this function is what Dask ships)."""
    base = BASES.get(key)
    if base is None:  # each run's pair goes when it ends (Base.teardown)
        base = BASES[key] = loaded(BLOBS.pop(key))
    began = _begin(key)
    if began is not None:
        # A scheduler whose allowed-failures is above 0 hands a task whose worker died to
        # another: the setting ran once already, and the run's own --retries say whether
        # it runs again, as a new task.
        error = "the Dask worker running this setting was lost (its process died running it)"
        return Outcome.failed(task, "killed", error, worker=slot, since=began)
    return run_task(base, task, slot, n_proc, kept=_kept(task))


def _kept(task: Task) -> str | None:
    """Where the setting's output goes while it runs: a file of this user's own folder
    in the machine's temporary folder, which the worker's nanny reads if the process
    dies (see :func:`printed_here`); None where that folder cannot be trusted."""
    from superparams._store._workdir import private
    from superparams.errors import StoreError

    try:
        return str(private() / output_name(task.id, task.attempt))
    except (OSError, StoreError):
        return None  # captured as anywhere else: lost with the process, as before


def output_name(sid: str, attempt: int | str) -> str:
    """The name of the file a setting's output goes to while it runs on a worker."""
    return f"output-{sid}-{attempt}.log"


def printed_here(name: str) -> str | None:
    """What a setting whose process died printed, if it ran on this machine: run by the
    driver on each worker's nanny (which outlives the process). The file is removed."""
    from superparams._store._workdir import private
    from superparams._worker import printed
    from superparams.errors import StoreError

    try:
        folder = private()
    except (OSError, StoreError):
        return None
    return printed(str(folder / name))


def topic(key: str) -> str:
    """The scheduler's event topic on which a run's workers say what they start."""
    return f"superparams-{key}"


def _begin(key: str) -> float | None:
    """Tell the scheduler, and wait till it heard, that this task starts here; unless it
    started before, on a worker lost since: then when it did (and it must not run again).
    """
    from distributed import get_worker
    from distributed.utils import sync

    worker = get_worker()
    task = worker.get_current_task()

    async def begin() -> float | None:
        # One task runs on one worker at a time: its rerun comes after its worker is
        # gone, so no other start of it can come between the look and the noting. The
        # note is one key in the scheduler's metadata, under the run's own (O(1) each).
        scheduler: Any = worker.scheduler  # its calls are the scheduler's handlers
        noted = [topic(key), str(task)]
        when = await scheduler.get_metadata(keys=noted, default=None)
        if when is not None:
            return float(when)
        await scheduler.set_metadata(keys=noted, value=time.time())
        # The process that runs it, for the driver to find why, if it dies (its nanny
        # logs how the process it watched ended).
        await scheduler.log_event(topic=topic(key), msg=[task, os.getpid()])
        return None

    began: float | None = sync(worker.loop, begin)
    return began
