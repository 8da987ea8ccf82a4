"""Settings as Slurm job arrays: submitted, left, and collected by a later run.

``SlurmExecutor(...)`` (``engine="slurm"``, ``--engine slurm``) hands the settings of a
run to Slurm as one job array (``sbatch --array=0-N%P``: at most ``parallel`` run at
once, ``-j`` by default; past the cluster's MaxArraySize, as several arrays, each
waiting for the one before it), ``per_job`` settings to an array task (1 by default; give
cheap settings several per job so each job's start-up, a Python process and the base
unpickled, is paid once for them). Slurm's options are the engine's: ``partition``,
``time``, ``cpus`` and ``gpus_per_setting`` per setting, ``mem``, ``account``, ``qos``,
and ``sbatch`` for any other ``#SBATCH`` lines (separated by ``;``). None is sent that
the user did not give: with no options a job runs on the cluster's default partition,
with its default limits.

Where its files are: under the results folder, in ``slurm/`` (mode 0700, the user's
alone): the base, pickled once with the experiment's module by value (nodes need
superparams and the libraries the experiment imports, not the user's file), one
manifest per array (which settings, in JSON), what each setting produced (a pickle)
and Slurm's own output of each array task. Every file is written with a keyed hash
(HMAC-SHA256, the key in ``slurm/key``, mode 0600), and the driver and the jobs read a
file only after checking its owner, its mode and its hash: a file anyone else wrote
or changed is refused, never unpickled.

Submit, leave, come back: each setting is recorded ``queued`` in the store as soon as
``sbatch`` returns, so no other run (a local one included) starts it. With
``detach=True`` (``--detach``) the run returns then. A later run on this engine
collects what finished and waits for the rest; it submits only settings that are
neither done nor in Slurm's queue. Jobs are named ``superparams-<store>-<array>``, the
store's identity and the manifest that lists their settings' ids, so a driver killed at
any instant, even between ``sbatch`` returning and the store recording the job, is
found again by name (``squeue``, then ``sacct``) and nothing is submitted twice.

States: an exception in ``run()`` is that setting's failure with its traceback, as
everywhere; an array task that Slurm ended before its settings finished (time limit,
``scancel``, out of memory, node failure, or the process dying) fails them with
Slurm's state and reason from ``sacct`` (cause ``timeout`` for the time limit, else
``killed``). The run reads its settings' outcomes from the folder as they land, and asks
Slurm (``squeue``, and ``sacct`` for jobs that left the queue) every ``poll`` seconds
(2; give a busy cluster 30). ``n_proc`` is the array's ``parallel`` limit, and
``rank`` one below it that no other running job of the results folder holds (a lock on
a file of ``slurm/ranks/``, held while the job's process lives). Ctrl-C in an attached
run cancels the settings not yet running (first press) and then the running ones
(second), as on every engine.

The modules: ``_driver`` (the engine), ``_files`` (its signed files), ``_queue`` (what
Slurm's commands say) and ``_node`` (what each array task runs:
``python -m superparams.executors.slurm._node FOLDER BATCH``).
"""

from __future__ import annotations

from superparams.executors.slurm._driver import SlurmExecutor

__all__ = ["SlurmExecutor"]
