"""The Experiment class: a dataclass of parameters whose instance is a space of settings."""

from __future__ import annotations

import copy
import dataclasses
import enum
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

import numpy as np
import pytest

import superparams
import superparams._space
from superparams import (
    Experiment,
    ExperimentError,
    SearchSpaceError,
    SuperparamsError,
    derived,
    search,
    uniform,
)
from superparams._store import _columns
from superparams._store._columns import BOOKKEEPING


class Hyperparams(Experiment):
    steps: int = 100
    batch_size: int = search(16, 32)

    def run(self) -> dict[str, int]:
        return {"total samples": self.batch_size * self.steps}


@dataclass
class Decorated(Experiment):
    steps: int = 100
    batch_size: int = search(16, 32)

    def run(self) -> dict[str, int]:
        return {"total samples": self.batch_size * self.steps}


class Area(Experiment):
    width: int = search(2, 3)
    height: int = search(10, 20)
    area: int = derived(lambda s: s.width * s.height)


RESERVED = ["rank", "n_proc", "id", "label", "run_all", "results", "plan", "sample"]


class TestDataclass:
    @pytest.mark.parametrize("cls", [Hyperparams, Decorated])
    def test_a_subclass_is_a_dataclass(self, cls: Any):
        """A subclass is a dataclass with or without @dataclass on it."""
        assert dataclasses.is_dataclass(cls)
        assert [f.name for f in dataclasses.fields(cls)] == ["steps", "batch_size"]

    @pytest.mark.parametrize("cls", [Hyperparams, Decorated])
    def test_with_or_without_the_decorator_the_space_is_the_same(self, cls: Any):
        """@dataclass on a subclass changes neither its settings nor its run()."""
        assert [s.run() for s in cls()] == [{"total samples": 1600}, {"total samples": 3200}]

    @pytest.mark.parametrize("cls", [Hyperparams, Decorated])
    def test_fields_are_keyword_only(self, cls: Any):
        """Parameters are given by name, so adding a field never shifts the others."""
        with pytest.raises(TypeError, match=r"positional"):
            cls(100)

    def test_a_field_without_default_is_required(self):
        """A field with no default must be given when the experiment is made."""

        class Seeded(Experiment):
            seed: int

        with pytest.raises(TypeError, match=r"seed"):
            Seeded()  # type: ignore[call-arg]
        assert [s.seed for s in Seeded(seed=search(1, 2))] == [1, 2]

    def test_subclasses_inherit_fields(self):
        """A subclass of an experiment adds its fields after its parent's."""

        class Longer(Hyperparams):
            optimiser: str = search("sgd", "adam")

        assert len(Longer()) == 4
        assert Longer()[-1] == Longer(batch_size=32, optimiser="adam")
        assert Longer()[0].run() == {"total samples": 1600}

    def test_class_variables_are_not_fields(self):
        """A ClassVar (or an unannotated attribute) is shared data, not a parameter."""

        class Shared(Experiment):
            data: ClassVar[list[int]] = [1, 2]
            table = [3, 4]  # noqa: RUF012  # a plain class attribute, on purpose
            a: int = 1

        assert [f.name for f in dataclasses.fields(Shared)] == ["a"]
        assert Shared().data == [1, 2]
        assert Shared.table == [3, 4]

    def test_the_base_class_has_no_instances(self):
        """Experiment itself is not an experiment: instantiating it says to subclass it."""
        with pytest.raises(ExperimentError, match=r"subclass it"):
            Experiment()

    def test_user_post_init_runs_on_settings(self):
        """A __post_init__ sees plain values: it runs for each setting, not for the space."""

        class Scaled(Experiment):
            a: int = search(1, 2)

            def __post_init__(self) -> None:
                self.scaled = self.a * 10

        assert [s.scaled for s in Scaled()] == [10, 20]
        assert Scaled(a=3).scaled == 30
        assert not hasattr(Scaled(), "scaled")

    def test_settings_pickle_and_copy(self):
        """A setting survives pickle and deepcopy with its values and id."""
        setting = Hyperparams()[1]
        for clone in (pickle.loads(pickle.dumps(setting)), copy.deepcopy(setting)):
            assert clone == setting
            assert clone.id == setting.id


