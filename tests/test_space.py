"""The search space: dimensions, product order, lazy indexing, union, validity, sampling."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.strategies import Spec, specs

from superparams import (
    Experiment,
    ExperimentError,
    SearchSpaceError,
    choice,
    loguniform,
    randint,
    search,
    seeds,
    uniform,
    value,
)


class Hyperparams(Experiment):
    steps: int = 100
    batch_size: int = search(16, 32)
    lr: float = search(0.1, 0.01, 0.001)


class Inner(Experiment):
    k: int = search(1, 2)
    mode: str = "fast"


class Outer(Experiment):
    inner: Inner = Inner()
    w: int = search(0, 1)


class Even(Experiment):
    a: int = search(1, 2, 3, 4)
    b: int = search(1, 2, 3)

    def is_valid(self) -> bool:
        return (self.a + self.b) % 2 == 0


class Drawn(Experiment):
    lr: float = loguniform(1e-4, 1e-1)
    dropout: float = uniform(0.0, 0.5)
    layers: int = randint(1, 3)
    act: str = choice("relu", "tanh")


def _huge_class(fields: int, points: int) -> Any:
    namespace: dict[str, Any] = {"__annotations__": {f"f{k}": int for k in range(fields)}}
    namespace.update({f"f{k}": search(*range(points)) for k in range(fields)})
    return type("Huge", (Experiment,), namespace)


def _values(space: Any, *names: str) -> list[tuple[Any, ...]]:
    return [tuple(getattr(s, n) for n in names) for s in space]


class TestSearch:
    def test_no_points_is_an_error(self):
        """search() with nothing to search over raises a SearchSpaceError."""
        with pytest.raises(SearchSpaceError, match=r"at least one value"):
            search()

    def test_search_space_error_is_a_value_error(self):
        """A SearchSpaceError can be caught as the builtin ValueError it resembles."""
        with pytest.raises(ValueError, match=r"search\(\)"):
            search()

    def test_one_point_is_a_constant(self):
        """search(x) with a single point makes a field that always holds x."""

        class Tagged(Experiment):
            tags: list[int] = search([1, 2, 3])

        space = Tagged()
        assert len(space) == 1
        assert space.tags == [1, 2, 3]
        assert space[0].tags == [1, 2, 3]

    def test_a_value_given_twice_is_refused(self):
        """search(0.1, 0.1) would be one setting counted twice; 1 and 1.0 in a float field
        are one value; a nested candidate that repeats a setting of another is the same."""
        with pytest.raises(ExperimentError, match=r"Hyperparams\.lr: search\(\) holds 0\.1 twice"):
            Hyperparams(lr=search(0.1, 0.1))
        with pytest.raises(ExperimentError, match=r"holds 1\.0 twice"):
            Hyperparams(lr=search(1, 1.0))
        with pytest.raises(ExperimentError, match=r"holds Inner\(k=1, mode='fast'\) twice"):
            Outer(inner=search(Inner(k=1), Inner()))
        assert len(Hyperparams(lr=search(0.1, 0.2))) == 4

    def test_a_choice_says_it_is_one_with_its_weights(self):
        """repr() of choice() names choice and its weights, as written."""
        assert repr(choice("sgd", "adam", weights=[0.2, 0.8])) == (
            "choice('sgd', 'adam', weights=[0.2, 0.8])"
        )
        assert repr(search(1, 2)) == "search(1, 2)"

    def test_value_is_a_constant(self):
        """value(x) declares a constant field holding x."""

        class Layers(Experiment):
            layers: list[int] = value([4, 4])

        assert Layers().layers == [4, 4]
        assert len(Layers()) == 1


class TestProduct:
    @given(specs())
    def test_len_is_the_product_of_sizes(self, spec: Spec):
        """A space holds as many settings as the product of its fields' sizes."""
        assert len(spec.space()) == math.prod(len(p) for p in spec.points)

    @given(specs())
    def test_order_is_itertools_product(self, spec: Spec):
        """Iteration lists the combinations in itertools.product order over the fields."""
        assert _values(spec.space(), *spec.names) == spec.product()

    @given(specs(), st.data())
    def test_indexing_agrees_with_iteration(self, spec: Spec, data: st.DataObject):
        """space[i] is the i-th setting iteration yields, negative indices included."""
        space = spec.space()
        listed = list(space)
        i = data.draw(st.integers(-len(listed), len(listed) - 1))
        assert space[i] == listed[i]

    def test_first_field_varies_slowest(self):
        """The first declared field changes least often, the last most often."""
        assert _values(Hyperparams(), "batch_size", "lr") == [
            (16, 0.1),
            (16, 0.01),
            (16, 0.001),
            (32, 0.1),
            (32, 0.01),
            (32, 0.001),
        ]

    def test_settings_are_instances_holding_plain_values(self):
        """Each setting is an instance of the experiment class with no search left in it."""
        for setting in Hyperparams():
            assert type(setting) is Hyperparams
            assert type(setting.batch_size) is int
            assert type(setting.lr) is float
            assert setting.steps == 100

    @pytest.mark.parametrize("i", [6, -7, 100])
    def test_index_out_of_range(self, i: int):
        """An index past either end raises IndexError, naming the space's size."""
        with pytest.raises(IndexError, match=r"out of range for a space of 6 settings"):
            Hyperparams()[i]

    def test_slices_are_lists_of_settings(self):
        """A slice of a space is the list of the settings it selects."""
        space = Hyperparams()
        assert space[1:5:2] == list(space)[1:5:2]
        assert space[::-1] == list(space)[::-1]

    def test_overriding_a_field_with_a_search(self):
        """An instance made with search(...) for a field searches over those values."""
        space = Hyperparams(batch_size=search(2, 4, 8), lr=0.1)
        assert _values(space, "batch_size") == [(2,), (4,), (8,)]

    def test_overriding_a_field_with_a_value(self):
        """An instance made with a plain value for a searched field holds just that value."""
        space = Hyperparams(batch_size=64)
        assert len(space) == 3
        assert {s.batch_size for s in space} == {64}


