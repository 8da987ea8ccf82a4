"""The experiment command in this process: values by annotation, the grammar, the lookup.

The command run for real, through a subprocess and a terminal, is in ``tests/e2e``.
"""

from __future__ import annotations

import enum
import subprocess
import sys
import textwrap
from pathlib import Path, PurePosixPath
from typing import Literal, Optional, Union

import pytest
from hypothesis import given
from hypothesis import strategies as st

from superparams import UsageError
from superparams._cli import COMMANDS, main
from superparams._cli._find import find, known_names, module_name
from superparams._cli._options import OPTIONS
from superparams._cli._requests import REQUESTS
from superparams._cli._values import BadValue, Unsettable, expected, parse, split, type_name
from superparams.errors import LoadError

SEED = """
from superparams import Experiment, search

class Hyperparams(Experiment):
    steps: int = 100
    batch_size: int = search(16, 32)

    def run(self) -> dict:
        return {"total samples": self.batch_size * self.steps}
"""


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty folder as the working directory; modules imported from it are forgotten."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SUPERPARAMS_PROGRESS", "")
    monkeypatch.delenv("SUPERPARAMS_PROGRESS")
    modules, path = set(sys.modules), list(sys.path)
    yield tmp_path
    for name in set(sys.modules) - modules:
        del sys.modules[name]
    sys.path[:] = path


# -- values ------------------------------------------------------------------------------------


class TestSplit:
    def test_commas_separate_values(self):
        """Top-level commas separate searched values, and spaces around them go."""
        assert split("1, 2,3") == ["1", "2", "3"]

    def test_brackets_and_quotes_group(self):
        """A list in brackets, or a quoted text with commas, is one value."""
        assert split("[1,2],(3,4),'a,b',\"c,d\"") == ["[1,2]", "(3,4)", "'a,b'", '"c,d"']

    def test_one_value_is_kept_as_written(self):
        """Text without a top-level comma is one value, untouched."""
        assert split(" a b ") == [" a b "]
        assert split("") == [""]

    @given(st.lists(st.integers(), min_size=1))
    def test_joined_numbers_split_back(self, numbers):
        """Numbers joined by commas split back into their texts."""
        assert split(",".join(map(str, numbers))) == [str(n) for n in numbers]