class TestMutableDefaults:
    def test_a_plain_mutable_default_is_allowed(self):
        """A list default needs no field(default_factory=...)."""

        class Net(Experiment):
            layers: list[int] = [1, 2, 3]  # noqa: RUF012  # the point of the test

        assert Net().layers == [1, 2, 3]

    def test_each_instance_gets_its_own_copy(self):
        """Changing one instance's mutable default leaves other instances alone."""

        class Net(Experiment):
            layers: list[int] = [1, 2, 3]  # noqa: RUF012  # the point of the test
            table: dict[str, int] = {"a": 1}  # noqa: RUF012  # the point of the test

        first, second = Net(), Net()
        first.layers.append(4)
        first.table["b"] = 2
        assert second.layers == [1, 2, 3]
        assert second.table == {"a": 1}
        assert Net().layers == [1, 2, 3]

    def test_each_setting_gets_its_own_copy(self):
        """Settings of one space never share a mutable value."""

        class Net(Experiment):
            layers: list[int] = [1, 2, 3]  # noqa: RUF012  # the point of the test
            seed: int = search(0, 1)

        space = Net()
        first, second = space
        first.layers.append(4)
        assert second.layers == [1, 2, 3]
        assert space[0].layers == [1, 2, 3]

    def test_a_search_of_one_list_is_the_list(self):
        """search([1, 2, 3]) is a field holding that list, copied per setting."""

        class Tagged(Experiment):
            tags: list[int] = search([1, 2, 3])

        first, second = Tagged(), Tagged()
        assert first.tags == [1, 2, 3]
        first.tags.append(4)
        assert second.tags == [1, 2, 3]


class TestOverrides:
    def test_a_search_override(self):
        """Passing search(...) for a field searches over those values instead."""
        assert [s.batch_size for s in Hyperparams(batch_size=search(2, 4, 8))] == [2, 4, 8]

    def test_a_value_override_makes_a_setting(self):
        """Passing one value for every searched field gives a single setting."""
        setting = Hyperparams(batch_size=64)
        assert len(setting) == 1
        assert setting.run() == {"total samples": 6400}
        assert setting[0] == setting

    def test_a_wrong_name_suggests_the_close_one(self):
        """An unknown field name raises, offering the closest field."""
        with pytest.raises(ExperimentError, match=r"did you mean 'batch_size'\?"):
            Hyperparams(bach_size=8)  # type: ignore[call-arg]

    def test_a_wrong_name_lists_the_fields(self):
        """An unknown field with no close match lists the fields there are."""
        with pytest.raises(ExperimentError, match=r"no field 'zzz'; its fields are steps, batch"):
            Hyperparams(zzz=8)  # type: ignore[call-arg]

    def test_experiment_error_is_a_type_error(self):
        """An ExperimentError can be caught as TypeError, like a bad keyword argument."""
        with pytest.raises(TypeError):
            Hyperparams(bach_size=8)  # type: ignore[call-arg]


