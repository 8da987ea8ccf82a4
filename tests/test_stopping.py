"""Stop rules: pure decisions over the rows reported so far, checked against naive ones."""

from __future__ import annotations

import math
import statistics
from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from superparams import Experiment, search
from superparams.errors import ExperimentError, UsageError
from superparams.stopping import (
    StoppedEarly,
    Stopping,
    check_rules,
    halving,
    median,
    parse,
    threshold,
)

# One report: which setting, then its row (epoch and loss, either may be missing).
values = st.one_of(
    st.integers(-3, 3),
    st.floats(-3, 3),
    st.just(math.nan),
    st.just("text"),
    st.booleans(),
)
rows = st.fixed_dictionaries({}, optional={"epoch": st.integers(0, 4), "loss": values})
reports = st.lists(st.tuples(st.sampled_from("abcd"), rows), max_size=40)


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def naive_median(done: list[tuple[str, dict]], mode: str, warmup: int, min_others: int) -> bool:
    """Whether the last report stops its setting, computed from every report so far."""
    sid, row = done[-1]
    k, value = row.get("epoch"), number(row.get("loss"))
    if value is None or k is None or k < warmup:
        return False
    latest: dict[str, Any] = {}
    for other, r in done:
        if other != sid and r.get("epoch") == k and "loss" in r:
            latest[other] = r["loss"]
    others = [v for v in map(number, latest.values()) if v is not None and not math.isnan(v)]
    if len(others) < max(min_others, 1):
        return False
    if math.isnan(value):
        return True
    middle = statistics.median(others)
    return value > middle if mode == "min" else value < middle


class TestMedian:
    @given(
        reports,
        st.sampled_from(["min", "max"]),
        st.integers(0, 3),
        st.integers(0, 3),
    )
    def test_agrees_with_a_naive_computation(self, reported, mode, warmup, min_others):
        """At each report, the median rule stops the setting exactly when its loss at
        that epoch is worse than the median of the other settings' at that epoch."""
        stopping = Stopping(
            [median("loss", step="epoch", mode=mode, warmup=warmup, min_others=min_others)]
        )
        done: list[tuple[str, dict]] = []
        for sid, row in reported:
            done.append((sid, row))
            expected = "median(loss)" if naive_median(done, mode, warmup, min_others) else None
            assert stopping.reported(sid, row) == expected

    def test_a_setting_started_fresh_no_longer_counts(self):
        """The rows of a setting that starts fresh are not among the others' any more."""
        stopping = Stopping([median("loss", step="epoch", min_others=1)])
        stopping.reported("a", {"epoch": 1, "loss": 0.1})
        stopping.forget("a")
        assert stopping.reported("b", {"epoch": 1, "loss": 0.9}) is None

    def test_settings_stored_before_count_among_the_others(self):
        """Rows of settings completed in an earlier run count, once seeded."""
        stored = [{"id": "a", "epoch": 1, "loss": 0.1}, {"id": "a", "epoch": 2, "loss": 0.05}]
        stopping = Stopping.seeded([median("loss", step="epoch", min_others=1)], stored)
        assert stopping.reported("b", {"epoch": 2, "loss": 0.5}) == "median(loss)"

    def test_a_mode_that_is_neither_min_nor_max_is_a_usage_error(self):
        """median(mode='lowest') is refused, saying what mode takes."""
        with pytest.raises(UsageError, match=r"median\(mode='lowest'\): mode is 'min'"):
            median("loss", step="epoch", mode="lowest")  # type: ignore[arg-type]


class TestThreshold:
    @given(reports, st.one_of(st.none(), st.integers(-2, 2)), st.integers(-2, 2))
    def test_agrees_with_a_naive_computation(self, reported, after, bound):
        """A threshold stops a setting when its latest loss is over the bound or NaN
        (with a step: only from that step on)."""
        step = None if after is None else "epoch"
        stopping = Stopping([threshold("loss", above=bound, step=step, after=after or 0)])
        for sid, row in reported:
            value = number(row.get("loss"))
            expected = value is not None and (math.isnan(value) or value > bound)
            if step is not None and (row.get("epoch") is None or row["epoch"] < (after or 0)):
                expected = False
            assert stopping.reported(sid, row) == ("threshold(loss)" if expected else None)

    def test_a_threshold_needs_a_bound(self):
        """threshold() with neither above nor below is refused."""
        with pytest.raises(UsageError, match=r"threshold\('loss'\) needs a bound"):
            threshold("loss")


