"""Statistical checks: D4 keep rule, D9 fresh and reproducible masks, D10 expectation.

Each random test runs at ``ctx.alpha_per_test``; its bound comes from
:mod:`dropout_ref.conformance.stats` (exact binomial for counts, normal for correlations
and means).
"""



from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from dropout_ref.conformance.context import CheckContext, Violation
from dropout_ref.conformance.stats import binomial_count_interval, correlation_bound
from dropout_ref.core.numerics import ulp

#: Rates of D4 and D10: where a biased 16-bit uniform shows (tens of sigma at 4e6 elements).
EXTREME_RATES = (0.001, 0.3, 0.999)
#: Rate at which D4 tests independence (neighbours, rows of a batch).
INDEPENDENCE_RATE = 0.3
#: Elements per large sample: 2**22 (4.2e6) in 16-bit dtypes, where a uniform drawn in X's
#: dtype biases the keep rate by tens of sigma at this size (TensorFlow's native dropout);
#: 2**18 in float32/float64, whose uniforms are fine-grained enough that only gross errors
#: (which 2**18 catches) are plausible.
SAMPLE_SIZES = {"float16": 2**22, "bfloat16": 2**22, "float32": 2**18, "float64": 2**18}
#: Rows of the large sample: a "batch" whose rows must get independent masks.
ROWS = 64


@dataclass(frozen=True)
class Sample:
    """Summary of one large call ``fn(ones((ROWS, n / ROWS)), p)``."""

    n: int
    kept: int
    mean: float
    row_corr: float
    neighbour_corr: float


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    denom = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum()) / denom if denom > 0 else (0.0 if (a == b).all() else 1.0)


