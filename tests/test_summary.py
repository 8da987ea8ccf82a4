"""After the run: which columns are which, seeds as a declared axis, mean ± std over them.

Every number a summary gives is checked against a hand computation (or, over random
seeded grids, against a naive one written with ``statistics``).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from superparams import (
    Experiment,
    ExperimentError,
    SearchSpaceError,
    UsageError,
    columns,
    search,
    seeds,
)

BOOKKEEPING = (
    "id",
    "label",
    "status",
    "attempt",
    "cause",
    "error",
    "traceback",
    "started",
    "seconds",
    "worker",
    "log",
    "workdir",
    "stopped",
    "code_version",
    "git_commit",
    "git_dirty",
    "environment",
    "outdated",
)

# acc of each (lr, seed), as a user's run() would measure it; lr=0.01, seed 2 raises.
ACC = {
    (0.1, 0): 0.90,
    (0.1, 1): 0.92,
    (0.1, 2): 0.97,
    (0.01, 0): 0.80,
    (0.01, 1): 0.84,
}


class Seeded(Experiment):
    lr: float = search(0.1, 0.01)
    seed: int = seeds(3)
    steps: int = 10

    def run(self) -> dict:
        if (self.lr, self.seed) not in ACC:
            raise ValueError("diverged")
        acc = ACC[self.lr, self.seed]
        return {"acc": acc, "loss": 1 - acc, "note": f"seed {self.seed}"}


class Curves(Experiment):
    """Per-epoch rows: acc rises with the epoch, then drops at the last one."""

    width: int = search(8, 16)
    seed: int = seeds(2)

    def run(self) -> list[dict]:
        accs = [0.5, 0.7, 0.6] if self.width == 8 else [0.6, 0.9, 0.8]
        return [{"epoch": e, "acc": a + self.seed / 100} for e, a in enumerate(accs, start=1)]


class Plain(Experiment):
    lr: float = search(0.1, 0.01)

    def run(self) -> dict:
        return {"acc": 1 - self.lr}


class Model(Experiment):
    width: int = search(8, 16)


class Nested(Experiment):
    model: Model = Model()
    seed: int = seeds(2)

    def run(self) -> dict:
        return {"acc": self.model.width / 100 + self.seed}


@pytest.fixture(autouse=True)
def progress(tmp_path, monkeypatch):
    """Results go to a fresh folder of this test's own."""
    monkeypatch.setenv("SUPERPARAMS_PROGRESS", str(tmp_path / "progress"))
    return tmp_path / "progress"


def ran(space):
    space.run_all(display=False)
    return space


class TestSeeds:
    def test_seeds_are_a_search_from_zero(self):
        """seeds(5) gives the settings search(0, 1, 2, 3, 4) gives, with the same ids."""

        class A(Experiment):
            seed: int = seeds(5)

        class B(Experiment):
            seed: int = search(0, 1, 2, 3, 4)

        A.__name__ = B.__name__ = "Same"
        assert [s.seed for s in A()] == [0, 1, 2, 3, 4]
        assert [s.id for s in A()] == [s.id for s in B()]
        assert [s.label for s in A()] == [s.label for s in B()]

    def test_start_shifts_the_seeds(self):
        """seeds(3, start=10) is search(10, 11, 12)."""

        class A(Experiment):
            seed: int = seeds(3, start=10)

        assert [s.seed for s in A()] == [10, 11, 12]

    @pytest.mark.parametrize(
        ("call", "message"),
        [
            (lambda: seeds(0), "seeds() needs n >= 1 seeds, got 0"),
            (lambda: seeds(-3), "seeds() needs n >= 1 seeds, got -3"),
            (lambda: seeds(2.5), "seeds() needs a whole number of seeds, got 2.5 (a float)"),
            (lambda: seeds(True), "seeds() needs a whole number of seeds, got True (a bool)"),
            (lambda: seeds("5"), "seeds() needs a whole number of seeds, got '5' (a str)"),
            (lambda: seeds(3, start=0.5), "seeds() needs an int start, got 0.5 (a float)"),
        ],
    )
    def test_bad_input_is_refused(self, call, message):
        """A count below 1, or one that is not an int, is a SearchSpaceError saying so."""
        with pytest.raises(SearchSpaceError) as caught:
            call()
        assert str(caught.value).startswith(message)

    def test_the_overview_shows_seeds(self):
        """print(space) shows the field as the user wrote it: seeds(3), seeds(2, start=7)."""

        class A(Experiment):
            seed: int = seeds(3)
            other: int = seeds(2, start=7)

        text = str(A())
        assert "seeds(3)" in text
        assert "seeds(2, start=7)" in text

    def test_a_float_field_keeps_its_seeds_replicate(self):
        """seeds() in a float field (its ints become floats) is still a replicate."""

        class A(Experiment):
            seed: float = seeds(2)

        assert [s.seed for s in A()] == [0.0, 1.0]
        assert columns(A(), pl.DataFrame()).replicates == ("seed",)

    def test_an_override_keeps_the_declared_replicate(self):
        """Seeded(seed=search(5, 6)) (as --seed 5,6 gives) still summarises over seed."""
        assert columns(Seeded(seed=search(5, 6)), pl.DataFrame()).replicates == ("seed",)
        assert columns(Plain(lr=seeds(2)), pl.DataFrame()).replicates == ("lr",)