class TestOwnRules:
    def test_a_function_reads_its_rows_and_the_others(self):
        """A user's rule gets this setting's rows, the newest last, and the others' by
        id; the stopped column names it by its function's name."""
        seen = []

        def too_slow(rows: list[dict], others: dict[str, list[dict]]) -> bool:
            seen.append((rows, others))
            return len(rows) >= 2

        stopping = Stopping(check_rules(too_slow))
        assert stopping.reported("a", {"x": 1}) is None
        assert stopping.reported("b", {"x": 2}) is None
        assert stopping.reported("a", {"x": 3}) == "too_slow"
        assert seen[-1] == ([{"x": 1}, {"x": 3}], {"b": [{"x": 2}]})

    def test_the_first_rule_that_stops_is_named(self):
        """With several rules, the first that stops the setting is the one named."""
        rules = check_rules([threshold("loss", above=5), lambda rows, others: True])
        assert Stopping(rules).reported("a", {"loss": 9}) == "threshold(loss)"
        assert Stopping(rules).reported("a", {"loss": 1}) == "<lambda>"

    def test_what_is_not_a_rule_is_a_usage_error(self):
        """stop= that is not callable is refused, saying what a rule is."""
        with pytest.raises(UsageError, match=r"stop='median' is not a rule"):
            check_rules("median")


class TestTheException:
    def test_except_exception_in_run_does_not_swallow_it(self):
        """StoppedEarly passes through a run()'s `except Exception`, naming the rule."""

        def run() -> None:
            try:
                raise StoppedEarly("median(loss)")
            except Exception:  # a user's catch-all around a training step
                pytest.fail("StoppedEarly was caught as an Exception")

        with pytest.raises(StoppedEarly, match=r"stopped early by median\(loss\)") as stop:
            run()
        assert stop.value.rule == "median(loss)"


class Stopper(Experiment):
    n: int = search(1, 2)

    def run(self) -> dict:
        if self.n == 2:
            raise StoppedEarly("median(loss)")  # as report() raises it
        return {"loss": 0.1}


class TestAStoppedSetting:
    @pytest.mark.parametrize(("num_proc", "engine"), [(1, "inline"), (2, None)])
    def test_is_completed_names_its_rule_and_is_not_run_again(self, tmp_path, num_proc, engine):
        """A setting ended by a stop rule is stored completed, its stopped column names
        the rule, and a second run does not run it again."""
        table = Stopper().run_all(folder=tmp_path, num_proc=num_proc, engine=engine, display=False)
        assert table["status"].to_list() == ["completed", "completed"]
        assert table["stopped"].to_list() == [None, "median(loss)"]
        assert table["cause"].to_list() == [None, None]
        assert Stopper().plan(folder=tmp_path).to_run() == []
        again = Stopper().run_all(folder=tmp_path, num_proc=num_proc, engine=engine, display=False)
        assert again["stopped"].to_list() == [None, "median(loss)"]

    def test_run_all_refuses_what_is_not_a_rule(self, tmp_path):
        """run_all(stop=...) that is not a rule is a usage error before anything runs."""
        with pytest.raises(UsageError, match="stop=3 is not a rule"):
            Stopper().run_all(folder=tmp_path, stop=3, display=False)
        assert list(tmp_path.iterdir()) == []


