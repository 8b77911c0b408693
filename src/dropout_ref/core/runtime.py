"""Rates, seeds and offsets known only when a compiled program runs (SPEC S1, S2).

Inside ``torch.compile``, ``tf.function`` or ``jax.jit`` a rate or seed passed
as a 0-d tensor has no Python value: the program must compute the keep
threshold and the scale itself, and compute them exactly as the eager path
does from ``float(r)`` (:mod:`dropout_ref.core.thresholds`), so that the
compiled output equals the eager one bit for bit and one program serves every
value. This module holds that arithmetic once, written with operators and a
few namespace functions (:class:`RateMath`) so every framework runs the same
steps; the adapters draw the words and select (``DropoutOps.runtime_dropout``).

Exactness, for a rate ``r`` of dtype float16, bfloat16, float32 or float64:

- threshold ``ceil(r * 2**32)``: ``r * 2**32`` only shifts the exponent, so the
  product and its ``ceil`` are exact in ``r``'s own dtype, and an integer not
  above ``2**32`` converts exactly to the word dtype (``2**32``, "drop all",
  is a flag instead, as ``uint32`` cannot hold it).
- scale ``RN64(1 / (1 - r))`` (the eager path's float64 value, then rounded into
  the compute dtype as the eager path does): ``1 - r`` is split exactly into
  ``d_hi + d_lo`` (Fast2Sum), and :func:`correctly_rounded_reciprocal` rounds
  ``1 / (d_hi + d_lo)`` to nearest with exact residuals (Dekker's product,
  Veltkamp's split: no fused multiply-add needed). For a float32 rate
  ``d_lo`` is zero (``r >= 2**-30``) and the midpoint test is exact; every
  float32 rate in [0, 1) was checked against the eager value (docs/schedules.md).
- JAX without ``jax_enable_x64`` works in float32: the same steps give the
  correctly rounded float32 scale, which equals the eager path's double-rounded
  ``RN32(RN64(1 / (1 - r)))`` unless ``1 / (1 - r)`` lies within ``2**-53``
  (relative) of a float32 rounding boundary (checked for every float32 rate).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from dropout_ref.core.contract import DropoutOps
from dropout_ref.core.thresholds import inverse_keep_scale, word_threshold
from dropout_ref.core.validation import (
    require_float_dtype,
    static_shape,
    validate_noise_shape,
    validate_offset,
    validate_rate,
    validate_seed,
)

#: Veltkamp's splitting constants ``2**s + 1`` (s = ceil(precision / 2)).
_SPLIT = {"float64": 134217729.0, "float32": 4097.0}

TWO_32 = 4294967296.0

#: The float32 rates whose eager scale ``RN32(RN64(1 / (1 - r)))`` is not the correctly
#: rounded ``RN32(1 / (1 - r))`` that float32 arithmetic computes: found by checking every
#: float32 rate in [0, 1) (benchmarks/runtime_scale_sweep.py); (rate, eager float32 scale).
FLOAT32_DOUBLE_ROUNDED = (
    (0.06997988373041153, 1.0752454996109009),  # float32 bits 0x3D8F519D -> 0x3F89A1A5
    (0.23348142206668854, 1.3045998811721802),  # float32 bits 0x3E6F15C1 -> 0x3FA6FD21
)


class RateMath(Protocol):
    """The namespace functions the rate arithmetic needs, besides ``+ - * /`` and comparisons."""

    def cast(self, x: Any, dtype: str) -> Any:
        """Return ``x`` converted to ``dtype`` (round to nearest)."""

    def ceil(self, x: Any) -> Any:
        """Return ``ceil(x)`` element-wise."""

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        """Return ``a`` where ``cond`` else ``b`` (same dtype)."""

    def zeros_like(self, x: Any) -> Any:
        """Return zeros of ``x``'s shape and dtype."""

    def nextafter(self, x: Any, up: Any) -> Any:
        """Return the float next to ``x`` towards +inf where ``up``, else towards -inf."""

    def barrier(self, x: Any) -> Any:
        """Return ``x``, opaque to algebraic simplification.

        XLA's simplifier rewrites ``(1 - r) - 1`` as ``-r``, which is false in
        floating point and exactly the rounding error the scale needs. Used only
        where a constant could be folded across (``1 - r``, Veltkamp's ``a * factor``):
        each barrier keeps the scalar ops around it from fusing, and unfused scalar
        ops cost a kernel launch each.
        """


