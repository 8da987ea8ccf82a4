"""A setting's folder of its own where the results folder is out of reach, or not safe."""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from pathlib import Path

import cloudpickle
import pytest

from superparams import Experiment, search
from superparams._store._workdir import Rooted, empty
from superparams.errors import StoreWriteError


class Saver(Experiment):
    n: int = search(1, 2)

    def run(self) -> dict:
        resumed = self.resumed
        (self.workdir / "state").write_text(str(self.n))
        return {"resumed": resumed, "at": str(self.workdir)}


class TestWhereTheFolderIs:
    def test_a_worker_without_the_results_folder_uses_a_folder_of_its_machine(self, tmp_path):
        """A worker on a machine where the results folder does not exist (a remote Dask
        or Ray worker) gets a folder of its own machine's TMPDIR, kept for its next try."""
        gone = tmp_path / "elsewhere/progress/m/Saver"  # as on the driver's machine
        base = Rooted(Saver(), str(gone / "work"))
        first = base[0].run()
        at = Path(first["at"])
        assert not gone.exists()
        assert at.is_relative_to(Path(tempfile.gettempdir()) / f"superparams-work-{os.geteuid()}")
        assert at.name == Saver()[0].id
        assert first["resumed"] is False
        assert base[0].run() == {"resumed": True, "at": str(at)}
        try:
            assert Path(base[1].run()["at"]) == at.with_name(Saver()[1].id)
        finally:
            shutil.rmtree(at.parent)

    def test_a_worker_beside_the_results_folder_uses_its_work_folder(self, tmp_path):
        """Where the results folder is on the worker's machine, the folder is
        work/<id>/ in it."""
        base = Rooted(Saver(), str(tmp_path / "work"))
        assert base[1].run()["at"] == str(tmp_path / "work" / Saver()[1].id)
        assert (tmp_path / "work" / Saver()[1].id / "state").read_text() == "2"


class TestShipping:
    def test_the_space_an_engine_runs_pickles_as_the_space_and_the_root(self, tmp_path):
        """What a worker unpickles is the same space with the same root, on every
        Python the package supports (on 3.10 a pickle once carried the space's own state
        in place of the pair, and every worker died on its first setting)."""
        base = Rooted(Saver(), str(tmp_path / "work"))
        shipped = pickle.loads(cloudpickle.dumps(base))
        assert shipped.root == base.root
        assert len(shipped) == 2
        assert shipped[1].run()["at"] == str(tmp_path / "work" / Saver()[1].id)


class TestLinks:
    def test_a_folder_planted_as_a_link_is_refused(self, tmp_path):
        """A setting's folder that is a symbolic link fails the setting's use of it,
        naming the link; nothing is written through it."""
        target = tmp_path / "target"
        target.mkdir()
        (tmp_path / "work").mkdir()
        link = tmp_path / "work" / Saver()[0].id
        link.symlink_to(target)
        with pytest.raises(StoreWriteError, match=f"{link} is a symbolic link"):
            Rooted(Saver(), str(tmp_path / "work"))[0].run()
        assert list(target.iterdir()) == []

    def test_a_fresh_start_removes_the_link_not_what_it_points_to(self, tmp_path):
        """Emptying a setting's folder that is a link removes the link alone."""
        target = tmp_path / "target"
        target.mkdir()
        (target / "kept").write_text("")
        (tmp_path / "work").mkdir()
        (tmp_path / "work" / "abc").symlink_to(target)
        empty(tmp_path, "abc")
        assert os.listdir(tmp_path / "work") == []
        assert (target / "kept").exists()
