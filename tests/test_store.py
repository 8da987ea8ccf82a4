"""The results folder as a user meets it: where it is, what is in it, what survives.

Each test writes an experiment module into a fresh project folder, runs it, and opens
what the run left in ``experiments/progress/<module>/<Class>/``.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import threading
import tracemalloc

import polars as pl
import pytest
from tests.e2e.sources import FAILS_WHEN_LISTED, ran
from tests.seed import USAGE

from superparams import StoreError, StoreLockedError, StoreWriteError
from superparams._api import store_of
from superparams._store._writer import Store
from superparams.events import SettingFinished

NOISY = """
import os
import threading
from pathlib import Path
import sys
from superparams import Experiment, search

class Noisy(Experiment):
    n: int = search(1, 2, 3, 4)

    def run(self):
        print(f"out {self.n}")
        print(f"err {self.n}", file=sys.stderr)
        if self.rank or self.n_proc > 1:
            os.write(1, f"c-level {self.n}\\n".encode())
            os.system(f"echo from-child {self.n}; echo child-err {self.n} >&2")
        if self.n == 4:
            raise RuntimeError("four is too many")
        return {"n2": self.n * 2}
"""

QUIET = """
from superparams import Experiment, search

class Quiet(Experiment):
    n: int = search(1, 2)

    def run(self):
        return {"n": self.n}
