"""The results table's columns and their types, as the documentation's table states them.

A user opens results.parquet in polars, pandas or DuckDB, or calls ``results()``; each
column has one type whatever the settings did: failed or not, still running, interrupted
by a kill, or not run yet.
"""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import wait_for, with_group_killed

from superparams import search

TABLE = Path(__file__).parents[1] / "docs" / "analysis.md"  # its table of columns

# n=1 prints nothing; n=2 prints, waits while experiments/wait exists, and fails while
# experiments/fail exists.
TYPED = """
import enum
import time
from pathlib import Path
from superparams import Experiment, search

HERE = Path(__file__).parent

class Color(enum.Enum):
    RED = "red"

class Model(Experiment):
    width: int = 64
    dropout: float | None = None

class Typed(Experiment):
    n: int = search(1, 2)
    lr: float | None = None
    name: str = "a"
    flag: bool = False
    path: Path = Path("data")
    color: Color = Color.RED
    sizes: list[int] = [1, 2]
    options: dict = {"depth": 2, "act": "relu"}
    model: Model = Model()

    def run(self):
        if self.n == 2:
            print("two", flush=True)
            while (HERE / "wait").exists():
                time.sleep(0.01)
            if (HERE / "fail").exists():
                raise ValueError("two fails")
        return {"score": self.n / 2}
"""

DRIVE = """
from typed import Typed
Typed().run_all(num_proc=2, display=False)
"""

PARAMETERS = {
    "id": pl.String,
    "label": pl.String,
    "n": pl.Int64,
    "lr": pl.Float64,
    "name": pl.String,
    "flag": pl.Boolean,
    "path": pl.String,
    "color": pl.String,
    "sizes": pl.List(pl.Int64),
    "options": pl.String,
    "model.width": pl.Int64,
    "model.dropout": pl.Float64,
}


def bookkeeping() -> dict[str, pl.DataType]:
    """The bookkeeping columns' types, as the documentation's table of columns gives them."""
    types = {}
    for line in TABLE.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"`[a-z_]+`(, `[a-z_]+`)*", cells[0]):
            dtype = eval(cells[1].strip("`"), vars(pl))  # e.g. Datetime("us", "UTC")
            for name in re.findall(r"`([a-z_]+)`", cells[0]):
                types[name] = dtype
    types.pop("id"), types.pop("label")
    return types


def expected(**results: pl.DataType) -> dict[str, pl.DataType]:
    return {**PARAMETERS, **results, **bookkeeping()}


def read(**results: pl.DataType) -> dict[str, pl.DataType]:
    """What results() gives: the stored columns, and outdated, worked out when read."""
    return {**expected(**results), "outdated": pl.Boolean}


def parquet(workspace) -> pl.DataFrame:
    return pl.read_parquet(workspace.folder("typed", "Typed") / "results.parquet")


class TestTheDocumentedTable:
    def test_lists_every_bookkeeping_column(self):
        """The documentation's table gives a type for each bookkeeping column the store writes."""
        from superparams._store._columns import BOOKKEEPING

        assert list(bookkeeping()) == list(BOOKKEEPING)


