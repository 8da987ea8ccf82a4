"""Compaction: bringing results.parquet up to date with the record, and restoring to
the record what it lost.

``results.parquet`` holds every setting's latest outcome, rebuilt from the record and
written whole or not at all; its metadata says how far into the record it goes, for
which fields, and a hash of the record's first 4 KiB (see
:meth:`~superparams._store._read.Reader.compacted`). Compaction reads only the record
past that offset. A record that no longer holds what the table was made from (cut
short, emptied, an older copy) gets back every outcome the table holds and it lost
(:meth:`Compactor.restore`), before the table is made anew from the record alone;
lines damaged in place get their settings' outcomes appended again.

The outcomes a compaction drops because a later one replaced them (a rerun of an
outdated or a failed setting) go to ``history.parquet``, written whole beside it, only
when there are some; the record is never read back from it. A folder whose table was
made before history.parquet was gets it from the whole record, once, at its next
compaction (as does one whose history.parquet went missing).

Only the writer, holding the folder's lock, compacts (as a run starts and ends).
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import TYPE_CHECKING

from superparams._store._layout import META, META_KEY, atomic_write, opener
from superparams._store._read import Reader
from superparams._store._record import (
    dumps,
    head_digest,
    head_lines,
    make_rows,
    read_record,
    record_start,
)
from superparams._store._table import (
    concat,
    conform_table,
    kept_once,
    lost_outcomes,
    make_frame,
    split_outcomes,
)
from superparams.errors import StoreError

if TYPE_CHECKING:
    import polars as pl

# Rows of results.parquet encoded at a time: polars holds a row group's pages until it is
# written (its default, 512², held ~15 MB more for 200,000 settings).
_ROW_GROUP = 1 << 14


class Compactor(Reader):
    """A folder's reader that also brings results.parquet up to date (:meth:`compact`)
    and restores to the record what it lost (:meth:`restore`); called by the writer,
    holding the lock."""

    restored: int  # outcomes written to the record again by open(): see restore

    def compact(self) -> pl.DataFrame | None:
        """Bring results.parquet up to date with the record, atomically; return the table
        written (None if results.parquet was up to date already).

        Reads only the record past what results.parquet already holds, unless the class's
        fields changed since (then the whole record, to re-key the stored settings).
        """
        import polars as pl

        stored = self.compacted(read=False)
        if stored is not None and not stored.intact:
            self.restore()  # the record holds again every outcome the table holds
            stored = None  # and the table is made anew from the record alone
        elif stored is not None and stored.mend:
            self.restore(stored.mend)  # after their damaged lines: those win no more
        offset = 0 if stored is None else stored.offset
        clashes = {} if stored is None else stored.clashes
        frames, end, damaged = self.frames(offset, clashes, live=False)
        if not frames and not damaged and stored is not None:
            return None
        damaged += 0 if stored is None else stored.damaged
        if stored is not None:
            frames.insert(0, conform_table(pl.read_parquet(self.results_path), self.types))
        table = concat(frames, clashes) if frames else make_frame([], self.types)
        del frames  # the chunks' tables: only the table written is kept
        table, older = split_outcomes(table)
        # history.parquet holds what the record before the offset replaced: made with the
        # table from the record's start, and carried on; made again from the whole record
        # for a table from before it, or when it went missing
        kept = 0 if stored is None else stored.kept
        if kept is None or (kept and not self.history_path.exists()):
            older, kept = self._superseded_in_record(), 0
        if older is not None:
            kept = self._keep_history(older)
        start = record_start(self.record_path)[1][:end]
        info = {
            "history": kept,
            "offset": end,
            "fields": list(self.fields),
            "clashes": clashes,
            "damaged": damaged,
            "head": head_digest(start),
            "lines": head_lines(start),
        }
        meta = {META_KEY: json.dumps(info)}
        atomic_write(
            self.results_path,
            lambda f: table.write_parquet(f, metadata=meta, row_group_size=_ROW_GROUP),
        )
        with contextlib.suppress(FileNotFoundError):
            (self.folder / META).unlink()  # where earlier versions kept the offset
        return table

    def _superseded_in_record(self) -> pl.DataFrame | None:
        """Every outcome the whole record holds a later one of: what history.parquet
        holds for a folder made before it was (read once, as a rerun first replaces an
        outcome in it)."""
        frames, _, _ = self.frames(0, {}, live=False)
        if not frames:
            return None
        return split_outcomes(concat(frames))[1]

    def _keep_history(self, older: pl.DataFrame) -> int:
        """Add ``older``, outcomes a rerun replaced, to history.parquet: written whole
        (atomically), each outcome once; return how many rows it holds. One that cannot
        be read is made again from the record, which holds every outcome."""
        try:
            history = self.history()
        except StoreError:
            history, found = None, self._superseded_in_record()
            older = found if found is not None else older.clear()
        kept = kept_once(history, older)
        if history is None or kept.height != history.height:  # else: held already
            atomic_write(
                self.history_path, lambda f: kept.write_parquet(f, row_group_size=_ROW_GROUP)
            )
        return kept.height

    def restore(self, mend: list[str] | None = None) -> None:
        """Append to the record every outcome results.parquet holds and it lost; with
        ``mend``, those of these settings, whose lines in it are damaged.

        Called holding the lock, when the record no longer holds what the table was made
        from (see :meth:`~superparams._store._read.Reader.compacted`); the lines are
        synced before the table is rebuilt.
        """
        stored = self.compacted()
        if stored is None or stored.table is None:
            return
        if mend is None:
            lines, _, _ = read_record(self.record_path, 0)
            rows = make_rows(lines, self.fields, self.defaults, live=False)
            lost = lost_outcomes(stored.table, rows, self.fields, self.types)
            self.restored += len(lost)
        else:
            table = stored.table.filter(stored.table["id"].is_in(mend))
            lost = lost_outcomes(table, [], self.fields, self.types)
        if not lost:
            return
        text = "".join(f"{dumps(line)}\n" for line in lost).encode()
        with open(self.record_path, "ab", opener=opener) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
