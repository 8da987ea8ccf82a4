"""Reads without an import: ``status``, ``results``, ``logs``, ``plot``, ``report`` and
``view`` use what the last run recorded of the class (``class.json``) while the user's
files are as they were, and import the module as before when one changed, when the
record is missing, or when another user could have written it.

Each experiment here appends a line to ``imports`` beside it whenever its module is
imported, so a test sees whether a command imported it.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from tests.conftest import experiment, wait_for, write

pytestmark = pytest.mark.slow

MARKER = "from pathlib import Path\nPath(__file__).with_name('imports').open('a').write('x\\n')\n"

TRAIN = (
    MARKER
    + """
from superparams import Experiment, search, seeds
from helper import scale

class Train(Experiment):
    lr: float = search(0.1, 0.01, 0.001)
    opt: str = search("adam", "sgd")
    width: int | None = search(16, None)
    seed: int = seeds(2)
    epochs: int = 3

    def run(self):
        for epoch in range(self.epochs):
            self.report(epoch=epoch, loss=scale(self.lr) / (1 + epoch) + self.seed)
        print(f"lr={self.lr}")
        return {"acc": 1 - self.lr + self.seed / 100}
"""
)

HELPER = "def scale(x):\n    return 10 * x\n"

READS = [
    ["status", "train.Train"],
    ["status", "train.Train", "--json"],
    ["results", "train.Train"],
    ["results", "train.Train", "--json"],
    ["results", "train.Train", "--over", "seed"],
    ["results", "train.Train", "--lr", "0.1"],
    ["status", "train.Train", "--lr", "0.1,0.01", "--opt", "sgd"],
    ["logs", "train.Train"],
    ["logs", "train.Train", "--lr", "0.01", "--opt", "adam", "--width", "16", "--seed", "1"],
]


def settled(*paths: Path) -> None:
    """Date files a minute back, as files saved before a run starts are: a file saved
    after the run started is not trusted to be the code it loaded."""
    earlier = time.time() - 60
    for path in paths:
        os.utime(path, (earlier, earlier))


def imports(root: Path) -> int:
    """How many times the experiment's module has been imported since the last call."""
    marker = root / "imports"
    count = len(marker.read_text().splitlines()) if marker.exists() else 0
    marker.unlink(missing_ok=True)
    return count


def record_of(root: Path) -> Path:
    return root / "progress/train/Train/class.json"


@pytest.fixture
def ran(tmp_path: Path) -> Path:
    """A project whose Train has been run once, its imports counted from zero."""
    settled(write(tmp_path / "train.py", TRAIN), write(tmp_path / "helper.py", HELPER))
    done = experiment("train.Train", "--num_proc", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    imports(tmp_path)
    return tmp_path


def read_without_import(root: Path) -> None:
    """A read before anything is changed: it uses the record, and imports nothing."""
    done = experiment("status", "train.Train", cwd=root)
    assert done.returncode == 0, done.stderr
    assert imports(root) == 0


def outputs(root: Path, words: list[str]) -> tuple[int, str, str]:
    done = experiment(*words, cwd=root)
    return done.returncode, done.stdout, done.stderr


def by_importing(root: Path, words: list[str]) -> tuple[int, str, str]:
    """What the command says when it imports the module: without the record."""
    record = record_of(root)
    kept = record.read_bytes()
    record.unlink()
    try:
        said = outputs(root, words)
        assert imports(root) == 1, words
        return said
    finally:
        record.write_bytes(kept)
        os.chmod(record, 0o644)


class TestReadsDoNotImport:
    def test_status_results_and_logs_do_not_import_after_a_run(self, ran):
        """After a run, each read command answers without importing the module."""
        for words in READS:
            done = experiment(*words, cwd=ran)
            assert done.returncode == 0, (words, done.stderr)
            assert imports(ran) == 0, words

    def test_plot_and_report_do_not_import(self, ran):
        """``plot`` and ``report`` write their files without importing the module."""
        done = experiment("plot", "train.Train", "--x", "lr", "--y", "acc", "-o", "a.png", cwd=ran)
        assert done.returncode == 0, done.stderr
        assert (ran / "a.png").stat().st_size > 0
        done = experiment("report", "train.Train", "-o", "r.html", cwd=ran)
        assert done.returncode == 0, done.stderr
        assert "Train" in (ran / "r.html").read_text()
        assert imports(ran) == 0

    def test_view_does_not_import(self, ran, start):
        """``view`` serves the results, fetched with its token, without importing."""
        process = start(ran, "view", "train.Train")
        try:
            assert process.stderr is not None
            line = process.stderr.readline()
            found = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=(\S+)", line)
            assert found is not None, line
            origin, token = found.groups()
            with urllib.request.urlopen(f"{origin}/api/data?token={token}", timeout=20) as reply:
                data = json.loads(reply.read())
            assert "acc" in json.dumps(data)
        finally:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=20)
        assert imports(ran) == 0

    def test_outputs_are_the_same_as_by_importing(self, ran):
        """Every read says byte for byte what it says when it imports the module."""
        for words in READS:
            assert outputs(ran, words) == by_importing(ran, words), words
            assert imports(ran) == 0

    def test_a_value_outside_the_space_is_refused_the_same(self, ran):
        """A flag's bad value gets the same one-line error, exit code 2, either way."""
        words = ["results", "train.Train", "--lr", "fast"]
        said = outputs(ran, words)
        assert said[0] == 2
        assert "--lr expects" in said[2]
        assert said == by_importing(ran, words)