class TestReservedNames:
    def test_the_guide_lists_every_reserved_name(self):
        """Each name a field may not take stands in the guide's table of reserved names."""
        from superparams._experiment import reserved_names

        guide = (Path(__file__).parents[1] / "docs" / "guide.md").read_text()
        table = guide.split("Some names are taken", 1)[1].split("\n\n", 2)[1]
        listed = set(re.findall(r"`(\w+)`", table))
        columns, attributes = reserved_names()
        assert columns - listed == set()
        assert attributes - listed == set()

    def test_every_setting_has_rank_and_n_proc(self):
        """rank is 0 and n_proc is 1 on every setting outside a parallel run."""
        for setting in Hyperparams():
            assert (setting.rank, setting.n_proc) == (0, 1)

    @pytest.mark.parametrize("name", [*RESERVED, "experiment_class", "enumerable"])
    def test_a_field_cannot_take_a_reserved_name(self, name: str):
        """A field named like an Experiment attribute fails at class creation, naming it."""
        with pytest.raises(ExperimentError, match=rf"Clash\.{name} clashes with"):
            type("Clash", (Experiment,), {"__annotations__": {name: int}, name: 1})

    @pytest.mark.parametrize("name", [*RESERVED, "experiment_class", "enumerable"])
    def test_a_method_cannot_take_a_reserved_name(self, name: str):
        """A method named like an Experiment attribute fails at class creation, naming it."""

        def method(self: Any) -> None:
            pass

        with pytest.raises(ExperimentError, match=rf"Clash defines '{name}'"):
            type("Clash", (Experiment,), {"__annotations__": {"a": int}, name: method})

    @pytest.mark.parametrize("name", [*BOOKKEEPING, "outdated", "id", "label"])
    def test_a_field_cannot_take_a_results_column(self, name: str):
        """A field named like a bookkeeping column of the results fails, naming the column."""
        message = (
            f"Train.{name} clashes with the results column '{name}'; "
            f"rename the field (e.g. {name}_)"
        )
        with pytest.raises(ExperimentError) as error:
            type("Train", (Experiment,), {"__annotations__": {name: int}, name: 1})
        assert str(error.value) == message

    def test_a_user_class_with_a_status_field_is_refused(self):
        """class Train(Experiment) with `status: str` fails where the class is written."""
        with pytest.raises(ExperimentError) as error:

            class Train(Experiment):
                lr: float = search(0.1, 0.01)
                status: str = "baseline"

        assert str(error.value) == (
            "Train.status clashes with the results column 'status'; rename the field (e.g. status_)"
        )

    def test_a_column_added_to_the_results_is_reserved_too(self, monkeypatch):
        """Every bookkeeping column of the results is refused, not a copied list of them."""
        monkeypatch.setattr(_columns, "BOOKKEEPING", (*_columns.BOOKKEEPING, "code_version"))
        with pytest.raises(ExperimentError, match=r"the results column 'code_version'"):

            class Train(Experiment):
                code_version: str = "v1"

    def test_every_public_attribute_is_reserved(self):
        """Each public name of Experiment and Space is refused as a field."""
        names = {n for c in (Experiment, superparams._space.Space) for n in dir(c)}
        for name in sorted(n for n in names if not n.startswith("_")):
            with pytest.raises(ExperimentError, match=rf"Clash\.{name} clashes with"):
                type("Clash", (Experiment,), {"__annotations__": {name: int}, name: 1})

    def test_an_attribute_added_later_is_reserved(self, monkeypatch):
        """A public attribute added to Space later is refused as a field without a list."""
        monkeypatch.setattr(
            superparams._space.Space, "pending", property(lambda s: ()), raising=False
        )
        with pytest.raises(ExperimentError) as error:

            class Train(Experiment):
                pending: bool = False

        assert str(error.value) == (
            "Train.pending clashes with Experiment.pending, which superparams uses; "
            "rename the field (e.g. pending_)"
        )

    def test_hooks_may_be_overridden(self):
        """run and is_valid are meant to be defined by the user."""

        class Hooked(Experiment):
            a: int = search(1, 2)

            def run(self) -> int:
                return self.a

            def is_valid(self) -> bool:
                return self.a > 1

        assert [s.run() for s in Hooked()] == [2]


class TestUnannotated:
    def test_an_unannotated_search_shows_the_line_to_write(self):
        """`iterable = search([1, 2, 3])` fails at class creation, showing it annotated."""
        with pytest.raises(ExperimentError) as error:

            class Hyperparams(Experiment):
                iterable = search([1, 2, 3])

        assert str(error.value) == (
            "Hyperparams.iterable = search([1, 2, 3]) has no annotation, so it would not be "
            "a field; annotate it: `iterable: list = search([1, 2, 3])`"
        )

    @pytest.mark.parametrize(
        ("declared", "line"),
        [
            (search(16, 32), "batch_size: int = search(16, 32)"),
            (search(1, 0.5), "batch_size: float = search(1, 0.5)"),
            (search(1, "a"), "batch_size: Any = search(1, 'a')"),
            (search(16, 32, link="size"), "batch_size: int = search(16, 32, link='size')"),
            (superparams.value([64, 64]), "batch_size: list = search([64, 64])"),
            (superparams.choice("a", "b"), "batch_size: str = choice('a', 'b')"),
            (
                superparams.choice("a", "b", weights=[0.9, 0.1]),
                "batch_size: str = choice('a', 'b', weights=(0.9, 0.1))",
            ),
            (uniform(0.0, 1.0), "batch_size: float = uniform(0.0, 1.0)"),
            (superparams.loguniform(1e-4, 0.1), "batch_size: float = loguniform(0.0001, 0.1)"),
            (superparams.randint(1, 8), "batch_size: int = randint(1, 8)"),
            (derived(len), "batch_size: Any = derived(len)"),
            (search(Hyperparams(), Hyperparams(steps=5)), "batch_size: Hyperparams = search(...)"),
        ],
    )
    def test_every_kind_of_declaration_is_refused(self, declared: Any, line: str):
        """A search, value, choice, distribution or derived without annotation is an error."""
        with pytest.raises(ExperimentError) as error:
            type("Train", (Experiment,), {"__module__": __name__, "batch_size": declared})
        assert str(error.value).endswith(f"; annotate it: `{line}`")

    @pytest.mark.parametrize(
        ("declared", "written"), [(0.5, "0.5"), (search(0.5, 0.6), "search(0.5, 0.6)")]
    )
    def test_an_unannotated_inherited_field_says_its_default_is_kept(
        self, declared: Any, written: str
    ):
        """`lr = 0.5` in a subclass would leave the inherited lr at 0.1: it is an error."""

        class Base(Experiment):
            lr: float = 0.1

        with pytest.raises(ExperimentError) as error:
            type("Sub", (Base,), {"__module__": __name__, "lr": declared})
        assert str(error.value) == (
            f"Sub.lr = {written} has no annotation, so it would not change the default "
            f"of the field lr it inherits; annotate it: `lr: float = {written}`"
        )

    def test_plain_class_attributes_stay_allowed(self):
        """An unannotated plain value is a class attribute, as in any dataclass."""

        class Train(Experiment):
            table = [3, 4]  # noqa: RUF012  # a plain class attribute, on purpose
            lr: float = search(0.1, 0.01)

        assert Train.table == [3, 4]
        assert len(Train()) == 2


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Model(Experiment):
    width: int = search(64, 128)


