"""A derived field or ``is_valid()`` that raises for one setting, from Python.

What ``len``, indexing and ``run_all`` do with it: the setting is in the space, its id
comes from its parameters alone, and its run fails with the user's traceback.
"""

from __future__ import annotations

import pytest

SOURCE = """
from superparams import Experiment, derived, search

class Ratios(Experiment):
    width: int = search(0, 1, 2, 4)
    inverse: float = derived(lambda s: 1 / s.width)
    half: float = derived(lambda s: s.width / 2)

    def run(self):
        return {"doubled": 2 * self.inverse}

class Checked(Experiment):
    n: int = search(1, 2, 3, 4)

    def is_valid(self):
        if self.n == 3:
            raise ValueError(f"is_valid cannot tell for n={self.n}")
        return self.n != 4

    def run(self):
        return {"doubled": 2 * self.n}
"""


@pytest.fixture
def module(workspace):
    return workspace.load("ratios", SOURCE)


class TestADerivedFieldThatRaises:
    """The setting is made, carries the error, and its run fails with it."""

    def test_len_and_indexing(self, module):
        """len counts it; indexing gives it, with the field that raised as None."""
        space = module.Ratios()
        assert len(space) == 4
        setting = space[0]
        assert (setting.width, setting.inverse, setting.half) == (0, None, 0.0)
        assert [s.width for s in space] == [0, 1, 2, 4]

    def test_its_id_comes_from_its_parameters(self, module):
        """The id is that of the same parameters, derived fields aside."""
        space = module.Ratios()
        assert space[0].id == module.Ratios(width=0).id == next(iter(space._sp_ids()))
        assert space[0].label == "width=0"

    def test_run_raises_the_error(self, module):
        """Calling run() by hand raises what the derived field raised."""
        with pytest.raises(ZeroDivisionError):
            module.Ratios()[0].run()

    def test_a_setting_made_by_hand(self, module):
        """Ratios(width=0) is made; its run fails the same way."""
        setting = module.Ratios(width=0)
        assert setting.inverse is None
        with pytest.raises(ZeroDivisionError):
            setting.run()

    @pytest.mark.parametrize(("num_proc", "engine"), [(1, "inline"), (2, None)])
    def test_run_all_fails_that_setting_only(self, module, num_proc, engine):
        """run_all returns a failed row with the traceback; the others complete."""
        frame = module.Ratios().run_all(num_proc=num_proc, engine=engine, display=False)
        assert frame["status"].to_list() == ["failed", "completed", "completed", "completed"]
        failed = frame.row(0, named=True)
        assert (failed["cause"], failed["error"]) == (
            "raised",
            "ZeroDivisionError: division by zero",
        )
        assert "1 / s.width" in failed["traceback"]


class TestAnIsValidThatRaises:
    """A setting whose is_valid raises is in the space; its run fails with the error."""

    def test_len_and_indexing(self, module):
        """is_valid raising counts as valid: n=3 is in the space, n=4 (False) is not."""
        space = module.Checked()
        assert len(space) == 3
        assert [s.n for s in space] == [1, 2, 3]
        assert space[2].n == 3
        assert len(list(space._sp_ids())) == 3

    def test_run_raises_the_error(self, module):
        """Calling run() by hand on it raises what is_valid raised."""
        with pytest.raises(ValueError, match="is_valid cannot tell for n=3"):
            module.Checked()[2].run()
        assert module.Checked()[1].run() == {"doubled": 4}

    @pytest.mark.parametrize("options", [{"engine": "inline"}, {"num_proc": 1}, {"num_proc": 2}])
    def test_run_all_fails_that_setting_only(self, module, options):
        """run_all returns a failed row for n=3 with the traceback of is_valid."""
        frame = module.Checked().run_all(display=False, **options)
        assert frame["n"].to_list() == [1, 2, 3]
        assert frame["status"].to_list() == ["completed", "completed", "failed"]
        failed = frame.row(2, named=True)
        assert failed["error"] == "ValueError: is_valid cannot tell for n=3"
        assert "in is_valid" in failed["traceback"]

    def test_a_sample_of_the_space(self, module):
        """Sampling keeps a setting whose is_valid raised, and its run fails too."""
        frame = module.Checked().sample(3, seed=0).run_all(num_proc=1, display=False)
        assert sorted(frame["n"].to_list()) == [1, 2, 3]
        assert frame.filter(frame["n"] == 3)["status"].to_list() == ["failed"]


NESTED = """
from superparams import Experiment, derived, search

class Model(Experiment):
    width: int = search(0, 2)
    inverse: float = derived(lambda s: 1 / s.width)

class Train(Experiment):
    model: Model = Model()
    lr: float = 0.1

    def run(self):
        return {"scaled": self.lr * self.model.width}
"""


class TestANestedDerivedFieldThatRaises:
    def test_fails_the_setting_that_holds_it(self, workspace):
        """A nested experiment whose derived field raises fails the outer setting with
        that error; the outer run never sees the field as None."""
        space = workspace.load("nested", NESTED).Train()
        table = space.run_all(display=False)
        assert table["status"].to_list() == ["failed", "completed"]
        assert table["error"][0].startswith("ZeroDivisionError")
        with pytest.raises(ZeroDivisionError):
            space[0].run()