class TestParse:
    @pytest.mark.parametrize(
        ("text", "annotation", "value"),
        [
            ("16", int, 16),
            ("-3", int, -3),
            ("1_000", int, 1000),
            ("0.1", float, 0.1),
            ("1e-3", float, 1e-3),
            ("3", float, 3.0),
            ("inf", float, float("inf")),
            ("true", bool, True),
            ("No", bool, False),
            ("1", bool, True),
            ("adam", str, "adam"),
            ("'a,b'", str, "a,b"),
            ('"quoted"', str, "quoted"),
            ("adam", Literal["adam", "sgd"], "adam"),
            ("2", Literal[1, 2], 2),
            ("RED", Color, Color.RED),
            ("green", Color, Color.GREEN),
            ("none", Optional[int], None),  # noqa: UP045  # as users write it
            ("5", Optional[int], 5),  # noqa: UP045
            ("null", int | None, None),
            ("7", Union[int, str], 7),  # noqa: UP007  # as users write it
            ("seven", Union[int, str], "seven"),  # noqa: UP007
            ("[1,2,3]", list[int], [1, 2, 3]),
            ("[]", list[int], []),
            ("(1, 'a')", tuple[int, str], (1, "a")),
            ("[1,2]", tuple[int, ...], (1, 2)),
            ("[0.5,1]", list[float], [0.5, 1.0]),
            ("[[1],[2,3]]", list[list[int]], [[1], [2, 3]]),
            ("data/x.csv", Path, Path("data/x.csv")),
            ("a/b", PurePosixPath, PurePosixPath("a/b")),
            ("{'a': 1}", dict, {"a": 1}),
            ("[1, 'x']", list, [1, "x"]),
            ("3", None, 3),
            ("hello", None, "hello"),
            ("2.5", "float", 2.5),
            ("x", "SomethingUnresolved", "x"),
        ],
    )
    def test_a_value_by_its_annotation(self, text, annotation, value):
        """Text becomes a value of the field's declared type."""
        parsed = parse(text, annotation)
        assert parsed == value
        assert type(parsed) is type(value)

    @pytest.mark.parametrize(
        ("text", "annotation"),
        [
            ("x", int),
            ("1.5", int),
            ("fast", float),
            ("maybe", bool),
            ("adamw", Literal["adam", "sgd"]),
            ("BLUE", Color),
            ("x", Optional[int]),  # noqa: UP045
            ("64", list[int]),
            ("[1,x]", list[int]),
            ("(1,2,3)", tuple[int, str]),
            ("[1]", dict),
        ],
    )
    def test_text_that_is_not_such_a_value(self, text, annotation):
        """Text that does not fit the annotation is refused, never guessed at."""
        with pytest.raises(BadValue):
            parse(text, annotation)

    def test_close_choices_are_offered(self):
        """A Literal or Enum value close to a valid one gets a suggestion."""
        with pytest.raises(BadValue) as literal:
            parse("adamw", Literal["adam", "sgd"])
        assert literal.value.hint == " (did you mean 'adam'?)"
        with pytest.raises(BadValue) as member:
            parse("GREN", Color)
        assert member.value.hint == " (did you mean 'GREEN'?)"

    def test_a_list_written_without_brackets_says_how(self):
        """A list field given bare values is told to use brackets."""
        with pytest.raises(BadValue) as error:
            parse("64", list[int])
        assert "brackets" in error.value.hint

    def test_a_nested_experiment_cannot_be_written(self):
        """A field holding an experiment or dataclass has no text form."""
        from superparams import Experiment

        class Model(Experiment):
            width: int = 1

        with pytest.raises(Unsettable):
            parse("x", Model)

    @given(st.integers())
    def test_ints_round_trip(self, number):
        """Any int written out parses back to itself."""
        assert parse(str(number), int) == number

    @given(st.floats(allow_nan=False))
    def test_floats_round_trip(self, number):
        """Any float written with repr parses back to itself."""
        assert parse(repr(number), float) == number


class TestTypeNames:
    @pytest.mark.parametrize(
        ("annotation", "name", "phrase"),
        [
            (int, "int", "an int"),
            (float, "float", "a float"),
            (bool, "bool", "true or false"),
            (str, "str", "a string"),
            (Path, "Path", "a path"),
            (Literal["adam", "sgd"], "{adam,sgd}", "one of 'adam', 'sgd'"),
            (Color, "{RED,GREEN}", "one of RED, GREEN"),
            (Optional[int], "int | None", "an int or none"),  # noqa: UP045
            (list[int], "list[int]", "a list[int]"),
            (tuple[int, ...], "tuple[int, ...]", "a tuple[int, ...]"),
        ],
    )
    def test_help_and_error_words(self, annotation, name, phrase):
        """Each type has a short name for help and a phrase for errors."""
        assert type_name(annotation) == name
        assert expected(annotation) == phrase


# -- the grammar -----------------------------------------------------------------------------


