"""The results folder of one experiment class: the one writer, and its readers.

A folder ``progress/<module>/<Class>/`` holds::

    record.jsonl      append-only: one line when a setting starts, one when it ends
    results.parquet   the latest outcome of every setting, rebuilt from the record; its
                      metadata says how far into the record it goes, and for which fields
    logs/<id>.log     each setting's stdout and stderr, and its traceback on failure
    lock              held (flock) by the run writing here; it dies with the process
    experiment.json   whose results these are: the defining file (or notebook) and class

No file inside the folder is opened through a symbolic link (:func:`open_in_store`):
a planted link is :class:`StoreWriteError`. The folder itself, or ``progress/``, may be
one. A process forked from the run closes its copies of the lock and the record, so it
never holds the folder.

Durability: an outcome line is written and fsynced before the runner reports it done
(:meth:`Store.commit`), and nothing already written is ever rewritten. A line torn by a
crash is at the end of the record; it is ignored on reading and cut before appending.
``results.parquet`` is written to a temporary file and renamed, at the start and end of
each run, so readers never see half a file.

Damage: a line that is not one the store writes (not JSON, NUL bytes, the wrong shape)
is skipped and counted (:meth:`Store.damaged`). ``results.parquet`` keeps a hash of the
record's first 4 KiB beside its offset; a record shorter than the offset or starting
otherwise (cut short, emptied, an older copy) is read from its start, and the next run
appends to it every stored outcome it lost (:meth:`Store._restore`). A write that fails
(no space left, read-only) raises :class:`StoreWriteError`, and nothing more is written.

One folder, one experiment: the first run records in ``experiment.json`` the file that
defines the class, relative to the folder holding ``progress/`` (see
:mod:`superparams._location`),
and the class's qualified name. Another experiment that meets the folder, to write or to
read, gets :class:`StoreConflictError`, and nothing is written. A folder of an earlier
version, without the file, is taken over by its next run.

Identity across edits: when a field with a default is added to the class, the settings
stored before count as run with that default. Each outcome line keeps its fields'
encodings, so the store can compute what the id of the stored setting is now.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superparams._location import folder_for as folder_for  # where it lived before
from superparams._location import identity_of, location, named
from superparams._logfile import SettingLog
from superparams.errors import StoreConflictError, StoreError, StoreLockedError, StoreWriteError
from superparams.identity import setting_id

if TYPE_CHECKING:
    import polars as pl

    from superparams._code import CodeVersion
    from superparams.experiment import Experiment
    from superparams.outcome import Outcome
    from superparams.space import Space

RECORD = "record.jsonl"
RESULTS = "results.parquet"
META = "meta.json"  # earlier versions kept the record offset here; now in the parquet
_META_KEY = "superparams"  # the key in results.parquet's metadata: record offset, fields
LOGS = "logs"
LOCK = "lock"
EXPERIMENT = "experiment.json"  # whose results these are: {"file": ..., "class": ...}

#: The bookkeeping columns every results table ends with, and their polars types (see
#: :func:`_dtype`): each column here has its type in every table, even an empty one.
BOOKKEEPING = {
    "status": "String",
    "attempt": "Int64",
    "cause": "String",
    "error": "String",
    "traceback": "String",
    "started": "Datetime(us, UTC)",
    "seconds": "Float64",
    "worker": "Int64",
    "log": "String",
    "code_version": "String",
    "git_commit": "String",
    "git_dirty": "Boolean",
}
LOCK_PATIENCE = 0.5  # seconds a writer waits for the lock before it says a run holds it


@dataclass
class Plan:
    """What a run of a space would do, by setting id."""

    new: list[int] = field(default_factory=list)  # positions in the space
    done: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    interrupted: list[int] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # stored ids no longer in the space
    # done positions whose stored code_version is known and not the current one
    outdated: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # id of every position

    @property
    def total(self) -> int:
        return len(self.ids)

    def to_run(
        self, *, fresh: bool = False, only_failed: bool = False, rerun_outdated: bool = False
    ) -> list[int]:
        """The positions a run takes: what is not completed (a setting standing twice in
        the space, once), or with ``fresh`` every setting, or with ``only_failed`` the
        failed ones; ``rerun_outdated`` adds the outdated."""
        if fresh:
            seen: set[str] = set()
            positions = []
            for position, sid in enumerate(self.ids):
                if sid not in seen:
                    seen.add(sid)
                    positions.append(position)
            return positions
        outdated = self.outdated if rerun_outdated else []
        if only_failed:
            return sorted(self.failed + outdated)
        return sorted(self.new + self.failed + self.interrupted + outdated)

    def summary(self) -> str:
        earlier = f" ({len(self.outdated)} by earlier code)" if self.outdated else ""
        parts = [
            f"{len(self.done)} completed{earlier}",
            f"{len(self.failed)} failed",
            f"{len(self.interrupted)} interrupted",
            f"{len(self.new)} new",
        ]
        if self.stale:
            parts.append(f"{len(self.stale)} stored but no longer in the space")
        return ", ".join(parts)


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
    ) -> None:
        # Absolute from the start: run() may change the working directory.
        self.folder = Path(folder).absolute()
        # Whose results may be here (see identity_of); None: anyone's, nothing recorded.
        self.identity = dict(identity) if identity is not None else None
        self._logs = f"{self.folder / LOGS}{os.sep}"
        self.fields = tuple(fields)
        # Each field's constant default as (encoding, value): what an added field means
        # for the settings stored before it existed.
        self.defaults = dict(defaults or {})
        # The polars type of each parameter column its annotation fixes (column_types).
        self.types = dict(types or {})
        self._lock_file: Any = None
        self._record: Any = None
        self._unsynced = 0
        self._synced_at = 0.0
        self._stamp = ""  # the run's code version as record text, made once per run
        self.restored = 0  # outcomes written to the record again by open(): see _restore
        self._broken: StoreWriteError | None = None  # a write failed: nothing more is written
        self._setting_logs: dict[str, SettingLog] = {}  # of the settings running now

    @classmethod
    def for_space(cls, space: Space[Any], folder: Path | str | None = None) -> Store:
        from superparams.identity import canonical, encode
        from superparams.space import Dimension
        from superparams.space import Space as SpaceType

        experiment = space.experiment_class
        info = experiment._sp_info()
        defaults = {}
        for name in info.fields:
            default = info.defaults.get(name)
            if name in info.defaults and not isinstance(default, (Dimension, SpaceType)):
                with contextlib.suppress(Exception):  # no stable encoding: no carrying over
                    plain = canonical(default, info.annotations.get(name))
                    defaults[name] = (encode(plain, name), plain)
        return cls.for_class(experiment, folder, info.fields, defaults)

    @classmethod
    def for_class(
        cls,
        experiment: type[Experiment],
        folder: Path | str | None = None,
        fields: Iterable[str] = (),
        defaults: Mapping[str, tuple[str, Any]] | None = None,
    ) -> Store:
        """The store of an experiment class: ``folder`` (default: :func:`folder_for`),
        for the class's identity, relative to the folder holding ``progress/`` (or to
        ``folder``'s parent)."""
        if folder is None:
            folder, home = location(experiment)
        else:
            home = Path(folder).resolve().parent
        identity = identity_of(experiment, home)
        return cls(folder, fields, defaults, identity, column_types(experiment))

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

    def _open(self) -> Store:
        self.check()  # before anything is written
        _make_folders(self.folder / LOGS)
        lock = open(self.folder / LOCK, "a+", opener=_opener)  # noqa: SIM115  # until close()
        if not _lock(lock):
            lock.seek(0)
            holder = lock.read().strip() or "another process"
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
            _refuse_links(self.folder, logs=True)  # holding the lock: no run writes now
        except BaseException:
            lock.close()
            raise
        lock.seek(0)
        lock.truncate()
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        lock.write(f"pid {os.getpid()} on {socket.gethostname()}, started {started}")
        lock.flush()
        self._lock_file = lock
        _HELD.add(self)
        try:
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
                self.compact()
        except StoreError:
            raise
        except OSError as error:
            raise self._cannot_write(error, self.results_path) from None
        finally:  # even if writing results.parquet failed: the record has everything
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
        self._stamp = "," + _dumps(fields)[1:-1]

    def started(self, setting_id: str, attempt: int, worker: int, described: str) -> SettingLog:
        """Note that a setting started (not synced: a lost line only loses 'interrupted');
        its log, for the engine to write what it prints (opened at the first byte).

        The line carries the setting's parameters (``described``, from :func:`describe`),
        so a setting interrupted by a crash shows in the results with them.
        """
        line = {"event": "started", "id": setting_id, "attempt": attempt, "worker": worker}
        self._write(line, described)
        try:
            self._record.flush()  # so `experiment status` sees it running at once
        except OSError as error:
            raise self._cannot_write(error, self.record_path) from None
        earlier = self._setting_logs.get(setting_id)
        if earlier is not None:  # an attempt that never reported (interrupted)
            earlier.close()
        log = self._setting_logs[setting_id] = SettingLog(self.log_path(setting_id), attempt)
        return log

    def append(self, outcome: Outcome, described: str) -> str:
        """Write an outcome; it is durable after the next :meth:`commit`. Its log is
        closed, with :attr:`Outcome.output` written to it first; where it is, or "" if
        it holds nothing.

        A setting whose log could not be written (a link planted in its place) is
        recorded failed, saying so: nothing is written through the link.
        """
        log = self._setting_logs.pop(outcome.id, None)
        if log is None:  # never reported started
            log = SettingLog(self.log_path(outcome.id), outcome.attempt)
        if outcome.output:
            log.write(outcome.output.encode("utf-8", "replace"))
        kept = log.close()
        if log.error is not None:
            from superparams.outcome import Failure

            outcome.rows = []
            outcome.failure = Failure("raised", f"its log could not be opened: {log.error}")
        path = f"{LOGS}/{outcome.id}.log" if kept else None
        line = {
            "event": "outcome",
            "id": outcome.id,
            "status": outcome.status,
            "attempt": outcome.attempt,
            "started": outcome.started,
            "seconds": round(outcome.finished - outcome.started, 6),
            "worker": outcome.worker,
            "log": path,
            "rows": outcome.rows,
        }
        if outcome.failure is not None:
            line["cause"] = outcome.failure.cause
            line["error"] = outcome.failure.error
            line["traceback"] = outcome.failure.traceback
        self._write(line, described)
        self._unsynced += 1
        return self.log_path(outcome.id) if kept else ""

    def _write(self, line: dict[str, Any], described: str) -> None:
        if self._record is None:
            msg = "the store is not open for writing; use it as `with Store(...) as store:`"
            raise StoreError(msg)
        if self._broken is not None:
            raise self._broken
        text = _dumps(line)
        try:
            self._record.write(f"{text[:-1]},{described}{self._stamp}}}\n".encode())
        except OSError as error:
            raise self._cannot_write(error, self.record_path) from None

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
        if size < offset or (head is not None and head != _hash(start[:offset])):
            return _Compacted(0, table, clashes, 0, intact=False)
        return _Compacted(offset, table, clashes, damaged)

    def compact(self) -> None:
        """Bring results.parquet up to date with the record, atomically.

        Reads only the record past what results.parquet already holds, unless the class's
        fields changed since (then the whole record, to re-key the stored settings).
        """
        import polars as pl

        stored = self._compacted(read=False)
        if stored is not None and not stored.intact:
            self._restore()  # the record holds again every outcome the table holds
            stored = None  # and the table is made anew from the record alone
        offset = 0 if stored is None else stored.offset
        lines, end, damaged = _read_record(self.record_path, offset)
        if not lines and not damaged and stored is not None:
            return
        clashes = {} if stored is None else stored.clashes
        damaged += 0 if stored is None else stored.damaged
        rows = _rows(lines, self.fields, self.defaults, live=False, logs=self._logs)
        new = _frame(rows, self.types, clashes)
        if stored is not None:
            base = _conform(pl.read_parquet(self.results_path), self.types)
            new = _concat([base, new], clashes)
        table = _latest(new)
        head = _hash(_start(self.record_path)[1][:end])
        info = {
            "offset": end,
            "fields": list(self.fields),
            "clashes": clashes,
            "damaged": damaged,
            "head": head,
        }
        meta = {_META_KEY: json.dumps(info)}
        _atomic_write(self.results_path, lambda f: table.write_parquet(f, metadata=meta))
        with contextlib.suppress(FileNotFoundError):
            (self.folder / META).unlink()  # where earlier versions kept the offset

    def _restore(self) -> None:
        """Append to the record every outcome results.parquet holds and it lost.

        Called holding the lock, when the record no longer holds what the table was made
        from (see :meth:`_compacted`); the lines are synced before the table is rebuilt.
        """
        stored = self._compacted()
        if stored is None or stored.table is None:
            return
        lines, _, _ = _read_record(self.record_path, 0)
        rows = _rows(lines, self.fields, self.defaults, live=False)
        lost = _lost(stored.table, rows, self.fields, self.types)
        if not lost:
            return
        text = "".join(f"{_dumps(line)}\n" for line in lost).encode()
        with open(self.record_path, "ab", opener=_opener) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        self.restored += len(lost)

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
        if recorded.get("class") == ours.get("class") and (
            None in (recorded.get("file"), ours.get("file"))  # a class with no file, given
            or recorded.get("file") == ours.get("file")  # folder=, is known by its name
            or recorded.get("path") == ours.get("path")
        ):
            return recorded
        msg = (
            f"{self.folder} holds the results of {named(recorded)!r}, not of "
            f"{named(ours)!r}; give this experiment a folder of its own (folder= in "
            "Python, SUPERPARAMS_PROGRESS for the command) or rename its class (if it is "
            f"the same experiment, moved, delete {self.folder / EXPERIMENT})"
        )
        raise StoreConflictError(msg)

    def table(self) -> pl.DataFrame:
        """Every stored setting's latest outcome, including a run in progress.

        Raises:
            StoreConflictError: the folder holds the results of another experiment.
            StoreError: the record could not be read (permissions, not a file).
        """
        self.check()
        try:
            return self._table()[0]
        except OSError as error:
            where = error.filename if isinstance(error.filename, str) else self.folder
            msg = f"could not read {where}: {error.strerror or error}; nothing was changed"
            raise StoreError(msg) from None

    def clashes(self, label: Callable[[str], str | None] | None = None) -> list[str]:
        """What the table stores as text because its settings disagree on a column's type.

        One sentence per column, naming the settings by ``label(id)`` (a space's own
        labels), else by the label stored with them. Read from results.parquet alone
        when the record holds nothing past it (as after a run).
        """
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
        return before + _read_record(self.record_path, offset)[2]

    def _table(self) -> tuple[pl.DataFrame, Clashes]:
        stored = self._compacted()
        # never compacted, or compacted for other fields: read the whole record
        offset, base, clashes = 0, None, {}
        if stored is not None:
            offset, base, clashes = stored.offset, stored.table, stored.clashes
        lines, _, _ = _read_record(self.record_path, offset)
        if stored is not None and not stored.intact and base is not None:
            # The record lost what the table holds: read both, as the next run will
            # restore them (see _restore).
            found = _rows(lines, self.fields, self.defaults, live=False)
            lines += _lost(base, found, self.fields, self.types)
            base = None
        live = self.is_locked()
        rows = _rows(lines, self.fields, self.defaults, live=live, logs=self._logs)
        tail = _frame(rows, self.types, clashes)
        frames = [f for f in (base, tail) if f is not None and f.height]
        if not frames:
            return _frame([], self.types), clashes
        return _latest(_concat(frames, clashes)), clashes

    def count(self) -> int:
        """How many settings the folder stores an outcome (or a start) of."""
        return self.table()["id"].n_unique()

    def plan(self, space: Space[Any], code_version: str | None = None) -> Plan:
        """Sort a space's settings by what the store knows of them.

        A setting that stands twice in the space (in both parts of a union, say) is
        planned once, at its first position. With ``code_version`` (the current code's),
        completed settings stored with another version are also *outdated*; a row stored
        with no version (before versions were recorded) is not: its code is unknown.
        """
        import polars as pl

        ids = list(space._sp_ids())
        table = self.table() if self.folder.exists() else _frame([], self.types)
        stored = table.select("id", "status", "code_version").unique(
            subset="id", keep="first", maintain_order=True
        )
        positions = (
            pl.DataFrame({"id": ids}, schema={"id": pl.String})
            .with_row_index("position")
            .unique(subset="id", keep="first", maintain_order=True)
        )
        joined = positions.join(stored, on="id", how="left", maintain_order="left")
        status = pl.col("status")

        def where(condition: pl.Expr) -> list[int]:
            return joined.filter(condition)["position"].to_list()

        return Plan(
            new=where(status.is_null()),
            done=where(status == "completed"),
            outdated=[]
            if code_version is None
            else where((status == "completed") & (pl.col("code_version") != code_version)),
            failed=where(status == "failed"),
            interrupted=where(status.is_in(["completed", "failed"]).not_()),
            stale=stored.join(positions, on="id", how="anti")["id"].to_list(),
            ids=ids,
        )

    def is_locked(self) -> bool:
        """Whether a run is writing to this folder right now."""
        path = self.folder / LOCK
        if self._lock_file is not None:
            return True
        if not path.exists():
            return False
        with open(path, opener=_opener) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
        return False

    def clean(self) -> None:
        """Remove every stored result and log of this experiment."""
        import shutil

        if not self.folder.exists():
            return
        with self:  # holding the lock: never clean under a running run
            for name in (RECORD, RESULTS, META):
                with contextlib.suppress(FileNotFoundError):
                    (self.folder / name).unlink()
            shutil.rmtree(self.folder / LOGS, ignore_errors=True)
            self._record.close()
            self._record = None
        shutil.rmtree(self.folder, ignore_errors=True)


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


