"""The dropout algorithm, written once for every backend (SPEC D1-D11, P1).

An adapter supplies :class:`~dropout_ref.core.contract.DropoutOps`;
:func:`make_dropout_layer` turns them into the public ``dropout_layer``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from dropout_ref.core.blocks import Block, block_keep_mask, noise_block, validate_block
from dropout_ref.core.contract import DropoutOps
from dropout_ref.core.runtime import apply_runtime_dropout
from dropout_ref.core.thresholds import inverse_keep_scale, word_threshold
from dropout_ref.core.validation import (
    require_float_dtype,
    static_shape,
    validate_noise_shape,
    validate_offset,
    validate_rate,
    validate_seed,
)

DropoutLayer = Callable[..., Any]


def mask_template(X: Any, noise_shape: tuple[int | None, ...] | None) -> Any:
    """Return what the mask primitives draw at: ``X``, or its first slice along shared axes.

    The primitives read only the shape and the device of what they are given,
    so the basic slice ``X[:, 0:1, ...]`` (a view where the framework has
    views) makes every backend draw a mask of the noise shape on ``X``'s
    device without a new primitive (SPEC D12).
    """
    if noise_shape is None:
        return X
    # None: a full axis of a size known only at run time.
    index = tuple(slice(None) if n is None else slice(0, n) for n in noise_shape)
    return X[index]


def apply_dropout(
    ops: DropoutOps,
    X: Any,
    dropout: Any,
    seed: Any = None,
    offset: Any = 0,
    noise_shape: Any = None,
    global_shape: Any = None,
    block_start: Any = None,
    *,
    key: Any = None,
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
    global_shape, block_start : sequence of int, optional
        ``X`` is the block ``[block_start, block_start + X.shape)`` of a global
        array of ``global_shape`` (SPEC P7; needs ``seed``): its mask is that
        block of the global array's mask. ``noise_shape`` then refers to the
        global shape.
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
    # A distributed array (torch's DTensor) is its local block of a global array;
    # dropout of the block, rewrapped, is that block of the global result.
    local = ops.local_block(X)
    if local is not None:
        if global_shape is not None or block_start is not None:
            raise ValueError(
                "X is a distributed array and knows its global shape and block; "
                "do not pass global_shape/block_start"
            )
        X_local, gshape, start, rewrap = local
        if validate_seed(seed) is None:
            raise ValueError(
                f"a distributed X needs seed= (portable masks, SPEC P7): every shard then "
                f"draws its block of one global mask; got seed=None for {type(X).__name__}"
            )
        out = apply_dropout(
            ops, X_local, dropout, seed, offset, noise_shape, gshape, start, key=key
        )
        return rewrap(out)
    if any(ops.is_runtime(v) for v in (dropout, seed, offset)):
        # A rate or seed known only when compiled code runs (SPEC S1, S2).
        return apply_runtime_dropout(
            ops, X, dropout, seed, offset, noise_shape, global_shape, block_start, key
        )
    ops.check_array(X)
    rate = validate_rate(dropout)
    require_float_dtype(ops.dtype_name(X), ops.name, ops.conversion_hint)
    seed = validate_seed(seed)
    noise, block, count = _mask_space(ops, X, seed, noise_shape, global_shape, block_start)
    offset = validate_offset(offset, count)
    _check_key(ops, key, seed)
    if rate == 0.0:
        return X
    if rate == 1.0:
        # No division: 1 / (1 - 1) is what gives other implementations NaN (D3).
        return ops.select_scaled(X, ops.constant_mask(X, False), 1.0)
    # Computed once: exact rational arithmetic (Fraction), not free on a hot path.
    scale = inverse_keep_scale(rate)
    if block is not None:
        keep = _block_mask(ops, X, block, word_threshold(rate), seed, offset)
    elif seed is None:
        # A backend may fuse draw, keep rule and select into one kernel (None where
        # it does not apply). Fused kernels work on X's shape, so a structured mask
        # (noise is not None) never uses them.
        plain = noise is None and key is None
        out = ops.fused_global_dropout(X, rate, scale) if plain else None
        if out is not None:
            return out
        template = mask_template(X, noise)
        keep = (
            ops.global_keep_mask(template, rate)
            if key is None
            else ops.keyed_keep_mask(template, rate, key)
        )
    else:
        threshold = word_threshold(rate)
        # A compiled kernel drawing the Philox words, applying the keep rule and
        # selecting in one pass over X (None where it does not apply); element-wise
        # masks only.
        out = None if noise is not None else ops.fused_portable_dropout(
            X, threshold, seed, offset, scale
        )
        if out is not None:
            return out
        keep = ops.portable_keep_mask(mask_template(X, noise), threshold, seed, offset)
    # select_scaled broadcasts a noise-shaped mask over X (D12).
    return ops.select_scaled(X, keep, scale)


def _mask_space(
    ops: DropoutOps, X: Any, seed: int | None, noise_shape: Any, global_shape: Any, block_start: Any
) -> tuple[tuple[int | None, ...] | None, Block | None, int | None]:
    """Return the noise shape (None: X's), the block of the global mask (P7) and its count.

    The count is the number of counters the global mask uses, for the offset check.
    """
    if global_shape is None and block_start is None:
        # None when the mask has X's shape: element-wise dropout, fast paths allowed.
        noise = validate_noise_shape(noise_shape, static_shape(X))
        if noise is None:
            return None, None, ops.size(X)
        # Unknown until run time (a traced axis): the backend checks the count there.
        return noise, None, None if None in noise else math.prod(noise)
    gshape, start = validate_block(global_shape, block_start, static_shape(X))
    if seed is None:
        raise ValueError(
            "global_shape/block_start need seed= (portable masks): the block's mask is "
            "a function of its elements' global indices (SPEC P7); got seed=None"
        )
    noise = validate_noise_shape(noise_shape, gshape)
    block = noise_block(gshape, start, tuple(static_shape(X) or ()), noise)
    return noise, block, block.global_size


def _check_key(ops: DropoutOps, key: Any, seed: int | None) -> None:
    """Refuse a ``key=`` the backend does not take, a bad key, or a key with ``seed=``.

    A bad key is refused whatever the rate, before ``dropout == 0`` returns ``X``.
    """
    if key is None:
        return
    ops.check_key(key)
    if seed is not None:
        raise TypeError(
            "pass either key= (the framework's generator) or seed= (the portable "
            f"Philox mask), not both; got a key and seed={seed}"
        )


def _block_mask(
    ops: DropoutOps, X: Any, block: Block, threshold: int, seed: int, offset: int
) -> Any:
    """Return the keep mask of a block of the global mask (P7), of the block's mask shape."""
    run = block.contiguous_offset()
    shared = block.shape != tuple(static_shape(X) or ())
    template = mask_template(X, block.shape if shared else None)
    if run is not None:
        # One contiguous run of the global order is just an offset (P4): the usual,
        # possibly fused, path computes it.
        return ops.portable_keep_mask(template, threshold, seed, offset + run)
    return block_keep_mask(ops.block_arrays(X), block, threshold, seed, offset)


def make_dropout_layer(ops: DropoutOps) -> DropoutLayer:
    """Build the public ``dropout_layer`` of one backend.

    Parameters
    ----------
    ops : DropoutOps
        The backend's primitives.

    Returns
    -------
    callable
        ``dropout_layer(X, dropout, *, seed=None, offset=0, noise_shape=None,
        global_shape=None, block_start=None)``.
    """

    def dropout_layer(
        X: Any,
        dropout: Any,
        *,
        seed: int | None = None,
        offset: int = 0,
        noise_shape: Any = None,
        global_shape: Any = None,
        block_start: Any = None,
    ) -> Any:
        return apply_dropout(
            ops,
            X,
            dropout,
            seed=seed,
            offset=offset,
            noise_shape=noise_shape,
            global_shape=global_shape,
            block_start=block_start,
        )

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
    global_shape, block_start : sequence of int, optional
        Block invariance (SPEC P7; needs ``seed``): ``X`` is the block
        ``[block_start, block_start + X.shape)`` of a global array of shape
        ``global_shape``, and gets exactly that block of the global mask, on
        any axes (``noise_shape`` then refers to the global shape).

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
