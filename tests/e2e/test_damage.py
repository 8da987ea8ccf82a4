"""Damage, a full disk and a read-only folder, met through the ``experiment`` command: a
record shorter than its table, lines of the wrong shape, no space left, and the exit
code of each way a command can end.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import experiment

pytestmark = pytest.mark.slow

# Each setting notes in ran.txt that it ran; x=2 fails while a file named fail2 exists.
GRID = """
from pathlib import Path

from superparams import Experiment, search

HERE = Path(__file__).parent


class Grid(Experiment):
    x: int = search(1, 2, 3)
    pad: int = 0

    def run(self):
        with open(HERE / "ran.txt", "a") as f:
            f.write(f"{self.x}\\n")
        if self.x == 2 and (HERE / "fail2").exists():
            raise ValueError("x=2 fails")
        return {"y": self.x * 10, "text": "." * self.pad}
"""


class Project:
    """A folder holding grid.py, its results folder and the note of what ran."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "grid.py").write_text(textwrap.dedent(GRID))
        self.store = root / "progress" / "grid" / "Grid"
        self.record = self.store / "record.jsonl"

    def run(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        done = experiment("grid.py:Grid", "-q", *args, cwd=self.root)
        assert done.returncode == code, done.stdout + done.stderr
        return done

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        return experiment(*args, cwd=self.root)

    def ran(self) -> list[int]:
        """The x of every setting that ran since the last call."""
        path = self.root / "ran.txt"
        if not path.exists():
            return []
        xs = [int(x) for x in path.read_text().split()]
        path.unlink()
        return sorted(xs)

    def stored(self, *args: str) -> dict[int, tuple[str, int | None]]:
        """Each stored setting's status and y, read by `experiment results --json`."""
        done = self.command("results", "grid.py:Grid", "--json", *args)
        assert done.returncode == 0, done.stderr
        rows = json.loads(done.stdout)["rows"]
        return {row["x"]: (row["status"], row["y"]) for row in rows}

    def status(self, *args: str) -> str:
        done = self.command("status", "grid.py:Grid", *args)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        return done.stdout


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path / "project")


WIDE = ("--x", "1,2,3,4,5")


class TestARecordShorterThanItsTable:
    """A record cut short, emptied or replaced by an older copy loses nothing stored, and
    every outcome recorded after it is seen."""

    def check_resumes(self, project: Project) -> None:
        project.run(*WIDE)
        assert project.ran() == [4, 5]  # only the new settings
        assert project.stored(*WIDE) == {x: ("completed", x * 10) for x in range(1, 6)}
        project.run(*WIDE)  # the third run: nothing is redone
        assert project.ran() == []
        assert "nothing left to run" in project.status(*WIDE)

    def check_record_holds_everything(self, project: Project) -> None:
        """The record alone (results.parquet deleted) still holds every outcome."""
        (project.store / "results.parquet").unlink()
        assert project.stored(*WIDE) == {x: ("completed", x * 10) for x in range(1, 6)}

    def test_truncated(self, project):
        """A record cut to its first line keeps the outcomes results.parquet holds."""
        project.run()
        assert project.ran() == [1, 2, 3]
        first = project.record.read_bytes().split(b"\n")[0] + b"\n"
        project.record.write_bytes(first)
        self.check_resumes(project)
        self.check_record_holds_everything(project)

    def test_emptied(self, project):
        """An empty record keeps the outcomes results.parquet holds."""
        project.run()
        project.ran()
        project.record.write_bytes(b"")
        said = project.command("grid.py:Grid", *WIDE)  # and the run says so
        assert said.returncode == 0, said.stderr
        assert "3 stored settings written to it again, nothing lost" in said.stderr
        assert project.ran() == [4, 5]
        project.run(*WIDE)
        assert project.ran() == []
        self.check_record_holds_everything(project)

    def test_deleted(self, project):
        """A deleted record keeps the outcomes results.parquet holds."""
        project.run()
        project.ran()
        project.record.unlink()
        self.check_resumes(project)
        self.check_record_holds_everything(project)

    def test_an_older_copy(self, project):
        """An older copy, in which a setting had failed, keeps its later completion."""
        (project.root / "fail2").touch()
        project.run("--x", "1,2", code=1)
        backup = project.record.read_bytes()
        (project.root / "fail2").unlink()
        project.run()  # x=2 runs again and completes; x=3 is new
        assert project.ran() == [1, 2, 2, 3]
        project.record.write_bytes(backup)
        self.check_resumes(project)
        self.check_record_holds_everything(project)

    def test_readers_see_the_table_before_the_next_run(self, project):
        """Status and results read right after the damage show every stored setting."""
        project.run()
        project.ran()
        project.record.write_bytes(b"")
        assert project.stored() == {x: ("completed", x * 10) for x in (1, 2, 3)}
        assert "nothing left to run" in project.status()


