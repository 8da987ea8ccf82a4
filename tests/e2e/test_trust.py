"""Folders another local user could change, met through the real ``experiment`` command.

Another user is a real one (made with ``useradd``), acting through ``runuser``: it makes
``progress/`` first in a shared group checkout, or a folder under a shared sticky
``SUPERPARAMS_PROGRESS``, and plants a forged record or a checkpoint whose pickle would
run as you. Every command refuses such a folder with one line, exit code 3, and writes
nothing; a sticky shared root, and a link to a folder of yours, stay allowed. Files that
are not regular files (a FIFO, a folder) are refused without waiting, and ``logs/``
swapped for a link during a run is never written through.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import environment, wait_for, write
from tests.e2e.test_files import experiment, one_line

pytestmark = pytest.mark.slow

INTRUDER = "sp-intruder"

# The README's checkpoint recipe: an earlier attempt's checkpoint is loaded.
TRAIN = """
import os
import pickle
import time
from pathlib import Path
from superparams import Experiment, search

class Train(Experiment):
    k: int = search(0, 1)

    def run(self):
        checkpoint = self.workdir / "checkpoint.pkl"
        state = {"k": self.k}
        if self.resumed and checkpoint.exists():
            state = pickle.loads(checkpoint.read_bytes())
        go = Path(__file__).with_name("go")
        while self.k == 1 and os.environ.get("WAIT") and not go.exists():
            time.sleep(0.05)
        print(f"k={self.k}")
        if self.k == 0 and os.environ.get("FAIL"):
            raise ValueError("k=0 fails")
        checkpoint.write_bytes(pickle.dumps(state))
        return {"double": 2 * self.k}
