"""Exact keep thresholds for the keep rule ``keep iff u >= dropout`` (SPEC D4, P3).

Comparing a float32 uniform with a Python float lets each framework round
the rate to float32 on its own terms, which biases the keep rate by up to
2**-25. Rounding the rate *up* to the smallest float32 not below it makes
the float32 comparison exactly equivalent to the real one, whatever the
generator's resolution, so every backend applies the same rule.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

#: Number of bits of the Philox word used as the uniform (P3).
PHILOX_WORD_BITS = 32


def float32_threshold(dropout: float) -> float:
    """Return the smallest float32 ``t >= dropout``.

    For every float32 ``u``, ``u >= t`` holds exactly when ``u >= dropout``
    holds over the reals, so the keep rule of D4 can be evaluated in float32.

    Parameters
    ----------
    dropout : float
        A rate in ``[0, 1]``.

    Returns
    -------
    float
        The threshold, exactly representable in float32.
    """
    t = np.float32(dropout)
    if float(t) < dropout:
        t = np.nextafter(t, np.float32(np.inf))
    return float(t)


def word_threshold(dropout: float, bits: int = PHILOX_WORD_BITS) -> int:
    """Return the integer threshold for a ``bits``-bit random word (P3).

    A word ``w`` maps to ``u = w / 2**bits`` in ``[0, 1)``; ``u >= dropout``
    holds exactly when ``w >= ceil(dropout * 2**bits)``, which is what this
    returns (computed without rounding, from the float's exact value).

    Parameters
    ----------
    dropout : float
        A rate in ``[0, 1]``.
    bits : int, optional
        Width of the random word.

    Returns
    -------
    int
        Threshold in ``[0, 2**bits]``; ``2**bits`` means "drop everything".
    """
    return math.ceil(Fraction(dropout) * 2**bits)


def inverse_keep_scale(dropout: float) -> float:
    """Return ``1 / (1 - dropout)`` correctly rounded to float64, the factor for kept elements (D5).

    ``1.0 / (1.0 - dropout)`` in floats rounds twice (the subtraction, then
    the division), which can put a float64 product 2 ulp from ``X / (1 - p)``.
    Computed exactly and rounded once, the scale keeps every product within
    1 ulp of the correctly rounded quotient.

    Parameters
    ----------
    dropout : float
        A rate in ``[0, 1)``.

    Returns
    -------
    float
        The inverted-dropout scale.
    """
    return float(1 / (1 - Fraction(dropout)))


def scale_compute_dtype(dtype_name: str) -> str:
    """Return the dtype in which ``X * scale`` is computed for an ``X`` of ``dtype_name`` (D5).

    16-bit floats are widened to float32, as PyTorch's own kernels do, so the
    product is rounded once, into ``X``'s dtype; float32 and float64 stay as
    they are. Multiplying by the reciprocal rounded into that dtype is within
    1 ulp of ``X / (1 - p)`` correctly rounded, D5's reference (the argument
    is in :mod:`dropout_ref.core.numerics`), so float32 needs no float64 temporary.

    Parameters
    ----------
    dtype_name : str
        Canonical dtype name of ``X``.

    Returns
    -------
    str
        ``"float32"`` for float16 and bfloat16, else ``dtype_name``.
    """
    return "float32" if dtype_name in ("float16", "bfloat16") else dtype_name