class TestChangedFilesImport:
    def test_an_edited_experiment_is_imported_and_its_rows_are_outdated(self, ran):
        """Editing run() makes the next read import the module and mark every row
        outdated, as reading by import always did."""
        read_without_import(ran)
        source = ran / "train.py"
        source.write_text(source.read_text().replace("1 - self.lr", "2 - self.lr"))
        done = experiment("status", "train.Train", cwd=ran)
        assert imports(ran) == 1
        assert "outdated     24 of the completed" in done.stdout, done.stdout
        frame = json.loads(experiment("results", "train.Train", "--json", cwd=ran).stdout)
        assert all(row["outdated"] for row in frame["rows"])
        assert imports(ran) == 1

    def test_an_edited_helper_module_makes_reads_import(self, ran):
        """A change to a module of the project the experiment imports is noticed."""
        read_without_import(ran)
        helper = ran / "helper.py"
        helper.write_text(HELPER.replace("10 * x", "20 * x"))
        experiment("results", "train.Train", cwd=ran)
        assert imports(ran) == 1

    def test_a_file_touched_but_the_same_is_still_read_without_import(self, ran):
        """A new modification time with the same content (a checkout) keeps the record."""
        source = ran / "train.py"
        os.utime(source, ns=(1, 1))
        experiment("status", "train.Train", cwd=ran)
        assert imports(ran) == 0

    @pytest.mark.parametrize(
        ("before", "member"),
        [
            ("", "    def __post_init__(self):\n        super().__post_init__()\n"),
            ("", "    def is_valid(self):\n        return self.lr < 1\n"),
            ("", "    @property\n    def double(self):\n        return 2 * self.lr\n"),
            ("", "    def __repr__(self):\n        return 'Train'\n"),
            ("", "    scaled: float = derived(lambda s: s.lr * 2)\n"),
            ("from typing import Literal\n", "    mode: Literal['a', 'b'] = 'a'\n"),
        ],
        ids=["post_init", "is_valid", "property", "repr", "derived", "literal"],
    )
    def test_a_class_whose_settings_need_its_code_is_always_imported(
        self, tmp_path, before, member
    ):
        """A class that is not plain (its code shapes its settings, or a field's type is
        not a plain one) is recorded as such and never rebuilt: reads import it."""
        write(tmp_path / "helper.py", HELPER)
        source = TRAIN.replace("from superparams import", "from superparams import derived,")
        source = before + source.replace("    def run(self):", member + "\n    def run(self):")
        settled(write(tmp_path / "train.py", source), tmp_path / "helper.py")
        done = experiment("train.Train", "--num_proc", "1", cwd=tmp_path)
        assert done.returncode in (0, 1), done.stderr
        imports(tmp_path)
        assert json.loads(record_of(tmp_path).read_text())["plain"] is False
        experiment("status", "train.Train", cwd=tmp_path)
        assert imports(tmp_path) == 1


