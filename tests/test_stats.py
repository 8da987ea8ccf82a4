"""The arithmetic of how sure a number is, checked against scipy (which the package does
not depend on) and against hand computations."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from superparams._stats import holm, mean_interval, paired_p, t_cdf, t_quantile

DEGREES = st.one_of(st.integers(1, 200).map(float), st.floats(0.5, 1e4))


class TestStudentT:
    @given(p=st.floats(1e-9, 1 - 1e-9), df=DEGREES)
    def test_the_quantile_matches_scipy(self, p, df):
        """t_quantile agrees with scipy's to nine significant digits."""
        assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-9, abs=1e-12)

    @given(t=st.floats(-1e3, 1e3), df=DEGREES)
    def test_the_cdf_matches_scipy(self, t, df):
        """t_cdf agrees with scipy's in both tails."""
        expected = stats.t.cdf(t, df)
        assert t_cdf(t, df) == pytest.approx(expected, rel=1e-8, abs=1e-12)

    def test_the_table_values_of_a_95_percent_interval(self):
        """The two-sided 95% quantiles of the t table, for 2, 4 and 9 degrees of freedom."""
        assert [round(t_quantile(0.975, df), 3) for df in (2, 4, 9)] == [4.303, 2.776, 2.262]

    def test_the_ends_of_the_range(self):
        """0 and 1 are the infinities, p = 0.5 is zero, and a bad argument is NaN."""
        assert t_quantile(0.0, 3) == -math.inf
        assert t_quantile(1.0, 3) == math.inf
        assert t_quantile(0.5, 3) == 0.0
        assert math.isnan(t_quantile(1.5, 3))
        assert math.isnan(t_quantile(0.9, 0))


class TestMeanInterval:
    def test_a_hand_computed_interval(self):
        """Three values 0.90, 0.92, 0.94: mean 0.92, sd 0.02, half width 4.303 * 0.02 / sqrt(3)."""
        mean, low, high = mean_interval([0.90, 0.92, 0.94])
        half = 4.302652729749464 * 0.02 / math.sqrt(3)
        assert (mean, low, high) == pytest.approx((0.92, 0.92 - half, 0.92 + half))

    @given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=30), st.sampled_from([0.9, 0.95]))
    def test_it_matches_scipy(self, values, level):
        """The interval is scipy's t.interval around the mean with the standard error."""
        mean, low, high = mean_interval(values, level)
        sem = stats.sem(values)
        if sem == 0:
            assert low == pytest.approx(mean)
            assert high == pytest.approx(mean)
            return
        expected = stats.t.interval(level, len(values) - 1, loc=mean, scale=sem)
        assert (low, high) == pytest.approx(expected, rel=1e-7, abs=1e-6)

    def test_one_value_claims_no_interval(self):
        """One seed gives its value and no interval at all."""
        mean, low, high = mean_interval([0.5])
        assert mean == 0.5
        assert math.isnan(low)
        assert math.isnan(high)


class TestPairedTest:
    @given(
        st.lists(
            st.tuples(st.floats(-100, 100), st.floats(-100, 100)), min_size=2, max_size=20
        ).filter(lambda pairs: len({round(a - b, 6) for a, b in pairs}) > 1)
    )
    def test_it_matches_scipys_ttest_rel(self, pairs):
        """The p-value is scipy's paired t-test's, for differences that vary."""
        a, b = zip(*pairs, strict=True)
        assert paired_p(a, b) == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-6, abs=1e-12)

    def test_identical_settings_are_not_distinguished(self):
        """The same values on every seed give p = 1."""
        assert paired_p([0.9, 0.8, 0.7], [0.9, 0.8, 0.7]) == 1.0

    def test_a_constant_gain_on_every_seed_is_certain(self):
        """A difference that is the same on every seed has no noise to explain it."""
        assert paired_p([1.0, 2.0, 3.0], [0.5, 1.5, 2.5]) == 0.0

    def test_one_pair_is_no_test(self):
        """With one shared seed there is nothing to test: NaN."""
        assert math.isnan(paired_p([1.0], [2.0]))

    def test_unequal_sides_are_refused(self):
        """Pairs need as many values on each side."""
        with pytest.raises(ValueError, match="as many values on each side, not 2 and 3"):
            paired_p([1.0, 2.0], [1.0, 2.0, 3.0])


class TestHolm:
    def test_a_hand_computation(self):
        """p = 0.01, 0.04, 0.03: ranked 0.01, 0.03, 0.04 times 3, 2, 1, made monotone."""
        assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])

    @given(st.lists(st.floats(0, 1), max_size=12))
    def test_adjusted_values_never_fall_below_the_raw_ones_nor_exceed_one(self, pvalues):
        """Holm only makes a p-value larger, never past 1, and keeps the ranking."""
        adjusted = holm(pvalues)
        assert all(p <= a <= 1 for p, a in zip(pvalues, adjusted, strict=True))
        order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
        ranked = [adjusted[i] for i in order]
        assert ranked == sorted(ranked)

    def test_nan_stays_out_of_the_family(self):
        """A comparison that could not be made does not count in the family's size."""
        adjusted = holm([0.02, math.nan])
        assert adjusted[0] == 0.02
        assert math.isnan(adjusted[1])
