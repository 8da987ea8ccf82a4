"""One results folder, one experiment: a store names the experiment whose results it holds
and refuses every other one, for writing and for reading; a class that no file or notebook
names has no default folder.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.conftest import NOTEBOOK, environment, experiment, run_in_kernel, write

pytestmark = pytest.mark.slow

# The same class in two projects, each with results of its own.
PARAMS = """
from superparams import Experiment, search

class Hyperparams(Experiment):
    batch_size: int = search(16, 32)

    def run(self):
        return {{"score": self.batch_size * {factor}}}
"""

# What a script sees when it asks for the results of projB's experiment.
ASK = """
import params
from superparams import StoreError

space = params.Hyperparams()
for call in (space.run_all, space.results, space.plan):
    try:
        call()
    except StoreError as error:
        print(type(error).__name__, error.exit_code, error)
"""


def python(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=environment(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def refusal(folder: Path, theirs: str, ours: str) -> str:
    return (
        f"{folder} holds the results of {theirs!r}, not of {ours!r}; give this experiment "
        "a folder of its own (folder= in Python, SUPERPARAMS_PROGRESS for the command) or "
        f"rename its class (if it is the same experiment, moved, delete "
        f"{folder / 'experiment.json'})"
    )


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    """projA/params.py and projB/params.py, each with a Hyperparams of its own."""
    write(tmp_path / "projA/params.py", PARAMS.format(factor=1))
    write(tmp_path / "projB/params.py", PARAMS.format(factor=1000))
    return tmp_path


class TestTwoProjectsOneProgressFolder:
    def test_the_second_is_refused_and_nothing_is_written(self, projects):
        """projB's Hyperparams meeting the store projA's made under one
        SUPERPARAMS_PROGRESS is refused in one line, exit 2, before anything runs."""
        shared = {"SUPERPARAMS_PROGRESS": str(projects / "progress")}
        first = experiment("params.Hyperparams", cwd=projects / "projA", **shared)
        assert first.returncode == 0, first.stderr
        store = projects / "progress/params/Hyperparams"
        before = snapshot(store)
        second = experiment("params.Hyperparams", cwd=projects / "projB", **shared)
        message = refusal(store, "projA/params.py:Hyperparams", "projB/params.py:Hyperparams")
        # never projA's numbers: one line, and nothing else
        assert (second.returncode, second.stderr, second.stdout) == (2, f"error: {message}\n", "")
        assert snapshot(store) == before

    def test_readers_are_refused(self, projects):
        """`experiment status`, `results`, `logs` and `clean` of projB are refused, never
        served projA's rows (nor deleting them)."""
        shared = {"SUPERPARAMS_PROGRESS": str(projects / "progress")}
        assert experiment("params.Hyperparams", cwd=projects / "projA", **shared).returncode == 0
        store = projects / "progress/params/Hyperparams"
        message = refusal(store, "projA/params.py:Hyperparams", "projB/params.py:Hyperparams")
        commands = (["status"], ["results"], ["results", "--csv"], ["logs"], ["clean", "--yes"])
        for command in commands:
            words = [command[0], "params.Hyperparams", *command[1:]]
            done = experiment(*words, cwd=projects / "projB", **shared)
            assert (done.returncode, done.stderr, done.stdout) == (2, f"error: {message}\n", "")

    def test_from_python_too(self, projects):
        """run_all(), results() and plan() of projB's class raise StoreConflictError."""
        shared = {"SUPERPARAMS_PROGRESS": str(projects / "progress")}
        assert experiment("params.Hyperparams", cwd=projects / "projA", **shared).returncode == 0
        write(projects / "projB/ask.py", ASK)
        before = snapshot(projects / "progress")
        done = subprocess.run(
            [sys.executable, "ask.py"],
            cwd=projects / "projB",
            env=environment(**shared),
            capture_output=True,
            text=True,
            timeout=60,
        )
        store = projects / "progress/params/Hyperparams"
        message = refusal(store, "projA/params.py:Hyperparams", "projB/params.py:Hyperparams")
        assert done.stdout == f"StoreConflictError 2 {message}\n" * 3, done.stderr
        assert snapshot(projects / "progress") == before

    def test_each_in_a_folder_of_its_own(self, projects):
        """Following the advice, each project keeps and shows its own numbers."""
        for name in ("projA", "projB"):
            env = {"SUPERPARAMS_PROGRESS": str(projects / name / "results")}
            done = experiment("params.Hyperparams", cwd=projects / name, **env)
            assert done.returncode == 0, done.stderr
        shown = experiment(
            "results",
            "params.Hyperparams",
            "--csv",
            cwd=projects / "projB",
            SUPERPARAMS_PROGRESS=str(projects / "projB/results"),
        )
        rows = list(csv.DictReader(io.StringIO(shown.stdout)))
        assert [row["score"] for row in rows] == ["16000", "32000"]


