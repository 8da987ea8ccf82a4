"""A setting's id and label: computed from its values alone, the same in every process."""

from __future__ import annotations

import enum
import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.strategies import Spec, specs, widened

from superparams import Experiment, ExperimentError, IdentityError, derived, search
from superparams._identity import Mismatch, conform, encode


class Hyperparams(Experiment):
    steps: int = 100
    batch_size: int = search(16, 32)
    lr: float = search(0.1, 0.01)


class Reordered(Experiment):
    lr: float = search(0.01, 0.1)
    batch_size: int = search(32, 16)
    steps: int = 100


class Inner(Experiment):
    k: int = search(1, 2)


class Outer(Experiment):
    inner: Inner = Inner()
    w: int = search(0, 1)


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def _ids_by_values(space: Any, names: tuple[str, ...]) -> dict[tuple[Any, ...], str]:
    return {tuple(getattr(s, n) for n in names): s.id for s in space}


class TestIdFormat:
    def test_an_id_is_16_hex_digits(self):
        """setting.id is a string of 16 lowercase hexadecimal digits."""
        for setting in Hyperparams():
            assert re.fullmatch(r"[0-9a-f]{16}", setting.id)

    def test_a_space_has_no_single_id(self):
        """Asking a space of several settings for its id raises, saying to take one setting."""
        with pytest.raises(ExperimentError, match=r"space of 4 settings.*space\[0\]"):
            _ = Hyperparams().id


