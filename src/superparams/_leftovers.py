"""The processes a setting starts: ended with it, whatever it left running.

What :func:`superparams._worker.run_setting` wraps every setting in
(:func:`no_leftovers`), and the Linux means it uses (a child subreaper, the children
listed in ``/proc``), which the local engine's worker process and driver use too. It
knows nothing of settings or engines.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

# How long processes left running by a setting get to exit after SIGTERM, before SIGKILL.
LEFTOVER_GRACE = 1.0


@contextlib.contextmanager
def no_leftovers() -> Iterator[None]:
    """End, with the setting, every process it started and left running.

    While the setting runs this process is a child subreaper (Linux), so an orphaned
    descendant, a double-forked daemon included, is re-parented here rather than to init.
    When the setting ends, the children this process did not have before it are sent
    SIGTERM, then SIGKILL after :data:`LEFTOVER_GRACE`, and reaped; their own children
    come back here as they die, and are ended the same way.
    """
    if not sys.platform.startswith("linux"):
        yield
        return
    if _OWN_PROCESS:  # a local worker: a subreaper for good, with no children of its own
        try:
            yield
        finally:
            _end_children(set())
        return
    before = children()
    was_subreaper = subreaper(True)
    try:
        yield
    finally:
        try:
            _end_children(before)
        finally:
            if not was_subreaper:
                subreaper(False)


# True in a local worker process, which runs settings and nothing else: the children it
# has after a setting are all that setting's.
_OWN_PROCESS = False


def run_only_settings() -> None:
    """Note that this process runs settings and nothing else (a local worker process):
    a child subreaper for good (Linux), whose children after a setting are all that
    setting's (see :func:`no_leftovers`)."""
    global _OWN_PROCESS
    if sys.platform.startswith("linux") and libc() is not None:
        subreaper(True)
        _OWN_PROCESS = True


def children() -> set[int]:
    """The pids of this process's children (zombies included), from /proc."""
    found: set[int] = set()
    try:
        for task in os.listdir("/proc/self/task"):
            fd = os.open(f"/proc/self/task/{task}/children", os.O_RDONLY)
            try:
                found.update(map(int, os.read(fd, 1 << 20).split()))
            finally:
                os.close(fd)
    except OSError:  # no /proc, or a kernel without the children file
        pass
    return found


def _end_children(keep: set[int]) -> None:
    deadline = None
    for _ in range(1000):  # a setting that keeps forking cannot keep us here
        left = children() - keep
        reaped = False
        for pid in list(left):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0]:
                    left.discard(pid)  # it had exited: reaped
                    reaped = True
        if not left and not reaped:
            return
        if not left:
            # One that exited between the look and the reaping left its children to this
            # process since: look again before saying none is left (a daemon's parent
            # exits right after it forks the daemon).
            continue
        now = time.monotonic()
        if deadline is None:
            deadline = now + LEFTOVER_GRACE
        how = signal.SIGTERM if now < deadline else signal.SIGKILL
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, how)
        time.sleep(0.01)


def subreaper(on: bool) -> bool:
    """Make this process a child subreaper, or stop being one; say whether it was one."""
    c = libc()
    if c is None:  # no prctl: orphans go to init, as without superparams
        return on
    import ctypes

    pr_set_child_subreaper, pr_get_child_subreaper = 36, 37
    state = ctypes.c_int(0)
    c.prctl(pr_get_child_subreaper, ctypes.byref(state))
    c.prctl(pr_set_child_subreaper, int(on))
    return bool(state.value)


@functools.cache
def libc() -> Any:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
