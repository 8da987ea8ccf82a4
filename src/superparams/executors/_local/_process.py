"""The local engine's worker process: ``python -c`` code of
:mod:`superparams.executors._local._driver` runs :func:`serve` here.

It talks to the driver over two pipes, so the user's script is never imported a second
time as ``__main__``: it reads the base once from a file the driver wrote
(:func:`write_base`, mapped copy-on-write by :func:`read_base`), then runs each task
with :func:`superparams._worker.run_setting`, streaming reported rows and handing
back outcomes. On Linux it first splits in two: a keeper, which runs no setting and
kills whatever is left below it when the worker or the driver dies, and the worker
proper (see :func:`_keeper`).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import time
from collections import deque
from typing import Any, BinaryIO

from superparams._environment import note_machinery
from superparams._leftovers import children, libc, run_only_settings, subreaper
from superparams._outcome import Failure, Outcome, Task
from superparams._worker import Reporter, error_line, run_setting, setting_of
from superparams.errors import WorkerError

# How a local worker opens the file a setting's output goes to, in the engine's scratch
# folder: its own, never through a link.
OUTPUT_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC


def output_path(scratch: str, task: Task) -> str:
    """Where a local worker writes what one attempt at a setting prints."""
    return f"{scratch}/{task.id}-{task.attempt}.out"


def _run_in_worker(
    setting: Any, task: Task, worker: int, scratch: str, report: Reporter
) -> tuple[Outcome, bool]:
    """Run a setting in a local worker, its output in a file of ``scratch``; whether it
    printed anything. An empty file is removed; otherwise the driver copies it into the
    store's log, and removes it."""
    path = output_path(scratch, task)
    try:
        fd = os.open(path, OUTPUT_FLAGS, 0o600)
    except OSError as error:
        outcome = Outcome(task.id, task.attempt, started=time.time(), worker=worker)
        outcome.failure = Failure("raised", f"its output could not be captured: {error}")
        outcome.finished = outcome.started
        return outcome, False
    try:
        outcome = run_setting(setting, task, worker, capture="fd", output=fd, report=report)
        empty = os.fstat(fd).st_size == 0
    finally:
        os.close(fd)
    if empty:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return outcome, not empty


def serve(inbox: int, outbox: int, worker: int, n_proc: int, parent: int, scratch: str) -> None:
    """Run tasks from the driver until it says stop or goes away; what each setting
    prints goes to a file of the ``scratch`` folder (:func:`output_path`)."""
    from multiprocessing.connection import Connection

    # Ctrl-C, and the SIGTERM a scheduler sends every process of a job, are the driver's
    # to handle. A handler, not SIG_IGN: programs that run() starts get the defaults back.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _leave_to_the_driver)
    # Programs that run() starts must not hold the pipes: the driver reads the end of
    # file of the result pipe as this worker's death.
    os.set_inheritable(inbox, False)
    os.set_inheritable(outbox, False)
    parent = _keeper(parent)
    _die_with_parent(parent)
    run_only_settings()
    tasks, results = Connection(inbox, writable=False), Connection(outbox, readable=False)
    base: Any = None
    queue: deque[Task] = deque()

    def report(row: dict[str, Any]) -> str | None:
        """Send a reported row to the driver; return once it says the row is durable."""
        # The row pickled apart, as an outcome's rows are (see _pickle_outcome).
        row_data = pickle.dumps(row, protocol=pickle.HIGHEST_PROTOCOL)
        data = pickle.dumps(("report", row_data), protocol=pickle.HIGHEST_PROTOCOL)
        # A timeout's SIGALRM waits until the ack is read: raised halfway through a
        # message, it would leave the pipe out of step with the driver.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _ALARM)
        try:
            results.send_bytes(data)
            while True:  # what else the driver sends meanwhile waits its turn
                message = pickle.loads(tasks.recv_bytes())
                kind = message[0]
                if kind == "ack":  # ("ack", verdict): the row is durable
                    verdict: str | None = message[1]
                    return verdict
                if kind == "run":
                    queue.extend(message[1])
                elif kind == "drop":
                    results.send_bytes(pickle.dumps(("dropped", len(queue))))
                    queue.clear()
                elif kind == "stop":
                    os._exit(0)
        except (EOFError, OSError):
            os._exit(1)  # the driver is gone: nothing can be stored any more
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    while True:
        if queue and not tasks.poll():  # between settings, the driver may have a word
            task = queue.popleft()
            setting = setting_of(base, task)
            setting.__dict__["rank"] = worker
            setting.__dict__["n_proc"] = n_proc
            outcome, printed = _run_in_worker(setting, task, worker, scratch, report)
            try:
                results.send_bytes(_pickle_outcome(outcome, printed))
            except OSError:
                return
            continue
        try:
            message = pickle.loads(tasks.recv_bytes())
        except (EOFError, OSError):
            return  # the driver is gone
        kind = message[0]
        if kind == "stop":
            return
        if kind == "ack":  # for a report that a timeout cut short
            continue
        if kind == "drop":  # the run winds down (Ctrl-C): start none of the queued settings
            results.send_bytes(pickle.dumps(("dropped", len(queue))))
            queue.clear()
            continue
        if kind == "base":
            _, fd, sys_path = message
            sys.path[:] = sys_path  # the driver's, in its order: nothing of this process's
            note_machinery()  # what is loaded before the experiment is not its environment
            try:
                base = read_base(fd)
            except Exception as error:  # whatever it is, the run cannot go on
                text = f"a worker could not load the experiment: {error_line(error)}"
                results.send_bytes(pickle.dumps(WorkerError(text)))
                return
            finally:
                os.close(fd)  # the mapping keeps what it needs; run()'s children get none
            continue
        queue.extend(message[1])