class Good(Experiment):
    n: int = 1
    lr: float = 0.1
    flag: bool = False
    name: str = "x"
    path: Path = Path("data")
    color: Color = Color.RED
    maybe: Optional[int] = None  # noqa: UP045  # the spelling under test
    either: int | None = None
    xs: list[int] = [1]  # noqa: RUF012  # a mutable default, on purpose
    ys: list[float] = [0.5]  # noqa: RUF012  # a mutable default, on purpose
    opt: Literal["adam", "sgd"] = "adam"
    model: Model = Model(width=64)
    fn: Callable[[int], int] = abs


def _refusal(make: Callable[[], Any]) -> str:
    with pytest.raises(ExperimentError) as error:
        make()
    return str(error.value)


class TestAnnotations:
    def test_a_search_value_of_the_wrong_type_fails_at_class_creation(self):
        """`n: int = search(1, "two", 3.5)` names the class, field, value and type."""

        def make() -> None:
            class Good(Experiment):
                n: int = search(1, "two", 3.5)  # type: ignore[arg-type]

        assert _refusal(make) == "Good.n is an int, but search() gives it 'two' (a str)"

    def test_a_default_of_the_wrong_type_fails_at_class_creation(self):
        """A plain default that is not of the annotated type is refused with the class."""

        def make() -> None:
            class Good(Experiment):
                n: int = 2.5  # type: ignore[assignment]

        assert _refusal(make) == "Good.n is an int, but its default is 2.5 (a float)"

    @pytest.mark.parametrize(
        ("override", "message"),
        [
            ({"n": 2.7}, "Good.n is an int, but Good(n=2.7) gives it 2.7 (a float)"),
            ({"lr": "abc"}, "Good.lr is a float, but Good(lr='abc') gives it 'abc' (a str)"),
            ({"n": True}, "Good.n is an int, but Good(n=True) gives it True (a bool)"),
            ({"n": None}, "Good.n is an int, but Good(n=None) gives it None"),
            ({"lr": False}, "Good.lr is a float, but Good(lr=False) gives it False (a bool)"),
            ({"flag": 1}, "Good.flag is a bool, but Good(flag=1) gives it 1 (an int)"),
            ({"name": 3}, "Good.name is a str, but Good(name=3) gives it 3 (an int)"),
            ({"path": 3}, "Good.path is a Path, but Good(path=3) gives it 3 (an int)"),
            (
                {"color": "blue"},
                "Good.color is a Color, but Good(color='blue') gives it 'blue' (a str)",
            ),
            (
                {"maybe": "x"},
                "Good.maybe is an int or None, but Good(maybe='x') gives it 'x' (a str)",
            ),
            (
                {"either": 0.5},
                "Good.either is an int or None, but Good(either=0.5) gives it 0.5 (a float)",
            ),
            (
                {"xs": [1, 2.5]},
                "Good.xs is a list[int], but Good(xs=[1, 2.5]) gives it [1, 2.5] (2.5 is a float)",
            ),
            (
                {"xs": (1, 2)},
                "Good.xs is a list[int], but Good(xs=(1, 2)) gives it (1, 2) (a tuple)",
            ),
            (
                {"opt": "adamw"},
                "Good.opt is one of 'adam', 'sgd', but Good(opt='adamw') gives it 'adamw' (a str)",
            ),
            ({"model": 3}, "Good.model is a Model, but Good(model=3) gives it 3 (an int)"),
            ({"n": search(1, 2.5)}, "Good.n is an int, but search() gives it 2.5 (a float)"),
            (
                {"name": superparams.choice("a", 1)},
                "Good.name is a str, but choice() gives it 1 (an int)",
            ),
        ],
    )
    def test_an_override_of_the_wrong_type_fails_at_construction(
        self, override: dict[str, Any], message: str
    ):
        """Good(n=2.7), Good(lr="abc") and the like fail with the class, field, value, type."""
        assert _refusal(lambda: Good(**override)) == message

    def test_a_float_field_takes_an_int_as_a_float(self):
        """A float field turns 1 into 1.0, in a default, a search and an override."""

        class Rates(Experiment):
            lr: float = 1
            decay: float = search(1, 0.5)

        assert [(type(s.lr), s.decay) for s in Rates()] == [(float, 1.0), (float, 0.5)]
        assert type(Rates().lr) is float
        assert type(Good(lr=1).lr) is float

    def test_numpy_scalars_of_the_matching_kind_become_python_scalars(self):
        """numpy ints in int fields and numpy numbers in float fields are converted."""
        setting = Good(n=np.int64(3), lr=np.float32(0.5), flag=np.bool_(True))
        assert (setting.n, setting.lr, setting.flag) == (3, 0.5, True)
        assert [type(v) for v in (setting.n, setting.lr, setting.flag)] == [int, float, bool]
        assert type(Good(lr=np.int32(2)).lr) is float
        message = (
            "Good.n is an int, but Good(n=np.float64(2.0)) gives it np.float64(2.0) (a float64)"
        )
        assert _refusal(lambda: Good(n=np.float64(2.0))) == message

    def test_lossless_conversions(self):
        """A str becomes a Path, an enum's value its member, ints in list[float] floats."""
        setting = Good(path="data/x.csv", color="green", ys=[1, 2])
        assert setting.path == Path("data/x.csv")
        assert setting.color is Color.GREEN
        assert setting.ys == [1.0, 2.0]
        assert [type(y) for y in setting.ys] == [float, float]

    def test_values_that_fit_are_kept(self):
        """None in an optional field, a member of a Literal, a nested space of the class."""
        setting = Good(maybe=None, either=3, opt="sgd", xs=[4, 5], model=Model(width=128))
        assert (setting.maybe, setting.either, setting.opt, setting.xs) == (None, 3, "sgd", [4, 5])
        assert len(Good(model=search(Model(width=32), Model()))) == 3  # 32, then 64 and 128

    def test_annotations_it_does_not_understand_are_taken_as_they_are(self):
        """A Callable field holds any value it is given; an unresolvable name too."""
        assert Good(fn=len).fn is len

        class Loose(Experiment):
            x: Undefined = 5  # type: ignore[name-defined]  # noqa: F821  # never resolved

        assert Loose(x="anything").x == "anything"

    def test_distribution_bounds_are_checked(self):
        """randint in a float field is fine; uniform in an int field is an error."""

        class Drawn(Experiment):
            x: float = superparams.randint(1, 3)

        assert type(Drawn().sample(1)[0].x) is float

        def make() -> None:
            class Bad(Experiment):
                n: int = uniform(0.0, 1.0)  # type: ignore[assignment]

        assert _refusal(make) == (
            "Bad.n is an int, but uniform(0.0, 1.0) draws floats; draw ints with randint(low, high)"
        )
        message = "Good.name is a str, but randint(1, 3) draws ints"
        assert _refusal(lambda: Good(name=superparams.randint(1, 3))) == message
        message = "Good.name is a str, but uniform(0.0, 1.0) draws floats"
        assert _refusal(lambda: Good(name=uniform(0.0, 1.0))) == message

    def test_the_check_is_an_experiment_error_and_a_type_error(self):
        """A wrong type can be caught as TypeError, like one Python itself raises."""
        with pytest.raises(TypeError):
            Good(n="two")  # type: ignore[arg-type]