class TestColumns:
    def test_each_column_is_named_once(self):
        """columns() splits the results into parameters, replicates, metrics, bookkeeping."""
        space = ran(Seeded())
        found = columns(space)
        assert found.parameters == ("lr", "steps")
        assert found.varied == ("lr",)
        assert found.replicates == ("seed",)
        assert found.metrics == ("acc", "loss", "note")
        assert found.bookkeeping == BOOKKEEPING
        every = (
            *found.parameters,
            *found.replicates,
            *found.metrics,
            *found.bookkeeping,
        )
        assert sorted(every) == sorted(space.results().columns)

    def test_it_is_a_frozen_dataclass(self):
        """The answer is a small frozen dataclass: it cannot be changed by accident."""
        found = columns(Plain(), pl.DataFrame())
        assert dataclasses.is_dataclass(found)
        with pytest.raises(dataclasses.FrozenInstanceError):
            found.metrics = ()  # type: ignore[misc]

    def test_a_nested_experiments_columns_are_parameters(self):
        """A nested experiment's dotted columns (model.width) are parameters that vary."""
        space = ran(Nested(model=Model()))
        found = columns(space)
        assert found.parameters == ("model.width",)
        assert found.varied == ("model.width",)
        assert found.metrics == ("acc",)

    def test_a_returned_dict_beside_a_nested_field_is_a_metric(self):
        """A metric returned as {"model": {"loss": ...}} (model.loss) is no parameter."""

        class Deep(Experiment):
            model: Model = Model()
            untyped: object = Model(width=4)

            def run(self) -> dict:
                return {"model": {"loss": 1 / self.model.width}}

        space = ran(Deep())
        found = columns(space)
        assert found.parameters == ("model.width", "untyped.width")
        assert found.varied == ("model.width",)
        assert found.metrics == ("model.loss",)

    def test_the_fields_of_a_union_vary_across_its_parts(self):
        """A field pinned to another value in each part of a union varies in the union."""
        space = Seeded(lr=0.1, steps=5) | Seeded(lr=0.01, steps=20)
        found = columns(space, pl.DataFrame())
        assert found.varied == ("lr", "steps")

    def test_nothing_stored_has_no_metrics(self):
        """Before any run, parameters are known and there are no metrics."""
        found = columns(Seeded())
        assert found.parameters == ("lr", "steps")
        assert found.metrics == ()

    def test_columns_is_a_function_not_a_name_taken(self):
        """columns is no attribute of a space, so a field may be called columns."""

        class A(Experiment):
            columns: int = 3

        assert A().columns == 3