"""


class TestWhereResultsGo:
    def test_the_seed_layout(self, workspace):
        """experiments/params.py's Hyperparams stores under
        experiments/progress/params/Hyperparams/."""
        workspace.load("params", USAGE).Hyperparams().run_all(num_proc=2, display=False)
        folder = workspace.root / "experiments/progress/params/Hyperparams"
        table = pl.read_parquet(folder / "results.parquet").sort("batch_size")
        assert table["total samples"].to_list() == [1600, 3200]

    def test_beside_the_experiment_file(self, workspace, tmp_path, monkeypatch):
        """Results go to progress/<module>/<Class>/ beside the file, whatever the cwd."""
        space = workspace.load("flaky", FAILS_WHEN_LISTED).Flaky()
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        space.run_all(display=False)
        folder = workspace.folder("flaky", "Flaky")
        assert folder == tmp_path / "experiments/progress/flaky/Flaky"
        assert {p.name for p in folder.iterdir()} >= {"record.jsonl", "results.parquet", "logs"}
        assert list(elsewhere.iterdir()) == []

    def test_folder_argument(self, workspace, tmp_path):
        """folder= puts everything there; results() and plan() read it from there."""
        space = workspace.load("flaky", FAILS_WHEN_LISTED).Flaky()
        out = tmp_path / "out"
        space.run_all(display=False, folder=out)
        assert (out / "results.parquet").exists()
        assert not (workspace.experiments / "progress").exists()
        assert space.results(folder=out)["double"].to_list() == [2, 4, 6]
        assert space.plan(folder=out).done == [0, 1, 2]
        assert space.plan().new == [0, 1, 2]  # the default folder knows nothing of it

    def test_environment_variable(self, workspace, tmp_path, monkeypatch):
        """SUPERPARAMS_PROGRESS replaces the progress folder; module and class stay."""
        monkeypatch.setenv("SUPERPARAMS_PROGRESS", str(tmp_path / "store"))
        space = workspace.load("flaky", FAILS_WHEN_LISTED).Flaky()
        space.run_all(display=False)
        assert (tmp_path / "store/flaky/Flaky/results.parquet").exists()
        assert not (workspace.experiments / "progress").exists()
        assert space.results()["double"].to_list() == [2, 4, 6]

    def test_folder_argument_beats_the_environment(self, workspace, tmp_path, monkeypatch):
        """An explicit folder= wins over SUPERPARAMS_PROGRESS."""
        monkeypatch.setenv("SUPERPARAMS_PROGRESS", str(tmp_path / "store"))
        space = workspace.load("flaky", FAILS_WHEN_LISTED).Flaky()
        space.run_all(display=False, folder=tmp_path / "out")
        assert (tmp_path / "out/results.parquet").exists()
        assert not (tmp_path / "store").exists()


class TestParquet:
    def test_readable_by_polars_pandas_and_duckdb(self, workspace):
        """results.parquet opens as it is in polars, pandas and DuckDB, failures included."""
        duckdb = pytest.importorskip("duckdb")
        pd = pytest.importorskip("pandas")
        workspace.load("flaky", FAILS_WHEN_LISTED)
        (workspace.experiments / "fail.txt").write_text("2")
        workspace.load("flaky").Flaky().run_all(display=False)
        path = workspace.folder("flaky", "Flaky") / "results.parquet"
        columns = ["n", "status", "double", "name", "cause", "error"]
        expected = [
            (1, "completed", 2, "run-1", None, None),
            (2, "failed", None, None, "raised", "ValueError: n=2 is not allowed"),
            (3, "completed", 6, "run-3", None, None),
        ]
        polars_rows = pl.read_parquet(path).sort("n").select(columns).rows()
        assert polars_rows == expected
        frame = pd.read_parquet(path).sort_values("n")
        pandas_rows = [
            tuple(None if pd.isna(v) else v for v in row)
            for row in frame[columns].itertuples(index=False)
        ]
        assert pandas_rows == expected
        query = f"select {', '.join(columns)} from '{path}' order by n"
        assert duckdb.sql(query).fetchall() == expected

    def test_readable_after_types_clash(self, workspace):
        """Results whose types differ between settings still make a readable parquet."""
        duckdb = pytest.importorskip("duckdb")
        pd = pytest.importorskip("pandas")
        source = QUIET.replace('{"n": self.n}', '{"m": [[1, 2], "x"][self.n - 1], "f": self.n / 2}')
        workspace.load("quiet", source).Quiet().run_all(display=False)
        path = workspace.folder("quiet", "Quiet") / "results.parquet"
        assert pl.read_parquet(path).sort("n")["m"].to_list() == ["[1,2]", "x"]
        assert pd.read_parquet(path).sort_values("n")["m"].to_list() == ["[1,2]", "x"]
        assert duckdb.sql(f"select m from '{path}' order by n").fetchall() == [("[1,2]",), ("x",)]

    def test_up_to_date_when_run_all_returns(self, workspace):
        """When run_all returns, results.parquet holds what it returned; no temporary files."""
        space = workspace.load("flaky", FAILS_WHEN_LISTED).Flaky()
        table = space.run_all(display=False)
        folder = workspace.folder("flaky", "Flaky")
        stored = pl.read_parquet(folder / "results.parquet").sort("n")
        kept = table.drop("outdated")  # worked out when read: never stored
        assert stored.select(kept.columns).equals(kept)
        assert "outdated" not in stored.columns
        assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


class TestLogs:
    def test_worker_logs_hold_all_output(self, workspace):
        """With workers, a setting's log has its stdout and stderr, C-level and child output."""
        space = workspace.load("noisy", NOISY).Noisy()
        table = space.run_all(num_proc=2, display=False)
        folder = workspace.folder("noisy", "Noisy")
        for n, log in zip(table["n"], table["log"], strict=True):
            assert log.startswith("logs/")
            lines = (folder / log).read_text().splitlines()
            for expected in (
                f"out {n}",
                f"err {n}",
                f"c-level {n}",
                f"from-child {n}",
                f"child-err {n}",
            ):
                assert expected in lines, (expected, lines)
            others = [line for line in lines if line[-1:].isdigit() and line[-1] != str(n)]
            assert others == []  # nothing from another setting

    def test_in_process_logs_hold_python_output(self, workspace, capfd):
        """In this process, a setting's print() goes to its log and still to the terminal."""
        space = workspace.load("noisy", NOISY).Noisy(n=1)
        table = space.run_all(engine="inline", display=False)
        log = workspace.folder("noisy", "Noisy") / table["log"][0]
        assert log.read_text().splitlines() == ["out 1", "err 1"]
        out, err = capfd.readouterr()
        assert out == "out 1\n"
        assert err == "err 1\n"

    @pytest.mark.parametrize(("num_proc", "engine"), [(1, "inline"), (2, None)])
    def test_a_failure_keeps_its_traceback(self, workspace, num_proc, engine):
        """A failed setting's log ends with the traceback of its exception."""
        space = workspace.load("noisy", NOISY).Noisy(n=4)
        table = space.run_all(num_proc=num_proc, engine=engine, display=False)
        assert table["status"].to_list() == ["failed"]
        text = (workspace.folder("noisy", "Noisy") / table["log"][0]).read_text()
        assert "out 4" in text
        assert "Traceback (most recent call last)" in text
        assert text.rstrip().endswith("RuntimeError: four is too many")
        assert 'raise RuntimeError("four is too many")' in text

    def test_a_quiet_setting_leaves_no_empty_log(self, workspace):
        """A setting that writes nothing leaves no empty log file behind."""
        table = workspace.load("quiet", QUIET).Quiet().run_all(num_proc=2, display=False)
        assert table["log"].to_list() == [None, None]
        assert list((workspace.folder("quiet", "Quiet") / "logs").iterdir()) == []