def open_in_store(path: str | os.PathLike[str], flags: int, mode: int = 0o644) -> int:
    """A descriptor of a file inside a results folder, opened as itself, never through a
    symbolic link (the folder itself may be one).

    Raises:
        StoreWriteError: ``path`` is a symbolic link.
    """
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            raise StoreWriteError(linked(path)) from None
        raise


def linked(path: str | os.PathLike[str]) -> str:
    """What a user reads about a link planted inside a results folder."""
    return (
        f"{os.fspath(path)!r} is a symbolic link; superparams never reads or writes "
        "through a link inside a results folder: remove it, then run again"
    )


def _opener(path: str, flags: int) -> int:
    return open_in_store(path, flags)


def _refuse_links(folder: Path, *, logs: bool = False) -> None:
    """Refuse a folder where a file or folder of the store is a link (with ``logs``,
    where a setting's log is one): read or written through, it would reach any file.

    Raises:
        StoreWriteError: naming the first link found.
    """
    for name in (LOCK, RECORD, EXPERIMENT, LOGS):
        if os.path.islink(folder / name):
            raise StoreWriteError(linked(folder / name))
    if logs:
        with contextlib.suppress(FileNotFoundError), os.scandir(folder / LOGS) as entries:
            for entry in entries:
                if entry.is_symlink():
                    raise StoreWriteError(linked(entry.path))


