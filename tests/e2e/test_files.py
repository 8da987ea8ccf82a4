"""The files of a results folder, through the real ``experiment`` command.

The lock belongs to the run and to no process it forks; nothing inside the folder is
opened through a symbolic link, whoever planted it; an export never overwrites a file
unasked; a log is read from its end and kept to a size.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import stat
import subprocess
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import wait_for
from tests.e2e.sources import MODES
from tests.e2e.test_cli import COMMAND, environment, write

from superparams._store._layout import linked

pytestmark = pytest.mark.slow

ONE_AT_A_TIME = {"in-process": ("--engine", "inline"), "worker": ()}

TRAIN = """
from superparams import Experiment, search

class Train(Experiment):
    n: int = search(0, 1)

    def run(self):
        print(f"n={self.n} runs")
        return {"double": 2 * self.n}
"""

# Setting 0 forks a child that leaves its session and sleeps: the kind of process a
# data loader or a server started by run() is. Then the setting waits to be killed.
FORKS = """
import os
import time
from pathlib import Path
from superparams import Experiment, search

PIDS = Path(__file__).with_name("pids")

class Forks(Experiment):
    n: int = search(0, 1)

    def run(self):
        if self.n == 0 and not (PIDS / "child").exists():
            child = os.fork()
            if child == 0:
                os.setsid()
                time.sleep(60)
                os._exit(0)
            PIDS.mkdir(exist_ok=True)
            (PIDS / "child").write_text(str(child))
            time.sleep(60)
        return {"n": self.n}
"""

# The setting waits until a file named go appears beside it.
WAITS = """
import time
from pathlib import Path
from superparams import Experiment

class Waits(Experiment):
    def run(self):
        while not Path(__file__).with_name("go").exists():
            time.sleep(0.05)
        return {"waited": True}
"""


# Setting 0 waits (with WAIT set) until a file named go appears beside it; both print.
WAITS_FIRST = """
import os
import time
from pathlib import Path
from superparams import Experiment, search

class Waits(Experiment):
    n: int = search(0, 1)

    def run(self):
        print(f"n={self.n}")
        go = Path(__file__).with_name("go")
        while self.n == 0 and os.environ.get("WAIT") and not go.exists():
            time.sleep(0.05)
        return {"n": self.n}