class TestSameValuesSameId:
    def test_the_grid_position_does_not_matter(self):
        """A value combination has one id wherever it stands in the grid."""
        names = ("steps", "batch_size", "lr")
        assert _ids_by_values(Hyperparams(), names) == _ids_by_values(Reordered(), names)

    def test_a_setting_made_by_hand_has_the_id_of_the_same_setting_in_a_space(self):
        """Hyperparams(batch_size=32, lr=0.01) is the setting the grid lists with those values."""
        assert Hyperparams(batch_size=32, lr=0.01).id == Hyperparams()[3].id

    @given(specs(), st.data())
    def test_order_of_fields_does_not_matter(self, spec: Spec, data: st.DataObject):
        """Declaring the same fields in another order keeps every setting's id."""
        order = tuple(data.draw(st.permutations(range(len(spec.names)))))
        shuffled = spec.experiment_class(order=order)()
        assert _ids_by_values(spec.space(), spec.names) == _ids_by_values(shuffled, spec.names)

    @given(specs(), st.data())
    def test_widening_or_reordering_a_search_keeps_ids(self, spec: Spec, data: st.DataObject):
        """A value combination keeps its id when searches gain values or change order."""
        before = _ids_by_values(spec.space(), spec.names)
        after = _ids_by_values(data.draw(widened(spec)).space(), spec.names)
        assert {values: after[values] for values in before} == before

    @given(specs())
    def test_made_by_hand_or_by_the_space(self, spec: Spec):
        """A setting built from its values has the id the space gives it."""
        cls = spec.experiment_class()
        for setting in cls():
            by_hand = cls(**{n: getattr(setting, n) for n in spec.names})
            assert by_hand.id == setting.id

    @pytest.mark.parametrize("lr", [1, 1.0, np.float64(1), np.int64(1), np.array(1.0)])
    def test_a_float_field_holds_floats(self, lr: Any):
        """1, 1.0 and numpy's 1 in a float field are one setting, holding the float 1.0."""

        class Train(Experiment):
            lr: float = 0.5

        setting = Train(lr=lr)
        assert type(setting.lr) is float
        assert setting.lr == 1.0
        assert setting.id == Train(lr=1.0).id
        assert [type(s.lr) for s in Train(lr=search(lr, 2))] == [float, float]
        assert Train(lr=search(lr, 2))[0].id == setting.id

    def test_numpy_scalars_are_python_scalars(self):
        """A numpy integer in an int field is stored and hashed as the Python int."""

        class Count(Experiment):
            n: int = 0

        assert type(Count(n=np.int32(3)).n) is int
        assert Count(n=np.int32(3)).id == Count(n=3).id

    def test_a_str_in_a_path_field_is_a_path(self):
        """A string given for a Path field becomes a Path, with the id of that Path."""

        class Data(Experiment):
            root: Path = Path("data")

        assert Data(root="data/x").root == Path("data/x")  # type: ignore[arg-type]
        assert Data(root="data/x").id == Data(root=Path("data/x")).id  # type: ignore[arg-type]

    def test_an_enum_field_accepts_its_values(self):
        """An Enum member and its value in an Enum field are one setting."""

        class Paint(Experiment):
            color: Color = Color.RED

        assert Paint(color="blue").color is Color.BLUE  # type: ignore[arg-type]
        assert Paint(color="blue").id == Paint(color=Color.BLUE).id  # type: ignore[arg-type]
        assert Paint(color="blue").id != Paint().id  # type: ignore[arg-type]

    def test_derived_fields_are_not_part_of_the_id(self):
        """A derived field follows from the others, so it leaves the id unchanged."""

        class Plain(Experiment):
            width: int = search(2, 3)

        class WithArea(Experiment):
            width: int = search(2, 3)
            area: int = derived(lambda s: s.width**2)

        assert [s.id for s in Plain()] == [s.id for s in WithArea()]

    def test_dict_and_set_order_do_not_matter(self):
        """Dicts and sets with the same items have one id, whatever their order."""

        class Config(Experiment):
            table: dict[str, int] = {}  # noqa: RUF012  # mutable defaults are allowed
            tags: set[str] = set()  # noqa: RUF012  # mutable defaults are allowed

        first = Config(table={"a": 1, "b": 2}, tags={"x", "y", "z"})
        second = Config(table={"b": 2, "a": 1}, tags={"z", "y", "x"})
        assert first.id == second.id

    def test_ids_are_the_same_in_another_process(self, tmp_path: Path):
        """A setting has the same id in a fresh interpreter, whatever its hash seed."""
        (tmp_path / "exp_for_ids.py").write_text(
            textwrap.dedent(
                """
                import numpy as np
                from superparams import Experiment, search

                class Inner(Experiment):
                    k: int = search(1, 2)

                class Exp(Experiment):
                    name: str = search("a", "b")
                    lr: float = search(1, 0.5)
                    tags: set = search({"x", "y", "z", "w"}, {"q"})
                    table: dict = {"b": 2, "a": 1}
                    inner: Inner = Inner()
                    weights: object = np.arange(6, dtype=np.float32).reshape(2, 3)

                def ids():
                    return [s.id for s in Exp()]
                """
            )
        )
        script = "import json, exp_for_ids; print(json.dumps(exp_for_ids.ids()))"
        runs = []
        for hash_seed in ("0", "1", "12345"):
            env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(tmp_path)}
            out = subprocess.run(
                [sys.executable, "-c", script],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            runs.append(json.loads(out))
        assert runs[0] == runs[1] == runs[2]
        assert len(runs[0]) == len(set(runs[0])) == 16


class TestDifferentValuesDifferentIds:
    @given(specs())
    def test_ids_are_unique_within_a_space(self, spec: Spec):
        """Every setting of a space of distinct values has its own id."""
        ids = [s.id for s in spec.space()]
        assert len(set(ids)) == len(ids)

    @pytest.mark.parametrize("other", ["1", True, 1.5, None, [1], (2,)])
    def test_values_of_other_kinds_differ(self, other: Any):
        """1 and a value of another kind (a str, a bool, a list) are two settings."""

        class Loose(Experiment):
            x: Any = 1

        assert Loose(x=other).id != Loose().id

    def test_adding_a_field_changes_every_id(self):
        """A new field is a new setting for every combination (the store carries results)."""

        class Longer(Experiment):
            steps: int = 100
            batch_size: int = search(16, 32)
            lr: float = search(0.1, 0.01)
            seed: int = 0

        assert not {s.id for s in Longer()} & {s.id for s in Hyperparams()}

    def test_renaming_a_field_changes_every_id(self):
        """The id hashes field names with the values, so a renamed field is a new setting."""

        class Renamed(Experiment):
            steps: int = 100
            batch: int = search(16, 32)
            lr: float = search(0.1, 0.01)

        assert not {s.id for s in Renamed()} & {s.id for s in Hyperparams()}

    def test_nested_experiments_are_told_apart_by_their_values(self):
        """Settings whose nested experiment differs in one value have different ids."""
        ids = [s.id for s in Outer()]
        assert len(set(ids)) == 4
        assert Outer(inner=Inner(k=2), w=1).id == Outer()[3].id


class TestEncodings:
    def test_arrays_are_hashed_by_content(self):
        """Equal numpy arrays encode alike; another value, dtype or shape does not."""
        a = np.arange(6, dtype=np.int64)
        assert encode(a) == encode(a.copy())
        assert encode(a) != encode(a + 1)
        assert encode(a) != encode(a.astype(np.int32))
        assert encode(a) != encode(a.reshape(2, 3))
        assert encode(a.reshape(2, 3).T) == encode(np.ascontiguousarray(a.reshape(2, 3).T))

    def test_array_fields_have_ids(self):
        """An array-valued field gives the setting an id from the array's content."""

        class Weighted(Experiment):
            weights: Any = search(np.zeros(3), np.ones(3))

        first, second = Weighted()
        assert first.id != second.id
        assert Weighted(weights=np.zeros(3)).id == first.id

    @pytest.mark.parametrize(("value", "kind"), [(lambda x: x, "function"), (object(), "object")])
    def test_values_without_a_stable_encoding_raise(self, value: Any, kind: str):
        """A lambda or an arbitrary object has no id; the error names the field and a remedy."""

        class Odd(Experiment):
            thing: Any = None

        with pytest.raises(IdentityError, match=rf"thing holds a {kind} .*__superparams_id__"):
            _ = Odd(thing=value).id

    def test_importable_functions_are_encoded_by_name(self):
        """A module-level function is a parameter, encoded by its qualified name."""
        assert encode(textwrap.dedent) == '{"$ref":"textwrap.dedent"}'

    def test_the_custom_id_protocol(self):
        """An object with __superparams_id__ is encoded by the text it returns."""

        class Model:
            def __init__(self, name: str) -> None:
                self.name = name

            def __superparams_id__(self) -> str:
                return self.name

        class Fit(Experiment):
            model: Any = None

        assert Fit(model=Model("a")).id == Fit(model=Model("a")).id
        assert Fit(model=Model("a")).id != Fit(model=Model("b")).id

    def test_non_finite_floats_are_encoded(self):
        """inf and nan have an encoding even though JSON has none."""
        assert encode(float("inf")) == '{"$float":"inf"}'
        assert encode(float("nan")) == '{"$float":"nan"}'

    def test_paths_encode_with_forward_slashes(self):
        """A path is encoded the same way on every platform."""
        assert encode(PurePosixPath("a/b")) == '{"$path":"a/b"}'


class TestGoldenIds:
    """Literal ids: a change here means every stored result would be run again."""

    def test_plain_values(self):
        """The ids of a plain experiment's settings are pinned."""

        class Golden(Experiment):
            steps: int = 100
            batch_size: int = search(16, 32)
            lr: float = 0.001
            name: str = "adam"
            layers: list[int] = [64, 64]  # noqa: RUF012  # mutable defaults are allowed
            extra: dict[str, Any] = {"b": None, "a": True}  # noqa: RUF012  # as above

        assert [s.id for s in Golden()] == ["c03b14df5f323e00", "2d59f7161899f48e"]

    def test_nested_arrays_and_paths(self):
        """The ids of settings with a nested experiment, an array and a path are pinned."""
        inner = type(
            "Inner",
            (Experiment,),
            {"__module__": "golden", "__annotations__": {"k": int}, "k": search(1, 2)},
        )
        outer = type(
            "Outer",
            (Experiment,),
            {
                "__module__": "golden",
                "__annotations__": {"inner": inner, "weights": Any, "root": Path},
                "inner": inner(),
                "weights": np.arange(4, dtype=np.float64),
                "root": Path("data/x"),
            },
        )
        assert [s.id for s in outer()] == ["4199b66badcc5bed", "0a44551f51b866f2"]

    def test_encodings(self):
        """The canonical text of a few values is pinned."""
        assert encode(np.arange(3, dtype=np.int64)) == (
            '{"$ndarray":["<i8",[3],"f27cc2aa51e865317fb6f0c094f81c5d"]}'
        )
        assert (
            encode({"b": 1, "a": [1.5, None]}) == '{"$dict":[["\\"a\\"",[1.5,null]],["\\"b\\"",1]]}'
        )
        assert encode({3, 1, 2}) == '{"$set":["1","2","3"]}'

    def test_the_id_is_the_digest_of_the_sorted_field_encodings(self):
        """An id is blake2b (8 bytes) of the JSON object of field encodings, names sorted."""

        class Small(Experiment):
            steps: int = 100
            lr: float = 0.5

        text = '{"lr":0.5,"steps":100}'
        assert Small().id == hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


class TestLabel:
    def test_a_label_shows_the_fields_that_vary(self):
        """setting.label names the searched fields and their values, in declaration order."""
        assert [s.label for s in Hyperparams()] == [
            "batch_size=16,lr=0.1",
            "batch_size=16,lr=0.01",
            "batch_size=32,lr=0.1",
            "batch_size=32,lr=0.01",
        ]
        assert Hyperparams(lr=0.1)[1].label == "batch_size=32"

    def test_a_label_of_a_setting_made_by_hand(self):
        """A setting made by hand shows the fields that differ from plain defaults."""
        assert Hyperparams(batch_size=64, lr=0.1).label == "batch_size=64,lr=0.1"
        assert Hyperparams(steps=5, batch_size=64, lr=0.1).label == ("steps=5,batch_size=64,lr=0.1")

    def test_constants_are_not_in_a_label(self):
        """Fields that hold one value (a list default, search(x)) do not vary."""

        class Constant(Experiment):
            layers: list[int] = [1, 2]  # noqa: RUF012  # mutable defaults are allowed
            tags: list[str] = search(["a"])
            lr: float = 1

        assert Constant().label == "defaults"
        assert Constant()[0].label == "defaults"
        assert Constant(lr=2).label == "lr=2.0"

    def test_a_nested_experiment_in_a_label(self):
        """A nested setting shows in the label as its class and its own label."""
        assert Outer()[0].label == "inner=Inner(k=1),w=0"

    def test_a_space_has_no_single_label(self):
        """Asking a space for a label raises, saying to take one setting."""
        with pytest.raises(ExperimentError, match=r"no single label"):
            _ = Hyperparams().label


class TestConform:
    """The one check of a value against its annotation, shared by Python and the command line."""

    @pytest.mark.parametrize(
        ("value", "annotation", "expected"),
        [
            (1, float, 1.0),
            (np.int64(3), int, 3),
            (np.float32(0.5), float, 0.5),
            ("data", Path, Path("data")),
            ("red", Color, Color.RED),
            ([1, 2], list[float], [1.0, 2.0]),
            ((1, "a"), tuple[float, str], (1.0, "a")),
            ({"a": 1}, dict[str, float], {"a": 1.0}),
            (None, int | None, None),
            (3, "int | None", 3),
            ("sgd", Literal["adam", "sgd"], "sgd"),
            (abs, Callable[[int], int], abs),
            ("anything", "NotDefinedAnywhere", "anything"),
        ],
    )
    def test_values_that_fit_are_converted_where_lossless(
        self, value: Any, annotation: Any, expected: Any
    ):
        """Each value comes back as its field's type, equal and of the declared kind."""
        out = conform(value, annotation)
        assert out == expected
        assert type(out) is type(expected)

    def test_a_union_takes_a_value_as_it_is_before_converting_it(self):
        """In `float | int`, 1 stays the int 1: an option that fits as it is comes first."""
        assert type(conform(1, float | int)) is int
        assert type(conform(1, float | str)) is float

    @pytest.mark.parametrize(
        ("value", "annotation", "part"),
        [
            (2.7, int, 2.7),
            (True, int, True),
            (np.float64(2.0), int, np.float64(2.0)),
            (1, bool, 1),
            ("x", int | None, "x"),
            ([1, 2.5], list[int], 2.5),
            ((1, 2), list[int], (1, 2)),
            ((1, 2, 3), tuple[int, int], (1, 2, 3)),
            ("adamw", Literal["adam", "sgd"], "adamw"),
            (2**1100, float, 2**1100),
        ],
    )
    def test_values_that_do_not_fit_are_refused(self, value: Any, annotation: Any, part: Any):
        """A Mismatch holds the whole value and the item of it that does not fit."""
        with pytest.raises(Mismatch) as error:
            conform(value, annotation)
        assert error.value.value is value
        assert error.value.part == part