def lines_of(record: Path) -> list[bytes]:
    return record.read_bytes().splitlines(keepends=True)


class TestDamagedLines:
    """A record line of the wrong shape, or a run of NUL bytes, is skipped and counted:
    every command works, loses at most that line's setting, and exits as it would."""

    @pytest.mark.parametrize(
        "garbage",
        [
            b"[1,2]\n",
            b"5\n",
            b'"outcome"\n',
            b'{"event":"outcome","id":"0123456789abcdef","rows":5,"enc":{"x":"1","pad":"0"}}\n',
            b'{"event":"started","id":"0123456789abcdef","params":[1]}\n',
            b"\0" * 300 + b"\n",
            b"\0\0\0" + b'{"event":"outcome"}\n',
        ],
        ids=["list", "number", "string", "rows-5", "params-list", "nul-run", "nul-prefix"],
    )
    def test_an_inserted_line(self, project, garbage):
        """An extra line is skipped, counted by status, and nothing is lost or rerun."""
        project.run()
        project.ran()
        lines = lines_of(project.record)
        lines.insert(2, garbage)
        project.record.write_bytes(b"".join(lines))
        (project.store / "results.parquet").unlink()  # read the record from the start
        status = project.status()
        assert "record: 1 damaged line skipped" in status
        assert "nothing left to run" in status
        assert project.stored() == {x: ("completed", x * 10) for x in (1, 2, 3)}
        project.run(*WIDE)
        assert project.ran() == [4, 5]
        assert "record: 1 damaged line skipped" in project.status(*WIDE)

    @pytest.mark.parametrize(
        "damage",
        [{"params": "abc"}, {"rows": 5}, {"rows": [1, 2]}, {"attempt": "one"}, {"enc": [1]}],
        ids=["params-abc", "rows-5", "rows-not-dicts", "attempt-text", "enc-list"],
    )
    def test_a_damaged_outcome(self, project, damage):
        """A setting whose outcome line is damaged is lost, alone, and runs again."""
        project.run()
        project.ran()
        lines = lines_of(project.record)
        outcomes = [i for i, line in enumerate(lines) if b'"outcome"' in line]
        line = json.loads(lines[outcomes[1]])
        lost = line["params"]["x"]
        line.update(damage)
        lines[outcomes[1]] = json.dumps(line).encode() + b"\n"
        project.record.write_bytes(b"".join(lines))
        (project.store / "results.parquet").unlink()
        status = project.status()
        assert "record: 1 damaged line skipped" in status
        assert f"interrupted  x={lost}" in status  # its started line is intact
        project.run()
        assert project.ran() == [lost]
        assert project.stored() == {x: ("completed", x * 10) for x in (1, 2, 3)}

    def test_several_lines(self, project):
        """Status counts every damaged line, below and above what results.parquet holds."""
        project.run()
        lines = lines_of(project.record)
        project.record.write_bytes(b"".join([*lines[:2], b"[1]\n", *lines[2:], b"{}x\n"]))
        project.run(*WIDE)  # compacts the first two into results.parquet
        with project.record.open("ab") as f:
            f.write(b"\0" * 64 + b"\n")
        assert "record: 3 damaged lines skipped" in project.status(*WIDE)

    def test_a_flipped_bit_in_the_records_start(self, project):
        """A bit flipped in a value of the record's first 4 KiB (y=10 read as 11) loses to
        the stored value, in every command, after the next run and with results.parquet
        gone; status counts the damaged line."""
        project.run()
        project.ran()
        data = bytearray(project.record.read_bytes())
        at = data.index(b'"y":10')
        assert at < 4096
        data[at + 5] ^= 1  # "0" -> "1"
        project.record.write_bytes(bytes(data))
        everything = {x: ("completed", x * 10) for x in (1, 2, 3)}
        assert project.stored() == everything
        status = project.status()
        assert "record: 1 damaged line skipped" in status
        assert "nothing left to run" in status
        project.run(*WIDE)
        assert project.ran() == [4, 5]
        wide = {x: ("completed", x * 10) for x in range(1, 6)}
        assert project.stored(*WIDE) == wide
        assert "record: 1 damaged line skipped" in project.status(*WIDE)
        (project.store / "results.parquet").unlink()  # the record alone
        assert project.stored(*WIDE) == wide

    def test_an_intact_record_says_nothing(self, project):
        project.run()
        assert "damaged" not in project.status()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MB tmpfs (root only; CI runs as root, and there it must not skip)."""
    if os.geteuid() != 0:
        why = "mounting a tmpfs needs root (CI runs .ci/run as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but not root: {why}")
        pytest.skip(why)
    where = tmp_path / "disk"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def leftovers(folder: Path) -> list[str]:
    """Temporary files left in a results folder."""
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in done.stderr, done.stderr
    assert len(errors) == 1, done.stderr
    return errors[0]


class TestAFullDisk:
    """No space left: one line says what could not be written and that the results stored
    are safe; exit code 3; no temporary file left; the next run resumes."""

    def test_the_record_fills_the_disk(self, tmpfs):
        project = Project(tmpfs / "project")
        many = ("--x", ",".join(str(x) for x in range(1, 41)), "--pad", "60000")
        done = experiment("grid.py:Grid", "-q", *many, cwd=project.root)
        assert done.returncode == 3, done.stdout + done.stderr
        line = one_error_line(done)
        assert "could not write" in line, line
        assert "record.jsonl: No space left on device" in line, line
        assert leftovers(project.store) == []
        stored = project.stored(*many)
        outcomes = {x for x, (status, _) in stored.items() if status in ("completed", "failed")}
        assert f"the {len(outcomes)} stored results are safe" in line, line
        completed = {x for x, (status, _) in stored.items() if status == "completed"}
        assert completed
        assert all(stored[x][1] == x * 10 for x in completed)
        subprocess.run(["mount", "-o", "remount,size=64m", str(tmpfs)], check=True)
        project.ran()
        project.run(*many)
        ran = project.ran()
        assert not set(ran) & completed  # nothing stored is run again
        assert sorted(set(ran) | completed) == list(range(1, 41))

    def test_results_parquet_cannot_be_written(self, tmpfs):
        """A disk filled by another program during a run: results.parquet stays whole,
        its temporary file removed, and freeing space is enough to go on."""
        project = Project(tmpfs / "project")
        project.run()
        filler = tmpfs / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as f:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        done = experiment("grid.py:Grid", "-q", *WIDE, cwd=project.root)
        assert done.returncode == 3, done.stdout + done.stderr
        line = one_error_line(done)
        assert "No space left on device" in line
        assert "are safe" in line
        assert leftovers(project.store) == []
        pl.read_parquet(project.store / "results.parquet")  # whole
        filler.unlink()
        project.ran()
        project.run(*WIDE)
        assert project.stored(*WIDE) == {x: ("completed", x * 10) for x in range(1, 6)}
        assert not {1, 2, 3} & set(project.ran())


def fill(disk: Path) -> None:
    """Fill a file system to its last byte, as another program would."""
    with contextlib.suppress(OSError), (disk / "filler").open("wb") as f:
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    with contextlib.suppress(OSError), (disk / "filler-last").open("wb") as f:
        while True:  # what a block-sized write could not take
            f.write(b"\0")
            f.flush()


class TestRerunsOnAFullDisk:
    """A run again while the disk is still full ends as the first did: one line, exit
    code 3, nothing left behind, nothing stored lost."""

    @pytest.mark.parametrize("stop", ["the record", "results.parquet"])
    def test_every_run_ends_in_one_line(self, tmpfs, stop):
        """The record fills the disk, or another program does after a run: every run
        after it, with the disk still full, says what could not be written, exit 3."""
        project = Project(tmpfs / "project")
        many, again = WIDE, ("--fresh",)  # --fresh: every run has something to write
        if stop == "the record":
            many = ("--x", ",".join(str(x) for x in range(1, 41)), "--pad", "60000")
            again = ()
        else:
            project.run()
            fill(tmpfs)
        for _ in range(3):
            done = experiment("grid.py:Grid", "-q", *many, *again, cwd=project.root)
            assert done.returncode == 3, done.stdout + done.stderr
            line = one_error_line(done)
            assert "No space left on device" in line, line
            assert "are safe" in line, line
            assert leftovers(project.store) == []
        stored = project.stored(*many)
        assert stored
        assert all(y == x * 10 for x, (status, y) in stored.items() if status == "completed")

    @pytest.mark.parametrize(
        "raised",
        [
            "polars.exceptions.PanicException",
            "polars.exceptions.ComputeError",
            "RuntimeError",
        ],
    )
    def test_whatever_the_writer_raises(self, tmpfs, raised):
        """A parquet writer that fails on a full disk with an error of its own (a
        panic, an error whose text names no errno) is a store error saying no space is
        left, with no temporary file left behind."""
        from superparams._store._writer import Store

        store = Store(tmpfs / "store", ("x",))
        with store:
            pass
        fill(tmpfs)
        module, _, name = raised.rpartition(".")
        kind = getattr(__import__(module, fromlist=[name]), name) if module else RuntimeError

        def write(f: object) -> None:
            raise kind("parquet: failed to write whole buffer")

        from superparams._store._layout import atomic_write
        from superparams.errors import StoreWriteError

        with pytest.raises(OSError, match="No space left on device") as caught:
            atomic_write(store.results_path, write)
        assert not isinstance(caught.value, StoreWriteError)
        assert caught.value.filename == str(store.results_path)
        assert leftovers(store.folder) == []


class TestAReadOnlyFolder:
    """A results folder that cannot be written: one line, exit code 3, nothing changed."""

    def test_a_read_only_mount(self, tmpfs):
        project = Project(tmpfs / "project")
        project.run()
        before = {p: p.read_bytes() for p in project.store.rglob("*") if p.is_file()}
        subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
        done = experiment("grid.py:Grid", "-q", *WIDE, cwd=project.root)
        assert done.returncode == 3, done.stdout + done.stderr
        line = one_error_line(done)
        assert "Read-only file system" in line, line
        assert "3 stored results are safe" in line, line
        after = {p: p.read_bytes() for p in project.store.rglob("*") if p.is_file()}
        assert after == before
        # reading still works
        assert project.stored() == {x: ("completed", x * 10) for x in (1, 2, 3)}

    def test_a_folder_without_write_permission(self, tmp_path):
        """A folder whose mode forbids writing (as a user who is not root)."""
        if os.geteuid() == 0:
            pytest.skip("root writes whatever the mode; the read-only mount test covers it")
        project = Project(tmp_path / "project")
        project.run()
        os.chmod(project.store, 0o555)
        try:
            done = experiment("grid.py:Grid", "-q", *WIDE, cwd=project.root)
        finally:
            os.chmod(project.store, 0o755)
        assert done.returncode == 3, done.stdout + done.stderr
        assert "Permission denied" in one_error_line(done)


class TestAnUnreadableRecord:
    def test_a_folder_in_the_records_place(self, project):
        """A record that cannot be read: one line, exit code 3, for every command."""
        project.run()
        project.record.unlink()
        project.record.mkdir()
        for args in (["status"], ["results"], []):
            done = project.command(*args, "grid.py:Grid")
            assert done.returncode == 3, done.stdout + done.stderr
            line = one_error_line(done)
            assert line.startswith(f"error: {str(project.record)!r} is a folder, not a file"), line


# An experiment that a module-level statement breaks, and one whose engine is unreachable.
BROKEN = """
from superparams import Experiment

