"""The local engine's driver: it starts the worker processes (:mod:`._process`), hands
them the base and the tasks, streams what they report and print into the store, and
replaces a worker that dies; the engine's whole story is told in
:mod:`superparams.executors._local`.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import IO, TYPE_CHECKING, Any, ClassVar

from superparams._leftovers import children, subreaper
from superparams._outcome import Cause, Outcome, Started, Task
from superparams._worker import Unreadable, read_back
from superparams.errors import ExperimentError, WorkerError
from superparams.executors._base import Executor
from superparams.executors._local._process import output_path, write_base

if TYPE_CHECKING:
    from superparams._space import Space
    from superparams._store._logfile import SettingLog

# A setting past its timeout gets this long to unwind from the SIGALRM raised inside it
# before its worker is killed.
TIMEOUT_GRACE = 5.0

# How often what running settings print is copied into their logs in the results folder.
COPY_INTERVAL = 0.2


# What a worker process runs. Not `python -m superparams.executors._local._process`,
# which puts the working directory first on sys.path before anything is imported (a
# colorsys.py lying there would be imported in place of the standard library's): the `''`
# that -c puts there instead goes before any import, and the driver then sends its own
# sys.path. The word after the code names the process in `ps`; sys.argv is then what -m
# would have made it.
_WORKER_MAIN = (
    "import sys\n"
    "if sys.path[:1] == ['']: del sys.path[0]\n"  # absent under PYTHONSAFEPATH
    "from superparams.executors._local import _process as worker\n"
    "sys.argv[:] = [worker.__file__, *sys.argv[2:]]\n"
    "worker.serve(*(int(a) for a in sys.argv[1:6]), sys.argv[6])\n"
)
#: The word that names a worker process in ``ps`` (its command line holds it).
WORKER_NAME = "superparams.executors._local._process"


class _Worker:
    """One worker process and what it has been sent."""

    def __init__(
        self, slot: int, n_proc: int, env: dict[str, str], base_fd: int, scratch: str
    ) -> None:
        self.slot = slot
        task_r, task_w = os.pipe()
        out_r, out_w = os.pipe()
        command = [
            sys.executable,
            "-c",
            _WORKER_MAIN,
            WORKER_NAME,
            str(task_r),
            str(out_w),
            str(slot),
            str(n_proc),
            str(os.getpid()),
            scratch,
        ]
        self.process = subprocess.Popen(
            command,
            pass_fds=(task_r, out_w, base_fd),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Out of the terminal's process group: Ctrl-C is the driver's to handle, even
            # while a worker is still starting. Workers still die with the driver.
            start_new_session=True,
        )
        os.close(task_r)
        os.close(out_w)
        self.tasks = Connection(task_w, readable=False)
        self.results = Connection(out_r, writable=False)
        # Readable once the process has exited, whatever its children still hold: a child
        # forked by run() keeps the result pipe open after the worker dies.
        self.sentinel: int | None = None
        with contextlib.suppress(AttributeError, OSError):  # pidfds: Linux 5.3 and later
            self.sentinel = os.pidfd_open(self.process.pid)
        # Sent and not yet answered, in order; the head is running since `since`.
        self.inflight: deque[Task] = deque()
        self.unsent: list[Task] = []  # the tail of inflight, sent together by flush()
        self.since = 0.0
        self.killed_for_timeout = False
        self.dropping = False  # asked to drop its queue; the answer is not in yet
        self.ran = 0  # settings it finished
        # The head setting's log, and its output file as far as it was copied there.
        self.log: SettingLog | None = None
        self.output: int | None = None
        self.copied = 0
        # Rows the head setting reported, kept for its outcome when the executor has no
        # reports to write them to (driven by hand, not by the runner).
        self.reported: list[dict[str, Any]] = []
        # A row the head setting reported that could not be loaded here, which fails it.
        self.unreadable: Unreadable | None = None

    def send(self, message: tuple[Any, ...]) -> None:
        self.tasks.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def kill(self) -> None:
        """Kill the worker and what its settings started in its session (its group,
        which may outlive the worker itself)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def dead(self) -> bool:
        return self.process.poll() is not None

    def close(self) -> None:
        for conn in (self.tasks, self.results):
            with contextlib.suppress(OSError):
                conn.close()
        if self.sentinel is not None:
            os.close(self.sentinel)
            self.sentinel = None


