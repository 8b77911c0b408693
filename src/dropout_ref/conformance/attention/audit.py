"""Attention-dropout audit: D3, D4, D5, D6, D9, D10 read off a fused attention kernel's output.

With queries and keys zero the scores are all 0 and the softmax is uniform:
every attention probability is ``1/S``. With the values the ``S x S`` identity,
the output IS the dropped attention matrix: element ``(i, j)`` is
``keep[i, j] * (1/S) / (1 - p)``, and a dropped probability gives exactly
``+0.0`` (a sum of ``+0.0`` terms). So the clauses of element-wise dropout can
be checked on kernels that never expose their mask
(``torch.nn.functional.scaled_dot_product_attention(dropout_p=)``,
``keras.layers.MultiHeadAttention(dropout=)``, Flax's ``dot_product_attention``).

``S`` is a power of two, so ``1/S`` is exact in every dtype and D5's reference
``(1/S) / (1 - p)`` correctly rounded is exact to state. The rates are 0, 0.1,
0.5 and 1. Each framework supplies an :class:`AttentionProbe`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dropout_ref.conformance.clause_run import run_clause
from dropout_ref.conformance.context import Violation, is_positive_zero
from dropout_ref.conformance.registry import CLAUSES
from dropout_ref.conformance.result import (
    ClauseResult,
    ConformanceReport,
)
from dropout_ref.conformance.stats import DEFAULT_ALPHA, binomial_count_interval, correlation_bound
from dropout_ref.core.contract import NotApplicable
from dropout_ref.core.numerics import scaled_reference, ulp, ulp_distance

#: Batch, heads and sequence length of every call: 4 * 4 * 64 * 64 = 65536 probabilities.
BATCH, HEADS, SEQ = 4, 4, 64
#: Rates of the audit.
RATES = (0.0, 0.1, 0.5, 1.0)
#: Rates with random masks (0 and 1 are deterministic).
RANDOM_RATES = (0.1, 0.5)
#: The clauses the identity trick can check.
ATTENTION_CLAUSES = ("D3", "D4", "D5", "D6", "D9", "D10")


@dataclass
class AttentionProbe:
    """One attention kernel under the identity trick.

    Attributes
    ----------
    run : callable
        ``run(p, dtype) -> numpy.ndarray`` of shape ``(BATCH, HEADS, SEQ, SEQ)``:
        the kernel's output for zero queries and keys and identity values at
        dropout rate ``p`` (float64 values as the kernel computed them in ``dtype``).
        Raises :class:`~dropout_ref.core.contract.NotApplicable` where the kernel
        cannot run at all (e.g. a fused kernel that refuses ``p > 0``).
    seed : callable
        ``seed(s)``: the framework's own seeding call (D9), after which the
        next ``run`` calls repeat.
    dtypes : tuple of str
        Dtypes to check.
    """

    run: Callable[[float, str], np.ndarray]
    seed: Callable[[int], None]
    dtypes: tuple[str, ...] = ("float32",)
    _cache: dict = field(default_factory=dict)

    def output(self, p: float, dtype: str) -> np.ndarray:
        """Run once per (p, dtype) after the last seeding; shared by D4, D5, D6 and D10."""
        key = (p, dtype)
        if key not in self._cache:
            self._cache[key] = np.asarray(self.run(p, dtype), dtype=np.float64)
        return self._cache[key]


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    denom = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum()) / denom if denom > 0 else (0.0 if (a == b).all() else 1.0)


@dataclass
class _Run:
    probe: AttentionProbe
    alpha_per_test: float
    random_tests_run: int = 0

    def counted(self) -> float:
        self.random_tests_run += 1
        return self.alpha_per_test


def _shape_ok(y: np.ndarray, p: float, dtype: str) -> None:
    if y.shape != (BATCH, HEADS, SEQ, SEQ):
        raise Violation(f"at dropout={p} in {dtype}: output shape {y.shape}")


def check_d3(run: _Run) -> str:
    """D3: p=1 gives +0.0 everywhere (no NaN from 1/(1-p))."""
    for dtype in run.probe.dtypes:
        y = run.probe.output(1.0, dtype)
        _shape_ok(y, 1.0, dtype)
        bad = ~is_positive_zero(y)
        if bad.any():
            i = np.unravel_index(int(np.flatnonzero(bad)[0]), y.shape)
            raise Violation(
                f"at dropout=1 in {dtype}: {int(bad.sum())} of {y.size} probabilities are not "
                f"+0.0, e.g. {tuple(map(int, i))} is {y[i]!r}"
            )
    return f"all +0.0 at p=1 in {', '.join(run.probe.dtypes)}"


def check_d4(run: _Run) -> str:
    """D4: p=0 keeps all; at 0.1 and 0.5 the keep rate fits Binomial, and masks are independent."""
    for dtype in run.probe.dtypes:
        y0 = run.probe.output(0.0, dtype)
        if (y0 == 0).any():
            raise Violation(
                f"at dropout=0 in {dtype}: {int((y0 == 0).sum())} probabilities dropped"
            )
        for p in RANDOM_RATES:
            keep = run.probe.output(p, dtype) != 0
            # Independence first: a mask broadcast over the batch or the heads (which also
            # throws the keep count off its binomial bounds) is named as what it is.
            pairs = {
                "batch elements 0 and 1": (keep[0], keep[1]),
                "heads 0 and 1": (keep[:, 0], keep[:, 1]),
                "neighbours in a row": (keep[..., :-1], keep[..., 1:]),
            }
            for what, (a, b) in pairs.items():
                limit = correlation_bound(a.size, run.counted())
                r = _correlation(a.ravel(), b.ravel())
                if abs(r) > limit:
                    raise Violation(
                        f"at dropout={p} in {dtype}: masks of {what} correlate (r = {r:.3f}, "
                        f"|r| must be <= {limit:.3f} at false-alarm probability "
                        f"{run.alpha_per_test:.2g}): the mask is shared, not drawn per element"
                    )
            bound = binomial_count_interval(keep.size, 1 - p, run.counted())
            if int(keep.sum()) not in bound:
                raise Violation(
                    f"at dropout={p} in {dtype}: {int(keep.sum())} of {keep.size} probabilities "
                    f"kept; a correct dropout keeps {bound.low:g}..{bound.high:g} (false-alarm "
                    f"probability {bound.alpha:.2g})"
                )
    return (
        f"all kept at p=0; keep rate and independence (batch, heads, rows) at p in {RANDOM_RATES}"
    )


def check_d5(run: _Run) -> str:
    """D5: kept probabilities are (1/S)/(1-p) correctly rounded to the dtype, to within 1 ulp."""
    worst = 0.0
    for dtype in run.probe.dtypes:
        for p in (0.0, *RANDOM_RATES):
            y = run.probe.output(p, dtype)
            _shape_ok(y, p, dtype)
            kept = y != 0
            expected = scaled_reference(np.full(y.shape, 1.0 / SEQ), p, dtype)
            err = np.where(kept, ulp_distance(y, expected, dtype), 0.0)
            if np.isnan(err).any() or (err > 1.0).any():
                i = np.unravel_index(
                    int(np.nanargmax(np.where(np.isnan(err), np.inf, err))), y.shape
                )
                raise Violation(
                    f"at dropout={p} in {dtype}: kept probability {tuple(map(int, i))} is "
                    f"{y[i]!r}, expected (1/{SEQ})/(1-p) = {expected[i]!r} to within 1 ulp "
                    f"({err[i]:.3g} ulp off)"
                )
            worst = max(worst, float(err.max()))
    return f"kept probabilities within {worst:.2g} ulp of (1/S)/(1-p) at p in (0, 0.1, 0.5)"


def check_d6(run: _Run) -> str:
    """D6: every output is +0.0 (dropped) or the kept value; nothing in between, no -0.0."""
    for dtype in run.probe.dtypes:
        for p in (*RANDOM_RATES, 1.0):
            y = run.probe.output(p, dtype)
            zero = y == 0
            bad = zero & ~is_positive_zero(y)
            if bad.any():
                raise Violation(f"at dropout={p} in {dtype}: {int(bad.sum())} dropped are -0.0")
            if p < 1.0:
                expected = scaled_reference(np.array([1.0 / SEQ]), p, dtype)[0]
                odd = ~zero & (np.abs(y - expected) > 0.5 * expected)
                if odd.any():
                    i = np.unravel_index(int(np.flatnonzero(odd)[0]), y.shape)
                    raise Violation(
                        f"at dropout={p} in {dtype}: {tuple(map(int, i))} is {y[i]!r}, neither "
                        f"+0.0 nor the kept value {expected!r}"
                    )
    return "dropped probabilities are exactly +0.0"


def check_d9(run: _Run) -> str:
    """D9: fresh masks per call; the framework's seeding call reproduces them."""
    probe = run.probe
    dtype = probe.dtypes[0]
    probe.seed(9)
    probe._cache.clear()
    # One (batch, head) slice: its S*S decisions are independent whenever D4 holds, and the
    # bound below stays honest for a kernel that shares one mask over batch and heads
    # (D4's finding, not D9's).
    first = np.asarray(probe.run(0.5, dtype))[0, 0] != 0
    second = np.asarray(probe.run(0.5, dtype))[0, 0] != 0
    probe.seed(9)
    again = np.asarray(probe.run(0.5, dtype))[0, 0] != 0
    if not np.array_equal(first, again):
        raise Violation(
            f"reseeding with the same seed gave masks differing in {int((first != again).sum())} "
            f"of {first.size} probabilities: not reproducible"
        )
    if np.array_equal(first, second):
        raise Violation("two consecutive calls gave the same mask: masks are not fresh")
    limit = correlation_bound(first.size, run.counted())
    r = _correlation(first.ravel(), second.ravel())
    if abs(r) > limit:
        raise Violation(f"masks of consecutive calls correlate (r = {r:.3f}, bound {limit:.3f})")
    return "fresh mask per call; reseeding reproduces it"


