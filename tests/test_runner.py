"""The runner as a user meets it: ``space.run_all()``, ``results()``, ``plan()``, resume.

Each test writes an experiment module into a fresh project folder, imports it, and runs
it in one worker process (the default), in this process (``engine="inline"``) or in
several real worker processes (``num_proc=2``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import Events
from tests.e2e.sources import EPOCHS, FAILS_WHEN_LISTED, RANDOM, clear_runs, ran

import superparams._api
from superparams import search
from superparams._store._columns import BOOKKEEPING
from superparams.events import (
    Notice,
    RunFinished,
    RunStarted,
    SettingFailed,
    SettingFinished,
    SettingStarted,
)

PARAMS = """
import os
from superparams import Experiment, search

class Hyperparams(Experiment):
    steps: int = 100
    batch_size: int = search(16, 32)
    lr: float = search(0.1, 0.01)

    def run(self):
        return {
            "samples": self.steps * self.batch_size,
            "score": self.lr * 2,
            "pid": os.getpid(),
            "seen_rank": self.rank,
            "seen_n_proc": self.n_proc,
        }
"""


OUT_OF_ORDER = """
import time
from superparams import Experiment, search

class Late(Experiment):
    n: int = search(*range(6))

    def run(self) -> list:
        time.sleep(0.1 * (6 - self.n) if self.n % 2 == 0 else 0)  # the first end last
        return [{"step": 0, "m": self.n}, {"step": 1, "m": -self.n}]
"""


class TestTheTable:
    def test_one_row_per_setting_with_typed_columns(self, workspace):
        """run_all returns a polars DataFrame: one row per setting, typed parameter columns."""
        space = workspace.load("params", PARAMS).Hyperparams()
        table = space.run_all(display=False)
        assert isinstance(table, pl.DataFrame)
        assert table.height == 4
        assert table.schema["steps"] == pl.Int64
        assert table.schema["batch_size"] == pl.Int64
        assert table.schema["lr"] == pl.Float64
        assert table.schema["samples"] == pl.Int64
        assert table.schema["score"] == pl.Float64
        assert table["lr"].to_list() == [0.1, 0.01, 0.1, 0.01]  # exact, not 0.1000001

    def test_rows_follow_the_space(self, workspace):
        """The rows come in the space's order, each with what its own run() returned."""
        space = workspace.load("params", PARAMS).Hyperparams()
        table = space.run_all(display=False)
        assert table.select("batch_size", "lr").rows() == [(s.batch_size, s.lr) for s in space]
        assert table["samples"].to_list() == [1600, 1600, 3200, 3200]
        assert table["score"].to_list() == [0.2, 0.02, 0.2, 0.02]
        assert table["id"].to_list() == [s.id for s in space]

    def test_rows_follow_the_space_whatever_order_settings_end_in(self, workspace):
        """Settings that end out of order, several rows each, still come back in the
        space's order, each setting's rows in its own order; so do a part's results."""
        module = workspace.load("late", OUT_OF_ORDER)
        table = module.Late().run_all(num_proc=2, display=False)
        stored = pl.read_parquet(workspace.folder("late", "Late") / "results.parquet")
        assert stored["n"].to_list() != sorted(stored["n"])  # they did end out of order
        assert table.select("n", "step", "m").rows() == [
            (n, step, -n if step else n) for n in range(6) for step in (0, 1)
        ]
        part = module.Late(n=search(4, 1)).results()
        assert part.select("n", "step").rows() == [(4, 0), (4, 1), (1, 0), (1, 1)]

    def test_bookkeeping_columns(self, workspace):
        """Every row has status, cause, error, traceback, attempt, seconds, worker and log."""
        space = workspace.load("params", PARAMS).Hyperparams()
        table = space.run_all(display=False)
        assert set(BOOKKEEPING) <= set(table.columns)
        assert table["status"].to_list() == ["completed"] * 4
        assert table["attempt"].to_list() == [1] * 4
        assert table["cause"].null_count() == 4
        assert all(s >= 0 for s in table["seconds"])

    @pytest.mark.parametrize("options", [{}, {"num_proc": 1}])
    def test_one_process_is_one_worker(self, workspace, options):
        """No num_proc, or num_proc=1, runs the settings one by one in one worker process,
        never in the calling one (a setting that crashes must not end the run)."""
        space = workspace.load("params", PARAMS).Hyperparams()
        table = space.run_all(display=False, **options)
        (pid,) = set(table["pid"])
        assert pid != os.getpid()
        assert set(table["seen_rank"]) == {0}
        assert set(table["seen_n_proc"]) == {1}

    @pytest.mark.parametrize("options", [{"engine": "inline"}, {"debug": True}])
    def test_inline_runs_in_this_process(self, workspace, options):
        """engine="inline" and debug=True run each setting in the calling process, so
        breakpoints work."""
        space = workspace.load("params", PARAMS).Hyperparams()
        table = space.run_all(display=False, **options)
        assert set(table["pid"]) == {os.getpid()}
        assert set(table["seen_rank"]) == {0}
        assert set(table["seen_n_proc"]) == {1}

    def test_workers_know_their_rank(self, workspace):
        """With num_proc=2 settings run in workers whose rank is in [0, 2) and n_proc is 2."""
        space = workspace.load("params", PARAMS).Hyperparams()
        table = space.run_all(num_proc=2, display=False)
        assert os.getpid() not in set(table["pid"])
        assert set(table["seen_rank"]) <= {0, 1}
        assert set(table["seen_n_proc"]) == {2}
        assert table["worker"].to_list() == table["seen_rank"].to_list()
        # one process per rank
        assert (
            table.group_by("seen_rank").agg(pl.col("pid").n_unique())["pid"].to_list()
            == [1] * table["seen_rank"].n_unique()
        )

    def test_failure_is_a_row(self, workspace):
        """An exception in run() makes a failed row with cause, error and traceback; others run."""
        workspace.load("flaky", FAILS_WHEN_LISTED)
        (workspace.experiments / "fail.txt").write_text("2")
        space = workspace.load("flaky").Flaky()
        table = space.run_all(display=False)
        assert table["status"].to_list() == ["completed", "failed", "completed"]
        failed = table.row(1, named=True)
        assert failed["cause"] == "raised"
        assert failed["error"] == "ValueError: n=2 is not allowed"
        assert "raise ValueError" in failed["traceback"]
        assert failed["traceback"].rstrip().endswith("ValueError: n=2 is not allowed")
        assert failed["attempt"] == 1
        assert failed["double"] is None
        assert table["double"].to_list() == [2, None, 6]