class TestWhatAStoreRecords:
    def test_the_file_and_the_class(self, projects):
        """experiment.json names the defining file, relative to the folder holding
        progress/, and the class's qualified name."""
        done = experiment("params.Hyperparams", cwd=projects / "projA")
        assert done.returncode == 0, done.stderr
        recorded = projects / "projA/progress/params/Hyperparams/experiment.json"
        assert json.loads(recorded.read_text()) == {
            "format": 2,
            "file": "params.py",
            "class": "Hyperparams",
            "path": str(projects / "projA/params.py"),
            "files": FILES,
        }

    def test_a_store_of_an_earlier_version_is_adopted(self, projects):
        """A store without experiment.json keeps its results: reading leaves it as it is,
        the next run records the experiment."""
        assert experiment("params.Hyperparams", cwd=projects / "projA").returncode == 0
        store = projects / "projA/progress/params/Hyperparams"
        (store / "experiment.json").unlink()
        status = experiment("status", "params.Hyperparams", cwd=projects / "projA")
        assert status.returncode == 0, status.stderr
        assert "completed    2" in status.stdout
        assert not (store / "experiment.json").exists()
        wider = experiment("params.Hyperparams", "--batch_size", "16,32,64", cwd=projects / "projA")
        assert wider.returncode == 0, wider.stderr
        assert "2 completed before are kept; running 1 (1 new)" in wider.stderr
        recorded = json.loads((store / "experiment.json").read_text())
        assert (recorded["file"], recorded["class"]) == ("params.py", "Hyperparams")


# What experiment.json lists in a folder of format 2: every name the folder may hold.
FILES = {
    "record.jsonl": "append-only: one line when a setting starts, one for rows it reports, "
    "one when it ends",
    "results.parquet": "the latest outcome of every setting, rebuilt from the record; its "
    "metadata says how far into the record it goes",
    "history.parquet": "the outcomes a rerun replaced (an earlier code version's, a failure "
    "retried), rows as in results.parquet; written when one is replaced, absent until then",
    "logs/": "each setting's stdout and stderr, <id>.log, and its traceback on failure",
    "work/": "each setting's own folder, <id>/, if it used one (self.workdir)",
    "lock": "held (flock) by the run writing here; it dies with the process",
    "experiment.json": "whose results these are (the defining file and class), the "
    "folder's format and this list",
    ".gitignore": "*: git add . in a project leaves the whole folder out",
    "class.json": "the experiment class as the last run saw it (fields, annotations, search "
    "values and their encodings, code version) and the size, time and hash of each of the "
    "user's module files it loaded: while those are unchanged, reads use it instead of "
    "importing",
    "search.json": "the adaptive search that runs here, if one does: what it optimises, "
    "its budget and sampler",
    "study.jsonl": "append-only: the sampler's own state for each configuration it proposed "
    "(CMA-ES's generation and optimizer), so a resumed search goes on from it",
    "environments.json": "each environment settings ran in, by the id on their rows: "
    "Python, platform, the versions of the packages the experiment imported, the GPU",
}


def format_1(store: Path, project: Path) -> None:
    """Make ``store`` a folder of format 1: experiment.json as superparams wrote it before
    it recorded a format (``json.dumps(identity, indent=1)``)."""
    identity = {"file": "params.py", "class": "Hyperparams", "path": str(project / "params.py")}
    (store / "experiment.json").write_text(json.dumps(identity, indent=1) + "\n")


