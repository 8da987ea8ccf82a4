"""How sure a number is: intervals over seeds and paired comparisons between settings.

This room holds the arithmetic behind every claim superparams makes about a mean over
seeds: Student's t distribution (its CDF and quantile, computed here so the package needs
no scipy), the t-interval of a mean, the paired t-test of two settings over the seeds they
share, and Holm's step-down correction across several comparisons. It knows nothing of
tables, stores or experiments: it takes plain sequences of floats and returns floats.

Why a paired t-test: every setting of a seeded space runs the same declared seeds, so
differences can be taken seed by seed, which removes the variation the seeds share. With
the three to five seeds a study can afford, a bootstrap has too few distinct resamples to
mean anything, and an exact sign-flip test cannot reach 5% (its smallest two-sided p-value
with 5 pairs is 2/32); the t-test is the honest choice there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: Below this many shared seeds no comparison is attempted.
MIN_PAIRS = 2

_TINY = 1e-300
_EPSILON = 3e-16


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom.

    >>> round(t_cdf(2.015048372669157, 5), 6)
    0.95
    """
    if df <= 0 or math.isnan(t) or math.isnan(df):
        return math.nan
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    # Both tails are I_x(df/2, 1/2) / 2 with x = df / (df + t^2).
    tail = 0.5 * _t_tails(t, df)
    return 1.0 - tail if t > 0 else tail


def t_two_sided(t: float, df: float) -> float:
    """The two-sided p-value of a t statistic: P(|T| >= |t|)."""
    if df <= 0 or math.isnan(t) or math.isnan(df):
        return math.nan
    if math.isinf(t):
        return 0.0
    return min(1.0, _t_tails(t, df))


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom.

    >>> round(t_quantile(0.975, 2), 6)
    4.302653
    """
    if not 0 < p < 1 or df <= 0:
        return math.nan if not 0 <= p <= 1 or df <= 0 else math.copysign(math.inf, p - 0.5)
    if p == 0.5:
        return 0.0
    # Search on the tail beyond the quantile (p itself below 1/2, else 1 - p, exact there),
    # which keeps its digits where the CDF would round to 1.
    tail = min(p, 1 - p)
    high = 1.0
    while 0.5 * _t_tails(high, df) > tail:
        high *= 2
    low = 0.0
    # Bisection on an exact tail: 100 halvings reach the float's own precision.
    for _ in range(100):
        middle = (low + high) / 2
        if 0.5 * _t_tails(middle, df) > tail:
            low = middle
        else:
            high = middle
        if high - low <= 1e-15 * high:
            break
    return math.copysign((low + high) / 2, p - 0.5)


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """The mean of ``values`` and its two-sided t-interval at ``level``.

    With fewer than two values (or a NaN among them) the interval is ``(nan, nan)``: one
    seed says nothing about the spread.

    >>> mean, low, high = mean_interval([1.0, 2.0, 3.0])
    >>> mean, round(low, 4), round(high, 4)
    (2.0, -0.4841, 4.4841)
    """
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = math.fsum(values) / n
    if n < 2 or math.isnan(mean):
        return mean, math.nan, math.nan
    sd = _std(values, mean)
    half = t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def paired_p(a: Sequence[float], b: Sequence[float]) -> float:
    """The two-sided p-value of a paired t-test that ``a`` and ``b`` have the same mean.

    ``a[i]`` and ``b[i]`` are the two settings' values on the same seed. Identical pairs
    give 1.0; differences that are all the same non-zero number give 0.0 (no noise can
    explain them). Fewer than :data:`MIN_PAIRS` pairs give NaN.

    >>> round(paired_p([0.91, 0.93, 0.92], [0.90, 0.91, 0.91]), 4)
    0.0572
    """
    if len(a) != len(b):
        msg = f"a paired test needs as many values on each side, not {len(a)} and {len(b)}"
        raise ValueError(msg)
    n = len(a)
    if n < MIN_PAIRS:
        return math.nan
    differences = [x - y for x, y in zip(a, b, strict=True)]
    mean = math.fsum(differences) / n
    if math.isnan(mean):
        return math.nan
    sd = _std(differences, mean)
    if sd <= abs(mean) * _EPSILON * 16 or sd == 0:
        return 1.0 if mean == 0 else 0.0
    return t_two_sided(mean / (sd / math.sqrt(n)), n - 1)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of ``pvalues``, in their order (NaN stays NaN).

    A hypothesis is rejected at level alpha when its adjusted p-value is at most alpha;
    the family's chance of any false rejection then stays under alpha.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    ranked = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    m = len(ranked)
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(ranked):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def _std(values: Sequence[float], mean: float) -> float:
    """The sample standard deviation (n - 1 in the denominator)."""
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _t_tails(t: float, df: float) -> float:
    """P(|T| >= |t|): I_x(df/2, 1/2) with x = df / (df + t^2), and 1 - x formed exactly."""
    return _incomplete_beta(df / 2, 0.5, df / (df + t * t), t * t / (df + t * t))


def _incomplete_beta(a: float, b: float, x: float, y: float) -> float:
    """The regularized incomplete beta function I_x(a, b), given x and y = 1 - x.

    y comes from the caller, who can often form it without the cancellation of ``1 - x``.
    """
    if x <= 0:
        return 0.0
    if y <= 0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x)
    front = math.exp(log_front + b * math.log(y))
    # The continued fraction converges fast on the side of the mean; use symmetry otherwise.
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, y) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function, by Lentz's method."""
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    fraction = d
    for m in range(1, 1000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            step = c * d
            fraction *= step
        if abs(step - 1.0) < _EPSILON:
            break
    return fraction