class TestLaziness:
    def test_a_huge_space_is_never_materialised(self):
        """len, indexing and sampling of a 10^18-setting space need no pass over it."""
        space = _huge_class(fields=6, points=1000)()
        assert len(space) == 10**18
        assert space[0].f0 == 0
        assert space[-1].f5 == 999
        setting = space[123_456_789_012_345]
        assert [setting.f0, setting.f1, setting.f2, setting.f3, setting.f4, setting.f5] == [
            0,
            123,
            456,
            789,
            12,
            345,
        ]
        assert len(space.sample(3, seed=0)) == 3

    def test_a_setting_asked_for_is_the_only_one_made(self):
        """On a 10^6-setting space, len makes no setting, and space[0] or space[i] makes
        just the one asked for (how fast: benchmarks/bench_space.py)."""
        made: list[tuple[int, int, int]] = []

        def note(setting: Any) -> None:
            made.append((setting.f0, setting.f1, setting.f2))

        Huge = type("Huge", (_huge_class(fields=3, points=100),), {"__post_init__": note})
        space = Huge()
        assert len(space) == 10**6
        assert made == []
        space[0]
        assert made == [(0, 0, 0)]
        space[654_321]
        assert made == [(0, 0, 0), (65, 43, 21)]


class TestLinked:
    def test_linked_fields_vary_together(self):
        """Fields searched with the same link take their i-th values together."""

        class Model(Experiment):
            width: int = search(64, 128, link="size")
            seed: int = search(0, 1)
            depth: int = search(2, 4, link="size")

        assert _values(Model(), "width", "depth", "seed") == [
            (64, 2, 0),
            (64, 2, 1),
            (128, 4, 0),
            (128, 4, 1),
        ]

    def test_unequal_lengths_name_the_sizes(self):
        """Linked fields listing different numbers of values raise, naming each size."""

        class Model(Experiment):
            width: int = search(64, 128, link="size")
            depth: int = search(2, 4, 8, link="size")

        with pytest.raises(SearchSpaceError, match=r"'size'.*width has 2, depth has 3"):
            len(Model())

    def test_a_linked_nested_space_counts_its_settings(self):
        """A linked search over nested spaces pairs each of their settings with one value."""

        class Sweep(Experiment):
            inner: Inner = search(Inner(), Inner(k=5), link="run")
            seed: int = search(10, 20, 30, link="run")

        assert [(s.inner.k, s.seed) for s in Sweep()] == [(1, 10), (2, 20), (5, 30)]


