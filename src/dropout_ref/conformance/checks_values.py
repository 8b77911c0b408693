"""Checks of the values dropout produces: D5 scale, D6 dropped elements, D8 gradient."""



from __future__ import annotations

import numpy as np

from dropout_ref.conformance.checks_contract import SPECIAL_VALUES
from dropout_ref.conformance.context import CheckContext, Violation, is_positive_zero
from dropout_ref.conformance.stats import binomial_count_interval
from dropout_ref.core.contract import NotApplicable
from dropout_ref.core.numerics import scaled_reference, ulp, ulp_distance

#: Rates of D5: 0.1, the most common (inexact 1/(1-p)); 0.5 (exact scale); 0.3 (inexact
#: reciprocal); 0.999 (scale ~1000).
SCALE_RATES = (0.1, 0.5, 0.3, 0.999)
#: Rates of D6: even odds, nearly all dropped, and 1 - 1e-8 (1 - p rounds to 0 in float32).
DROP_RATES = (0.5, 0.999, 1.0 - 1e-8)
#: Rates of D8.
GRAD_RATES = (0.0, 0.5, 1.0)


def check_d5(ctx: CheckContext) -> str:
    """D5: every kept element is within 1 ulp of X / (1 - p) correctly rounded to X's dtype."""
    rng = ctx.rng(5)
    worst = 0.0
    for dtype in ctx.dtypes:
        kept_any = 0
        for p in SCALE_RATES:
            # About 65 kept elements at p=0.999, thousands at the other rates.
            n = 2**16 if p > 0.9 else 4096
            X = ctx.make(rng.uniform(0.5, 2.0, size=n) * rng.choice([-1, 1], n), dtype)
            x = ctx.exact_values(X)
            y = ctx.exact_values(ctx.call(X, p))
            kept = y != 0
            # The real quotient correctly rounded into X's dtype: see dropout_ref.core.numerics
            # for why this reading of D5 is the one that allows a precomputed reciprocal.
            expected = scaled_reference(x, p, dtype)
            err = np.where(kept, ulp_distance(y, expected, dtype), 0.0)
            if np.isnan(err).any() or (err > 1.0).any():
                i = int(np.flatnonzero(np.isnan(err) | (err > 1.0))[0])
                raise Violation(
                    f"at dropout={p} in {dtype}: kept element {i} is {y[i]!r}, expected "
                    f"X/(1-p) rounded to {dtype} = {expected[i]!r} to within 1 ulp "
                    f"({err[i]:.3g} ulp off)"
                )
            kept_any += int(kept.sum())
            worst = max(worst, float(err.max()))
        if not kept_any:
            # At p=0.5 a correct dropout keeps none of 4096 with probability 2**-4096.
            raise Violation(f"in {dtype}: no element was kept at any rate {SCALE_RATES}")
    return (
        f"kept elements within {worst:.2g} ulp of X/(1-p) rounded to X's dtype"
        + ctx.missing_dtypes_note()
    )


