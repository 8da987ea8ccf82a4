"""Settings on a Dask cluster: the one you already have, or a local one made for the run.

``DaskExecutor(address=...)`` (``engine="dask"``, ``--engine dask``) connects to a running
scheduler: ``address``, else Dask's own ``scheduler-address`` setting (the
``DASK_SCHEDULER_ADDRESS`` variable). With neither, it starts a ``LocalCluster`` of
``num_proc`` worker processes for the run and closes it after.

How the base travels: it is pickled once, the experiment's own module by value (so
workers need superparams and the libraries the experiment imports, not the user's file),
with the source lines of the code it carries (so tracebacks on a worker name the user's
file, line and text), and handed to every worker once by a worker plugin, which the
scheduler holds for the run and gives to workers that join later too; each worker
process unpickles it once, on its first setting. Each setting then sends only its task.

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
same on your own scheduler). Dask fails every task assigned to a dead worker, so each
worker tells the scheduler when it starts a setting: one lost before it started there
is handed over again. A scheduler unreachable at the start, or lost mid-run, is an
:class:`~superparams.errors.EngineError`: the run stops, what finished is stored, what
was in flight stays started, to run again. A second Ctrl-C cancels the running
settings' futures: they are recorded as interrupted (on a cluster that is not the run's
own, what already runs finishes in the background, its outcome unused). ``timeout`` is
enforced by the driver, which fails a late setting with cause ``timeout`` and restarts
the worker process that runs it (Dask cannot stop a task's thread midway); a worker
without a nanny cannot be restarted, and finishes it in the background.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

from superparams._outcome import Outcome, Task
from superparams._worker import run_task
from superparams.executors._futures import FuturesExecutor

if TYPE_CHECKING:
    from collections.abc import Callable, MutableMapping

    from superparams._space import Space


# How long the run waits to reach a scheduler it was given.
CONNECT = "10s"
# How many times a setting lost with its worker before it started there is handed over
# again (a worker that dies loading the base, say, must not be fed forever).
RESUBMITS = 3


class DaskExecutor(FuturesExecutor):
    """Run settings on a Dask cluster: at ``address``, or a local one for the run.

    Rows a setting reports (``self.report``, a generator ``run()``) cannot be streamed
    from a Dask worker: they come back with the setting's outcome
    (:attr:`Outcome.reported`), so ``report()`` returns at once, and a worker lost
    mid-setting loses them.
    """

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
        self._key = ""
        self._address = ""
        self._begun: set[str] = set()  # keys of the tasks a worker has started
        self._tries: dict[str, int] = {}  # task id -> times handed over again

    def _open(self, base: Space[Any]) -> int:
        import dask.config
        import distributed

        # A scheduler lost mid-run makes the client's sender log its closed connection,
        # a traceback at INFO; the run says why it stops in one line (see _gone).
        logging.getLogger("distributed.batched").addFilter(_no_info_tracebacks)

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
                    # Unannotated, so inferred from its default ":8787"; None (no
                    # dashboard) is documented and handled.
                    dashboard_address=None,  # pyright: ignore[reportArgumentType]
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
        self._address = self._client.scheduler.address
        # Each worker says when it starts a task, before the task runs: a task lost
        # with its worker but never started there was only waiting, and runs again.
        self._begun.clear()
        self._tries.clear()
        self._client.subscribe_topic(_topic(self._key), lambda event: self._begun.add(event[1]))
        from superparams.executors._dask_base import Base

        self._client.register_plugin(Base(self._key, _pickled(base)), name=_topic(self._key))
        return int(sum(w.get("nthreads", 1) for w in workers.values()))

    def _submit(self, task: Task, slot: int, n_proc: int) -> Any:
        return self._client.submit(
            _run,
            self._key,
            task,
            slot,
            n_proc,
            key=f"superparams-{task.id}-{task.attempt}-{uuid.uuid4().hex[:8]}",
            pure=False,
            resources={"GPU": 1} if self.gpus else None,
        )

    def _stop_late(self, future: Any) -> None:
        # A worker thread cannot be stopped midway: restart the worker process that runs
        # it (its nanny starts a new one, which the scheduler hands the base).
        workers = [a for a, keys in self._client.processing().items() if future.key in keys]
        self._cancel([future])
        if workers:
            threading.Thread(target=_restart, args=(self._client, workers), daemon=True).start()

    def _resubmit(self, future: Any, error: BaseException) -> bool:
        from distributed.scheduler import KilledWorker

        if not isinstance(error, KilledWorker):
            return False
        begun = future.key in self._begun
        task_id = future.key.split("-")[1]
        tries = self._tries.get(task_id, 0)
        if begun or tries >= RESUBMITS:
            return False
        self._tries[task_id] = tries + 1
        return True

    def _outcome(self, future: Any, task: Task, slot: int, since: float) -> Outcome | None:
        try:
            return super()._outcome(future, task, slot, since)
        finally:
            self._begun.discard(future.key)

    def _gone(self, error: BaseException) -> str | None:
        reason = getattr(error, "reason", "")
        # A client that lost its scheduler tries to reconnect ("connecting") before it
        # gives up: a future it loses meanwhile went with the scheduler, not a worker.
        if "scheduler-connection-lost" not in str(reason) and (
            self._client is None or self._client.status not in ("connecting", "closing", "closed")
        ):
            return None
        return (
            f"the Dask scheduler at {self._address} was lost mid-run ({reason or error}); "
            "the settings that finished are stored: run the same command again, once the "
            "scheduler is back, for the rest"
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
            if client is not None and not self._broken:
                with contextlib.suppress(Exception):  # what the workers hold of the run
                    client.unregister_worker_plugin(_topic(self._key))
            if client is not None:
                # A client without its scheduler logs the reconnection it gives up, with
                # a traceback: the run has said why it stops in one line already.
                with _quiet() if self._broken else contextlib.nullcontext():
                    client.close()
        finally:
            if cluster is not None:
                cluster.close()
            logging.getLogger("distributed.batched").removeFilter(_no_info_tracebacks)


def _restart(client: Any, workers: list[str]) -> None:
    """Restart these workers, without waiting (a worker without a nanny stays as is)."""
    with contextlib.suppress(Exception):  # gone already, say, or the run is over
        client.restart_workers(workers, raise_for_error=False)


def _no_info_tracebacks(record: logging.LogRecord) -> bool:
    """A logging filter: drop the records below WARNING that carry a traceback."""
    return not (record.exc_info and record.levelno < logging.WARNING)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep Dask's loggers silent (errors too) for a while."""
    loggers = [logging.getLogger(name) for name in ("distributed", "distributed.client")]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger in loggers:
            logger.disabled = False


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
    """The base, pickled once, with the experiment's module by value, then the source
    lines of the code that travels with it.

    Workers then need only superparams and the libraries the experiment imports, not the
    user's file on their path; tracebacks still name that file, its lines and their text.
    """
    import io
    import linecache
    import marshal
    import pickle
    import sys
    import types
    from collections import ChainMap

    import cloudpickle

    files: set[str] = set()

    def code(obj: types.CodeType) -> tuple[Any, tuple[bytes]]:
        # As marshal keeps it, its file's name included: cloudpickle puts
        # <dynamic-code> there, to make its pickles the same wherever they are made.
        files.add(obj.co_filename)
        return marshal.loads, (marshal.dumps(obj),)

    class Pickler(cloudpickle.Pickler):  # type: ignore[misc]
        def __init__(self, file: Any) -> None:
            # Read by the C pickler when it is made, so set first.
            ours: dict[type, Callable[[Any], Any]] = {types.CodeType: code}
            # ChainMap writes only to its first map: the pickler's own table is only read.
            theirs = cast("MutableMapping[type, Callable[[Any], Any]]", super().dispatch_table)
            self.dispatch_table = ChainMap(ours, theirs)
            super().__init__(file)

    module = sys.modules.get(base.experiment_class.__module__)
    by_value = module is not None and module.__name__ not in ("__main__", "builtins")
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    out = io.BytesIO()
    try:
        Pickler(out).dump(base)
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)
    sources = {name: linecache.getlines(name) for name in sorted(files)}
    pickle.dump({name: lines for name, lines in sources.items() if lines}, out)
    return out.getvalue()