class Schedule(Experiment):
    warmup: int = search(10, 20, 30, link="schedule")
    decay: float = search(0.1, 0.2, 0.3, link="schedule")
    seed: int = search(0, 1)


class TestLinkedOverrides:
    def test_a_search_override_keeps_the_link(self):
        """Train(warmup=search(...)) of the same length replaces warmup's values in place."""
        space = Schedule(warmup=search(1, 2, 3))
        assert len(space) == 6
        assert _values(space, "warmup", "decay", "seed")[::2] == [
            (1, 0.1, 0),
            (2, 0.2, 0),
            (3, 0.3, 0),
        ]

    def test_a_search_of_another_length_is_the_link_error(self):
        """A search override of another length is the error for linked fields of unequal size."""
        message = r"linked by 'schedule' vary together, .*: warmup has 2, decay has 3"
        with pytest.raises(SearchSpaceError, match=message):
            len(Schedule(warmup=search(10, 20)))

    def test_a_pinned_value_selects_its_partners_value(self):
        """Train(warmup=20) pins decay to the value that goes with 20."""
        space = Schedule(warmup=20)
        assert _values(space, "warmup", "decay", "seed") == [(20, 0.2, 0), (20, 0.2, 1)]
        assert Schedule(warmup=20, seed=1) == Schedule()[3]

    def test_a_search_of_one_value_is_a_pinned_value(self):
        """Train(warmup=search(20)) and Train(warmup=value(20)) pin as Train(warmup=20) does."""
        for pinned in (search(20), value(20)):
            assert _values(Schedule(warmup=pinned), "decay") == [(0.2,), (0.2,)]

    def test_a_pinned_value_of_another_type_still_matches(self):
        """decay=0.2 in a float field and warmup=np.int64(30) find their positions too."""
        assert {s.warmup for s in Schedule(decay=0.2)} == {20}
        assert {s.decay for s in Schedule(warmup=np.int64(30))} == {0.3}

    def test_a_pinned_value_not_searched_names_the_link(self):
        """A pinned value that is none of the searched values is an error naming the link."""
        with pytest.raises(SearchSpaceError) as error:
            Schedule(warmup=15)
        assert str(error.value) == (
            "Schedule.warmup is linked by 'schedule' to decay, so it takes one of its "
            "searched values 10, 20, 30, not 15; pin decay too, or override warmup "
            "with search(...)"
        )

    def test_every_linked_field_pinned_is_a_setting(self):
        """Pinning every field of a group leaves nothing to follow: any values are taken."""
        assert _values(Schedule(warmup=15, decay=0.5, seed=0), "warmup", "decay") == [(15, 0.5)]

    def test_a_repeated_value_keeps_each_partner(self):
        """A pinned value searched twice keeps both of its partners, still linked."""

        class Repeated(Experiment):
            a: int = search(1, 1, 2, link="g")
            b: str = search("x", "y", "z", link="g")
            c: int = search(5, 6, 7, link="g")

        assert _values(Repeated(a=1), "a", "b", "c") == [(1, "x", 5), (1, "y", 6)]


class TestNested:
    def test_a_nested_space_expands_into_the_product(self):
        """A field holding an Experiment space contributes each of its settings."""
        assert len(Outer()) == 4
        assert [(s.inner.k, s.w) for s in Outer()] == [(1, 0), (1, 1), (2, 0), (2, 1)]
        assert all(type(s.inner) is Inner for s in Outer())

    def test_a_search_over_experiments_concatenates_them(self):
        """search(ExpA(), ExpB(...)) ranges over the settings of each, one after the other."""
        space = Outer(inner=search(Inner(), Inner(k=5, mode="slow")), w=0)
        assert [(s.inner.k, s.inner.mode) for s in space] == [
            (1, "fast"),
            (2, "fast"),
            (5, "slow"),
        ]

    def test_a_nested_setting_is_a_constant(self):
        """A field holding one nested setting adds no dimension, and run() sees it."""

        class Wrapper(Experiment):
            inner: Inner = Inner(k=3)

            def run(self) -> dict[str, int]:
                return {"k": self.inner.k}

        assert len(Wrapper()) == 1
        assert Wrapper().run() == {"k": 3}
        assert Wrapper().inner is not Wrapper().inner