def no_experiment_json(store: Path, project: Path) -> None:
    """Make ``store`` a folder from before experiment.json existed."""
    (store / "experiment.json").unlink()


class TestTheFolderFormat:
    """experiment.json says the folder's format and lists its files; a folder of an older
    format is read as it is and upgraded by the next run, one of a newer format refused."""

    @pytest.fixture(params=[format_1, no_experiment_json], ids=["format 1", "no json"])
    def older(self, request, projects) -> Path:
        """projA's folder after a run, made a folder of an older format."""
        project = projects / "projA"
        assert experiment("params.Hyperparams", cwd=project).returncode == 0
        store = project / "progress/params/Hyperparams"
        request.param(store, project)
        return store

    def test_reading_an_older_folder_writes_nothing(self, older):
        """`experiment status`, `results`, `logs` and `view` read a folder of an older
        format as it is: every file keeps its bytes, and none is added."""
        from tests.e2e.test_view import View

        project = older.parents[2]
        before = snapshot(older)
        status = experiment("status", "params.Hyperparams", cwd=project)
        assert status.returncode == 0, status.stderr
        assert "completed    2" in status.stdout
        shown = experiment("results", "params.Hyperparams", "--csv", cwd=project)
        assert shown.returncode == 0, shown.stderr
        assert [r["score"] for r in csv.DictReader(io.StringIO(shown.stdout))] == ["16", "32"]
        logs = experiment("logs", "params.Hyperparams", cwd=project)
        assert logs.returncode == 0, logs.stderr
        served = View(project, "params.Hyperparams")
        try:
            assert served.status(f"/api/data?token={served.token}") == 200
        finally:
            served.stop()
        assert snapshot(older) == before

    def test_the_next_run_upgrades_it_and_resumes(self, older):
        """A run of a folder of an older format writes experiment.json of format 2, with
        the folder's files listed, and runs nothing stored before."""
        project = older.parents[2]
        record = (older / "record.jsonl").read_bytes()
        wider = experiment("params.Hyperparams", "--batch_size", "16,32,64", cwd=project)
        assert wider.returncode == 0, wider.stderr
        assert "2 completed before are kept; running 1 (1 new)" in wider.stderr
        assert (older / "record.jsonl").read_bytes().startswith(record)
        recorded = json.loads((older / "experiment.json").read_text())
        assert recorded == {
            "format": 2,
            "file": "params.py",
            "class": "Hyperparams",
            "path": str(project / "params.py"),
            "files": FILES,
        }
        held = {p.name + ("/" if p.is_dir() else "") for p in older.iterdir()}
        assert held <= set(recorded["files"])
        again = experiment("params.Hyperparams", "--batch_size", "16,32,64", cwd=project)
        assert again.returncode == 0, again.stderr
        assert json.loads((older / "experiment.json").read_text()) == recorded

    def test_a_newer_format_is_refused(self, projects):
        """A folder written by a newer superparams (format 3) is refused by every command
        in one line, exit 3, saying to upgrade superparams; nothing is written."""
        project = projects / "projA"
        assert experiment("params.Hyperparams", cwd=project).returncode == 0
        store = project / "progress/params/Hyperparams"
        path = store / "experiment.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "format": 3}, indent=1))
        before = snapshot(store)
        message = (
            f"error: {store} was written by a newer superparams (results folder format 3; "
            "this one reads up to 2); upgrade superparams (pip install -U superparams), then "
            "run again\n"
        )
        commands = ([], ["status"], ["results"], ["logs"], ["clean", "--yes"])
        for command in commands:
            words = [*command[:1], "params.Hyperparams", *command[1:]]
            done = experiment(*words, cwd=project)
            assert (done.returncode, done.stderr, done.stdout) == (3, message, ""), command
        assert snapshot(store) == before