_ALARM = {signal.SIGALRM} if hasattr(signal, "SIGALRM") else set()


def _leave_to_the_driver(signum: int, frame: object) -> None:
    pass


def _pickle_outcome(outcome: Outcome, printed: bool) -> bytes:
    """The message that hands an outcome back: ("outcome", outcome without its rows,
    whether it printed, its rows pickled apart).

    Apart, so that rows the driver cannot load (a class only workers define, a
    ``__reduce__`` that raises) fail their setting alone: the driver still reads which
    setting it was (see :meth:`LocalExecutor._receive`).
    """
    try:
        rows = pickle.dumps(outcome.rows, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:  # any pickling failure is the setting's
        outcome.failure = Failure(
            "unpicklable",
            f"run() returned results that cannot be sent back: {error_line(error)}",
        )
        rows = pickle.dumps([], protocol=pickle.HIGHEST_PROTOCOL)
    outcome.rows = []
    return pickle.dumps(("outcome", outcome, printed, rows), protocol=pickle.HIGHEST_PROTOCOL)


# -- the base, pickled once ------------------------------------------------------------

_ALIGN = 64  # out-of-band buffers start on cache-line boundaries, as numpy likes


def write_base(base: Any, file: BinaryIO) -> None:
    """Pickle ``base`` into ``file``, large buffers out of band so readers can map them.

    The file holds: a header line (the pickle's length, then each buffer's offset and
    length), the pickle, and the raw buffers. Writing copies no array.
    """
    import cloudpickle

    buffers: list[pickle.PickleBuffer] = []
    data = cloudpickle.dumps(base, protocol=5, buffer_callback=buffers.append)
    views = [b.raw() for b in buffers]
    spans, offset = [], 0
    for view in views:
        spans.append((offset, view.nbytes))
        offset += -(-view.nbytes // _ALIGN) * _ALIGN
    header = (repr((len(data), spans)) + "\n").encode()
    start = -(-(len(header) + len(data)) // _ALIGN) * _ALIGN
    file.seek(0)
    file.write(header + data)
    for (at, _), view in zip(spans, views, strict=True):
        file.seek(start + at)
        file.write(view)
    file.flush()


def read_base(fd: int) -> Any:
    """Load what :func:`write_base` wrote to ``fd``; arrays point into a private mapping.

    The mapping is copy-on-write: reading shares the page cache with every other worker,
    and a setting that writes to an array changes only its own worker's copy. Workers
    share the descriptor's file offset, so nothing here reads through it.
    """
    import ast
    import mmap

    mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_COPY)
    end = mapped.find(b"\n") + 1
    size, spans = ast.literal_eval(mapped[:end].decode())
    data = mapped[end : end + size]
    if not spans:
        mapped.close()
        return pickle.loads(data)
    start = -(-(end + size) // _ALIGN) * _ALIGN
    view = memoryview(mapped)
    buffers = [view[start + at : start + at + n] for at, n in spans]
    return pickle.loads(data, buffers=buffers)


def _keeper(driver: int) -> int:
    """Split this worker in two (Linux): a keeper that runs no setting, and the process
    that runs them, its child; return the pid of the latter's parent (the keeper, or the
    driver where there is none).

    The keeper is a child subreaper, so whatever a setting starts (a setsid daemon
    included) stays its descendant whatever dies in between. When the worker dies (a
    segfault, the OOM killer) or the driver does (even by kill -9: the kernel tells the
    keeper), the keeper kills every process left below it, then exits as the worker did
    (the same signal or code), which is what the driver sees.
    """
    if not sys.platform.startswith("linux") or libc() is None:
        return driver
    keeper = os.getpid()
    subreaper(True)
    worker = os.fork()
    if worker == 0:
        return keeper
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the pipes and the base are the worker's

    class _DriverGone(Exception):
        pass

    def gone(signum: int, frame: object) -> None:
        if os.getppid() != driver:  # not a setting's signal to its process group
            raise _DriverGone

    signal.signal(_DRIVER_GONE, gone)
    c = libc()
    c.prctl(1, _DRIVER_GONE)  # PR_SET_PDEATHSIG: this signal when the driver dies
    status = None
    try:
        if os.getppid() != driver:  # it died before prctl took effect
            raise _DriverGone
        while status is None:
            pid, code = os.waitpid(-1, 0)  # the worker, or an orphan come here to die
            if pid == worker:
                status = code
    except (_DriverGone, ChildProcessError):
        pass
    _kill_below()
    if status is not None and os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        with contextlib.suppress(Exception):
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the worker dumped its own
        with contextlib.suppress(OSError, ValueError):  # SIGKILL has no handler to reset
            signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    os._exit(os.waitstatus_to_exitcode(status) if status is not None else 1)


# What the kernel sends a keeper (see _keeper) when the driver dies.
_DRIVER_GONE = signal.SIGUSR2


def _kill_below() -> None:
    """Kill every process below this subreaper, and reap them; their own children come
    here as they die, and are killed the same way."""
    for _ in range(1000):  # a setting that keeps forking cannot keep us here
        left = children()
        if not left:
            return
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in left:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this worker when the driver dies, even by kill -9."""
    if not sys.platform.startswith("linux"):
        return
    c = libc()
    if c is not None:
        pr_set_pdeathsig = 1
        c.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the driver died before prctl took effect
        os._exit(1)