@dataclass
class RuntimeRate:
    """Compiled counterparts of ``validate_rate``, ``word_threshold``, ``inverse_keep_scale``.

    Attributes
    ----------
    invalid : bool tensor
        ``r`` is NaN, negative or above 1: the caller fails loudly or returns NaN.
    drop_all : bool tensor
        ``ceil(r * 2**32) == 2**32``: every element is dropped (D3).
    threshold : float tensor
        ``ceil(r * 2**32)`` in the work dtype, 0 where ``drop_all`` or ``invalid``:
        integral, below ``2**32``, exact when converted to the word dtype.
    scale : float tensor
        ``1 / (1 - r)`` in the work dtype (1 where ``drop_all`` or ``invalid``).
    rate : float tensor
        ``r`` in the work dtype, 0 where ``invalid``.
    """

    invalid: Any
    drop_all: Any
    threshold: Any
    scale: Any
    rate: Any


def _split(a: Any, factor: float, ns: RateMath) -> tuple[Any, Any]:
    """Veltkamp's split: ``a = hi + lo`` exactly, each half short enough for exact products."""
    c = ns.barrier(a * factor)
    hi = c - (c - a)
    return hi, a - hi


def _two_product(a: Any, b: Any, factor: float, ns: RateMath) -> tuple[Any, Any]:
    """Dekker's product: ``a * b = p + e`` exactly, ``p`` the rounded product."""
    p = a * b
    ah, al = _split(a, factor, ns)
    bh, bl = _split(b, factor, ns)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def _residual(q: Any, d_hi: Any, factor: float, ns: RateMath) -> Any:
    """Return ``1 - q * d_hi`` exactly (``q`` within a few ulp of ``1 / d_hi``)."""
    p, e = _two_product(q, d_hi, factor, ns)
    return (1.0 - p) - e  # 1 - p exact (Sterbenz); the result is representable


def correctly_rounded_reciprocal(d_hi: Any, d_lo: Any, factor: float, ns: RateMath) -> Any:
    """Return ``1 / (d_hi + d_lo)`` rounded to nearest, for ``|d_lo| <= ulp(d_hi) / 2``.

    A first quotient corrected once lands on the correctly rounded value or
    its neighbour; which side of the midpoint between them the exact quotient
    lies on is then the sign of ``1 - m * (d_hi + d_lo)``, computed from exact
    products (no fused multiply-add needed, no final rounding of a sum that a
    tie could tip).
    """
    q0 = 1.0 / d_hi
    res0 = _residual(q0, d_hi, factor, ns)
    q = q0 + (res0 - q0 * d_lo) * q0
    res = _residual(q, d_hi, factor, ns)
    up = (res - q * d_lo) >= 0.0  # the exact quotient is above q (or equal)
    neighbour = ns.nextafter(q, up)
    h = (neighbour - q) * 0.5  # exact: half the gap to the neighbour
    # 1 - (q + h) * D with D = d_hi + d_lo, the midpoint m = q + h.
    g = (res - h * d_hi) - (q * d_lo + h * d_lo)
    beyond = ns.where(up, g > 0.0, g < 0.0)
    return ns.where(beyond, neighbour, q)