GPUS = """
import os
from superparams import Experiment, search

class Gpus(Experiment):
    n: int = search(1, 2, 3, 4)

    def run(self):
        return {"device": os.environ.get("CUDA_VISIBLE_DEVICES"), "n_proc": self.n_proc}
"""


def cores() -> int:
    if hasattr(os, "process_cpu_count"):
        return os.process_cpu_count() or 1
    return len(os.sched_getaffinity(0))


class TestNumProc:
    @pytest.mark.parametrize("num_proc", [2.0, "a", True, "2"])
    def test_a_count_that_is_not_a_whole_number(self, workspace, num_proc):
        """num_proc takes a whole number or None: anything else is refused, nothing written."""
        space = workspace.load("params", PARAMS).Hyperparams()
        with pytest.raises(superparams.UsageError) as raised:
            space.run_all(num_proc=num_proc, display=False)
        assert str(raised.value) == (
            "num_proc expects a whole number of worker processes (None or -1: one per core), "
            f"got {num_proc!r}"
        )
        assert not (workspace.experiments / "progress").exists()

    @pytest.mark.parametrize("num_proc", [None, -1])
    def test_none_and_minus_one_are_one_worker_per_core(self, workspace, num_proc):
        """None and -1 start one worker per core, never more than the settings to run."""
        space = workspace.load("params", PARAMS).Hyperparams()
        events = Events()
        table = space.run_all(num_proc=num_proc, display=False, subscribers=[events])
        workers = min(cores(), 4)
        assert set(table["seen_n_proc"]) == {workers}
        assert events.of(RunStarted)[0].num_proc == workers
        assert events.of(Notice) == []

    @pytest.mark.parametrize("num_proc", [0, -(10**6)])
    def test_below_one_runs_as_one_with_a_notice(self, workspace, num_proc):
        """0, or a count that works out below 1, runs as num_proc=1, with one notice."""
        space = workspace.load("params", PARAMS).Hyperparams()
        events = Events()
        table = space.run_all(num_proc=num_proc, display=False, subscribers=[events])
        (pid,) = set(table["pid"])  # one worker process
        assert pid != os.getpid()
        assert set(table["seen_n_proc"]) == {1}
        (notice,) = events.of(Notice)
        if num_proc == 0:
            assert notice.text == (
                "num_proc=0 is less than one process: running as num_proc=1 does "
                f"(num_proc=-1 uses all {cores()} cores)"
            )
        else:
            assert notice.text == (
                f"num_proc={num_proc} leaves less than one of the {cores()} cores: running as "
                "num_proc=1 does"
            )
        assert events.events.index(notice) < events.events.index(events.of(RunStarted)[0])

    def test_the_notice_is_shown_by_the_display(self, workspace, capsys):
        """The default display shows the notice as the run starts."""
        space = workspace.load("params", PARAMS).Hyperparams()
        space.run_all(num_proc=0)
        assert (
            capsys.readouterr()
            .err.splitlines()[0]
            .startswith("num_proc=0 is less than one process: running as num_proc=1 does")
        )

    def test_no_more_workers_than_settings_to_run(self, workspace):
        """num_proc beyond the settings to run starts one worker per setting."""
        space = workspace.load("params", PARAMS).Hyperparams()
        table = space.run_all(num_proc=50, display=False)
        assert set(table["seen_n_proc"]) == {4}
        assert set(table["seen_rank"]) <= {0, 1, 2, 3}
        assert os.getpid() not in set(table["pid"])

    def test_gpus_alone_start_one_worker_per_gpu(self, workspace):
        """gpus=[3] is honoured with the default num_proc: a worker that sees GPU 3."""
        module = workspace.load("gpus", GPUS)
        table = module.Gpus().run_all(gpus=[3], display=False)
        assert set(table["device"]) == {"3"}
        assert set(table["n_proc"]) == {1}
        table = module.Gpus().run_all(gpus=[0, 1], display=False, fresh=True)
        assert set(table["device"]) == {"0", "1"}
        assert set(table["n_proc"]) == {2}

    def test_gpus_with_one_process_are_not_dropped(self, workspace):
        """gpus with num_proc=1: one worker process, which sees the first GPU."""
        table = workspace.load("gpus", GPUS).Gpus().run_all(num_proc=1, gpus=[5], display=False)
        assert set(table["device"]) == {"5"}


