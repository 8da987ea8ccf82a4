"""How large a setting's log may grow, and cutting one to that size in place.

Shared by the worker, which cuts its own output before handing it back, and the store,
which cuts a log it wrote when the setting ends. Plain functions over a file descriptor:
no folder, no store.
"""

from __future__ import annotations

import os

# How much of its output a setting's log keeps: its first and last halves, once the
# setting ends. SUPERPARAMS_LOG_LIMIT changes it (bytes, or 500K, 100M, 2G; 0: all).
LOG_LIMIT = 100 * 2**20


def log_limit() -> int:
    """How many bytes a setting's log keeps: ``SUPERPARAMS_LOG_LIMIT``, or
    :data:`LOG_LIMIT`; 0 keeps everything."""
    text = os.environ.get("SUPERPARAMS_LOG_LIMIT", "").strip().upper().removesuffix("B")
    if not text:
        return LOG_LIMIT
    scale = 2 ** (10 * (" KMGT".find(text[-1]))) if text[-1] in "KMGT" else 1
    try:
        limit = int(float(text.rstrip("KMGT")) * scale)
    except ValueError:
        return LOG_LIMIT  # a typo in the variable must not cost a setting its log
    return limit if limit >= 0 else LOG_LIMIT


_CHUNK = 1 << 20


def cut(f: int, size: int, limit: int) -> int:
    """Keep the first and last ``limit / 2`` bytes (to whole lines) of the file open
    for reading and writing as ``f``, with a line in between saying how much was cut,
    rewriting it in place; its new size."""
    half = limit // 2
    look = min(half, 1 << 16)  # how far to look for the end of a line
    start = os.pread(f, look, half - look)
    head = half - look + start.rfind(b"\n") + 1 if b"\n" in start else half
    end = os.pread(f, look, size - half)
    tail = size - half + end.find(b"\n") + 1 if b"\n" in end else size - half
    note = (
        f"[... {tail - head} bytes cut: a log keeps its first and last {half} bytes "
        "(SUPERPARAMS_LOG_LIMIT) ...]\n"
    ).encode()
    if tail - head <= len(note):
        return size
    os.pwrite(f, note, head)
    to = head + len(note)
    at = tail
    while at < size:  # forwards: what is written is always behind what is read
        data = os.pread(f, min(_CHUNK, size - at), at)
        if not data:
            break
        os.pwrite(f, data, to)
        to += len(data)
        at += len(data)
    os.ftruncate(f, to)
    return to
