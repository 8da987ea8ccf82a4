"""Worker processes on this machine, one pipe pair each, replaced when they die.

Each worker is a fresh Python process running
:mod:`~superparams.executors._local._process` (never a fork of the driver, and never a
re-import of the user's script as ``__main__``). It loads the base space once from a
file the driver pickled once, then runs settings by position.

Why not a stock pool: a worker that dies (segfault, ``os._exit``, the OOM killer) must
fail only the setting it was running, with the signal or exit code as the cause, and be
replaced in the same slot, so ``rank`` and the GPU it holds stay put. Owning the pipes
makes that, per-setting timeouts, and exact accounting of what ran where, simple.

How the base travels: it is pickled once, into a temporary file that has no name (in
``TMPDIR``), with its large buffers (numpy arrays, and the arrays inside pandas frames)
written out of band. Each worker gets the file's descriptor when it is started, maps it
and unpickles the base once, its arrays pointing into the mapping (see
:func:`~superparams.executors._local._process.write_base`). So a 400 MB array costs each
worker one read of shared page cache, not a copy per setting or even per worker. A file
with no name is one no other user can replace: nothing a worker unpickles comes from the
progress folder, and nothing is left behind by a crash. This is the same under every
start method, since workers are started afresh; a cluster engine would do the same with
its object store.

Where a setting's output goes: never into the results folder, which no worker opens. A
worker sends fds 1 and 2 of each setting to a file of its own (named by the task) in a
scratch folder the executor makes at :meth:`~LocalExecutor.start` (``TMPDIR``, mode
0700, locked while in use, so the next run removes one whose run was killed) and removes
at shutdown or cancel, and removes the file if the setting printed nothing. The driver
copies new bytes from the running settings' files into their logs every
:data:`COPY_INTERVAL` seconds (``os.copy_file_range``: the kernel copies), and the rest
when a setting ends, its worker dies (with a line saying how) or the run is cancelled;
so ``experiment logs -f`` and the live view follow a running setting, and a killed one
keeps what it printed. A log is the store's: the executor writes it through the
:class:`~superparams._store._logfile.SettingLog` that ``notify`` returns.

The modules: ``_driver`` (the engine, in the run's process) and ``_process`` (the
worker process's program).
"""

from __future__ import annotations

from superparams.executors._local._driver import LocalExecutor

__all__ = ["LocalExecutor"]