class TestEditsDuringARun:
    def test_an_edit_made_while_the_run_imported_the_module_is_not_trusted(self, tmp_path, start):
        """A file saved after the run started (while a slow import ran, say) may not be
        the code the run loaded: its record is not used, and reads import the file."""
        write(tmp_path / "helper.py", HELPER)
        slow = "import time\nwhile not Path(__file__).with_name('go').exists():\n"
        slow += "    time.sleep(0.05)\n"
        write(tmp_path / "train.py", TRAIN.replace(MARKER, MARKER + slow, 1))
        (tmp_path / "go").unlink(missing_ok=True)
        run = start(tmp_path, "train.Train", "--num_proc", "1")
        wait_for(lambda: (tmp_path / "imports").exists(), "the run importing train.py")
        source = tmp_path / "train.py"
        source.write_text(source.read_text().replace("epochs: int = 3", "epochs: int = 4"))
        (tmp_path / "go").touch()
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        assert json.loads(record_of(tmp_path).read_text())["plain"] is False
        imports(tmp_path)
        said = outputs(tmp_path, ["status", "train.Train"])
        assert imports(tmp_path) == 1
        assert "new          24" in said[1], said[1]


class TestStoresFromBefore:
    def test_a_store_without_the_record_is_imported_and_gains_it_at_the_next_run(self, ran):
        """A store written before the record existed is read by importing; the next run
        that opens it writes the record, and reads stop importing."""
        read_without_import(ran)
        record_of(ran).unlink()
        experiment("status", "train.Train", cwd=ran)
        assert imports(ran) == 1
        assert not record_of(ran).exists()
        done = experiment("train.Train", "--epochs", "4", "--num_proc", "1", cwd=ran)
        assert done.returncode == 0, done.stderr
        assert record_of(ran).is_file()
        listed = json.loads((ran / "progress/train/Train/experiment.json").read_text())
        assert "class.json" in listed["files"]
        imports(ran)
        experiment("status", "train.Train", cwd=ran)
        assert imports(ran) == 0


class TestUntrustedRecords:
    @pytest.mark.parametrize("mode", [0o666, 0o664])
    def test_a_record_others_can_write_is_not_used(self, ran, mode):
        """A record writable by group or others could be anyone's: reads import."""
        read_without_import(ran)
        os.chmod(record_of(ran), mode)
        done = experiment("status", "train.Train", cwd=ran)
        assert done.returncode == 0, done.stderr
        assert imports(ran) == 1

    def test_a_record_owned_by_another_user_is_not_used(self, ran):
        """A record another real user owns is not trusted: reads import."""
        if os.geteuid() != 0:
            why = "another real user (useradd) needs root; CI runs .ci/run as root"
            if os.environ.get("CI") == "true":
                pytest.fail(why)
            pytest.skip(why)
        user = "sp-recorder"
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(["useradd", "--no-create-home", user], check=True)
        read_without_import(ran)
        os.chown(record_of(ran), pwd.getpwnam(user).pw_uid, -1)
        done = experiment("status", "train.Train", cwd=ran)
        assert done.returncode == 0, done.stderr
        assert imports(ran) == 1

    def test_a_record_that_is_a_link_is_not_followed(self, ran):
        """A link in the record's place is never read through."""
        read_without_import(ran)
        record = record_of(ran)
        elsewhere = ran / "forged.json"
        elsewhere.write_bytes(record.read_bytes())
        record.unlink()
        record.symlink_to(elsewhere)
        experiment("status", "train.Train", cwd=ran)
        assert imports(ran) == 1
