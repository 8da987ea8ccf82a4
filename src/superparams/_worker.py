"""What runs a setting, wherever it runs: one setting, its output, and the outcome it
hands back.

A worker holds the *base* (the space being run) once, and gets each setting as a
position in it: a few bytes per setting, however large the data the space holds. It
runs the setting with stdout and stderr sent to a file of its own, and turns whatever
happens (results, an exception, results that cannot be pickled) into an
:class:`Outcome`. The driver alone writes the store, logs included: no worker opens a
file of the results folder. A local worker's file is in the engine's scratch folder,
where the driver copies from it into ``logs/<id>.log`` while the setting runs
(:mod:`superparams.executors._local`); :func:`run_task`, for engines whose workers are
elsewhere, hands the output back in the outcome.

Output is captured per process (file descriptors 1 and 2), so a process runs one
setting at a time: a local worker takes its settings one after another, the inline
engine runs them one by one in the driver (copying Python's output, not the
descriptors), and the Dask engine refuses workers with more than one thread. Should
two settings still meet in one process, the second fails at once, saying why, rather
than write into the first one's log.

It is no engine's and starts no process: the local engine's worker process, its
program, is :mod:`superparams.executors._local._process`.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol, TextIO

from superparams._environment import captured, details_to_send, forget_sent
from superparams._leftovers import no_leftovers
from superparams._outcome import Cause, Failure, Outcome, Task
from superparams.stopping import StoppedEarly

TRACEBACK_LINES = 30  # how much of a traceback an outcome keeps; the log has all of it
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
    to_dicts: Callable[[], Iterable[Mapping[Any, Any]]] | None
    to_dicts = getattr(result, "to_dicts", None)  # a polars DataFrame
    if callable(to_dicts):
        return [_flatten(r) for r in to_dicts()]
    to_dict: Callable[[str], Iterable[Mapping[Any, Any]]] | None
    to_dict = getattr(result, "to_dict", None)  # a pandas DataFrame
    if callable(to_dict) and hasattr(result, "columns"):
        return [_flatten(r) for r in to_dict("records")]
    if isinstance(result, (list, tuple)) and all(isinstance(r, Mapping) for r in result):
        return [_flatten(r) for r in result]
    return [{"result": _plain(result)}]


def _flatten(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A row with nested dicts flattened to dotted names.

    Raises:
        ValueError: two keys make one column (``a.b`` beside ``a`` holding ``b``).
    """
    out: dict[str, Any] = {}
    if not _flatten_into(row, "", out):
        raise ValueError(_same_column(row))
    return out


def _flatten_into(row: Mapping[Any, Any], prefix: str, out: dict[str, Any]) -> bool:
    """Add ``row``'s values to ``out``; False if a column comes twice."""
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if not _flatten_into(value, f"{name}.", out):
                return False
        elif name in out:
            return False
        else:
            out[name] = _plain(value)
    return True


def _same_column(row: Mapping[Any, Any]) -> str:
    """What a user reads about two keys of ``row`` that make one column, naming both
    as subscripts (``['a.b']`` and ``['a']['b']``)."""
    seen: dict[str, str] = {}

    def walk(row: Mapping[Any, Any], prefix: str, path: str) -> str:
        for key, value in row.items():
            name, here = f"{prefix}{key}", f"{path}[{key!r}]"
            if isinstance(value, Mapping):
                found = walk(value, f"{name}.", here)
                if found:
                    return found
            elif name in seen:
                return (
                    f"run() returned both {seen[name]} and {here}, which make the same "
                    f"column {name!r}; rename one of them"
                )
            else:
                seen[name] = here
        return ""

    return walk(row, "", "")


def _plain(value: Any) -> Any:
    if type(value) not in (int, float, str, bool) and getattr(value, "shape", None) == ():
        item = getattr(value, "item", None)
        if callable(item):
            return item()  # a numpy or torch scalar
    return value


# -- rows reported while a setting runs ------------------------------------------------

# Where the setting running in this process sends each row it reports, and what comes
# back: None to go on (a verdict to stop, for a rule that reads the rows, later). Set
# by run_setting for the setting's time; None outside a run, where report() does nothing.
Reporter = Callable[[dict[str, Any]], "str | None"]
_REPORTER: Reporter | None = None
# One row at a time: a setting's threads may report at once, and a worker's exchange with
# the driver (the row, then the driver's word that it is durable) must not interleave.
_REPORTING = threading.Lock()


