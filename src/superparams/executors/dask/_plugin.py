"""How a run's base reaches every Dask worker, those that join later included.

Kept apart from the driver and the node because it needs ``distributed`` at import,
which they only import once a run starts.
"""

from __future__ import annotations

import gc
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from superparams.executors.dask import _node as node


class Base(WorkerPlugin):  # type: ignore[misc]
    """A run's pickled base, which the scheduler hands to each worker as it joins.

    Not Dask data: its memory manager keeps one copy of data that no task waits for, and
    that copy dies with its worker; nor would a worker that replaces a dead one get it.
    """

    idempotent = False

    def __init__(self, key: str, blob: bytes) -> None:
        self.key = key
        self.blob = blob

    def setup(self, worker: Any) -> None:
        node.BLOBS[self.key] = self.blob  # unpickled on the worker's first setting
        self.blob = b""

    def teardown(self, worker: Any) -> None:
        node.BLOBS.pop(self.key, None)
        node.BASES.pop(self.key, None)
        # A base's class, made on the worker from the module shipped by value, sits in
        # reference cycles (its dict, its fields, its functions' globals) that hold the
        # base's data: without a full collection, each run's stays till a distant one.
        gc.collect()