class TestRecord:
    def test_append_only(self, workspace):
        """Nothing written to the record is rewritten: a later run only appends."""
        module = workspace.load("flaky", FAILS_WHEN_LISTED)
        module.Flaky().run_all(display=False)
        record = workspace.folder("flaky", "Flaky") / "record.jsonl"
        before = record.read_bytes()
        module.Flaky(n=module.search(1, 2, 3, 4)).run_all(display=False)
        after = record.read_bytes()
        assert after.startswith(before)
        assert len(after) > len(before)

    def test_torn_last_line(self, workspace):
        """A last line torn by a crash is ignored on reading and cut before the next run."""
        module = workspace.load("flaky", FAILS_WHEN_LISTED)
        space = module.Flaky()
        space.run_all(display=False)
        record = workspace.folder("flaky", "Flaky") / "record.jsonl"
        whole = record.read_bytes()
        with open(record, "ab") as f:
            f.write(b'{"event":"outcome","id":"00ff","torn-her')
        assert space.results()["double"].to_list() == [2, 4, 6]
        assert space.plan().done == [0, 1, 2]
        table = module.Flaky(n=module.search(1, 2, 3, 4)).run_all(display=False)
        assert table["double"].to_list() == [2, 4, 6, 8]
        text = record.read_bytes()
        assert text.startswith(whole)
        assert text.endswith(b"\n")
        assert b"torn-her" not in text
        assert all(json.loads(line) for line in text.splitlines())

    def test_torn_line_inside(self, workspace):
        """A broken line inside the record is skipped; the lines after it count."""
        module = workspace.load("flaky", FAILS_WHEN_LISTED)
        module.Flaky(n=1).run_all(display=False)
        record = workspace.folder("flaky", "Flaky") / "record.jsonl"
        with open(record, "ab") as f:
            f.write(b'{"event":"outc\n')
        module.Flaky(n=2).run_all(display=False)
        assert module.Flaky().results()["double"].to_list() == [2, 4]
        assert module.Flaky().plan().new == [2]

    def test_missing_results_parquet_is_rebuilt(self, workspace):
        """results.parquet is made from the record: deleting it loses nothing."""
        space = workspace.load("flaky", FAILS_WHEN_LISTED).Flaky()
        space.run_all(display=False)
        folder = workspace.folder("flaky", "Flaky")
        (folder / "results.parquet").unlink()
        assert space.results()["double"].to_list() == [2, 4, 6]
        space.run_all(display=False)
        assert ran(workspace.experiments) == [1, 2, 3]
        assert pl.read_parquet(folder / "results.parquet").height == 3


class TestLock:
    def test_a_second_writer_is_refused(self, workspace):
        """While a run holds the folder, another run gets StoreLockedError naming the holder."""
        space = workspace.load("flaky", FAILS_WHEN_LISTED).Flaky()
        folder = workspace.folder("flaky", "Flaky")
        with store_of(space):
            with pytest.raises(StoreLockedError) as caught:
                space.run_all(display=False)
            message = str(caught.value)
            assert str(folder) in message
            assert f"pid {os.getpid()}" in message
            assert "wait for it to finish or stop it" in message
            assert isinstance(caught.value, RuntimeError)
            assert ran(workspace.experiments) == []
            assert space.results().height == 0  # reading needs no lock
        space.run_all(display=False)
        assert ran(workspace.experiments) == [1, 2, 3]

    def test_failed_results_write_keeps_record_and_unlocks(self, workspace, monkeypatch):
        """If the disk fills up as the run ends, so that results.parquet cannot be written,
        the run says so, its outcomes stay in the record, and the folder is not left locked."""
        space = workspace.load("flaky", FAILS_WHEN_LISTED).Flaky()
        write_parquet = pl.DataFrame.write_parquet
        finished: list[SettingFinished] = []

        def disk_full(frame: pl.DataFrame, *args: object, **kwargs: object) -> None:
            if len(finished) == 3:  # every setting is done: the run is ending
                raise OSError(errno.ENOSPC, "No space left on device")
            write_parquet(frame, *args, **kwargs)

        def note(event: object) -> None:
            if isinstance(event, SettingFinished):
                finished.append(event)

        monkeypatch.setattr(pl.DataFrame, "write_parquet", disk_full)
        with pytest.raises(StoreWriteError) as caught:
            space.run_all(display=False, subscribers=[note])
        folder = workspace.folder("flaky", "Flaky")
        assert str(caught.value).startswith(
            f"could not write {folder / 'results.parquet'}: No space left on device; "
            "the 3 stored results are safe"
        )
        monkeypatch.undo()
        assert not store_of(space).is_locked()
        table = space.run_all(display=False)
        assert ran(workspace.experiments) == [1, 2, 3]  # not run twice
        assert table["double"].to_list() == [2, 4, 6]