RETURNS = """
import polars as pl
import pandas as pd
from superparams import Experiment, search

class Returns(Experiment):
    kind: str = "dict"
    seed: int = search(0, 1)

    def run(self):
        if self.kind == "dict":
            return {"loss": 0.5 + self.seed}
        if self.kind == "list":
            return [{"epoch": e, "loss": 1.0 / (e + 1)} for e in range(3)]
        if self.kind == "polars":
            return pl.DataFrame({"epoch": [0, 1], "loss": [0.5, 0.25]})
        if self.kind == "pandas":
            return pd.DataFrame({"epoch": [0, 1], "loss": [0.5, 0.25]})
        if self.kind == "none":
            return None
        if self.kind == "nested":
            return {"train": {"loss": 0.1, "acc": {"top1": 0.9}}, "eval": {"loss": 0.2}}
        if self.kind == "clash":
            return {"seed": 99, "status": "mine"}
        if self.kind == "kept":  # names the store fills, and one the renaming would take
            row = {"status": "mine", "__record_line": 7, "error": "no", "error_": "taken"}
            return {**row, "result": {"status": 3}, "id": "x"}
        if self.kind == "twice":
            return {"a.b": 1, "a": {"b": 2}} if self.seed else {"a": {"b": 2}}
        if self.kind == "int-float-none":
            return {"m": [3, 2.5][self.seed]} if self.seed < 2 else {"m": None}
        if self.kind == "str-int":
            return {"m": ["high", 7][self.seed]}
        if self.kind == "list-int":
            return {"m": [[1, 2], 7][self.seed]}
        raise AssertionError(self.kind)
"""