class TestColumnTypes:
    def test_a_run_with_a_failure(self, workspace):
        """After a run in which a setting failed, every column has the documentation's type."""
        workspace.write("typed", TYPED)
        (workspace.experiments / "fail").write_text("")
        table = workspace.load("typed").Typed().run_all(num_proc=2, display=False)
        assert table["status"].to_list() == ["completed", "failed"]
        assert dict(parquet(workspace).schema) == expected(score=pl.Float64)
        assert dict(table.schema) == read(score=pl.Float64)

    def test_a_run_without_failures(self, workspace):
        """After a run in which nothing failed, cause, error and traceback are still text."""
        table = workspace.load("typed", TYPED).Typed().run_all(display=False)
        assert table["cause"].to_list() == [None, None]
        assert dict(parquet(workspace).schema) == expected(score=pl.Float64)
        assert dict(table.schema) == read(score=pl.Float64)

    def test_the_columns_end_with_the_bookkeeping(self, workspace):
        """Parameters first, then results, then the bookkeeping columns in the documented order."""
        workspace.load("typed", TYPED).Typed().run_all(display=False)
        assert parquet(workspace).columns == list(expected(score=pl.Float64))

    def test_nothing_run_yet(self, workspace):
        """results() of an experiment never run is an empty table with the same columns."""
        table = workspace.load("typed", TYPED).Typed().results()
        assert table.is_empty()
        assert dict(table.schema) == read()

    def test_while_a_run_is_in_progress(self, workspace):
        """While a run is in progress, results() and results.parquet have the same types."""
        workspace.write("typed", TYPED)
        workspace.write("drive", DRIVE)
        (workspace.experiments / "wait").write_text("")
        child = workspace.start("drive")
        space = workspace.load("typed").Typed()
        (running,) = wait_for(
            lambda: (t := space.results())["status"].to_list() == ["completed", "running"] and (t,),
            "the first setting to complete and the second to run",
        )
        assert dict(running.schema) == read(score=pl.Float64)
        assert dict(parquet(workspace).schema) == expected()  # written as the run started
        (workspace.experiments / "wait").unlink()
        assert child.wait(timeout=60) == 0
        assert dict(parquet(workspace).schema) == expected(score=pl.Float64)

    def test_after_a_kill(self, workspace):
        """After kill -9 of a run, the interrupted setting's row has the same types."""
        workspace.write("typed", TYPED)
        workspace.write("drive", DRIVE)
        (workspace.experiments / "wait").write_text("")
        child = workspace.start("drive")
        space = workspace.load("typed").Typed()
        wait_for(
            lambda: (t := space.results()).height == 2 and "completed" in t["status"],
            "the first setting to complete",
        )
        with_group_killed(child)
        table = space.results()
        assert table["status"].to_list() == ["completed", "interrupted"]
        assert dict(table.schema) == read(score=pl.Float64)
        assert dict(parquet(workspace).schema) == expected()

    def test_interrupted_only(self, workspace):
        """A table of only interrupted settings still has every bookkeeping column typed."""
        workspace.write("typed", TYPED.replace("search(1, 2)", "search(2, 3)"))
        workspace.write("drive", DRIVE)
        (workspace.experiments / "wait").write_text("")
        child = workspace.start("drive")
        space = workspace.load("typed").Typed()
        wait_for(lambda: space.results().height == 2, "both settings to start")
        with_group_killed(child)
        table = space.results()
        assert table["status"].to_list() == ["interrupted", "interrupted"]
        assert dict(table.schema) == read()


class TestColumnValues:
    @pytest.fixture
    def table(self, workspace) -> pl.DataFrame:
        workspace.write("typed", TYPED)
        (workspace.experiments / "fail").write_text("")
        workspace.load("typed").Typed().run_all(num_proc=2, display=False)
        return parquet(workspace).sort("n")

    def test_started_is_utc(self, table):
        """started is the moment the setting started, as a UTC timestamp."""
        now = datetime.datetime.now(datetime.timezone.utc)
        for started in table["started"]:
            assert started.tzinfo is not None
            assert datetime.timedelta(0) < now - started < datetime.timedelta(minutes=1)

    def test_log_is_relative_to_the_folder_and_null_when_nothing_was_printed(
        self, table, workspace
    ):
        """log names the setting's log within the folder, or is null if it printed nothing."""
        quiet, noisy = table["log"].to_list()
        assert quiet is None
        assert noisy == f"logs/{table['id'][1]}.log"
        text = (workspace.folder("typed", "Typed") / noisy).read_text()
        assert text.startswith("two\n")

    def test_a_dict_parameter_is_json_text(self, table):
        """A dict parameter is stored as JSON text that json.loads gives back."""
        assert [json.loads(v) for v in table["options"]] == [{"depth": 2, "act": "relu"}] * 2

    def test_a_nested_experiment_is_its_dotted_columns(self, table):
        """A nested experiment stands in the table as its fields' dotted columns, nothing else."""
        assert "model" not in table.columns
        assert table["model.width"].to_list() == [64, 64]
        assert table["model.dropout"].to_list() == [None, None]

    def test_an_interrupted_setting_shows_its_log_so_far(self, workspace):
        """After a kill, the interrupted setting's log column names what it printed."""
        workspace.write("typed", TYPED)
        workspace.write("drive", DRIVE)
        (workspace.experiments / "wait").write_text("")
        child = workspace.start("drive")
        space = workspace.load("typed").Typed()
        log = workspace.folder("typed", "Typed") / "logs" / f"{space[1].id}.log"
        wait_for(
            lambda: (
                log.exists() and log.stat().st_size and "completed" in space.results()["status"]
            ),
            "the first setting to complete and the second to print",
        )
        with_group_killed(child)
        table = space.results()
        assert table["status"].to_list() == ["completed", "interrupted"]
        assert table["log"].to_list() == [None, f"logs/{space[1].id}.log"]