def _make_folders(path: Path) -> None:
    """Make a folder and its missing parents, none writable by group or others whatever
    the umask. A folder that exists (or a link to one) is left as it is."""
    missing = []
    while not path.is_dir() and path != path.parent:
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o755)
        except FileExistsError:
            if folder.is_dir():
                continue
            raise
        mode = stat.S_IMODE(os.stat(folder).st_mode)
        if mode & 0o022:  # a default ACL can grant what the umask would not
            os.chmod(folder, mode & ~0o022)


def _lock(file: Any) -> bool:
    """Take the folder's lock for writing, or say that a run holds it.

    A reader asking :meth:`Store.is_locked` holds the lock (shared) for an instant; a
    writer waits that out rather than take the reader for another run.
    """
    deadline = time.monotonic() + LOCK_PATIENCE
    while True:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)


@dataclass
class _Compacted:
    """What results.parquet holds: see :meth:`Store._compacted`."""

    offset: int  # how far into the record the table goes
    table: pl.DataFrame | None
    clashes: Clashes
    damaged: int  # damaged lines of the record before the offset
    intact: bool = True  # the record still holds what the table was made from


_HEAD = 4096  # bytes of the record's start whose hash results.parquet keeps


def _start(path: Path) -> tuple[int, bytes]:
    """The record's size and its first 4 KiB (0 and nothing if there is no record)."""
    try:
        with open(path, "rb", opener=_opener) as f:
            return os.fstat(f.fileno()).st_size, f.read(_HEAD)
    except FileNotFoundError:
        return 0, b""