class TestSummary:
    def test_mean_std_sem_n_by_hand(self):
        """Each setting of the other fields gets the mean, sample std, sem and n over seeds."""
        summary = ran(Seeded()).summary()
        assert summary.columns == [
            "lr",
            "acc_mean",
            "acc_std",
            "acc_sem",
            "acc_n",
            "acc_ci_low",
            "acc_ci_high",
            "loss_mean",
            "loss_std",
            "loss_sem",
            "loss_n",
            "loss_ci_low",
            "loss_ci_high",
            "left_out",
            "outdated",
        ]
        first, second = summary.to_dicts()
        # lr=0.1: 0.90, 0.92, 0.97
        assert first["lr"] == 0.1
        assert first["acc_mean"] == pytest.approx(0.93)
        std = math.sqrt(((0.03) ** 2 + (0.01) ** 2 + (0.04) ** 2) / 2)
        assert first["acc_std"] == pytest.approx(std)
        assert first["acc_sem"] == pytest.approx(std / math.sqrt(3))
        assert first["acc_n"] == 3
        # the 95% t-interval: t(0.975, 2 degrees of freedom) = 4.302653 (the t table)
        half = 4.302652729749464 * std / math.sqrt(3)
        assert first["acc_ci_low"] == pytest.approx(0.93 - half)
        assert first["acc_ci_high"] == pytest.approx(0.93 + half)
        assert first["loss_mean"] == pytest.approx(0.07)
        assert first["left_out"] == 0
        # lr=0.01: 0.80, 0.84, and seed 2 failed: it does not count, and is told
        assert second["lr"] == 0.01
        assert second["acc_mean"] == pytest.approx(0.82)
        assert second["acc_std"] == pytest.approx(math.sqrt(0.02**2 * 2))
        assert second["acc_n"] == 2
        assert second["left_out"] == 1

    def test_over_names_the_fields(self):
        """over='seed' and over=['seed'] are the default; over='lr' averages over lr."""
        space = ran(Seeded())
        assert space.summary(over="seed").equals(space.summary())
        assert space.summary(over=["seed"]).equals(space.summary())
        by_seed = space.summary(over="lr")
        assert by_seed["seed"].to_list() == [0, 1, 2]
        assert by_seed["acc_mean"].to_list() == pytest.approx([0.85, 0.88, 0.97])
        assert by_seed["acc_n"].to_list() == [2, 2, 1]
        assert by_seed["left_out"].to_list() == [0, 0, 1]

    def test_nothing_to_summarise_over_names_the_choices(self):
        """A space with no seeds() field needs over=, and the error lists the fields."""
        space = ran(Plain())
        with pytest.raises(UsageError) as caught:
            space.summary()
        assert str(caught.value) == (
            "Plain declares no replicate field (e.g. seed: int = seeds(5)), so summary() "
            "has nothing to summarise over; name the fields to summarise over: "
            "summary(over='lr'), one of lr; or over=[] for one row per setting"
        )

    def test_an_unknown_field_is_refused(self):
        """over= naming no parameter is a UsageError offering the close one."""
        space = Seeded()
        with pytest.raises(
            UsageError,
            match=r"Seeded has no parameter 'sed' to summarise over "
            r"\(did you mean 'seed'\?\); its parameters are lr, seed, steps",
        ):
            space.summary(over="sed")

    def test_over_nothing_is_one_row_per_setting(self):
        """over=[] summarises each setting alone: n is 1 and std is null."""
        summary = ran(Plain()).summary(over=[])
        assert summary["lr"].to_list() == [0.1, 0.01]
        assert summary["acc_mean"].to_list() == pytest.approx([0.9, 0.99])
        assert summary["acc_n"].to_list() == [1, 1]
        assert summary["acc_std"].to_list() == [None, None]

    def test_last_row_of_each_setting_by_default(self):
        """A setting with one row per epoch counts by its last row."""
        summary = ran(Curves()).summary()
        assert summary["width"].to_list() == [8, 16]
        assert summary["acc_mean"].to_list() == pytest.approx([0.605, 0.805])
        assert summary["epoch_mean"].to_list() == [3.0, 3.0]

    @pytest.mark.parametrize(
        ("rows", "expected"),
        [
            ("first", [0.505, 0.605]),
            ("max", [0.705, 0.905]),
            ("min", [0.505, 0.605]),
            ("mean", [0.605, 0.772]),
        ],
    )
    def test_a_named_reducer_of_rows(self, rows, expected):
        """rows='first'|'max'|'min'|'mean' reduces each setting's rows, metric by metric."""
        summary = ran(Curves()).summary(rows=rows)
        assert summary["acc_mean"].to_list() == pytest.approx(expected, abs=1e-3)

    def test_an_expression_picks_the_rows(self):
        """rows=<polars expression> keeps the rows it is true for, then the last of them."""
        summary = ran(Curves()).summary(rows=pl.col("epoch") == 2)
        assert summary["acc_mean"].to_list() == pytest.approx([0.705, 0.905])

    def test_an_unknown_reducer_is_refused(self):
        """rows= neither a reducer's name nor an expression is a UsageError listing them."""
        with pytest.raises(
            UsageError,
            match=r"rows='lst' is not a way to reduce a setting's "
            r"rows \(did you mean 'last'\?\); give one of 'last', 'first', "
            r"'max', 'min', 'mean', or a polars expression",
        ):
            Curves().summary(rows="lst")

    def test_nothing_stored_is_an_empty_summary(self):
        """Before any run, the summary has its columns and no rows."""
        summary = Seeded().summary()
        assert summary.is_empty()
        assert summary.columns[:1] == ["lr"]

    def test_the_summary_of_a_slice_holds_only_it(self):
        """A pinned space summarises its own settings only."""
        ran(Seeded())
        summary = Seeded(lr=0.01).summary()
        assert summary.height == 1
        assert summary["acc_n"].to_list() == [2]