class TestUnion:
    @given(specs(), st.data())
    def test_union_holds_both_spaces_in_order(self, spec: Spec, data: st.DataObject):
        """a | b has len(a) + len(b) settings: those of a, then those of b."""
        cls = spec.experiment_class()
        name = data.draw(st.sampled_from(spec.names))
        k = spec.names.index(name)
        first = data.draw(st.sampled_from(spec.points[k]))
        a, b = cls(**{name: first}), cls()
        union = a | b
        assert len(union) == len(a) + len(b)
        assert list(union) == list(a) + list(b)

    def test_union_of_different_classes_is_an_error(self):
        """Spaces of two different experiment classes cannot be joined."""
        with pytest.raises(SearchSpaceError, match=r"different experiments \(Hyperparams, Inner\)"):
            Hyperparams() | Inner()

    def test_unions_chain(self):
        """a | b | c holds the three spaces' settings, indexable like any space."""
        union = Hyperparams(batch_size=1) | Hyperparams(batch_size=2) | Hyperparams(batch_size=3)
        assert len(union) == 9
        assert [s.batch_size for s in union] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
        assert union[-1].batch_size == 3
        assert union[4] == list(union)[4]


class TestValidity:
    def test_invalid_settings_are_skipped(self):
        """Settings for which is_valid() is False are not in the space."""
        assert _values(Even(), "a", "b") == [(1, 1), (1, 3), (2, 2), (3, 1), (3, 3), (4, 2)]

    def test_len_and_indexing_count_valid_settings_only(self):
        """len and space[i] (negative too) are those of the valid settings."""
        space = Even()
        assert len(space) == 6
        assert [space[i] for i in range(-6, 6)] == list(space) * 2
        with pytest.raises(IndexError):
            space[6]

    def test_samples_are_valid(self):
        """Sampling draws only from the valid settings."""
        assert all(s.is_valid() for s in Even().sample(6, seed=3))
        with pytest.raises(SearchSpaceError, match=r"at most 6"):
            Even().sample(7)

    def test_sampling_gives_up_on_a_space_with_no_valid_setting(self):
        """Drawing from a space whose every setting is invalid raises instead of looping."""

        class Never(Experiment):
            x: float = uniform(0.0, 1.0)

            def is_valid(self) -> bool:
                return False

        with pytest.raises(SearchSpaceError, match=r"none was valid"):
            Never().sample(1, seed=0)[0]