class TestCompaction:
    def test_a_restored_old_parquet_loses_nothing(self, workspace):
        """An older results.parquet put back (from a backup, a sync) loses no later result:
        how far it goes into the record travels with it."""
        module = workspace.load("flaky", FAILS_WHEN_LISTED)
        module.Flaky(n=1).run_all(display=False)
        path = workspace.folder("flaky", "Flaky") / "results.parquet"
        old = path.read_bytes()
        module.Flaky(n=2).run_all(display=False)
        path.write_bytes(old)
        assert module.Flaky().results()["double"].to_list() == [2, 4]
        assert module.Flaky().run_all(display=False)["double"].to_list() == [2, 4, 6]
        assert ran(workspace.experiments) == [1, 2, 3]

    def test_a_broken_parquet_is_rebuilt(self, workspace):
        """A results.parquet that is not one (overwritten by hand) is rebuilt from the record."""
        space = workspace.load("flaky", FAILS_WHEN_LISTED).Flaky()
        space.run_all(display=False)
        path = workspace.folder("flaky", "Flaky") / "results.parquet"
        path.write_bytes(b"not a parquet file")
        assert space.results()["double"].to_list() == [2, 4, 6]
        space.run_all(display=False)
        assert ran(workspace.experiments) == [1, 2, 3]
        assert pl.read_parquet(path).height == 3

    def test_readers_never_see_a_setting_twice(self, workspace):
        """Reading while runs start and end never shows a setting twice, nor makes a run
        fail as if another held the folder."""
        module = workspace.load("flaky", FAILS_WHEN_LISTED)
        seen: list[int] = []
        stop = threading.Event()

        def read() -> None:
            store = store_of(module.Flaky())
            while not stop.is_set():
                table = store.table()
                seen.append(table.height - table["id"].n_unique())

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for n in range(4, 24):
                module.Flaky(n=n).run_all(display=False)
        finally:
            stop.set()
            reader.join()
        assert len(seen) > 5
        assert set(seen) == {0}


class TestLongRecords:
    @staticmethod
    def compacting_peak(folder, n: int) -> int:
        """The most Python memory that bringing results.parquet up to date with a record
        of ``n`` settings, started and completed, takes."""
        folder.mkdir()
        lines = []
        for i in range(n):
            setting = {"id": f"{i:016x}", "attempt": 1, "worker": i % 2, "label": f"x={i}"}
            setting |= {"params": {"x": i}, "enc": {"x": str(i)}, "code_version": "c0de"}
            lines.append(json.dumps({"event": "started", **setting}))
            outcome = {"status": "completed", "started": 1.7e9 + i, "seconds": 0.001}
            outcome |= {"log": None, "rows": [{"y": 2 * i}]}
            lines.append(json.dumps({"event": "outcome", **setting, **outcome}))
        (folder / "record.jsonl").write_text("\n".join(lines) + "\n")
        del lines
        store = Store(folder, fields=("x",))
        tracemalloc.start()
        try:
            with store:  # compacts when it opens and when it closes
                pass
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        table = pl.read_parquet(folder / "results.parquet")
        assert table["y"].to_list() == [2 * i for i in range(n)]
        return peak

    def test_compacting_holds_a_part_of_the_record_at_a_time(self, tmp_path):
        """The results of a long record are made holding a part of it at a time, so the
        memory a run ends with does not grow with the size of its space."""
        small = self.compacting_peak(tmp_path / "small", 2_000)
        large = self.compacting_peak(tmp_path / "large", 10_000)
        assert large < 2 * small, (small, large)

    def test_reading_a_record_leaves_the_garbage_collector_as_it_was(self, tmp_path):
        """Reading the record pauses the garbage collector, and leaves it on or off as it
        found it, even when the reading fails."""
        self.compacting_peak(tmp_path / "on", 100)
        assert gc.isenabled()
        gc.disable()
        try:
            self.compacting_peak(tmp_path / "off", 100)
            assert not gc.isenabled()
        finally:
            gc.enable()
        (tmp_path / "on" / "results.parquet").unlink()
        (tmp_path / "on" / "record.jsonl").unlink()
        (tmp_path / "on" / "record.jsonl").mkdir()  # opened as the reading starts: it fails
        with pytest.raises(StoreError, match="is a folder, not a file"):
            Store(tmp_path / "on", fields=("x",)).table()
        assert gc.isenabled()


class TestHugeIntegers:
    def test_integers_past_64_bits_are_kept_exactly_as_text(self, tmp_path):
        """A result past 64 bits is stored exactly, as text, so pandas can still read it."""
        import pandas as pd

        from superparams import Experiment, search

        class Huge(Experiment):
            k: int = search(1, 2)

            def run(self) -> dict:
                return {"big": 2**70 + self.k, "small": self.k}

        frame = Huge().run_all(folder=tmp_path / "huge", display=False)
        assert frame["big"].to_list() == [str(2**70 + 1), str(2**70 + 2)]
        assert frame["small"].dtype.is_integer()
        assert pd.read_parquet(tmp_path / "huge" / "results.parquet")["small"].tolist() == [1, 2]
