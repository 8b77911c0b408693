"""The exact keep thresholds (D4, P3) and the acceptance bounds every random check relies on."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from dropout_ref.conformance.stats import (
    binomial_count_interval,
    chi_square_bound,
    correlation_bound,
    normal_quantile,
)
from dropout_ref.core.thresholds import float32_threshold, inverse_keep_scale, word_threshold


@given(st.floats(0.0, 1.0))
def test_d4_float32_threshold_is_smallest_float32_not_below_rate(rate):
    t = float32_threshold(rate)
    assert float(np.float32(t)) == t  # exactly representable
    assert t >= rate
    below = np.nextafter(np.float32(t), np.float32(-np.inf))
    assert float(below) < rate or t == 0.0


def test_d4_float32_threshold_rounds_up_where_float32_rounds_down():
    assert float(np.float32(0.7)) < 0.7
    assert float32_threshold(0.7) == float(np.nextafter(np.float32(0.7), np.float32(1)))


@given(st.floats(0.0, 1.0))
def test_p3_word_threshold_is_exact_ceiling(rate):
    t = word_threshold(rate)
    assert 0 <= t <= 2**32
    # w >= t  <=>  w / 2**32 >= rate, checked at the boundary words exactly.
    assert t == 0 or (t - 1) / 2**32 < rate
    assert t == 2**32 or t / 2**32 >= rate


@pytest.mark.parametrize(
    ("rate", "expected"), [(0.0, 0), (0.5, 2**31), (1.0, 2**32), (2.0**-40, 1), (0.25, 2**30)]
)
def test_p3_word_threshold_values(rate, expected):
    assert word_threshold(rate) == expected


def test_d5_inverse_keep_scale():
    assert inverse_keep_scale(0.5) == 2.0
    assert inverse_keep_scale(0.0) == 1.0


@pytest.mark.parametrize(
    ("n", "p", "alpha"), [(10**6, 0.7, 1e-6), (1000, 0.001, 1e-3), (50, 0.5, 0.05)]
)
def test_binomial_interval_tails_are_at_most_half_alpha(n, p, alpha):
    interval = binomial_count_interval(n, p, alpha)
    dist = scipy_stats.binom(n, p)
    assert dist.cdf(interval.low - 1) <= alpha / 2  # P(K < low)
    assert dist.sf(interval.high) <= alpha / 2  # P(K > high)
    # ... and the interval is the tightest such: one step in and a tail exceeds alpha/2.
    assert dist.cdf(interval.low) > alpha / 2 or interval.low == 0
    assert dist.sf(interval.high - 1) > alpha / 2


def test_binomial_interval_observed_false_alarm_rate():
    """At alpha = 0.01 the interval rejects about 1% of true binomial samples (and never >> it)."""
    rng = np.random.default_rng(0)
    n, p, alpha, trials = 10_000, 0.3, 0.01, 20_000
    interval = binomial_count_interval(n, p, alpha)
    rejected = sum(k not in interval for k in rng.binomial(n, p, size=trials))
    # The rejection count is itself binomial(trials, <= alpha): bound it at 1e-6.
    assert rejected <= binomial_count_interval(trials, alpha, 1e-6).high


def test_degenerate_binomial_interval():
    assert binomial_count_interval(100, 0.0).high == 0
    assert binomial_count_interval(100, 1.0).low == 100


def test_normal_and_correlation_and_chi_square_bounds():
    assert normal_quantile(0.05) == pytest.approx(1.959964, abs=1e-5)
    assert correlation_bound(10_000, 0.05) == pytest.approx(0.0195996, abs=1e-6)
    assert chi_square_bound(1, 0.05) == pytest.approx(3.841459, abs=1e-5)


@given(st.floats(0.0, 1.0, exclude_max=True))
def test_d5_inverse_keep_scale_is_correctly_rounded(rate):
    from fractions import Fraction

    scale = inverse_keep_scale(rate)
    exact = 1 / (1 - Fraction(rate))
    below, above = np.nextafter(scale, 0.0), np.nextafter(scale, np.inf)
    assert abs(Fraction(scale) - exact) <= abs(Fraction(float(below)) - exact)
    assert abs(Fraction(scale) - exact) <= abs(Fraction(float(above)) - exact)


def test_d5_inverse_keep_scale_single_rounding_example():
    """1/(1-p) in floats rounds twice; at p = 0.21024725563078223 that is one ulp off."""
    rate = 0.21024725563078223
    assert inverse_keep_scale(rate) != 1.0 / (1.0 - rate)


def test_d5_reference_rounds_once_to_16_bit_types():
    """D5's yardstick: 16-bit references are rounded once (NumPy's float16 cast and a
    float32 detour for bfloat16 round twice), ulp(0) is the subnormal spacing."""
    from dropout_ref.core.numerics import round_to_dtype, ulp

    two = np.longdouble(2)
    bf16_case = np.array([1 + two**-8 + two**-30])  # just above a bfloat16 midpoint
    assert round_to_dtype(bf16_case, "bfloat16")[0] == 1 + 2**-7
    fp16_case = np.array([1 + two**-11 + two**-60])  # just above a float16 midpoint
    assert round_to_dtype(fp16_case, "float16")[0] == 1 + 2**-10
    edges = round_to_dtype(np.array([65519.0, 65520.0, 3e-8]), "float16")
    assert edges[0] == 65504 and np.isinf(edges[1]) and edges[2] == 2.0**-24
    assert ulp(np.array([0.0]), "float32")[0] == 2.0**-149
    assert ulp(np.array([0.0]), "bfloat16")[0] == 2.0**-133