@st.composite
def seeded_grids(draw):
    """A grid of 1-3 values of a, 1-4 seeds, and a metric value (or a failure) for each."""
    a_values = draw(st.lists(st.integers(0, 50), min_size=1, max_size=3, unique=True))
    n_seeds = draw(st.integers(1, 4))
    cells = {}
    for a in a_values:
        for s in range(n_seeds):
            failed = draw(st.booleans()) and draw(st.booleans())
            value = draw(st.floats(-1e3, 1e3, allow_nan=False))
            cells[a, s] = None if failed else value
    return a_values, n_seeds, cells


class TestSummaryProperties:
    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(grid=seeded_grids())
    @example(grid=([0], 1, {(0, 0): None}))  # every setting failed: no metric at all
    def test_agrees_with_a_naive_computation(self, grid, tmp_path_factory):
        """mean, std, sem and n agree with statistics' over the completed seeds."""
        a_values, n_seeds, cells = grid

        class Random(Experiment):
            a: int = search(*a_values)
            seed: int = seeds(n_seeds)

            def run(self) -> dict:
                value = cells[self.a, self.seed]
                if value is None:
                    raise ValueError("failed")
                return {"m": value}

        folder = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
        Random().run_all(display=False, folder=folder)
        summary = Random().summary(folder=folder)
        # one row per value of a, in the space's order; a is shown only when it varies
        assert ("a" in summary.columns) == (len(a_values) > 1)
        assert summary.height == len(a_values)
        if all(value is None for value in cells.values()):  # no setting ever returned m
            assert not {"m_mean", "m_n"} & set(summary.columns)
            assert summary["left_out"].to_list() == [n_seeds] * len(a_values)
            return
        for a, row in zip(a_values, summary.to_dicts(), strict=True):
            assert row.get("a", a) == a
            done = [cells[a, s] for s in range(n_seeds) if cells[a, s] is not None]
            assert row["m_n"] == len(done)
            assert row["left_out"] == n_seeds - len(done)
            if not done:
                assert row["m_mean"] is None
                continue
            assert row["m_mean"] == pytest.approx(statistics.fmean(done), abs=1e-9)
            if len(done) < 2:
                assert row["m_std"] is None
                continue
            std = statistics.stdev(done)
            assert row["m_std"] == pytest.approx(std, rel=1e-9, abs=1e-9)
            assert row["m_sem"] == pytest.approx(std / math.sqrt(len(done)), rel=1e-9, abs=1e-9)


class TestBest:
    def test_the_winner_on_the_mean(self):
        """best('acc') is the summary's row with the highest mean, as a one-row frame."""
        space = ran(Seeded())
        best = space.best("acc")
        assert best.height == 1
        assert best.columns == [*space.summary().columns, "acc_verdict", "acc_ties"]
        assert best["lr"].to_list() == [0.1]

    def test_min_for_losses(self):
        """best('loss', mode='min') is the lowest mean."""
        assert ran(Seeded()).best("loss", mode="min")["lr"].to_list() == [0.1]

    def test_the_mean_not_one_lucky_seed(self):
        """A setting with one lucky seed loses to one better on average."""

        class Lucky(Experiment):
            name: str = search("lucky", "steady")
            seed: int = seeds(3)

            def run(self) -> dict:
                if self.name == "lucky":
                    return {"acc": [0.99, 0.5, 0.5][self.seed]}
                return {"acc": 0.8}

        space = ran(Lucky())
        assert space.results().sort("acc")["name"].to_list()[-1] == "lucky"
        assert space.best("acc")["name"].to_list() == ["steady"]

    def test_without_seeds_each_setting_is_its_own(self):
        """A space without seeds() picks the best setting itself."""
        assert ran(Plain()).best("acc")["lr"].to_list() == [0.01]

    def test_an_unknown_metric_names_the_metrics(self):
        """best() of a metric that is not one is a UsageError listing the metrics."""
        with pytest.raises(
            UsageError,
            match=r"Seeded has no metric 'ac' to rank by \(did you "
            r"mean 'acc'\?\); its metrics are acc, loss",
        ):
            ran(Seeded()).best("ac")

    def test_a_bad_mode_is_refused(self):
        """mode is 'max' or 'min'; anything else says so."""
        with pytest.raises(UsageError, match=r"mode='high' is not 'max' or 'min'"):
            ran(Seeded()).best("acc", mode="high")  # type: ignore[arg-type]

    def test_nothing_completed_is_no_row(self):
        """Before any run, best() is an empty frame with the summary's columns."""
        assert Seeded().best("acc").is_empty()