def report_row(values: Mapping[str, Any]) -> None:
    """Send one reported row (nested dicts flattened) to where the running setting's
    rows go. Outside a run, nothing happens.

    Raises:
        StoppedEarly: a stop rule of the run ended the setting at this row.
    """
    reporter = _REPORTER
    if reporter is None:
        return
    row = _flatten(values)
    with _REPORTING:
        verdict = reporter(row)
    if verdict is not None:  # a stop rule's name: the setting ends here, completed
        raise StoppedEarly(verdict)
    return


def _yielded(generator: Any) -> Any:
    """Report each dict a generator run() yields; what it returns, as run()'s result."""
    while True:
        try:
            item = next(generator)
        except StopIteration as stop:
            return stop.value
        for row in rows_of(item):
            report_row(row)


# -- running one setting ---------------------------------------------------------------


def run_as_is(setting: Any, report: Reporter) -> Any:
    """Run ``setting`` with nothing around it but where its reported rows go: no capture,
    no time limit, its exception let through (for a debugger, where it was raised); what
    run() returned (a generator run()'s own return value, its items reported)."""
    global _REPORTER
    before = _REPORTER
    _REPORTER = report
    try:
        result = setting.run()
        if isinstance(result, types.GeneratorType):
            result = _yielded(result)
        return result
    finally:
        _REPORTER = before


class SettingTimeout(Exception):  # reads as the cause, like KeyboardInterrupt
    """Raised inside run() when a setting exceeds its time budget."""


class RunStopped(KeyboardInterrupt):
    """Raised in the driver when the run must stop now: a second Ctrl-C, SIGTERM or SIGHUP.

    Only this interrupt leaves a setting ``interrupted`` (to run again). A
    ``KeyboardInterrupt`` that ``run()`` raises itself is that setting's failure, like
    any exception: otherwise every rerun would stop at it again.
    """


def run_setting(
    setting: Any,
    task: Task,
    worker: int,
    *,
    capture: str,
    output: int | Sink,
    report: Reporter | None = None,
) -> Outcome:
    """Run one setting and return its outcome; never raises for the setting's own faults.

    Args:
        capture: ``"fd"`` sends file descriptors 1 and 2 to ``output`` (C extensions and
            child processes included), ``"tee"`` copies Python's output to ``output``
            and the terminal (in-process runs, so a debugger stays usable).
        output: where what the setting prints goes, and the traceback of a failure: a
            file descriptor open for writing (the caller's to close), or, with
            ``"tee"``, a :class:`Sink`.
        report: where each row the setting reports goes (``self.report``, a generator
            run()'s items); without it, reported rows come back in
            :attr:`Outcome.reported`.
    """
    global _REPORTER
    outcome = Outcome(task.id, task.attempt, started=time.time(), worker=worker)
    log = _Log(output)
    before = _REPORTER
    _REPORTER = report if report is not None else _collect(outcome.reported)
    try:
        with (
            _streams(),
            log.capture(capture),
            _time_limit(task.timeout),
            no_leftovers(),
            _restored(),
        ):
            try:
                result = setting.run()
                if isinstance(result, types.GeneratorType):
                    result = _yielded(result)
                outcome.rows = rows_of(result)
            except StoppedEarly as stop:  # a stop rule: completed, with its rows
                outcome.stopped = stop.rule
            except SettingTimeout as error:
                tb = _user_traceback(error)
                log.write(tb)
                outcome.failure = Failure("timeout", f"timed out after {task.timeout:g} s", tb)
            except (Exception, SystemExit, KeyboardInterrupt) as error:  # sys.exit() too
                tb = _user_traceback(error)
                log.write(tb)
                cause: Cause = "interrupted" if isinstance(error, RunStopped) else "raised"
                outcome.failure = Failure(cause, error_line(error), _tail(tb))
    except _Busy as error:  # another setting holds this process's output
        outcome.failure = Failure("raised", str(error))
    finally:
        _REPORTER = before
        outcome.finished = time.time()
    stamp_environment(outcome, type(setting).__module__)
    return outcome


def stamp_environment(outcome: Outcome, module: str) -> None:
    """Name on ``outcome`` the environment this process ran it in (see
    :mod:`superparams._environment`; ``module``: the experiment's): its id, and its
    details if this process has not sent them yet. A failure to tell leaves it unnamed,
    never fails the setting."""
    try:
        found = captured(module)
    except Exception:  # broken metadata of some installed package: no environment
        return
    if found is not None:
        outcome.environment = found[0]
        outcome.environment_details = details_to_send(*found)


def _collect(rows: list[dict[str, Any]]) -> Reporter:
    """A reporter that keeps the rows, to come back with the outcome."""

    def keep(row: dict[str, Any]) -> None:
        rows.append(row)

    return keep


