"""Settings on a Dask cluster: the one you already have, or a local one made for the run.

``DaskExecutor(address=...)`` (``engine="dask"``, ``--engine dask``) connects to a running
scheduler: ``address``, else Dask's own ``scheduler-address`` setting (the
``DASK_SCHEDULER_ADDRESS`` variable). With neither, it starts a ``LocalCluster`` of
``num_proc`` worker processes for the run and closes it after.

How the base travels: it is pickled once, the experiment's own module by value (so
workers need superparams and the libraries the experiment imports, not the user's file),
with the source lines of the code it carries (so tracebacks on a worker name the user's
file, line and text), and handed to every worker once by a worker plugin, which the
scheduler holds for the run and gives to workers that join later too; each worker
process unpickles it once, on its first setting. Each setting then sends only its task.

What a setting gets: ``rank`` is its slot among the ``n_proc`` settings the run keeps in
flight (``n_proc`` is the number of Dask worker threads), so no two settings running at
once share a rank. The run never hands Dask more settings than workers, so a setting is
reported started when it is handed over, and the first Ctrl-C has nothing queued to
drop. Output is captured on the worker (file descriptors 1 and 2) and comes back with the
outcome, for the store to write: no worker touches the results folder. Each worker must
therefore run one task at a time (``dask worker --nthreads 1``); a threaded worker is
refused at start, with that advice. With ``gpus``, each setting asks for one ``GPU``
resource (``dask worker --resources GPU=1``); a cluster with no such worker at the start
is an :class:`~superparams.errors.EngineError` saying how to start one, since Dask would
hold the settings forever.

Faults: an exception in ``run()`` is that setting's failure, as everywhere. A worker that
dies fails the setting it ran, once. Each worker tells the scheduler when it starts a
setting (an event of the run's topic, and a key of the scheduler's metadata under the
run's own, which the run takes back at its end): a scheduler whose ``allowed-failures`` is above
0 (Dask's default is 3) hands a task whose worker died to another, which finds it
started already and fails it without running it again, so a setting runs as often as
the run's ``retries`` say, never behind the user's back. With ``allowed-failures`` 0 (a
local cluster is made so) the scheduler fails it (Dask's ``KilledWorker``); since it
then fails every task assigned to the dead worker, one lost before it started there is
handed over again. A scheduler unreachable at the start, or lost mid-run, is an
:class:`~superparams.errors.EngineError`: the run stops, what finished is stored, what
was in flight stays started, to run again. A second Ctrl-C cancels the running
settings' futures: they are recorded as interrupted (on a cluster that is not the run's
own, what already runs finishes in the background, its outcome unused). ``timeout`` is
enforced by the driver, which fails a late setting with cause ``timeout`` and restarts
the worker process that runs it (Dask cannot stop a task's thread midway); a worker
without a nanny cannot be restarted, and finishes it in the background.
"""

from __future__ import annotations

from superparams.executors.dask._driver import DaskExecutor

__all__ = ["DaskExecutor"]