"""


def needs_root() -> None:
    """Skip without root, saying why; under CI (which runs as root) fail instead."""
    if os.geteuid() != 0:
        why = "another real user (useradd, runuser) needs root; CI runs .ci/run as root"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture(scope="session")
def intruder() -> str:
    """Another real local user."""
    needs_root()
    try:
        pwd.getpwnam(INTRUDER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", INTRUDER], check=True)
    return INTRUDER


def as_user(user: str, script: str, stdin: bytes | None = None) -> None:
    """Run a shell script as ``user``."""
    subprocess.run(["runuser", "-u", user, "--", "sh", "-euc", script], input=stdin, check=True)


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder every user can write in, as a group checkout or a scratch disk is."""
    path = Path(tempfile.mkdtemp(prefix="sp-shared-", dir="/tmp"))
    os.chmod(path, 0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Payload:
    """A pickle that, loaded, writes who loaded it to ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"id -u > {self.path}",))


def python(project: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` in the project's experiments/ folder, as a user's script."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=project / "experiments",
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def setting_ids(project: Path) -> list[str]:
    """The ids of Train's settings, as the command computes them."""
    done = python(project, "import train; print(' '.join(s.id for s in train.Train()))")
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under ``root``: its mode and, for a file, its bytes."""
    found: dict[str, tuple[int, bytes | None]] = {}
    for path in [root, *root.rglob("*")]:
        info = path.lstat()
        data = path.read_bytes() if stat.S_ISREG(info.st_mode) else None
        found[str(path.relative_to(root))] = (info.st_mode, data)
    return found


def refused(done: subprocess.CompletedProcess[str], path: Path, why: str) -> None:
    """The command stopped with exit code 3 and one line naming ``path`` and ``why``."""
    assert done.returncode == 3, done.stdout + done.stderr
    line = one_line(done)
    assert line.startswith(f"error: {str(path)!r} {why}"), line
    assert "another user could change" in line, line


COMMANDS = [
    ["train.Train"],
    ["status", "train.Train"],
    ["results", "train.Train"],
    ["logs", "train.Train", "--k", "0"],
    ["clean", "train.Train", "--yes"],
    ["plot", "train.Train", "--x", "k", "--y", "double", "--out", "plot.png"],
    ["report", "train.Train", "--out", "report.html"],
]


class Planted:
    """A project in a shared folder, whose results folder another user made first, with
    a forged result and a checkpoint whose pickle runs as whoever loads it."""

    def __init__(self, project: Path, progress: Path, user: str, ids: list[str]) -> None:
        self.project, self.progress = project, progress
        self.store = progress / "train" / "Train"
        self.pwned = project.parent / "pwned"
        forged = {"event": "outcome", "id": ids[0], "status": "completed", "attempt": 1}
        forged.update({"started": 0.0, "seconds": 1.0, "worker": 0, "log": None})
        forged.update({"workdir": None, "rows": [{"double": 999}], "params": {"k": 0}})
        forged.update({"label": "k=0", "enc": {"k": "0"}})
        as_user(user, f"mkdir -p {self.store}/work/{ids[1]}")
        as_user(
            user,
            f"cat > {self.store}/work/{ids[1]}/checkpoint.pkl",
            pickle.dumps(Payload(self.pwned)),
        )
        as_user(user, f"cat > {self.store}/record.jsonl", (json.dumps(forged) + "\n").encode())
        self.before = snapshot(project)

    def check_refused(self, done: subprocess.CompletedProcess[str], path: Path, why: str) -> None:
        """Refused, nothing written, and no pickle of the other user's loaded."""
        assert not self.pwned.exists(), f"the planted pickle ran as uid {self.pwned.read_text()}"
        refused(done, path, why)
        assert snapshot(self.project) == self.before


class TestAFolderAnotherUserMade:
    """A results folder another user made (or any folder from it up to the progress root)
    is refused by every command, with one line and exit code 3; nothing is written."""

    @pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0].split(".")[0])
    def test_progress_made_first_in_a_group_checkout(self, intruder, shared, args):
        """Another user who made progress/ first in a shared checkout cannot have their
        checkpoint loaded, nor their forged result shown, by any command."""
        project = shared / "checkout"
        write(project / "experiments/train.py", TRAIN)
        os.chmod(project / "experiments", 0o777)  # a group checkout: others write here
        progress = project / "experiments/progress"
        planted = Planted(project, progress, intruder, setting_ids(project))
        done = experiment(*args, cwd=project)
        planted.check_refused(done, progress, f"is owned by {intruder} (uid ")

    def test_a_folder_under_a_shared_sticky_root(self, intruder, shared):
        """Under a SUPERPARAMS_PROGRESS of mode 1777, another user's folder for the
        experiment is refused, and the run writes nothing."""
        os.chmod(shared, 0o1777)
        project = shared / "mine"
        write(project / "experiments/train.py", TRAIN)
        planted = Planted(project, shared, intruder, setting_ids(project))
        before = snapshot(shared / "train")
        for args in (["train.Train"], ["results", "train.Train"]):
            done = experiment(*args, cwd=project, SUPERPARAMS_PROGRESS=str(shared))
            planted.check_refused(done, shared / "train", f"is owned by {intruder} (uid ")
        assert snapshot(shared / "train") == before

    def test_a_folder_others_can_write(self, shared):
        """A folder of yours that others can write in (no sticky bit) is refused too."""
        project = shared / "mine"
        write(project / "experiments/train.py", TRAIN)
        assert experiment("train.Train", cwd=project).returncode == 0
        store = project / "experiments/progress/train/Train"
        os.chmod(store, 0o777)
        before = snapshot(project)
        done = experiment("train.Train", "--k", "0,1,2", cwd=project)
        refused(done, store, "can be changed by other users (mode 777, not sticky)")
        assert done.stderr.endswith(
            f"`chmod go-w {store}` if it is for you alone, then run again\n"
        )
        assert snapshot(project) == before

    def test_the_python_api_refuses_it_too(self, intruder, shared):
        """run_all() and results() from Python raise the same StoreError."""
        project = shared / "checkout"
        write(project / "experiments/train.py", TRAIN)
        os.chmod(project / "experiments", 0o777)
        planted = Planted(project, project / "experiments/progress", intruder, setting_ids(project))
        for call in ("Train().run_all(display=False)", "Train().results()"):
            code = "from train import Train\nfrom superparams import StoreError\ntry:\n"
            code += f"    {call}\nexcept StoreError as e:\n    print('refused:', e)\n"
            done = python(project, code)
            assert done.stdout.startswith("refused: "), done.stdout + done.stderr
            assert f"is owned by {intruder}" in done.stdout
        assert not planted.pwned.exists()
        assert snapshot(project) == planted.before

    def test_a_setting_folder_another_user_owns(self, intruder, shared):
        """A work/<id> folder another user owns, in a folder of yours, is never used:
        that setting fails saying so, and the checkpoint planted there is not loaded."""
        project = shared / "mine"
        write(project / "experiments/train.py", TRAIN)
        assert experiment("train.Train", "--k", "0", cwd=project).returncode == 0
        ids = setting_ids(project)
        work = project / "experiments/progress/train/Train/work"
        pwned = shared / "pwned"
        (work / ids[1]).mkdir()
        shutil.chown(work / ids[1], intruder)
        as_user(intruder, f"cat > {work / ids[1]}/checkpoint.pkl", pickle.dumps(Payload(pwned)))
        done = experiment("train.Train", cwd=project)
        assert done.returncode == 1, done.stdout + done.stderr
        assert not pwned.exists(), f"the planted pickle ran as uid {pwned.read_text()}"
        rows = pl.read_parquet(work.parent / "results.parquet").sort("k")
        assert rows["status"].to_list() == ["completed", "failed"]
        assert rows["error"][1].startswith(
            f"StoreError: {str(work / ids[1])!r} is owned by {intruder}"
        )


