"""What happens inside a worker, as a user meets it: the base shipped once, what run()
returns turned into rows, and results that cannot travel back.
"""

from __future__ import annotations

import polars as pl
import pytest
from tests.e2e import sources

from superparams._worker import rows_of

# A field holding a large object: each unpickling of it appends a line to unpickled.txt.
BIG = (
    sources.BIG
    + """
class UsesBig(Experiment):
    data: Big = Big(b"x" * 100_000)
    i: int = search(*range(8))

    def run(self):
        return {"size": len(self.data.payload), "pid": os.getpid()}
"""
)

ARRAY = """
import numpy as np
from superparams import Experiment, search

class UsesArray(Experiment):
    data: np.ndarray = np.arange(1_000_000, dtype=np.float64)
    i: int = search(*range(6))

    def run(self):
        return {"total": float(self.data.sum()), "first": float(self.data[self.i])}
"""


def unpickled(workspace) -> list[str]:
    count = workspace.experiments / "unpickled.txt"
    return count.read_text().split() if count.exists() else []


class TestBaseShippedOnce:
    def test_once_per_worker_not_per_setting(self, workspace):
        """A large field reaches each worker once per run, never once per setting."""
        space = workspace.load("big", BIG).UsesBig()
        assert unpickled(workspace) == []
        table = space.run_all(num_proc=2, display=False)
        assert table["status"].to_list() == ["completed"] * 8
        assert table["size"].to_list() == [100_000] * 8
        loads = unpickled(workspace)
        assert len(loads) <= 2, loads
        assert len(set(loads)) == len(loads)  # never twice in one worker
        assert set(loads) >= set(map(str, table["pid"]))  # every worker that ran loaded it

    def test_never_in_process(self, workspace):
        """In this process (engine="inline") the large field is used as it is, never
        copied through pickle."""
        space = workspace.load("big", BIG).UsesBig()
        space.run_all(engine="inline", display=False)
        assert unpickled(workspace) == []

    def test_an_array_reaches_workers(self, workspace):
        """A numpy array field is whole and exact in every worker."""
        pytest.importorskip("numpy")
        space = workspace.load("arrays", ARRAY).UsesArray()
        table = space.run_all(num_proc=2, display=False)
        assert table["total"].to_list() == [499999500000.0] * 6
        assert table["first"].to_list() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        assert table["data"].to_list() == ["array(1000000,) float64"] * 6


UNPICKLABLE = """
import threading
from superparams import Experiment, search

class Unpicklable(Experiment):
    n: int = search(1, 2, 3)

    def run(self):
        if self.n == 2:
            return {"lock": threading.Lock()}
        return {"n": self.n}
"""


class TestUnpicklableResults:
    def test_a_failed_row_with_its_cause(self, workspace):
        """Results that cannot be pickled back fail their setting with cause 'unpicklable'."""
        space = workspace.load("unpicklable", UNPICKLABLE).Unpicklable()
        table = space.run_all(num_proc=2, display=False)
        assert table["status"].to_list() == ["completed", "failed", "completed"]
        failed = table.row(1, named=True)
        assert failed["cause"] == "unpicklable"
        assert failed["error"].startswith("run() returned results that cannot be sent back: ")
        assert "lock" in failed["error"]
        assert space.plan().failed == [1]


class TestRowsOf:
    def test_dict(self):
        """A dict is one row."""
        assert rows_of({"loss": 0.1}) == [{"loss": 0.1}]

    def test_nested(self):
        """Nested dicts flatten to dotted names."""
        assert rows_of({"a": {"b": {"c": 1}}, "d": 2}) == [{"a.b.c": 1, "d": 2}]

    def test_list_of_dicts(self):
        """A list (or tuple) of dicts is one row each."""
        assert rows_of([{"e": 0}, {"e": 1}]) == [{"e": 0}, {"e": 1}]
        assert rows_of(({"e": 0},)) == [{"e": 0}]

    def test_none(self):
        """None is no rows."""
        assert rows_of(None) == []

    def test_polars(self):
        """A polars DataFrame is its rows."""
        assert rows_of(pl.DataFrame({"e": [0, 1]})) == [{"e": 0}, {"e": 1}]

    def test_pandas(self):
        """A pandas DataFrame is its rows, with plain Python numbers."""
        pd = pytest.importorskip("pandas")
        rows = rows_of(pd.DataFrame({"e": [0, 1], "f": [0.5, 1.5]}))
        assert rows == [{"e": 0, "f": 0.5}, {"e": 1, "f": 1.5}]
        assert type(rows[0]["e"]) is int

    def test_numpy_scalars(self):
        """numpy scalars become plain Python numbers."""
        np = pytest.importorskip("numpy")
        rows = rows_of({"x": np.float32(0.5), "n": np.int64(3)})
        assert rows == [{"x": 0.5, "n": 3}]
        assert type(rows[0]["x"]) is float
        assert type(rows[0]["n"]) is int

    def test_a_bare_value(self):
        """Anything else is one row with a 'result' column."""
        assert rows_of(0.25) == [{"result": 0.25}]
        assert rows_of("ok") == [{"result": "ok"}]


# Setting 0 prints, says it runs, then waits until setting 1 was tried beside it.
TWO_AT_ONCE = """
import os
import threading
from superparams import Experiment, search

RUNNING = threading.Event()
TRIED = threading.Event()

class TwoAtOnce(Experiment):
    n: int = search(0, 1)

    def run(self):
        os.write(1, f"n={self.n} runs\\n".encode())  # file descriptor 1, as a C library
        if self.n == 0:
            RUNNING.set()
            assert TRIED.wait(10)
        return {"n": self.n}
"""


class TestOneSettingAtATimePerProcess:
    def test_a_second_setting_at_once_fails_and_leaves_the_first_ones_output(self, workspace):
        """Two settings run at once in one process (a threaded Dask worker, say): the
        second fails at once, saying why, and the first one's output holds only its own."""
        import threading

        from superparams._outcome import Task
        from superparams._worker import run_task

        module = workspace.load("twoatonce", TWO_AT_ONCE)
        space = module.TwoAtOnce()
        first: list = []
        thread = threading.Thread(
            target=lambda: first.append(run_task(space, Task(0, "a", 1), 0, 2))
        )
        thread.start()
        try:
            assert module.RUNNING.wait(10)
            second = run_task(space, Task(1, "b", 1), 1, 2)
        finally:
            module.TRIED.set()
            thread.join(10)
        assert second.status == "failed"
        assert second.failure is not None
        assert second.failure.error.startswith("another setting runs in this process")
        assert "--nthreads 1" in second.failure.error
        assert second.output is None  # it never ran: nothing printed
        (outcome,) = first
        assert outcome.status == "completed"
        assert outcome.output == "n=0 runs\n"