"""


def experiment(
    *args: str, cwd: Path, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the installed command, with no terminal attached."""
    return subprocess.run(
        [str(COMMAND), *args],
        cwd=cwd,
        env={**environment(), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def folder(root: Path, module: str = "train", cls: str = "Train") -> Path:
    return root / "experiments/progress" / module / cls


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The command's only line of output, which is on stderr."""
    assert done.stdout == "", done.stdout
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path / "experiments/train.py", TRAIN)
    return tmp_path


class TestForkedChildrenDoNotHoldTheLock:
    def test_a_child_that_outlives_a_killed_run(self, tmp_path):
        """A run whose setting (in the command's own process) forked a child that left
        its session, killed with SIGKILL, leaves the folder free for the next run, while
        that child still lives: that run records the setting failed (its process died
        with it) and runs the other, and --rerun-failed runs it again."""
        write(tmp_path / "experiments/forks.py", FORKS)
        pids = tmp_path / "experiments/pids"
        driver = subprocess.Popen(
            [str(COMMAND), "forks.Forks", "--engine", "inline"],
            cwd=tmp_path,
            env=environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        child = 0
        try:
            wait_for(lambda: (pids / "child").exists(), "the setting to fork its child")
            child = int((pids / "child").read_text())
            driver.kill()
            driver.wait(10)
            os.kill(child, 0)  # still there
            again = experiment("forks.Forks", "--engine", "inline", cwd=tmp_path)
            assert again.returncode == 1, again.stderr  # n=0 is recorded failed
            assert "another run is writing" not in again.stderr
            rows = pl.read_parquet(folder(tmp_path, "forks", "Forks") / "results.parquet")
            assert rows.sort("n").select("n", "status", "cause").rows() == [
                (0, "failed", "killed"),
                (1, "completed", None),
            ]
            again = experiment("forks.Forks", "--engine", "inline", "--rerun-failed", cwd=tmp_path)
            assert again.returncode == 0, again.stderr
            rows = pl.read_parquet(folder(tmp_path, "forks", "Forks") / "results.parquet")
            assert sorted(rows["status"]) == ["completed", "completed"]
        finally:
            with contextlib.suppress(ProcessLookupError):
                driver.kill()
            if child:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)


def planted(project: Path, name: str, target: Path) -> Path:
    """A link named ``name`` in the store of a run that completed, pointing at ``target``."""
    done = experiment("train.Train", "--n", "0", cwd=project)
    assert done.returncode == 0, done.stderr
    link = folder(project) / name
    if link.is_dir():
        shutil.rmtree(link)
    link.unlink(missing_ok=True)
    link.symlink_to(target)
    return link


def refused_link(path: Path) -> str:
    return (
        f"error: {str(path)!r} is a symbolic link; superparams never reads or writes "
        "through a link inside a results folder: remove it, then run again"
    )


LOG = "logs/{}.log"


def log_name_in(store: Path, n: int) -> str:
    rows = pl.read_parquet(store / "results.parquet")
    return LOG.format(rows.filter(pl.col("n") == n)["id"][0])


def log_name(project: Path, n: int) -> str:
    rows = pl.read_parquet(folder(project) / "results.parquet")
    return LOG.format(rows.filter(pl.col("n") == n)["id"][0])


class TestPlantedLinksAreNeverFollowed:
    @pytest.mark.parametrize("name", ["lock", "record.jsonl", "experiment.json", "logs"])
    def test_a_link_in_the_store_stops_the_run(self, project, tmp_path, name):
        """A link planted in place of a file or folder of the store stops the next run
        with one line naming it and exit code 3; the file it points at is untouched."""
        victim = tmp_path / "victim"
        if name == "logs":
            victim.mkdir()
        else:
            victim.write_text("precious, with no newline at the end")
        planted(project, name, victim)
        done = experiment("train.Train", cwd=project)
        assert done.returncode == 3, done.stderr
        assert one_line(done) == refused_link(folder(project) / name)
        if name == "logs":
            assert list(victim.iterdir()) == []
        else:
            assert victim.read_text() == "precious, with no newline at the end"

    def test_a_link_in_place_of_a_log(self, project, tmp_path):
        """A link planted in place of a setting's log is neither written through by the
        run, nor printed by ``experiment logs``."""
        victim = tmp_path / "victim"
        victim.write_text("precious\n")
        done = experiment("train.Train", cwd=project)
        assert done.returncode == 0, done.stderr
        name = log_name(project, 1)
        (folder(project) / name).unlink()
        (folder(project) / name).symlink_to(victim)
        again = experiment("train.Train", "--fresh", "--yes", cwd=project)
        assert again.returncode == 3, again.stderr
        assert str(folder(project) / name) in again.stderr
        shown = experiment("logs", "train.Train", "--n", "1", cwd=project)
        assert shown.returncode == 3, shown.stderr
        assert one_line(shown) == refused_link(folder(project) / name)
        assert victim.read_text() == "precious\n"

    def test_a_link_in_place_of_the_results_is_replaced(self, project, tmp_path):
        """results.parquet is replaced whole: a link there becomes the table, and the
        file it pointed at is untouched."""
        victim = tmp_path / "victim"
        victim.write_text("precious\n")
        link = planted(project, "results.parquet", victim)
        done = experiment("train.Train", "--fresh", "--yes", cwd=project)
        assert done.returncode == 0, done.stderr
        assert not link.is_symlink()
        assert pl.read_parquet(link).height == 2
        assert victim.read_text() == "precious\n"

    def test_a_link_at_the_temporary_name_is_not_followed(self, tmp_path):
        """A link planted during a run where results.parquet's next temporary file will
        be is not written through."""
        write(tmp_path / "experiments/waits.py", WAITS)
        victim = tmp_path / "victim"
        victim.write_text("precious\n")
        driver = subprocess.Popen(
            [str(COMMAND), "waits.Waits"],
            cwd=tmp_path,
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        try:
            store = folder(tmp_path, "waits", "Waits")
            record = store / "record.jsonl"
            wait_for(lambda: record.exists() and b"started" in record.read_bytes(), "a start")
            (store / f".results.parquet.{driver.pid}.tmp").symlink_to(victim)
            (tmp_path / "experiments/go").touch()
            _, stderr = driver.communicate(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                driver.kill()
            driver.communicate()
        assert driver.returncode == 0, stderr
        assert victim.read_text() == "precious\n"
        assert pl.read_parquet(store / "results.parquet").height == 1

    @pytest.mark.parametrize("mode", ["in-process", "worker"])
    def test_a_link_planted_during_the_run(self, tmp_path, mode):
        """A link planted in place of a setting's log while the run goes on is not written
        through: that setting fails, saying why, and the others complete."""
        write(tmp_path / "experiments/waits.py", WAITS_FIRST)
        assert experiment("waits.Waits", cwd=tmp_path).returncode == 0
        store = folder(tmp_path, "waits", "Waits")
        victim = tmp_path / "victim"
        victim.write_text("precious\n")
        log = store / log_name_in(store, 1)
        driver = subprocess.Popen(
            [str(COMMAND), "waits.Waits", "--fresh", "--yes", *ONE_AT_A_TIME[mode]],
            cwd=tmp_path,
            env={**environment(), "WAIT": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        try:
            record = store / "record.jsonl"
            starts = lambda: record.read_bytes().count(b'"event":"started"')  # noqa: E731
            wait_for(lambda: starts() == 3, "the first setting to start again")
            log.unlink()
            log.symlink_to(victim)
            (tmp_path / "experiments/go").touch()
            _, stderr = driver.communicate(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                driver.kill()
            driver.communicate()
        assert driver.returncode == 1, stderr
        assert victim.read_text() == "precious\n"
        rows = pl.read_parquet(store / "results.parquet").sort("n")
        assert rows["status"].to_list() == ["completed", "failed"]
        assert rows["error"][1] == f"its log could not be opened: {linked(log)}"

    def test_the_store_and_progress_may_be_links(self, project, tmp_path):
        """The store folder itself, or progress/, may be a link to a scratch disk."""
        scratch = tmp_path / "scratch"
        (scratch / "progress").mkdir(parents=True)
        (project / "experiments/progress").symlink_to(scratch / "progress")
        done = experiment("train.Train", cwd=project)
        assert done.returncode == 0, done.stderr
        assert (scratch / "progress/train/Train/results.parquet").exists()
        other = tmp_path / "other"
        other.mkdir()
        moved = scratch / "progress/train/Train"
        moved.rename(other / "Train")
        moved.symlink_to(other / "Train")
        again = experiment("train.Train", "--fresh", "--yes", cwd=project)
        assert again.returncode == 0, again.stderr
        shown = experiment("logs", "train.Train", "--n", "1", "-n", "1", cwd=project)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == "n=1 runs\n"

    def test_folders_are_made_without_group_or_other_write(self, project):
        """Whatever the umask, the folders a run makes are writable by their owner only;
        so are the files."""
        with_umask = f"import os, sys; os.umask(0); os.execv({str(COMMAND)!r}, sys.argv)"
        done = subprocess.run(
            [str(COMMAND.with_name("python")), "-c", with_umask, "train.Train"],
            cwd=project,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stderr
        made = [project / "experiments/progress", project / "experiments/progress/train"]
        made += [folder(project), folder(project) / "logs"]
        made += [p for p in folder(project).rglob("*") if p.is_file()]
        for path in made:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode & 0o022 == 0, f"{path} has mode {oct(mode)}"


class TestExportToParquet:
    def test_an_existing_file_is_kept(self, project):
        """``--parquet`` onto an existing file (the experiment's own .py) is refused with
        one line and exit code 2, and the file is untouched."""
        done = experiment("train.Train", cwd=project)
        assert done.returncode == 0, done.stderr
        source = project / "experiments/train.py"
        before = source.read_bytes()
        refused = experiment("results", "train.Train", "--parquet", str(source), cwd=project)
        assert refused.returncode == 2, refused.stderr
        assert one_line(refused) == (
            f"error: --parquet {str(source)!r} exists; add --force to replace it, or give "
            "another path"
        )
        assert source.read_bytes() == before

    def test_force_overwrites(self, project, tmp_path):
        """With ``--force``, an existing file is replaced by the table."""
        assert experiment("train.Train", cwd=project).returncode == 0
        out = tmp_path / "out.parquet"
        out.write_text("old")
        done = experiment("results", "train.Train", "--parquet", str(out), "--force", cwd=project)
        assert done.returncode == 0, done.stderr
        assert pl.read_parquet(out).height == 2

    def test_a_missing_folder(self, project, tmp_path):
        """A path in a folder that does not exist is one line and exit code 2."""
        assert experiment("train.Train", cwd=project).returncode == 0
        out = tmp_path / "nowhere" / "out.parquet"
        refused = experiment("results", "train.Train", "--parquet", str(out), cwd=project)
        assert refused.returncode == 2, refused.stderr
        assert one_line(refused) == (
            f"error: --parquet {str(out)!r}: {str(out.parent)!r} does not exist; make the "
            "folder, or give another path"
        )
        assert not out.parent.exists()

    def test_a_new_file(self, project, tmp_path):
        """A new file gets the table."""
        assert experiment("train.Train", cwd=project).returncode == 0
        out = tmp_path / "out.parquet"
        done = experiment("results", "train.Train", "--parquet", str(out), cwd=project)
        assert done.returncode == 0, done.stderr
        assert pl.read_parquet(out)["double"].sort().to_list() == [0, 2]


# Setting 0 prints LINES numbered lines of 100 bytes each; setting 1 a line.
CHATTY = """
import os
import sys
from superparams import Experiment, search

class Chatty(Experiment):
    n: int = search(0, 1)

    def run(self):
        if self.n == 1:
            print("short")
            return {"n": 1}
        lines = int(os.environ["LINES"])
        for start in range(0, lines, 10_000):
            chunk = range(start, min(start + 10_000, lines))
            sys.stdout.write("".join(f"line {i:09d} " + "x" * 84 + "\\n" for i in chunk))
        return {"n": 0}
"""


def log_of(store: Path, n: int) -> Path:
    rows = pl.read_parquet(store / "results.parquet")
    return store / rows.filter(pl.col("n") == n)["log"][0]


class TestLogsAreKeptToASize:
    @pytest.mark.parametrize("mode", MODES)
    def test_three_times_the_limit(self, tmp_path, mode):
        """A setting that prints three times SUPERPARAMS_LOG_LIMIT leaves a log of about
        that size: its first and last lines, and a line saying how much was cut."""
        write(tmp_path / "experiments/chatty.py", CHATTY)
        limit, lines = 2**20, 3 * 2**20 // 100
        done = experiment(
            "chatty.Chatty",
            *MODES[mode],
            cwd=tmp_path,
            SUPERPARAMS_LOG_LIMIT="1M",
            LINES=str(lines),
        )
        assert done.returncode == 0, done.stderr
        store = folder(tmp_path, "chatty", "Chatty")
        text = log_of(store, 0).read_text()
        assert limit - 200 <= len(text) <= limit + 200
        kept = text.splitlines()
        assert kept[0] == "line 000000000 " + "x" * 84
        assert kept[-1] == f"line {lines - 1:09d} " + "x" * 84
        cut = [line for line in kept if line.startswith("[... ")]
        assert len(cut) == 1, cut
        match = re.fullmatch(r"\[\.\.\. (\d+) bytes cut: .*\.\.\.\]", cut[0])
        assert match, cut[0]
        assert int(match[1]) == lines * 100 - (len(text) - len(cut[0]) - 1)
        assert log_of(store, 1).read_text() == "short\n"

    def test_under_the_limit_the_log_is_whole(self, tmp_path):
        """The default limit, 100 MB, keeps a smaller log whole."""
        write(tmp_path / "experiments/chatty.py", CHATTY)
        done = experiment("chatty.Chatty", cwd=tmp_path, LINES="30000")
        assert done.returncode == 0, done.stderr
        assert log_of(folder(tmp_path, "chatty", "Chatty"), 0).stat().st_size == 3_000_000


class TestLogsAreReadFromTheEnd:
    def test_the_last_lines_of_a_large_log(self, tmp_path):
        """``experiment logs -n 2`` of a 200 MB log prints its last two lines and reads
        no more of it than that: the command's memory stays far below the log's size."""
        write(tmp_path / "experiments/chatty.py", CHATTY)
        done = experiment("chatty.Chatty", cwd=tmp_path, LINES="1")
        assert done.returncode == 0, done.stderr
        log = log_of(folder(tmp_path, "chatty", "Chatty"), 0)
        block = b"".join(b"%099d\n" % i for i in range(10_000))  # 1 MB
        with log.open("ab") as f:
            for _ in range(200):
                f.write(block)
            f.write(b"the last but one\nthe last")
        # Linux counts the memory of the process that forks a child in the child's peak:
        # the command is started by a small process, which reports the command's peak.
        report = tmp_path / "peak"
        measured = f"""
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:])
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
open({str(report)!r}, "w").write(str(peak))
sys.exit(done.returncode)
"""
        command = [str(COMMAND), "logs", "chatty.Chatty", "--n", "0", "-n", "2"]
        reader = subprocess.run(
            [str(COMMAND.with_name("python")), "-c", measured, *command],
            cwd=tmp_path,
            env=environment(),
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        assert reader.returncode == 0, reader.stderr
        assert reader.stdout == b"the last but one\nthe last\n"
        peak = int(report.read_text())
        assert peak < 150_000, peak  # kB; the log is 200 MB

    def test_the_whole_log(self, project):
        """Without ``-n``, the whole log is printed."""
        assert experiment("train.Train", cwd=project).returncode == 0
        shown = experiment("logs", "train.Train", "--n", "1", cwd=project)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == "n=1 runs\n"


class TestTheFolderStaysOutOfGit:
    def test_git_add_leaves_the_results_folder_out(self, tmp_path):
        """A results folder carries its own .gitignore: in a project under git, `git add .`
        after a run adds the experiment's file and nothing of its results, logs or work."""
        git = shutil.which("git")
        if git is None:
            pytest.skip("git is not installed")
        write(tmp_path / "experiments/train.py", TRAIN)
        subprocess.run([git, "init", "-q"], cwd=tmp_path, check=True)
        done = subprocess.run(
            [str(COMMAND), "train.Train"],
            cwd=tmp_path,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        subprocess.run([git, "add", "."], cwd=tmp_path, check=True)
        added = subprocess.run(
            [git, "diff", "--cached", "--name-only"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert added == ["experiments/train.py"]

    def test_a_folder_from_before_gains_it_at_its_next_run(self, tmp_path):
        """A results folder made before has no .gitignore; the next run that writes there
        (here n=2, new) writes it."""
        write(tmp_path / "experiments/train.py", TRAIN)

        def run(*args: str) -> int:
            command = [str(COMMAND), "train.Train", *args]
            done = subprocess.run(command, cwd=tmp_path, env=environment(), capture_output=True)
            return done.returncode

        assert run() == 0
        ignore = tmp_path / "experiments/progress/train/Train/.gitignore"
        assert ignore.read_text().splitlines()[-1] == "*"
        ignore.unlink()
        assert run("--n", "0,1,2") == 0
        assert ignore.is_file()
