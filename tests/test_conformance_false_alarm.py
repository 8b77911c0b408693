"""The kit's false-alarm rate on a correct implementation is at most the stated alpha."""

from __future__ import annotations

from dropout_ref.conformance.false_alarm import measure
from dropout_ref.conformance.stats import binomial_count_interval


def test_false_alarm_rate_is_at_most_alpha() -> None:
    """D4, D6, D9, D10 at alpha=0.5 over 40 seeds: failing runs fit Binomial(40, <= 0.5).

    The check itself is a random test (seeds fixed): it fails with probability
    below 1e-6 when the kit's real rate is at most alpha.
    """
    result = measure(runs=40, alpha=0.5, backend="numpy", sample_scale=1 / 32)
    bound = binomial_count_interval(result.runs, result.alpha, 1e-6)
    assert result.failed_runs <= bound.high, str(result)
