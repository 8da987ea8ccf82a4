"""The writer of a results folder: the one process that appends to its record.

:class:`Store` takes the folder's lock (:meth:`Store.open`), cuts a torn tail, upgrades
a folder of an older format (see :mod:`superparams._store._layout`), brings
results.parquet up to date (:mod:`superparams._store._compact`), and then writes one
line when a setting starts, the rows it reports, and its outcome, each setting's log
beside it; :meth:`Store.commit` makes what was written durable. It reads the folder as
every reader does (:class:`~superparams._store._read.Reader`), and also knows the run
in progress it is. A process forked from the run closes its copies of the lock and
the record, so it never holds the folder.
"""

from __future__ import annotations

import contextlib
import os
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from superparams._store._compact import Compactor
from superparams._store._environments import EVENT as ENVIRONMENT
from superparams._store._environments import read_environments, write_environments
from superparams._store._layout import (
    CLASS,
    ENVIRONMENTS,
    EXPERIMENT,
    FILES,
    FORMAT,
    GITIGNORE,
    GITIGNORE_TEXT,
    HISTORY,
    LOCK,
    LOGS,
    META,
    RECORD,
    RESULTS,
    SEARCH,
    STUDY,
    WORK,
    atomic_write,
    experiment_json,
    format_of,
    opener,
    refuse_links,
    remove_leftovers,
)
from superparams._store._location import make_folders
from superparams._store._lock import read_holder, try_lock, write_holder
from superparams._store._logfile import SettingLog
from superparams._store._record import cut_torn_tail, dumps
from superparams._store._study import append_sampler_state, write_search
from superparams.errors import StoreError, StoreLockedError, StoreWriteError

if TYPE_CHECKING:
    import polars as pl

    from superparams._code import CodeVersion
    from superparams._outcome import Outcome


