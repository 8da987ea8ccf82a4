"""Settings on a Dask cluster: the one you already have, or a local one made for the run.

``DaskExecutor(address=...)`` (``engine="dask"``, ``--engine dask``) connects to a running
scheduler: ``address``, else Dask's own ``scheduler-address`` setting (the
``DASK_SCHEDULER_ADDRESS`` variable). With neither, it starts a ``LocalCluster`` of
``num_proc`` worker processes for the run and closes it after.

How the base travels: it is pickled once, the experiment's own module by value (so
workers need superparams and the libraries the experiment imports, not the user's file),
and scattered to every worker once; each worker process unpickles it once, on its first
setting. Each setting then sends only its task.

What a setting gets: ``rank`` is its slot among the ``n_proc`` settings the run keeps in
flight (``n_proc`` is the number of Dask worker threads), so no two settings running at
once share a rank. The run never hands Dask more settings than workers, so a setting is
reported started when it is handed over, and the first Ctrl-C has nothing queued to
drop. Output is captured on the worker (file descriptors 1 and 2) and comes back with the
outcome, for the store to write: no worker touches the results folder. Each worker must
therefore run one task at a time (``dask worker --nthreads 1``); a threaded worker is
refused at start, with that advice.

Faults: an exception in ``run()`` is that setting's failure, as everywhere. A worker that
dies fails the setting it ran (Dask's ``KilledWorker``); a local cluster is made with
``allowed-failures`` 0, so Dask never retries a setting behind the user's back (set the
same on your own scheduler). A second Ctrl-C cancels the running settings' futures:
they are recorded as interrupted (on a cluster that is not the run's own, what already
runs finishes in the background, its outcome unused). ``timeout`` is enforced by the
driver, which fails a late setting with cause ``timeout`` (Dask cannot stop a task
midway, so its worker finishes it in the background).
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from superparams.executors._futures import FuturesExecutor
from superparams.outcome import Outcome, Task
from superparams.worker import run_task

if TYPE_CHECKING:
    from superparams.space import Space


# How long the run waits to reach a scheduler it was given.
CONNECT = "10s"


class DaskExecutor(FuturesExecutor):
    """Run settings on a Dask cluster: at ``address``, or a local one for the run."""

    name: ClassVar[str] = "dask"

    def __init__(
        self,
        num_proc: int = 2,
        *,
        gpus: Sequence[int | str] | None = None,
        address: str | None = None,
    ) -> None:
        super().__init__(num_proc, gpus=gpus)
        self.address = address
        self._client: Any = None
        self._cluster: Any = None
        self._base: Any = None
        self._key = ""

    def _open(self, base: Space[Any]) -> int:
        import dask
        import distributed

        address = self.address or dask.config.get("scheduler-address", None)
        if address:
            try:
                self._client = distributed.Client(address, timeout=CONNECT, set_as_default=False)
            except OSError as error:  # a timeout, a refused connection, a bad address
                from superparams.errors import EngineError

                msg = (
                    f"the Dask scheduler at {address} could not be reached within {CONNECT} "
                    f"({type(error).__name__}: {error}); check that it runs and the address, "
                    "or name none to run on a local cluster"
                )
                raise EngineError(msg) from None
        else:
            # Dask retries a task whose worker died; a setting that kills its worker
            # would run again and again, so here a death is that setting's failure.
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}), _no_ctrl_c():
                self._cluster = distributed.LocalCluster(
                    n_workers=self.num_proc,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                )
            self._client = distributed.Client(self._cluster, set_as_default=False)
        self._client.wait_for_workers(1, timeout=60)
        workers = self._client.scheduler_info()["workers"]
        threaded = sorted(a for a, w in workers.items() if w.get("nthreads", 1) != 1)
        if threaded:
            from superparams.errors import UsageError

            msg = (
                f"Dask workers {', '.join(threaded)} run several tasks at once, so two "
                "settings would share one process's output; start them with "
                "`dask worker --nthreads 1` (use --nworkers for more per machine)"
            )
            raise UsageError(msg)
        self._key = uuid.uuid4().hex
        self._base = self._client.scatter(_pickled(base), broadcast=True, hash=False)
        return int(sum(w.get("nthreads", 1) for w in workers.values()))

    def _submit(self, task: Task, slot: int, n_proc: int) -> Any:
        return self._client.submit(
            _run,
            self._base,
            self._key,
            task,
            slot,
            n_proc,
            key=f"superparams-{task.id}-{task.attempt}-{uuid.uuid4().hex[:8]}",
            pure=False,
            resources={"GPU": 1} if self.gpus else None,
        )

    def cancel(self) -> None:
        super().cancel()
        if self._cluster is not None:  # the run's own: stop what runs there now
            self.shutdown()

    def _cancel(self, futures: list[Any]) -> None:
        if self._client is not None:
            self._client.cancel(futures, force=True)

    def _close(self) -> None:
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        try:
            if client is not None:
                client.close()
        finally:
            if cluster is not None:
                cluster.close()


@contextlib.contextmanager
def _no_ctrl_c() -> Iterator[None]:
    """Start processes that ignore Ctrl-C, which is the run's to handle, not theirs.

    A terminal sends SIGINT to its whole process group, which a local cluster's worker
    processes would otherwise share with the run.
    """
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _pickled(base: Space[Any]) -> bytes:
    """The base, pickled once, with the experiment's module by value.

    Workers then need only superparams and the libraries the experiment imports, not the
    user's file on their path.
    """
    import sys

    import cloudpickle

    module = sys.modules.get(base.experiment_class.__module__)
    by_value = module is not None and module.__name__ not in ("__main__", "builtins")
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        blob: bytes = cloudpickle.dumps(base)
        return blob
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)


# The base of the run a worker process serves, unpickled on its first setting: by run.
_BASES: dict[str, Any] = {}


def _run(blob: bytes, key: str, task: Task, slot: int, n_proc: int) -> Outcome:
    """Run one setting on a Dask worker (this function is what Dask ships)."""
    import pickle

    base = _BASES.get(key)
    if base is None:
        _BASES.clear()  # an earlier run's: never used again
        base = _BASES[key] = pickle.loads(blob)
    return run_task(base, task, slot, n_proc)