class TestGrammar:
    """A command word is a command only when it comes first and an experiment follows."""

    def test_a_command_word_leads(self, project, capsys):
        """`experiment status params.Hyperparams` is the status command, not a run."""
        write(project / "experiments/params.py", SEED)
        assert main(["status", "params.Hyperparams"]) == 0
        out = capsys.readouterr().out
        assert out.startswith("Hyperparams (experiments/params.py): 2 settings\n")
        assert not (project / "experiments/progress").exists()

    @pytest.mark.parametrize(
        "argv",
        [
            ["params.Hyperparams", "--num_proc", "2", "--dry-run"],
            ["-j", "2", "params.Hyperparams", "--dry-run"],
            ["--timeout=5", "params.Hyperparams", "--dry-run"],
        ],
    )
    def test_options_go_before_or_after_the_name(self, project, capsys, argv):
        """Run options may come before the experiment's name or after it."""
        write(project / "experiments/params.py", SEED)
        assert main(argv) == 0
        assert "would run 2 settings" in capsys.readouterr().err

    @pytest.mark.parametrize(
        "argv", [["status"], ["status", "--num_proc", "2"], ["status", "--csv"]]
    )
    def test_a_command_word_alone_needs_an_experiment(self, project, capsys, argv):
        """`experiment status` with no experiment says what is missing: one line, code 2."""
        assert main(argv) == 2
        assert capsys.readouterr().err == (
            "error: experiment status needs an experiment, e.g. experiment status "
            "params.Hyperparams\n"
        )

    def test_a_command_word_after_the_name_is_no_command(self, project, capsys):
        """`experiment params.Hyperparams status` is a run given a stray word: refused."""
        write(project / "experiments/params.py", SEED)
        assert main(["params.Hyperparams", "status"]) == 2
        assert capsys.readouterr().err == (
            "error: unexpected 'status' after 'params.Hyperparams'; field values are written "
            "--FIELD VALUE\n"
        )
        assert not (project / "experiments/progress").exists()

    def test_a_command_words_help(self, capsys):
        """`experiment logs --help` is the help of logs."""
        assert main(["logs", "--help"]) == 0
        assert capsys.readouterr().out.startswith("usage: experiment logs EXPERIMENT")


class TestRequests:
    """Each command has its own typed request, and every option lands in it."""

    def test_every_option_is_a_field_of_its_commands_request(self):
        """An option read for a command is a field of that command's request."""
        import dataclasses

        for option in OPTIONS:
            for command in option.commands:
                names = {f.name for f in dataclasses.fields(REQUESTS[command])}
                assert option.dest in names, (option.names, command)

    def test_every_command_has_a_request(self):
        """The table of commands and the table of requests name the same commands."""
        assert set(COMMANDS) == set(REQUESTS)


def listed_options(help_text: str) -> list[str]:
    """The lines of a help text's list of options: those under its options' title."""
    lines = help_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line in ("options:", "run options:"))
    listed = []
    for line in lines[start + 1 :]:
        if not line.startswith("  -"):
            break
        listed.append(line)
    return listed


class TestTheOptionTable:
    """The option table is the one source of what `--help` says of each option."""

    @pytest.mark.parametrize("command", list(COMMANDS))
    def test_help_lists_each_option_of_the_table_and_no_other(self, command, capsys):
        """A command's --help lists its options of the table, in order, each under its
        spelling, with its metavar and its help text, and lists nothing else."""
        assert main(["--help"] if command == "run" else [command, "--help"]) == 0
        listed = listed_options(capsys.readouterr().out)
        options = [option for option in OPTIONS if command in option.commands]
        assert len(listed) == len(options), listed
        for option, line in zip(options, listed, strict=True):
            assert line.endswith(f" {option.help}"), (option.names, line)
            words = line[: -len(option.help)].replace(",", " ").replace("[=", " ").split()
            words = [w.rstrip("]") for w in words]
            flags = words[:-1] if option.metavar else words
            assert set(flags) <= set(option.names), (option.names, line)
            assert option.spelling in (*flags, None), (option.names, line)
            assert not option.metavar or words[-1] == option.metavar, (option.names, line)


