"""What a run's options may be, checked before anything starts, and how many workers
they ask for: ``num_proc``, ``timeout``, ``retries`` and ``gpus`` of :func:`run_all`
(and of the command's ``-j``, ``--timeout``, ``--retries``, ``--gpus``).

Each check raises :class:`~superparams.errors.UsageError` naming the value and what the
option takes; nothing is written before they all pass.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import SupportsIndex


def check_num_proc(num_proc: object, flag: str = "num_proc") -> None:
    """Refuse a ``num_proc`` that is neither a whole number nor None (True, 2.0, "2")."""
    from superparams.errors import UsageError

    if num_proc is None or (isinstance(num_proc, int) and not isinstance(num_proc, bool)):
        return
    if not isinstance(num_proc, (bool, float, str)) and hasattr(num_proc, "__index__"):
        return  # a numpy integer
    msg = (
        f"{flag} expects a whole number of worker processes (None or -1: one per core), "
        f"got {num_proc!r}"
    )
    raise UsageError(msg)


#: The longest timeout a setting may have, in seconds: a year. A longer one would not
#: fit the timer that enforces it, and means no limit; None says so.
MAX_TIMEOUT = 365 * 86400
#: The most retries a run takes: each one runs a failed setting again.
MAX_RETRIES = 1000


def check_timeout(timeout: object) -> None:
    """Refuse a timeout that is not a positive number of seconds up to :data:`MAX_TIMEOUT`
    (inf, nan, 0, 1e300)."""
    from superparams.errors import UsageError

    if timeout is None:
        return
    number = timeout if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) else 0
    if not (number > 0 and math.isfinite(number)):
        msg = (
            "timeout expects a positive, finite number of seconds (None for no limit), "
            f"got {timeout!r}"
        )
        raise UsageError(msg)
    if number > MAX_TIMEOUT:
        msg = (
            f"timeout expects at most a year ({MAX_TIMEOUT} seconds), got {timeout!r}; "
            "give None for no limit"
        )
        raise UsageError(msg)


def check_retries(retries: object) -> None:
    """Refuse retries that are not a whole number from 0 to :data:`MAX_RETRIES`."""
    from superparams.errors import UsageError

    count = -1
    if not isinstance(retries, (bool, float, str)) and isinstance(retries, SupportsIndex):
        count = retries.__index__()  # an int, or a numpy integer
    if not 0 <= count <= MAX_RETRIES:
        msg = (
            f"retries expects a whole number from 0 to {MAX_RETRIES} (the times a failed "
            f"setting is tried again), got {retries!r}"
        )
        raise UsageError(msg)


def check_gpus(gpus: Sequence[int | str] | None) -> None:
    """Refuse GPU ids CUDA_VISIBLE_DEVICES does not take: indices from 0, or UUIDs."""
    import re

    from superparams.errors import UsageError
    from superparams.executors import GPU_UUID

    for gpu in gpus or ():
        whole = hasattr(gpu, "__index__") and not isinstance(gpu, (bool, str))
        index = whole and gpu.__index__() >= 0  # type: ignore[union-attr]
        uuid = isinstance(gpu, str) and re.fullmatch(GPU_UUID, gpu)
        if not (index or uuid):
            msg = (
                "gpus expects GPU ids: indices from 0 ([0, 1]) or UUIDs "
                f"('GPU-...', 'MIG-...'), got {gpu!r}"
            )
            raise UsageError(msg)


def cores() -> int:
    """The cores this process may run on (its CPU affinity, where the system says)."""
    count = getattr(os, "process_cpu_count", None)  # Python 3.13
    if count is not None:
        return int(count() or 1)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def worker_count(
    num_proc: int | None, to_run: int, *, flag: str = "num_proc", equals: str = "="
) -> tuple[int, int, str]:
    """How many workers ``num_proc`` asks for, how many start, and a notice (or "").

    None and -1 are every core, -k every core but k - 1; a count below 1 is 1, with a
    notice that says so (``flag`` and ``equals`` spell the option in it: ``-j 0``).
    Never more workers start than there are settings to run.

    >>> worker_count(4, to_run=3)
    (4, 3, '')
    """
    n = cores()
    asked = n if num_proc is None else int(num_proc)
    if asked < 0:
        asked = n + 1 + asked
    notice = ""
    if asked < 1:
        one = f"running as {flag}{equals}1 does"
        if num_proc is not None and int(num_proc) < 0:
            notice = f"{flag}{equals}{num_proc} leaves less than one of the {n} cores: {one}"
        else:
            notice = (
                f"{flag}{equals}{num_proc} is less than one process: {one} "
                f"({flag}{equals}-1 uses all {n} cores)"
            )
        asked = 1
    return asked, min(asked, max(to_run, 1)), notice