class TestWhatRunReturns:
    def run(self, workspace, kind: str, num_proc: int = 1) -> pl.DataFrame:
        space = workspace.load("returns", RETURNS).Returns(kind=kind)
        return space.run_all(num_proc=num_proc, display=False)

    @pytest.mark.parametrize(
        "kind", ["dict", "list", "none", "nested", "clash", "int-float-none", "str-int"]
    )
    def test_the_frame_returned_is_what_results_read(self, workspace, kind):
        """The frame run_all returns is the one results() reads back, types and order."""
        table = self.run(workspace, kind, num_proc=2)
        again = workspace.load("returns").Returns(kind=kind).results()
        assert table.schema == again.schema
        assert table.rows() == again.rows()

    def test_dict(self, workspace):
        """A dict is one row whose keys are columns."""
        table = self.run(workspace, "dict")
        assert table.select("seed", "loss").rows() == [(0, 0.5), (1, 1.5)]

    def test_list_of_dicts(self, workspace):
        """A list of dicts is several rows for one setting, its parameters on each."""
        table = self.run(workspace, "list")
        assert table.height == 6
        assert table.select("seed", "epoch").rows() == [(s, e) for s in (0, 1) for e in range(3)]
        assert table["status"].to_list() == ["completed"] * 6

    def test_polars_frame(self, workspace):
        """A polars DataFrame gives its rows."""
        table = self.run(workspace, "polars", num_proc=2)
        assert table.select("seed", "epoch", "loss").rows() == [
            (0, 0, 0.5),
            (0, 1, 0.25),
            (1, 0, 0.5),
            (1, 1, 0.25),
        ]

    def test_pandas_frame(self, workspace):
        """A pandas DataFrame gives its rows, with plain types."""
        table = self.run(workspace, "pandas", num_proc=2)
        assert table.schema["epoch"] == pl.Int64
        assert table.select("seed", "epoch", "loss").rows() == [
            (0, 0, 0.5),
            (0, 1, 0.25),
            (1, 0, 0.5),
            (1, 1, 0.25),
        ]

    def test_none(self, workspace):
        """None is a completed setting with no result columns, and is not run again."""
        table = self.run(workspace, "none")
        assert table.height == 2
        assert table["status"].to_list() == ["completed", "completed"]
        space = workspace.load("returns").Returns(kind="none")
        assert len(space.plan().done) == 2

    def test_nested_dicts_flatten(self, workspace):
        """Nested dicts become dotted column names."""
        table = self.run(workspace, "nested")
        assert {"train.loss", "train.acc.top1", "eval.loss"} <= set(table.columns)
        assert table["train.acc.top1"].to_list() == [0.9, 0.9]

    def test_names_of_parameters_and_bookkeeping_are_kept_apart(self, workspace):
        """A result named like a parameter or a bookkeeping column is stored as name_."""
        table = self.run(workspace, "clash")
        assert table["seed"].to_list() == [0, 1]
        assert table["seed_"].to_list() == [99, 99]
        assert table["status"].to_list() == ["completed", "completed"]
        assert table["status_"].to_list() == ["mine", "mine"]

    @pytest.mark.parametrize("num_proc", [1, 2])
    def test_no_returned_key_is_lost(self, workspace, num_proc):
        """Every key run() returned is kept, as the run says: one that names a column the
        store fills (the record's own line number too) as name_, or name__ if name_ is
        returned as well; none overwrites another."""
        from tests.conftest import Events

        from superparams.events import RunFinished

        events = Events()
        space = workspace.load("returns", RETURNS).Returns(kind="kept")
        table = space.run_all(num_proc=num_proc, display=False, subscribers=[events])
        row = table.row(0, named=True)
        assert row["status"] == "completed"
        assert row["error"] is None
        assert (row["status_"], row["__record_line_"], row["id_"]) == ("mine", 7, "x")
        assert (row["error_"], row["error__"]) == ("taken", "no")
        assert row["result.status"] == 3
        assert row["id"] != "x"
        assert space.results().row(0, named=True) == row
        notes = events.of(RunFinished)[0].notes
        for key, kept in [("status", "status_"), ("__record_line", "__record_line_")]:
            said = f"run() returned {key!r}, the name of a column superparams fills; it is"
            assert f"{said} stored as {kept!r}" in notes
        assert (
            "run() returned 'error', the name of a column superparams fills; it is "
            "stored as 'error__'" in notes
        )

    def test_a_dotted_key_beside_a_nested_one_fails_the_setting(self, workspace):
        """'a.b' beside a nested 'a' holding 'b' fails that setting, naming both keys."""
        table = self.run(workspace, "twice", num_proc=2)
        assert table["status"].to_list() == ["completed", "failed"]
        assert table["a.b"].to_list() == [2, None]
        failed = table.row(1, named=True)
        assert failed["cause"] == "raised"
        assert failed["error"] == (
            "ValueError: run() returned both ['a.b'] and ['a']['b'], which make the same "
            "column 'a.b'; rename one of them"
        )

    def test_int_in_one_float_in_another(self, workspace):
        """An int in one setting and a float in another make one float column."""
        table = self.run(workspace, "int-float-none")
        assert table.schema["m"] == pl.Float64
        assert table["m"].to_list() == [3.0, 2.5]

    def test_int_float_and_none_across_runs(self, workspace):
        """Types that differ between runs of a widened space lose no rows."""
        module = workspace.load("returns", RETURNS)
        module.Returns(kind="int-float-none", seed=0).run_all(display=False)
        module.Returns(kind="int-float-none", seed=1).run_all(display=False)
        table = module.Returns(kind="int-float-none", seed=superparams.search(0, 1, 2)).run_all(
            display=False
        )
        assert table["m"].to_list() == [3.0, 2.5, None]
        assert table["status"].to_list() == ["completed"] * 3

    def test_string_in_one_int_in_another(self, workspace):
        """A string in one setting and an int in another keep both rows, as text."""
        table = self.run(workspace, "str-int")
        assert table["status"].to_list() == ["completed", "completed"]
        assert table["m"].to_list() == ["high", "7"]

    def test_string_and_int_across_runs(self, workspace):
        """A string stored in one run and an int in the next keep both rows."""
        module = workspace.load("returns", RETURNS)
        module.Returns(kind="str-int", seed=0).run_all(display=False)
        table = module.Returns(kind="str-int").run_all(display=False)
        assert table["m"].to_list() == ["high", "7"]
        assert module.Returns(kind="str-int").results()["m"].to_list() == ["high", "7"]

    def test_list_in_one_number_in_another(self, workspace):
        """A list in one setting and a number in another keep both rows, as text."""
        table = self.run(workspace, "list-int")
        assert table["status"].to_list() == ["completed", "completed"]
        assert table["m"].to_list() == ["[1,2]", "7"]

    def test_list_and_number_across_runs(self, workspace):
        """A list stored in one run and a number in the next keep both rows."""
        module = workspace.load("returns", RETURNS)
        module.Returns(kind="list-int", seed=0).run_all(display=False)
        table = module.Returns(kind="list-int").run_all(display=False)
        assert table["status"].to_list() == ["completed", "completed"]
        assert table["m"].to_list() == ["[1,2]", "7"]


