"""A setting's folder of its own in the store, and resuming a setting from what it left there.

Each experiment here is written into a user's project and run as a user runs it: by the
``experiment`` command in a subprocess, or by a script killed with a real ``kill -9``.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from tests.conftest import wait_for, with_group_killed
from tests.e2e.conftest import project, stored
from tests.e2e.sources import MODES
from tests.e2e.test_cli import experiment

pytestmark = pytest.mark.slow

# What run() sees of its own folder.
FOLDER = """
from superparams import Experiment, search

class Folder(Experiment):
    n: int = search(1, 2)

    def run(self):
        before = sorted(p.name for p in self.workdir.iterdir())
        (self.workdir / "checkpoint.txt").write_text(f"n={self.n}")
        return {
            "before": ",".join(before),
            "name": self.workdir.name,
            "resumed": self.resumed,
        }
"""

# A small model trained by hand: each epoch is reported, then checkpointed in the
# setting's workdir. The first run stops for good (the test kills it) after $STOP_AFTER.
MODEL = """
import json
import os
import time
from pathlib import Path
from superparams import Experiment, search

class Model(Experiment):
    epochs: int = 6
    lr: float = search(0.5, 0.25)

    def run(self):
        checkpoint = self.workdir / "checkpoint.json"
        start, weight = 0, 0.0
        if self.resumed:
            state = json.loads(checkpoint.read_text())
            start, weight = state["epoch"] + 1, state["weight"]
        for epoch in range(start, self.epochs):
            weight += self.lr * (1.0 - weight)
            self.report(epoch=epoch, weight=weight, resumed=self.resumed)
            kept = checkpoint.with_suffix(".tmp")
            kept.write_text(json.dumps({"epoch": epoch, "weight": weight}))
            kept.replace(checkpoint)
            if epoch == int(os.environ.get("STOP_AFTER", "-1")) and self.lr == 0.5:
                Path(os.environ["STOPPED"]).write_text("")
                time.sleep(120)
"""


DRIVE_MODEL = """
from model import Model