def check_d10(run: _Run) -> str:
    """D10: the mean of out / (1/S) is 1 within exact binomial sampling error (+1 ulp of scale).

    Over the first (batch, head) slice, as D9: a mask shared over batch and heads is D4's
    finding and must not inflate this test's false-alarm rate.
    """
    for dtype in run.probe.dtypes:
        for p in RANDOM_RATES:
            y = run.probe.output(p, dtype)[0, 0]
            n = y.size
            mean = float((y * SEQ).mean())
            bound = binomial_count_interval(n, 1 - p, run.counted())
            scale = 1.0 / (1.0 - p)
            rounding = float(ulp(np.array([scale]), dtype)[0])
            low = bound.low * (scale - rounding) / n
            high = bound.high * (scale + rounding) / n
            if not low <= mean <= high:
                raise Violation(
                    f"at dropout={p} in {dtype}: mean of out/(1/S) is {mean:.5f}, expected 1 "
                    f"(between {low:.5f} and {high:.5f})"
                )
    return f"mean of out/(1/S) is 1 at p in {RANDOM_RATES}"


CHECKS = {
    "D3": check_d3,
    "D4": check_d4,
    "D5": check_d5,
    "D6": check_d6,
    "D9": check_d9,
    "D10": check_d10,
}


def _random_tests(n_dtypes: int) -> int:
    return n_dtypes * len(RANDOM_RATES) * 4 + 1 + n_dtypes * len(RANDOM_RATES)


