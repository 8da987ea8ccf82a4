"""What runs inside a worker: one setting, its log, and the outcome it hands back.

A worker holds the *base* (the space being run) once, and gets each setting as a
position in it: a few bytes per setting, however large the data the space holds. It
runs the setting with stdout and stderr sent to the setting's log file, and turns
whatever happens (results, an exception, results that cannot be pickled) into an
:class:`Outcome`. The driver alone writes the store.

This module is also the worker process's program (``python -m superparams.worker``),
started by :class:`superparams.executors.local.LocalExecutor`; it talks to the driver
over two pipes, so the user's script is never imported a second time as ``__main__``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import pickle
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO, TextIO

from superparams.errors import WorkerError
from superparams.outcome import Cause, Failure, Outcome, Task

TRACEBACK_LINES = 30  # how much of a traceback an outcome keeps; the log has all of it
# How much of its output a setting's log keeps: its first and last halves, once the
# setting ends. SUPERPARAMS_LOG_LIMIT changes it (bytes, or 500K, 100M, 2G; 0: all).
LOG_LIMIT = 100 * 2**20
# How a setting's log is opened: appended to, and never through a link planted in its
# place (it would append to any file).
LOG_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC

# -- results ---------------------------------------------------------------------------


def rows_of(result: Any) -> list[dict[str, Any]]:
    """The rows a run() result stands for, with nested dicts flattened to dotted names.

    >>> rows_of({"loss": 0.1, "eval": {"acc": 0.9}})
    [{'loss': 0.1, 'eval.acc': 0.9}]
    """
    if result is None:
        return []
    if isinstance(result, Mapping):
        return [_flatten(result)]
    to_dicts = getattr(result, "to_dicts", None)  # a polars DataFrame
    if callable(to_dicts):
        return [_flatten(r) for r in to_dicts()]
    to_dict = getattr(result, "to_dict", None)  # a pandas DataFrame
    if callable(to_dict) and hasattr(result, "columns"):
        return [_flatten(r) for r in to_dict("records")]
    if isinstance(result, (list, tuple)) and all(isinstance(r, Mapping) for r in result):
        return [_flatten(r) for r in result]
    return [{"result": _plain(result)}]


def _flatten(row: Mapping[Any, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if type(value) not in (int, float, str, bool) and getattr(value, "shape", None) == ():
        item = getattr(value, "item", None)
        if callable(item):
            return item()  # a numpy or torch scalar
    return value


# -- running one setting ---------------------------------------------------------------


class SettingTimeout(Exception):  # reads as the cause, like KeyboardInterrupt
    """Raised inside run() when a setting exceeds its time budget."""


class RunStopped(KeyboardInterrupt):
    """Raised in the driver when the run must stop now: a second Ctrl-C, SIGTERM or SIGHUP.

    Only this interrupt leaves a setting ``interrupted`` (to run again). A
    ``KeyboardInterrupt`` that ``run()`` raises itself is that setting's failure, like
    any exception: otherwise every rerun would stop at it again.
    """


def run_setting(setting: Any, task: Task, worker: int, *, capture: str) -> Outcome:
    """Run one setting and return its outcome; never raises for the setting's own faults.

    Args:
        capture: ``"fd"`` sends file descriptors 1 and 2 to the log (C extensions and
            child processes included), ``"tee"`` copies Python's output to the log and
            the terminal (in-process runs, so a debugger stays usable).
    """
    started = time.time()
    outcome = Outcome(task.id, task.attempt, started=started, worker=worker, log=task.log)
    try:
        log = _Log(task)
    except OSError as error:  # a link in its place, say: run() does not run
        outcome.failure = Failure("raised", f"its log could not be opened: {error}")
        outcome.finished = time.time()
        outcome.log = ""
        return outcome
    try:
        with log.capture(capture), _time_limit(task.timeout), _no_leftovers(), _restored():
            try:
                outcome.rows = rows_of(setting.run())
            except SettingTimeout as error:
                tb = _user_traceback(error)
                log.write(tb)
                outcome.failure = Failure("timeout", f"timed out after {task.timeout:g} s", tb)
            except (Exception, SystemExit, KeyboardInterrupt) as error:  # sys.exit() too
                tb = _user_traceback(error)
                log.write(tb)
                cause: Cause = "interrupted" if isinstance(error, RunStopped) else "raised"
                outcome.failure = Failure(cause, _error_line(error), _tail(tb))
    finally:
        outcome.finished = time.time()
        if log.close(keep=outcome.failure is not None):
            outcome.log = ""
    return outcome


def run_task(base: Any, task: Task, rank: int, n_proc: int) -> Outcome:
    """Run one task of ``base`` where the store's files are out of reach, output captured.

    What an engine's remote function calls: the setting gets its ``rank`` and ``n_proc``,
    its output goes to a temporary file of this process (file descriptors 1 and 2, so
    C extensions and child processes are caught too), and comes back in
    :attr:`Outcome.output` for the store to write. One setting at a time per process.
    """
    import dataclasses
    import tempfile

    setting = base[task.position]
    setting.__dict__["rank"] = rank
    setting.__dict__["n_proc"] = n_proc
    fd, path = tempfile.mkstemp(prefix="superparams-", suffix=".log")
    os.close(fd)
    try:
        outcome = run_setting(setting, dataclasses.replace(task, log=path), rank, capture="fd")
        if outcome.log:  # it printed something
            with open(path, encoding="utf-8", errors="replace") as f:
                outcome.output = f.read()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    outcome.log = task.log
    return outcome


_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def _user_traceback(error: BaseException) -> str:
    """The traceback from the user's run() on: superparams' own frames left out."""
    frames = traceback.extract_tb(error.__traceback__)
    keep = [f for f in frames if not os.path.abspath(f.filename).startswith(_PACKAGE + os.sep)]
    shown = traceback.TracebackException.from_exception(error)
    shown.stack = traceback.StackSummary.from_list(keep or frames)
    return "".join(shown.format())


def _error_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _tail(tb: str) -> str:
    return "\n".join(tb.rstrip().splitlines()[-TRACEBACK_LINES:])


# This process's own stdout and stderr, kept aside once while settings borrow fds 1 and 2.
_SAVED_FDS: tuple[int, int] | None = None


class _Log:
    """One setting's log file, opened for one attempt; removed if it stays empty."""

    def __init__(self, task: Task) -> None:
        self.path = task.log
        try:
            self.fd = os.open(self.path, LOG_FLAGS, 0o644)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(self.path), mode=0o755, exist_ok=True)
            self.fd = os.open(self.path, LOG_FLAGS, 0o644)
        if task.attempt > 1 or os.fstat(self.fd).st_size:  # a retry, or an earlier run's
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            self.write(f"\n----- attempt {task.attempt}, {stamp} -----\n")

    def write(self, text: str) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(self.fd, text.encode("utf-8", "replace"))

    @contextlib.contextmanager
    def capture(self, how: str) -> Iterator[None]:
        if how == "fd":
            with self._redirect():
                yield
        else:
            with _tee(self.fd):
                yield

    @contextlib.contextmanager
    def _redirect(self) -> Iterator[None]:
        global _SAVED_FDS  # once per process, on first use
        if _SAVED_FDS is None:
            _SAVED_FDS = os.dup(1), os.dup(2)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.fd, 1)
        os.dup2(self.fd, 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os.dup2(_SAVED_FDS[0], 1)
            os.dup2(_SAVED_FDS[1], 2)

    def close(self, *, keep: bool) -> bool:
        """Close the file, cut to :func:`log_limit`; remove it if nothing was written and
        ``keep`` is false.

        Returns whether it was removed.
        """
        size = os.fstat(self.fd).st_size
        limit = log_limit()
        if limit and size > limit:
            with contextlib.suppress(OSError):  # a log kept whole is no failure
                _cut_middle(self.fd, self.path, size, limit)
        os.close(self.fd)
        if size == 0 and not keep:
            os.unlink(self.path)  # nothing was written: no empty file to wade through
            return True
        return False


def log_limit() -> int:
    """How many bytes a setting's log keeps: ``SUPERPARAMS_LOG_LIMIT``, or
    :data:`LOG_LIMIT`; 0 keeps everything."""
    text = os.environ.get("SUPERPARAMS_LOG_LIMIT", "").strip().upper().removesuffix("B")
    if not text:
        return LOG_LIMIT
    scale = 2 ** (10 * (" KMGT".find(text[-1]))) if text[-1] in "KMGT" else 1
    try:
        limit = int(float(text.rstrip("KMGT")) * scale)
    except ValueError:
        return LOG_LIMIT  # a typo in the variable must not cost a setting its log
    return limit if limit >= 0 else LOG_LIMIT


_CHUNK = 1 << 20


def _cut_middle(fd: int, path: str, size: int, limit: int) -> None:
    """Keep a log's first and last ``limit / 2`` bytes (to whole lines), with a line in
    between saying how much was cut, rewriting the file in place.

    ``fd`` is write-only and appends (where ``pwrite`` appends, on Linux): the rewrite
    goes through a descriptor of its own, opened from ``path``.
    """
    f = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if os.path.samestat(os.fstat(f), os.fstat(fd)):  # not replaced since it was opened
            _cut(f, size, limit)
    finally:
        os.close(f)


def _cut(f: int, size: int, limit: int) -> None:
    half = limit // 2
    look = min(half, 1 << 16)  # how far to look for the end of a line
    start = os.pread(f, look, half - look)
    head = half - look + start.rfind(b"\n") + 1 if b"\n" in start else half
    end = os.pread(f, look, size - half)
    tail = size - half + end.find(b"\n") + 1 if b"\n" in end else size - half
    note = (
        f"[... {tail - head} bytes cut: a log keeps its first and last {half} bytes "
        "(SUPERPARAMS_LOG_LIMIT) ...]\n"
    ).encode()
    if tail - head <= len(note):
        return
    os.pwrite(f, note, head)
    to = head + len(note)
    at = tail
    while at < size:  # forwards: what is written is always behind what is read
        data = os.pread(f, min(_CHUNK, size - at), at)
        if not data:
            break
        os.pwrite(f, data, to)
        to += len(data)
        at += len(data)
    os.ftruncate(f, to)


class _Tee(io.TextIOBase):
    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()

    def isatty(self) -> bool:
        return self.streams[0].isatty()


@contextlib.contextmanager
def _tee(fd: int) -> Iterator[None]:
    log = open(fd, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Tee(out, log), _Tee(err, log)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
        log.close()


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise SettingTimeout in the main thread after ``seconds``; the driver kills later."""
    if not seconds or not hasattr(signal, "setitimer"):
        yield
        return
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only; the executor enforces the limit
        return

    def expire(signum: int, frame: object) -> None:
        raise SettingTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- what a setting changes in its process -----------------------------------------------


@contextlib.contextmanager
def _restored() -> Iterator[None]:
    """Undo what a setting changed in its process, so the next one starts the same.

    Workers run many settings one after another, and so does ``num_proc=1``: the working
    directory, the environment, ``sys.path``, the umask, signal handlers and resource
    limits a setting leaves behind would otherwise be the next setting's.
    """
    # This runs for every setting: each read is a few hundred nanoseconds, and only what
    # changed is written back.
    cwd = os.getcwd()
    environ = _environ()
    path = sys.path.copy()
    umask = os.umask(0)
    os.umask(umask)
    handlers = [_getsignal(s) for s in _SIGNALS]
    limits = [_getrlimit(r) for r in _RESOURCES]
    try:
        yield
    finally:
        if os.getcwd() != cwd:
            os.chdir(cwd)
        if _environ() != environ:
            _restore_environ(environ)
        if sys.path != path:
            sys.path[:] = path
        os.umask(umask)
        for signum, handler in zip(_SIGNALS, handlers, strict=True):
            if handler is not None and _getsignal(signum) is not handler:
                with contextlib.suppress(OSError, ValueError):  # off the main thread
                    signal.signal(signum, handler)
        for resource_id, limit in zip(_RESOURCES, limits, strict=True):
            if _getrlimit(resource_id) != limit:
                with contextlib.suppress(OSError, ValueError):  # a hard limit only goes down
                    _setrlimit(resource_id, limit)


def _environ() -> dict[Any, Any]:
    # os.environ's own dict of encoded names and values: copied and compared in well
    # under a microsecond, where os.environ.copy() decodes every entry.
    data = getattr(os.environ, "_data", None)
    return dict(data) if isinstance(data, dict) else dict(os.environ)


def _restore_environ(saved: dict[Any, Any]) -> None:
    key = getattr(os.environ, "decodekey", str)
    value = getattr(os.environ, "decodevalue", str)
    os.environ.clear()
    os.environ.update({key(k): value(v) for k, v in saved.items()})


# signal.getsignal maps each handler to an enum, which costs microseconds a call.
_getsignal = getattr(signal, "_signal", signal).getsignal

_SIGNALS = tuple(
    int(s) for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)
)

try:
    import resource as _resource

    _RESOURCES = tuple(
        getattr(_resource, name) for name in dir(_resource) if name.startswith("RLIMIT_")
    )
    _getrlimit, _setrlimit = _resource.getrlimit, _resource.setrlimit
except ImportError:  # pragma: no cover - not on POSIX
    _RESOURCES = ()


# -- processes a setting starts ----------------------------------------------------------

# How long processes left running by a setting get to exit after SIGTERM, before SIGKILL.
LEFTOVER_GRACE = 1.0


@contextlib.contextmanager
def _no_leftovers() -> Iterator[None]:
    """End, with the setting, every process it started and left running.

    While the setting runs this process is a child subreaper (Linux), so an orphaned
    descendant, a double-forked daemon included, is re-parented here rather than to init.
    When the setting ends, the children this process did not have before it are sent
    SIGTERM, then SIGKILL after :data:`LEFTOVER_GRACE`, and reaped; their own children
    come back here as they die, and are ended the same way.
    """
    if not sys.platform.startswith("linux"):
        yield
        return
    if _OWN_PROCESS:  # a local worker: a subreaper for good, with no children of its own
        try:
            yield
        finally:
            _end_children(set())
        return
    before = _children()
    was_subreaper = _subreaper(True)
    try:
        yield
    finally:
        try:
            _end_children(before)
        finally:
            if not was_subreaper:
                _subreaper(False)


# True in a local worker process, which runs settings and nothing else: the children it
# has after a setting are all that setting's.
_OWN_PROCESS = False


def _children() -> set[int]:
    """The pids of this process's children (zombies included), from /proc."""
    found: set[int] = set()
    try:
        for task in os.listdir("/proc/self/task"):
            fd = os.open(f"/proc/self/task/{task}/children", os.O_RDONLY)
            try:
                found.update(map(int, os.read(fd, 1 << 20).split()))
            finally:
                os.close(fd)
    except OSError:  # no /proc, or a kernel without the children file
        pass
    return found


def _end_children(keep: set[int]) -> None:
    deadline = None
    for _ in range(1000):  # a setting that keeps forking cannot keep us here
        left = _children() - keep
        for pid in list(left):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0]:
                    left.discard(pid)  # it had exited: reaped
        if not left:
            return
        now = time.monotonic()
        if deadline is None:
            deadline = now + LEFTOVER_GRACE
        how = signal.SIGTERM if now < deadline else signal.SIGKILL
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, how)
        time.sleep(0.01)