class TestReservedNames:
    @pytest.mark.parametrize("name", ["summary", "best"])
    def test_summary_and_best_are_reserved(self, name):
        """A field named summary or best is refused when the class is made."""
        with pytest.raises(ExperimentError, match=rf"Clash\.{name} clashes with"):
            type("Clash", (Experiment,), {"__annotations__": {name: int}, name: 1})


class TestInNotebooks:
    def test_a_space_renders_its_fields_as_a_table(self):
        """A space's _repr_html_ is a table of its fields, their types and values."""
        html = Seeded()._repr_html_()
        assert html.startswith("<div")
        assert "<table" in html
        assert "<caption>Seeded: 6 settings</caption>" in html
        assert "<td>lr</td><td>float</td><td>search(0.1, 0.01)</td><td>2 values</td>" in html
        assert "<td>seed</td><td>int</td><td>seeds(3)</td><td>3 values</td>" in html

    def test_values_are_escaped(self):
        """A value holding markup is shown as text, never as HTML."""

        class Tagged(Experiment):
            tag: str = search("<b>", "a&b")

        html = Tagged()._repr_html_()
        assert "&lt;b&gt;" in html
        assert "a&amp;b" in html
        assert "<b>" not in html

    def test_a_union_renders_each_part(self):
        """A union shows one table per part."""
        html = (Seeded(lr=0.1) | Seeded(lr=0.01))._repr_html_()
        assert html.count("<table") == 2

    def test_a_sample_over_seeds_says_it_draws_configurations(self):
        """A sample of a seeded space says it holds configurations, each on every seed."""
        html = Seeded().sample(1, seed=0)._repr_html_()
        assert "<p>1 configuration sampled (seed 0), each on 3 seeds, from</p>" in html

    def test_a_summary_is_a_frame_that_renders(self):
        """A summary is a polars frame, whose own HTML puts the metrics before left_out."""
        html = ran(Seeded()).summary()._repr_html_()
        assert html.index("acc_mean") < html.index("left_out")

    def test_in_a_real_kernel(self, tmp_path):
        """Jupyter's own formatter gives a space and a summary an HTML table."""
        from tests.conftest import run_in_kernel

        source = tmp_path / "notebook_experiment.py"
        source.write_text(
            "from superparams import Experiment, search, seeds\n"
            "class Train(Experiment):\n"
            "    lr: float = search(0.1, 0.01)\n"
            "    seed: int = seeds(2)\n"
            "    def run(self):\n"
            "        return {'acc': self.lr + self.seed}\n"
        )
        code = (
            "from notebook_experiment import Train\n"
            "ip = get_ipython()\n"
            "space = Train()\n"
            "space.run_all(display=False)\n"
            "for shown in (space, space.summary()):\n"
            "    data, _ = ip.display_formatter.format(shown)\n"
            "    print(type(shown).__name__, '<table' in data.get('text/html', ''))\n"
        )
        out = run_in_kernel(code, tmp_path, tmp_path / "kernels")
        assert out.split("\n")[:2] == ["Train True", "DataFrame True"]


# acc over 3 seeds: 0.1 and 0.01 cannot be told apart; 0.001 is far behind both.
CLOSE = {
    (0.1, 0): 0.900,
    (0.1, 1): 0.920,
    (0.1, 2): 0.910,
    (0.01, 0): 0.905,
    (0.01, 1): 0.915,
    (0.01, 2): 0.912,
    (0.001, 0): 0.500,
    (0.001, 1): 0.520,
    (0.001, 2): 0.510,
}