class TestSample:
    @given(specs(), st.integers(0, 2**32), st.data())
    def test_same_seed_same_sample(self, spec: Spec, seed: int, data: st.DataObject):
        """Two samples with one seed hold the same settings, in the same order."""
        cls = spec.experiment_class()
        n = data.draw(st.integers(0, spec.size()))
        assert list(cls().sample(n, seed=seed)) == list(cls().sample(n, seed=seed))

    @given(specs(), st.integers(0, 2**32), st.data())
    def test_a_larger_sample_extends_a_smaller_one(
        self, spec: Spec, seed: int, data: st.DataObject
    ):
        """The first n settings of a sample of m >= n are the sample of n, same seed."""
        space = spec.space()
        m = data.draw(st.integers(0, len(space)))
        n = data.draw(st.integers(0, m))
        assert list(space.sample(m, seed=seed))[:n] == list(space.sample(n, seed=seed))

    @given(specs(), st.integers(0, 2**32))
    def test_a_finite_space_is_sampled_without_replacement(self, spec: Spec, seed: int):
        """Sampling all of a finite space draws each setting exactly once."""
        space = spec.space()
        drawn = [s.id for s in space.sample(len(space), seed=seed)]
        assert sorted(drawn) == sorted(s.id for s in space)

    def test_more_than_the_space_is_an_error(self):
        """Asking for more settings than a finite space holds raises, saying how many it has."""
        with pytest.raises(SearchSpaceError, match=r"cannot sample 7 .* space of 6"):
            Hyperparams().sample(7)

    def test_negative_n_is_an_error(self):
        """A sample of fewer than zero settings is refused."""
        with pytest.raises(SearchSpaceError, match=r"n >= 0"):
            Hyperparams().sample(-1)

    def test_different_seeds_differ(self):
        """Two seeds give two different samples of a large space."""
        space = _huge_class(fields=3, points=100)()
        assert list(space.sample(5, seed=1)) != list(space.sample(5, seed=2))

    def test_a_sample_is_a_space(self):
        """A sample can be indexed, sampled again and joined like any space of its class."""
        sample = Hyperparams().sample(4, seed=0)
        assert sample[-1] == list(sample)[-1]
        assert len(sample.sample(2, seed=1)) == 2
        assert len(sample | Hyperparams()) == 10
        assert "4 settings sampled (seed 0)" in str(sample)

    @settings(max_examples=25)
    @given(specs(max_fields=3))
    def test_sample_ids_are_those_of_the_space(self, spec: Spec):
        """Every sampled setting is a setting of the space, with the same id."""
        space = spec.space()
        ids = {s.id for s in space}
        assert {s.id for s in space.sample(len(space) // 2, seed=0)} <= ids


class Seeded(Experiment):
    lr: float = loguniform(1e-4, 1e-1)
    width: int = search(16, 32, 64)
    seed: int = seeds(3)


class SeededGrid(Experiment):
    width: int = search(16, 32, 64, 128)
    depth: int = search(1, 2)
    seed: int = seeds(2, start=5)


class TestSampleOverSeeds:
    """Sampling a space that declares seeds draws configurations, each on every seed."""

    def test_six_configurations_on_three_seeds_are_eighteen_settings(self):
        """sample(6) over seeds(3) runs 6 configurations, each on seeds 0, 1 and 2."""
        sample = list(Seeded().sample(6, seed=0))
        assert len(sample) == 18
        configurations = [(s.lr, s.width) for s in sample]
        assert len(set(configurations)) == 6
        for k in range(6):  # a configuration's seeds stand side by side
            block = sample[3 * k : 3 * k + 3]
            assert [s.seed for s in block] == [0, 1, 2]
            assert len({(s.lr, s.width) for s in block}) == 1

    def test_a_finite_space_gives_distinct_configurations(self):
        """All 8 configurations of a seeded grid, sampled, are its 16 settings once each."""
        space = SeededGrid()
        drawn = [s.id for s in space.sample(8, seed=3)]
        assert sorted(drawn) == sorted(s.id for s in space)
        assert [s.seed for s in space.sample(1, seed=3)] == [5, 6]

    @given(st.integers(0, 6), st.integers(0, 6), st.integers(0, 2**32))
    def test_a_larger_sample_keeps_the_configurations_drawn_before(self, m, n, seed):
        """Growing n adds configurations after the ones drawn before, in both kinds of space."""
        small, large = sorted((m, n))
        for space in (Seeded(), SeededGrid()):
            before = [s.id for s in space.sample(small, seed=seed)]
            assert [s.id for s in space.sample(large, seed=seed)][: len(before)] == before

    def test_labels_name_the_seed(self):
        """Each setting's label names its seed beside what varies, as in the whole grid."""
        labels = [s.label for s in SeededGrid().sample(1, seed=0)]
        assert labels[0].endswith(",seed=5")
        assert labels[1].endswith(",seed=6")
        whole = {s.id: s.label for s in SeededGrid()}
        assert [whole[s.id] for s in SeededGrid().sample(1, seed=0)] == labels

    def test_a_pinned_seed_samples_settings_as_before(self):
        """With the seed pinned there is no replicate: n settings, as in any space."""
        assert len(Seeded(seed=4).sample(5)) == 5

    def test_a_union_samples_configurations_of_its_parts(self):
        """A union whose parts declare the same seeds runs each configuration on all of them."""
        space = SeededGrid(depth=1) | SeededGrid(depth=2, width=search(256, 512))
        assert [s.seed for s in space.sample(2, seed=0)] == [5, 6, 5, 6]

    def test_parts_with_different_seeds_are_refused(self):
        """A union whose parts declare different seeds cannot be sampled by configuration."""
        space = SeededGrid(depth=1) | SeededGrid(depth=2, seed=seeds(3))
        with pytest.raises(SearchSpaceError, match="parts declare different seeds"):
            space.sample(2)

    def test_more_configurations_than_the_space_is_an_error(self):
        """The error counts configurations, not settings."""
        with pytest.raises(
            SearchSpaceError, match=r"cannot sample 9 distinct configurations from a space of 8"
        ):
            SeededGrid().sample(9)

    def test_the_overview_says_how_it_samples(self):
        """print() of the sample says it holds configurations, each on every seed."""
        assert "6 configurations sampled (seed 0), each on 3 seeds" in str(Seeded().sample(6))


class TestDistributions:
    def test_a_space_with_distributions_has_no_len(self):
        """len() of a space that draws raises, telling to use sample()."""
        with pytest.raises(SearchSpaceError, match=r"no length.*sample\(n, seed=\.\.\.\)"):
            len(Drawn())
        with pytest.raises(SearchSpaceError, match=r"sample\(n, seed=\.\.\.\)"):
            list(Drawn())

    def test_draws_stay_in_their_ranges(self):
        """uniform, loguniform, randint and choice draw only values they allow."""
        for s in Drawn().sample(300, seed=0):
            assert 1e-4 <= s.lr <= 1e-1
            assert 0.0 <= s.dropout <= 0.5
            assert s.layers in {1, 2, 3}
            assert s.act in {"relu", "tanh"}

    def test_randint_includes_both_ends(self):
        """randint(low, high) draws low and high themselves."""

        class Layers(Experiment):
            n: int = randint(1, 3)

        assert {s.n for s in Layers().sample(200, seed=0)} == {1, 2, 3}

    def test_loguniform_is_uniform_in_the_exponent(self):
        """loguniform(1e-4, 1) puts about a quarter of its draws in each decade."""

        class Rate(Experiment):
            lr: float = loguniform(1e-4, 1.0)

        decades = Counter(math.floor(math.log10(s.lr)) for s in Rate().sample(4000, seed=0))
        assert set(decades) == {-4, -3, -2, -1}
        assert all(800 < count < 1200 for count in decades.values())

    def test_choice_weights_are_followed(self):
        """choice(..., weights=) draws each value about as often as its weight says."""

        class Act(Experiment):
            act: str = choice("relu", "tanh", weights=[0.9, 0.1])
            dropout: float = uniform(0.0, 0.5)

        counts = Counter(s.act for s in Act().sample(2000, seed=0))
        assert 1700 < counts["relu"] < 1900

    def test_samples_are_reproducible(self):
        """One seed draws the same values; a larger sample extends a smaller one."""
        small = [(s.lr, s.layers, s.act) for s in Drawn().sample(5, seed=7)]
        large = [(s.lr, s.layers, s.act) for s in Drawn().sample(50, seed=7)]
        assert small == large[:5]
        assert small != [(s.lr, s.layers, s.act) for s in Drawn().sample(5, seed=8)]

    def test_drawn_values_take_their_field_types(self):
        """A randint in a float field still gives floats."""

        class Mixed(Experiment):
            x: float = randint(1, 3)

        assert {type(s.x) for s in Mixed().sample(10, seed=0)} == {float}

    @pytest.mark.parametrize(
        ("make", "message"),
        [
            (lambda: uniform(1.0, 1.0), r"uniform\(1.0, 1.0\) needs low < high"),
            (lambda: loguniform(0.0, 1.0), r"needs low > 0"),
            (lambda: randint(3, 1), r"randint\(3, 1\) needs low <= high"),
            (lambda: choice(1, 2, weights=[1.0]), r"2 values but 1 weights"),
            (lambda: choice(), r"at least one value"),
        ],
    )
    def test_impossible_ranges_are_errors(self, make: Any, message: str):
        """A distribution that cannot draw anything raises when declared."""
        with pytest.raises(SearchSpaceError, match=message):
            make()