def _subreaper(on: bool) -> bool:
    """Make this process a child subreaper, or stop being one; say whether it was one."""
    libc = _libc()
    if libc is None:  # no prctl: orphans go to init, as without superparams
        return on
    import ctypes

    pr_set_child_subreaper, pr_get_child_subreaper = 36, 37
    state = ctypes.c_int(0)
    libc.prctl(pr_get_child_subreaper, ctypes.byref(state))
    libc.prctl(pr_set_child_subreaper, int(on))
    return bool(state.value)


@functools.cache
def _libc() -> Any:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


# -- the worker process ----------------------------------------------------------------


def _serve(inbox: int, outbox: int, worker: int, n_proc: int, parent: int) -> None:
    """Run tasks from the driver until it says stop or goes away."""
    from multiprocessing.connection import Connection

    # Ctrl-C, and the SIGTERM a scheduler sends every process of a job, are the driver's
    # to handle. A handler, not SIG_IGN: programs that run() starts get the defaults back.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _leave_to_the_driver)
    # Programs that run() starts must not hold the pipes: the driver reads the end of
    # file of the result pipe as this worker's death.
    os.set_inheritable(inbox, False)
    os.set_inheritable(outbox, False)
    _die_with_parent(parent)
    global _OWN_PROCESS
    if sys.platform.startswith("linux") and _libc() is not None:
        _subreaper(True)
        _OWN_PROCESS = True
    tasks, results = Connection(inbox, writable=False), Connection(outbox, readable=False)
    base: Any = None
    queue: deque[Task] = deque()
    while True:
        if queue and not tasks.poll():  # between settings, the driver may have a word
            task = queue.popleft()
            setting = base[task.position]
            setting.__dict__["rank"] = worker
            setting.__dict__["n_proc"] = n_proc
            outcome = run_setting(setting, task, worker, capture="fd")
            try:
                results.send_bytes(_pickle_outcome(outcome))
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
        if kind == "drop":  # the run winds down (Ctrl-C): start none of the queued settings
            results.send_bytes(pickle.dumps(("dropped", len(queue))))
            queue.clear()
            continue
        if kind == "base":
            _, fd, sys_path = message
            sys.path[:] = sys_path  # the driver's, in its order: nothing of this process's
            try:
                base = read_base(fd)
            except Exception as error:  # whatever it is, the run cannot go on
                text = f"a worker could not load the experiment: {_error_line(error)}"
                results.send_bytes(pickle.dumps(WorkerError(text)))
                return
            finally:
                os.close(fd)  # the mapping keeps what it needs; run()'s children get none
            continue
        queue.extend(message[1])


def _leave_to_the_driver(signum: int, frame: object) -> None:
    pass


def _pickle_outcome(outcome: Outcome) -> bytes:
    try:
        return pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:  # any pickling failure is the setting's
        outcome.rows = []
        outcome.failure = Failure(
            "unpicklable",
            f"run() returned results that cannot be sent back: {_error_line(error)}",
        )
        return pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)


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


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this worker when the driver dies, even by kill -9."""
    if not sys.platform.startswith("linux"):
        return
    libc = _libc()
    if libc is not None:
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the driver died before prctl took effect
        os._exit(1)


if __name__ == "__main__":
    # Run the imported module's _serve, so pickled Tasks and Outcomes name
    # superparams.worker rather than __main__.
    from superparams import worker as _module

    _module._serve(*(int(a) for a in sys.argv[1:6]))