# A notebook's experiment; prints what its run returned, as JSON.
CELL = """
import json
from superparams import Experiment, StoreError, search

class Train(Experiment):
    n: int = search(1, 2)

    def run(self):
        return {{"score": self.n * {factor}}}

table = Train().run_all(display=False)
print(json.dumps(table["score"].to_list()))
try:
    Train().results(folder="progress/one/Train")
except StoreError as error:
    print(error)
"""


class TestNotebooks:
    def test_two_notebooks_in_one_folder(self, workspace, tmp_path):
        """Two notebooks side by side, each with a class Train, each get a store of their
        own beside them, named after the notebook, and each sees its own numbers."""
        outputs = []
        for name, factor in (("one", 1), ("two", 1000)):
            notebook = workspace.root / f"{name}.ipynb"
            notebook.write_text(NOTEBOOK)
            outputs.append(
                run_in_kernel(
                    textwrap.dedent(CELL.format(factor=factor)),
                    workspace.root,
                    tmp_path / "kernels",
                    JPY_SESSION_NAME=str(notebook),
                )
            )
        first, second = (output.splitlines() for output in outputs)
        assert first == ["[1, 2]"]  # its own folder: no refusal
        assert second[0] == "[1000, 2000]"
        # folder= named the other notebook's folder: refused, naming both notebooks
        theirs, ours = "one.ipynb:Train", f"{workspace.root / 'two.ipynb'}:Train"
        assert second[1:] == [refusal(workspace.root / "progress/one/Train", theirs, ours)]
        for name in ("one", "two"):
            recorded = json.loads(
                (workspace.root / f"progress/{name}/Train/experiment.json").read_text()
            )
            assert (recorded["file"], recorded["class"]) == (f"{name}.ipynb", "Train")

    def test_a_path_relative_to_the_servers_root(self, workspace, tmp_path):
        """Before jupyter_server 2.0.7, JPY_SESSION_NAME was relative to the server's root,
        and the kernel started in the notebook's folder: the notebook is found there."""
        folder = workspace.root / "notebooks"
        folder.mkdir()
        (folder / "one.ipynb").write_text(NOTEBOOK)
        code = textwrap.dedent(CELL.format(factor=1))
        output = run_in_kernel(
            code, folder, tmp_path / "kernels", JPY_SESSION_NAME="notebooks/one.ipynb"
        )
        assert output.splitlines() == ["[1, 2]"]
        recorded = json.loads((folder / "progress/one/Train/experiment.json").read_text())
        assert (recorded["file"], recorded["class"]) == ("one.ipynb", "Train")


# A class no file names; what run_all, results and plan say without folder=, then with it.
NAMELESS = """
from superparams import Experiment, UsageError, search

class Cell(Experiment):
    x: int = search(1, 2)

    def run(self):
        return {"y": 10 * self.x}

for call in (Cell().run_all, Cell().results, Cell().plan):
    try:
        call()
    except UsageError as error:
        print(error)
print(Cell().run_all(display=False, folder="out")["y"].to_list())
"""


def nameless(where: str) -> str:
    return (
        f"Cell is defined in {where}, which no file or notebook names, so it has no "
        "results folder of its own; pass folder= to run_all(), results() and plan(), "
        "e.g. Cell().run_all(folder='progress/Cell')"
    )


class TestNoFileNoDefaultFolder:
    @pytest.mark.parametrize("how", ["-c", "-"])
    def test_python_c_and_stdin(self, tmp_path, how):
        """Code from `python -c` or piped to `python -` needs folder=: a UsageError says
        so, and nothing is written until it is given."""
        code = textwrap.dedent(NAMELESS)
        done = (
            python("-c", code, cwd=tmp_path)
            if how == "-c"
            else python("-", cwd=tmp_path, stdin=code)
        )
        assert done.stdout.splitlines() == [nameless("'__main__'")] * 3 + ["[10, 20]"], done.stderr
        assert sorted(os.listdir(tmp_path)) == ["out"]

    def test_exec(self, tmp_path):
        """A class made by exec() in a namespace of its own has no default folder."""
        write(
            tmp_path / "make.py",
            f"exec({textwrap.dedent(NAMELESS)!r}, {{'__name__': 'generated'}})\n",
        )
        done = python("make.py", cwd=tmp_path)
        assert done.stdout.splitlines() == [nameless("'generated'")] * 3 + ["[10, 20]"], done.stderr
        assert sorted(os.listdir(tmp_path)) == ["make.py", "out"]