def _hash(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()[:16]


def _lost(
    table: pl.DataFrame,
    rows: list[dict[str, Any]],
    fields: tuple[str, ...],
    types: Mapping[str, str],
) -> list[dict[str, Any]]:
    """Record lines for the outcomes ``table`` holds and the record's ``rows`` do not.

    A stored outcome is lost unless the record holds one of the same setting that
    started as late or later (a backup may hold an older one: a failure the table holds
    the completion of). An interrupted setting is lost if the record does not name it.
    The lines carry no encodings: they are ``keyed`` by the fields they were stored for.
    """
    import polars as pl

    held: dict[str, int] = {}  # id -> when its latest recorded outcome started, in µs
    named = set()
    for row in rows:
        named.add(row["id"])
        started = row.get("started")
        if "started" in row and isinstance(started, (int, float)):
            micros = round(started * 1_000_000)
            held[row["id"]] = max(held.get(row["id"], micros), micros)
    if table.is_empty():
        return []
    table = table.with_columns(pl.col("started").dt.epoch("us").alias("started"))
    params = [
        c
        for c in table.columns
        if c in types or c in fields or ("." in c and c.split(".")[0] in fields)
    ]
    skip = {"id", "label", *BOOKKEEPING, *params}
    out: list[dict[str, Any]] = []
    for group in table.partition_by("id", maintain_order=True):
        settings = group.to_dicts()
        first = settings[0]
        sid = first["id"]
        if first["started"] is None:  # interrupted: stored from its started line
            if sid in named:
                continue
            line: dict[str, Any] = {"event": "started", "id": sid}
        else:
            if held.get(sid, -1) >= first["started"]:
                continue
            line = {"event": "outcome", "id": sid, "status": first["status"]}
        line["attempt"] = first["attempt"] or 1
        if line["event"] == "outcome":
            line["started"] = first["started"] / 1_000_000
            line["rows"] = [
                {k: v for k, v in r.items() if k not in skip and v is not None} for r in settings
            ]
            for name in ("seconds", "log", "cause", "error", "traceback"):
                line[name] = first[name]
        line["worker"] = first["worker"]
        line["label"] = first["label"]
        line["params"] = {c: first[c] for c in params}
        line["keyed"] = list(fields)
        for name in ("code_version", "git_commit", "git_dirty"):
            line[name] = first[name]
        out.append(line)
    return out


# -- the record ------------------------------------------------------------------------


def describe(label: str, params: Mapping[str, Any], enc: Mapping[str, str]) -> str:
    """A setting's label, parameters and encodings as record text, for every line of it.

    Made once per setting: its started and outcome lines both carry it.
    """
    return _dumps({"label": label, "params": params, "enc": enc})[1:-1]


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_jsonable, separators=(",", ":"), allow_nan=True)