raise RuntimeError("the data folder is not mounted")


class Broken(Experiment):
    def run(self):
        return {}
"""

# Importable in the driver, not in a worker (a module that needs what only the login
# node has, say).
DRIVER_ONLY = """
import sys

from superparams import Experiment, search

if sys.argv[0].endswith("_process.py"):  # a local worker process
    raise RuntimeError("no licence server on this node")


class Job(Experiment):
    x: int = search(1, 2)

    def run(self):
        return {}
"""


class TestExitCodes:
    """Each way a command ends has its exit code, the same through every command."""

    def test_0_every_setting_completed(self, project):
        assert project.command("grid.py:Grid", "-q").returncode == 0

    def test_1_some_failed(self, project):
        (project.root / "fail2").touch()
        assert project.command("grid.py:Grid", "-q").returncode == 1

    def test_2_bad_usage(self, project):
        done = project.command("grid.py:Grid", "--x", "one")
        assert done.returncode == 2, done.stderr
        one_error_line(done)

    def test_4_the_store_is_in_use(self, project):
        project.run()
        with open(project.store / "lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            done = project.command("grid.py:Grid", "-q", *WIDE)
            cleaned = project.command("clean", "grid.py:Grid", "--yes")
        assert done.returncode == 4, done.stdout + done.stderr
        assert "another run is writing" in one_error_line(done)
        assert cleaned.returncode == 4, cleaned.stdout + cleaned.stderr

    def test_5_the_experiment_could_not_be_loaded(self, tmp_path):
        (tmp_path / "broken.py").write_text(textwrap.dedent(BROKEN))
        for args in (["broken.py:Broken"], ["status", "broken.py:Broken"]):
            done = experiment(*args, cwd=tmp_path)
            assert done.returncode == 5, done.stdout + done.stderr
            assert "RuntimeError: the data folder is not mounted" in done.stderr
            assert "could not import broken.py" in done.stderr
        assert not (tmp_path / "progress").exists()

    def test_5_a_worker_could_not_load_it(self, tmp_path):
        (tmp_path / "driveronly.py").write_text(textwrap.dedent(DRIVER_ONLY))
        done = experiment("driveronly.py:Job", "-j", "2", cwd=tmp_path)
        assert done.returncode == 5, done.stdout + done.stderr
        line = one_error_line(done)
        assert "a worker could not load the experiment" in line
        assert "no licence server on this node" in line

    def test_6_an_engine_could_not_be_reached(self, project):
        """A Dask scheduler that is not there: one line, exit code 6."""
        pytest.importorskip("distributed")
        address = "tcp://127.0.0.1:9"  # the discard port: nothing listens there
        engine = ("--engine", "dask", "--engine-option", f"address={address}")
        done = project.command("grid.py:Grid", *engine)
        assert done.returncode == 6, done.stdout + done.stderr
        assert f"the Dask scheduler at {address} could not be reached" in one_error_line(done)
        assert project.ran() == []  # nothing ran

    def test_the_codes_are_the_error_classes(self):
        """Each code lives on its error class; the running page's table lists them all."""
        from superparams import (
            EngineError,
            StoreConflictError,
            StoreError,
            StoreLockedError,
            StoreWriteError,
            SuperparamsError,
            UsageError,
        )
        from superparams.errors import LoadError, WorkerError

        codes = {
            SuperparamsError: 1,
            UsageError: 2,
            StoreConflictError: 2,
            StoreError: 3,
            StoreWriteError: 3,
            StoreLockedError: 4,
            LoadError: 5,
            WorkerError: 5,
            EngineError: 6,
        }
        assert {cls: cls.exit_code for cls in codes} == codes
        assert issubclass(StoreWriteError, OSError)
        running = (Path(__file__).parents[2] / "docs" / "running.md").read_text()
        for code in (0, 1, 2, 3, 4, 5, 6, 130):
            assert f"| {code} |" in running