class TestReaders:
    def test_pandas_and_duckdb_see_the_same_types(self, workspace):
        """pandas (pyarrow) and DuckDB read the columns with the matching types."""
        duckdb = pytest.importorskip("duckdb")
        pd = pytest.importorskip("pandas")
        workspace.load("typed", TYPED).Typed().run_all(display=False)
        path = workspace.folder("typed", "Typed") / "results.parquet"
        frame = pd.read_parquet(path)
        assert str(frame["started"].dtype) == "datetime64[us, UTC]"
        assert str(frame["lr"].dtype) == "float64"
        assert str(frame["attempt"].dtype) == "int64"
        assert frame["cause"].isna().all()
        described = {r[0]: r[1] for r in duckdb.sql(f"describe select * from '{path}'").fetchall()}
        types = {
            name: described[name]
            for name in ("n", "lr", "flag", "sizes", "cause", "started", "log", "worker")
        }
        assert types == {
            "n": "BIGINT",
            "lr": "DOUBLE",
            "flag": "BOOLEAN",
            "sizes": "BIGINT[]",
            "cause": "VARCHAR",
            "started": "TIMESTAMP WITH TIME ZONE",
            "log": "VARCHAR",
            "worker": "BIGINT",
        }


class TestAnEarlierVersionsParquet:
    def test_is_read_and_rewritten_in_these_types(self, workspace):
        """results.parquet as earlier versions wrote it is read, and compacted, in these types."""
        workspace.write("typed", TYPED)
        space = workspace.load("typed").Typed()
        space.run_all(display=False)
        path = workspace.folder("typed", "Typed") / "results.parquet"
        meta = {"superparams": pl.read_parquet_metadata(path)["superparams"]}
        folder = str(workspace.folder("typed", "Typed"))
        old = pl.read_parquet(path).with_columns(
            pl.lit("Model").alias("model"),
            pl.col("started").dt.replace_time_zone(None),
            pl.lit(None, pl.Null).alias("lr"),
            pl.lit(None, pl.Null).alias("cause"),
            pl.when(pl.col("log").is_null())
            .then(pl.lit(""))
            .otherwise(folder + "/" + pl.col("log"))
            .alias("log"),
        )
        old.write_parquet(path, metadata=meta)
        assert pl.read_parquet(path).schema["cause"] == pl.Null
        table = space.results()
        assert dict(table.schema) == read(score=pl.Float64)
        assert table["log"].to_list() == [None, f"logs/{space[1].id}.log"]
        workspace.load("typed").Typed(n=search(1, 2, 3)).run_all(display=False)
        assert dict(parquet(workspace).schema) == expected(score=pl.Float64)


class TestAMetricOfMixedTypesFromPython:
    def test_run_all_names_it_after_its_summary(self, workspace):
        """A script's run_all() says which column it stores as text, and for which settings."""
        workspace.write(
            "mixed",
            """
            from superparams import Experiment, search

            class Mixed(Experiment):
                lr: float = search(0.1, 0.01)

                def run(self):
                    return {"acc": 1 if self.lr == 0.1 else "one"}

            if __name__ == "__main__":
                Mixed().run_all()
            """,
        )
        done = workspace.run("mixed")
        assert done.returncode == 0, done.stderr
        assert done.stderr.splitlines()[-1] == (
            "column 'acc' holds both numbers and text (settings lr=0.1, lr=0.01); "
            "it is stored as text"
        )