def sample_size(ctx: CheckContext, dtype: str) -> int:
    """Elements of the large sample in ``dtype`` (a multiple of :data:`ROWS`)."""
    return max(ROWS * 64, int(SAMPLE_SIZES[dtype] * ctx.sample_scale) // ROWS * ROWS)


def large_sample(ctx: CheckContext, dtype: str, p: float) -> Sample:
    """Call the function once on a large all-ones X; shared by D4 and D10."""

    def make() -> Sample:
        n = sample_size(ctx, dtype)
        X = ctx.make(np.ones((ROWS, n // ROWS), np.float32), dtype)
        salt = zlib.crc32(f"{dtype}/{p!r}".encode())
        y = np.asarray(ctx.arrays.to_numpy(ctx.seeded_call(X, p, salt=salt)))
        keep = y != 0
        corr_row = corr_nb = 0.0
        if p == INDEPENDENCE_RATE:
            corr_row = _correlation(keep[:-1].ravel(), keep[1:].ravel())
            flat = keep.ravel()
            corr_nb = _correlation(flat[:-1], flat[1:])
        return Sample(n, int(keep.sum()), float(y.mean(dtype=np.float64)), corr_row, corr_nb)

    return ctx.cached(("large", dtype, p), make)


def check_d4(ctx: CheckContext) -> str:
    """D4: each element is kept independently with probability 1 - p."""
    for dtype in ctx.dtypes:
        for p in EXTREME_RATES:
            s = large_sample(ctx, dtype, p)
            bound = binomial_count_interval(s.n, 1.0 - p, ctx.counted())
            if s.kept not in bound:
                sd = math.sqrt(s.n * p * (1 - p))
                raise Violation(
                    f"at dropout={p} in {dtype}: {s.kept} of {s.n} elements kept "
                    f"({s.kept / s.n:.5f}, {(s.kept - s.n * (1 - p)) / sd:+.1f} sigma); a correct "
                    f"dropout keeps {bound.low:g}..{bound.high:g} (false-alarm probability "
                    f"{bound.alpha:.2g})"
                )
        s = large_sample(ctx, dtype, INDEPENDENCE_RATE)
        pairs = (ROWS - 1) * (s.n // ROWS)
        limit = correlation_bound(pairs, ctx.counted())
        if abs(s.row_corr) > limit:
            raise Violation(
                f"at dropout={INDEPENDENCE_RATE} in {dtype}: masks of neighbouring rows of the "
                f"batch correlate (r = {s.row_corr:.4f}, |r| must be <= {limit:.4f} at "
                f"false-alarm probability {ctx.alpha_per_test:.2g}): the mask is shared across "
                f"the batch"
            )
        limit = correlation_bound(s.n - 1, ctx.counted())
        if abs(s.neighbour_corr) > limit:
            raise Violation(
                f"at dropout={INDEPENDENCE_RATE} in {dtype}: neighbouring elements' keep "
                f"decisions correlate (r = {s.neighbour_corr:.4f}, bound {limit:.4f})"
            )
    return (
        f"keep rate within exact binomial bounds at p in {EXTREME_RATES}, rows and neighbours "
        f"uncorrelated" + ctx.missing_dtypes_note()
    )


def check_d10(ctx: CheckContext) -> str:
    """D10: the mean of out / X is 1, within sampling error plus 1 ulp of the scale.

    With X all ones, ``mean(out / X) = K * s / n`` for ``K`` kept elements of
    value ``s ~ 1 / (1 - p)``. The acceptance interval is the exact binomial
    interval of ``K`` times ``s / n``, widened by 1 ulp of ``s`` in X's dtype:
    a normal approximation is far off at p = 0.001 or 0.999 with few events.
    """
    for dtype in ctx.dtypes:
        for p in EXTREME_RATES:
            s = large_sample(ctx, dtype, p)
            q = 1.0 - p
            bound = binomial_count_interval(s.n, q, ctx.counted())
            scale = 1.0 / q
            rounding = float(ulp(np.array([scale]), dtype)[0])
            low = bound.low * (scale - rounding) / s.n
            high = bound.high * (scale + rounding) / s.n
            if not low <= s.mean <= high:
                raise Violation(
                    f"at dropout={p} in {dtype}: mean of out/X over {s.n} elements is "
                    f"{s.mean:.5f}, expected 1 (between {low:.5f} and {high:.5f}: exact binomial "
                    f"sampling error at false-alarm probability {bound.alpha:.2g}, plus 1 ulp of "
                    f"the scale)"
                )
    return f"mean of out/X is 1 at p in {EXTREME_RATES}" + ctx.missing_dtypes_note()


def check_d9(ctx: CheckContext) -> str:
    """D9: fresh masks on every call; the framework's seeding call reproduces them."""
    X = ctx.make(np.ones((64, 64)), "float32")
    first = np.asarray(ctx.arrays.to_numpy(ctx.seeded_call(X, 0.5, salt=9)))
    second = np.asarray(ctx.arrays.to_numpy(ctx.call(X, 0.5)))
    again = np.asarray(ctx.arrays.to_numpy(ctx.seeded_call(X, 0.5, salt=9)))
    if not np.array_equal(first, again, equal_nan=True):
        differ = int((first != again).sum())
        raise Violation(
            f"seeding {ctx.arrays.name}'s global generator ({ctx.arrays.name}'s seeding call) "
            f"twice with the same seed gave masks that differ in {differ} of {first.size} "
            f"elements: not reproducible"
        )
    if np.array_equal(first != 0, second != 0):
        raise Violation(
            f"two consecutive calls gave the same mask ({first.size} elements at dropout=0.5): "
            f"masks are not fresh"
        )
    limit = correlation_bound(first.size, ctx.counted())
    r = _correlation((first != 0).ravel(), (second != 0).ravel())
    if abs(r) > limit:
        raise Violation(
            f"masks of two consecutive calls correlate (r = {r:.3f}, bound {limit:.3f} at "
            f"false-alarm probability {ctx.alpha_per_test:.2g})"
        )
    return "fresh mask per call; reseeding reproduces it"
