"""The real ``experiment`` command, run as a subprocess in a fresh project folder.

Each test writes experiment files into ``tmp_path`` and runs the installed command
there, the way a user does, without a terminal (the terminal is ``test_cli_tty.py``).
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest
from tests.e2e.sources import EPOCHS, FLAKY, RANDOM, RANKS
from tests.seed import USAGE

from superparams import ExperimentError

COMMAND = Path(sys.executable).with_name("experiment")

SEED = USAGE  # the original README's example, as written there

TYPES = """
import enum
from pathlib import Path
from typing import Literal, Optional
from superparams import Experiment

class Color(enum.Enum):
    RED = "red"
    GREEN = "green"

class Types(Experiment):
    i: int = 1
    f: float = 0.5
    b: bool = False
    s: str = "x"
    opt: Literal["adam", "sgd"] = "adam"
    color: Color = Color.RED
    maybe: Optional[int] = None
    xs: list[int] = [1]
    pair: tuple[int, str] = (0, "a")
    path: Path = Path("data")

    def run(self):
        values = (self.i, self.f, self.b, self.s, self.opt, self.color, self.maybe,
                  self.xs, self.pair, self.path)
        shown = (*values[:5], self.color.name, *values[6:9], str(self.path))
        return {"got": repr(shown), "types": ",".join(type(v).__name__ for v in values)}
"""


SLOW = """
import time
from superparams import Experiment, search

class Slow(Experiment):
    n: int = search(0, 1, 2, 3)
    pause: float = 0.2

    def run(self):
        for step in range(3):
            print(f"n={self.n} step {step}", flush=True)
            time.sleep(self.pause / 3)
        return {"n": self.n}
"""

GPUS = """
import os
from superparams import Experiment, search

class Gpus(Experiment):
    n: int = search(*range(6))

    def run(self):
        return {"device": os.environ.get("CUDA_VISIBLE_DEVICES")}
"""

RQ1 = """
from superparams import Experiment, search

class Base(Experiment):
    seed: int = search(0, 1)

class Small(Base):
    def run(self):
        return {"size": "small"}

class Large(Base):
    def run(self):
        return {"size": "large"}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SUPERPARAMS_PROGRESS", None)
    env["COLUMNS"] = "120"
    return env