class Store(Compactor):
    """The results folder of one experiment class.

    Reading needs no lock; writing (:meth:`open`) takes the folder's lock, so a second
    run of the same experiment gets :class:`StoreLockedError` instead of corrupting it.
    """

    def __init__(
        self,
        folder: Path | str,
        fields: Iterable[str] = (),
        defaults: Mapping[str, tuple[str, Any]] | None = None,
        identity: Mapping[str, Any] | None = None,
        types: Mapping[str, str] | None = None,
        root: Path | str | None = None,
    ) -> None:
        self._lock_file: TextIO | None = None
        self._logs_fd: int | None = None  # logs/, held open while the run writes there
        self._record: BinaryIO | None = None
        self._unsynced = 0
        self._synced_at = 0.0
        self._stamp: dict[str, Any] = {}  # the run's code version, on every line it writes
        self.restored = 0  # outcomes written to the record again by open(): see restore
        self._broken: StoreWriteError | None = None  # a write failed: nothing more is written
        self._stopped = False  # a signal stopped bringing results.parquet up to date
        self._setting_logs: dict[str, SettingLog] = {}  # of the settings running now
        # The environments stored here, by id (read when the run opens the folder).
        self._environments: dict[str, dict[str, Any]] | None = None
        # What close() wrote to results.parquet, so the run's own table is not read back.
        self.written: pl.DataFrame | None = None
        super().__init__(folder, fields, defaults, identity, types, root)  # trusts it
        self._work = f"{self.folder / WORK}{os.sep}"  # settings' own folders: see _workdir

    # -- the lock and the writer -----------------------------------------------------------

    def open(self) -> Store:
        """Take the folder for writing: lock it, cut a torn tail, bring results up to date.

        Raises:
            StoreConflictError: the folder holds another experiment's results.
            StoreLockedError: another run is writing to it.
            StoreWriteError: the folder cannot be written (no space left, read-only).
        """
        try:
            return self._open()
        except StoreError:
            raise
        except OSError as error:
            raise self._cannot_write(error, self.folder) from None

    def _open(self) -> Store:
        self._stopped = False
        self._environments = None  # read again: the folder may have changed meanwhile
        self.trust()  # again, just before anything is written
        self.check()
        make_folders(self.folder / LOGS)
        lock = open(self.folder / LOCK, "a+", opener=opener)  # noqa: SIM115  # until close()
        if not try_lock(lock):
            holder = read_holder(lock)
            lock.close()
            msg = (
                f"another run is writing to {self.folder} ({holder}); wait for it to "
                "finish or stop it, then run again"
            )
            raise StoreLockedError(msg) from None
        try:  # again, holding the lock: another experiment's run may have just claimed it
            recorded = self.check()
            # none yet (or a folder from before it existed), of an older format, or one
            # whose list of files is older than this code's (a file added since)
            if self.identity is not None and (
                recorded is None or format_of(recorded) < FORMAT or recorded.get("files") != FILES
            ):
                text = experiment_json(self.identity if recorded is None else recorded)
                atomic_write(self.folder / EXPERIMENT, lambda tmp: tmp.write(text))
            if not (self.folder / GITIGNORE).exists():  # a folder from before has none yet
                ignore = GITIGNORE_TEXT.encode()
                atomic_write(self.folder / GITIGNORE, lambda tmp: tmp.write(ignore))
            refuse_links(self.folder, logs=True)  # holding the lock: no run writes now
        except BaseException:
            lock.close()
            raise
        write_holder(lock)
        self._lock_file = lock
        _HELD.add(self)
        try:
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            self._logs_fd = os.open(self.folder / LOGS, flags)  # checked, held from now on
            remove_leftovers(self.folder)  # of a run killed while it wrote (kill -9)
            cut_torn_tail(self.record_path)
            self.compact()
            self._record = open(self.record_path, "ab", opener=opener)  # noqa: SIM115
        except BaseException:
            self.close()  # never keep the folder locked for a run that cannot start
            raise
        return self

    def close(self) -> None:
        """Sync the record, write results.parquet, and release the lock.

        After a write failed, only releases: the record keeps what was synced before.

        Raises:
            StoreWriteError: results.parquet could not be written (the record is whole).
        """
        logs, self._setting_logs = self._setting_logs, {}
        for log in logs.values():  # settings that never reported: what they printed stays
            log.close()
        try:
            if self._record is not None and self._broken is not None:
                with contextlib.suppress(OSError):  # the same failure, again
                    self._record.close()
                self._record = None
            elif self._record is not None:
                self.commit()
                self._record.close()
                self._record = None
                # None: clashes() brought it up to date, or a signal stopped it there
                written = None if self._stopped else self.compact()
                if written is not None:
                    self.written = written
        except StoreError:
            raise
        except OSError as error:
            raise self._cannot_write(error, self.results_path) from None
        finally:  # even if writing results.parquet failed: the record has everything
            if self._logs_fd is not None:
                os.close(self._logs_fd)
                self._logs_fd = None
            if self._lock_file is not None:
                self._lock_file.close()  # releases the flock
                self._lock_file = None
            _HELD.discard(self)

    def _let_go(self) -> None:
        """In a process forked from the run: hold neither its lock nor its record.

        The flock belongs to the open file, which a fork shares: a child that kept it
        (a daemon, a data loader) would hold the folder after the run is gone. Closing
        the child's descriptors leaves the run's lock as it is.
        """
        for file in (self._record, self._lock_file):
            if file is not None:
                with contextlib.suppress(OSError):
                    file.close()  # flushed before the fork: nothing is written twice
        self._record = self._lock_file = None
        if self._logs_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._logs_fd)
            self._logs_fd = None

    def __enter__(self) -> Store:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stamp(self, code: CodeVersion) -> None:
        """Mark every line this run writes with the version of the code that runs."""
        fields = {
            "code_version": code.version,
            "git_commit": code.git_commit,
            "git_dirty": code.git_dirty,
        }
        self._stamp = fields

    def started(
        self,
        setting_id: str,
        attempt: int,
        worker: int,
        described: Mapping[str, Any],
        reported: list[list[Any]] | None = None,
        *,
        in_process: bool = False,
    ) -> SettingLog:
        """Note that a setting started (not synced: a lost line only loses 'interrupted');
        its log, for the engine to write what it prints (opened at the first byte).

        The line carries the setting's parameters (``described``, from :func:`describe`),
        so a setting interrupted by a crash shows in the results with them, and the rows
        its earlier attempts reported (``[attempt, row]`` pairs), which stay its rows.
        ``in_process``: it runs in this process (engine inline), so if it ends with no
        outcome and no :meth:`interrupted` line, the process died with it, and it reads
        as failed (:data:`~superparams._outcome.DIED_IN_PROCESS`), not interrupted.
        """
        line: dict[str, Any] = {
            "event": "started",
            "id": setting_id,
            "attempt": attempt,
            "worker": worker,
        }
        if reported:
            line["reported"] = reported
        if in_process:
            line["in_process"] = True
        record = self._write(line, described)
        try:
            record.flush()  # so `experiment status` sees it running at once
        except OSError as error:
            raise self._cannot_write(error, self.record_path) from None
        earlier = self._setting_logs.get(setting_id)
        if earlier is not None:  # an attempt that never reported (interrupted)
            earlier.close()
        log = self._setting_logs[setting_id] = SettingLog(
            self.log_path(setting_id), attempt, self._logs_fd
        )
        return log

    def interrupted(self, setting_id: str, attempt: int) -> None:
        """Note that a setting started in this process ends with no outcome while the
        run lives on (Ctrl-C, an exception let through for the debugger): it stays
        interrupted, to run again, rather than failed as one whose process died."""
        self._write({"event": "interrupted", "id": setting_id, "attempt": attempt}, {})
        self._unsynced += 1

    def queued(
        self, setting_id: str, attempt: int, job: str, described: Mapping[str, Any], engine: str
    ) -> None:
        """Note that a setting waits in the queue of the engine named ``engine`` as
        ``job`` (a Slurm job), to run without this driver: it reads ``queued`` until its
        outcome, running there or not, so no other run starts it, and
        :meth:`queued_on` names that engine. ``job`` ``""``: the engine let go of it
        before it ran; it reads as it did before it was queued."""
        line = {
            "event": "queued",
            "id": setting_id,
            "attempt": attempt,
            "job": job,
            "engine": engine,
        }
        record = self._write(line, described)
        try:
            record.flush()  # a driver killed from here on still leaves it queued
        except OSError as error:
            raise self._cannot_write(error, self.record_path) from None

    def report(self, setting_id: str, attempt: int, rows: list[dict[str, Any]]) -> None:
        """Write rows a running setting reported; durable after the next :meth:`commit`.

        A line of its own (``"event": "rows"``), read with the setting's started line
        before it: the rows show, running or interrupted, until its outcome is stored.
        """
        line = {"event": "rows", "id": setting_id, "attempt": attempt, "rows": rows}
        record = self._record
        if record is None or self._broken is not None:
            self._write(line, {})  # raises the reason
            return
        try:
            record.write(f"{dumps(line)}\n".encode())
        except OSError as error:
            raise self._cannot_write(error, self.record_path) from None
        self._unsynced += 1

    def append(
        self,
        outcome: Outcome,
        described: Mapping[str, Any],
        reported: list[list[Any]] | None = None,
    ) -> str:
        """Write an outcome; it is durable after the next :meth:`commit`. Its log is
        closed, with :attr:`Outcome.output` written to it first; where it is, or "" if
        it holds nothing.

        ``reported``: the rows the setting reported since it last started fresh, as
        ``[attempt, row]`` pairs, in order; the outcome's rows come after them, and the
        line holds them all, so it alone says what the setting's rows are.

        A setting whose log could not be written (a link planted in its place) is
        recorded failed, saying so: nothing is written through the link.
        """
        log = self._setting_logs.pop(outcome.id, None)
        if log is None:  # never reported started
            log = SettingLog(self.log_path(outcome.id), outcome.attempt, self._logs_fd)
        if outcome.output:
            log.write(outcome.output.encode("utf-8", "replace"))
        kept = log.close()
        if log.error is not None:
            from superparams._outcome import Failure

            outcome.rows = []
            outcome.failure = Failure("raised", f"its log could not be opened: {log.error}")
        path = f"{LOGS}/{outcome.id}.log" if kept else None
        workdir = f"{WORK}/{outcome.id}"
        line = {
            "event": "outcome",
            "id": outcome.id,
            "status": outcome.status,
            "attempt": outcome.attempt,
            "started": outcome.started,
            "seconds": round(outcome.finished - outcome.started, 6),
            "worker": outcome.worker,
            "log": path,
            "workdir": workdir if os.path.isdir(self._work + outcome.id) else None,
            "rows": outcome.rows,
        }
        if reported:
            line["reported"] = reported
        if outcome.stopped is not None:
            line["stopped"] = outcome.stopped
        if outcome.environment is not None:
            line["environment"] = outcome.environment
            self._keep_environment(outcome.environment, outcome.environment_details)
        if outcome.failure is not None:
            line["cause"] = outcome.failure.cause
            line["error"] = outcome.failure.error
            line["traceback"] = outcome.failure.traceback
        self._write(line, described)
        self._unsynced += 1
        return self.log_path(outcome.id) if kept else ""

    def _keep_environment(self, found: str, details: dict[str, Any] | None) -> None:
        """Store an environment's details the first time the folder meets it: a line of
        the record, then environments.json rewritten with it."""
        known = self._environments
        if known is None:
            known = self._environments = read_environments(self.folder)
        if details is None or found in known:
            return  # known, or sent to an earlier run: its details are stored already
        self._write({"event": ENVIRONMENT, "id": found, "details": details}, {})
        known[found] = details
        try:
            write_environments(self.folder, known)
        except OSError as error:
            raise self._cannot_write(error, self.folder / ENVIRONMENTS) from None

    def _write(self, line: dict[str, Any], described: Mapping[str, Any]) -> BinaryIO:
        """Write one line: ``line``, the setting's ``described``, the run's code version."""
        record = self._record
        if record is None:
            msg = "the store is not open for writing; use it as `with Store(...) as store:`"
            raise StoreError(msg)
        if self._broken is not None:
            raise self._broken
        text = dumps({**line, **described, **self._stamp})
        try:
            record.write(f"{text}\n".encode())
        except OSError as error:
            raise self._cannot_write(error, self.record_path) from None
        return record

    def commit(self) -> None:
        """Make every outcome written so far durable (write, then fsync).

        Raises:
            StoreWriteError: the record could not be written; what was synced is safe.
        """
        if self._record is None:
            return
        if self._broken is not None:
            raise self._broken
        try:
            self._record.flush()
            if self._unsynced:
                os.fsync(self._record.fileno())
                self._unsynced = 0
        except OSError as error:
            raise self._cannot_write(error, self.record_path) from None
        self._synced_at = time.monotonic()

    def _cannot_write(self, error: OSError, path: Path) -> StoreWriteError:
        """The error to raise for a failed write: what, why, and what is safe.

        Nothing more is written by this store after it (see :meth:`close`).
        """
        where = error.filename if isinstance(error.filename, str) else str(path)
        why = error.strerror or str(error)
        if self._record is not None:  # what reached the record before is made durable
            with contextlib.suppress(OSError):
                os.fsync(self._record.fileno())
        try:
            table = self.stored_table()[0]
            done = table.filter(table["status"].is_in(["completed", "failed"]))
            count = done["id"].n_unique()
        except Exception:  # unreadable too: say nothing of a count
            kept = "what was stored before is safe"
        else:
            kept = {0: "nothing was stored before", 1: "the 1 stored result is safe"}.get(
                count, f"the {count} stored results are safe"
            )
        msg = (
            f"could not write {where}: {why}; {kept} (make room or make the folder "
            "writable, then run again: it resumes)"
        )
        self._broken = StoreWriteError(msg)
        self._broken.errno = error.errno  # its text stays the message alone
        return self._broken

    def seconds_since_commit(self) -> float:
        return time.monotonic() - self._synced_at

    # -- beside the record ----------------------------------------------------------------

    def keep_search(self, search: Mapping[str, Any]) -> None:
        """Record the adaptive search that runs here (what it optimises, its budget and
        sampler), for ``status`` and ``--dry-run`` to say how far it is; whole or not at
        all. Its state is the record: this only names it.

        Raises:
            StoreWriteError: the folder could not be written.
        """
        self.trust()
        make_folders(self.folder)
        try:
            write_search(self.folder, search)
        except OSError as error:
            raise self._cannot_write(error, self.folder / SEARCH) from None

    def keep_class(self, recorded: Mapping[str, Any]) -> None:
        """Record the experiment class as this run sees it (see :mod:`superparams._recorded`),
        for reads that need not import it; whole or not at all, once per run.

        Raises:
            StoreWriteError: the folder could not be written.
        """
        from superparams._store._classfile import write_class

        self.trust()
        try:
            write_class(self.folder, recorded)
        except OSError as error:
            raise self._cannot_write(error, self.folder / CLASS) from None

    def keep_sampler_state(self, values: Mapping[str, Any], state: Mapping[str, Any]) -> None:
        """Append what a search's sampler keeps of a configuration it proposed (its
        system attributes: CMA-ES's generation and optimizer) to the folder's study, as
        one line written at once: a line cut by a crash is skipped on reading.

        Raises:
            StoreWriteError: the folder could not be written.
        """
        self.trust()
        make_folders(self.folder)
        try:
            append_sampler_state(self.folder, values, state)
        except OSError as error:
            raise self._cannot_write(error, self.folder / STUDY) from None

    def clashes(self, label: Callable[[str], str | None] | None = None) -> list[str]:
        """What the table stores as text because its settings disagree on a column's type
        (see :meth:`Reader.clashes`). The run writing the folder brings results.parquet
        up to date first, rather than read its record twice (here, and again as it
        closes).
        """
        if self._record is not None and self._broken is None:
            with contextlib.suppress(OSError, StoreError):  # close() tries again, and says
                self._record.flush()
                try:
                    written = self.compact()
                except KeyboardInterrupt:  # a signal: close() does not start it again
                    self._stopped = True
                    raise
                if written is not None:
                    self.written = written
        return super().clashes(label)

    def is_locked(self) -> bool:
        """Whether a run is writing to this folder right now."""
        return self._lock_file is not None or super().is_locked()

    def holder(self) -> str | None:
        """Which process is writing to this folder (``pid 12 on host, started ...``), or
        None if no run is."""
        if self._lock_file is not None:
            return read_holder(self._lock_file)
        return super().holder()

    def clean(self) -> None:
        """Remove every stored result, log and setting folder of this experiment.

        A results folder that is a link (checked like any, see :meth:`trust`) is emptied
        and kept, so the next run stores where it leads again; a link found inside is
        removed, never followed.
        """
        import shutil

        if not self.folder.exists():
            return
        with self:  # holding the lock, checked: never clean under a running run
            for name in (RECORD, RESULTS, HISTORY, META):
                with contextlib.suppress(FileNotFoundError):
                    (self.folder / name).unlink()
            _remove(self.folder / LOGS)
            if self._record is not None:
                self._record.close()
                self._record = None
            if self.folder.is_symlink():
                with os.scandir(self.folder) as entries:
                    for entry in entries:
                        if entry.name != LOCK:
                            _remove(Path(entry.path))
        if self.folder.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                (self.folder / LOCK).unlink()
        else:
            shutil.rmtree(self.folder, ignore_errors=True)


def _remove(path: Path) -> None:
    """Remove a file, a link (never what it leads to) or a folder and what it holds."""
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)  # never follows a link inside
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# The stores this process holds for writing: a process forked from it lets go of them.
_HELD: weakref.WeakSet[Store] = weakref.WeakSet()


def _flush_held() -> None:
    for store in list(_HELD):
        if store._record is not None:
            with contextlib.suppress(OSError, ValueError):
                store._record.flush()


def _forget_held() -> None:
    for store in list(_HELD):
        store._let_go()
    _HELD.clear()


os.register_at_fork(before=_flush_held, after_in_child=_forget_held)
