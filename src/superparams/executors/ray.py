"""Settings on a Ray cluster: the one you already have, or a local Ray made for the run.

``RayExecutor(address=...)`` (``engine="ray"``, ``--engine ray``) connects to a running
cluster: ``address`` (``host:6379``, the head's GCS port; ``auto``; ``ray://host:10001``
through Ray Client), else Ray's own ``RAY_ADDRESS`` variable. With neither, it starts a
local Ray of ``num_proc`` CPUs for the run and stops it after; in a process already
connected to Ray (``ray.init()`` in a notebook), it uses that connection and leaves it
open.

How the base travels: it is pickled once, the experiment's own module by value, and put
in Ray's object store once (``ray.put``); each worker process fetches and unpickles it
once, on its first setting. Each setting then sends only its task.

What a setting gets: each asks Ray for ``num_cpus`` CPUs (1) and ``num_gpus`` GPUs (0;
1 with ``--gpus``), so GPUs go through Ray's own resources and ``CUDA_VISIBLE_DEVICES``
is the one Ray sets. ``rank`` is its slot among the ``n_proc`` settings the run keeps in
flight, where ``n_proc`` is how many fit on the cluster at once (its CPUs over
``num_cpus``, its GPUs over ``num_gpus``); the run never hands Ray more than that, so a
setting is reported started when it is handed over. Output is captured in the worker
(file descriptors 1 and 2) and comes back with the outcome, for the store to write: no
worker touches the results folder.

Faults: an exception in ``run()`` is that setting's failure, as everywhere. A worker
that dies fails the setting it ran, with cause ``killed``: tasks are sent with
``max_retries=0``, where Ray would otherwise run a task whose worker died three more
times; ``--retries`` is the only retry. A second Ctrl-C, and ``timeout``, stop the
running setting's worker (``ray.cancel(force=True)``).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from superparams._outcome import Outcome, Task
from superparams._worker import run_task
from superparams.executors._futures import FuturesExecutor
from superparams.executors._shipping import loaded, no_ctrl_c, pickled

if TYPE_CHECKING:
    from superparams._space import Space


# How long the run waits to reach the cluster it was given.
CONNECT = 10.0
# How often a run looks whether the head it connected to still listens, and how long it
# waits for an answer: a head that is gone ends the run within seconds.
HEAD_CHECK = 2.0
HEAD_ANSWER = 2.0


class RayExecutor(FuturesExecutor):
    """Run settings on a Ray cluster: at ``address``, or a local Ray for the run.

    Rows a setting reports (``self.report``, a generator ``run()``) cannot be streamed
    from a Ray worker: they come back with the setting's outcome
    (:attr:`Outcome.reported`), so ``report()`` returns at once, and a worker lost
    mid-setting loses them.
    """

    name: ClassVar[str] = "ray"

    def __init__(
        self,
        num_proc: int = 2,
        *,
        gpus: Sequence[int | str] | None = None,
        address: str | None = None,
        num_cpus: float = 1,
        num_gpus: float | None = None,
    ) -> None:
        super().__init__(num_proc, gpus=gpus)
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = (1 if self.gpus else 0) if num_gpus is None else num_gpus
        self._remote: Any = None
        self._base: Any = None
        self._key = ""
        self._own = False  # this run started Ray (or connected): it shuts it down
        self._head = ""  # where the head's GCS listens (host:port), when this run connected
        self._looked = 0.0  # when the head was last found listening

    def _open(self, base: Space[Any]) -> int:
        import logging

        import ray

        address = self.address or os.environ.get("RAY_ADDRESS") or None
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
        if ray.is_initialized():
            pass  # the caller's own connection: used, and left open
        elif address:
            _reachable(address)
            try:
                context = ray.init(address=address, **quiet)
            except (ConnectionError, RuntimeError) as error:
                raise _unreachable(address, error) from None
            self._own = True
            self._head = _gcs_address(context)
        else:
            environ = {}
            if self.gpus:  # Ray hands out these ids, one a setting
                environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, self.gpus))
            with _environ(environ), no_ctrl_c():
                context = ray.init(
                    address="local",
                    num_cpus=max(1, round(self.num_proc * self.num_cpus)),
                    num_gpus=len(self.gpus),
                    include_dashboard=False,
                    **quiet,
                )
            self._own = True
            self._head = _gcs_address(context)
        n_proc = self._fits(ray.cluster_resources())
        self._key = uuid.uuid4().hex
        self._base = ray.put(pickled(base))
        # Ray runs a task again when its worker dies (three times by default): here a
        # death is that setting's failure, and --retries the user's only retry.
        self._remote = ray.remote(_run).options(
            num_cpus=self.num_cpus,
            num_gpus=self.num_gpus,
            max_retries=0,
            retry_exceptions=False,
        )
        return n_proc

    def _fits(self, resources: Mapping[str, float]) -> int:
        """How many settings the cluster runs at once, each asking what it asks."""
        from superparams.errors import UsageError

        asks = {"CPU": self.num_cpus, "GPU": self.num_gpus}
        fits = [int(resources.get(r, 0) // n) for r, n in asks.items() if n > 0]
        n_proc = min(fits) if fits else int(resources.get("CPU", 1))
        if n_proc < 1:
            have = ", ".join(f"{resources.get(r, 0):g} {r}" for r in asks)
            msg = (
                f"the Ray cluster has {have}, too little for one setting asking for "
                f"num_cpus={self.num_cpus:g}, num_gpus={self.num_gpus:g}; ask for less "
                "with --engine-option, or add nodes"
            )
            raise UsageError(msg)
        return n_proc

    def _submit(self, task: Task, slot: int, n_proc: int) -> Any:
        # The base goes inside a list so that Ray hands the worker its reference, not
        # its value: the worker fetches it only on its first setting.
        ref = self._remote.remote([self._base], self._key, task, slot, n_proc)
        return _Future(ref)

    def _cancel(self, futures: list[Any]) -> None:
        import ray

        for future in futures:
            with contextlib.suppress(Exception):
                ray.cancel(future.ref, force=True)

    def _gone(self, error: BaseException) -> str | None:
        # A head that died takes its node's settings with it: they were not lost on
        # their own, and the run cannot go on.
        return self._head_lost()

    def _alive(self) -> str | None:
        now = time.monotonic()
        if now - self._looked < HEAD_CHECK:
            return None
        self._looked = now
        return self._head_lost()

    def _head_lost(self) -> str | None:
        """What a person reads if the head of the cluster this run connected to no
        longer listens (Ray's own driver waits 60 s, then ends the process)."""
        if not self._head:
            return None
        import socket

        host, _, port = self._head.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=HEAD_ANSWER).close()
        except OSError as error:
            shown = self.address or self._head
            return (
                f"the Ray head at {shown} was lost mid-run ({type(error).__name__}: "
                f"{error.strerror or error}); the settings that finished are stored: run "
                "the same command again, once the head is back, for the rest"
            )
        return None

    def _close(self) -> None:
        self._remote = self._base = None
        if self._own:
            self._own = False
            import ray

            if self._head and self._broken is not None:
                return  # with its head gone, Ray's shutdown would wait on it
            with no_ctrl_c():
                ray.shutdown()


