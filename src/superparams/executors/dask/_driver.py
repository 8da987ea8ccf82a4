"""The Dask engine's driver: it connects to (or starts) a cluster, hands the base to its
workers once, submits settings and turns Dask's faults into failed outcomes. What runs on
a worker is :mod:`superparams.executors.dask._node`'s; the engine's whole story is told in
:mod:`superparams.executors.dask`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from superparams._outcome import Outcome, Task
from superparams.executors._futures import FuturesExecutor
from superparams.executors._shipping import no_ctrl_c, pickled
from superparams.executors.dask._node import output_name, printed_here, run, topic

if TYPE_CHECKING:
    from superparams._space import Space


# How long the run waits to reach a scheduler it was given.
CONNECT = "10s"
# How many times a setting lost with its worker before it started there is handed over
# again (a worker that dies loading the base, say, must not be fed forever).
RESUBMITS = 3
# How long a run asks the nannies why a worker process that ran a setting died, before
# it says only that it was lost (a nanny logs it once it has seen the process end).
DEATH_WAIT = 3.0


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
        # The tasks a worker has started, by key: the process running each.
        self._begun: dict[str, int] = {}
        self._tries: dict[str, int] = {}  # task id -> times handed over again
        self._shipped = False  # the base is with the scheduler (to take back at the end)

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
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}), no_ctrl_c():
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
        if self.gpus and not any(w.get("resources", {}).get("GPU") for w in workers.values()):
            # Dask would hold every setting until such a worker joins: forever, silently.
            from superparams.errors import EngineError

            raise EngineError(_no_gpu_workers(address))
        self._key = uuid.uuid4().hex
        self._address = self._client.scheduler.address
        # Each worker says when it starts a task, before the task runs: a task lost
        # with its worker but never started there was only waiting, and runs again.
        self._begun.clear()
        self._tries.clear()
        self._client.subscribe_topic(topic(self._key), self._heard)
        from superparams.executors.dask._plugin import Base

        self._client.register_plugin(Base(self._key, pickled(base)), name=topic(self._key))
        self._shipped = True
        return int(sum(w.get("nthreads", 1) for w in workers.values()))

    def _heard(self, event: tuple[float, Any]) -> None:
        """A worker said it starts a task: ``[key, pid]`` (a bare key from an older node)."""
        said = event[1]
        key, pid = (said[0], int(said[1])) if isinstance(said, (list, tuple)) else (said, 0)
        self._begun[str(key)] = pid

    def _submit(self, task: Task, slot: int, n_proc: int) -> Any:
        return self._client.submit(
            run,
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
            # The key names the task: superparams-<id>-<attempt>-<random>.
            _, sid, attempt, _ = future.key.split("-")
            name = output_name(sid, attempt)
            restart = threading.Thread(target=_restart, args=(self._client, workers, name))
            restart.daemon = True
            restart.start()

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
            outcome = super()._outcome(future, task, slot, since)
        finally:
            self._begun.pop(future.key, None)
        failure = outcome.failure if outcome is not None else None
        ended = failure is not None and failure.cause in ("killed", "interrupted")
        if ended and self._client is not None:
            assert outcome is not None
            if outcome.output is None:  # its process died with it: its nanny has the file
                outcome.output = _printed(self._client, output_name(task.id, task.attempt))
        return outcome

    def _lost(self, error: BaseException, future: Any) -> str:
        pid = self._begun.get(future.key)
        why = _death(self._client, pid) if pid and self._client is not None else None
        if why is None:
            return super()._lost(error, future)
        return f"the Dask worker running this setting was lost: its process {why}"

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
        running = [output_name(task.id, task.attempt) for task, _, _ in self._futures.values()]
        super().cancel()
        if self._cluster is not None:  # the run's own: stop what runs there now
            self.shutdown()
            for name in running:  # what its processes were writing, on this machine
                printed_here(name)

    def _cancel(self, futures: list[Any]) -> None:
        if self._client is not None:
            self._client.cancel(futures, force=True)

    def _close(self) -> None:
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        shipped, self._shipped = self._shipped, False
        try:
            if client is not None and shipped and not self._broken:
                with contextlib.suppress(Exception):  # what the workers hold of the run
                    client.unregister_worker_plugin(topic(self._key))
                with contextlib.suppress(Exception):  # the starts noted on the scheduler
                    client.set_metadata(topic(self._key), None)
            if client is not None:
                # A client without its scheduler logs the reconnection it gives up, with
                # a traceback: the run has said why it stops in one line already.
                with _quiet() if self._broken else contextlib.nullcontext():
                    client.close()
        finally:
            if cluster is not None:
                cluster.close()
            logging.getLogger("distributed.batched").removeFilter(_no_info_tracebacks)


def _no_gpu_workers(address: str | None) -> str:
    """What a person reads when ``--gpus`` meets a cluster without a GPU worker."""
    if address:
        return (
            f"no worker of the Dask cluster at {address} offers the 'GPU' resource that "
            "--gpus needs, so no setting could start; start workers that do: "
            f"`dask worker {address} --resources GPU=1` (one per GPU, with "
            "CUDA_VISIBLE_DEVICES set to it), or run without --gpus"
        )
    return (
        "the local Dask cluster made for the run offers no 'GPU' resource, which --gpus "
        "needs; start a scheduler and workers that do (`dask worker ADDRESS --resources "
        "GPU=1`, one per GPU, with CUDA_VISIBLE_DEVICES set to it) and name it with "
        "--engine-option address=ADDRESS, or use --engine local for --gpus on this machine"
    )


def _death(client: Any, pid: int, *, wait: float = DEATH_WAIT) -> str | None:
    """How the worker process ``pid`` ended, as its nanny logged it: ``exited with status
    7``, ``was killed by signal 11 (SIGSEGV)``, or its memory; None if no nanny said so
    within ``wait`` seconds (a worker without a nanny, or one on its way back)."""
    import re
    import signal

    deadline = time.monotonic() + wait
    while True:
        try:
            logs = client.get_worker_logs(nanny=True)
        except Exception:  # a worker without a nanny, say: nobody to ask
            return None
        said = [m for lines in logs.values() for _, m in lines if str(pid) in m]
        for message in said:
            if f"(pid={pid}) exceeded" in message:
                found = re.search(r"exceeded (\d+%) memory budget", message)
                share = found.group(1) if found else "its share"
                return (
                    f"used more than {share} of the worker's memory limit, and its nanny ended it"
                )
        for message in said:
            found = re.search(
                rf"Worker process {pid} (exited with status -?\d+|was killed by .*)$", message
            )
            if found:
                text = found.group(1)
                number = re.search(r"signal (\d+)", text)
                if number:
                    with contextlib.suppress(ValueError):
                        text += f" ({signal.Signals(int(number.group(1))).name})"
                return text
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)


def _printed(client: Any, name: str) -> str | None:
    """What a setting whose worker process died printed, from the nanny of the machine
    it ran on (see :func:`superparams.executors.dask._node.printed_here`)."""
    try:
        found = client.run(printed_here, name, nanny=True)
    except Exception:  # workers without nannies, say: nothing to ask
        return None
    return next((text for text in found.values() if text), None)


def _restart(client: Any, workers: list[str], output: str) -> None:
    """Restart these workers, without waiting (a worker without a nanny stays as is),
    then remove the ``output`` file the late setting was writing."""
    with contextlib.suppress(Exception):  # gone already, say, or the run is over
        client.restart_workers(workers, raise_for_error=False)
        _printed(client, output)


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