class TestResultsAndPlan:
    def test_results_of_exactly_the_space(self, workspace):
        """results() returns one row for each setting of the space asked for, in its order."""
        module = workspace.load("params", PARAMS)
        module.Hyperparams().run_all(display=False)
        everything = module.Hyperparams().results()
        assert everything.height == 4
        part = module.Hyperparams(batch_size=32).results()
        assert part["batch_size"].to_list() == [32, 32]
        assert part["lr"].to_list() == [0.1, 0.01]
        reordered = module.Hyperparams(lr=superparams.search(0.01, 0.1), batch_size=16).results()
        assert reordered["lr"].to_list() == [0.01, 0.1]

    def test_results_of_settings_never_run(self, workspace):
        """Settings never run have no rows; a space never run gives an empty table."""
        module = workspace.load("params", PARAMS)
        assert module.Hyperparams().results().height == 0
        module.Hyperparams(batch_size=16).run_all(display=False)
        assert module.Hyperparams().results()["batch_size"].to_list() == [16, 16]

    def test_results_hold_the_latest_outcome(self, workspace):
        """A setting run again shows only its latest outcome, the first try of its run."""
        workspace.load("flaky", FAILS_WHEN_LISTED)
        (workspace.experiments / "fail.txt").write_text("2")
        space = workspace.load("flaky").Flaky()
        space.run_all(display=False)
        (workspace.experiments / "fail.txt").unlink()
        space.run_all(display=False)
        table = space.results()
        assert table["status"].to_list() == ["completed"] * 3
        assert table["attempt"].to_list() == [1, 1, 1]
        assert table["double"].to_list() == [2, 4, 6]

    def test_plan_sorts_settings(self, workspace):
        """plan() says which settings are new, done, failed, and which stored are stale."""
        module = workspace.load("flaky", FAILS_WHEN_LISTED)
        (workspace.experiments / "fail.txt").write_text("2")
        module.Flaky().run_all(display=False)
        wider = module.Flaky(n=superparams.search(2, 3, 4))
        plan = wider.plan()
        assert plan.new == [2]
        assert plan.done == [1]
        assert plan.failed == [0]
        assert plan.interrupted == []
        assert plan.stale == [module.Flaky(n=1)[0].id]
        assert plan.ids == [s.id for s in wider]
        assert plan.summary() == (
            "1 completed, 1 failed, 0 interrupted, 1 new, 1 stored but no longer in the space"
        )

    def test_results_of_a_space_that_draws_are_everything_stored(self, workspace):
        """results() of a space with distributions gives every stored row, as stored."""
        module = workspace.load("rs", RANDOM)
        first = module.Random().sample(5, seed=1).run_all(display=False)
        second = module.Random().sample(3, seed=2).run_all(display=False)
        table = module.Random().results()
        assert table["id"].to_list() == first["id"].to_list() + second["id"].to_list()
        assert table["status"].to_list() == ["completed"] * 8

    def test_a_space_that_draws_is_planned_and_run_by_sample(self, workspace):
        """plan() and run_all() of a space with distributions ask for a sample; nothing is made."""
        space = workspace.load("rs", RANDOM).Random()
        for call in (space.plan, lambda: space.run_all(display=False)):
            with pytest.raises(superparams.SearchSpaceError, match=r"space.sample\(n, seed="):
                call()
        assert not (workspace.experiments / "progress").exists()

    def test_plan_before_any_run(self, workspace):
        """plan() of an experiment never run says everything is new, and creates nothing."""
        module = workspace.load("params", PARAMS)
        plan = module.Hyperparams().plan()
        assert plan.new == [0, 1, 2, 3]
        assert plan.done == plan.failed == plan.interrupted == plan.stale == []
        assert not (workspace.experiments / "progress").exists()


