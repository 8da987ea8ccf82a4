"""The read side of a results folder: every reader of it, none of which writes.

:class:`Reader` reads a folder as it is: the table of every setting's latest outcome
(results.parquet, then the record past what it holds), each setting's status, the plan
of a space, what results.parquet holds and whether the record still holds what it was
made from (:meth:`Reader.compacted`), the experiment the folder records. It cuts no torn
tail, restores nothing and writes nothing: a record whose start was lost is read
together with results.parquet, as the next run will restore it. Whether a run holds the
folder it asks the lock for an instant, shared and never waiting
(:func:`~superparams._store._lock.is_held`).

The one incremental reader of the record: :class:`Follower` reads the rows recorded
since a byte offset of ``record.jsonl``, with the store's own line parser and row maker
(:mod:`superparams._store._record`), and says which settings they belong to. It cuts no
torn tail, restores nothing and takes no lock, not even for an instant: whether a run
holds the folder is read from the kernel's table of locks
(:func:`~superparams._store._lock.held`). A reader that follows a run (``experiment
view``) reads the folder through :func:`reader` once, then asks its follower every
second or so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superparams._store._columns import BOOKKEEPING
from superparams._store._environments import from_record, read_environments
from superparams._store._layout import (
    EXPERIMENT,
    HISTORY,
    LOGS,
    META_KEY,
    RECORD,
    RESULTS,
    WORK,
    opener,
    refuse_links,
    refuse_newer,
)
from superparams._store._location import identity_of, location, named, trust
from superparams._store._lock import held, holder, is_held
from superparams._store._plan import Plan, Status, sorted_by_store
from superparams._store._record import (
    QUEUED_BEFORE,
    SEQ,
    head_damage,
    head_digest,
    make_rows,
    open_rows,
    queued_engines,
    read_record,
    record_chunks,
    record_start,
    uncollected,
)
from superparams._store._study import read_sampler_states, read_search
from superparams._store._table import (
    Clashes,
    clash_text,
    concat,
    conform_table,
    kept_once,
    lost_outcomes,
    make_frame,
    split_outcomes,
)
from superparams.errors import StoreConflictError, StoreError, StoreWriteError

if TYPE_CHECKING:
    import polars as pl
    from typing_extensions import Self

    from superparams._experiment import Experiment
    from superparams._space import Space


@dataclass
class Compacted:
    """What results.parquet holds: see :meth:`Reader.compacted`."""

    offset: int  # how far into the record the table goes
    table: pl.DataFrame | None
    clashes: Clashes
    damaged: int  # damaged lines of the record before the offset
    intact: bool = True  # the record still holds what the table was made from
    # Settings whose lines in the record's start are damaged (the table holds them
    # whole): the next run writes their outcomes to the record again.
    mend: list[str] = field(default_factory=list)
    # How many rows history.parquet held when the table was written, which hold every
    # outcome the record before the offset replaced; None for a table written before
    # history.parquet was (see Compactor.compact).
    kept: int | None = None


class Reader:
    """The results folder of one experiment class, as read: never locked, never written.

    Every reader of a folder is here: the table of its outcomes, each setting's status,
    the plan of a space, what results.parquet holds, and the rows recorded since a
    position (:class:`Follower`). The writer (:class:`~superparams._store._writer.Store`)
    is one of these that also takes the lock and writes.
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
        self.fields = tuple(fields)
        # Each field's constant default as (encoding, value): what an added field means
        # for the settings stored before it existed.
        self.defaults = dict(defaults or {})
        # The polars type of each parameter column its annotation fixes (see _columns).
        self.types = dict(types or {})
        # The last table read, and the state of the files it was read from.
        self._last: tuple[tuple[Any, ...], tuple[pl.DataFrame, Clashes]] | None = None
        self.trust()  # before anything is read from it

    @classmethod
    def for_class(
        cls: type[Self],
        experiment: type[Experiment],
        folder: Path | str | None = None,
        fields: Iterable[str] = (),
        defaults: Mapping[str, tuple[str, Any]] | None = None,
        types: Mapping[str, str] | None = None,
    ) -> Self:
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

    @property
    def history_path(self) -> Path:
        return self.folder / HISTORY

    def log_path(self, setting_id: str) -> str:
        """Where a setting's log goes (a string: it is made for every setting)."""
        return f"{self._logs}{setting_id}.log"

    # -- who the folder is for ----------------------------------------------------------

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
            with open(folder / EXPERIMENT, "rb", opener=opener) as f:
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

    # -- results.parquet ------------------------------------------------------------------

    def compacted(self, *, read: bool = True) -> Compacted | None:
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
            f = open(self.results_path, "rb", opener=opener)  # noqa: SIM115  # closed below
        except (FileNotFoundError, StoreWriteError):
            return None  # none, or a link: rebuilt from the record, and replaced
        with f:
            try:
                meta = json.loads(pl.read_parquet_metadata(f).get(META_KEY) or "{}")
                if meta.get("fields") != list(self.fields):
                    return None
                f.seek(0)
                table = conform_table(pl.read_parquet(f), self.types) if read else None
                offset, clashes = int(meta.get("offset", 0)), dict(meta.get("clashes") or {})
                damaged = int(meta.get("damaged", 0))
                kept = meta.get("history")
                kept = kept if type(kept) is int else None
            except (pl.exceptions.PolarsError, OSError, ValueError):
                return None  # not one of ours: results are rebuilt from the record
        size, start = record_start(self.record_path)
        head = meta.get("head")
        if size < offset:
            return Compacted(0, table, clashes, 0, intact=False)
        if head is not None and head != head_digest(start[:offset]):
            # A line or two damaged in place (a flipped bit) lose to the table, which was
            # made from them whole; a start otherwise changed is another record.
            found = head_damage(meta.get("lines"), start[:offset])
            if found is None:
                return Compacted(0, table, clashes, 0, intact=False)
            count, mend = found
            return Compacted(offset, table, clashes, damaged + count, mend=mend, kept=kept)
        return Compacted(offset, table, clashes, damaged, kept=kept)

    # -- readers -------------------------------------------------------------------------

    def check(self) -> dict[str, Any] | None:
        """The experiment the folder records, if any, once it is sure to be this one.

        Raises:
            StoreConflictError: the folder holds the results of another experiment.
            StoreWriteError: a file of the folder is a symbolic link.
            StoreError: the folder is of a newer format than this code reads.
        """
        refuse_links(self.folder)
        try:
            with open(self.folder / EXPERIMENT, "rb", opener=opener) as f:
                recorded = json.loads(f.read())
        except StoreWriteError:
            raise
        except (OSError, ValueError):
            return None  # no folder yet, or one of an earlier version: not claimed
        if not isinstance(recorded, dict):
            return None
        refuse_newer(self.folder, recorded)  # a layout this code does not know
        if self.identity is None:
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

    def search(self) -> dict[str, Any] | None:
        """The adaptive search recorded here (:meth:`Store.keep_search`), if any."""
        return read_search(self.folder)

    def environments(self, wanted: set[str] | None = None) -> dict[str, dict[str, Any]]:
        """The environments settings stored here ran in, by id (those ``wanted``), as
        environments.json holds them, once the folder is trusted; one it lacks (a run
        killed before rewriting it) is read from the record's line that named it.

        Raises:
            StoreError: the folder could be changed by another user.
        """
        self.trust()
        found = read_environments(self.folder)
        if wanted is None:
            return found
        missing = wanted - set(found)
        if missing:
            found.update(from_record(self.record_path, missing))
        return {k: v for k, v in found.items() if k in wanted}

    def sampler_states(self) -> list[dict[str, Any]]:
        """What a search's sampler kept of each configuration it proposed, in the order
        written (see :func:`~superparams._store._study.read_sampler_states`), once the
        folder is trusted.

        Raises:
            StoreError: the folder or the file could be changed by another user.
        """
        self.trust()
        return read_sampler_states(self.folder)

    def table(self) -> pl.DataFrame:
        """Every stored setting's latest outcome, including a run in progress.

        Raises:
            StoreConflictError: the folder holds the results of another experiment.
            StoreError: the record could not be read (permissions, not a file).
        """
        self.check()
        try:
            return self.stored_table()[0]
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
        when the record holds nothing past it (as after a run).
        """
        stored = self.compacted(read=False)
        try:
            size = self.record_path.stat().st_size
        except FileNotFoundError:
            size = 0
        intact = stored is not None and stored.intact and stored.offset == size
        found = stored.clashes if stored is not None and intact else self.stored_table()[1]
        notes = []
        for name, kinds in found.items():
            named = {kind: (label and label(i)) or shown or i for kind, (i, shown) in kinds.items()}
            notes.append(clash_text(name, named))
        return notes

    def damaged(self) -> int:
        """How many lines of the record are damaged, and were skipped (see _intact)."""
        stored = self.compacted(read=False)
        offset, before = (0, 0) if stored is None else (stored.offset, stored.damaged)
        return before + sum(bad for _, bad, _ in record_chunks(self.record_path, offset))

    def frames(
        self, offset: int, clashes: Clashes, *, live: bool
    ) -> tuple[list[pl.DataFrame], int, int]:
        """The record from ``offset`` as tables, one per chunk read (see
        :func:`record_chunks`), the offset after them, and how many lines were damaged.

        A chunk's lines are dropped once its table is made, so reading a long record
        holds one chunk of Python objects at a time; :func:`latest_outcomes` of the tables
        together picks each setting's latest outcome across chunks.
        """
        frames = []
        end, damaged, number = offset, 0, 0
        pending: dict[str, Any] = {}  # settings started and not ended, across chunks
        with uncollected():
            for lines, bad, after in record_chunks(self.record_path, offset):
                end = after
                rows = make_rows(
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
                    frames.append(make_frame(rows, self.types, clashes))
                del lines, rows  # before the next chunk is read
        rows = open_rows(pending, self.fields, self.defaults, live=live, logs=self._logs)
        if rows:
            frames.append(make_frame(rows, self.types, clashes))
        return frames, end, damaged

    def stored_table(self) -> tuple[pl.DataFrame, Clashes]:
        """Every stored setting's latest outcome, and the columns kept as text.

        Read again only when results.parquet or the record changed since the last read
        (another file, size or time) or a run started or ended: one command asks more
        than once (the plan, then each setting's status).
        """
        state = (_state(self.results_path), _state(self.record_path), self.is_locked())
        if self._last is not None and self._last[0] == state:
            return self._last[1]
        table, _, clashes = self.read_outcomes(superseded=False)
        self._last = (state, (table, clashes))
        return table, clashes

    def read_outcomes(
        self, *, superseded: bool
    ) -> tuple[pl.DataFrame, pl.DataFrame | None, Clashes]:
        """Every stored setting's latest outcome; with ``superseded``, also the outcomes
        that later ones replaced among those read (the record past results.parquet:
        those before it are history.parquet's), or None; and the columns stored as
        text."""
        stored = self.compacted()
        # never compacted, or compacted for other fields: read the whole record
        offset, base, clashes = 0, None, {}
        if stored is not None:
            offset, base, clashes = stored.offset, stored.table, stored.clashes
        live = self.is_locked()
        if stored is not None and not stored.intact and base is not None:
            # The record lost what the table holds: read both, as the next run will
            # restore them (see :meth:`~superparams._store._compact.Compactor.restore`).
            lines, _, _ = read_record(self.record_path, offset)
            found = make_rows(lines, self.fields, self.defaults, live=False)
            lines += lost_outcomes(base, found, self.fields, self.types)
            rows = make_rows(lines, self.fields, self.defaults, live=live, logs=self._logs)
            tails, base = [make_frame(rows, self.types, clashes)], None
        else:
            tails = self.frames(offset, clashes, live=live)[0]
        frames = [f for f in (base, *tails) if f is not None and f.height]
        if not frames:
            return make_frame([], self.types), None, clashes
        latest, older = split_outcomes(concat(frames, clashes), older=superseded)
        return latest, older, clashes

    def history(self) -> pl.DataFrame | None:
        """The outcomes that reruns replaced, as history.parquet keeps them (None when
        there is none: nothing was replaced, or the folder is older than the file), once
        the folder is trusted.

        Raises:
            StoreError: the folder could be changed by another user, or the file is
                damaged.
            StoreWriteError: the file is a symbolic link.
        """
        import polars as pl

        self.trust()
        try:
            f = open(self.history_path, "rb", opener=opener)  # noqa: SIM115  # closed below
        except FileNotFoundError:
            return None
        with f:
            try:
                return conform_table(pl.read_parquet(f), self.types)
            except (pl.exceptions.PolarsError, OSError, ValueError) as error:
                first = (str(error).strip().splitlines() or [type(error).__name__])[0]
                msg = (
                    f"{self.history_path} is damaged ({first}); move it away: the next run "
                    "that records an outcome makes it again from the record"
                )
                raise StoreError(msg) from None

    def every_outcome(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Every stored outcome: each setting's latest, and those reruns replaced
        (history.parquet's, then the record's since it was written).

        Raises:
            StoreConflictError: the folder holds the results of another experiment.
            StoreError: the record or history.parquet could not be read.
        """
        self.check()
        try:
            latest, older, _ = self.read_outcomes(superseded=True)
        except OSError as error:
            where = error.filename if isinstance(error.filename, str) else self.folder
            msg = f"could not read {where}: {error.strerror or error}; nothing was changed"
            raise StoreError(msg) from None
        history = self.history()
        if older is not None:
            history = kept_once(history, older)
        return latest, history if history is not None else latest.clear()

    def queued_on(self) -> dict[str, str]:
        """The engine that holds each queued setting, by id (see :meth:`Store.queued`): the
        name its queued line records; ``slurm`` for one queued before lines named their
        engine, or restored from ``results.parquet``."""
        queued = [sid for sid, s in self.statuses().items() if s.status == "queued"]
        if not queued:
            return {}
        engines = queued_engines(self.record_path)
        return {sid: engines.get(sid, QUEUED_BEFORE) for sid in queued}

    def statuses(self) -> dict[str, Status]:
        """The latest stored status of each setting, by id, in the order stored; with
        nothing stored, empty, without reading a table (nor loading polars).

        Raises:
            StoreConflictError: the folder holds the results of another experiment.
            StoreError: the record could not be read (permissions, not a file).
        """
        import polars as pl

        if not self._holds_anything():
            return {}
        table = self.table()
        if table.is_empty():
            return {}
        kept = ("id", "status", "label", "error", "started", "seconds")
        first = table.select(kept).filter(pl.col("id").is_first_distinct())
        starts: list[Any] = [None] * first.height
        if isinstance(first.schema["started"], pl.Datetime):  # microseconds since the epoch
            starts = first["started"].dt.epoch("us").to_list()
        out = {}
        for sid, status, label, error, start, took in zip(
            *(first[c].to_list() for c in ("id", "status", "label", "error")),
            starts,
            first["seconds"].to_list(),
            strict=True,
        ):
            # as datetime's timestamp() reckons it: exact microseconds over 10**6
            ended = start / 10**6 + float(took) if start is not None and took is not None else None
            out[sid] = Status(status or "", label, error, ended)
        return out

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
        from superparams._space import setting_ids

        self.check()  # another experiment's folder is refused, even with nothing in it
        ids = list(setting_ids(space))
        table = self.table() if self._holds_anything() else None
        if table is None or table.is_empty():  # nothing stored: every setting is new
            first: dict[str, int] = {}
            for position, sid in enumerate(ids):
                first.setdefault(sid, position)
            return Plan(new=list(first.values()), ids=ids)
        if callable(code_version):
            code_version = code_version()
        return sorted_by_store(ids, table, code_version, self.environments)

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
        return is_held(self.folder)

    def holder(self) -> str | None:
        """Which process is writing to this folder (``pid 12 on host, started ...``), or
        None if no run is."""
        return holder(self.folder)


def reader(store: Reader) -> Reader:
    """A copy of ``store`` for reading alone: it tells a run in progress by
    :func:`held`, never by taking the lock."""

    class _Reader(Reader):
        def is_locked(self) -> bool:
            return held(self.folder)

    copy = object.__new__(_Reader)
    copy.__dict__.update(store.__dict__)
    return copy


class Follower:
    """The rows recorded in a store since a position of its record, poll after poll.

    It starts where ``results.parquet`` ends (what is before is compacted: the rows of
    the settings still open are after it), so the first :meth:`poll` knows every setting
    that started and has not ended, and the rows each later line adds to it.
    """

    def __init__(self, store: Reader) -> None:
        self.store = store
        stored = store.compacted(read=False)
        self.position = stored.offset if stored is not None and stored.intact else 0
        self._number = 0  # lines read so far: the order of rows across polls
        self._pending: dict[str, Any] = {}  # settings started and not ended

    def poll(self) -> tuple[dict[str, list[dict[str, Any]]], bool]:
        """The rows of every setting a line since the last poll was about, by setting id
        (all its rows now, replacing those read before), and whether the record was
        replaced (cut short, emptied: then read the folder afresh)."""
        store = self.store
        try:
            size = os.stat(store.record_path).st_size
        except FileNotFoundError:
            size = 0
        if size < self.position:
            return {}, True
        latest: dict[str, list[dict[str, Any]]] = {}
        touched: set[str] = set()
        live = held(store.folder)
        for lines, _, after in record_chunks(store.record_path, self.position):
            self.position = after
            touched.update(str(line.get("id")) for line in lines)
            rows = make_rows(
                lines,
                store.fields,
                store.defaults,
                live=live,
                logs=store._logs,
                first=self._number,
                pending=self._pending,
            )
            self._number += len(lines)
            _keep_latest(latest, rows)
        still_open = {sid: self._pending[sid] for sid in touched if sid in self._pending}
        _keep_latest(
            latest,
            open_rows(still_open, store.fields, store.defaults, live=live, logs=store._logs),
        )
        for rows in latest.values():
            for row in rows:
                row.pop(SEQ, None)
        return latest, False


def _keep_latest(latest: dict[str, list[dict[str, Any]]], rows: list[dict[str, Any]]) -> None:
    """Add ``rows`` to ``latest``, keeping for each setting only the rows of its latest
    record line (a rerun's outcome, or its start, replaces what an earlier one said)."""
    for row in rows:
        sid = row["id"]
        had = latest.get(sid)
        if had is None or had[0][SEQ] < row[SEQ]:
            latest[sid] = [row]
        elif had[0][SEQ] == row[SEQ]:
            had.append(row)


def _state(path: Path) -> tuple[int, int, int, int] | None:
    """What tells a file's versions apart: its inode, device, size and time (None if none)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_dev, info.st_size, info.st_mtime_ns)
