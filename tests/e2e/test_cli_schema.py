"""The results table's types as the ``experiment`` command's user meets them.

A metric whose settings disagree on its type is stored as text, and the run's summary
and ``experiment status`` name the column and the settings.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from tests.e2e.test_cli import experiment, write

pytestmark = pytest.mark.slow

MIXED = """
from superparams import Experiment, search

class Mixed(Experiment):
    lr: float = search(0.1, 0.01)

    def run(self):
        return {"acc": 1 if self.lr == 0.1 else "one", "loss": 1 if self.lr == 0.1 else 0.5}
"""

NOTE = "column 'acc' holds both numbers and text (settings lr=0.1, lr=0.01); it is stored as text"


def table(cwd: Path) -> pl.DataFrame:
    return pl.read_parquet(cwd / "progress/mixed/Mixed/results.parquet").sort("lr", descending=True)


class TestAMetricOfMixedTypes:
    def test_the_summary_and_status_name_the_column_and_the_settings(self, tmp_path):
        """Numbers and text in one column: stored as text, and both outputs say so."""
        write(tmp_path / "mixed.py", MIXED)
        done = experiment("mixed.Mixed", "-j", "2", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert NOTE in done.stderr.splitlines()
        stored = table(tmp_path)
        assert stored["acc"].to_list() == ["1", "one"]
        assert stored["loss"].dtype == pl.Float64  # ints and floats: numbers
        status = experiment("status", "mixed.Mixed", cwd=tmp_path)
        assert NOTE in status.stdout.splitlines()

    def test_a_clash_across_two_runs(self, tmp_path):
        """A setting run later that disagrees with what is stored is named too."""
        write(tmp_path / "mixed.py", MIXED)
        first = experiment("mixed.Mixed", "--lr", "0.1", cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        assert table(tmp_path)["acc"].dtype == pl.Int64
        assert "stored as text" not in first.stderr
        second = experiment("mixed.Mixed", "--lr", "0.1,0.01", "--yes", cwd=tmp_path)
        assert second.returncode == 0, second.stderr
        assert NOTE in second.stderr.splitlines()
        assert table(tmp_path)["acc"].to_list() == ["1", "one"]
        status = experiment("status", "mixed.Mixed", "--lr", "0.1,0.01", cwd=tmp_path)
        assert NOTE in status.stdout.splitlines()

    def test_no_note_when_the_types_agree(self, tmp_path):
        """A column whose settings agree on its type is named nowhere."""
        write(tmp_path / "mixed.py", MIXED.replace('"one"', "2"))
        done = experiment("mixed.Mixed", cwd=tmp_path)
        assert "stored as text" not in done.stderr
        assert table(tmp_path)["acc"].dtype == pl.Int64
        status = experiment("status", "mixed.Mixed", cwd=tmp_path)
        assert "stored as text" not in status.stdout


class TestTheParquetAfterTheCommand:
    def test_polars_pandas_and_duckdb_read_the_documented_types(self, tmp_path):
        """After `experiment`, results.parquet has the documented types in all three readers."""
        duckdb = pytest.importorskip("duckdb")
        pd = pytest.importorskip("pandas")
        write(tmp_path / "mixed.py", MIXED.replace('"one"', "2"))
        done = experiment("mixed.Mixed", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        path = tmp_path / "progress/mixed/Mixed/results.parquet"
        schema = pl.read_parquet(path).schema
        assert schema["cause"] == pl.String
        assert schema["started"] == pl.Datetime("us", "UTC")
        assert pd.read_parquet(path)["started"].dt.tz is not None
        described = {r[0]: r[1] for r in duckdb.sql(f"describe select * from '{path}'").fetchall()}
        assert (described["cause"], described["started"]) == ("VARCHAR", "TIMESTAMP WITH TIME ZONE")