def _jsonable(value: Any) -> Any:
    """A JSON stand-in for a value run() returned that JSON has no type for."""
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()  # a numpy scalar
    if hasattr(value, "tolist"):
        return value.tolist()  # an array
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _cut_torn_tail(path: Path) -> None:
    """Drop a last line that a crash left without its newline."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return
    with open(path, "rb+", opener=_opener) as f:
        f.seek(max(0, size - 1))
        if f.read(1) == b"\n":
            return
        chunk = 1 << 16
        pos = size
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            data = f.read(pos - start)
            nl = data.rfind(b"\n")
            if nl >= 0:
                f.truncate(start + nl + 1)
                return
            pos = start
        f.truncate(0)


def _read_record(path: Path, offset: int) -> tuple[list[dict[str, Any]], int, int]:
    """The whole lines of the record from ``offset``, the offset after them, and how
    many lines were damaged: not JSON, or not of the shape the store writes (see
    :func:`_intact`). Damaged lines are skipped: each costs at most its setting's line.
    """
    try:
        with open(path, "rb", opener=_opener) as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset, 0
    end = data.rfind(b"\n") + 1  # a torn last line is not read
    lines = []
    damaged = 0
    for raw in data[:end].split(b"\n")[:-1]:
        try:
            line = json.loads(raw)
        except (ValueError, RecursionError):  # torn by a crash, NUL bytes, not UTF-8
            damaged += 1
            continue
        if _intact(line):
            lines.append(line)
        else:
            damaged += 1
    return lines, offset + end, damaged


_TEXT = (str, type(None))
_NUMBER = (int, float, type(None))
# What each key of a started or outcome line holds, when it is there.
_SHAPE: dict[str, tuple[type, ...]] = {
    "label": _TEXT,
    "params": (dict, type(None)),
    "enc": (dict, type(None)),
    "worker": (int, type(None)),
    "code_version": _TEXT,
    "git_commit": _TEXT,
    "git_dirty": (bool, type(None)),
    "keyed": (list,),
}
_OUTCOME_SHAPE: dict[str, tuple[type, ...]] = {
    **_SHAPE,
    "status": (str,),
    "started": _NUMBER,
    "seconds": _NUMBER,
    "log": _TEXT,
    "rows": (list, type(None)),
    "cause": _TEXT,
    "error": _TEXT,
    "traceback": _TEXT,
}


def _intact(line: Any) -> bool:
    """Whether a record line has the shape the store writes it in.

    A started or outcome line has a text ``id``, a whole ``attempt``, and each other key
    of the type it is written with; an outcome's rows are objects. A line of another
    event (from a later version) is intact, and ignored.
    """
    if type(line) is not dict:
        return False
    event = line.get("event")
    if event not in ("started", "outcome"):
        return type(event) is str
    if type(line.get("id")) is not str or type(line.get("attempt")) is not int:
        return False
    shape = _OUTCOME_SHAPE if event == "outcome" else _SHAPE
    for key, types in shape.items():
        if key in line:
            value = line[key]
            if not isinstance(value, types) or (type(value) is bool and bool not in types):
                return False
    if event == "outcome" and "status" not in line:
        return False
    rows = line.get("rows") or ()
    enc = line.get("enc") or {}
    return (
        all(type(row) is dict for row in rows)
        and all(type(v) is str for v in enc.values())
        and all(type(name) is str for name in line.get("keyed", ()))
    )


def _rows(
    lines: list[dict[str, Any]],
    fields: tuple[str, ...],
    defaults: Mapping[str, tuple[str, Any]],
    *,
    live: bool,
    logs: str = "",
) -> list[dict[str, Any]]:
    """Result rows from record lines: each outcome's rows, and interrupted settings.

    A setting that started and has no outcome after it was interrupted, or, while a run
    holds the folder (``live``), is running; its log is what it printed so far (in
    ``logs``, the folder's logs), or None.
    """
    rows: list[dict[str, Any]] = []
    open_starts: dict[str, tuple[int, dict[str, Any]]] = {}
    for number, line in enumerate(lines):
        sid = str(line.get("id"))
        if line.get("event") == "started":
            open_starts[sid] = (number, line)
            continue
        if line.get("event") != "outcome":
            continue
        open_starts.pop(sid, None)
        params = dict(line.get("params") or {})
        enc = line.get("enc") or {}
        if "keyed" in line and "enc" not in line:  # restored from results.parquet
            if fields and line["keyed"] != list(fields):
                continue  # its encodings are not known: it cannot be re-keyed
        elif fields and set(enc) != set(fields):
            rekeyed = _rekey(enc, params, fields, defaults)
            if rekeyed is None:
                continue  # run with fields the class no longer has: it is not this class's
            sid = rekeyed
        base = {"id": sid, "label": line.get("label"), **params}
        log = line.get("log") or None
        if log is not None and log[0] == os.sep:  # made by an earlier version: absolute
            log = f"{LOGS}/{os.path.basename(log)}"
        book = {
            "status": line.get("status"),
            "attempt": line.get("attempt"),
            "cause": line.get("cause"),
            "error": line.get("error"),
            "traceback": line.get("traceback"),
            "started": line.get("started"),
            "seconds": line.get("seconds"),
            "worker": line.get("worker"),
            "log": log,
            "code_version": line.get("code_version"),
            "git_commit": line.get("git_commit"),
            "git_dirty": line.get("git_dirty"),
        }
        results = line.get("rows") or [{}]
        for result in results:
            row = dict(base)
            for key, val in result.items():
                row[f"result.{key}" if key in base or key in book else key] = val
            row.update(book)
            row[_SEQ] = number
            rows.append(row)
    for sid, (number, start) in open_starts.items():
        log = f"{LOGS}/{sid}.log"
        try:
            printed = os.stat(f"{logs}{sid}.log").st_size > 0 if logs else False
        except OSError:
            printed = False
        params = dict(start.get("params") or {})
        enc = start.get("enc") or {}
        if "keyed" in start and "enc" not in start:  # restored from results.parquet
            if fields and start["keyed"] != list(fields):
                continue
        elif fields and enc and set(enc) != set(fields):
            rekeyed = _rekey(enc, params, fields, defaults)
            if rekeyed is None:
                continue
            sid = rekeyed
        rows.append(
            {
                "id": sid,
                "label": start.get("label"),
                **params,
                "status": "running" if live else "interrupted",
                "attempt": start.get("attempt"),
                "cause": None if live else "interrupted",
                "worker": start.get("worker"),
                "log": log if printed else None,
                _SEQ: number,
                "code_version": start.get("code_version"),
                "git_commit": start.get("git_commit"),
                "git_dirty": start.get("git_dirty"),
            }
        )
    return rows


def _rekey(
    enc: Mapping[str, str],
    params: dict[str, Any],
    fields: tuple[str, ...],
    defaults: Mapping[str, tuple[str, Any]],
) -> str | None:
    """The id a setting stored under other fields has now, or None if it has none.

    A stored setting lacking a field that now has a constant default counts as run with
    that default; one with a field the class no longer has does not belong to it.
    """
    if set(enc) - set(fields):
        return None
    full = dict(enc)
    for name in fields:
        if name not in full:
            if name not in defaults:
                return None
            full[name], params[name] = defaults[name]  # fills in the column too
    return setting_id(full)


# -- the table's types -----------------------------------------------------------------

#: Columns stored as text because their settings disagree on the type: column -> kind of
#: value ("numbers", "text", ...) -> [id, label] of the first setting found holding it.
Clashes = dict[str, dict[str, list[str]]]

_IDENTITY = {"id": "String", "label": "String"}  # the columns every table starts with
_SCALAR_TYPES = {bool: "Boolean", int: "Int64", float: "Float64", str: "String"}
# What a column holds, by the Python type of its values (as read back from JSON).
_KINDS = {int: "numbers", float: "numbers", bool: "booleans", str: "text", list: "lists"}
_KIND_ORDER = ("numbers", "booleans", "text", "lists", "mappings")
# The Python types of values a typed column takes as they are.
_FITS: dict[str, set[type]] = {
    "Int64": {int},
    "Float64": {int, float},
    "Boolean": {bool},
    "String": {str},
}


def column_types(cls: type[Experiment], prefix: str = "") -> dict[str, str]:
    """The polars type of each parameter column of an experiment class, by annotation.

    A nested experiment gives its fields' dotted columns (``model.width``). A field
    whose annotation fixes no type (``Any``, a union, a class of the user's) is left
    out: its column is typed by its values.
    """
    from superparams.experiment import Experiment

    info = cls._sp_info()
    out: dict[str, str] = {}
    for name in (*info.fields, *(n for n, _ in info.derived)):
        annotation = _unoptional(info.annotations.get(name))
        if isinstance(annotation, type) and issubclass(annotation, Experiment):
            out.update(column_types(annotation, f"{prefix}{name}."))
            continue
        dtype = _annotation_type(annotation)
        if dtype is not None:
            out[f"{prefix}{name}"] = dtype
    return out


def _unoptional(annotation: Any) -> Any:
    """``X`` for ``X | None`` and ``Optional[X]``; any other annotation as it is."""
    import types
    import typing

    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def _annotation_type(annotation: Any) -> str | None:
    """The column type of a parameter annotated ``annotation``, if it fixes one."""
    import enum
    import typing
    from collections.abc import Mapping, Sequence
    from pathlib import PurePath

    if isinstance(annotation, type):
        if annotation in _SCALAR_TYPES:
            return _SCALAR_TYPES[annotation]
        if issubclass(annotation, (PurePath, enum.Enum, dict)):
            return "String"  # a path's text, an enum member's name, a dict's JSON
        return None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        kinds = {_SCALAR_TYPES.get(type(a)) for a in args}
        if kinds == {"Int64", "Float64"}:
            return "Float64"
        return kinds.pop() if len(kinds) == 1 else None
    if origin in (dict, Mapping):
        return "String"
    homogeneous = origin is tuple and len(args) == 2 and args[1] is Ellipsis
    if (origin in (list, Sequence) and len(args) == 1) or homogeneous:
        inner = args[0]
        return f"List({_SCALAR_TYPES[inner]})" if inner in _SCALAR_TYPES else None
    return None


def _dtype(name: str) -> pl.DataType:
    """The polars type a type name of :data:`BOOKKEEPING` or :func:`column_types` means."""
    import polars as pl

    if name.startswith("List("):
        return pl.List(_dtype(name[5:-1]))
    if name == "Datetime(us, UTC)":
        return pl.Datetime("us", "UTC")
    dtype: pl.DataType = getattr(pl, name)()
    return dtype


def _frame(
    rows: list[dict[str, Any]],
    types: Mapping[str, str] | None = None,
    clashes: Clashes | None = None,
) -> pl.DataFrame:
    """A typed table from rows whose values may differ in type between rows.

    The bookkeeping columns and the parameter columns in ``types`` have their fixed
    types (a parameter's values that do not fit it are typed as they fall); the rest
    are typed by their values. Columns stored as text because their values disagree
    are added to ``clashes``.
    """
    import polars as pl

    types = types or {}
    columns: dict[str, None] = {"id": None, "label": None}
    for row in rows:
        columns.update(dict.fromkeys(row))
    columns.update(dict.fromkeys(types))
    for name in _nested(types):  # a nested experiment's class, in records made before
        columns.pop(name, None)
    for name in BOOKKEEPING:  # last, in their order
        columns.pop(name, None)
        columns[name] = None
    data = []
    for name in columns:
        values = [row.get(name) for row in rows]
        fixed = BOOKKEEPING.get(name) or _IDENTITY.get(name) or types.get(name)
        series = None if fixed is None else _typed(name, values, fixed)
        if series is None:
            series, kinds = _series(name, values)
            if len(kinds) > 1 and clashes is not None:
                found = clashes.setdefault(name, {})
                for kind, at in kinds.items():
                    found.setdefault(kind, [str(rows[at].get("id")), rows[at].get("label") or ""])
        data.append(series)
    return pl.DataFrame(data)


def _nested(types: Mapping[str, str]) -> set[str]:
    """The names of nested experiments among the columns ``types`` gives: ``model``."""
    out: set[str] = set()
    for name in types:
        parts = name.split(".")[:-1]
        out.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return out - set(types)


def _typed(name: str, values: list[Any], dtype_name: str) -> pl.Series | None:
    """A column of a fixed type, or None for a parameter whose values do not fit it."""
    import polars as pl

    dtype = _dtype(dtype_name)
    if name == "started" and name in BOOKKEEPING:  # seconds since the epoch, UTC
        seconds = pl.Series(name, values, pl.Float64, strict=False)
        micros = (seconds * 1_000_000).cast(pl.Int64)
        started: pl.Series = pl.from_epoch(micros, time_unit="us").dt.replace_time_zone("UTC")
        return started
    if name in BOOKKEEPING or name in _IDENTITY:  # written by the store itself
        return pl.Series(name, values, dtype, strict=False)
    kinds = {type(v) for v in values if v is not None}
    fits = _FITS.get(dtype_name)
    if fits is not None and kinds <= fits:
        if not (int in kinds and dtype_name == "Int64" and not _all_int64(values)):
            return pl.Series(name, values, dtype)
    elif fits is None and kinds <= {list}:  # a list type: its items are checked by polars
        inner = _FITS.get(dtype_name[5:-1], set())
        if all(type(v) in inner for x in values if x for v in x):
            with contextlib.suppress(TypeError, ValueError, pl.exceptions.PolarsError):
                return pl.Series(name, values, dtype)
    return None


_INT64 = (-(2**63), 2**63 - 1)


def _all_int64(values: list[Any]) -> bool:
    return all(type(v) is not int or _INT64[0] <= v <= _INT64[1] for v in values)


def _series(name: str, values: list[Any]) -> tuple[pl.Series, dict[str, int]]:
    """A column typed by its values, and where each kind of value is first met in it.

    Ints and floats make floats; values of other kinds together (numbers and text, say)
    make text, and more than one kind comes back.
    """
    import polars as pl

    types = {type(v) for v in values if v is not None}
    kinds: dict[str, int] = {}
    if len({_KINDS.get(t, t.__name__) for t in types}) > 1:
        for at, v in enumerate(values):
            if v is not None:
                kinds.setdefault(_KINDS.get(type(v), type(v).__name__), at)
        text = [v if v is None or type(v) is str else _dumps(v) for v in values]
        return pl.Series(name, text, pl.String), kinds
    if int in types and not _all_int64(values):
        # Past 64 bits polars makes Int128, which pandas and most readers cannot open:
        # such numbers are kept exactly, as text.
        return pl.Series(name, [None if v is None else str(v) for v in values], pl.String), kinds
    if types == {int, float}:  # an int in one setting, a float in another: all floats
        return pl.Series(name, values, dtype=pl.Float64, strict=False), kinds
    if types <= {int} or types <= {float} or types <= {bool} or types <= {str}:
        return pl.Series(name, values), kinds
    try:
        series = pl.Series(name, values, strict=False)
    except (TypeError, ValueError, pl.exceptions.PolarsError):
        series = None
    if series is None or series.dtype == pl.Object:  # parquet cannot hold Object columns
        return pl.Series(name, [None if v is None else _dumps(v) for v in values], pl.String), kinds
    return series, kinds


def _kind(dtype: pl.DataType) -> str:
    """What a column of this type holds, in the words of :data:`_KINDS`."""
    import polars as pl

    if dtype == pl.Boolean:
        return "booleans"
    if dtype.is_numeric():
        return "numbers"
    if dtype == pl.String:
        return "text"
    if isinstance(dtype, (pl.List, pl.Array)):
        return "lists"
    if isinstance(dtype, pl.Struct):
        return "mappings"
    return str(dtype)


def _concat(frames: list[pl.DataFrame], clashes: Clashes | None = None) -> pl.DataFrame:
    """Tables one after the other, their columns' types reconciled, bookkeeping last.

    Numbers widen to floats; a column holding different kinds of values in different
    tables becomes text, and is added to ``clashes``.
    """
    import polars as pl

    kept = [f for f in frames if f.height]
    if len(kept) <= 1:
        return kept[0] if kept else frames[0]
    frames = kept
    dtypes: dict[str, set[pl.DataType]] = {}
    for f in frames:
        for name, dtype in f.schema.items():
            if f[name].null_count() < f.height:  # a column of nulls holds no kind of value
                dtypes.setdefault(name, set()).add(dtype)
    mixed = [n for n, ds in dtypes.items() if len({_kind(d) for d in ds}) > 1]
    if mixed:
        clashes = {} if clashes is None else clashes
        for name in mixed:
            found = clashes.setdefault(name, {})
            for f in frames:
                if name not in f.columns or f[name].null_count() == f.height:
                    continue
                if f.schema[name] == pl.String and len(found) > 1:
                    continue  # text already, from a clash found before
                first = f.filter(pl.col(name).is_not_null()).row(0, named=True)
                found.setdefault(_kind(f.schema[name]), [first["id"], first.get("label") or ""])
        frames = [f.with_columns(_text(f[c]) for c in mixed if c in f.columns) for f in frames]
    try:
        table = pl.concat(frames, how="diagonal_relaxed")
    except pl.exceptions.PolarsError:
        # Lists whose items cannot be reconciled (ints here, text there): as text.
        every: dict[str, set[pl.DataType]] = {}
        for f in frames:
            for name, dtype in f.schema.items():
                every.setdefault(name, set()).add(dtype)
        nested = [n for n, ds in every.items() if len(ds) > 1 and any(d.is_nested() for d in ds)]
        frames = [f.with_columns(_text(f[c]) for c in nested if c in f.columns) for f in frames]
        table = pl.concat(frames, how="diagonal_relaxed")
    book = [c for c in BOOKKEEPING if c in table.columns]
    return table.select(*(c for c in table.columns if c not in BOOKKEEPING), *book)


def _text(column: pl.Series) -> pl.Series:
    """A column as text: the common ground of types that cannot be reconciled."""
    import polars as pl

    if column.dtype == pl.String:
        return column
    if column.dtype.is_nested() or column.dtype == pl.Object:  # lists cannot be cast
        values = [None if v is None else _dumps(v) for v in column.to_list()]
        return pl.Series(column.name, values, pl.String)
    if column.dtype == pl.Boolean:  # as JSON writes them, like a clash within one table
        words: pl.Series = column.replace_strict(
            {True: "true", False: "false"}, return_dtype=pl.String
        )
        return words
    text: pl.Series = column.cast(pl.String, strict=False)
    return text


def _conform(table: pl.DataFrame, types: Mapping[str, str]) -> pl.DataFrame:
    """A stored table in today's types: results.parquet made by an earlier version may
    lack a type (null columns), hold naive times, absolute log paths, or a nested
    experiment's class name."""
    import polars as pl

    schema = table.schema
    fixes = []
    for name, dtype_name in (*BOOKKEEPING.items(), *types.items()):
        if name not in schema:
            if name in BOOKKEEPING:
                fixes.append(pl.lit(None, _dtype(dtype_name)).alias(name))
        elif schema[name] == pl.Null:
            fixes.append(pl.col(name).cast(_dtype(dtype_name)))
    if "started" in schema and schema["started"] == pl.Datetime("us"):
        fixes.append(pl.col("started").dt.replace_time_zone("UTC"))
    if "log" in schema and schema["log"] == pl.String:
        log = table["log"]
        if log.str.starts_with(os.sep).any() or (log == "").any():
            fixes.append(
                pl.when(pl.col("log") == "")
                .then(None)
                .otherwise(pl.col("log").str.replace(r"^.*/", f"{LOGS}/"))
                .alias("log")
            )
    drop = [n for n in _nested(types) if n in schema]
    if not fixes and not drop:
        return table
    table = table.drop(drop).with_columns(fixes)
    book = [c for c in BOOKKEEPING if c in table.columns]
    return table.select(*(c for c in table.columns if c not in BOOKKEEPING), *book)


def _clash_text(name: str, kinds: Mapping[str, str]) -> str:
    """What a user reads about a column stored as text because its settings disagree."""
    order = sorted(kinds, key=lambda k: _KIND_ORDER.index(k) if k in _KIND_ORDER else 99)
    if len(order) == 2:
        what = f"both {order[0]} and {order[1]}"
    else:
        what = f"{', '.join(order[:-1])} and {order[-1]}"
    settings = ", ".join(kinds[k] for k in order)
    return f"column {name!r} holds {what} (settings {settings}); it is stored as text"


# A column the rows read from the record carry until :func:`_latest` drops it: the line
# each came from, so the latest outcome is the last one recorded (attempts restart at 1
# in every run: a rerun is not a retry).
_SEQ = "__record_line"


def _latest(table: pl.DataFrame) -> pl.DataFrame:
    """Only the rows of each setting's latest outcome: the last recorded, per id.

    Rows without a record line come from results.parquet, which holds one outcome per
    setting from before the lines read; so they are older than any line.
    """
    import polars as pl

    if _SEQ not in table.columns:
        return table  # results.parquet alone: one outcome per setting already
    if table.is_empty():
        return table.drop(_SEQ)
    line = pl.col(_SEQ).fill_null(-1)
    return table.filter(line == line.max().over("id")).drop(_SEQ)


def _atomic_write(path: Path, write: Any) -> None:
    """Replace ``path``, whole or not at all, by what ``write`` writes into the binary file
    it is given: a temporary file, synced, then renamed.

    The temporary file is made new (a leftover or a link at its name is removed, never
    followed), writable by its owner only.

    Raises:
        OSError: for ``path``, if it could not be written (a polars error that is one,
            such as no space left, too); the temporary file is removed.
    """
    import re

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        try:
            fd = open_in_store(tmp, flags)
        except FileExistsError:
            os.unlink(tmp)
            fd = open_in_store(tmp, flags)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except Exception as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        code = error.errno if isinstance(error, OSError) else None
        found = re.search(r"\(os error (\d+)\)", str(error))
        if code is None and found is not None:
            code = int(found.group(1))
        if code is None:
            raise
        raise OSError(code, os.strerror(code), str(path)) from error
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
