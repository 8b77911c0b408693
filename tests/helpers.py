"""Numerical helpers shared by the tests: ulps per dtype and the correctly rounded reference."""

from __future__ import annotations

import numpy as np

#: Significand bits (including the implicit one) of each floating dtype.
PRECISION_BITS = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}
#: Smallest normal exponent of each floating dtype (below it, ulps stop shrinking).
MIN_EXPONENT = {"float16": -14, "bfloat16": -126, "float32": -126, "float64": -1022}


def ulp(values: np.ndarray, dtype: str) -> np.ndarray:
    """Return the spacing of ``dtype`` at each of ``values`` (bfloat16 too)."""
    magnitude = np.abs(np.asarray(values, dtype=np.float64))
    exponent = np.zeros_like(magnitude)
    np.log2(magnitude, where=magnitude > 0, out=exponent)
    exponent = np.maximum(np.floor(exponent), MIN_EXPONENT[dtype])
    return np.ldexp(1.0, (exponent - (PRECISION_BITS[dtype] - 1)).astype(int))


def round_to_dtype(values: np.ndarray, dtype: str) -> np.ndarray:
    """Round extended-precision ``values`` to ``dtype`` (nearest, ties to even); return float64."""
    if dtype != "bfloat16":
        with np.errstate(over="ignore"):  # overflow to inf is the right rounding here
            return np.asarray(values).astype(dtype).astype(np.float64)
    bits = np.asarray(values).astype(np.float32).view(np.uint32)
    bits = (bits + (((bits >> 16) & 1) + 0x7FFF)) & np.uint32(0xFFFF0000)
    return bits.view(np.float32).astype(np.float64)


def scaled_reference(X: np.ndarray, dropout: float, dtype: str) -> np.ndarray:
    """Return ``X / (1 - dropout)`` in extended precision, correctly rounded to ``dtype``."""
    exact = np.asarray(X, dtype=np.longdouble) / (np.longdouble(1) - np.longdouble(dropout))
    return round_to_dtype(exact, dtype)


def ulp_distance(actual: np.ndarray, reference: np.ndarray, dtype: str) -> np.ndarray:
    """Return ``|actual - reference|`` in ulps of ``dtype`` at the reference."""
    actual = np.asarray(actual, dtype=np.float64)
    return np.abs(actual - reference) / ulp(reference, dtype)
