"""The dropout algorithm, written once for every backend (SPEC D1-D11, P1).

An adapter supplies :class:`~dropout_ref.backend_api.DropoutOps`;
:func:`make_dropout_layer` turns them into the public ``dropout_layer``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from dropout_ref.backend_api import DropoutOps
from dropout_ref.thresholds import inverse_keep_scale, word_threshold
from dropout_ref.validation import (
    require_float_dtype,
    static_shape,
    validate_noise_shape,
    validate_offset,
    validate_rate,
    validate_seed,
)

DropoutLayer = Callable[..., Any]


def mask_template(X: Any, noise_shape: tuple[int, ...] | None) -> Any:
    """Return what the mask primitives draw at: ``X``, or its first slice along shared axes.

    The primitives read only the shape and the device of what they are given,
    so the basic slice ``X[:, 0:1, ...]`` (a view where the framework has
    views) makes every backend draw a mask of the noise shape on ``X``'s
    device without a new primitive (SPEC D12).
    """
    if noise_shape is None:
        return X
    index = tuple(slice(0, n) for n in noise_shape)
    return X[index]


def apply_dropout(
    ops: DropoutOps,
    X: Any,
    dropout: Any,
    seed: Any = None,
    offset: Any = 0,
    noise_shape: Any = None,
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
    noise_shape : sequence of int or None, optional
        Structured dropout (D12): one keep decision per element of this
        shape, broadcast to ``X`` (entries 1 or ``X``'s size; ``None`` entries
        mean ``X``'s size). With ``seed`` the counters index the noise-shape
        elements row-major.

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
    # None when the mask has X's shape: element-wise dropout, fast paths allowed.
    noise = validate_noise_shape(noise_shape, static_shape(X))
    offset = validate_offset(offset, ops.size(X) if noise is None else math.prod(noise))
    if rate == 0.0:
        return X
    if rate == 1.0:
        # No division: 1 / (1 - 1) is what gives other implementations NaN (D3).
        return ops.select_scaled(X, ops.constant_mask(X, False), 1.0)
    template = mask_template(X, noise)
    if seed is None:
        # Optional hook: a backend may fuse draw, keep rule and select into one
        # kernel (returns None where it does not apply). Fused kernels work on
        # X's shape, so a structured mask (noise is not None) never uses them.
        fused = getattr(ops, "fused_global_dropout", None) if noise is None else None
        out = fused(X, rate, inverse_keep_scale(rate)) if fused is not None else None
        if out is not None:
            return out
        keep = ops.global_keep_mask(template, rate)
    else:
        keep = ops.portable_keep_mask(template, word_threshold(rate), seed, offset)
    # select_scaled broadcasts a noise-shaped mask over X (D12).
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
        ``dropout_layer(X, dropout, *, seed=None, offset=0, noise_shape=None)``.
    """

    def dropout_layer(
        X: Any,
        dropout: Any,
        *,
        seed: int | None = None,
        offset: int = 0,
        noise_shape: Any = None,
    ) -> Any:
        return apply_dropout(ops, X, dropout, seed=seed, offset=offset, noise_shape=noise_shape)

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
    noise_shape : sequence of int or None, optional
        Structured dropout (SPEC D12): one keep decision per element of this
        shape, broadcast to ``X``. One entry per axis of ``X``: ``1`` shares
        the decision along that axis, ``X``'s size (or ``None``) does not.
        E.g. ``(N, C, 1, 1)`` drops whole channels of an ``(N, C, H, W)`` X.
        With ``seed`` the Philox counters index the noise-shape elements
        row-major, so the mask is the same in every backend.

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
        If ``dropout`` is outside ``[0, 1]`` or NaN, ``seed``/``offset``
        are out of range, or an entry of ``noise_shape`` is neither 1 nor
        ``X``'s size on that axis.
    """
    dropout_layer.__module__ = f"dropout_ref.{ops.name}"
    dropout_layer.__qualname__ = "dropout_layer"
    return dropout_layer