Model().run_all(num_proc=2, display=False)
"""


class TestWorkdir:
    @pytest.mark.parametrize("mode", MODES)
    def test_each_setting_has_a_folder_of_its_own_in_the_store(self, tmp_path, mode):
        """self.workdir is a folder under the results folder, named by the setting's id,
        empty at first; its path is a column of the results."""
        cwd = project(tmp_path, "folder", FOLDER)
        assert experiment("folder.Folder", *MODES[mode], cwd=cwd).returncode == 0
        table = stored(cwd, "folder.Folder").sort("n")
        store = cwd / "experiments/progress/folder/Folder"
        assert table["before"].to_list() == ["", ""]
        assert table["name"].to_list() == table["id"].to_list()
        assert table["resumed"].to_list() == [False, False]
        for n, workdir in zip(table["n"], table["workdir"], strict=True):
            assert not Path(workdir).is_absolute()
            assert (store / workdir / "checkpoint.txt").read_text() == f"n={n}"

    def test_fresh_gives_run_an_empty_workdir(self, tmp_path):
        """--fresh runs each setting in an empty workdir, not in what the last run left."""
        cwd = project(tmp_path, "folder", FOLDER)
        assert experiment("folder.Folder", "-j", "2", cwd=cwd).returncode == 0
        assert experiment("folder.Folder", "-j", "2", "--fresh", cwd=cwd).returncode == 0
        table = stored(cwd, "folder.Folder")
        assert table["before"].to_list() == ["", ""]
        assert table["resumed"].to_list() == [False, False]

    def test_rerun_outdated_gives_run_an_empty_workdir(self, tmp_path):
        """--rerun-outdated runs each outdated setting in an empty workdir."""
        cwd = project(tmp_path, "folder", FOLDER)
        assert experiment("folder.Folder", "-j", "2", cwd=cwd).returncode == 0
        source = cwd / "experiments/folder.py"
        source.write_text(source.read_text().replace('f"n={self.n}"', 'f"n={self.n}!"'))
        done = experiment("folder.Folder", "-j", "2", "--rerun-outdated", cwd=cwd)
        assert done.returncode == 0, done.stderr
        table = stored(cwd, "folder.Folder")
        assert table["before"].to_list() == ["", ""]
        assert table["resumed"].to_list() == [False, False]

    def test_rerun_failed_keeps_what_the_failed_attempt_left(self, tmp_path):
        """--rerun-failed runs a failed setting in the workdir its failed attempt left:
        resumed, not fresh."""
        source = FOLDER.replace(
            "        return {",
            "        if self.n == 2 and not self.resumed:\n"
            '            raise ValueError("first try")\n'
            "        return {",
        )
        cwd = project(tmp_path, "folder", source)
        assert experiment("folder.Folder", "-j", "2", cwd=cwd).returncode == 1
        done = experiment("folder.Folder", "-j", "2", "--rerun-failed", cwd=cwd)
        assert done.returncode == 0, done.stderr
        table = stored(cwd, "folder.Folder").sort("n")
        assert table["before"].to_list() == ["", "checkpoint.txt"]
        assert table["resumed"].to_list() == [False, True]

    def test_a_retry_keeps_what_the_failed_attempt_left(self, tmp_path):
        """With --retries, the next attempt finds its workdir as the failed one left it,
        even in a --fresh run."""
        source = FOLDER.replace(
            "        return {",
            "        if self.n == 2 and not self.resumed:\n"
            '            raise ValueError("first try")\n'
            "        return {",
        )
        cwd = project(tmp_path, "folder", source)
        for extra in ((), ("--fresh",)):
            done = experiment("folder.Folder", "-j", "2", "--retries", "1", *extra, cwd=cwd)
            assert done.returncode == 0, done.stderr
            table = stored(cwd, "folder.Folder").sort("n")
            assert table["before"].to_list() == ["", "checkpoint.txt"]
            assert table["resumed"].to_list() == [False, True]
            assert table["attempt"].to_list() == [1, 2]

    def test_clean_says_it_removes_the_workdirs(self, tmp_path):
        """`experiment clean` names the settings' folders among what it removes, and does."""
        cwd = project(tmp_path, "folder", FOLDER)
        assert experiment("folder.Folder", "-j", "2", cwd=cwd).returncode == 0
        store = cwd / "experiments/progress/folder/Folder"
        workdirs = [store / w for w in stored(cwd, "folder.Folder")["workdir"]]
        done = experiment("clean", "folder.Folder", "--yes", cwd=cwd)
        assert done.returncode == 0, done.stderr
        assert "2 setting folders" in done.stdout + done.stderr
        assert not any(w.exists() for w in workdirs)


class TestResumeFromACheckpoint:
    @pytest.mark.parametrize("stop_after", [2])
    def test_a_killed_run_continues_each_setting_from_its_checkpoint(self, workspace, stop_after):
        """kill -9 of the run mid-setting; the next run resumes that setting from the
        checkpoint in its workdir, and the results hold every epoch, computed as if the
        run had never stopped. A setting the kill caught between a report and its
        checkpoint reports that epoch again, once, with the same weight."""
        workspace.write("model", MODEL)
        workspace.write("drive_model", DRIVE_MODEL)
        stopped = workspace.root / "stopped"
        child = workspace.start("drive_model", STOP_AFTER=str(stop_after), STOPPED=str(stopped))
        wait_for(stopped.exists, "the first setting to reach its stopping epoch")
        with_group_killed(child)

        space = workspace.load("model").Model()
        table = space.run_all(num_proc=2, display=False)
        for lr in (0.5, 0.25):
            rows = table.filter(pl.col("lr") == lr)
            epochs = rows["epoch"].to_list()
            twice = [e for e in set(epochs) if epochs.count(e) > 1]
            assert sorted(set(epochs)) == list(range(6)), epochs
            assert len(twice) <= 1, epochs
            assert epochs == sorted(epochs), epochs  # in order, the repeat beside itself
            expected, weight = [], 0.0
            for _ in range(6):
                weight += lr * (1.0 - weight)
                expected.append(weight)
            assert rows["weight"].to_list() == pytest.approx([expected[e] for e in epochs])
            assert set(rows["status"]) == {"completed"}
        stopped_one = table.filter(pl.col("lr") == 0.5)  # checkpointed, then held: no repeat
        assert stopped_one["epoch"].to_list() == list(range(6))
        resumed = stopped_one["resumed"].to_list()
        assert resumed == [False] * (stop_after + 1) + [True] * (5 - stop_after)