def setting_of(base: Any, task: Task) -> Any:
    """The setting ``task`` names in ``base``, the space an engine was given: at its
    position there, or, for a setting proposed while the run ran, at its position once
    its values are set (``base`` is then the runner's, which knows how: see
    :class:`superparams._store._workdir.Rooted`)."""
    if task.values:
        base = base.pinned(dict(task.values))
    return base[task.position]


def run_task(
    base: Any,
    task: Task,
    rank: int,
    n_proc: int,
    *,
    kept: str | None = None,
    report: Reporter | None = None,
) -> Outcome:
    """Run one task of ``base`` where the store's files are out of reach, output captured.

    What an engine's remote function calls: the setting gets its ``rank`` and ``n_proc``,
    its output goes to a temporary file of this process with no name (file descriptors
    1 and 2, so C extensions and child processes are caught too), cut to
    ``SUPERPARAMS_LOG_LIMIT``, and comes back in :attr:`Outcome.output` for the store to
    write. One setting at a time per process: a second one at once fails, saying so.

    ``kept``: a file to capture into instead, new, this user's alone (in a folder only
    this user may write), where the engine finds what a setting printed when its process
    is killed before it can say (see :func:`printed`); removed once the outcome has it.
    ``report``: where rows the setting reports go as it reports them (an engine that
    streams them); without it they come back in :attr:`Outcome.reported`.
    """
    import tempfile

    from superparams._logsize import cut, log_limit

    global _BASE
    if id(base) != _BASE:  # a run this process has not served: it hears of it anew
        _BASE = id(base)
        forget_sent()
    setting = setting_of(base, task)
    setting.__dict__["rank"] = rank
    setting.__dict__["n_proc"] = n_proc
    # Either is closed by the `with` below; a kept file is removed once read.
    if kept is not None:
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        file: Any = open(os.open(kept, flags, 0o600), "r+b")  # noqa: SIM115
    else:
        file = tempfile.TemporaryFile(prefix="superparams-")  # noqa: SIM115
    with file:
        fd = file.fileno()
        outcome = run_setting(setting, task, rank, capture="fd", output=fd, report=report)
        size = os.fstat(fd).st_size
        if size:  # it printed something
            limit = log_limit()
            if limit and size > limit:
                with contextlib.suppress(OSError):
                    size = cut(fd, size, limit)
            outcome.output = os.pread(fd, size, 0).decode("utf-8", "replace")
    if kept is not None:
        with contextlib.suppress(OSError):
            os.unlink(kept)
    outcome.rows, outcome.reported = _Carried(outcome.rows), _Carried(outcome.reported)
    return outcome


# The base of the run the last task of run_task was of (its id: the base is not kept).
_BASE = 0


def printed(path: str) -> str | None:
    """What a setting killed while it ran printed into ``path`` (:func:`run_task`'s
    ``kept``), its end when it is longer than ``SUPERPARAMS_LOG_LIMIT``; None if there
    is nothing. The file is removed."""
    from superparams._logsize import log_limit

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        limit = log_limit()
        start = max(0, size - limit) if limit else 0
        text = os.pread(fd, size - start, start).decode("utf-8", "replace")
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
    return text or None


class _Carried(list):  # type: ignore[type-arg]
    """Rows on their way to the driver, pickled apart from their outcome: loaded there by
    whatever unpickles the outcome (an engine's client, Slurm's driver), rows that cannot
    be (a class only workers define, a ``__reduce__`` that raises) become
    :class:`Unreadable`, which fails their setting alone (see :func:`unreadable`)."""

    def __reduce__(self) -> tuple[Any, ...]:
        try:  # classes of the experiment's module travel by value, as the base did
            import cloudpickle

            data: bytes = cloudpickle.dumps(list(self))
        except ImportError:
            data = pickle.dumps(list(self), protocol=pickle.HIGHEST_PROTOCOL)
        return (read_back, (data,))


class Unreadable(list):  # type: ignore[type-arg]
    """Rows that could not be loaded where their outcome was: none, and why."""

    def __init__(self, why: str) -> None:
        super().__init__()
        self.why = why


def read_back(data: bytes) -> Any:
    """What a worker pickled apart (rows, a row), loaded; or :class:`Unreadable`, saying
    why it could not be: a setting's failure, never the run's."""
    try:
        return pickle.loads(data)
    except (Exception, SystemExit) as error:
        return Unreadable(f"could not be read back: {error_line(error)}")


def unreadable(outcome: Outcome) -> Failure | None:
    """The failure of an outcome whose rows (returned or reported) could not be loaded
    where it was received, if they could not."""
    for rows, what in (
        (outcome.rows, "run() returned results that"),
        (outcome.reported, "a row it reported"),
    ):
        if isinstance(rows, Unreadable):
            return Failure("unpicklable", f"{what} {rows.why}")
    return None