class TestAllowedFolders:
    """A sticky shared root, and a results folder or progress/ that is a link to a folder
    of yours (empty, or holding this experiment), are used as before."""

    def test_a_shared_sticky_root(self, shared):
        """SUPERPARAMS_PROGRESS on a disk of mode 1777: the run makes its folders below."""
        os.chmod(shared, 0o1777)
        project = shared / "mine"
        write(project / "experiments/train.py", TRAIN)
        done = experiment("train.Train", cwd=project, SUPERPARAMS_PROGRESS=str(shared))
        assert done.returncode == 0, done.stderr
        assert pl.read_parquet(shared / "train/Train/results.parquet").height == 2

    def test_a_link_to_an_empty_folder_of_yours(self, tmp_path):
        """A results folder that links to an empty folder of yours is used."""
        write(tmp_path / "experiments/train.py", TRAIN)
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        (tmp_path / "experiments/progress/train").mkdir(parents=True)
        (tmp_path / "experiments/progress/train/Train").symlink_to(scratch)
        done = experiment("train.Train", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert pl.read_parquet(scratch / "results.parquet").height == 2

    def test_a_link_to_a_folder_holding_this_experiment(self, tmp_path):
        """A results folder moved to a scratch disk and linked back is used."""
        write(tmp_path / "experiments/train.py", TRAIN)
        assert experiment("train.Train", "--k", "0", cwd=tmp_path).returncode == 0
        store = tmp_path / "experiments/progress/train/Train"
        store.rename(tmp_path / "scratch")
        store.symlink_to(tmp_path / "scratch")
        done = experiment("train.Train", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert pl.read_parquet(tmp_path / "scratch/results.parquet").height == 2


class TestLinksToFoldersNotOurs:
    """A results folder that is a link to a folder superparams did not make for this
    experiment, or that another user owns, is refused; nothing is written there."""

    def test_a_link_to_a_folder_holding_something_else(self, tmp_path):
        """A link to a folder of yours holding other files is refused: its files (a
        lock, a record, logs/) are neither truncated nor deleted by run or clean."""
        write(tmp_path / "experiments/train.py", TRAIN)
        victim = tmp_path / "victim"
        (victim / "logs").mkdir(parents=True)
        for name in ("lock", "record.jsonl", "logs/keep.log"):
            (victim / name).write_text("precious\n")
        (tmp_path / "experiments/progress/train").mkdir(parents=True)
        link = tmp_path / "experiments/progress/train/Train"
        link.symlink_to(victim)
        before = snapshot(victim)
        for args in (["train.Train"], ["clean", "train.Train", "--yes"]):
            done = experiment(*args, cwd=tmp_path)
            assert done.returncode == 3, done.stdout + done.stderr
            assert one_line(done).startswith(
                f"error: {str(link)!r} is a link to a folder that holds"
            )
            assert snapshot(victim) == before

    def test_a_link_to_a_folder_another_user_owns(self, intruder, shared):
        """A link to another user's folder is refused, even an empty one."""
        project = shared / "mine"
        write(project / "experiments/train.py", TRAIN)
        theirs = shared / "theirs"
        as_user(intruder, f"mkdir {theirs}")
        (project / "experiments/progress/train").mkdir(parents=True)
        link = project / "experiments/progress/train/Train"
        link.symlink_to(theirs)
        done = experiment("train.Train", cwd=project)
        refused(done, link, f"is a link to a folder owned by {intruder} (uid ")
        assert list(theirs.iterdir()) == []


class TestCleanThroughALink:
    def test_clean_empties_the_linked_folder_and_follows_no_link_inside(self, tmp_path):
        """clean through a results folder that links to a folder of this experiment
        empties that folder and keeps the link; a link found inside is removed, and
        what it leads to is untouched."""
        write(tmp_path / "experiments/train.py", TRAIN)
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        (tmp_path / "experiments/progress/train").mkdir(parents=True)
        link = tmp_path / "experiments/progress/train/Train"
        link.symlink_to(scratch)
        assert experiment("train.Train", cwd=tmp_path).returncode == 0
        victim = tmp_path / "victim"
        victim.mkdir()
        (victim / "precious").write_text("precious\n")
        work = next((scratch / "work").iterdir())
        (work / "data").symlink_to(victim)
        (scratch / "elsewhere").symlink_to(victim)
        done = experiment("clean", "train.Train", "--yes", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert link.is_symlink()
        assert list(scratch.iterdir()) == []
        assert (victim / "precious").read_text() == "precious\n"


class TestFilesThatAreNotFiles:
    """A FIFO or a folder in place of a file of the results folder: every command stops at
    once with one line naming it, exit code 3; nothing waits on it."""

    @pytest.mark.parametrize("name", ["record.jsonl", "experiment.json", "lock", "logs/{}.log"])
    @pytest.mark.parametrize("kind", ["fifo", "folder"])
    def test_a_fifo_or_a_folder(self, tmp_path, name, kind):
        """run, status and logs stop at once with one line naming it, exit code 3."""
        write(tmp_path / "experiments/train.py", TRAIN)
        assert experiment("train.Train", cwd=tmp_path).returncode == 0
        store = tmp_path / "experiments/progress/train/Train"
        planted = store / name.format(setting_ids(tmp_path)[0])
        planted.unlink()
        if kind == "fifo":
            os.mkfifo(planted)
        else:
            planted.mkdir()
        commands = [["status", "train.Train"], ["train.Train", "--fresh", "--yes"]]
        if name.startswith("logs"):
            commands = [["logs", "train.Train", "--k", "0"]]
        for args in commands:
            try:
                done = experiment(*args, cwd=tmp_path, timeout=20)
            except subprocess.TimeoutExpired:
                pytest.fail(f"`experiment {' '.join(args)}` hung on a {kind} at {name}")
            assert done.returncode == 3, done.stdout + done.stderr
            what = "a FIFO" if kind == "fifo" else "a folder"
            assert one_line(done).startswith(f"error: {str(planted)!r} is {what}, not a file")

    def test_a_fifo_another_user_planted(self, intruder, shared):
        """A FIFO another user left in place of the record, while the folder was open to
        them (it is not now), stops run and status at once, with one line."""
        project = shared / "mine"
        write(project / "experiments/train.py", TRAIN)
        assert experiment("train.Train", cwd=project).returncode == 0
        store = project / "experiments/progress/train/Train"
        os.chmod(store, 0o777)
        as_user(intruder, f"cd {store}; rm record.jsonl; mkfifo -m 666 record.jsonl")
        os.chmod(store, 0o755)
        for args in (["train.Train"], ["status", "train.Train"]):
            try:
                done = experiment(*args, cwd=project, timeout=20)
            except subprocess.TimeoutExpired:
                pytest.fail(f"`experiment {' '.join(args)}` hung on another user's FIFO")
            assert done.returncode == 3, done.stdout + done.stderr
            record = store / "record.jsonl"
            assert one_line(done).startswith(f"error: {str(record)!r} is a FIFO, not a file")

    @pytest.mark.parametrize("kind", ["fifo", "link"])
    def test_the_report_reads_no_failed_log_that_is_not_a_file(self, tmp_path, kind):
        """The report shows the end of each failed setting's log: a FIFO or a link in a
        log's place is left out, never waited on, never read through."""
        write(tmp_path / "experiments/train.py", TRAIN)
        assert experiment("train.Train", cwd=tmp_path, FAIL="1").returncode == 1
        log = tmp_path / "experiments/progress/train/Train/logs" / f"{setting_ids(tmp_path)[0]}.log"
        log.unlink()
        secret = tmp_path / "secret"
        secret.write_text("a secret of yours\n")
        if kind == "fifo":
            os.mkfifo(log)
        else:
            log.symlink_to(secret)
        try:
            done = experiment("report", "train.Train", "--out", "r.html", cwd=tmp_path, timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`experiment report` hung on a {kind} in a failed setting's log's place")
        assert done.returncode == 0, done.stderr
        report = (tmp_path / "r.html").read_text()
        assert "k=0 fails" in report
        assert "a secret of yours" not in report


class TestLogsSwappedDuringARun:
    def test_logs_swapped_for_a_link_is_not_written_through(self, intruder, shared, start):
        """logs/ renamed and replaced by a link (here by another user, let in) while the
        run goes on: the run keeps writing into the folder it opened; nothing reaches
        the link's target."""
        project = shared / "mine"
        write(project / "experiments/train.py", TRAIN)
        store = project / "experiments/progress/train/Train"
        victim = shared / "victim"
        as_user(intruder, f"mkdir -m 777 {victim}")
        driver = start(project, "train.Train", "--num_proc", "1", WAIT="1")
        record = store / "record.jsonl"
        starts = lambda: record.exists() and record.read_bytes().count(b'"event":"started"')  # noqa: E731
        wait_for(lambda: starts() == 2, "the second setting to start")
        os.chmod(store, 0o777)  # a folder that others came to be let into
        as_user(intruder, f"cd {store}; mv logs logs.old; ln -s {victim} logs")
        (project / "experiments/go").touch()
        _, stderr = driver.communicate(timeout=60)
        assert driver.returncode == 0, stderr
        assert list(victim.iterdir()) == []
        logs = sorted(p.read_text() for p in (store / "logs.old").iterdir())
        assert logs == ["k=0\n", "k=1\n"]


class TestAPrivateFolderForRemoteWorkers:
    """A worker on a machine without the results folder keeps settings' folders in a
    folder of this user's alone in TMPDIR: another user cannot plant a checkpoint there."""

    SCRIPT = """
import sys
from superparams import StoreError
from superparams._store._workdir import Rooted
from train import Train

base = Rooted(Train(), "/nonexistent/progress/train/Train/work")
try:
    print(base[1].run())
except StoreError as e:
    print("refused:", e)
"""

    def run(self, project: Path, tmpdir: Path) -> subprocess.CompletedProcess[str]:
        return python(project, self.SCRIPT, TMPDIR=str(tmpdir))

    def test_a_folder_planted_in_tmpdir_is_refused(self, intruder, shared):
        """The folder another user made first (at today's name, or at the old one) is
        never used: the setting's use of it is refused, and no planted pickle runs."""
        os.chmod(shared, 0o1777)
        project = shared / "mine"
        write(project / "experiments/train.py", TRAIN)
        ids = setting_ids(project)
        pwned = shared / "pwned"
        payload = pickle.dumps(Payload(pwned))
        name = hashlib.sha256(b"/nonexistent/progress/train/Train/work").hexdigest()[:16]
        for folder in (f"superparams-work-{os.geteuid()}", "superparams-work"):
            planted = shared / folder / name / ids[1]
            as_user(intruder, f"mkdir -p -m 777 {planted}")
            as_user(intruder, f"cat > {planted}/checkpoint.pkl", payload)
        done = self.run(project, shared)
        assert not pwned.exists(), f"the planted pickle ran as uid {pwned.read_text()}"
        private = shared / f"superparams-work-{os.geteuid()}"
        assert done.stdout.startswith(f"refused: {str(private)!r} is a folder of uid "), (
            done.stdout + done.stderr
        )

    def test_the_folder_is_made_private(self, shared):
        """Made afresh, it is the user's, mode 0700, and the setting's folder is in it."""
        os.chmod(shared, 0o1777)
        project = shared / "mine"
        write(project / "experiments/train.py", TRAIN)
        done = self.run(project, shared)
        assert "{'double': 2}" in done.stdout, done.stdout + done.stderr
        private = (shared / f"superparams-work-{os.geteuid()}").lstat()
        assert private.st_uid == os.geteuid()
        assert stat.S_IMODE(private.st_mode) == 0o700
