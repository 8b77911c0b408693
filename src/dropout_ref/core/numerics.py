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
#: Largest finite value of the 16-bit dtypes.
MAX_FINITE = {"float16": 65504.0, "bfloat16": (2 - 2.0**-7) * 2.0**127}


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
        ``2**(e - precision + 1)`` where ``2**e <= |value| < 2**(e + 1)``, with ``e``
        no lower than the smallest normal exponent (so 0 and subnormals get the
        subnormal spacing).
    """
    magnitude = np.abs(np.asarray(values, dtype=np.float64))
    exponent = np.full_like(magnitude, MIN_EXPONENT[dtype])
    np.log2(magnitude, where=magnitude > 0, out=exponent)
    exponent = np.maximum(np.floor(exponent), MIN_EXPONENT[dtype])
    return np.ldexp(1.0, (exponent - (PRECISION_BITS[dtype] - 1)).astype(int))


def round_to_dtype(values: np.ndarray, dtype: str) -> np.ndarray:
    """Round ``values`` to ``dtype`` (nearest, ties to even), once, and return them as float64.

    float32 and float64 are NumPy's own casts from extended precision. NumPy
    has no bfloat16 and casts extended precision to float16 through float64,
    which rounds twice; both 16-bit types are therefore rounded here in one step:
    scaled by a power of two so the last kept bit is the units digit, rounded
    to an integer (ties to even), scaled back (all exact in extended precision).

    Parameters
    ----------
    values : numpy.ndarray
        Values in extended or double precision.
    dtype : str
        Target dtype name.

    Returns
    -------
    numpy.ndarray
        The rounded values, widened to float64 (overflow gives inf).
    """
    values = np.asarray(values, dtype=np.longdouble)
    if dtype not in ("float16", "bfloat16"):
        with np.errstate(over="ignore"):  # overflow to inf is the right rounding here
            return values.astype(dtype).astype(np.float64)
    finite = np.isfinite(values)
    spacing = ulp(np.where(finite, values, 0).astype(np.float64), dtype).astype(np.longdouble)
    rounded = np.where(finite, np.rint(np.where(finite, values, 0) / spacing) * spacing, values)
    largest = MAX_FINITE[dtype]
    # Beyond the largest finite value plus half its spacing, the value rounds to inf.
    overflow = np.abs(rounded) > largest
    rounded = np.where(overflow, np.copysign(np.inf, values), rounded)
    return rounded.astype(np.float64)


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