_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def _user_traceback(error: BaseException) -> str:
    """The traceback from the user's run() on: superparams' own frames left out."""
    frames = traceback.extract_tb(error.__traceback__)
    keep = [f for f in frames if not os.path.abspath(f.filename).startswith(_PACKAGE + os.sep)]
    shown = traceback.TracebackException.from_exception(error)
    shown.stack = traceback.StackSummary.from_list(keep or frames)
    return "".join(shown.format())


def error_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _tail(tb: str) -> str:
    return "\n".join(tb.rstrip().splitlines()[-TRACEBACK_LINES:])


# This process's own stdout and stderr, kept aside once while settings borrow fds 1 and 2.
_SAVED_FDS: tuple[int, int] | None = None
# Held while a setting has fds 1 and 2: they are the process's, so two settings running
# at once (threads) would write into each other's output. Local workers and the inline
# engine run one setting at a time; the Dask engine refuses threaded workers; this is
# the guard behind them.
_FDS_TAKEN = threading.Lock()


class _Busy(Exception):
    """Another setting holds this process's file descriptors 1 and 2."""


class Sink(Protocol):
    """Where a setting's output may go besides a file descriptor: a setting's log in the
    results folder, written by the driver (see :class:`superparams._store._logfile.SettingLog`)."""

    def write(self, data: bytes, /) -> None: ...


class _Log:
    """Where one setting's output goes: a descriptor that its caller opened, or (copied
    from Python's streams only) a :class:`Sink`."""

    def __init__(self, output: int | Sink) -> None:
        self.output = output

    def write(self, text: str) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        data = text.encode("utf-8", "replace")
        if isinstance(self.output, int):
            with contextlib.suppress(OSError):
                os.write(self.output, data)
        else:
            self.output.write(data)

    @contextlib.contextmanager
    def capture(self, how: str) -> Iterator[None]:
        if how == "fd":
            assert isinstance(self.output, int), "fd capture needs a file descriptor"
            with self._redirect(self.output):
                yield
        else:
            with _tee(self.output):
                yield

    @contextlib.contextmanager
    def _redirect(self, fd: int) -> Iterator[None]:
        global _SAVED_FDS  # once per process, on first use
        if not _FDS_TAKEN.acquire(blocking=False):
            msg = (
                "another setting runs in this process and holds its output (file "
                "descriptors 1 and 2): run one setting at a time per process (Dask: "
                "`dask worker --nthreads 1`)"
            )
            raise _Busy(msg)
        try:
            if _SAVED_FDS is None:
                _SAVED_FDS = os.dup(1), os.dup(2)
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os.dup2(_SAVED_FDS[0], 1)
                os.dup2(_SAVED_FDS[1], 2)
        finally:
            _FDS_TAKEN.release()


class _Tee(io.TextIOBase):
    def __init__(self, *streams: TextIO | io.TextIOBase) -> None:
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


class _Text(io.TextIOBase):
    """Text written to a :class:`Sink`, as it comes."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def write(self, text: str) -> int:
        self.sink.write(text.encode("utf-8", "replace"))
        return len(text)


@contextlib.contextmanager
def _tee(output: int | Sink) -> Iterator[None]:
    log: io.TextIOBase
    if isinstance(output, int):
        log = open(output, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    else:
        log = _Text(output)
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

    Workers run many settings one after another, and so does the inline engine: the working
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


@contextlib.contextmanager
def _streams() -> Iterator[None]:
    """Give ``sys.stdout`` and ``sys.stderr`` back as they were, open, once a setting ends.

    A setting that closes them (or replaces them and leaves its own) would otherwise fail
    the next setting of its process at its first ``print``. Outside the capture of file
    descriptors 1 and 2, so a stream made again writes where the process's own did.
    """
    saved = sys.stdout, sys.stderr
    try:
        yield
    finally:
        for name, fd, stream in (("stdout", 1, saved[0]), ("stderr", 2, saved[1])):
            if getattr(sys, name) is not stream or _closed(stream):
                setattr(sys, name, _reopened(stream, fd) if _closed(stream) else stream)


def _closed(stream: TextIO | None) -> bool:
    return stream is not None and bool(getattr(stream, "closed", False))


def _reopened(stream: TextIO, fd: int) -> TextIO:
    """A text stream like the closed ``stream``, on file descriptor ``fd`` (left open when
    the stream is closed again)."""
    return open(
        fd,
        "w",
        buffering=1 if getattr(stream, "line_buffering", False) else -1,
        encoding=getattr(stream, "encoding", None) or "utf-8",
        errors=getattr(stream, "errors", None) or "strict",
        closefd=False,
    )


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
