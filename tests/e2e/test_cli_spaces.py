"""Every space a file defines runs from the command line, and flags reach every field.

A module-level union runs by its name; a file runs its experiments and unions in the
order they are defined, but not the component classes its experiments hold; nested
fields take dotted flags; a range writes a search of numbers; a run option never takes
the place of a field of the same name.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.e2e.test_cli import experiment, results, write

pytestmark = pytest.mark.slow

UNIONS = """
from superparams import Experiment, search

class Train(Experiment):
    opt: str = "sgd"
    lr: float = 0.1
    seed: int = 0

    def run(self):
        return {"score": self.lr}

Sub = Train(opt="sgd", lr=search(0.1, 0.5)) | Train(opt="adam", lr=search(0.001, 0.0001))

class Other(Experiment):
    n: int = search(1, 2, 3)

    def run(self):
        return {"n": self.n}

Both = Other(n=1) | Other(n=search(7, 8))
"""

COMPONENTS = """
from superparams import Experiment, search

class Model(Experiment):
    width: int = 64
    depth: int = 2
    bias: bool = False

    def run(self):  # a component can say what it does alone; it is not run with the file
        return {"params": self.width * self.depth}

class Optimizer(Experiment):
    lr: float = 0.1

class Train(Experiment):
    model: Model = search(Model(width=64), Model(width=128, depth=3))
    optimizer: Optimizer = Optimizer()
    steps: int = 10

    def run(self):
        return {"size": self.model.width * self.model.depth, "lr": self.optimizer.lr,
                "bias": self.model.bias}
"""

NUMBERS = """
from superparams import Experiment

class Grid(Experiment):
    n: int = 1
    lr: float = 0.1
    name: str = "x"
    seed: int = 0

    def run(self):
        return {"got": 1}
"""

DRAWN = """
from superparams import Experiment, loguniform

class Drawn(Experiment):
    lr: float = loguniform(1e-4, 1e-1)
    seed: int = 0

    def run(self):
        return {"lr": self.lr, "seed_field": self.seed}