# A notebook as Jupyter saves it: a cell defining the class, a cell running it.
HEADLESS_CLASS = """\
from superparams import Experiment, search

class Train(Experiment):
    lr: float = search(0.1, 0.01)

    def run(self):
        return {"acc": 1 - self.lr}
"""
HEADLESS_RUN = """\
table = Train().run_all(display=False)
print(sorted(table["acc"].to_list()))
"""


def notebook_of(*cells: str) -> str:
    code = [
        {
            "cell_type": "code",
            "execution_count": None,
            "id": f"c{i}",
            "metadata": {},
            "outputs": [],
            "source": source,
        }
        for i, source in enumerate(cells)
    ]
    return json.dumps({"cells": code, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def nbconvert(notebook: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`jupyter nbconvert --to notebook --execute NOTEBOOK`, as a user runs it headless."""
    pytest.importorskip("nbconvert")
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("jupyter")),
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            str(notebook),
        ],
        cwd=cwd,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


class TestAHeadlessNotebook:
    """A notebook run with no path given to its kernel stores beside it, as in Jupyter."""

    def test_nbconvert_execute_stores_beside_the_notebook(self, tmp_path):
        """`jupyter nbconvert --execute nb/explore.ipynb` runs Train into
        nb/progress/explore/Train, the folder Jupyter would have used."""
        notebook = write(tmp_path / "nb/explore.ipynb", notebook_of(HEADLESS_CLASS, HEADLESS_RUN))
        done = nbconvert(Path("nb/explore.ipynb"), tmp_path)
        assert done.returncode == 0, done.stderr
        store = notebook.parent / "progress/explore/Train"
        recorded = json.loads((store / "experiment.json").read_text())
        assert recorded == {
            "format": 2,
            "file": "explore.ipynb",
            "class": "Train",
            "path": str(notebook),
            "files": FILES,
        }
        executed = json.loads((notebook.parent / "explore.nbconvert.ipynb").read_text())
        printed = "".join(executed["cells"][1]["outputs"][0]["text"])
        assert printed == "[0.9, 0.99]\n"

    def test_a_second_run_beside_its_executed_copy(self, tmp_path):
        """The copy nbconvert wrote defines Train too; the next run still picks the notebook
        it was asked to run, and finds its results there."""
        notebook = write(tmp_path / "explore.ipynb", notebook_of(HEADLESS_CLASS, HEADLESS_RUN))
        for _ in range(2):
            done = nbconvert(notebook, tmp_path)
            assert done.returncode == 0, done.stderr
        assert sorted(p.name for p in (tmp_path / "progress").iterdir()) == ["explore"]
        record = (tmp_path / "progress/explore/Train/record.jsonl").read_text()
        assert record.count('"completed"') == 2  # the second run found both done

    def test_a_kernel_in_another_folder_is_told_the_fix(self, tmp_path):
        """A real kernel with no notebook path, started where no notebook defines the class:
        one line says where it looked and what to do, and nothing is written."""
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        write(tmp_path / "explore.ipynb", notebook_of(HEADLESS_CLASS, HEADLESS_RUN))
        code = HEADLESS_CLASS + textwrap.dedent(
            """
            from superparams import UsageError
            try:
                Train().run_all(display=False)
            except UsageError as error:
                print(error)
            """
        )
        output = run_in_kernel(code, elsewhere, tmp_path / "kernels")
        assert output == (
            "Train is defined in a Jupyter kernel that was not told its notebook (run by "
            "nbconvert or papermill, say), and it looked for the notebook in its working "
            f"directory {str(elsewhere)!r}: none there does; start the kernel in the notebook's "
            "folder, or pass folder= to run_all(), results() and plan(), e.g. "
            "Train().run_all(folder='progress/Train')\n"
        )
        assert sorted(os.listdir(elsewhere)) == []