def _not_observable(run: _Run) -> str:
    raise NotApplicable("not observable through the identity trick")


def check_attention(
    probe: AttentionProbe,
    *,
    name: str,
    backend: str,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
    progress: Callable[[ClauseResult], None] | None = None,
) -> ConformanceReport:
    """Audit one attention kernel; a report over every D clause (those it cannot show: n/a).

    Parameters
    ----------
    probe : AttentionProbe
        The kernel under the identity trick.
    name : str
        The kernel's name in the report.
    backend : str
        The backend whose worker runs it.
    seed : int, optional
        Seeds the framework before the first call.
    alpha : float, optional
        Overall false-alarm probability, split equally (Bonferroni) over the random tests.
    progress : callable, optional
        Called with each clause's result.

    Returns
    -------
    ConformanceReport
    """
    per_test = alpha / _random_tests(len(probe.dtypes))
    run = _Run(probe, per_test)
    report = ConformanceReport(name, backend, alpha, per_test, seed)
    probe.seed(seed)
    for clause in CLAUSES:
        check = CHECKS.get(clause, _not_observable)
        result = run_clause(clause, lambda c=check: c(run), run, per_test)
        report.results[clause] = result
        if progress is not None:
            progress(result)
    return report


def identity_inputs(dtype_cast: Callable[[np.ndarray], object]) -> tuple[object, object]:
    """Return zero queries and keys ``(B, H, S, S)`` and identity values, cast by ``dtype_cast``."""
    zeros = np.zeros((BATCH, HEADS, SEQ, SEQ))
    eye = np.broadcast_to(np.eye(SEQ), (BATCH, HEADS, SEQ, SEQ)).copy()
    return dtype_cast(zeros), dtype_cast(eye)
