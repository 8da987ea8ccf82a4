"""The original README's examples, as written there, still work.

Each example is written into a module in ``tmp_path`` and imported, the way a user's
``experiments/params.py`` is.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
from tests.seed import USAGE

from superparams import Experiment, ExperimentError

LOOP = """
for h in Hyperparams():
    results = h.run()
    print(f'Setting ({h.steps}, {h.batch_size}): {results}')
"""

MUTABLE = """
from dataclasses import dataclass
from superparams import Experiment

@dataclass
class Params(Experiment):
    iterable = [1,2,3]
"""


@pytest.fixture
def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write source as experiments/<name>.py and import it as a fresh module."""
    folder = tmp_path / "experiments"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))

    def write(name: str, source: str) -> ModuleType:
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.delitem(sys.modules, name, raising=False)
        module = importlib.import_module(name)
        monkeypatch.setitem(sys.modules, name, module)  # removed again after the test
        return module

    return write


class TestUsage:
    @pytest.mark.parametrize("decorated", [True, False], ids=["with @dataclass", "without"])
    def test_the_grid_search_loop(self, write_module, capsys, decorated: bool):
        """Iterating Hyperparams() runs both batch sizes, printing what the README shows."""
        source = USAGE if decorated else USAGE.replace("@dataclass\n", "")
        params = write_module("params", source + LOOP)
        assert params.Hyperparams.__module__ == "params"
        assert capsys.readouterr().out.splitlines() == [
            "{'total samples': 1600}",
            "Setting (100, 16): {'total samples': 1600}",
            "{'total samples': 3200}",
            "Setting (100, 32): {'total samples': 3200}",
        ]

    def test_the_settings_are_hyperparams(self, write_module):
        """Each setting of the example is a Hyperparams holding plain values."""
        params = write_module("params", USAGE)
        settings = list(params.Hyperparams())
        assert [(h.steps, h.batch_size) for h in settings] == [(100, 16), (100, 32)]
        assert all(isinstance(h, params.Hyperparams) for h in settings)

    def test_rank_and_n_proc(self, write_module):
        """The example's settings have the concurrency fields the README lists."""
        params = write_module("params", USAGE)
        assert [(h.rank, h.n_proc) for h in params.Hyperparams()] == [(0, 1), (0, 1)]


class TestFlexibility:
    def test_search_override(self, write_module):
        """Hyperparams(batch_size=search(2,4,8)) searches those three batch sizes."""
        params = write_module("params", USAGE)
        space = params.Hyperparams(batch_size=params.search(2, 4, 8))
        assert [h.batch_size for h in space] == [2, 4, 8]


class TestMutableAttributes:
    def test_an_unannotated_list_is_a_class_attribute(self, write_module):
        """The README's Params class is accepted; its list is a plain class attribute."""
        params = write_module("mutable", MUTABLE)
        assert params.Params.iterable == [1, 2, 3]
        assert isinstance(params.Params(), Experiment)
        assert len(params.Params()) == 1

    def test_the_readmes_unannotated_search_says_to_annotate_it(self, write_module):
        """The README's `iterable = search([1,2,3])` is refused, showing the line to write."""
        source = MUTABLE.replace("iterable = [1,2,3]", "iterable = search([1,2,3])")
        with pytest.raises(ExperimentError) as error:
            write_module("mutable", source.replace("import Experiment", "import *"))
        assert str(error.value) == (
            "Params.iterable = search([1, 2, 3]) has no annotation, so it would not be a "
            "field; annotate it: `iterable: list = search([1, 2, 3])`"
        )

    @pytest.mark.parametrize("default", ["[1,2,3]", "search([1,2,3])"])
    def test_an_annotated_list_default_is_copied(self, write_module, default: str):
        """iterable: list = [1,2,3] (or search([1,2,3])) is a field copied per instance."""
        source = MUTABLE.replace("iterable = [1,2,3]", f"iterable: list = {default}")
        params = write_module("mutable", source.replace("import Experiment", "import *"))
        first, second = params.Params(), params.Params()
        first.iterable.append(4)
        assert second.iterable == [1, 2, 3]