def _plausibly_kept(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Where ``y`` could be ``x / (1 - p)`` for some ``p < 1`` (sign and class of ``x``)."""
    nan_kept = np.isnan(x) & np.isnan(y)
    same_sign = (np.signbit(x) == np.signbit(y)) & ~np.isnan(y)
    inf_kept = np.isinf(x) & (y == x)
    zero_kept = (x == 0) & (y == 0) & same_sign
    finite_kept = np.isfinite(x) & (x != 0) & (y != 0) & same_sign
    return nan_kept | inf_kept | zero_kept | finite_kept


def check_d6(ctx: CheckContext) -> str:
    """D6: dropped elements are exactly +0.0, even where X is NaN or inf.

    Which element was dropped is not observable where X is NaN, so the check
    counts the elements whose output is not +0.0: those must look kept (NaN for
    NaN, the same infinity, same sign), and among NaN/inf/-0.0 inputs their
    number must fit Binomial(n, 1 - p) at the run's false-alarm level.
    """
    notes = []
    for dtype in ctx.dtypes:
        X = ctx.make(np.tile(SPECIAL_VALUES, 1000), dtype)
        x = ctx.exact_values(X)
        special = np.isnan(x) | np.isinf(x) | ((x == 0) & np.signbit(x))
        for p in DROP_RATES:
            y = ctx.exact_values(ctx.call(X, p))
            dropped = is_positive_zero(y)
            wrong = ~dropped & ~_plausibly_kept(x, y)
            if wrong.any():
                i = int(np.flatnonzero(wrong)[0])
                raise Violation(
                    f"at dropout={p!r} in {dtype}: element {i} is {y[i]!r} where X is {x[i]!r}; "
                    f"expected +0.0 (dropped) or X/(1-p) (kept) "
                    f"[{int(wrong.sum())} such elements]"
                )
            bound = binomial_count_interval(int(special.sum()), 1.0 - p, ctx.counted())
            kept_special = int((~dropped & special).sum())
            if kept_special > bound.high:
                i = int(np.flatnonzero(~dropped & special & np.isnan(x))[0]) if (
                    ~dropped & special & np.isnan(x)
                ).any() else int(np.flatnonzero(~dropped & special)[0])
                raise Violation(
                    f"at dropout={p!r} in {dtype}: {kept_special} of {int(special.sum())} "
                    f"NaN/inf/-0.0 elements came out non-zero, a correct dropout keeps at most "
                    f"{bound.high:g} (false-alarm probability {bound.alpha:.2g}); e.g. element {i} "
                    f"is {y[i]!r} where X is {x[i]!r}: NaN/inf leak through dropped elements"
                )
            notes.append(kept_special)
    return "dropped elements are +0.0 under NaN/inf/negative X" + ctx.missing_dtypes_note()


def _forward_raises(ctx: CheckContext, X, p: float) -> bool:
    try:
        ctx.call(X, p)
    except Exception:
        return True
    return False


def check_d8(ctx: CheckContext) -> str:
    """D8: gradient = keep * G / (1 - p) with the forward mask; dropped elements get exactly 0."""
    rng = ctx.rng(8)
    grad_dtypes = [d for d in ("float32", "float64") if d in ctx.dtypes]
    skipped: list[str] = []
    for dtype in grad_dtypes:
        for p in GRAD_RATES:
            x_np = rng.uniform(0.5, 2.0, size=(16, 64)) * rng.choice([-1, 1], size=(16, 64))
            cotangent = rng.normal(size=(16, 64)).astype(dtype)
            X = ctx.make(x_np, dtype)
            try:
                out, grad = ctx.arrays.value_and_grad(lambda x, p=p: ctx.call(x, p), X, cotangent)
            except NotApplicable:
                raise
            except Exception:
                if p == 1.0 and _forward_raises(ctx, X, p):
                    # Refusing p=1 is D3's failure, not D8's.
                    skipped.append(f"p=1 not checked in {dtype}: the forward pass raises (D3)")
                    continue
                raise
            out = np.asarray(out, np.float64)
            grad = np.asarray(grad, np.float64)
            keep = out != 0  # X has no zeros, so a kept element is non-zero
            scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
            expected = np.where(keep, cotangent * scale, 0.0)
            bad_drop = ~keep & (grad != 0)
            if bad_drop.any():
                i = int(np.flatnonzero(bad_drop)[0])
                raise Violation(
                    f"at dropout={p} in {dtype}: element {i} was dropped but its gradient is "
                    f"{grad.flat[i]!r}, expected exactly 0 [{int(bad_drop.sum())} such elements]"
                )
            err = np.abs(grad - expected) / ulp(expected, dtype)
            bad_keep = keep & ~(err <= 2.0)
            if bad_keep.any():
                i = int(np.flatnonzero(bad_keep)[0])
                raise Violation(
                    f"at dropout={p} in {dtype}: kept element {i} has gradient {grad.flat[i]!r}, "
                    f"expected G/(1-p) = {expected.flat[i]!r} [{int(bad_keep.sum())} such elements]"
                )
    note = f"; {skipped[0]}" if skipped else ""
    return f"gradient = keep*G/(1-p) with the forward mask ({', '.join(grad_dtypes)}){note}"