class TestDerived:
    def test_derived_fields_are_computed_per_setting(self):
        """derived(f) holds f(setting) in each setting of the space."""
        assert [(s.width, s.height, s.area) for s in Area()] == [
            (2, 10, 20),
            (2, 20, 40),
            (3, 10, 30),
            (3, 20, 60),
        ]

    def test_derived_fields_add_no_dimension(self):
        """A derived field does not multiply the size of the space."""
        assert len(Area()) == 4

    def test_a_setting_made_by_hand_computes_it_too(self):
        """An instance given a value for every field is a setting with its derived field."""
        assert Area(width=2, height=10).area == 20
        assert Area(width=2, height=10) == Area()[0]

    def test_a_derived_field_cannot_be_overridden(self):
        """Passing a value for a derived field raises an ExperimentError naming it."""
        with pytest.raises(ExperimentError, match=r"Area\.area is derived .* \(got area=5\)"):
            Area(area=5)


class TestRun:
    def test_run_on_a_space_says_what_to_call(self):
        """run() on a space of several settings names how many and points to run_all()."""
        with pytest.raises(ExperimentError, match=r"space of 2 settings; call \.run_all\(\)"):
            Hyperparams().run()

    def test_run_on_a_space_that_draws(self):
        """run() on a space with distributions says it is a space, not a setting."""

        class Drawn(Experiment):
            lr: float = uniform(0.0, 1.0)

            def run(self) -> float:
                return self.lr

        with pytest.raises(ExperimentError, match=r"space of many settings"):
            Drawn().run()

    def test_run_on_a_setting_runs_it(self):
        """run() on one setting returns what the user's run() returns."""
        assert Hyperparams()[1].run() == {"total samples": 3200}

    def test_a_missing_run_says_to_define_it(self):
        """An experiment without run() says so when asked to run."""

        class Idle(Experiment):
            a: int = 1

        with pytest.raises(ExperimentError, match=r"define run\(self\)"):
            Idle().run()