INTERRUPTIBLE = """
import os
import signal
import time
from superparams import Experiment, search

class Stops(Experiment):
    n: int = search(0, 1, 2, 3)

    def run(self):
        if self.n == 1:  # Ctrl-C twice while this setting runs in this process
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        return {"n2": self.n * 2}
"""

RAISES_INTERRUPT = """
from superparams import Experiment, search

class Raises(Experiment):
    n: int = search(0, 1, 2, 3)

    def run(self):
        if self.n == 1:
            raise KeyboardInterrupt("the setting's own")
        return {"n2": self.n * 2}
"""


class TestCtrlCInProcess:
    def test_interrupted_setting(self, workspace):
        """A second Ctrl-C inside an in-process setting stops the run, keeps what finished,
        and leaves that setting interrupted."""
        space = workspace.load("stops", INTERRUPTIBLE).Stops()
        events = Events()
        with pytest.raises(KeyboardInterrupt):
            space.run_all(engine="inline", display=False, subscribers=[events])
        table = space.results()
        assert table.select("n", "status").rows() == [(0, "completed"), (1, "interrupted")]
        assert table["id"].to_list() == [space[0].id, space[1].id]
        plan = space.plan()
        assert plan.done == [0]
        assert plan.interrupted == [1]
        assert plan.new == [2, 3]
        finished = events.of(RunFinished)[0]
        assert finished.interrupted
        assert finished.completed == 1
        assert finished.remaining == 3

    def test_keyboard_interrupt_raised_by_run(self, workspace):
        """A KeyboardInterrupt that run() raises itself, with no Ctrl-C pressed, fails that
        setting like any exception; the run goes on."""
        space = workspace.load("raises", RAISES_INTERRUPT).Raises()
        table = space.run_all(engine="inline", display=False)
        assert table["status"].to_list() == ["completed", "failed", "completed", "completed"]
        assert table["error"][1] == "KeyboardInterrupt: the setting's own"