def _loaded(blob: bytes) -> Any:
    """The base from :func:`_pickled`, its code's source lines known to ``linecache``."""
    import io
    import linecache
    import pickle

    stream = io.BytesIO(blob)
    base = pickle.load(stream)
    for name, lines in pickle.load(stream).items():
        # No modification time: linecache keeps the entry, whatever is on this disk.
        linecache.cache[name] = (sum(map(len, lines)), None, lines, name)
    return base


# On a worker: the pickled base of the run it serves, from when it joins (see
# superparams.executors._dask_base), then the base, unpickled on its first setting.
_BLOBS: dict[str, bytes] = {}
_BASES: dict[str, Any] = {}


def _run(key: str, task: Task, slot: int, n_proc: int) -> Outcome:
    """Run one setting on a Dask worker (this function is what Dask ships)."""
    base = _BASES.get(key)
    if base is None:  # each run's pair goes when it ends (Base.teardown)
        base = _BASES[key] = _loaded(_BLOBS.pop(key))
    _begin(key)
    return run_task(base, task, slot, n_proc)


def _topic(key: str) -> str:
    """The scheduler's event topic on which a run's workers say what they start."""
    return f"superparams-{key}"


def _begin(key: str) -> None:
    """Tell the scheduler, and wait till it heard, that this task starts here."""
    from distributed import get_worker
    from distributed.utils import sync

    worker = get_worker()
    task = worker.get_current_task()
    sync(worker.loop, worker.scheduler.log_event, topic=_topic(key), msg=task)
