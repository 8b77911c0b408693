"""Wrong dropouts on NumPy arrays (the cheapest backend to run them on)."""



from __future__ import annotations

import numpy as np

from . import Mutant


def _keep(X: np.ndarray, p: float) -> np.ndarray:
    return np.random.random_sample(X.shape) >= p


def no_rescale(X, p):
    if p == 1:
        return np.zeros_like(X)
    return np.where(_keep(X, p), X, X.dtype.type(0))


def scale_by_one_minus_p(X, p):
    if p == 1:
        return np.zeros_like(X)
    return np.where(_keep(X, p), X * X.dtype.type(1 - p), X.dtype.type(0))


def keep_with_probability_p(X, p):
    if p in (0, 1):
        return X if p == 0 else np.zeros_like(X)
    keep = np.random.random_sample(X.shape) < p
    return np.where(keep, X * X.dtype.type(1 / (1 - p)), X.dtype.type(0))


_REUSED: dict[tuple[int, ...], np.ndarray] = {}


def mask_reused(X, p):
    if p in (0, 1):
        return X if p == 0 else np.zeros_like(X)
    u = _REUSED.setdefault(X.shape, np.random.random_sample(X.shape))
    return np.where(u >= p, X * X.dtype.type(1 / (1 - p)), X.dtype.type(0))


def mask_shared_across_batch(X, p):
    if p in (0, 1):
        return X if p == 0 else np.zeros_like(X)
    keep = np.random.random_sample(X.shape[-1:]) >= p  # one mask for every row
    return np.where(keep, X * X.dtype.type(1 / (1 - p)), X.dtype.type(0))


def nan_leak(X, p):
    if p in (0, 1):
        return X if p == 0 else np.zeros_like(X)
    with np.errstate(invalid="ignore"):
        return (_keep(X, p).astype(X.dtype) * X * X.dtype.type(1 / (1 - p))).astype(X.dtype)


def p1_divides_by_zero(X, p):
    if p == 0:
        return X
    with np.errstate(divide="ignore", invalid="ignore"):
        return (_keep(X, p).astype(X.dtype) * X) / X.dtype.type(1 - p)


def dtype_upcast(X, p):
    if p == 1:
        return np.zeros(X.shape)  # float64 whatever X's dtype
    return np.where(_keep(X, p), X.astype(np.float64) / (1 - p), 0.0)


def modifies_x_in_place(X, p):
    if p == 1:
        X[...] = 0
        return X
    keep = _keep(X, p)
    X *= X.dtype.type(1 / (1 - p)) if p < 1 else 0
    X[~keep] = 0
    return X


MUTANTS = [
    Mutant("no_rescale", "numpy", no_rescale, ("D5", "D10"), "kept elements not divided by 1-p"),
    Mutant(
        "scale_by_one_minus_p",
        "numpy",
        scale_by_one_minus_p,
        ("D5", "D10"),
        "kept elements multiplied by 1-p instead of divided",
    ),
    Mutant(
        "keep_with_probability_p",
        "numpy",
        keep_with_probability_p,
        ("D4", "D10"),
        "keeps with probability p (the rate read as keep probability)",
    ),
    Mutant("mask_reused", "numpy", mask_reused, ("D9",), "one mask drawn once, reused forever"),
    Mutant(
        "mask_shared_across_batch",
        "numpy",
        mask_shared_across_batch,
        ("D4",),
        "one mask row broadcast over the batch",
    ),
    Mutant("nan_leak", "numpy", nan_leak, ("D6",), "mask * X: NaN*0 = NaN, -2*0 = -0.0"),
    Mutant(
        "p1_divides_by_zero",
        "numpy",
        p1_divides_by_zero,
        ("D3",),
        "no p=1 special case: X/(1-1) gives inf/NaN",
    ),
    Mutant("dtype_upcast", "numpy", dtype_upcast, ("D7", "D3"), "returns float64 for any X"),
    Mutant("modifies_x_in_place", "numpy", modifies_x_in_place, ("D11",), "writes into X"),
]