class TestResume:
    def test_second_run_runs_nothing(self, workspace):
        """A second run of the same space runs nothing and returns the same results."""
        workspace.load("flaky", FAILS_WHEN_LISTED)
        space = workspace.load("flaky").Flaky()
        first = space.run_all(display=False)
        clear_runs(workspace.experiments)
        events = Events()
        second = space.run_all(display=False, subscribers=[events])
        assert ran(workspace.experiments) == []
        assert events.of(SettingStarted) == []
        assert second.equals(first)
        started = events.of(RunStarted)[0]
        assert (started.completed, started.to_run) == (3, 0)
        assert events.of(RunFinished)[0].skipped == 3

    def test_second_run_with_workers_runs_nothing(self, workspace):
        """A second parallel run starts no work for settings stored as completed."""
        space = workspace.load("params", PARAMS).Hyperparams()
        first = space.run_all(num_proc=2, display=False)
        events = Events()
        second = space.run_all(num_proc=2, display=False, subscribers=[events])
        assert events.of(SettingStarted) == []
        assert second.equals(first)

    def test_reordered_search_runs_nothing(self, workspace):
        """Reordering a search's values keeps every setting's identity: nothing runs again."""
        module = workspace.load("flaky", FAILS_WHEN_LISTED)
        module.Flaky().run_all(display=False)
        clear_runs(workspace.experiments)
        module = workspace.load(
            "flaky", FAILS_WHEN_LISTED.replace("search(1, 2, 3)", "search(3, 1, 2)")
        )
        table = module.Flaky().run_all(display=False)
        assert ran(workspace.experiments) == []
        assert table["n"].to_list() == [3, 1, 2]
        assert table["double"].to_list() == [6, 2, 4]

    def test_widened_search_runs_only_the_new(self, workspace):
        """Widening a search runs only the settings that are new."""
        module = workspace.load("flaky", FAILS_WHEN_LISTED)
        module.Flaky().run_all(display=False)
        clear_runs(workspace.experiments)
        module = workspace.load(
            "flaky", FAILS_WHEN_LISTED.replace("search(1, 2, 3)", "search(0, 1, 2, 3, 4)")
        )
        table = module.Flaky().run_all(display=False)
        assert ran(workspace.experiments) == [0, 4]
        assert table["double"].to_list() == [0, 2, 4, 6, 8]

    def test_failed_settings_run_again(self, workspace):
        """A setting that failed is run again by the next run, and only it."""
        workspace.load("flaky", FAILS_WHEN_LISTED)
        (workspace.experiments / "fail.txt").write_text("2")
        space = workspace.load("flaky").Flaky()
        space.run_all(display=False)
        (workspace.experiments / "fail.txt").unlink()
        clear_runs(workspace.experiments)
        table = space.run_all(display=False)
        assert ran(workspace.experiments) == [2]
        assert table["status"].to_list() == ["completed"] * 3

    def test_only_failed(self, workspace):
        """only_failed=True runs the failed settings and leaves the new ones."""
        module = workspace.load("flaky", FAILS_WHEN_LISTED)
        (workspace.experiments / "fail.txt").write_text("2")
        module.Flaky().run_all(display=False)
        (workspace.experiments / "fail.txt").unlink()
        clear_runs(workspace.experiments)
        wider = module.Flaky(n=superparams.search(1, 2, 3, 4))
        table = wider.run_all(display=False, only_failed=True)
        assert ran(workspace.experiments) == [2]
        assert table["n"].to_list() == [1, 2, 3]
        assert wider.plan().new == [3]

    def test_fresh(self, workspace):
        """fresh=True runs every setting again; the results show the new attempt."""
        space = workspace.load("flaky", FAILS_WHEN_LISTED).Flaky()
        space.run_all(display=False)
        clear_runs(workspace.experiments)
        table = space.run_all(display=False, fresh=True)
        assert ran(workspace.experiments) == [1, 2, 3]
        assert table["attempt"].to_list() == [1, 1, 1]  # a rerun is not a retry
        assert table.height == 3

    def test_clean(self, workspace):
        """clean() forgets every stored result: the next run runs everything."""
        space = workspace.load("flaky", FAILS_WHEN_LISTED).Flaky()
        space.run_all(display=False)
        superparams._api.clean(space)
        assert space.results().height == 0
        assert not workspace.folder("flaky", "Flaky").exists()
        clear_runs(workspace.experiments)
        space.run_all(display=False)
        assert ran(workspace.experiments) == [1, 2, 3]

    def test_clean_without_results(self, workspace):
        """clean() of an experiment never run does nothing and creates nothing."""
        space = workspace.load("flaky", FAILS_WHEN_LISTED).Flaky()
        superparams._api.clean(space)
        assert not (workspace.experiments / "progress").exists()

    def test_added_field_with_default_keeps_results(self, workspace):
        """Adding a field with a default keeps earlier results: they ran with that default."""
        module = workspace.load("flaky", FAILS_WHEN_LISTED)
        module.Flaky().run_all(display=False)
        clear_runs(workspace.experiments)
        added = FAILS_WHEN_LISTED.replace("    n: int =", "    seed: int = 7\n    n: int =")
        module = workspace.load("flaky", added)
        space = module.Flaky()
        assert space.plan().done == [0, 1, 2]
        table = space.run_all(display=False)
        assert ran(workspace.experiments) == []
        assert table["seed"].to_list() == [7, 7, 7]
        assert table["id"].to_list() == [s.id for s in space]
        assert table["double"].to_list() == [2, 4, 6]
        # another value of the new field is a new setting
        assert module.Flaky(seed=8).plan().new == [0, 1, 2]

    def test_removed_field_does_not_carry_results(self, workspace):
        """Removing a field leaves the results run with it behind: the settings run again."""
        with_dropout = FAILS_WHEN_LISTED.replace(
            "    n: int =", "    dropout: float = 0.1\n    n: int ="
        )
        module = workspace.load("flaky", with_dropout)
        module.Flaky().run_all(display=False)
        clear_runs(workspace.experiments)
        module = workspace.load("flaky", FAILS_WHEN_LISTED)
        assert module.Flaky().plan().new == [0, 1, 2]
        table = module.Flaky().run_all(display=False)
        assert ran(workspace.experiments) == [1, 2, 3]
        assert "dropout" not in table.columns


def outcome_lines(record: Path) -> list[tuple[str, int]]:
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    return [(line["id"], line["attempt"]) for line in lines if line["event"] == "outcome"]


