"""Acceptance bounds for random checks, each derived from a stated false-alarm probability.

A check built on these bounds fails a correct implementation with
probability at most ``alpha`` (exactly for the binomial bounds, to the
normal approximation's accuracy for the correlation bounds). The suite's
default is :data:`DEFAULT_ALPHA` per check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Default false-alarm probability of one random check.
DEFAULT_ALPHA = 1e-6


@dataclass(frozen=True)
class Interval:
    """A closed acceptance interval ``[low, high]`` and the false-alarm level it was built for."""

    low: float
    high: float
    alpha: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    def __str__(self) -> str:
        return f"[{self.low:g}, {self.high:g}] (false-alarm probability {self.alpha:g})"


def binomial_count_interval(n: int, p: float, alpha: float = DEFAULT_ALPHA) -> Interval:
    """Return the acceptance interval for the number of successes of ``Binomial(n, p)``.

    Each tail outside the interval has probability at most ``alpha / 2``,
    computed exactly from the binomial distribution.

    Parameters
    ----------
    n : int
        Number of independent trials.
    p : float
        Success probability of each trial.
    alpha : float, optional
        False-alarm probability of the check.

    Returns
    -------
    Interval
        Bounds on the count.
    """
    if p <= 0.0 or p >= 1.0 or n == 0:
        exact = round(n * p)
        return Interval(exact, exact, alpha)
    from scipy import stats as _scipy_stats  # lazy: scipy takes ~0.8 s to import

    dist = _scipy_stats.binom(n, p)
    low = float(dist.ppf(alpha / 2))  # P(K < low) < alpha/2
    high = float(dist.isf(alpha / 2))  # P(K > high) <= alpha/2
    return Interval(low, high, alpha)


def normal_quantile(alpha: float = DEFAULT_ALPHA) -> float:
    """Return ``z`` with ``P(|Z| > z) = alpha`` for a standard normal ``Z``."""
    from scipy import stats as _scipy_stats

    return float(_scipy_stats.norm.isf(alpha / 2))


def correlation_bound(n: int, alpha: float = DEFAULT_ALPHA) -> float:
    """Bound on ``|r|`` for the sample correlation of ``n`` independent pairs.

    Under independence ``r * sqrt(n)`` is asymptotically standard normal,
    so ``|r| <= z / sqrt(n)`` fails with probability about ``alpha``.
    """
    return normal_quantile(alpha) / math.sqrt(n)


def chi_square_bound(dof: int, alpha: float = DEFAULT_ALPHA) -> float:
    """Upper ``alpha`` quantile of the chi-square distribution with ``dof`` degrees of freedom."""
    from scipy import stats as _scipy_stats

    return float(_scipy_stats.chi2.isf(alpha, dof))
