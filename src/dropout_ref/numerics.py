"""Floating-point yardsticks for SPEC D5: ulps, correct rounding, and the scaled reference.

D5 asks a kept element to equal ``X / (1 - p)`` "evaluated in X's dtype, to
within 1 ulp", and allows multiplying by a precomputed reciprocal. The
reading that makes both hold is: within 1 ulp of the real quotient
*correctly rounded* into X's dtype. Multiplying by the reciprocal rounded
once into the compute dtype meets it provably (the product is less than 1.5
ulp from the real quotient, the rounded quotient at most 0.5 ulp, and two
values of the dtype less than 2 ulp apart are at most 1 ulp apart); measured
against the unrounded real quotient it may be up to 1.5 ulp off.
"""

from __future__ import annotations

import numpy as np

#: Significand bits (including the implicit one) of each floating dtype.
PRECISION_BITS = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}
#: Smallest normal exponent of each floating dtype (below it, ulps stop shrinking).
MIN_EXPONENT = {"float16": -14, "bfloat16": -126, "float32": -126, "float64": -1022}


def ulp(values: np.ndarray, dtype: str) -> np.ndarray:
    """Return the spacing of ``dtype`` at each of ``values`` (bfloat16 too), as float64.

    Parameters
    ----------
    values : numpy.ndarray
        Finite values.
    dtype : str
        One of ``float16``, ``bfloat16``, ``float32``, ``float64``.

    Returns
    -------
    numpy.ndarray
        ``2**(e - precision + 1)`` where ``2**e <= |value| < 2**(e + 1)``.
    """
    magnitude = np.abs(np.asarray(values, dtype=np.float64))
    exponent = np.zeros_like(magnitude)
    np.log2(magnitude, where=magnitude > 0, out=exponent)
    exponent = np.maximum(np.floor(exponent), MIN_EXPONENT[dtype])
    return np.ldexp(1.0, (exponent - (PRECISION_BITS[dtype] - 1)).astype(int))


def round_to_dtype(values: np.ndarray, dtype: str) -> np.ndarray:
    """Round ``values`` to ``dtype`` (nearest, ties to even) and return them as float64.

    Parameters
    ----------
    values : numpy.ndarray
        Values in extended or double precision.
    dtype : str
        Target dtype name; bfloat16 is rounded by hand, NumPy has no such type.

    Returns
    -------
    numpy.ndarray
        The rounded values, widened to float64 (overflow gives inf).
    """
    with np.errstate(over="ignore"):  # overflow to inf is the right rounding here
        if dtype != "bfloat16":
            return np.asarray(values).astype(dtype).astype(np.float64)
        bits = np.asarray(values).astype(np.float32).view(np.uint32)
    bits = (bits + (((bits >> 16) & 1) + 0x7FFF)) & np.uint32(0xFFFF0000)
    return bits.view(np.float32).astype(np.float64)


def scaled_reference(X: np.ndarray, dropout: float, dtype: str) -> np.ndarray:
    """Return ``X / (1 - dropout)`` computed in extended precision, correctly rounded to ``dtype``.

    Parameters
    ----------
    X : numpy.ndarray
        The values ``X`` holds (already in ``dtype``), as floats.
    dropout : float
        The rate, ``0 <= dropout < 1``.
    dtype : str
        X's dtype name.

    Returns
    -------
    numpy.ndarray
        D5's reference, as float64.
    """
    exact = np.asarray(X, dtype=np.longdouble) / (np.longdouble(1) - np.longdouble(dropout))
    return round_to_dtype(exact, dtype)


def ulp_distance(actual: np.ndarray, reference: np.ndarray, dtype: str) -> np.ndarray:
    """Return ``|actual - reference|`` in ulps of ``dtype`` at ``reference``."""
    actual = np.asarray(actual, dtype=np.float64)
    return np.abs(actual - reference) / ulp(reference, dtype)