class TestMain:
    def test_no_words_prints_usage(self, project, capsys):
        """No experiment: the usage, a pointer to --help, and code 2."""
        assert main([]) == 2
        err = capsys.readouterr().err
        assert err.startswith("usage: experiment EXPERIMENT")
        assert "--help" in err

    def test_help_loads_nothing(self, tmp_path):
        """--help loads neither polars nor rich, nor the store, the runner or any command's
        machinery: it is text."""
        script = (
            "import sys\n"
            "from superparams._cli import main\n"
            "assert main(['--help']) == 0\n"
            "heavy = ('polars', 'rich', 'superparams._store._writer', 'superparams._store._read',"
            " 'superparams._store._compact', 'superparams._store._record',"
            " 'superparams._store._table', 'superparams._runner', 'superparams.executors',"
            " 'superparams._display')\n"
            "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert "EXPERIMENT is looked up here" in done.stdout
        assert done.stdout.splitlines()[-1] == "[]"

    def test_version(self, capsys):
        """--version names the package and its version."""
        assert main(["--version"]) == 0
        assert capsys.readouterr().out.startswith("superparams ")

    def test_a_command_without_experiment(self, project, capsys):
        """`experiment status -j 2`: the command needs an experiment; one line, code 2."""
        assert main(["status", "-j", "2"]) == 2
        assert capsys.readouterr().err == (
            "error: experiment status needs an experiment, e.g. experiment status "
            "params.Hyperparams\n"
        )

    def test_the_experiments_help_lists_fields(self, project, capsys):
        """EXPERIMENT --help: each field with its type and its default or searched values."""
        write(project / "experiments/params.py", SEED)
        assert main(["params.Hyperparams", "--help"]) == 0
        out = capsys.readouterr().out
        assert "  --steps INT            default 100" in out
        assert "  --batch_size INT       search: 16, 32" in out
        assert not (project / "experiments/progress").exists()

    def test_subcommand_help_names_its_options(self, capsys):
        """`experiment results --help` lists what results accepts."""
        assert main(["results", "--help"]) == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: experiment results EXPERIMENT")
        assert "--csv" in out
        assert "--num_proc" not in out

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (
                ["params.Hyperparams", "--bach_size", "8"],
                "error: --bach_size: Hyperparams has no field 'bach_size' (did you mean "
                "'batch_size'?); its fields are steps, batch_size",
            ),
            (
                ["params.Hyperparams", "--batch_size", "big"],
                "error: --batch_size expects an int, got 'big'",
            ),
            (
                ["params.Hyperparams", "--batch_size", "8,x"],
                "error: --batch_size expects an int, got 'x' (in '8,x')",
            ),
            (
                ["params.Hyperparams", "--num_porc", "2"],
                "error: --num_porc is not an option, nor a field of Hyperparams (did you "
                "mean '--num_proc'?); its fields are steps, batch_size",
            ),
            (
                ["params.Hyperparams", "-j", "2.5"],
                "error: -j expects a whole number of worker processes (-1: one per core), "
                "got '2.5'",
            ),
            (
                ["params.Hyperparams", "--timeout", "soon"],
                "error: --timeout expects a duration such as 90, 90s, 30m or 2h, got 'soon'",
            ),
            (["params.Hyperparams", "--steps"], "error: --steps needs a value"),
            (["params.Hyperparams", "--csv"], "error: --csv is an option of results, not of a run"),
            (
                ["params.Hyperparams", "extra"],
                "error: unexpected 'extra' after 'params.Hyperparams'; field values are "
                "written --FIELD VALUE",
            ),
            (
                ["--steps", "3", "params.Hyperparams"],
                "error: unknown option --steps; field values go after the experiment's name: "
                "experiment EXPERIMENT --steps VALUE",
            ),
            (
                ["params.Hyperparams", "--fresh", "--rerun-failed"],
                "error: --fresh runs every setting again and --rerun-failed only the failed "
                "ones; pick one",
            ),
            (
                ["clean", "params.Hyperparams", "--steps", "3"],
                "error: clean removes every stored result of the experiment, not those of "
                "some settings; drop --steps",
            ),
        ],
    )
    def test_usage_errors_are_one_line_and_write_nothing(self, project, capsys, argv, message):
        """A bad flag or value: code 2, one line naming it, no traceback, no folder."""
        write(project / "experiments/params.py", SEED)
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err == message + "\n"
        assert not (project / "experiments/progress").exists()

    def test_a_field_of_one_of_several_experiments(self, project, capsys):
        """With several experiments, a field of any one is accepted; of none, refused."""
        write(
            project / "RQ1.py",
            """
            from superparams import Experiment, search
            class A(Experiment):
                lr: float = 0.1
                def run(self):
                    return {}
            class B(Experiment):
                seed: int = search(1, 2)
                def run(self):
                    return {}
            """,
        )
        assert main(["RQ1", "--lr", "0.5", "--dry-run"]) == 0
        assert "lr  float  0.5" in capsys.readouterr().err
        assert main(["RQ1", "--lrr", "3"]) == 2
        assert capsys.readouterr().err == (
            "error: --lrr: no experiment in RQ1.py has a field 'lrr' (did you mean 'lr'?); "
            "their fields are lr, seed\n"
        )

    def test_called_from_code_errors_are_raised(self, project):
        """standalone=False: the error itself, for a caller to handle."""
        write(project / "experiments/params.py", SEED)
        with pytest.raises(UsageError, match="bach_size"):
            main(["params.Hyperparams", "--bach_size", "8"], standalone=False)

    def test_overrides_make_the_space(self, project, capsys):
        """--FIELD VALUE sets a constant; a,b,c searches; the plan shows the settings."""
        write(project / "experiments/params.py", SEED)
        code = main(["params.Hyperparams", "--steps", "10", "--batch_size", "1,2,4", "--dry-run"])
        assert code == 0
        err = capsys.readouterr().err
        assert "would run 3 settings" in err
        assert "batch_size=4" in err
        assert "steps       int  10" in err
        assert not (project / "experiments/progress").exists()

    def test_bool_fields_take_a_bare_flag(self, project, capsys):
        """--flag alone is true, --no-flag false, and --flag true,false searches both."""
        write(
            project / "flags.py",
            """
            from superparams import Experiment
            class Flags(Experiment):
                fast: bool = False
                n: int = 1
                def run(self):
                    return {}
            """,
        )
        assert main(["flags.Flags", "--fast", "--n", "2", "--dry-run"]) == 0
        assert "fast  bool  True" in capsys.readouterr().err
        assert main(["flags.Flags", "--no-fast", "--dry-run"]) == 0
        assert "fast  bool  False" in capsys.readouterr().err
        assert main(["flags.Flags", "--fast", "true,false", "--dry-run"]) == 0
        assert "would run 2 settings" in capsys.readouterr().err

    def test_dashes_may_stand_for_underscores(self, project, capsys):
        """--batch-size is --batch_size, as --num-proc is --num_proc."""
        write(project / "experiments/params.py", SEED)
        assert (
            main(["params.Hyperparams", "--batch-size", "8", "--num-proc", "2", "--dry-run"]) == 0
        )
        assert "would run 1 setting" in capsys.readouterr().err

    def test_a_field_without_default_must_be_given(self, project, capsys):
        """A field with no default is required on the command line."""
        write(
            project / "req.py",
            """
            from superparams import Experiment
            class Req(Experiment):
                data: str
                def run(self):
                    return {}
            """,
        )
        assert main(["req.Req", "--dry-run"]) == 2
        assert capsys.readouterr().err == "error: Req needs --data: it has no default\n"
        assert main(["req.Req", "--data", "x.csv", "--dry-run"]) == 0

    def test_a_space_with_distributions_needs_a_sample(self, project, capsys):
        """A field drawn from a distribution cannot be listed: --sample N draws settings."""
        write(
            project / "drawn.py",
            """
            from superparams import Experiment, loguniform
            class Drawn(Experiment):
                lr: float = loguniform(1e-4, 1e-1)
                def run(self):
                    return {}
            """,
        )
        assert main(["drawn.Drawn", "--dry-run"]) == 2
        assert "--sample N" in capsys.readouterr().err
        assert main(["drawn.Drawn", "--sample", "3", "--seed", "1", "--dry-run"]) == 0
        assert "would run 3 settings" in capsys.readouterr().err

    def test_derived_fields_cannot_be_set(self, project, capsys):
        """A derived field follows from the others: setting it is a usage error."""
        write(
            project / "der.py",
            """
            from superparams import Experiment, derived
            class Der(Experiment):
                a: int = 2
                b: int = derived(lambda s: s.a * 2)
                def run(self):
                    return {}
            """,
        )
        assert main(["der.Der", "--b", "3"]) == 2
        assert "derived" in capsys.readouterr().err