def naive_halving(done: list[tuple[str, dict]], eta: int) -> bool:
    """Whether the last report stops its setting under halving(loss, step=epoch, eta),
    from every report so far: at a rung (1, eta, eta**2, ...), the setting goes on only
    if it is among the best max(1, n // eta) of the n settings' latest values there."""
    _, row = done[-1]
    k, value = row.get("epoch"), number(row.get("loss"))
    if value is None or k is None or k not in {eta**j for j in range(6)}:
        return False
    if math.isnan(value):
        return True
    latest = {s: number(r.get("loss")) for s, r in done if r.get("epoch") == k and "loss" in r}
    reached = sorted(v for v in latest.values() if v is not None and not math.isnan(v))
    return value > reached[max(1, len(reached) // eta) - 1]


class TestHalving:
    @given(reports, st.sampled_from([2, 3]))
    def test_agrees_with_a_naive_computation(self, reported, eta):
        """After each report, halving stops exactly when the naive computation says so."""
        stopping = Stopping([halving("loss", step="epoch", eta=eta)])
        for n in range(1, len(reported) + 1):
            sid, row = reported[n - 1]
            said = stopping.reported(sid, row)
            assert (said == "halving(loss)") == naive_halving(reported[:n], eta)

    def test_a_bad_eta_or_first_rung_is_a_usage_error(self):
        """eta must be above 1, the first rung above 0, the mode min or max."""
        with pytest.raises(UsageError, match=r"halving\(eta=1\): eta is how many"):
            halving("loss", step="epoch", eta=1)
        with pytest.raises(UsageError, match=r"halving\(min_step=0\)"):
            halving("loss", step="epoch", min_step=0)
        with pytest.raises(UsageError, match=r"halving\(mode='best'\)"):
            halving("loss", step="epoch", mode="best")  # type: ignore[arg-type]


class Halved(Experiment):
    """Losses q**epoch, q = |1 - lr|: 0.9, 2.0, 0.7 and 0.97, in the order they run."""

    lr: float = search(0.1, 3.0, 0.3, 0.03)
    stop = halving("val_loss", step="epoch", eta=2)

    def run(self) -> None:
        for epoch in range(1, 9):
            self.report(epoch=epoch, val_loss=abs(1 - self.lr) ** epoch)


class TestRulesOfTheClass:
    def test_a_class_rule_halves_at_each_rung(self, tmp_path):
        """Run one at a time, the first setting passes every rung; 2.0 is worse than 0.9
        at epoch 1 (best 1 of 2); 0.7 is the best of 3; 0.97 is not in the best 2 of 4."""
        table = Halved().run_all(folder=tmp_path, display=False)
        counts = table.group_by("lr", maintain_order=True).agg(
            pl.len().alias("rows"), pl.col("stopped").last()
        )
        assert counts.rows() == [
            (0.1, 8, None),
            (3.0, 1, "halving(val_loss)"),
            (0.3, 8, None),
            (0.03, 1, "halving(val_loss)"),
        ]

    def test_rules_given_to_run_all_replace_the_classs(self, tmp_path):
        """stop=[] runs every setting to its end; another rule is used instead."""
        table = Halved().run_all(folder=tmp_path / "none", stop=[], display=False)
        assert table.height == 32
        assert table["stopped"].null_count() == 32
        other = Halved().run_all(
            folder=tmp_path / "other", stop=threshold("val_loss", above=1.5), display=False
        )
        assert other.filter(pl.col("lr") == 3.0)["stopped"].to_list() == ["threshold(val_loss)"]
        assert other.height == 8 + 1 + 8 + 8

    def test_stop_is_reserved_for_the_rules(self):
        """A field named stop would hide the class's rules: it is refused."""
        with pytest.raises(ExperimentError, match=r"stop"):
            type("Clash", (Experiment,), {"__annotations__": {"stop": int}, "stop": 1})


class TestParse:
    @pytest.mark.parametrize(
        ("text", "rule"),
        [
            ("median(loss, step=epoch, warmup=2)", median("loss", step="epoch", warmup=2)),
            (
                "median('val loss', step='epoch', mode=max)",
                median("val loss", step="epoch", mode="max"),
            ),
            ("threshold(loss, above=10)", threshold("loss", above=10)),
            (
                "halving(acc, step=step, mode=max, eta=4)",
                halving("acc", step="step", mode="max", eta=4),
            ),
        ],
    )
    def test_a_rule_from_its_text(self, text, rule):
        """--stop's text makes the rule the same call would make in Python."""
        assert repr(parse(text)) == repr(rule)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            (
                "median(loss",
                "--stop 'median(loss' is not a rule; write one of median, threshold, halving "
                "as a call, e.g. median(loss, step=epoch, warmup=2)",
            ),
            (
                "medain(loss, step=epoch)",
                "--stop 'medain(loss, step=epoch)': no rule 'medain' (did you mean 'median'?); "
                "the rules are median, threshold, halving",
            ),
            (
                "median(loss, stepp=epoch)",
                "--stop 'median(loss, stepp=epoch)': median() has no option 'stepp' (did you "
                "mean 'step'?); its options are step, mode, warmup, min_others",
            ),
            (
                "median(loss)",
                "--stop 'median(loss)': missing a required argument: 'step'; "
                "e.g. median(loss, step=epoch, warmup=2)",
            ),
            (
                "threshold(loss, above=__import__('os').getcwd())",
                "--stop \"threshold(loss, above=__import__('os').getcwd())\": "
                "\"__import__('os').getcwd()\" is not a value; a value is a number, a quoted "
                "text or a column's name",
            ),
            (
                "threshold(loss)",
                "threshold('loss') needs a bound: above=..., below=..., or both",
            ),
        ],
    )
    def test_text_that_is_not_a_rule(self, text, message):
        """Text that does not parse to a rule is a usage error saying what to write."""
        with pytest.raises(UsageError) as error:
            parse(text)
        assert str(error.value) == message
