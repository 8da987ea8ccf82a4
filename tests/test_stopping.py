"""Stop rules: pure decisions over the rows reported so far, checked against naive ones."""

from __future__ import annotations

import math
import statistics
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from superparams import Experiment, search
from superparams.errors import UsageError
from superparams.stopping import StoppedEarly, Stopping, check_rules, median, threshold

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