class TestEvents:
    @pytest.mark.parametrize(("num_proc", "engine"), [(1, "inline"), (2, None)])
    def test_a_run_in_events(self, workspace, num_proc, engine):
        """Subscribers see the run start, each setting start and end, and the run finish."""
        workspace.load("flaky", FAILS_WHEN_LISTED)
        (workspace.experiments / "fail.txt").write_text("2")
        space = workspace.load("flaky").Flaky()
        events = Events()
        space.run_all(num_proc=num_proc, engine=engine, display=False, subscribers=[events])
        assert isinstance(events.events[0], RunStarted)
        assert isinstance(events.events[-1], RunFinished)
        started = events.of(RunStarted)[0]
        assert (started.total, started.new, started.to_run, started.num_proc) == (3, 3, 3, num_proc)
        ids = [s.id for s in space]
        assert sorted(e.id for e in events.of(SettingStarted)) == sorted(ids)
        assert sorted(e.id for e in events.of(SettingFinished)) == sorted([ids[0], ids[2]])
        (failed,) = events.of(SettingFailed)
        assert failed.id == ids[1]
        assert failed.failure.cause == "raised"
        assert failed.failure.error == "ValueError: n=2 is not allowed"
        assert not failed.will_retry
        for event in events.of(SettingFinished) + events.of(SettingFailed):
            start = next(e for e in events.of(SettingStarted) if e.id == event.id)
            assert events.events.index(start) < events.events.index(event)
            assert event.seconds >= 0
        finished = events.of(RunFinished)[0]
        assert (finished.completed, finished.failed, finished.skipped) == (2, 1, 0)
        assert not finished.interrupted
        assert [f.id for f in finished.failures] == [ids[1]]
        assert finished.results == workspace.folder("flaky", "Flaky") / "results.parquet"

    def test_results_file_is_up_to_date_when_the_run_finishes(self, workspace):
        """The results file RunFinished names holds every outcome of the run as it arrives,
        and its notes say which columns the settings disagree on."""
        space = workspace.load("returns", RETURNS).Returns(kind="str-int")
        seen = []

        def check(event: object) -> None:
            if isinstance(event, RunFinished):
                seen.append((pl.read_parquet(event.results), event.notes))

        space.run_all(num_proc=2, display=False, subscribers=[check])
        ((table, notes),) = seen
        assert table.sort("seed").select("seed", "status", "m").rows() == [
            (0, "completed", "high"),
            (1, "completed", "7"),
        ]
        (note,) = notes
        assert note.startswith("column 'm' holds")

    def test_finished_results_in_the_event(self, workspace):
        """SettingFinished carries the setting's label and its result row."""
        space = workspace.load("flaky", FAILS_WHEN_LISTED).Flaky(n=3)
        events = Events()
        space.run_all(display=False, subscribers=[events])
        (finished,) = events.of(SettingFinished)
        assert finished.label == space[0].label
        assert finished.results == {"double": 6, "name": "run-3"}

    @pytest.mark.parametrize(("num_proc", "engine"), [(1, "inline"), (2, None)])
    def test_several_rows_report_the_last(self, workspace, num_proc, engine):
        """A setting that returned one row per epoch is reported with its last row."""
        space = workspace.load("epochs", EPOCHS).Epochs()
        events = Events()
        space.run_all(num_proc=num_proc, engine=engine, display=False, subscribers=[events])
        (finished,) = events.of(SettingFinished)
        assert finished.results == {"epoch": 2, "val_acc": 0.85}

    @pytest.mark.parametrize(("num_proc", "engine"), [(1, "inline"), (2, None)])
    def test_reported_only_once_durable(self, workspace, num_proc, engine):
        """A setting is reported finished or failed only once its outcome is in the record."""
        workspace.load("flaky", FAILS_WHEN_LISTED)
        (workspace.experiments / "fail.txt").write_text("2")
        space = workspace.load("flaky").Flaky(n=superparams.search(*range(1, 9)))
        record = workspace.folder("flaky", "Flaky") / "record.jsonl"
        checked = []

        def check(event: object) -> None:
            if isinstance(event, (SettingFinished, SettingFailed)):
                assert (event.id, event.attempt) in outcome_lines(record)
                checked.append(event.id)

        space.run_all(num_proc=num_proc, engine=engine, display=False, subscribers=[check])
        assert len(checked) == 8

    def test_display_may_be_a_subscriber(self, workspace):
        """display= takes a callable that sees every event, as subscribers do."""
        events = Events()
        workspace.load("flaky", FAILS_WHEN_LISTED).Flaky().run_all(display=events)
        assert len(events.of(SettingFinished)) == 3


class TestSilence:
    def test_the_core_prints_nothing(self, workspace, capfd):
        """With display=False a parallel run writes nothing to stdout or stderr; settings'
        output goes to their logs."""
        source = PARAMS.replace("    def run(self):", "    def run(self):\n        print('noise')")
        space = workspace.load("params", source).Hyperparams()
        capfd.readouterr()
        space.run_all(num_proc=2, display=False)
        space.results()
        space.plan()
        assert capfd.readouterr() == ("", "")
        logs = sorted((workspace.folder("params", "Hyperparams") / "logs").iterdir())
        assert [log.read_text() for log in logs] == ["noise\n"] * 4