# -- finding experiments --------------------------------------------------------------------


class TestFind:
    def test_from_inside_experiments_and_from_above(self, project, monkeypatch):
        """params.Hyperparams is found in experiments/ from there and from the folder above."""
        write(project / "experiments/params.py", SEED)
        above = find("params.Hyperparams")
        monkeypatch.chdir(project / "experiments")
        inside = find("params.Hyperparams")
        assert above.path == inside.path == (project / "experiments/params.py").resolve()
        assert [c.__name__ for c in above.classes] == ["Hyperparams"]
        assert above.classes[0] is inside.classes[0]  # one module, imported once

    def test_a_file_anywhere(self, project, monkeypatch):
        """path/to/file.py:Class works from any folder."""
        write(project / "deep/down/params.py", SEED)
        (project / "elsewhere").mkdir()
        monkeypatch.chdir(project / "elsewhere")
        found = find("../deep/down/params.py:Hyperparams")
        assert [c.__name__ for c in found.classes] == ["Hyperparams"]
        assert [c.__name__ for c in find("../deep/down/params.py").classes] == ["Hyperparams"]

    def test_a_module_name_runs_all_its_experiments(self, project):
        """RQ1 means every experiment in RQ1.py, in order, bases without run() left out."""
        write(
            project / "experiments/RQ1.py",
            """
            from superparams import Experiment, search
            class Base(Experiment):
                seed: int = search(0, 1)
            class Small(Base):
                def run(self):
                    return {}
            class Large(Base):
                def run(self):
                    return {}
            class _Hidden(Base):
                def run(self):
                    return {}
            """,
        )
        assert [c.__name__ for c in find("RQ1").classes] == ["Small", "Large"]

    def test_a_class_in_a_module_or_a_module_in_a_folder(self, project):
        """index.RQ1: class RQ1 of index.py, or every experiment of index/RQ1.py."""
        write(
            project / "a/index.py",
            """
            from superparams import Experiment
            class RQ1(Experiment):
                def run(self):
                    return {}
            """,
        )
        write(
            project / "b/index/RQ1.py",
            """
            from superparams import Experiment
            class One(Experiment):
                def run(self):
                    return {}
            class Two(Experiment):
                def run(self):
                    return {}
            """,
        )
        assert find("a/index.py:RQ1").classes[0].__name__ == "RQ1"
        assert [c.__name__ for c in find("b/index/RQ1.py").classes] == ["One", "Two"]

    def test_ambiguous_names_list_both(self, project):
        """A name meaning two things is refused, naming both so either can be written."""
        class_rq1 = """
            from superparams import Experiment
            class RQ1(Experiment):
                def run(self):
                    return {}
            """
        write(project / "index.py", class_rq1)
        write(project / "index/RQ1.py", class_rq1.replace("RQ1(", "Other("))
        with pytest.raises(UsageError) as error:
            find("index.RQ1")
        assert str(error.value) == (
            "'index.RQ1' is ambiguous: it names index.py:RQ1 and index/RQ1.py; "
            "name one of them instead"
        )

    def test_two_folders_below_are_ambiguous(self, project):
        """The same name in two folders below, and none here: both are listed."""
        write(project / "one/params.py", SEED)
        write(project / "two/params.py", SEED)
        with pytest.raises(
            UsageError, match=r"it names one/params\.py:Hyperparams and two/params\.py:Hyperparams"
        ):
            find("params.Hyperparams")

    def test_here_wins_over_the_folders_below(self, project):
        """A file here is found before one in a folder below."""
        write(project / "params.py", SEED)
        write(project / "experiments/params.py", SEED)
        assert find("params.Hyperparams").path == (project / "params.py").resolve()

    def test_unknown_names_list_what_exists(self, project):
        """An unknown name says so, suggests a close one, and lists the experiments nearby."""
        write(project / "experiments/params.py", SEED)
        with pytest.raises(UsageError) as error:
            find("parms.Hyperparams")
        assert str(error.value) == (
            "no experiment 'parms.Hyperparams' here or in the folders below "
            "(did you mean 'params.Hyperparams'?); experiments here: params.Hyperparams"
        )

    def test_a_missing_class_lists_the_files_experiments(self, project):
        """A file found without the class: its experiments, and the close one."""
        write(project / "experiments/params.py", SEED)
        with pytest.raises(UsageError) as error:
            find("params.Hyperparam")
        assert str(error.value) == (
            "experiments/params.py has no experiment 'Hyperparam' (did you mean "
            "'Hyperparams'?); its experiments are Hyperparams"
        )

    def test_a_name_that_is_not_an_experiment(self, project):
        """A class that is not an Experiment subclass is refused as such."""
        write(project / "mod.py", "class Thing:\n    pass\n")
        with pytest.raises(UsageError, match="has 'Thing', but it is not an Experiment subclass"):
            find("mod.Thing")

    def test_a_file_that_raises_shows_its_traceback(self, project):
        """An error importing the user's file is reported with the user's traceback."""
        write(project / "broken.py", "import nonexistent_module_xyz\n")
        with pytest.raises(LoadError) as error:
            find("broken")
        text = str(error.value)
        assert text.startswith("could not import broken.py:\nTraceback")
        assert "ModuleNotFoundError: No module named 'nonexistent_module_xyz'" in text
        assert "importlib" not in text

    def test_venvs_and_hidden_folders_are_not_searched(self, project):
        """Folders below that are virtual environments, hidden or results are skipped."""
        write(project / ".hidden/params.py", SEED)
        write(project / "venv2/params.py", SEED)
        (project / "venv2/pyvenv.cfg").write_text("")
        write(project / "progress/params.py", SEED)
        with pytest.raises(UsageError, match=r"no experiment 'params\.Hyperparams'"):
            find("params.Hyperparams")

    def test_known_names_are_read_without_importing(self, project):
        """The experiments nearby are listed from the files' text, shortest names first."""
        write(project / "experiments/params.py", SEED)
        write(project / "experiments/RQ1.py", SEED.replace("Hyperparams", "First"))
        write(
            project / "boom.py",
            "raise SystemExit('never imported')\nclass X(Experiment):\n    def run(self): ...\n",
        )
        assert known_names() == ["RQ1.First", "boom.X", "params.Hyperparams"]


class TestModuleNames:
    def test_a_plain_folder(self, tmp_path):
        """A file in a folder without __init__.py is imported from that folder."""
        write(tmp_path / "experiments/params.py", SEED)
        assert module_name(tmp_path / "experiments/params.py") == (
            "params",
            (tmp_path / "experiments").resolve(),
        )

    def test_a_package(self, tmp_path):
        """Packages lead the name, and the import starts above the top one."""
        write(tmp_path / "experiments/__init__.py", "")
        write(tmp_path / "experiments/index/__init__.py", "")
        write(tmp_path / "experiments/index/RQ1.py", SEED)
        assert module_name(tmp_path / "experiments/index/RQ1.py") == (
            "experiments.index.RQ1",
            tmp_path.resolve(),
        )
        assert module_name(tmp_path / "experiments/index/__init__.py") == (
            "experiments.index",
            tmp_path.resolve(),
        )

    def test_a_name_taken_by_another_module(self, project):
        """A file named like a module already loaded (json.py) is refused with a reason."""
        write(project / "json.py", SEED)
        with pytest.raises(UsageError, match="would be imported as 'json'"):
            find("json.Hyperparams")