class Close(Experiment):
    lr: float = search(0.1, 0.01, 0.001)
    seed: int = seeds(3)

    def run(self) -> dict:
        return {"acc": CLOSE[self.lr, self.seed]}


class TestHonestWinners:
    """best() says whether its winner is real: clear, a tie, or too few seeds to tell."""

    def test_a_tie_over_three_seeds(self):
        """The two best learning rates are a tie by a paired t-test, Holm-corrected."""
        from scipy import stats

        winner = ran(Close()).best("acc")
        assert winner["lr"].to_list() == [0.01]
        assert winner["acc_verdict"].to_list() == ["tie"]
        assert winner["acc_ties"].to_list() == [["lr=0.1"]]
        # by hand: the winner against each other row over seeds 0, 1, 2, then Holm: the
        # smaller p-value times 2, the larger times 1 (never below the first)
        runner_up = stats.ttest_rel([0.905, 0.915, 0.912], [0.900, 0.920, 0.910]).pvalue
        last = stats.ttest_rel([0.905, 0.915, 0.912], [0.500, 0.520, 0.510]).pvalue
        assert 2 * last < 0.05  # the last is told apart
        assert max(2 * last, runner_up) > 0.05  # the runner-up is not

    def test_a_clear_winner(self):
        """Without its close rival the winner is clear, and no row ties with it."""
        winner = ran(Close(lr=search(0.1, 0.001))).best("acc")
        assert winner["lr"].to_list() == [0.1]
        assert winner["acc_verdict"].to_list() == ["clear"]
        assert winner["acc_ties"].to_list() == [[]]

    def test_the_smallest_is_best_with_mode_min(self):
        """mode='min' judges the lowest mean the same way."""
        winner = ran(Close()).best("acc", "min")
        assert winner["lr"].to_list() == [0.001]
        assert winner["acc_verdict"].to_list() == ["clear"]

    def test_one_seed_is_too_few(self):
        """With one row per setting (no seeds to pair) it says so rather than guessing."""
        winner = ran(Close()).best("acc", over=[])
        assert winner["acc_verdict"].to_list() == ["too few seeds"]

    def test_seeds_that_are_not_shared_are_too_few(self):
        """A rival that completed only one of the winner's seeds cannot be compared."""

        class Sparse(Experiment):
            lr: float = search(0.1, 0.01)
            seed: int = seeds(3)

            def run(self) -> dict:
                if self.lr == 0.01 and self.seed > 0:
                    raise ValueError("diverged")
                return {"acc": CLOSE[self.lr, self.seed]}

        winner = ran(Sparse()).best("acc")
        assert winner["acc_verdict"].to_list() == ["too few seeds"]

    def test_the_interval_level_is_an_option(self):
        """level=0.9 gives a narrower interval; a level outside (0, 1) is refused."""
        space = ran(Close())
        wide, narrow = space.summary(), space.summary(level=0.9)
        assert (
            narrow["acc_ci_high"] - narrow["acc_ci_low"] < wide["acc_ci_high"] - wide["acc_ci_low"]
        ).all()
        with pytest.raises(UsageError, match=r"level=95 is not a confidence level between 0 and 1"):
            space.summary(level=95)


class Tradeoff(Experiment):
    """acc rises with width, and so does latency; width 96 is dominated by width 64."""

    width: int = search(16, 32, 64, 96, 128)
    seed: int = seeds(2)

    def run(self) -> dict:
        acc = {16: 0.80, 32: 0.85, 64: 0.90, 96: 0.88, 128: 0.92}[self.width]
        latency = {16: 1.0, 32: 2.0, 64: 4.0, 96: 5.0, 128: 8.0}[self.width]
        return {"acc": acc + self.seed / 1000, "latency": latency}


class TestParetoFront:
    def test_several_metrics_give_the_front_of_their_means(self):
        """best over acc (max) and latency (min) keeps every width no other beats on both."""
        front = ran(Tradeoff()).best(["acc", "latency"], mode=["max", "min"])
        assert front["width"].to_list() == [128, 64, 32, 16]

    def test_a_mode_for_each_metric(self):
        """Two metrics need two modes, each max or min."""
        with pytest.raises(UsageError, match=r"one mode for each of acc, latency"):
            ran(Tradeoff()).best(["acc", "latency"], mode=["max"])
