"""The dropout algorithm, written once for every backend (SPEC D1-D11, P1).

An adapter supplies :class:`~dropout_ref.backend_api.DropoutOps`;
:func:`make_dropout_layer` turns them into the public ``dropout_layer``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dropout_ref.backend_api import DropoutOps
from dropout_ref.thresholds import inverse_keep_scale, word_threshold
from dropout_ref.validation import (
    require_float_dtype,
    validate_offset,
    validate_rate,
    validate_seed,
)

DropoutLayer = Callable[..., Any]


def apply_dropout(
    ops: DropoutOps, X: Any, dropout: Any, seed: Any = None, offset: Any = 0, *, key: Any = None
) -> Any:
    """Apply inverted dropout to ``X`` with the primitives ``ops``.

    Parameters
    ----------
    ops : DropoutOps
        The backend's primitives.
    X : array
        Input of a floating dtype; never modified (D11).
    dropout : float
        Probability of dropping each element (D1).
    seed : int or None, optional
        ``None`` draws from the framework's global generator (D9); an integer
        draws the portable, stateless Philox mask (P1-P4).
    offset : int, optional
        Philox counter of the first element (P4); only used with ``seed``.
    key : object, optional
        A key of the framework's own splittable generator (JAX's
        ``jax.random`` keys, D9 as amended for JAX), used instead of a global
        generator; only for backends whose ``ops`` define
        ``keyed_keep_mask(X, dropout, key)``. Not together with ``seed``.

    Returns
    -------
    array
        ``X`` itself when ``dropout == 0`` (D2); otherwise a new array of
        ``X``'s shape, dtype and device whose kept elements are
        ``X / (1 - dropout)`` and whose dropped elements are ``+0.0``.
    """
    ops.check_array(X)
    rate = validate_rate(dropout)
    require_float_dtype(ops.dtype_name(X), ops.name, ops.conversion_hint)
    seed = validate_seed(seed)
    offset = validate_offset(offset, ops.size(X))
    if key is not None:
        keyed = getattr(ops, "keyed_keep_mask", None)
        if keyed is None:
            raise TypeError(
                f"key= is not supported by the {ops.name} backend; pass seed= for a "
                f"portable mask or nothing for {ops.name}'s global generator"
            )
        if seed is not None:
            raise TypeError(
                "pass either key= (the framework's generator) or seed= (the portable "
                f"Philox mask), not both; got a key and seed={seed}"
            )
        check_key = getattr(ops, "check_key", None)
        if check_key is not None:  # a bad key is refused whatever the rate
            check_key(key)
    if rate == 0.0:
        return X
    if rate == 1.0:
        # No division: 1 / (1 - 1) is what gives other implementations NaN (D3).
        return ops.select_scaled(X, ops.constant_mask(X, False), 1.0)
    if seed is None:
        # Optional hook: a backend may fuse draw, keep rule and select into one
        # kernel (returns None where it does not apply).
        fused = getattr(ops, "fused_global_dropout", None) if key is None else None
        out = fused(X, rate, inverse_keep_scale(rate)) if fused is not None else None
        if out is not None:
            return out
        keep = ops.global_keep_mask(X, rate) if key is None else keyed(X, rate, key)
    else:
        # Optional hook: a compiled kernel drawing the Philox words, applying the
        # keep rule and selecting in one pass (returns None where it does not apply).
        fused = getattr(ops, "fused_portable_dropout", None)
        threshold = word_threshold(rate)
        out = None if fused is None else fused(X, threshold, seed, offset, inverse_keep_scale(rate))
        if out is not None:
            return out
        keep = ops.portable_keep_mask(X, threshold, seed, offset)
    return ops.select_scaled(X, keep, inverse_keep_scale(rate))


def make_dropout_layer(ops: DropoutOps) -> DropoutLayer:
    """Build the public ``dropout_layer`` of one backend.

    Parameters
    ----------
    ops : DropoutOps
        The backend's primitives.

    Returns
    -------
    callable
        ``dropout_layer(X, dropout, *, seed=None, offset=0)``.
    """

    def dropout_layer(X: Any, dropout: Any, *, seed: int | None = None, offset: int = 0) -> Any:
        return apply_dropout(ops, X, dropout, seed=seed, offset=offset)

    dropout_layer.__doc__ = f"""Inverted dropout on a {ops.name} array (SPEC D, P).

    Each element is kept with probability ``1 - dropout`` and scaled by
    ``1 / (1 - dropout)``; dropped elements are exactly ``+0.0``.

    Parameters
    ----------
    X : {ops.name} array
        Floating-point input (float16, bfloat16, float32 or float64); never
        modified.
    dropout : float
        Probability of dropping an element, ``0 <= dropout <= 1``.
    seed : int or None, optional
        ``None`` (default) draws a fresh mask from {ops.name}'s global
        generator, so its own seeding call makes a run reproducible. An
        integer in ``[0, 2**64)`` draws the portable Philox4x32-10 mask, the
        same bit for bit in every backend.
    offset : int, optional
        Counter of the first element for the portable mask; give a shard the
        number of elements before it to reproduce the unsplit mask.

    Returns
    -------
    {ops.name} array
        Same shape, dtype and device as ``X``.

    Raises
    ------
    TypeError
        If ``X`` is not a floating {ops.name} array, or an argument has the
        wrong type.
    ValueError
        If ``dropout`` is outside ``[0, 1]`` or NaN, or ``seed``/``offset``
        are out of range.
    """
    dropout_layer.__module__ = f"dropout_ref.{ops.name}"
    dropout_layer.__qualname__ = "dropout_layer"
    return dropout_layer
