"""Deterministic checks of the calling contract: D1 rates, D2 p=0, D3 p=1, D7 types, D11 purity."""



from __future__ import annotations

import math
from typing import Any

import numpy as np

from dropout_ref.conformance.context import CheckContext, Violation, is_positive_zero

#: Values of X that dropout must survive: NaN, infinities, signed zeros, negatives.
SPECIAL_VALUES = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, -2.0, 3.0, 0.125, -1.5e-3])

#: Shapes of D7: a matrix, a 0-d array and an empty array.
SHAPES: tuple[tuple[int, ...], ...] = ((3, 5), (), (0, 4))


def _first(items: list[str], limit: int = 3) -> str:
    more = f" (and {len(items) - limit} more)" if len(items) > limit else ""
    return "; ".join(items[:limit]) + more


def _same_meta(ctx: CheckContext, X: Any, out: Any, what: str) -> None:
    """Raise unless ``out`` has ``X``'s shape, dtype and device (D7)."""
    arrays = ctx.arrays
    x_shape = tuple(np.shape(arrays.to_numpy(X)))
    got_shape = tuple(np.shape(arrays.to_numpy(out)))
    if got_shape != x_shape:
        raise Violation(f"{what}: output shape {got_shape}, expected X's {x_shape}")
    if arrays.dtype_name(out) != arrays.dtype_name(X):
        raise Violation(
            f"{what}: output dtype {arrays.dtype_name(out)}, expected X's {arrays.dtype_name(X)}"
        )
    if arrays.device_name(out) != arrays.device_name(X):
        raise Violation(
            f"{what}: output on {arrays.device_name(out)}, X on {arrays.device_name(X)}"
        )


def _bad_rates(ctx: CheckContext) -> list[tuple[Any, str | None]]:
    """Bad rates with the text their error message must contain (None: only the type)."""
    return [
        (-0.1, "-0.1"),
        (1.5, "1.5"),
        (math.nan, "nan"),
        (math.inf, "inf"),
        (True, "True"),
        ("0.5", "0.5"),
        (None, "None"),
        (ctx.make(np.array([0.2, 0.3]), "float32"), None),
    ]


def check_d1(ctx: CheckContext) -> str:
    """D1: a bad rate raises ValueError/TypeError whose message contains the value."""
    X = ctx.make(np.ones((2, 3)), "float32")
    problems = []
    for rate, text in _bad_rates(ctx):
        shown = "a 2-element tensor" if text is None else repr(rate)
        try:
            ctx.call(X, rate)
        except (ValueError, TypeError) as exc:
            if text is not None and text.lower() not in str(exc).lower():
                problems.append(
                    f"dropout={shown} raised {type(exc).__name__} whose message does not "
                    f"contain {text!r}: {str(exc)[:100]!r}"
                )
        except Exception as exc:
            problems.append(
                f"dropout={shown} raised {type(exc).__name__}, expected ValueError/TypeError: "
                f"{str(exc).splitlines()[0][:100] if str(exc) else ''!r}"
            )
        else:
            problems.append(f"dropout={shown} was accepted, expected ValueError/TypeError")
    if problems:
        raise Violation(_first(problems))
    return f"{len(_bad_rates(ctx))} bad rates refused with ValueError/TypeError naming the value"


def check_d2(ctx: CheckContext) -> str:
    """D2: dropout=0 returns X's values bit for bit, with X's shape, dtype, device."""
    for dtype in ctx.dtypes:
        X = ctx.make(SPECIAL_VALUES, dtype)
        out = ctx.call(X, 0.0)
        _same_meta(ctx, X, out, f"at dropout=0.0 in {dtype}")
        x, y = ctx.exact_values(X), ctx.exact_values(out)
        same = (np.isnan(x) & np.isnan(y)) | ((x == y) & (np.signbit(x) == np.signbit(y)))
        if not same.all():
            i = int(np.flatnonzero(~same)[0])
            raise Violation(
                f"at dropout=0.0 in {dtype}: element {i} is {y[i]!r}, expected X's {x[i]!r}"
            )
    return "X returned unchanged in every dtype" + ctx.missing_dtypes_note()


def check_d3(ctx: CheckContext) -> str:
    """D3: dropout=1 returns +0.0 everywhere, even where X is NaN or inf."""
    for dtype in ctx.dtypes:
        X = ctx.make(np.tile(SPECIAL_VALUES, 4), dtype)
        out = ctx.call(X, 1.0)
        _same_meta(ctx, X, out, f"at dropout=1.0 in {dtype}")
        x, y = ctx.exact_values(X), ctx.exact_values(out)
        bad = ~is_positive_zero(y)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise Violation(
                f"at dropout=1.0 in {dtype}: {int(bad.sum())} of {y.size} elements are not +0.0, "
                f"e.g. element {i} is {y[i]!r} where X is {x[i]!r}"
            )
    return "all +0.0 in every dtype, even under NaN/inf" + ctx.missing_dtypes_note()


def check_d7(ctx: CheckContext) -> str:
    """D7: shape/dtype/device kept for every float dtype, 0-d and empty; int and bool refused."""
    rng = ctx.rng(7)
    for dtype in ctx.dtypes:
        for shape in SHAPES:
            X = ctx.make(rng.uniform(0.5, 2.0, size=shape), dtype)
            try:
                out = ctx.call(X, 0.5)
            except Exception as exc:
                raise Violation(
                    f"at dropout=0.5 in {dtype} with shape {shape}: raised "
                    f"{type(exc).__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''}"
                ) from exc
            _same_meta(ctx, X, out, f"at dropout=0.5 in {dtype} with shape {shape}")
    for dtype in ("int32", "bool"):
        X = ctx.make(np.arange(6).reshape(2, 3).astype(dtype), dtype)
        try:
            ctx.call(X, 0.5)
        except TypeError as exc:
            if "float" not in str(exc).lower():
                raise Violation(
                    f"{dtype} X raised TypeError that does not say how to convert to a float "
                    f"dtype: {str(exc)[:100]!r}"
                ) from exc
        except Exception as exc:
            raise Violation(
                f"{dtype} X raised {type(exc).__name__}, expected TypeError: "
                f"{str(exc).splitlines()[0][:100] if str(exc) else ''!r}"
            ) from exc
        else:
            raise Violation(f"{dtype} X was accepted, expected TypeError saying how to convert")
    return (
        "shape, dtype, device kept for 2-d, 0-d and empty X; int32/bool refused"
        + ctx.missing_dtypes_note()
    )


def check_d11(ctx: CheckContext) -> str:
    """D11: X is not modified by the call."""
    rng = ctx.rng(11)
    for dtype in ctx.dtypes:
        for p in (0.5, 1.0):
            X = ctx.make(rng.uniform(-2.0, 2.0, size=(8, 16)), dtype)
            before = ctx.exact_values(X).copy()
            try:
                ctx.call(X, p)
            except Exception:
                pass
            after = ctx.exact_values(X)
            if not np.array_equal(before, after):
                changed = int((before != after).sum())
                raise Violation(
                    f"at dropout={p} in {dtype}: the call changed {changed} elements of X"
                )
    return "X unchanged after every call" + ctx.missing_dtypes_note()