def experiment(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the installed command, with no terminal attached."""
    return subprocess.run(
        [str(COMMAND), *args],
        cwd=cwd,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def results(folder: Path) -> pl.DataFrame:
    return pl.read_parquet(folder / "results.parquet").sort("id")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's project: experiments/params.py as the README has it."""
    write(tmp_path / "experiments/params.py", SEED)
    return tmp_path


def test_the_command_is_installed(tmp_path):
    """The installed `experiment` command is this superparams: it says its version."""
    from superparams import __version__

    done = experiment("--version", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, f"superparams {__version__}\n")


class TestTheSeedCommand:
    def test_from_inside_experiments(self, project):
        """`experiment params.Hyperparams --num_proc 2` from experiments/ runs both settings."""
        done = experiment("params.Hyperparams", "--num_proc", "2", cwd=project / "experiments")
        assert done.returncode == 0, done.stderr
        folder = project / "experiments/progress/params/Hyperparams"
        table = results(folder)
        assert sorted(table["total samples"].to_list()) == [1600, 3200]
        assert set(table["status"]) == {"completed"}
        assert (folder / "logs").is_dir()
        lines = done.stdout.splitlines()
        assert lines[0].split() == ["batch_size", "total", "samples", "time"]
        assert [line.split()[:2] for line in lines[2:]] == [["16", "1600"], ["32", "3200"]]

    def test_from_the_folder_above(self, project):
        """The same command from the folder above finds experiments/params.py itself."""
        done = experiment("params.Hyperparams", "--num_proc", "2", cwd=project)
        assert done.returncode == 0, done.stderr
        assert results(project / "experiments/progress/params/Hyperparams").height == 2

    def test_both_places_share_one_results_folder(self, project):
        """Run from above, then from inside: the second finds everything done."""
        assert experiment("params.Hyperparams", cwd=project).returncode == 0
        again = experiment("params.Hyperparams", cwd=project / "experiments")
        assert again.returncode == 0
        assert "all 2 settings completed before; nothing to run" in again.stderr
        assert not (project / "experiments/experiments").exists()

    def test_a_file_path_from_anywhere(self, project):
        """path/to/file.py:Class runs from any folder, results beside the file."""
        elsewhere = project / "elsewhere"
        elsewhere.mkdir()
        done = experiment("../experiments/params.py:Hyperparams", "-j", "2", cwd=elsewhere)
        assert done.returncode == 0, done.stderr
        assert results(project / "experiments/progress/params/Hyperparams").height == 2

    def test_the_overview_comes_first(self, project):
        """Before running: fields, searched values, count, what is stored, where things go."""
        done = experiment("params.Hyperparams", cwd=project)
        err = done.stderr.splitlines()
        assert err[:6] == [
            "Hyperparams: 2 settings  (experiments/params.py)",
            "  steps       int  100",
            "  batch_size  int  search(16, 32)  2 values",
            "stored:  nothing yet",
            "results: experiments/progress/params/Hyperparams/results.parquet",
            "logs:    experiments/progress/params/Hyperparams/logs/",
        ]
        assert err[6] == "running 2 settings on 1 worker process"

    def test_plain_lines_without_a_terminal(self, project):
        """Not in a terminal: one line per finished setting, then the end."""
        done = experiment("params.Hyperparams", "-j", "2", cwd=project)
        finished = [line for line in done.stderr.splitlines() if line.startswith("[")]
        assert len(finished) == 2
        assert all(" done   batch_size=" in line for line in finished)
        assert done.stderr.splitlines()[-2].startswith("finished in ")
        assert done.stderr.splitlines()[-1] == (
            "results: experiments/progress/params/Hyperparams/results.parquet"
        )

    def test_quiet_prints_only_the_summary(self, project):
        """--quiet: no overview, no lines per setting, no table; the summary stays."""
        done = experiment("params.Hyperparams", "--quiet", cwd=project)
        assert done.returncode == 0
        assert done.stdout == ""
        lines = done.stderr.splitlines()
        assert len(lines) == 2
        assert lines[0].startswith("finished in ")
        assert lines[0].endswith(": 2 completed, 0 failed, 0 done before")

    def test_python_m_experiments_is_the_same_command(self, project, tmp_path_factory):
        """`python -m experiments ...` with entrypoint() does what `experiment ...` does."""
        write(
            project / "experiments/__main__.py",
            "from superparams import entrypoint\nentrypoint()\n",
        )
        twin = tmp_path_factory.mktemp("twin")
        write(twin / "experiments/params.py", SEED)
        by_module = subprocess.run(
            [sys.executable, "-m", "experiments", "params.Hyperparams", "--num_proc", "2"],
            cwd=project,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        by_command = experiment("params.Hyperparams", "--num_proc", "2", cwd=twin)
        assert by_module.returncode == by_command.returncode == 0
        assert by_module.stdout.splitlines()[:2] == by_command.stdout.splitlines()[:2]
        a = results(project / "experiments/progress/params/Hyperparams")
        b = results(twin / "experiments/progress/params/Hyperparams")
        assert a["id"].to_list() == b["id"].to_list()
        bad = subprocess.run(
            [sys.executable, "-m", "experiments", "params.Hyperparams", "--bach_size", "3"],
            cwd=project,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert bad.returncode == 2
        assert bad.stderr.startswith("error: --bach_size: Hyperparams has no field")


class TestLookup:
    def test_a_module_name_runs_every_experiment_in_it(self, tmp_path):
        """`experiment RQ1` runs each experiment of RQ1.py, each into its own folder."""
        write(tmp_path / "experiments/RQ1.py", RQ1)
        done = experiment("RQ1", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        for name in ("Small", "Large"):
            assert results(tmp_path / f"experiments/progress/RQ1/{name}").height == 2
        assert not (tmp_path / "experiments/progress/RQ1/Base").exists()

    def test_a_class_of_a_module(self, tmp_path):
        """`experiment index.RQ1`: the class RQ1 of index.py."""
        write(tmp_path / "experiments/index.py", RQ1.replace("class Small", "class RQ1"))
        done = experiment("index.RQ1", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "experiments/progress/index/RQ1/results.parquet").exists()
        assert not (tmp_path / "experiments/progress/index/Large").exists()

    def test_a_module_in_a_folder(self, tmp_path):
        """`experiment index.RQ1`: every experiment of index/RQ1.py when that is the file."""
        write(tmp_path / "experiments/index/RQ1.py", RQ1)
        done = experiment("index.RQ1", cwd=tmp_path / "experiments")
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "experiments/index/progress/RQ1/Small/results.parquet").exists()
        assert (tmp_path / "experiments/index/progress/RQ1/Large/results.parquet").exists()

    def test_an_ambiguous_name_lists_both(self, tmp_path):
        """Both index.py:RQ1 and index/RQ1.py: exit 2 naming both, nothing run."""
        write(tmp_path / "index.py", RQ1.replace("class Small", "class RQ1"))
        write(tmp_path / "index/RQ1.py", RQ1)
        done = experiment("index.RQ1", cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr == (
            "error: 'index.RQ1' is ambiguous: it names index.py:RQ1 and index/RQ1.py; "
            "name one of them instead\n"
        )
        assert not (tmp_path / "progress").exists()

    def test_an_unknown_name_lists_the_candidates(self, project):
        """A typo: exit 2, the close name, and the experiments that exist."""
        write(project / "experiments/RQ1.py", RQ1)
        done = experiment("parms.Hyperparams", cwd=project)
        assert done.returncode == 2
        assert done.stderr == (
            "error: no experiment 'parms.Hyperparams' here or in the folders below "
            "(did you mean 'params.Hyperparams'?); experiments here: RQ1.Large, RQ1.Small, "
            "params.Hyperparams\n"
        )

    def test_a_command_word_is_an_experiment_when_alone(self, tmp_path):
        """`experiment status` runs status.py; `experiment status status` reports on it."""
        write(tmp_path / "status.py", SEED.replace("Hyperparams", "Status"))
        ran = experiment("status", cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr
        assert results(tmp_path / "progress/status/Status").height == 2
        report = experiment("status", "status", cwd=tmp_path)
        assert report.returncode == 0
        assert report.stdout.startswith("Status (status.py): 2 settings\n  completed    2\n")

    def test_an_error_in_the_users_file_shows_their_traceback(self, tmp_path):
        """A file that raises on import: its traceback, exit 5, nothing written."""
        write(tmp_path / "broken.py", "from superparams import Experiment\n1 / 0\n")
        done = experiment("broken", cwd=tmp_path)
        assert done.returncode == 5
        assert done.stderr.startswith("error: could not import broken.py:\nTraceback")
        assert "ZeroDivisionError: division by zero" in done.stderr
        assert "superparams" not in done.stderr.split("Traceback", 1)[1].split("1 / 0")[0]

    def test_a_field_named_like_a_results_column_is_one_line(self, tmp_path):
        """A class with a `status` field: exit 2, the one line that says to rename it."""
        source = SEED.replace("steps         :int = 100", "status: str = 'baseline'")
        write(tmp_path / "params.py", source.replace("self.steps", "100"))
        for command in (["params.Hyperparams"], ["results", "params.Hyperparams"]):
            done = experiment(*command, cwd=tmp_path)
            assert done.returncode == 2
            assert done.stderr == (
                "error: Hyperparams.status clashes with the results column 'status'; "
                "rename the field (e.g. status_)\n"
            )
            assert done.stdout == ""
        assert not (tmp_path / "progress").exists()

    @pytest.mark.parametrize(
        ("line", "message"),
        [
            (
                "batch_size    :int = search(16, 'two', 3.5)",
                "Hyperparams.batch_size is an int, but search() gives it 'two' (a str)",
            ),
            (
                "batch_size = search(16, 32)",
                "Hyperparams.batch_size = search(16, 32) has no annotation, so it would not be "
                "a field; annotate it: `batch_size: int = search(16, 32)`",
            ),
        ],
        ids=["wrong-type", "no-annotation"],
    )
    def test_a_class_the_model_refuses_is_one_line(self, tmp_path, line, message):
        """A search of the wrong type or without annotation: exit 2 and its one line."""
        write(tmp_path / "params.py", SEED.replace("batch_size    :int = search(16, 32)", line))
        done = experiment("params.Hyperparams", cwd=tmp_path)
        assert (done.returncode, done.stderr, done.stdout) == (2, f"error: {message}\n", "")
        assert not (tmp_path / "progress").exists()


class TestOverrides:
    def test_every_kind_of_field(self, tmp_path):
        """Each annotation reads its own kind of value from the command line."""
        write(tmp_path / "kinds.py", TYPES)
        done = experiment(
            "kinds.Types",
            *("--i", "7", "--f", "2", "--b", "--s", "hello world", "--opt", "sgd"),
            *("--color", "GREEN", "--maybe", "3", "--xs", "[4,5]", "--pair", "(9,b)"),
            *("--path", "data/x.csv"),
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        row = results(tmp_path / "progress/kinds/Types").row(0, named=True)
        assert row["got"] == repr(
            (7, 2.0, True, "hello world", "sgd", "GREEN", 3, [4, 5], (9, "b"), "data/x.csv")
        )
        assert row["types"] == "int,float,bool,str,str,Color,int,list,tuple,PosixPath"

    def test_commas_search(self, tmp_path):
        """--FIELD a,b searches: the product of the searched fields is run."""
        write(tmp_path / "kinds.py", TYPES)
        done = experiment(
            "kinds.Types", "--i", "1,2", "--opt", "adam,sgd", "--maybe", "none,1", cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
        assert results(tmp_path / "progress/kinds/Types").height == 8

    @pytest.mark.parametrize(
        ("args", "line"),
        [
            (
                ["--bach_size", "3"],
                "error: --bach_size: Hyperparams has no field 'bach_size' (did you mean "
                "'batch_size'?); its fields are steps, batch_size",
            ),
            (["--steps", "many"], "error: --steps expects an int, got 'many'"),
            (
                ["--batch_size", "16,3.5"],
                "error: --batch_size expects an int, got '3.5' (in '16,3.5')",
            ),
            (["--steps"], "error: --steps needs a value"),
        ],
    )
    def test_a_bad_flag_is_one_line_and_writes_nothing(self, project, args, line):
        """Exit 2, one line naming field, value and what was expected; no folder made."""
        done = experiment("params.Hyperparams", *args, cwd=project)
        assert done.returncode == 2
        assert done.stderr == line + "\n"
        assert done.stdout == ""
        assert not (project / "experiments/progress").exists()

    @pytest.mark.parametrize(
        ("args", "line"),
        [
            (
                ["--opt", "adamw"],
                "error: --opt expects one of 'adam', 'sgd', got 'adamw' (did you mean 'adam'?)",
            ),
            (["--color", "BLUE"], "error: --color expects one of RED, GREEN, got 'BLUE'"),
            (
                ["--xs", "4,5"],
                "error: --xs expects a list[int], got '4' (in '4,5') "
                "(write it in brackets, e.g. [1,2])",
            ),
            (["--maybe", "lots"], "error: --maybe expects an int or none, got 'lots'"),
            (["--b", "maybe"], "error: --b expects true or false, got 'maybe'"),
            (["--f", "fast"], "error: --f expects a float, got 'fast'"),
            (
                ["--pair", "[1,2,3]"],
                "error: --pair expects a tuple[int, str], got '[1,2,3]' (with 2 items)",
            ),
        ],
    )
    def test_values_that_do_not_fit_their_type(self, tmp_path, args, line):
        """Each annotation says what it expected when the text does not fit."""
        write(tmp_path / "kinds.py", TYPES)
        done = experiment("kinds.Types", *args, cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr == line + "\n"
        assert not (tmp_path / "progress").exists()

    def test_a_value_is_the_same_from_the_command_line_and_python(self, tmp_path):
        """--f 1 stores the setting Types(f=1) is; --maybe 2.5 fails as Types(maybe=2.5)."""
        write(tmp_path / "kinds.py", TYPES)
        done = experiment("kinds.Types", "--f", "1", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        row = results(tmp_path / "progress/kinds/Types").row(0, named=True)
        sys.path.insert(0, str(tmp_path))
        try:
            kinds = importlib.import_module("kinds")
            assert row["id"] == kinds.Types(f=1).id
            with pytest.raises(ExperimentError) as error:
                kinds.Types(maybe=2.5)
        finally:
            sys.path.remove(str(tmp_path))
            sys.modules.pop("kinds", None)
        assert (row["f"], type(row["f"])) == (1.0, float)
        assert str(error.value) == (
            "Types.maybe is an int or None, but Types(maybe=2.5) gives it 2.5 (a float)"
        )
        refused = experiment("kinds.Types", "--maybe", "2.5", cwd=tmp_path)
        assert refused.returncode == 2
        assert refused.stderr == "error: --maybe expects an int or none, got '2.5'\n"


LINKED = """
from superparams import Experiment, search

class Train(Experiment):
    warmup: int = search(10, 20, 30, link="schedule")
    decay: float = search(0.1, 0.2, 0.3, link="schedule")
    seed: int = search(0, 1)

    def run(self):
        return {"x": self.warmup * self.decay}
"""


class TestLinkedOverrides:
    @pytest.mark.parametrize(
        ("flag", "count"), [("10,20,40", 6), ("20", 2)], ids=["search", "pinned"]
    )
    def test_an_override_keeps_the_link(self, tmp_path, flag, count):
        """--warmup 10,20,40 replaces warmup's values; --warmup 20 pins decay with it."""
        write(tmp_path / "sched.py", LINKED)
        done = experiment("sched.Train", "--warmup", flag, "--dry-run", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert f"would run {count} settings (dry run: nothing is run)" in done.stderr
        if flag == "20":  # decay is pinned with warmup, so the overview shows one value
            assert re.search(r"\n  decay +float +0\.2\n", done.stderr), done.stderr

    @pytest.mark.parametrize(
        ("flag", "line"),
        [
            (
                "10,20",
                "error: fields linked by 'schedule' vary together, so they need as many "
                "values each: warmup has 2, decay has 3",
            ),
            (
                "15",
                "error: Train.warmup is linked by 'schedule' to decay, so it takes one of its "
                "searched values 10, 20, 30, not 15; pin decay too, or override warmup "
                "with search(...)",
            ),
        ],
        ids=["length", "not-searched"],
    )
    def test_an_override_that_breaks_the_link_is_one_line(self, tmp_path, flag, line):
        """A search of another length, or a value not searched: exit 2, one line."""
        write(tmp_path / "sched.py", LINKED)
        done = experiment("sched.Train", "--warmup", flag, "--dry-run", cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr == line + "\n"


class TestRunOptions:
    def test_dry_run_shows_the_plan_and_runs_nothing(self, tmp_path):
        """--dry-run lists what would run and what is kept, including stored settings gone."""
        write(tmp_path / "flaky.py", FLAKY)
        assert experiment("flaky.Flaky", cwd=tmp_path).returncode == 1
        record = (tmp_path / "progress/flaky/Flaky/record.jsonl").read_bytes()
        plan = experiment("flaky.Flaky", "--n", "2,3,4", "--dry-run", cwd=tmp_path)
        assert plan.returncode == 0
        lines = plan.stderr.splitlines()
        assert (
            "stored:  1 completed, 1 failed, 0 interrupted, 1 new, "
            "1 stored but no longer in the space" in lines
        )
        assert lines[-5:] == [
            "would run 2 settings (dry run: nothing is run)",
            "  run   new          n=4",
            "  run   failed       n=2",
            "  keep  done         n=3",
            "  1 stored setting no longer in this space (kept, not run)",
        ]
        assert (tmp_path / "progress/flaky/Flaky/record.jsonl").read_bytes() == record

    def test_a_dry_run_of_a_new_experiment_makes_no_folder(self, project):
        """Nothing stored yet: --dry-run writes nothing at all."""
        done = experiment("params.Hyperparams", "--dry-run", cwd=project)
        assert done.returncode == 0
        assert "would run 2 settings" in done.stderr
        assert not (project / "experiments/progress").exists()

    def test_resume_without_a_terminal_says_so_in_one_line(self, tmp_path):
        """Earlier results and no terminal: resume without asking, and say what runs."""
        write(tmp_path / "flaky.py", FLAKY)
        first = experiment("flaky.Flaky", cwd=tmp_path)
        assert first.returncode == 1
        again = experiment("flaky.Flaky", cwd=tmp_path)
        assert again.returncode == 0
        assert "resuming: 2 completed before are kept; running 1 (1 failed)" in again.stderr
        assert results(tmp_path / "progress/flaky/Flaky")["status"].to_list() == ["completed"] * 3

    def test_rerun_failed_runs_only_the_failed(self, tmp_path):
        """--rerun-failed: the failed settings again, and nothing new."""
        write(tmp_path / "flaky.py", FLAKY)
        assert experiment("flaky.Flaky", "--n", "1,2", cwd=tmp_path).returncode == 1
        again = experiment("flaky.Flaky", "--rerun-failed", cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert "running 1 setting" in again.stderr
        table = results(tmp_path / "progress/flaky/Flaky")
        assert table.height == 2  # n=3 is new and was not run
        assert sorted(table["double"].to_list()) == [2, 4]

    def test_fresh_runs_everything_again(self, project):
        """--fresh ignores what is stored: every setting runs, as the first try of this run."""
        assert experiment("params.Hyperparams", cwd=project).returncode == 0
        again = experiment("params.Hyperparams", "--fresh", cwd=project)
        assert again.returncode == 0
        assert "running 2 settings" in again.stderr
        table = results(project / "experiments/progress/params/Hyperparams")
        assert table["attempt"].to_list() == [1, 1]

    def test_retries_try_a_failed_setting_again(self, tmp_path):
        """--retries 1: a setting that fails once completes on its second attempt."""
        write(tmp_path / "flaky.py", FLAKY)
        done = experiment("flaky.Flaky", "--retries", "1", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        table = results(tmp_path / "progress/flaky/Flaky")
        assert table.filter(pl.col("n") == 2)["attempt"].to_list() == [2]
        assert "retrying" in done.stderr

    def test_a_timeout_fails_the_setting(self, tmp_path):
        """--timeout: a setting running longer fails with cause timeout; exit 1."""
        write(tmp_path / "slow.py", SLOW)
        done = experiment("slow.Slow", "--n", "0", "--pause", "30", "--timeout", "1", cwd=tmp_path)
        assert done.returncode == 1
        row = results(tmp_path / "progress/slow/Slow").row(0, named=True)
        assert row["status"] == "failed"
        assert row["cause"] == "timeout"
        assert "failed: defaults: timed out after 1 s" in done.stderr

    def test_gpus_are_handed_to_the_workers(self, tmp_path):
        """--gpus 0,1: one worker per id, each setting sees its worker's device."""
        write(tmp_path / "gpus.py", GPUS)
        done = experiment("gpus.Gpus", "--gpus", "0,1", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "on 2 worker processes" in done.stderr
        table = results(tmp_path / "progress/gpus/Gpus")
        assert set(table["device"]) <= {"0", "1"}
        devices = dict(zip(table["worker"], table["device"], strict=True))
        assert all(devices[w] == str(w) for w in devices)

    def test_debug_without_a_terminal_shows_the_traceback(self, tmp_path):
        """--debug runs here and stops at the first failure, with its full traceback."""
        write(tmp_path / "flaky.py", FLAKY)
        done = experiment("flaky.Flaky", "--debug", cwd=tmp_path)
        assert done.returncode == 1
        assert "RuntimeError: the first try fails" in done.stderr
        assert "(no terminal: not opening the debugger)" in done.stderr
        assert "setting n=1" in done.stdout  # in this process, output reaches the terminal


class TestExitCodes:
    def test_all_completed_is_0_and_a_failure_is_1(self, tmp_path):
        """0 when every setting completed; 1 when any failed, with its log named."""
        write(tmp_path / "flaky.py", FLAKY)
        failed = experiment("flaky.Flaky", cwd=tmp_path)
        assert failed.returncode == 1
        assert "failed: n=2: RuntimeError: the first try fails" in failed.stderr
        log_line = next(line for line in failed.stderr.splitlines() if line.startswith("  log: "))
        log = tmp_path / log_line.removeprefix("  log: ")
        assert "the first try fails" in log.read_text()
        assert experiment("flaky.Flaky", cwd=tmp_path).returncode == 0

    def test_ctrl_c_is_130_and_keeps_what_finished(self, tmp_path):
        """SIGINT: running settings finish, are stored, and the command exits 130."""
        write(tmp_path / "slow.py", SLOW)
        process = subprocess.Popen(
            [str(COMMAND), "slow.Slow", "--n", "0,1,2,3,4,5", "--pause", "1.5"],
            cwd=tmp_path,
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        logs = tmp_path / "progress/slow/Slow/logs"
        deadline = time.monotonic() + 30
        while not (logs.is_dir() and any(logs.iterdir())) and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 130, err
        assert "stopping: waiting for running settings to finish" in err
        assert "run the same command again to resume" in err
        table = results(tmp_path / "progress/slow/Slow")
        assert table.filter(pl.col("status") == "completed").height == 1
        assert table.height == 1


class TestNoneOfThoseAskedFor:
    def test_results_of_values_that_never_ran_say_what_is_stored(self, tmp_path):
        """results for a value outside what ran says none of the stored settings is among
        those asked for, not that nothing is stored; a folder with none says so."""
        write(tmp_path / "raises.py", RAISES)
        fresh = experiment("results", "raises.Raises", cwd=tmp_path)
        assert fresh.stderr == (
            "no results stored for Raises yet (`experiment raises.Raises` runs it)\n"
        )
        assert experiment("raises.Raises", "-q", cwd=tmp_path).returncode == 0
        done = experiment("results", "raises.Raises", "--k", "7", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stderr == (
            "none of the 3 settings stored for Raises is among those asked for; "
            "`experiment results raises.Raises` without field values shows them all\n"
        )


RAISES = """
from superparams import Experiment, search


class Raises(Experiment):
    k: int = search(1, 2, 3)

    def run(self) -> dict:
        return {"sq": self.k**2}
"""


class TestAfterTheRun:
    @pytest.fixture
    def ran(self, tmp_path):
        write(tmp_path / "flaky.py", FLAKY)
        assert experiment("flaky.Flaky", "--n", "1,2,3", cwd=tmp_path).returncode == 1
        return tmp_path

    def test_status_counts_and_what_is_left(self, ran):
        """status: counts per status, the settings left, where results are."""
        write(ran / "flaky.py", FLAKY.replace("search(1, 2, 3)", "search(1, 2, 3, 4)"))
        done = experiment("status", "flaky.Flaky", cwd=ran)
        assert done.returncode == 0
        assert done.stdout == (
            "Flaky (flaky.py): 4 settings\n"
            "  completed    2\n"
            "  failed       1\n"
            "  new          1\n"
            "left to run: 2 (`experiment flaky.Flaky` runs them)\n"
            "  failed       n=2  RuntimeError: the first try fails\n"
            "  new          n=4\n"
            "results: progress/flaky/Flaky/results.parquet\n"
        )

    def test_results_table_sorted(self, ran):
        """results: the table of settings, sortable by any column."""
        done = experiment("results", "flaky.Flaky", "--sort", "-double", cwd=ran)
        assert done.returncode == 0
        lines = done.stdout.splitlines()
        assert lines[0].split() == ["n", "double", "status", "time"]
        assert [line.split()[:2] for line in lines[2:]] == [["3", "6"], ["1", "2"], ["2", "failed"]]

    def test_results_sort_by_an_unknown_column(self, ran):
        """--sort by a column that is not there names the close one."""
        done = experiment("results", "flaky.Flaky", "--sort", "dubble", cwd=ran)
        assert done.returncode == 2
        assert done.stderr.startswith("error: --sort: no column 'dubble' (did you mean 'double'?)")

    def test_results_as_csv_json_and_parquet(self, ran):
        """--csv and --json write every column to stdout; --parquet to a file."""
        as_csv = list(
            csv.DictReader(
                io.StringIO(experiment("results", "flaky.Flaky", "--csv", cwd=ran).stdout)
            )
        )
        assert sorted(r["double"] for r in as_csv) == ["", "2", "6"]
        as_json = json.loads(experiment("results", "flaky.Flaky", "--json", cwd=ran).stdout)["rows"]
        assert sorted(r["n"] for r in as_json) == [1, 2, 3]
        assert {r["status"] for r in as_json} == {"completed", "failed"}
        written = experiment("results", "flaky.Flaky", "--parquet", "out.parquet", cwd=ran)
        assert written.stderr == "wrote 3 rows to out.parquet\n"
        assert pl.read_parquet(ran / "out.parquet").height == 3

    def test_results_of_selected_settings(self, ran):
        """Field values select settings: only those rows are shown."""
        done = experiment("results", "flaky.Flaky", "--n", "1", "--csv", cwd=ran)
        rows = list(csv.DictReader(io.StringIO(done.stdout)))
        assert [r["n"] for r in rows] == ["1"]

    def test_logs_of_matching_settings(self, ran):
        """logs --n 2: that setting's log only; without values, all with headers."""
        one = experiment("logs", "flaky.Flaky", "--n", "2", cwd=ran)
        assert one.returncode == 0
        assert one.stdout.startswith("setting n=2\n")
        assert "RuntimeError: the first try fails" in one.stdout
        assert "setting n=1" not in one.stdout
        every = experiment("logs", "flaky.Flaky", "-n", "1", cwd=ran)
        headers = [line for line in every.stdout.splitlines() if line.startswith("==> ")]
        assert [h.split()[1:3] for h in headers] == [
            ["n=1", "[completed]"],
            ["n=2", "[failed]"],
            ["n=3", "[completed]"],
        ]

    def test_logs_follow_a_running_setting(self, tmp_path):
        """logs -f prints a running setting's log as it grows, and stops when it ends."""
        write(tmp_path / "slow.py", SLOW)
        run = subprocess.Popen(
            [str(COMMAND), "slow.Slow", "--n", "0", "--pause", "3"],
            cwd=tmp_path,
            env=environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        try:
            logs = tmp_path / "progress/slow/Slow/logs"
            deadline = time.monotonic() + 30
            while not (logs.is_dir() and any(logs.iterdir())) and time.monotonic() < deadline:
                time.sleep(0.05)
            followed = experiment(
                "logs", "slow.Slow", "--n", "0", "--pause", "3", "-f", cwd=tmp_path, timeout=60
            )
        finally:
            run.wait(timeout=60)
        assert followed.returncode == 0, followed.stderr
        assert followed.stdout.splitlines() == [f"n=0 step {i}" for i in range(3)]

    def test_clean_needs_yes_without_a_terminal(self, ran):
        """clean asks first; with no terminal to ask, it needs --yes and deletes nothing."""
        refused = experiment("clean", "flaky.Flaky", cwd=ran)
        assert refused.returncode == 2
        assert "add --yes" in refused.stderr
        assert (ran / "progress/flaky/Flaky").exists()
        done = experiment("clean", "flaky.Flaky", "--yes", cwd=ran)
        assert done.returncode == 0
        assert done.stderr == (
            "deleted 3 stored settings of Flaky and their logs in progress/flaky/Flaky\n"
        )
        assert not (ran / "progress/flaky/Flaky").exists()


IMPORTS = """
import runpy, sys
sys.argv = ["experiment", *sys.argv[1:]]
try:
    runpy.run_path({command!r}, run_name="__main__")
except SystemExit:
    pass
print("LOADED", " ".join(sorted({{m.partition(".")[0] for m in sys.modules}})), file=sys.stderr)
"""


class TestStartUp:
    def loaded(self, *args: str, cwd: Path) -> set[str]:
        script = IMPORTS.format(command=str(COMMAND))
        done = subprocess.run(
            [sys.executable, "-c", script, *args],
            cwd=cwd,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        line = done.stderr.strip().splitlines()[-1]
        assert line.startswith("LOADED "), done.stderr
        return set(line.split()[1:])

    @pytest.mark.parametrize(
        "args",
        [["--help"], ["params.Hyperparams", "--help"], ["params.Hyperparams", "--dry-run"]],
    )
    def test_nothing_heavy_before_it_is_needed(self, project, args):
        """--help, an experiment's --help and a first dry run load no polars, no rich and
        none of the view's web parts."""
        loaded = self.loaded(*args, cwd=project)
        assert "superparams" in loaded
        heavy = {"polars", "rich", "pandas", "numpy", "pyarrow", "matplotlib"}
        assert loaded.isdisjoint(heavy | {"plotly", "starlette", "uvicorn", "anyio"})

    def test_a_run_without_a_terminal_loads_polars_but_not_rich(self, project):
        """A run needs polars for its results; without a terminal it draws nothing with rich."""
        loaded = self.loaded("params.Hyperparams", cwd=project)
        assert "polars" in loaded
        assert loaded.isdisjoint({"rich", "pandas", "numpy", "pyarrow"})

    def test_importtime_of_help(self, tmp_path):
        """python -X importtime shows no heavy module under `experiment --help`."""
        done = subprocess.run(
            [sys.executable, "-X", "importtime", str(COMMAND), "--help"],
            cwd=tmp_path,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0
        modules = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
        assert not {m for m in modules if m.split(".")[0] in ("polars", "rich", "matplotlib")}


def cores() -> int:
    """The cores this process may run on, as the runner counts them."""
    if hasattr(os, "process_cpu_count"):
        return os.process_cpu_count() or 1
    return len(os.sched_getaffinity(0))


class TestWorkerProcesses:
    def test_the_seed_parallel_example_runs_on_this_machine(self, tmp_path):
        """`run_all(num_proc = os.cpu_count() - 2)` runs, on two cores as num_proc=1 does."""
        script = (
            SEED
            + "\nimport os\nparams = Hyperparams()\nparams.run_all(num_proc = os.cpu_count() - 2)\n"
        )
        write(tmp_path / "experiments/params.py", script)
        done = subprocess.run(
            [sys.executable, "experiments/params.py"],
            cwd=tmp_path,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stderr
        asked = (os.cpu_count() or 1) - 2
        if asked < 1:
            assert done.stderr.splitlines()[0] == (
                f"num_proc={asked} is less than one process: running as num_proc=1 does "
                f"(num_proc=-1 uses all {cores()} cores)"
            )
        table = results(tmp_path / "experiments/progress/params/Hyperparams")
        assert table["status"].to_list() == ["completed", "completed"]

    @pytest.mark.parametrize("count", ["12", "999999999999"])
    def test_no_more_workers_than_settings_to_run(self, tmp_path, count):
        """-j beyond the settings to run starts one worker per setting, no more."""
        write(tmp_path / "ranks.py", RANKS)
        done = experiment("ranks.Ranks", "-j", count, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "running 3 settings on 3 worker processes" in done.stderr.splitlines()
        table = results(tmp_path / "progress/ranks/Ranks")
        assert set(table["n_proc"]) == {3}
        assert set(table["rank"]) <= {0, 1, 2}
        assert set(table["worker"]) <= {0, 1, 2}

    def test_minus_one_is_one_worker_per_core(self, tmp_path):
        """-j -1 runs on every core (no more workers than settings)."""
        write(tmp_path / "ranks.py", RANKS)
        done = experiment("ranks.Ranks", "-j", "-1", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        workers = min(cores(), 3)
        many = "es" if workers > 1 else ""
        assert f"running 3 settings on {workers} worker process{many}" in done.stderr
        assert set(results(tmp_path / "progress/ranks/Ranks")["n_proc"]) == {workers}

    def test_zero_runs_as_one_with_a_notice(self, tmp_path):
        """-j 0 runs as -j 1 does, and says so in one line."""
        write(tmp_path / "ranks.py", RANKS)
        done = experiment("ranks.Ranks", "-j", "0", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        lines = done.stderr.splitlines()
        notice = (
            f"-j 0 is less than one process: running as -j 1 does (-j -1 uses all {cores()} cores)"
        )
        assert lines[lines.index(notice) + 1] == "running 3 settings on 1 worker process"
        assert set(results(tmp_path / "progress/ranks/Ranks")["n_proc"]) == {1}

    @pytest.mark.parametrize("count", ["2.0", "a", "true"])
    def test_a_count_that_is_not_a_whole_number(self, tmp_path, count):
        """-j takes a whole number: anything else is one line, exit 2, nothing written."""
        write(tmp_path / "ranks.py", RANKS)
        done = experiment("ranks.Ranks", "-j", count, cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr == (
            f"error: -j expects a whole number of worker processes (-1: one per core), "
            f"got {count!r}\n"
        )
        assert not (tmp_path / "progress").exists()


class TestProgressLines:
    def test_a_setting_with_several_rows_shows_its_last(self, tmp_path):
        """The line of a setting that returned one row per epoch shows the last epoch."""
        write(tmp_path / "epochs.py", EPOCHS)
        done = experiment("epochs.Epochs", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        (line,) = [line for line in done.stderr.splitlines() if line.startswith("[1/1]")]
        assert line.endswith(") epoch=2 val_acc=0.85"), line

    def test_a_setting_that_reports_its_rows_shows_its_latest(self, tmp_path):
        """Without a terminal (nohup, CI, a cluster's log), the line of a setting that
        reported its rows with self.report() shows the latest, as the live view does."""
        write(tmp_path / "reported.py", REPORTED)
        done = experiment("reported.Reported", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        lines = [line for line in done.stderr.splitlines() if line.startswith("[")]
        assert lines[0].endswith(") epoch=2 loss=0.03333"), lines
        assert lines[1].endswith(") epoch=2 loss=0.003333"), lines


REPORTED = """
from superparams import Experiment, search


class Reported(Experiment):
    lr: float = search(0.1, 0.01)

    def run(self):
        for epoch in range(3):
            self.report(epoch=epoch, loss=self.lr / (epoch + 1))
"""


class TestRerunCounts:
    SUMMARY = re.compile(r"finished in \S+: (.*)$")

    def summary(self, done: subprocess.CompletedProcess[str]) -> str:
        found = [m[1] for line in done.stderr.splitlines() if (m := self.SUMMARY.match(line))]
        assert len(found) == 1, done.stderr
        return found[0]

    def test_fresh_counts_what_this_run_did(self, project):
        """After a complete run, --fresh says it completed every setting, none done before."""
        assert experiment("params.Hyperparams", cwd=project).returncode == 0
        again = experiment("params.Hyperparams", "--fresh", cwd=project)
        assert again.returncode == 0, again.stderr
        assert self.summary(again) == "2 completed, 0 failed, 0 done before"
        table = results(project / "experiments/progress/params/Hyperparams")
        assert table.height == 2
        assert table["attempt"].to_list() == [1, 1]

    def test_a_resumed_run_counts_the_settings_kept(self, tmp_path):
        """A resumed run counts the settings it kept as done before, and only those."""
        write(tmp_path / "flaky.py", FLAKY)
        assert experiment("flaky.Flaky", "--n", "1,2", cwd=tmp_path).returncode == 1
        again = experiment("flaky.Flaky", cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert self.summary(again) == "2 completed, 0 failed, 1 done before"

    def test_retries_count_from_one_in_each_run(self, tmp_path):
        """attempt counts the tries of one run: a fresh run's retry is attempt 2 again."""
        write(tmp_path / "flaky.py", FLAKY)
        assert experiment("flaky.Flaky", "--retries", "1", cwd=tmp_path).returncode == 0
        for mark in (tmp_path / "marks").iterdir():
            mark.unlink()
        again = experiment("flaky.Flaky", "--fresh", "--retries", "1", cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert self.summary(again) == "3 completed, 0 failed, 0 done before"
        table = results(tmp_path / "progress/flaky/Flaky").sort("n")
        assert table["attempt"].to_list() == [1, 2, 1]
        # a fresh run that needs no retry replaces the retried rows with first tries
        third = experiment("flaky.Flaky", "--fresh", cwd=tmp_path)
        assert third.returncode == 0, third.stderr
        table = results(tmp_path / "progress/flaky/Flaky").sort("n")
        assert table["attempt"].to_list() == [1, 1, 1]
        assert table["status"].to_list() == ["completed"] * 3


class TestRandomSearchAfterTheRun:
    @pytest.fixture
    def sampled(self, tmp_path):
        write(tmp_path / "rs.py", RANDOM)
        done = experiment("rs.Random", "--sample", "8", "--seed", "3", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return tmp_path

    def test_status_shows_everything_stored(self, sampled):
        """status without the sample's N and seed counts every stored setting."""
        done = experiment("status", "rs.Random", cwd=sampled)
        assert done.returncode == 0, done.stderr
        assert done.stdout == (
            "Random (rs.py): 8 settings stored (lr is drawn from a distribution: all "
            "stored settings are shown)\n"
            "  completed    8\n"
            "  failed       0\n"
            "results: progress/rs/Random/results.parquet\n"
        )

    def test_results_show_everything_stored(self, sampled):
        """results without the sample's N and seed lists every stored setting, as stored."""
        stored = results(sampled / "progress/rs/Random")
        as_csv = experiment("results", "rs.Random", "--csv", cwd=sampled)
        assert as_csv.returncode == 0, as_csv.stderr
        rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
        assert sorted(r["id"] for r in rows) == sorted(stored["id"])
        table = experiment("results", "rs.Random", cwd=sampled)
        assert table.returncode == 0, table.stderr
        lines = table.stdout.splitlines()
        assert lines[0].split() == ["lr", "layers", "score", "time"]
        assert len(lines) == 2 + 8

    def test_the_same_sample_still_selects_its_settings(self, sampled):
        """With --sample and --seed, status and results show that sample's settings."""
        sample = ("--sample", "3", "--seed", "3")
        part = experiment("results", "rs.Random", *sample, "--csv", cwd=sampled)
        assert part.returncode == 0, part.stderr
        assert len(list(csv.DictReader(io.StringIO(part.stdout)))) == 3
        status = experiment("status", "rs.Random", *sample, cwd=sampled)
        assert status.stdout.splitlines()[0] == "Random (rs.py): 3 settings"


class TestJson:
    """--json on every command that reports: one object with a schema, nothing else."""

    def test_status_plan_clean_and_results(self, tmp_path):
        """status, run --dry-run, clean --dry-run and results each write one JSON object
        naming its schema; clean --dry-run deletes nothing; a bad --json is one line on
        stderr with stdout empty."""
        write(tmp_path / "raises.py", RAISES)
        assert experiment("raises.Raises", "-q", cwd=tmp_path).returncode == 0

        def one(*args: str) -> dict:
            done = experiment(*args, "--json", cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            return json.loads(done.stdout)

        status = one("status", "raises.Raises", "--k", "1,2,3,4")
        assert status["schema"] == "superparams.status/1"
        (facts,) = status["experiments"]
        assert facts["counts"]["completed"] == 3
        assert facts["counts"]["new"] == 1
        assert facts["left"] == [{"label": "k=4", "status": "new", "error": None}]
        plan = one("raises.Raises", "--k", "1,2,3,4", "--dry-run")
        assert (plan["schema"], plan["would_run"], plan["stored"]["completed"]) == (
            "superparams.plan/1",
            1,
            3,
        )
        clean = one("clean", "raises.Raises", "--dry-run")
        assert (clean["schema"], clean["settings"]) == ("superparams.clean/1", 3)
        results = one("results", "raises.Raises")
        assert results["schema"] == "superparams.results/1"
        assert [r["sq"] for r in results["rows"]] == [1, 4, 9]
        assert (tmp_path / "progress/raises/Raises/results.parquet").exists()  # kept
        bad = experiment("raises.Raises", "--json", cwd=tmp_path)
        assert (bad.returncode, bad.stdout) == (2, "")
        assert bad.stderr == (
            "error: --json says what a run would do: add --dry-run (a run itself writes no JSON)\n"
        )

    def test_logs_listing(self, tmp_path):
        """logs --json lists each matching setting's log (id, label, status, file, size),
        with -n its last lines; --json with --follow is one line, exit 2."""
        write(
            tmp_path / "talks.py",
            "from superparams import Experiment, search\n\n"
            "class Talks(Experiment):\n"
            "    k: int = search(1, 2)\n\n"
            "    def run(self):\n"
            "        for i in range(3):\n"
            "            print(f'k={self.k} line {i}')\n"
            "        return {'k2': self.k * 2}\n",
        )
        assert experiment("talks.Talks", "-q", cwd=tmp_path).returncode == 0
        done = experiment("logs", "talks.Talks", "--json", "-n", "1", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        listing = json.loads(done.stdout)
        assert listing["schema"] == "superparams.logs/1"
        assert [(e["label"], e["status"], e["tail"]) for e in listing["logs"]] == [
            ("k=1", "completed", "k=1 line 2\n"),
            ("k=2", "completed", "k=2 line 2\n"),
        ]
        for entry in listing["logs"]:
            assert os.path.getsize(entry["path"]) == entry["bytes"] > 0
        whole = json.loads(experiment("logs", "talks.Talks", "--json", cwd=tmp_path).stdout)
        assert "tail" not in whole["logs"][0]
        bad = experiment("logs", "talks.Talks", "--json", "-f", cwd=tmp_path)
        assert (bad.returncode, bad.stdout) == (2, "")
        assert bad.stderr == (
            "error: --json lists the logs as they are now; it does not go with --follow\n"
        )

    def test_clean_dry_run_says_what_would_go(self, tmp_path):
        """clean --dry-run in words: what clean would delete, and that nothing was."""
        write(tmp_path / "raises.py", RAISES)
        assert experiment("raises.Raises", "-q", cwd=tmp_path).returncode == 0
        done = experiment("clean", "raises.Raises", "--dry-run", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stderr == (
            "would delete 3 stored settings of Raises and their logs in "
            "progress/raises/Raises; nothing deleted\n"
        )
        assert experiment("results", "raises.Raises", cwd=tmp_path).stdout.count("\n") == 5