class _Future:
    """A task's future, keeping its Ray reference for a cancel."""

    __slots__ = ("future", "ref")

    def __init__(self, ref: Any) -> None:
        self.ref = ref
        self.future = ref.future()

    def done(self) -> bool:
        return bool(self.future.done())

    def result(self) -> Any:
        return self.future.result()

    def cancel(self) -> bool:
        return bool(self.future.cancel())

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        self.future.add_done_callback(fn)


def _gcs_address(context: Any) -> str:
    """Where the head's GCS listens (``host:port``), from what ``ray.init`` returned."""
    info = getattr(context, "address_info", None) or {}
    return str(info.get("gcs_address") or "")


def _reachable(address: str) -> None:
    """Refuse, within :data:`CONNECT` seconds, an address where nothing listens.

    Ray itself retries such an address for minutes.
    """
    import socket

    where = address.removeprefix("ray://")
    if where == "auto" or "://" in where:
        return  # Ray finds it, or says it cannot, at once
    host, _, port = where.rpartition(":")
    try:
        socket.create_connection((host or where, int(port or 6379)), timeout=CONNECT).close()
    except (OSError, ValueError) as error:
        raise _unreachable(address, error) from None


def _unreachable(address: str, error: BaseException) -> Exception:
    from superparams.errors import EngineError

    text = str(error).strip().splitlines()
    msg = (
        f"the Ray cluster at {address} could not be reached within {CONNECT:g} s "
        f"({type(error).__name__}" + (f": {text[0]}" if text else "") + "); check that it "
        "runs and the address, or name none to run on a local Ray"
    )
    return EngineError(msg)


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Any:
    """These environment variables set for the processes started inside."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# The base of the run a worker process serves, unpickled on its first setting: by run.
_BASES: dict[str, Any] = {}


def _run(refs: list[Any], key: str, task: Task, slot: int, n_proc: int) -> Outcome:
    """Run one setting in a Ray worker (this function is what Ray ships)."""
    base = _BASES.get(key)
    if base is None:
        import ray

        _BASES.clear()  # an earlier run's: never used again
        base = _BASES[key] = loaded(ray.get(refs[0]))
    return run_task(base, task, slot, n_proc)
