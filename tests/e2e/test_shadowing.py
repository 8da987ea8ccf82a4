"""The working directory never shadows the standard library, in the driver or in workers.

A ``colorsys.py`` lying in the folder a user runs ``experiment`` from must not be what the
experiment gets when it does ``import colorsys``: for ``path/to/file.py:Class`` only the
file's folder goes on the path (as ``python path/to/file.py`` does); for a dotted name,
the folder it is found in goes on the path after the standard library, so a module of the
user's still imports, but not in place of the standard library's.
"""

from __future__ import annotations

import colorsys
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from tests.e2e.sources import MODES
from tests.e2e.test_cli import environment, experiment, write

pytestmark = pytest.mark.slow


STDLIB_COLORSYS = str(Path(colorsys.__file__).resolve())

# What a stray file in the working directory holds: no rgb_to_hsv.
SHADOW = "RGB_TO_HSV = 'the colorsys.py of the working directory'\n"

COLORS = """
import os
import sys
import colorsys
import subprocess
import sys
from superparams import Experiment, search

class Colors(Experiment):
    n: int = search(1, 2, 3)
    helper: bool = False

    def run(self):
        import colorsys as in_run
        found = {
            "at_import": os.path.realpath(colorsys.__file__),
            "in_run": os.path.realpath(in_run.__file__),
            "empty_entry": "" in sys.path,
            "cwd_entry": os.getcwd() in sys.path,
        }
        if self.helper:
            import helpers  # a module of the user's beside the experiment
            found["helper_says"] = helpers.WHAT
        return found
"""

HELPERS = "WHAT = 'the helper beside the experiment'\n"


def rows(folder: Path) -> pl.DataFrame:
    return pl.read_parquet(folder / "results.parquet")


class TestTheWorkingDirectoryDoesNotShadow:
    """``import colorsys`` is the standard library's, whatever lies in the working directory."""

    @pytest.mark.parametrize("mode", MODES)
    def test_a_file_path_puts_only_its_folder_on_the_path(self, tmp_path, mode):
        """With file.py:Class, neither the working directory nor '' is on any sys.path."""
        here = tmp_path / "work"
        write(here / "colorsys.py", SHADOW)
        write(tmp_path / "elsewhere/colors.py", COLORS)
        done = experiment("../elsewhere/colors.py:Colors", *MODES[mode], cwd=here)
        assert done.returncode == 0, done.stderr
        table = rows(tmp_path / "elsewhere/progress/colors/Colors")
        assert table.height == 3
        assert set(table["at_import"]) == {STDLIB_COLORSYS}
        assert set(table["in_run"]) == {STDLIB_COLORSYS}
        assert set(table["empty_entry"]) == {False}
        assert set(table["cwd_entry"]) == {False}

    @pytest.mark.parametrize("mode", MODES)
    def test_a_module_name_puts_the_folder_after_the_standard_library(self, tmp_path, mode):
        """With module.Class, the folder is on the path (a helper beside it imports), but the
        standard library's colorsys wins over the one in that folder."""
        write(tmp_path / "colorsys.py", SHADOW)
        write(tmp_path / "colors.py", COLORS)
        write(tmp_path / "helpers.py", HELPERS)
        done = experiment("colors.Colors", "--helper", *MODES[mode], cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        table = rows(tmp_path / "progress/colors/Colors")
        assert table.height == 3
        assert set(table["at_import"]) == {STDLIB_COLORSYS}
        assert set(table["in_run"]) == {STDLIB_COLORSYS}
        assert set(table["helper_says"]) == {"the helper beside the experiment"}
        assert set(table["empty_entry"]) == {False}

    @pytest.mark.parametrize("mode", MODES)
    def test_a_module_in_the_folder_below(self, tmp_path, mode):
        """From the folder above experiments/, neither folder's colorsys.py shadows."""
        write(tmp_path / "colorsys.py", SHADOW)
        write(tmp_path / "experiments/colorsys.py", SHADOW)
        write(tmp_path / "experiments/colors.py", COLORS)
        write(tmp_path / "experiments/helpers.py", HELPERS)
        done = experiment("colors.Colors", "--helper", *MODES[mode], cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        table = rows(tmp_path / "experiments/progress/colors/Colors")
        assert set(table["at_import"]) == {STDLIB_COLORSYS}
        assert set(table["in_run"]) == {STDLIB_COLORSYS}
        assert set(table["helper_says"]) == {"the helper beside the experiment"}
        assert set(table["cwd_entry"]) == {False}


class TestPythonMinusM:
    """``python -m superparams`` is the command: the working directory goes after the
    standard library, though ``python -m`` put it first."""

    @pytest.mark.parametrize("mode", MODES)
    def test_python_m_superparams(self, tmp_path, mode):
        """The stray colorsys.py is not imported; a module at the top still is."""
        write(tmp_path / "colorsys.py", SHADOW)
        write(tmp_path / "helpers.py", HELPERS)
        write(tmp_path / "experiments/colors.py", COLORS)
        done = subprocess.run(
            [sys.executable, "-m", "superparams", "colors.Colors", "--helper", *MODES[mode]],
            cwd=tmp_path,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stderr
        table = rows(tmp_path / "experiments/progress/colors/Colors")
        assert set(table["in_run"]) == {STDLIB_COLORSYS}
        assert set(table["helper_says"]) == {"the helper beside the experiment"}
