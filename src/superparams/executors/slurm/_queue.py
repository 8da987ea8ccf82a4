"""Asking Slurm, for the Slurm engine's driver: its commands run with a time limit and
their failures as :class:`~superparams.errors.EngineError` s that say what to check; what
``squeue`` and ``sacct`` say of array tasks and of jobs by name; how big an array may be.
It keeps no state and never reads or writes the engine's files.
"""

from __future__ import annotations

import re
import subprocess
import time

from superparams.errors import EngineError

ARRAY_SIZE = 1001  # Slurm's default MaxArraySize


class Refused(EngineError):
    """A Slurm command that ran and said no (a non-zero exit): a refused ``sbatch``
    submitted nothing, unlike one that could not be run or did not answer in time."""


def command(command: list[str], *, script: str | None = None, check: bool = True) -> str:
    try:
        done = subprocess.run(
            command,
            input=script,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        msg = f"Slurm's {command[0]} could not be run ({error}); check the cluster"
        raise EngineError(msg) from None
    if check and done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        text = said[-1] if said else "(it said nothing)"  # its last word: the fatal one
        msg = f"Slurm's {command[0]} failed (exit {done.returncode}): {text}"
        if command[0] == "sbatch":
            msg += "; check the engine's options (partition, account, qos, sbatch lines)"
        elif command[0] == "sinfo":
            msg += "; check that the cluster is up and that SLURM_CONF names its slurm.conf"
        raise Refused(msg)
    return done.stdout


def accounting(ids: str, names: set[str]) -> list[tuple[str, str, str]]:
    """sacct's word on the array tasks of ``ids``: (task, state, detail). Only jobs of
    these ``names``: a job id comes back after Slurm's state is reset, and sacct
    keeps the earlier jobs of that id."""
    out = command(
        ["sacct", "-n", "-P", "-X", "-j", ids, "-o", "JobID,State,ExitCode,JobName"],
        check=False,
    )
    rows: list[tuple[str, str, str]] = []
    for line in out.splitlines():
        job, state, code, name = [*line.split("|"), "", "", ""][:4]
        if not state or name not in names:
            continue
        words = state.split()  # "CANCELLED by 0"
        detail = " ".join(words[1:])
        if words[0] == "FAILED" and code:
            detail = _ended(code)
        base, _, index = job.partition("_")
        if index.startswith("["):  # tasks that never started, as one range
            rows.extend((f"{base}_{i}", words[0], detail) for i in range_of(index))
        else:
            rows.append((job, words[0], detail))
    return rows


def _ended(code: str) -> str:
    """How a task ended, from sacct's ExitCode ``status:signal``: ``0:9`` is a kill by
    SIGKILL (its exit status means nothing then), ``1:0`` an exit code of 1.

    >>> _ended("0:9"), _ended("1:0")
    ('killed by signal 9 (SIGKILL)', 'exit code 1')
    """
    import signal

    status, _, number = code.partition(":")
    if number.isdigit() and int(number):
        try:
            name = f" ({signal.Signals(int(number)).name})"
        except ValueError:
            name = ""
        return f"killed by signal {number}{name}"
    return f"exit code {status}"


def jobs_by_name(
    job_names: list[str], *, since: float
) -> dict[str, tuple[str, dict[int, tuple[str, str]]]]:
    """Jobs of these names: name -> (job id, state of each array task)."""
    names = ",".join(job_names)
    found: dict[str, tuple[str, dict[int, tuple[str, str]]]] = {}

    def note(name: str, job: str, state: str, why: str) -> None:
        base, _, index = job.partition("_")
        _, states = found.setdefault(name, (base, {}))
        if index.isdigit():
            states.setdefault(int(index), (state, why))
        elif index.startswith("["):
            for i in range_of(index):
                states.setdefault(i, (state, why))

    queue = command(["squeue", "-h", "-r", "-n", names, "-o", "%j|%i|%T"], check=False)
    for line in queue.splitlines():
        name, job, state = [*line.split("|"), "", ""][:3]
        note(name, job, state, "")
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 3600))
    out = command(
        ["sacct", "-n", "-P", "-X", "-S", start, "--name", names, "-o", "JobName,JobID,State"],
        check=False,
    )
    for line in out.splitlines():
        name, job, state = [*line.split("|"), "", ""][:3]
        note(name, job, (state.split() or [""])[0], "")
    return found


def max_array_size(config: str) -> int:
    """How many tasks an array may hold, from ``scontrol show config``'s MaxArraySize
    (indices run below it); Slurm's default when it does not say."""
    found = re.search(r"^MaxArraySize\s*=\s*(\d+)", config, re.MULTILINE)
    return max(1, int(found.group(1))) if found else ARRAY_SIZE


def range_of(text: str) -> list[int]:
    """The indices of a Slurm array range such as ``[3-5,7%2]``."""
    out: list[int] = []
    for part in text.strip("[]").split("%")[0].split(","):
        low, _, high = part.partition("-")
        if low.isdigit():
            out.extend(range(int(low), int(high or low) + 1))
    return out