"""


def params(folder: Path, *columns: str) -> list[tuple[object, ...]]:
    """The parameter values of the stored settings, in the order they ran."""
    frame = results(folder).sort("started")
    return list(frame.select(columns).iter_rows())


class TestUnions:
    """A union defined at module level is a space the command can run by name."""

    def test_a_union_runs_by_name(self, tmp_path):
        """`experiment sp.Sub` runs the four settings of the union, into Train's folder."""
        write(tmp_path / "sp.py", UNIONS)
        done = experiment("sp.Sub", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        got = params(tmp_path / "progress/sp/Train", "opt", "lr")
        assert sorted(got) == [("adam", 0.0001), ("adam", 0.001), ("sgd", 0.1), ("sgd", 0.5)]

    def test_a_union_takes_field_values(self, tmp_path):
        """A flag sets the field in every part of the union."""
        write(tmp_path / "sp.py", UNIONS)
        done = experiment("sp.Sub", "--seed", "3", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert set(results(tmp_path / "progress/sp/Train")["seed"]) == {3}
        assert results(tmp_path / "progress/sp/Train").height == 4

    def test_a_union_overview_names_it(self, tmp_path):
        """--dry-run of a union shows its settings, with nothing run."""
        write(tmp_path / "sp.py", UNIONS)
        done = experiment("sp.Sub", "--dry-run", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "would run 4 settings" in done.stderr
        assert not (tmp_path / "progress").exists()

    def test_the_file_runs_experiments_and_unions_in_order(self, tmp_path):
        """`experiment sp` runs Train, Sub, Other, Both: in the order the file defines them."""
        write(tmp_path / "sp.py", UNIONS)
        done = experiment("sp", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        heads = [line for line in done.stderr.splitlines() if line.endswith("(sp.py)")]
        assert heads == [
            "Train: 1 setting  (sp.py)",
            "Sub: 4 settings of Train  (sp.py)",
            "Other: 3 settings  (sp.py)",
            "Both: 3 settings of Other  (sp.py)",
        ]
        train = params(tmp_path / "progress/sp/Train", "opt", "lr")
        assert len(train) == 4  # Train() itself, then the three of Sub it is not
        other = params(tmp_path / "progress/sp/Other", "n")
        assert [n for (n,) in other] == [1, 2, 3, 7, 8]  # Both's n=1 was done before

    def test_a_name_that_is_neither_says_what_it_is(self, tmp_path):
        """A module-level value that is no space is refused, naming what the file holds."""
        write(tmp_path / "sp.py", UNIONS + "\nLIMIT = 3\n")
        done = experiment("sp.LIMIT", cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr == (
            "error: sp.py has 'LIMIT', but it is not an Experiment subclass nor a space of one; "
            "its experiments are Train, Sub, Other, Both\n"
        )


class TestComponents:
    """A class used as the type of another experiment's field is a part, not a run."""

    def test_the_file_runs_only_the_experiment(self, tmp_path):
        """`experiment models` runs Train; Model (which has run()) and Optimizer are parts."""
        write(tmp_path / "models.py", COMPONENTS)
        done = experiment("models", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "progress/models/Train/results.parquet").exists()
        assert not (tmp_path / "progress/models/Model").exists()

    def test_a_component_still_runs_by_name(self, tmp_path):
        """Named, a component with run() runs: `experiment models.Model`."""
        write(tmp_path / "models.py", COMPONENTS)
        done = experiment("models.Model", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "progress/models/Model/results.parquet").exists()


class TestDottedFields:
    """A nested experiment's field is set with a dotted flag."""

    def test_a_dotted_flag_sets_the_nested_field_of_every_candidate(self, tmp_path):
        """--model.width 512 sets width in both candidate models, keeping their depths."""
        write(tmp_path / "models.py", COMPONENTS)
        done = experiment("models.Train", "--model.width", "512", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert sorted(results(tmp_path / "progress/models/Train")["size"]) == [1024, 1536]

    def test_a_dotted_flag_searches(self, tmp_path):
        """--optimizer.lr 0.1,0.01 searches the nested field."""
        write(tmp_path / "models.py", COMPONENTS)
        done = experiment("models.Train", "--optimizer.lr", "0.1,0.01", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert results(tmp_path / "progress/models/Train").height == 4
        assert set(results(tmp_path / "progress/models/Train")["lr"]) == {0.1, 0.01}

    def test_a_dotted_bool_flag_alone_is_true(self, tmp_path):
        """--model.bias alone sets the nested bool field true."""
        write(tmp_path / "models.py", COMPONENTS)
        done = experiment("models.Train", "--model.bias", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert set(results(tmp_path / "progress/models/Train")["bias"]) == {True}

    def test_a_nested_field_that_does_not_exist(self, tmp_path):
        """A misspelt nested field is a usage error naming the nested class and its fields."""
        write(tmp_path / "models.py", COMPONENTS)
        done = experiment("models.Train", "--model.widht", "512", cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr == (
            "error: --model.widht: Model has no field 'widht' (did you mean 'width'?); "
            "its fields are width, depth, bias\n"
        )
        assert not (tmp_path / "progress").exists()

    def test_a_dot_after_a_plain_field(self, tmp_path):
        """A dotted flag on a field that holds no experiment says so."""
        write(tmp_path / "models.py", COMPONENTS)
        done = experiment("models.Train", "--steps.x", "1", cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr == (
            "error: --steps.x: Train.steps is an int, not a nested experiment; "
            "only a nested experiment's fields are set with a dot\n"
        )

    def test_a_bad_nested_value(self, tmp_path):
        """A nested value is read by the nested field's annotation."""
        write(tmp_path / "models.py", COMPONENTS)
        done = experiment("models.Train", "--model.width", "wide", cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr == "error: --model.width expects an int, got 'wide'\n"

    def test_help_lists_the_nested_fields(self, tmp_path):
        """`--help` lists each nested field as its dotted flag."""
        write(tmp_path / "models.py", COMPONENTS)
        done = experiment("models.Train", "--help", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "--model.width INT" in done.stdout
        assert "--optimizer.lr FLOAT" in done.stdout


class TestRanges:
    """START:END[:STEP] writes a search of numbers; both ends are included."""

    @pytest.mark.parametrize(
        ("flag", "text", "column", "values"),
        [
            ("--n", "1:5", "n", [1, 2, 3, 4, 5]),
            ("--n", "1:10:2", "n", [1, 3, 5, 7, 9]),
            ("--n", "5:1:-2", "n", [5, 3, 1]),
            ("--n", "16:128:x2", "n", [16, 32, 64, 128]),
            ("--n", "1:3,10", "n", [1, 2, 3, 10]),
            ("--lr", "0.1:0.5:0.1", "lr", [0.1, 0.2, 0.3, 0.4, 0.5]),
            ("--lr", "1e-4:1e-1:x10", "lr", [0.0001, 0.001, 0.01, 0.1]),
            ("--lr", "0:1:0.3", "lr", [0.0, 0.3, 0.6, 0.9]),
        ],
    )
    def test_a_range(self, tmp_path, flag, text, column, values):
        """A range gives the values a researcher reads in it, exactly (0.3, not 0.3000…04)."""
        write(tmp_path / "nums.py", NUMBERS)
        done = experiment("nums.Grid", flag, text, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        got = [v for (v,) in params(tmp_path / "progress/nums/Grid", column)]
        assert got == values

    def test_a_string_field_keeps_its_colons(self, tmp_path):
        """In a str field, 1:5 is the text '1:5'; a comma inside quotes is part of the text."""
        write(tmp_path / "nums.py", NUMBERS)
        done = experiment("nums.Grid", "--name", '1:5,"a,b"', cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        got = {v for (v,) in params(tmp_path / "progress/nums/Grid", "name")}
        assert got == {"1:5", "a,b"}

    @pytest.mark.parametrize(
        ("flag", "text", "message"),
        [
            (
                "--n",
                "5:1",
                "--n 5:1 is empty: it counts up from 5 and 5 is past 1; write 1:5, "
                "or 5:1:-1 to count down",
            ),
            ("--n", "1:5:0", "--n 1:5:0 has a step of 0; write e.g. 1:5:1"),
            (
                "--n",
                "1:2.5",
                "--n expects an int, or a range of them such as 1:5 or 1:9:2, got '1:2.5'",
            ),
            (
                "--lr",
                "1:10:x1",
                "--lr 1:10:x1 multiplies by 1, which never reaches 10; write e.g. 1:10:x2",
            ),
            ("--lr", "0:1:x10", "--lr 0:1:x10 starts at 0, which no factor moves; start above 0"),
            (
                "--n",
                "1:2000000",
                "--n 1:2000000 holds 2,000,000 values, more than 1,000,000; "
                "use a larger step, or --sample",
            ),
        ],
    )
    def test_a_bad_range(self, tmp_path, flag, text, message):
        """A range that gives nothing, or not numbers of the field's type, is a usage error."""
        write(tmp_path / "nums.py", NUMBERS)
        done = experiment("nums.Grid", flag, text, cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr == f"error: {message}\n"
        assert not (tmp_path / "progress").exists()


class TestOptionsNeverShadowFields:
    """A run option and a field never share a flag: the field keeps its name."""

    def test_sample_seed_beside_a_seed_field(self, tmp_path):
        """--seed sets the field, --sample-seed the sampling: both reach their target."""
        write(tmp_path / "drawn.py", DRAWN)
        first = experiment(
            "drawn.Drawn", "--sample", "3", "--sample-seed", "5", "--seed", "7", cwd=tmp_path
        )
        assert first.returncode == 0, first.stderr
        table = results(tmp_path / "progress/drawn/Drawn")
        assert set(table["seed_field"]) == {7}
        again = experiment(
            "drawn.Drawn", "--sample", "3", "--sample-seed", "5", "--seed", "7", cwd=tmp_path
        )
        assert "all 3 settings completed before" in again.stderr
        other = experiment(
            "drawn.Drawn",
            "--sample",
            "3",
            "--sample-seed",
            "6",
            "--seed",
            "7",
            "--dry-run",
            cwd=tmp_path,
        )
        assert "would run 3 settings" in other.stderr

    def test_the_old_spelling_still_seeds_the_sample(self, tmp_path):
        """Where no field is named seed, --seed is the sampling seed, as before."""
        write(
            tmp_path / "rs.py",
            DRAWN.replace("    seed: int = 0\n", "").replace(', "seed_field": self.seed', ""),
        )
        old = experiment("rs.Drawn", "--sample", "3", "--seed", "5", cwd=tmp_path)
        assert old.returncode == 0, old.stderr
        new = experiment("rs.Drawn", "--sample", "3", "--sample-seed", "5", cwd=tmp_path)
        assert "all 3 settings completed before" in new.stderr

    def test_help_lists_each_flag_once(self, tmp_path):
        """With a field named seed, --help shows --seed once (the field), --sample-seed once."""
        write(tmp_path / "drawn.py", DRAWN)
        done = experiment("drawn.Drawn", "--help", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        listed = [re.match(r"\s+(-\w, )?(--[\w.-]+)", line) for line in done.stdout.splitlines()]
        flags = [m.group(2) for m in listed if m]
        assert flags.count("--seed") == 1
        assert flags.count("--sample-seed") == 1
        assert len(flags) == len(set(flags)), flags

    def test_general_help_names_the_sample_seed(self, tmp_path):
        """`experiment --help` lists --sample-seed among the run options."""
        done = experiment("--help", cwd=tmp_path)
        assert "--sample-seed S" in done.stdout


SEEDED = """
from superparams import Experiment, loguniform, search, seeds


class Seeded(Experiment):
    lr: float = loguniform(1e-4, 1e-1)
    width: int = search(16, 32, 64)
    seed: int = seeds(3)

    def run(self) -> dict:
        return {"acc": self.width * self.lr + self.seed / 100}
"""


class TestSampleOverSeeds:
    """--sample over a space with seeds(...) runs each drawn configuration on every seed."""

    def test_samples_times_seeds_and_their_summary(self, tmp_path):
        """--sample 4 over seeds(3) runs 12 settings; --over seed gives n=3 on 4 rows; a
        larger sample later runs only the new configurations."""
        write(tmp_path / "seeded.py", SEEDED)
        done = experiment("seeded.Seeded", "--sample", "4", "-q", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        table = results(tmp_path / "progress/seeded/Seeded")
        assert table.height == 12
        assert sorted(table["seed"].to_list()) == [0] * 4 + [1] * 4 + [2] * 4
        assert table.select("lr", "width").unique().height == 4
        over = experiment(
            "results",
            "seeded.Seeded",
            "--sample",
            "4",
            "--over",
            "seed",
            "--columns",
            "acc",
            cwd=tmp_path,
        )
        assert over.returncode == 0, over.stderr
        lines = [line for line in over.stdout.splitlines() if "(n=" in line]
        assert len(lines) == 4
        assert all("(n=3)" in line for line in lines)
        more = experiment("seeded.Seeded", "--sample", "5", "--dry-run", cwd=tmp_path)
        assert more.returncode == 0, more.stderr
        assert "would run 3 settings" in more.stderr


WEIGHTED = """
from superparams import Experiment, choice, search


class Model(Experiment):
    width: int = 64


class Train(Experiment):
    opt: str = choice("sgd", "adam", weights=[0.2, 0.8])
    lr: float = search(0.1, 0.01)
    model: Model = search(Model(), Model(width=search(128, 256)))

    def run(self) -> dict:
        return {"x": self.lr}
"""


class TestOneSettingOnce:
    """A search from the command line never counts one setting twice."""

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (
                ("--lr", "0.1,0.1"),
                "Train.lr: search() holds 0.1 twice, which is one setting counted twice; "
                "give each value once",
            ),
            (
                ("--model.width", "512"),
                "Train.model: search() holds Model(width=512) twice, which is one setting "
                "counted twice; give each value once",
            ),
        ],
    )
    def test_a_value_given_twice(self, tmp_path, args, message):
        """--lr 0.1,0.1, or a dotted flag that makes two nested candidates the same, is a
        usage error, and nothing is written."""
        write(tmp_path / "weighted.py", WEIGHTED)
        done = experiment("weighted.Train", *args, cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr == f"error: {message}\n"
        assert not (tmp_path / "progress").exists()

    def test_help_shows_a_choices_weights(self, tmp_path):
        """--help says a field is a weighted choice, with its weights."""
        write(tmp_path / "weighted.py", WEIGHTED)
        done = experiment("weighted.Train", "--help", cwd=tmp_path)
        assert "choice: 'sgd', 'adam'; weights 0.2, 0.8" in done.stdout


FACTORY = """
from dataclasses import field
from pathlib import Path

from superparams import Experiment, search

BUILT = Path(__file__).with_name("built.txt")


def table():
    with open(BUILT, "a") as f:
        f.write("built\\n")
    return list(range(5))


class Big(Experiment):
    data: list = field(default_factory=table)
    k: int = search(1, 2, 3)

    def run(self):
        return {"s": sum(self.data) * self.k}
"""


class TestDefaultFactory:
    def test_a_field_made_by_its_default_factory_runs_from_the_command(self, tmp_path):
        """A field with ``field(default_factory=...)`` has a default, on the command line
        as in Python: the command runs the space (the factory once, in the command's own
        process), and --help says where the default comes from rather than 'required'."""
        write(tmp_path / "experiments/big.py", FACTORY)
        done = experiment("big.Big", "-q", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        frame = results(tmp_path / "experiments/progress/big/Big").sort("k")
        assert frame["s"].to_list() == [10, 20, 30]
        assert (tmp_path / "experiments/built.txt").read_text() == "built\n"
        shown = experiment("big.Big", "--help", cwd=tmp_path)
        line = next(x for x in shown.stdout.splitlines() if "--data" in x)
        assert line.split()[-4:] == ["made", "by", "its", "default_factory"], line