class LocalExecutor(Executor):
    """``num_proc`` worker processes; ``gpus`` are handed out round-robin by slot.

    With ``isolate=True`` each setting runs in a worker process of its own, started for
    it and stopped after it: for code that leaves its process in a state no setting
    after it should inherit (threads, CUDA contexts, monkeypatched modules).
    """

    name: ClassVar[str] = "local"

    def __init__(
        self,
        num_proc: int = 2,
        *,
        gpus: Sequence[int | str] | None = None,
        depth: int = 2,
        isolate: bool = False,
    ) -> None:
        super().__init__(num_proc, gpus=gpus)
        self.depth = depth  # tasks queued per worker, so a fast setting never waits for IPC
        self.isolate = isolate
        self._retired: list[_Worker] = []  # stopped after their setting, not yet reaped
        self._workers: list[_Worker] = []
        self._notify: Callable[[Started], SettingLog | None] = lambda started: None
        self._scratch = ""  # a folder of this run's own, for what settings print
        self._scratch_lock: int | None = None  # held while the folder is in use
        self._copied_at = 0.0
        self._base_message: tuple[Any, ...] = ()
        self._base_file: IO[bytes] | None = None  # kept open for workers started later
        self._recent: deque[float] = deque(maxlen=16)
        self._dropped = False  # the run winds down: nothing more starts
        self._acks: list[tuple[_Worker, str | None]] = []  # rows written, not yet synced
        # This process's own children before the run, and whether it was a subreaper.
        self._own: set[int] | None = None
        self._was_subreaper = False

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, base: Space[Any], notify: Callable[[Started], SettingLog | None]) -> None:
        self._notify = notify
        self._base_file = tempfile.TemporaryFile(prefix="superparams-base-")  # noqa: SIM115
        try:
            write_base(base, self._base_file)
        except Exception as error:
            self._close_base()
            name = base.experiment_class.__name__
            msg = (
                f"{name} cannot be sent to worker processes: {type(error).__name__}: {error}. "
                "A field holds something that cannot be pickled (an open file, a lock, a "
                "connection, a generator): build it inside run() instead, or run in this "
                "process with engine='inline'"
            )
            raise ExperimentError(msg) from error
        # The driver's path, entry for entry: '' (a REPL's, a notebook's) is the
        # driver's working directory, which is the worker's too, but made absolute.
        sys_path = [os.path.abspath(p) if p else os.getcwd() for p in sys.path]
        self._base_message = ("base", self._base_file.fileno(), sys_path)
        # Workers write what settings print here, never into the results folder; only
        # this user may enter it (0700), and it goes with the executor.
        self._scratch, self._scratch_lock = _make_scratch()
        if sys.platform.startswith("linux"):  # the subreaper of last resort (see _end_orphans)
            self._own = children()
            self._was_subreaper = subreaper(True)
        self._workers = [self._spawn(slot) for slot in range(self.num_proc)]

    def _spawn(self, slot: int) -> _Worker:
        env = dict(os.environ)
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(self.gpus[slot % len(self.gpus)])
        assert self._base_file is not None  # started
        worker = _Worker(slot, self.num_proc, env, self._base_file.fileno(), self._scratch)
        worker.send(self._base_message)
        return worker

    def _end_orphans(self) -> None:
        """Kill what settings started and a killed worker left behind.

        A worker's keeper ends what its settings start, unless it is itself killed (a
        timeout, a second Ctrl-C: its whole process group at once); then what escaped
        its group (a setsid daemon) comes here, to this process, a subreaper for the run.
        Killed: the children this process did not have before the run, that are not its
        workers and not in its own session (no setting's process is: every worker starts
        a session of its own), and in turn their children, which come here as they die.
        """
        if self._own is None:
            return
        session = os.getsid(0)
        for _ in range(1000):  # a process that keeps forking cannot keep us here
            workers = {w.process.pid for w in (*self._workers, *self._retired)}
            left = []
            for pid in children() - self._own - workers:
                with contextlib.suppress(OSError):
                    if os.getsid(pid) != session:
                        os.kill(pid, signal.SIGKILL)
                        left.append(pid)
            if not left:
                return
            for pid in left:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)

    def _close_base(self) -> None:
        """Let go of the base, and of the scratch folder with what is left in it."""
        if self._base_file is not None:
            self._base_file.close()
            self._base_file = None
        if self._scratch:
            import shutil

            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = ""
        if self._scratch_lock is not None:
            os.close(self._scratch_lock)
            self._scratch_lock = None
        if self._own is not None:  # the run is over: orphans go where they went before
            self._end_orphans()
            if not self._was_subreaper:
                subreaper(False)
            self._own = None

    def shutdown(self) -> None:
        for worker in self._workers:
            with contextlib.suppress(OSError):
                worker.send(("stop",))
        deadline = time.monotonic() + 2.0
        self._workers += self._retired
        self._retired = []
        for worker in self._workers:
            try:
                worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.process.wait()
            if worker.inflight:
                self._finish(worker)
            worker.close()
        self._workers = []
        self._close_base()

    def drop_queued(self) -> None:
        self._dropped = True
        for worker in self._workers:
            for _ in worker.unsent:
                worker.inflight.pop()
            worker.unsent = []
            if len(worker.inflight) > 1:  # queued behind the one running: ask for them back
                with contextlib.suppress(OSError):  # it died: wait() finds out
                    worker.send(("drop",))
                    worker.dropping = True

    def cancel(self) -> None:
        self._workers += self._retired
        self._retired = []
        for worker in self._workers:
            worker.kill()
        for worker in self._workers:
            worker.process.wait()
            if worker.inflight:  # what it printed stays in its log
                self._finish(worker)
            worker.inflight.clear()
            worker.close()
        self._workers = []
        self._close_base()

    # -- tasks ---------------------------------------------------------------------------

    @property
    def free(self) -> int:
        # A worker is topped up once half its queue is done, so tasks go in batches.
        depth = self._depth()
        return sum(depth - len(w.inflight) for w in self._workers if len(w.inflight) <= depth // 2)

    @property
    def busy(self) -> int:
        return sum(len(w.inflight) for w in self._workers)

    def _depth(self) -> int:
        # Queue ahead only for quick settings: a slow one gains nothing from it, and a
        # queued setting would start after Ctrl-C asked the run to wind down. The
        # quicker they are, the more are queued, and sent in one message.
        if not self._recent or self.isolate:
            return 1
        median = sorted(self._recent)[len(self._recent) // 2]
        if median < 0.001:
            return self.depth * 32
        if median < 0.01:
            return self.depth * 8
        return self.depth if median < 0.5 else 1

    def submit(self, task: Task) -> None:
        depth = self._depth()
        worker = min(self._workers, key=lambda w: (len(w.inflight) > depth // 2, len(w.inflight)))
        if self.isolate and worker.ran:  # its one setting is done: a new process for this one
            worker = self._renew(worker)
        worker.inflight.append(task)
        worker.unsent.append(task)

    def _flush(self) -> None:
        for worker in self._workers:
            if not worker.unsent:
                continue
            idle = len(worker.inflight) == len(worker.unsent)
            tasks, worker.unsent = worker.unsent, []
            try:
                worker.send(("run", tasks))
            except OSError:
                continue  # it died: wait() finds out, blames its running setting, resends
            if idle:
                self._began(worker)

    def _began(self, worker: _Worker) -> None:
        worker.since = time.time()
        worker.log = self._notify(Started(worker.inflight[0], worker.slot, worker.since))

    # -- what settings print -----------------------------------------------------------

    def _copy_output(self, worker: _Worker) -> None:
        """Copy what the head setting printed since the last look into its log.

        Its worker writes it to a file of the scratch folder (named by the task, so no
        other setting's), removed by the worker if it stays empty; the kernel copies.
        """
        if worker.log is None:
            return
        if worker.output is None:
            path = output_path(self._scratch, worker.inflight[0])
            try:
                worker.output = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                return  # not begun yet, or it printed nothing
        size = os.fstat(worker.output).st_size
        if size > worker.copied:
            worker.copied += worker.log.copy(worker.output, worker.copied, size - worker.copied)

    def _finish(self, worker: _Worker, note: str = "") -> None:
        """The head setting is over: the rest of its output (and ``note``, on how it
        ended) into its log, and its output file removed."""
        task = worker.inflight[0]
        path = output_path(self._scratch, task)
        if worker.log is None and (note or os.path.exists(path)):
            # begun while the run wound down, when starts are no longer reported
            worker.log = self._notify(Started(task, worker.slot, worker.since))
        self._copy_output(worker)
        if worker.log is not None and note:
            worker.log.write(f"\n[superparams] {note}\n".encode())
        if worker.output is not None:
            os.close(worker.output)
            with contextlib.suppress(OSError):
                os.unlink(path)
        worker.log, worker.output, worker.copied = None, None, 0

    def _copy_all(self) -> None:
        now = time.monotonic()
        if now - self._copied_at >= COPY_INTERVAL:
            self._copied_at = now
            for worker in self._workers:
                if worker.inflight:
                    self._copy_output(worker)

    def wait(self, timeout: float) -> list[Outcome]:
        if not self._workers:
            return []
        self._flush()
        outcomes: list[Outcome] = []
        by_conn: dict[Any, _Worker] = {w.results: w for w in self._workers}
        sentinels = {w.sentinel: w for w in self._workers if w.sentinel is not None}
        dead: list[_Worker] = []
        if any(w.log is not None for w in self._workers):  # copy what they print in time
            timeout = min(timeout, COPY_INTERVAL)
        for ready in wait([*by_conn, *sentinels], timeout=self._until_deadline(timeout)):
            if isinstance(ready, int):  # a pidfd: the pipes are Connections
                dead.append(sentinels[ready])
            elif not self._receive(by_conn[ready], outcomes):
                dead.append(by_conn[ready])
        # Without pidfds, a death behind a pipe that a child holds is seen here.
        dead += [w for w in self._workers if w.sentinel is None and w not in dead and w.dead()]
        for worker in dead:
            if worker in self._workers:  # its pipe and its sentinel may both have said so
                self._drain(worker, outcomes)
                outcomes.extend(self._replace(worker))
        if self._acks:  # one fsync for the rows that came together, then each goes on
            self._acknowledge()
        outcomes.extend(self._enforce_timeouts())
        self._copy_all()
        return outcomes

    def _renew(self, worker: _Worker) -> _Worker:
        """Stop a worker that finished its setting, and start another in its slot."""
        for done in [w for w in self._retired if w.dead()]:  # reaped
            done.close()
            self._retired.remove(done)
        with contextlib.suppress(OSError):
            worker.send(("stop",))
        self._retired.append(worker)
        fresh = self._spawn(worker.slot)
        self._workers[self._workers.index(worker)] = fresh
        return fresh

    def _acknowledge(self) -> None:
        """Make the rows received durable, then tell each setting that reported one."""
        acks, self._acks = self._acks, []
        if self.reports is not None:
            self.reports.commit()
        for worker, verdict in acks:
            with contextlib.suppress(OSError):  # it died: wait() finds out
                worker.send(("ack", verdict))

    def _receive(self, worker: _Worker, outcomes: list[Outcome]) -> bool:
        """Take one message from a worker; False if its pipe says it is gone."""
        try:
            message = pickle.loads(worker.results.recv_bytes())
        except (EOFError, OSError):
            return False
        if isinstance(message, WorkerError):
            self.cancel()
            raise message
        if message[0] == "report":  # ("report", row pickled): the head setting reported
            row = read_back(message[1])
            verdict = None
            if isinstance(row, Unreadable):  # not stored: the setting fails when it ends
                worker.unreadable = worker.unreadable or row
            elif self.reports is None:
                worker.reported.append(row)
            else:
                verdict = self.reports.add(worker.inflight[0], row)
            self._acks.append((worker, verdict))
            return True
        if message[0] == "dropped":  # ("dropped", n): the last n queued never ran
            for _ in range(message[1]):
                worker.inflight.pop()
            worker.dropping = False
            return True
        outcome: Outcome = message[1]  # ("outcome", outcome, printed, rows pickled)
        outcome.rows = read_back(message[3])  # Unreadable fails it (see worker.unreadable)
        if worker.reported:
            outcome.reported, worker.reported = worker.reported, []
        if worker.unreadable is not None:
            outcome.reported, worker.unreadable = worker.unreadable, None
        if message[2] or worker.output is not None:  # it printed: the rest into its log
            self._finish(worker)
        else:
            worker.log = None
        worker.inflight.popleft()
        worker.ran += 1
        self._recent.append(outcome.finished - outcome.started)
        outcomes.append(outcome)
        if worker.inflight:
            if worker.dropping:  # the next is dropped, unless it started already
                worker.since = time.time()
            else:
                self._began(worker)
        return True

    def _drain(self, worker: _Worker, outcomes: list[Outcome]) -> None:
        """Take what a dead worker sent before it died, never waiting for more."""
        with contextlib.suppress(OSError):
            os.set_blocking(worker.results.fileno(), False)
            while worker.results.poll(0) and self._receive(worker, outcomes):
                pass

    def _until_deadline(self, timeout: float) -> float:
        deadlines = [
            w.since + w.inflight[0].timeout + TIMEOUT_GRACE - time.time()
            for w in self._workers
            if w.inflight and w.inflight[0].timeout
        ]
        return max(0.0, min([timeout, *deadlines]))

    def _enforce_timeouts(self) -> list[Outcome]:
        outcomes: list[Outcome] = []
        now = time.time()
        for worker in list(self._workers):
            head = worker.inflight[0] if worker.inflight else None
            if head and head.timeout and now > worker.since + head.timeout + TIMEOUT_GRACE:
                worker.killed_for_timeout = True
                worker.kill()
                outcomes.extend(self._replace(worker))
        return outcomes

    def _replace(self, worker: _Worker) -> list[Outcome]:
        """A worker died: fail the setting it ran, restart its slot, resend the rest."""
        code = worker.process.wait()
        worker.kill()  # what it started, in its group
        worker.close()
        self._end_orphans()  # and what left its group
        lost = list(worker.inflight)
        outcomes = []
        if lost:
            task = lost.pop(0)
            if worker.killed_for_timeout:
                cause: Cause = "timeout"
                error = f"timed out after {task.timeout:g} s; worker killed"
            else:
                cause, error = "killed", _death(code)
            self._finish(worker, error)
            outcomes.append(
                Outcome.failed(task, cause, error, worker=worker.slot, since=worker.since)
            )
        fresh = self._spawn(worker.slot)
        self._workers[self._workers.index(worker)] = fresh
        if not self._dropped:  # winding down, the rest of its queue is dropped
            fresh.inflight.extend(lost)
            fresh.unsent.extend(lost)
        self._flush()
        return outcomes


def _death(code: int) -> str:
    """How a worker's exit code reads to a person."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = ""
        if -code == signal.SIGKILL:
            hint = " (the kernel's out-of-memory killer sends this when memory runs out)"
        elif -code == signal.SIGSEGV:
            hint = " (a segmentation fault, in a C extension most likely)"
        return f"worker process killed by {name}{hint}"
    return f"worker process exited with code {code} while running this setting"


# The scratch folders of runs, in TMPDIR: superparams-run-<random>/, each with a lock
# file its run holds.
_SCRATCH = "superparams-run-"
_NEW = "superparams-new-"  # one being made


def _make_scratch() -> tuple[str, int]:
    """A scratch folder of this run's own (mode 0700) and the lock that marks it in use,
    held until the run closes it or dies; folders whose run died (kill -9 gives it no
    time to clean up) are removed first.

    The folder gets its public name only once its lock is held, so no other run can
    take it for one left behind.
    """
    import fcntl

    _sweep_scratch()
    made = tempfile.mkdtemp(prefix=_NEW)
    lock = os.open(f"{made}/.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    folder, name = os.path.split(made)
    path = os.path.join(folder, _SCRATCH + name.removeprefix(_NEW))
    os.rename(made, path)
    return path, lock


def _sweep_scratch() -> None:
    """Remove this user's scratch folders that no run holds any more."""
    import fcntl
    import shutil
    import stat

    folder = tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(folder) if n.startswith(_SCRATCH)]
    except OSError:
        return
    for name in names:
        path = os.path.join(folder, name)
        try:
            found = os.lstat(path)
            if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid():
                continue  # not a folder of ours: never touched
            lock = os.open(f"{path}/.lock", os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # its run is alive
        else:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(lock)