def runtime_rate(r: Any, work: str, ns: RateMath) -> RuntimeRate:
    """Compute the keep threshold and the scale of a runtime rate ``r`` (see the module notes).

    Parameters
    ----------
    r : 0-d float tensor
        The rate, of any floating dtype that converts exactly to ``work``.
    work : {"float64", "float32"}
        The dtype of the arithmetic: float64 wherever the framework has it.
    ns : RateMath
        The framework's namespace functions.

    Returns
    -------
    RuntimeRate
    """
    r = ns.cast(r, work)
    zero = ns.zeros_like(r)
    invalid = ~((r >= 0.0) & (r <= 1.0))  # NaN compares false
    r = ns.where(invalid, zero, r)
    t = ns.ceil(r * TWO_32)
    drop_all = t >= TWO_32
    threshold = ns.where(drop_all, zero, t)
    # Keeps the scale finite where nothing is kept (r == 1 would divide by zero).
    r_scale = ns.where(drop_all, zero, r)
    d_hi = ns.barrier(1.0 - r_scale)
    d_lo = -(r_scale + (d_hi - 1.0))  # Fast2Sum: 1 - r == d_hi + d_lo exactly
    scale = correctly_rounded_reciprocal(d_hi, d_lo, _SPLIT[work], ns)
    if work == "float32":
        for rate, eager in FLOAT32_DOUBLE_ROUNDED:
            scale = ns.where(r_scale == rate, ns.cast(eager, work), scale)
    return RuntimeRate(invalid, drop_all, threshold, scale, r)


def python_rate(rate: float) -> tuple[int, float]:
    """Return the eager threshold and float64 scale of a checked Python rate (mixed calls).

    A Python rate with a runtime seed keeps the eager constants exactly, also
    where the work dtype (JAX without x64) could not hold the rate.
    """
    return word_threshold(rate), (inverse_keep_scale(rate) if rate < 1.0 else 1.0)


def apply_runtime_dropout(
    ops: DropoutOps,
    X: Any,
    dropout: Any,
    seed: Any,
    offset: Any,
    noise_shape: Any,
    global_shape: Any,
    block_start: Any,
    key: Any,
) -> Any:
    """Check the host-side arguments and hand a runtime rate/seed/offset to the backend (S1, S2).

    Python values among the arguments are checked as in the eager path (D1
    errors unchanged); the runtime ones are checked by the backend's
    :meth:`~dropout_ref.core.contract.DropoutOps.runtime_dropout`.
    """
    ops.check_array(X)
    require_float_dtype(ops.dtype_name(X), ops.name, ops.conversion_hint)
    if global_shape is not None or block_start is not None:
        raise TypeError(
            "global_shape/block_start (SPEC P7) need a Python rate, seed and offset; "
            "got a rate or seed known only inside compiled code"
        )
    rate = dropout if ops.is_runtime(dropout) else validate_rate(dropout)
    seed = seed if ops.is_runtime(seed) else validate_seed(seed)
    noise = validate_noise_shape(noise_shape, static_shape(X))
    if not ops.is_runtime(offset):
        count = ops.size(X) if noise is None else (None if None in noise else math.prod(noise))
        offset = validate_offset(offset, count)
    if key is not None:
        ops.check_key(key)
        if seed is not None:
            raise TypeError("pass either key= or seed=, not both")
    if isinstance(rate, float) and rate == 0.0:
        return X  # D2, decided on the host
    return ops.runtime_dropout(X, rate, seed, offset, noise, key)


def checked_rates(rates: Any, convert: Callable[[float], Any] | None = None) -> Any:
    """Check a step's rates on the host before they become runtime values (SPEC D1, S3).

    A compiled step receives a schedule's rates as tensors, where a bad value
    could at best make the output NaN (S1). Checked here first, a bad rate
    fails as an eager call's would, naming it.

    Parameters
    ----------
    rates : None, sequence of float or mapping of str to float
        The MLP's rates per hidden dropout, or the GPT's per site.
    convert : callable, optional
        Applied to each checked rate (e.g. making it a 0-d float64 tensor).

    Returns
    -------
    None, tuple or dict
        ``convert`` of each rate as a Python float, in the same structure
        (the floats themselves without ``convert``).

    Raises
    ------
    TypeError, ValueError
        For a rate that ``dropout_layer`` would refuse, named ``rates[i]`` or
        ``rates['site']``.
    """
    if rates is None:
        return None
    convert = convert or float
    if isinstance(rates, Mapping):
        return {
            site: convert(validate_rate(rate, f"rates[{site!r}]")) for site, rate in rates.items()
        }
    return tuple(convert(validate_rate(rate, f"rates[{i}]")) for i, rate in enumerate(rates))
