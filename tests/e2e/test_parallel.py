"""Parallel runs of experiments defined where users define them: a script's ``__main__``,
code piped to ``python -``, a Jupyter notebook cell; and two runs of one experiment at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from tests.conftest import NOTEBOOK, environment, run_in_kernel, wait_for

import superparams._api
from superparams import StoreLockedError

pytestmark = pytest.mark.slow

# A class in __main__, run in two workers; prints what the run returned as JSON.
MAIN = """
import json
import os
from superparams import Experiment, search

FOLDER = {}  # where results go: the default, unless a test names a folder

class Cell(Experiment):
    x: int = search(1, 2, 3, 4)
    scale: float = 1.5

    def run(self):
        return {"y": self.x * self.scale, "pid": os.getpid(), "seen_rank": self.rank}

if __name__ == "__main__":
    table = Cell().run_all(num_proc=2, display=False, **FOLDER)
    rows = table.select("x", "y", "status", "pid", "seen_rank").rows()
    print(json.dumps({"rows": rows, "pid": os.getpid()}))
"""


def check(report: dict) -> None:
    rows = report["rows"]
    assert [(x, y, status) for x, y, status, _, _ in rows] == [
        (1, 1.5, "completed"),
        (2, 3.0, "completed"),
        (3, 4.5, "completed"),
        (4, 6.0, "completed"),
    ]
    assert report["pid"] not in {pid for *_, pid, _ in rows}  # run in workers
    assert {rank for *_, rank in rows} <= {0, 1}


class TestWhereExperimentsLive:
    def test_a_script_main(self, workspace):
        """A class defined in a script's __main__ runs in workers; results go beside the
        script."""
        workspace.write("script", MAIN)
        done = workspace.run("script")
        assert done.returncode == 0, done.stderr
        check(json.loads(done.stdout))
        assert (workspace.folder("script", "Cell") / "results.parquet").exists()
        again = workspace.run("script")  # and it resumes
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["rows"] == json.loads(done.stdout)["rows"]

    def test_code_from_stdin(self, workspace):
        """Code piped to `python -` (a __main__ with no file) runs in workers, into the
        folder= it names."""
        code = textwrap.dedent(MAIN).replace("FOLDER = {}", 'FOLDER = {"folder": "out/Cell"}')
        done = subprocess.run(
            [sys.executable, "-"],
            input=code,
            cwd=workspace.root,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        check(json.loads(done.stdout))
        assert (workspace.root / "out/Cell/results.parquet").exists()
        assert not (workspace.root / "progress").exists()

    def test_a_notebook_cell(self, workspace, tmp_path):
        """A class defined in a Jupyter notebook cell runs in workers; results go beside
        the notebook, under its name."""
        notebook = workspace.root / "explore.ipynb"
        notebook.write_text(NOTEBOOK)
        code = textwrap.dedent(MAIN).replace('if __name__ == "__main__":', "if True:")
        output = run_in_kernel(
            code, workspace.root, tmp_path / "kernels", JPY_SESSION_NAME=str(notebook)
        )
        check(json.loads(output))
        assert (workspace.root / "progress/explore/Cell/results.parquet").exists()


# A run that holds its folder while its settings sleep; it notes when one has started.
HOLDER = """
import os
import time
from superparams import Experiment, search
from superparams.events import SettingStarted

class Held(Experiment):
    n: int = search(1, 2, 3)

    def run(self):
        time.sleep(float(os.environ.get("PAUSE", "0")))
        return {"n": self.n}

def note(event):
    if isinstance(event, SettingStarted):
        open("started", "a").close()

if __name__ == "__main__":
    from held import Held
    Held().run_all(num_proc=2, display=False, subscribers=[note])
"""


class TestTwoRunsAtOnce:
    def test_the_second_is_refused(self, workspace):
        """While one run writes an experiment's results, a second run of it raises
        StoreLockedError saying who holds it; nothing is corrupted."""
        workspace.write("held", HOLDER)
        child = workspace.start("held", PAUSE="30")
        wait_for(lambda: (workspace.root / "started").exists(), "the first run to start")
        space = workspace.load("held").Held()
        with pytest.raises(StoreLockedError) as caught:
            space.run_all(display=False)
        message = str(caught.value)
        assert "another run is writing to" in message
        assert str(workspace.folder("held", "Held")) in message
        assert f"pid {child.pid}" in message
        with pytest.raises(StoreLockedError):
            superparams._api.clean(space)
        assert space.plan().done == []  # reading needs no lock
        os.killpg(child.pid, 9)
        child.wait()
        table = space.run_all(num_proc=2, display=False)  # the lock died with it
        assert table["status"].to_list() == ["completed"] * 3