class TestPrint:
    def test_a_space_prints_an_overview(self):
        """print(space) shows each field, what it is searched over, and the number of settings."""
        assert str(Hyperparams()).splitlines() == [
            "Hyperparams: 2 settings",
            "  steps       int  100",
            "  batch_size  int  search(16, 32)  2 values",
        ]

    def test_a_space_that_draws_prints_an_overview(self):
        """print(space) of a space with distributions says it is sampled only."""

        class Drawn(Experiment):
            lr: float = uniform(0.0, 1.0)
            depth: int = search(1, 2)
            area: int = derived(lambda s: s.depth * 2)

        assert str(Drawn()).splitlines() == [
            "Drawn: sampled only",
            "  lr     float  uniform(0.0, 1.0)  drawn",
            "  depth  int    search(1, 2)       2 values",
            "  area   int    derived(<lambda>)",
        ]

    def test_a_setting_prints_its_dataclass_repr(self):
        """print(setting) is the dataclass repr of its values."""
        assert str(Hyperparams()[0]) == "Hyperparams(steps=100, batch_size=16)"
        assert repr(Hyperparams()[0]) == "Hyperparams(steps=100, batch_size=16)"

    def test_a_union_prints_each_part(self):
        """print(a | b) shows the overview of each space."""
        text = str(Hyperparams() | Hyperparams(steps=search(1, 2)))
        assert text.count("Hyperparams: 2 settings") == 1
        assert text.count("Hyperparams: 4 settings") == 1


class TestErrors:
    @pytest.mark.parametrize(
        ("error", "builtin"),
        [
            (superparams.SearchSpaceError, ValueError),
            (superparams.ExperimentError, TypeError),
            (superparams.IdentityError, TypeError),
            (superparams.StoreError, RuntimeError),
            (superparams.StoreLockedError, RuntimeError),
            (superparams.StoreWriteError, OSError),
            (superparams.UsageError, ValueError),
            (superparams.EngineError, ConnectionError),
        ],
    )
    def test_errors_are_also_builtins(self, error: type[Exception], builtin: type[Exception]):
        """Each error is a SuperparamsError and the builtin it resembles."""
        assert issubclass(error, SuperparamsError)
        assert issubclass(error, builtin)

    def test_usage_errors_exit_with_2(self):
        """A command-line usage error carries exit code 2; an error of the space, 1."""
        assert superparams.UsageError.exit_code == 2
        assert SearchSpaceError.exit_code == 1
