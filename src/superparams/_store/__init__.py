"""The results folder of one experiment class: the one writer, and its readers.

A folder ``progress/<module>/<Class>/`` holds::

    record.jsonl      append-only: one line when a setting starts, one when it ends
    results.parquet   the latest outcome of every setting, rebuilt from the record; its
                      metadata says how far into the record it goes, and for which fields
    logs/<id>.log     each setting's stdout and stderr, and its traceback on failure
    lock              held (flock) by the run writing here; it dies with the process
    experiment.json   whose results these are (the defining file or notebook, and class),
                      the folder's format, and its files: see below
    .gitignore        ``*``: ``git add .`` in a project leaves the whole folder out
    class.json        the class as the last run saw it, for reads that need no import
                      (see :mod:`superparams._recorded`)
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
appends to it every stored outcome it lost (see :mod:`._compact`). A start that differs
in a line or two only (a flipped bit) is damage in place: those lines count as damaged,
the table's values win, and the next run appends their settings' outcomes again. A write that fails
(no space left, read-only) raises :class:`StoreWriteError`, and nothing more is written.

One folder, one experiment: the first run records in ``experiment.json`` the file that
defines the class, relative to the folder holding ``progress/`` (see
:mod:`superparams._store._location`),
and the class's qualified name. Another experiment that meets the folder, to write or to
read, gets :class:`StoreConflictError`, and nothing is written. A folder of an earlier
version, without the file, is taken over by its next run.

The folder's format: ``experiment.json`` holds ``"format": 2``, the experiment's
``file``, ``class`` and ``path``, and ``"files"``, every name the folder may hold and
what it is (all made in :mod:`superparams._store._layout`, which owns every name of
the folder): what is kept in the folder later adds its name there. A folder of format 1
(``experiment.json`` without ``format``, or none at all) is read as it is by every
reader, and upgraded in place by the next run, holding the lock; one of a newer format
is refused (:class:`StoreError`, exit code 3) saying to upgrade superparams.

Identity across edits: when a field with a default is added to the class, the settings
stored before count as run with that default. Each outcome line keeps its fields'
encodings, so the store can compute what the id of the stored setting is now.

The package itself imports nothing, so that a module that needs only a name of the
folder's layout does not load the store's machinery (polars, the writer). Its rooms:
:mod:`._layout` (names, experiment.json), :mod:`._read` (every reader; rows since a
position), :mod:`._plan`, :mod:`._compact` (results.parquet; restoring a lost record),
:mod:`._writer` (:class:`Store`, the one writer), :mod:`._record` and :mod:`._table`
(lines, typed tables), :mod:`._lock`, :mod:`._logfile`, :mod:`._location`,
:mod:`._workdir`, :mod:`._columns`, :mod:`._classfile` (class.json).
"""
