"""The results folder of one experiment class: the one writer, and its readers.

A folder ``progress/<module>/<Class>/`` holds::

    record.jsonl      append-only: one line when a setting starts, one when it ends
    results.parquet   the latest outcome of every setting, rebuilt from the record; its
                      metadata says how far into the record it goes, and for which fields
    logs/<id>.log     each setting's stdout and stderr, and its traceback on failure
    lock              held (flock) by the run writing here; it dies with the process
    experiment.json   whose results these are: the defining file (or notebook) and class
    .gitignore        ``*``: ``git add .`` in a project leaves the whole folder out
    search.json       the adaptive search that runs here, if one does: what it optimises,
                      its budget and sampler (its state is the record itself)

No file inside the folder is opened through a symbolic link, nor unless it is a regular
file (:func:`open_in_store`): a planted link or FIFO is :class:`StoreWriteError`. A
setting's log is opened in the ``logs/`` the run holds open. The folder itself, or
``progress/``, may be a link to a folder of the user's. A folder another user could
change (up to the progress root: see :meth:`Store.trust`) is refused before anything is
read or written. A process forked from the run closes its copies of the lock and the
record, so it never holds the folder.

Durability: an outcome line is written and fsynced before the runner reports it done
(:meth:`Store.commit`), and nothing already written is ever rewritten. A line torn by a
crash is at the end of the record; it is ignored on reading and cut before appending.
``results.parquet`` is written to a temporary file and renamed, at the start and end of
each run, so readers never see half a file; one left by a run killed while it wrote is
removed by the next run that opens the folder.

Damage: a line that is not one the store writes (not JSON, NUL bytes, the wrong shape)
is skipped and counted (:meth:`Store.damaged`). ``results.parquet`` keeps a hash of the
record's first 4 KiB beside its offset; a record shorter than the offset or starting
otherwise (cut short, emptied, an older copy) is read from its start, and the next run
appends to it every stored outcome it lost (:meth:`Store._restore`). A start that differs
in a line or two only (a flipped bit) is damage in place: those lines count as damaged,
the table's values win, and the next run appends their settings' outcomes again. A write that fails
(no space left, read-only) raises :class:`StoreWriteError`, and nothing more is written.

One folder, one experiment: the first run records in ``experiment.json`` the file that
defines the class, relative to the folder holding ``progress/`` (see
:mod:`superparams._store._location`),
and the class's qualified name. Another experiment that meets the folder, to write or to
read, gets :class:`StoreConflictError`, and nothing is written. A folder of an earlier
version, without the file, is taken over by its next run.

Identity across edits: when a field with a default is added to the class, the settings
stored before count as run with that default. Each outcome line keeps its fields'
encodings, so the store can compute what the id of the stored setting is now.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from superparams._outcome import DIED_IN_PROCESS
from superparams._store._columns import BOOKKEEPING
from superparams._store._files import (
    EXPERIMENT,
    GITIGNORE,
    GITIGNORE_TEXT,
    LOCK,
    LOGS,
    META,
    RECORD,
    RESULTS,
    SEARCH,
    _atomic_write,
    _opener,
    _refuse_links,
    _remove_leftovers,
    linked,
    open_in_store,
)
from superparams._store._location import folder_for as folder_for  # where it lived before
from superparams._store._location import identity_of, location, make_folders, named, trust
from superparams._store._lock import (
    LOCK_PATIENCE,
    _lock,
    _read_holder,
    _write_holder,
    holder,
    is_held,
)
from superparams._store._logfile import SettingLog
from superparams._store._record import (
    QUEUED_BEFORE,
    _cut_torn_tail,
    _dumps,
    _hash,
    _head_damage,
    _head_lines,
    _open_rows,
    _read_record,
    _record_chunks,
    _rows,
    _start,
    _uncollected,
    describe,
    queued_engines,
    renamed,
)
from superparams._store._table import (
    Clashes,
    _clash_text,
    _concat,
    _conform,
    _frame,
    _latest,
    _lost,
)
from superparams._store._workdir import WORK
from superparams.errors import StoreConflictError, StoreError, StoreLockedError, StoreWriteError

__all__ = [
    "BOOKKEEPING",
    "EXPERIMENT",
    "LOCK",
    "LOCK_PATIENCE",
    "LOGS",
    "META",
    "RECORD",
    "RESULTS",
    "Plan",
    "Status",
    "Store",
    "describe",
    "folder_for",
    "linked",
    "open_in_store",
    "renamed",
]

if TYPE_CHECKING:
    import polars as pl

    from superparams._code import CodeVersion
    from superparams._experiment import Experiment
    from superparams._outcome import Outcome
    from superparams._space import Space

_META_KEY = "superparams"  # the key in results.parquet's metadata: record offset, fields
# Rows of results.parquet encoded at a time: polars holds a row group's pages until it is
# written (its default, 512², held ~15 MB more for 200,000 settings).
_ROW_GROUP = 1 << 14


@dataclass
class Plan:
    """What a run of a space would do, by setting id."""

    new: list[int] = field(default_factory=list)  # positions in the space
    done: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    interrupted: list[int] = field(default_factory=list)
    # handed to an engine that runs them without the driver (Slurm jobs), not ended yet
    queued: list[int] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # stored ids no longer in the space
    # done positions whose stored code_version is known and not the current one
    outdated: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # id of every position
    # Failed positions that were running in a run's own process when it died (engine
    # inline): a resume leaves them out, as they would end it again; only_failed and
    # fresh run them. `unrecorded`: those the record holds no outcome of yet.
    died: list[int] = field(default_factory=list)
    unrecorded: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.ids)

    def to_run(
        self,
        *,
        fresh: bool = False,
        only_failed: bool = False,
        rerun_outdated: bool = False,
        queued: bool = False,
    ) -> list[int]:
        """The positions a run takes: what is not completed (a setting standing twice in
        the space, once), or with ``fresh`` every setting, or with ``only_failed`` the
        failed ones; ``rerun_outdated`` adds the outdated.

        Queued settings (in a Slurm queue, say) are left to the engine that holds them,
        even with ``fresh``: no run starts a setting a job may be running. With
        ``queued`` (a run of that engine, which collects them) they are taken too.
        """
        held = set() if queued else set(self.queued)
        if fresh:
            seen: set[str] = set()
            positions = []
            for position, sid in enumerate(self.ids):
                if sid not in seen:
                    seen.add(sid)
                    if position not in held:
                        positions.append(position)
            return positions
        outdated = self.outdated if rerun_outdated else []
        if only_failed:
            return sorted(self.failed + outdated)
        taken = self.queued if queued else []
        died = set(self.died)  # a resume leaves them out: they would end it again
        failed = [p for p in self.failed if p not in died] if died else self.failed
        return sorted(self.new + failed + self.interrupted + outdated + taken)

    def summary(self) -> str:
        earlier = f" ({len(self.outdated)} by earlier code)" if self.outdated else ""
        parts = [
            f"{len(self.done)} completed{earlier}",
            f"{len(self.failed)} failed",
            f"{len(self.interrupted)} interrupted",
            f"{len(self.new)} new",
        ]
        if self.queued:
            parts.insert(3, f"{len(self.queued)} queued")
        if self.stale:
            parts.append(f"{len(self.stale)} stored but no longer in the space")
        return ", ".join(parts)


@dataclass(frozen=True)
class Status:
    """The latest stored outcome of one setting, as :meth:`Store.statuses` reads it."""

    status: str  # completed, failed, running (a run holds the folder), interrupted or queued
    label: str | None
    error: str | None  # a failure's one-line error
    ended: float | None  # when the outcome ended, in seconds since the epoch (None: it did not)


class Store:
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
        # Absolute from the start: run() may change the working directory.
        self.folder = Path(folder).absolute()
        # The progress root: the folders from it down to this one are checked (see trust).
        self.root = Path(root).absolute() if root is not None else self.folder
        # Whose results may be here (see identity_of); None: anyone's, nothing recorded.
        self.identity = dict(identity) if identity is not None else None
        self._logs = f"{self.folder / LOGS}{os.sep}"
        self._work = f"{self.folder / WORK}{os.sep}"  # settings' own folders: see _workdir
        self.fields = tuple(fields)
        # Each field's constant default as (encoding, value): what an added field means
        # for the settings stored before it existed.
        self.defaults = dict(defaults or {})
        # The polars type of each parameter column its annotation fixes (see _columns).
        self.types = dict(types or {})
        self._lock_file: TextIO | None = None
        self._logs_fd: int | None = None  # logs/, held open while the run writes there
        self._record: BinaryIO | None = None
        self._unsynced = 0
        self._synced_at = 0.0
        self._stamp: dict[str, Any] = {}  # the run's code version, on every line it writes
        self.restored = 0  # outcomes written to the record again by open(): see _restore
        self._broken: StoreWriteError | None = None  # a write failed: nothing more is written
        self._stopped = False  # a signal stopped bringing results.parquet up to date
        self._setting_logs: dict[str, SettingLog] = {}  # of the settings running now
        # What close() wrote to results.parquet, so the run's own table is not read back.
        self.written: pl.DataFrame | None = None
        self.trust()  # before anything is read from it

    @classmethod
    def for_class(
        cls,
        experiment: type[Experiment],
        folder: Path | str | None = None,
        fields: Iterable[str] = (),
        defaults: Mapping[str, tuple[str, Any]] | None = None,
        types: Mapping[str, str] | None = None,
    ) -> Store:
        """The store of an experiment class: ``folder`` (default: :func:`folder_for`),
        for the class's identity, relative to the folder holding ``progress/`` (or to
        ``folder``'s parent)."""
        root = None
        if folder is None:
            folder, home = location(experiment)
            root = folder.parent.parent  # progress/ (or SUPERPARAMS_PROGRESS), above <stem>
        else:
            home = Path(folder).resolve().parent
        identity = identity_of(experiment, home)
        return cls(folder, fields, defaults, identity, types, root)

    # -- paths ---------------------------------------------------------------------------

    @property
    def record_path(self) -> Path:
        return self.folder / RECORD

    @property
    def results_path(self) -> Path:
        return self.folder / RESULTS

    def log_path(self, setting_id: str) -> str:
        """Where a setting's log goes (a string: it is made for every setting)."""
        return f"{self._logs}{setting_id}.log"

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

    def trust(self) -> None:
        """Refuse the folder if another user could change it (see :func:`trust`).

        Raises:
            StoreError: naming the folder and why.
        """
        trust(self.folder, self.root, self._holds_ours)
        for name in (LOGS, WORK):
            trust(self.folder / name)

    def _holds_ours(self, folder: Path) -> bool:
        """Whether ``folder`` records this experiment as its own."""
        try:
            with open(folder / EXPERIMENT, "rb", opener=_opener) as f:
                recorded = json.loads(f.read())
        except (OSError, ValueError, StoreError):
            return False
        return isinstance(recorded, dict) and self._is_ours(recorded)

    def _is_ours(self, recorded: Mapping[str, Any]) -> bool:
        ours = self.identity
        return ours is None or (
            recorded.get("class") == ours.get("class")
            and (
                None in (recorded.get("file"), ours.get("file"))  # a class with no file, given
                or recorded.get("file") == ours.get("file")  # folder=, is known by its name
                or recorded.get("path") == ours.get("path")
            )
        )

    def _open(self) -> Store:
        self._stopped = False
        self.trust()  # again, just before anything is written
        self.check()
        make_folders(self.folder / LOGS)
        lock = open(self.folder / LOCK, "a+", opener=_opener)  # noqa: SIM115  # until close()
        if not _lock(lock):
            holder = _read_holder(lock)
            lock.close()
            msg = (
                f"another run is writing to {self.folder} ({holder}); wait for it to "
                "finish or stop it, then run again"
            )
            raise StoreLockedError(msg) from None
        try:  # again, holding the lock: another experiment's run may have just claimed it
            if self.identity is not None and self.check() is None:
                path = self.folder / EXPERIMENT
                text = json.dumps(self.identity, indent=1) + "\n"
                _atomic_write(path, lambda tmp: tmp.write(text.encode()))
            if not (self.folder / GITIGNORE).exists():  # a folder from before has none yet
                ignore = GITIGNORE_TEXT.encode()
                _atomic_write(self.folder / GITIGNORE, lambda tmp: tmp.write(ignore))
            _refuse_links(self.folder, logs=True)  # holding the lock: no run writes now
        except BaseException:
            lock.close()
            raise
        _write_holder(lock)
        self._lock_file = lock
        _HELD.add(self)
        try:
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            self._logs_fd = os.open(self.folder / LOGS, flags)  # checked, held from now on
            _remove_leftovers(self.folder)  # of a run killed while it wrote (kill -9)
            _cut_torn_tail(self.record_path)
            self.compact()
            self._record = open(self.record_path, "ab", opener=_opener)  # noqa: SIM115
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
            record.write(f"{_dumps(line)}\n".encode())
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
        if outcome.failure is not None:
            line["cause"] = outcome.failure.cause
            line["error"] = outcome.failure.error
            line["traceback"] = outcome.failure.traceback
        self._write(line, described)
        self._unsynced += 1
        return self.log_path(outcome.id) if kept else ""

    def _write(self, line: dict[str, Any], described: Mapping[str, Any]) -> BinaryIO:
        """Write one line: ``line``, the setting's ``described``, the run's code version."""
        record = self._record
        if record is None:
            msg = "the store is not open for writing; use it as `with Store(...) as store:`"
            raise StoreError(msg)
        if self._broken is not None:
            raise self._broken
        text = _dumps({**line, **described, **self._stamp})
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
            table = self._table()[0]
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

    # -- compaction: record -> results.parquet ---------------------------------------------

    def _compacted(self, *, read: bool = True) -> _Compacted | None:
        """How far into the record results.parquet goes, its table (if ``read``), the
        columns it stores as text because their settings disagree on a type, and how
        many damaged lines it skipped.

        All come from one open file: the offset lives in the parquet's own metadata, so
        a crash or a reader between two writes can never pair a table with another
        table's offset. None when there is no parquet made for the class's fields.

        Beside the offset it keeps a hash of the record's first 4 KiB: a record shorter
        than the offset, or that starts otherwise (truncated, emptied, deleted, restored
        from a backup), no longer holds what the table was made from; then it is not
        ``intact``, and its offset is 0: the record is read from its start.
        """
        import polars as pl

        try:
            f = open(self.results_path, "rb", opener=_opener)  # noqa: SIM115  # closed below
        except (FileNotFoundError, StoreWriteError):
            return None  # none, or a link: rebuilt from the record, and replaced
        with f:
            try:
                meta = json.loads(pl.read_parquet_metadata(f).get(_META_KEY) or "{}")
                if meta.get("fields") != list(self.fields):
                    return None
                f.seek(0)
                table = _conform(pl.read_parquet(f), self.types) if read else None
                offset, clashes = int(meta.get("offset", 0)), dict(meta.get("clashes") or {})
                damaged = int(meta.get("damaged", 0))
            except (pl.exceptions.PolarsError, OSError, ValueError):
                return None  # not one of ours: results are rebuilt from the record
        size, start = _start(self.record_path)
        head = meta.get("head")
        if size < offset:
            return _Compacted(0, table, clashes, 0, intact=False)
        if head is not None and head != _hash(start[:offset]):
            # A line or two damaged in place (a flipped bit) lose to the table, which was
            # made from them whole; a start otherwise changed is another record.
            found = _head_damage(meta.get("lines"), start[:offset])
            if found is None:
                return _Compacted(0, table, clashes, 0, intact=False)
            count, mend = found
            return _Compacted(offset, table, clashes, damaged + count, mend=mend)
        return _Compacted(offset, table, clashes, damaged)

    def compact(self) -> pl.DataFrame | None:
        """Bring results.parquet up to date with the record, atomically; return the table
        written (None if results.parquet was up to date already).

        Reads only the record past what results.parquet already holds, unless the class's
        fields changed since (then the whole record, to re-key the stored settings).
        """
        import polars as pl

        stored = self._compacted(read=False)
        if stored is not None and not stored.intact:
            self._restore()  # the record holds again every outcome the table holds
            stored = None  # and the table is made anew from the record alone
        elif stored is not None and stored.mend:
            self._restore(stored.mend)  # after their damaged lines: those win no more
        offset = 0 if stored is None else stored.offset
        clashes = {} if stored is None else stored.clashes
        frames, end, damaged = self._frames(offset, clashes, live=False)
        if not frames and not damaged and stored is not None:
            return None
        damaged += 0 if stored is None else stored.damaged
        if stored is not None:
            frames.insert(0, _conform(pl.read_parquet(self.results_path), self.types))
        table = _concat(frames, clashes) if frames else _frame([], self.types)
        del frames  # the chunks' tables: only the table written is kept
        table = _latest(table)
        start = _start(self.record_path)[1][:end]
        info = {
            "offset": end,
            "fields": list(self.fields),
            "clashes": clashes,
            "damaged": damaged,
            "head": _hash(start),
            "lines": _head_lines(start),
        }
        meta = {_META_KEY: json.dumps(info)}
        _atomic_write(
            self.results_path,
            lambda f: table.write_parquet(f, metadata=meta, row_group_size=_ROW_GROUP),
        )
        with contextlib.suppress(FileNotFoundError):
            (self.folder / META).unlink()  # where earlier versions kept the offset
        return table

    def _restore(self, mend: list[str] | None = None) -> None:
        """Append to the record every outcome results.parquet holds and it lost; with
        ``mend``, those of these settings, whose lines in it are damaged.

        Called holding the lock, when the record no longer holds what the table was made
        from (see :meth:`_compacted`); the lines are synced before the table is rebuilt.
        """
        stored = self._compacted()
        if stored is None or stored.table is None:
            return
        if mend is None:
            lines, _, _ = _read_record(self.record_path, 0)
            rows = _rows(lines, self.fields, self.defaults, live=False)
            lost = _lost(stored.table, rows, self.fields, self.types)
            self.restored += len(lost)
        else:
            table = stored.table.filter(stored.table["id"].is_in(mend))
            lost = _lost(table, [], self.fields, self.types)
        if not lost:
            return
        text = "".join(f"{_dumps(line)}\n" for line in lost).encode()
        with open(self.record_path, "ab", opener=_opener) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    # -- readers ---------------------------------------------------------------------------

    def check(self) -> dict[str, Any] | None:
        """The experiment the folder records, if any, once it is sure to be this one.

        Raises:
            StoreConflictError: the folder holds the results of another experiment.
            StoreWriteError: a file of the folder is a symbolic link.
        """
        _refuse_links(self.folder)
        try:
            with open(self.folder / EXPERIMENT, "rb", opener=_opener) as f:
                recorded = json.loads(f.read())
        except StoreWriteError:
            raise
        except (OSError, ValueError):
            return None  # no folder yet, or one of an earlier version: not claimed
        if not isinstance(recorded, dict) or self.identity is None:
            return None
        ours = self.identity
        if self._is_ours(recorded):
            return recorded
        msg = (
            f"{self.folder} holds the results of {named(recorded)!r}, not of "
            f"{named(ours)!r}; give this experiment a folder of its own (folder= in "
            "Python, SUPERPARAMS_PROGRESS for the command) or rename its class (if it is "
            f"the same experiment, moved, delete {self.folder / EXPERIMENT})"
        )
        raise StoreConflictError(msg)

    def keep_search(self, search: Mapping[str, Any]) -> None:
        """Record the adaptive search that runs here (what it optimises, its budget and
        sampler), for ``status`` and ``--dry-run`` to say how far it is; whole or not at
        all. Its state is the record: this only names it.

        Raises:
            StoreWriteError: the folder could not be written.
        """
        self.trust()
        make_folders(self.folder)
        text = json.dumps(dict(search), indent=1) + "\n"
        try:
            _atomic_write(self.folder / SEARCH, lambda tmp: tmp.write(text.encode()))
        except OSError as error:
            raise self._cannot_write(error, self.folder / SEARCH) from None

    def search(self) -> dict[str, Any] | None:
        """The adaptive search recorded here (:meth:`keep_search`), if any."""
        try:
            with open(self.folder / SEARCH, "rb", opener=_opener) as f:
                found = json.loads(f.read())
        except StoreWriteError:
            raise
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    def table(self) -> pl.DataFrame:
        """Every stored setting's latest outcome, including a run in progress.

        Raises:
            StoreConflictError: the folder holds the results of another experiment.
            StoreError: the record could not be read (permissions, not a file).
        """
        self.check()
        try:
            return self._table()[0]
        except StoreError:
            raise
        except OSError as error:
            where = error.filename if isinstance(error.filename, str) else self.folder
            msg = f"could not read {where}: {error.strerror or error}; nothing was changed"
            raise StoreError(msg) from None

    def clashes(self, label: Callable[[str], str | None] | None = None) -> list[str]:
        """What the table stores as text because its settings disagree on a column's type.

        One sentence per column, naming the settings by ``label(id)`` (a space's own
        labels), else by the label stored with them. Read from results.parquet alone
        when the record holds nothing past it (as after a run). The run writing the
        folder brings results.parquet up to date first, rather than read its record
        twice (here, and again as it closes).
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
        stored = self._compacted(read=False)
        try:
            size = self.record_path.stat().st_size
        except FileNotFoundError:
            size = 0
        intact = stored is not None and stored.intact and stored.offset == size
        found = stored.clashes if stored is not None and intact else self._table()[1]
        notes = []
        for name, kinds in found.items():
            named = {kind: (label and label(i)) or shown or i for kind, (i, shown) in kinds.items()}
            notes.append(_clash_text(name, named))
        return notes

    def damaged(self) -> int:
        """How many lines of the record are damaged, and were skipped (see _intact)."""
        stored = self._compacted(read=False)
        offset, before = (0, 0) if stored is None else (stored.offset, stored.damaged)
        return before + sum(bad for _, bad, _ in _record_chunks(self.record_path, offset))

    def _frames(
        self, offset: int, clashes: Clashes, *, live: bool
    ) -> tuple[list[pl.DataFrame], int, int]:
        """The record from ``offset`` as tables, one per chunk read (see
        :func:`_record_chunks`), the offset after them, and how many lines were damaged.

        A chunk's lines are dropped once its table is made, so reading a long record
        holds one chunk of Python objects at a time; :func:`_latest` of the tables
        together picks each setting's latest outcome across chunks.
        """
        frames = []
        end, damaged, number = offset, 0, 0
        pending: dict[str, Any] = {}  # settings started and not ended, across chunks
        with _uncollected():
            for lines, bad, after in _record_chunks(self.record_path, offset):
                end = after
                rows = _rows(
                    lines,
                    self.fields,
                    self.defaults,
                    live=live,
                    logs=self._logs,
                    first=number,
                    pending=pending,
                )
                number += len(lines)
                damaged += bad
                if rows:
                    frames.append(_frame(rows, self.types, clashes))
                del lines, rows  # before the next chunk is read
        rows = _open_rows(pending, self.fields, self.defaults, live=live, logs=self._logs)
        if rows:
            frames.append(_frame(rows, self.types, clashes))
        return frames, end, damaged

    def _table(self) -> tuple[pl.DataFrame, Clashes]:
        stored = self._compacted()
        # never compacted, or compacted for other fields: read the whole record
        offset, base, clashes = 0, None, {}
        if stored is not None:
            offset, base, clashes = stored.offset, stored.table, stored.clashes
        live = self.is_locked()
        if stored is not None and not stored.intact and base is not None:
            # The record lost what the table holds: read both, as the next run will
            # restore them (see _restore).
            lines, _, _ = _read_record(self.record_path, offset)
            found = _rows(lines, self.fields, self.defaults, live=False)
            lines += _lost(base, found, self.fields, self.types)
            rows = _rows(lines, self.fields, self.defaults, live=live, logs=self._logs)
            tails, base = [_frame(rows, self.types, clashes)], None
        else:
            tails = self._frames(offset, clashes, live=live)[0]
        frames = [f for f in (base, *tails) if f is not None and f.height]
        if not frames:
            return _frame([], self.types), clashes
        return _latest(_concat(frames, clashes)), clashes

    def statuses(self) -> dict[str, Status]:
        """The latest stored status of each setting, by id, in the order stored; with
        nothing stored, empty, without reading a table (nor loading polars).

        Raises:
            StoreConflictError: the folder holds the results of another experiment.
            StoreError: the record could not be read (permissions, not a file).
        """
        import datetime

        if not self._holds_anything():
            return {}
        table = self.table()
        if table.is_empty():
            return {}
        first = table.unique(subset="id", keep="first", maintain_order=True)
        out = {}
        for sid, status, label, error, start, took in zip(
            *(first[c].to_list() for c in ("id", "status", "label", "error", "started", "seconds")),
            strict=True,
        ):
            ended = None
            if isinstance(start, datetime.datetime) and took is not None:
                ended = start.replace(tzinfo=datetime.timezone.utc).timestamp() + float(took)
            out[sid] = Status(status or "", label, error, ended)
        return out

    def queued_on(self) -> dict[str, str]:
        """The engine that holds each queued setting, by id (see :meth:`queued`): the name
        its queued line records; ``slurm`` for one queued before lines named their engine,
        or restored from ``results.parquet``."""
        queued = [sid for sid, s in self.statuses().items() if s.status == "queued"]
        if not queued:
            return {}
        engines = queued_engines(self.record_path)
        return {sid: engines.get(sid, QUEUED_BEFORE) for sid in queued}

    def reported_rows(self, ids: set[str]) -> dict[str, list[list[Any]]]:
        """The rows stored for the failed or interrupted settings among ``ids``: all of
        them reported (a setting that fails returns none), as ``[attempt, row]`` pairs,
        with what each row holds beside the parameters and the bookkeeping."""
        if not self._holds_anything():
            return {}
        import polars as pl

        table = self.table()
        table = table.filter(
            pl.col("id").is_in(list(ids)) & pl.col("status").is_in(["failed", "interrupted"])
        )
        skip = {"id", "label", *BOOKKEEPING}
        fields = set(self.fields)
        values = [
            c
            for c in table.columns
            if c not in skip
            and c not in self.types
            and c not in fields
            and c.split(".")[0] not in fields
        ]
        out: dict[str, list[list[Any]]] = {}
        for row in table.select("id", "attempt", *values).iter_rows(named=True):
            held = {k: row[k] for k in values if row[k] is not None}
            if held:  # a setting that reported nothing has one row that holds nothing
                out.setdefault(row["id"], []).append([row["attempt"] or 1, held])
        return out

    def count(self) -> int:
        """How many settings the folder stores an outcome (or a start) of."""
        return self.table()["id"].n_unique()

    def plan(self, space: Space[Any], code_version: str | Callable[[], str] | None = None) -> Plan:
        """Sort a space's settings by what the store knows of them.

        A setting that stands twice in the space (in both parts of a union, say) is
        planned once, at its first position. With ``code_version`` (the current code's,
        or a function that computes it, called only if something is stored), completed
        settings stored with another version are also *outdated*; a row stored with no
        version (before versions were recorded) is not: its code is unknown.

        With nothing stored, it reads no table (and loads no polars): a command starts
        at once, and a run's plan costs no more than its list of ids.
        """
        self.check()  # another experiment's folder is refused, even with nothing in it
        ids = list(space._sp_ids())
        table = self.table() if self._holds_anything() else None
        if table is None or table.is_empty():  # nothing stored: every setting is new
            first: dict[str, int] = {}
            for position, sid in enumerate(ids):
                first.setdefault(sid, position)
            return Plan(new=list(first.values()), ids=ids)
        if callable(code_version):
            code_version = code_version()
        import polars as pl

        stored = table.select("id", "status", "code_version", "error", "seconds").unique(
            subset="id", keep="first", maintain_order=True
        )
        positions = (
            pl.DataFrame({"id": ids}, schema={"id": pl.String})
            .with_row_index("position")
            .unique(subset="id", keep="first", maintain_order=True)
        )
        joined = positions.join(stored, on="id", how="left", maintain_order="left")
        status = pl.col("status")
        died = (status == "failed") & (pl.col("error") == DIED_IN_PROCESS)

        def where(condition: pl.Expr) -> list[int]:
            return joined.filter(condition)["position"].to_list()

        return Plan(
            new=where(status.is_null()),
            done=where(status == "completed"),
            outdated=[]
            if code_version is None
            else where((status == "completed") & (pl.col("code_version") != code_version)),
            failed=where(status == "failed"),
            interrupted=where(status.is_in(["completed", "failed", "queued"]).not_()),
            queued=where(status == "queued"),
            stale=stored.join(positions, on="id", how="anti")["id"].to_list(),
            ids=ids,
            died=where(died),
            unrecorded=where(died & pl.col("seconds").is_null()),  # no outcome line yet
        )

    def _holds_anything(self) -> bool:
        """Whether the folder may store an outcome: a record with lines, or a table."""
        try:
            if self.record_path.stat().st_size > 0:
                return True
        except FileNotFoundError:
            pass
        return self.results_path.exists()

    def is_locked(self) -> bool:
        """Whether a run is writing to this folder right now."""
        return self._lock_file is not None or is_held(self.folder)

    def holder(self) -> str | None:
        """Which process is writing to this folder (``pid 12 on host, started ...``), or
        None if no run is."""
        if self._lock_file is not None:
            return _read_holder(self._lock_file)
        return holder(self.folder)

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
            for name in (RECORD, RESULTS, META):
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


# -- files inside the folder, never through a link -------------------------------------


@dataclass
class _Compacted:
    """What results.parquet holds: see :meth:`Store._compacted`."""

    offset: int  # how far into the record the table goes
    table: pl.DataFrame | None
    clashes: Clashes
    damaged: int  # damaged lines of the record before the offset
    intact: bool = True  # the record still holds what the table was made from
    # Settings whose lines in the record's start are damaged (the table holds them
    # whole): the next run writes their outcomes to the record again.
    mend: list[str] = field(default_factory=list)


# -- the record ------------------------------------------------------------------------


# -- the table's types -----------------------------------------------------------------
