"""DropPath and DropHead, written once for every backend on its ``dropout_layer`` (SPEC V1, V2).

Both are structured dropout (D12): :func:`make_drop_family` turns a backend's
``dropout_layer`` and its primitives into the public ``drop_path`` and
``drop_head``. The noise shapes, the rescale rule and the argument checks live
here; the framework work is the backend's ``dropout_layer`` (so D1-D11, P1-P7,
S1 and JAX's ``key=`` come with it) plus three of its primitives
(``select_scaled``, ``constant_mask`` and ``block_arrays(X).where``) for
DropHead's per-sample rescale.

Train and eval: like ``dropout_layer`` neither function has a training flag.
Training calls them with the rate; eval calls them with ``p=0`` (or not at
all), which returns ``X`` itself (D2), the identity of V2's eval mode.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable
from typing import Any

from dropout_ref.core.contract import DropoutOps
from dropout_ref.core.layer import mask_template
from dropout_ref.core.validation import static_shape, validate_rate

#: DropPath's modes (V1): one decision per sample, or one for the whole call.
DROP_PATH_MODES = ("row", "batch")
#: DropHead's rescale rules (V2): H / kept heads of the sample, or 1 / (1 - p).
DROP_HEAD_RESCALES = ("kept", "rate")


def _shape_of(X: Any, name: str = "X") -> tuple[int, ...]:
    """Return ``X``'s static shape; refuse an array whose rank is unknown."""
    shape = static_shape(X)
    if shape is None:
        raise ValueError(f"{name} must have a known number of axes, got {type(X).__name__}")
    return tuple(shape)


def drop_path_noise_shape(shape: tuple[Any, ...], mode: Any) -> tuple[Any, ...]:
    """Return DropPath's noise shape for an array of ``shape`` (V1).

    Parameters
    ----------
    shape : tuple
        Shape of ``X`` (or of the global array, with P7's ``global_shape``).
    mode : str
        ``"row"``: ``(shape[0], 1, ..., 1)``, one decision per sample;
        ``"batch"``: all ones, one decision for the whole call.

    Raises
    ------
    ValueError
        If ``mode`` is unknown, or ``mode="row"`` meets a 0-d array (no sample axis).
    """
    if not isinstance(mode, str) or mode not in DROP_PATH_MODES:
        raise ValueError(f"mode must be one of {DROP_PATH_MODES}, got {mode!r}")
    if mode == "batch":
        return (1,) * len(shape)
    if not shape:
        raise ValueError(
            "mode='row' needs X with a sample axis (axis 0), got a 0-d X; use mode='batch'"
        )
    return (shape[0], *(1,) * (len(shape) - 1))


def validate_head_axis(head_axis: Any, ndim: int) -> int:
    """Return ``head_axis`` as a non-negative axis of an ``ndim``-d array, not the sample axis.

    Raises
    ------
    TypeError
        If ``head_axis`` is not an integer.
    ValueError
        If ``X`` has fewer than 2 axes, or ``head_axis`` is out of range or is axis 0.
    """
    if isinstance(head_axis, bool) or not isinstance(head_axis, numbers.Integral):
        raise TypeError(
            f"head_axis must be an integer, got {head_axis!r} ({type(head_axis).__name__})"
        )
    if ndim < 2:
        raise ValueError(f"drop_head needs X of shape (B, H, ...), got a {ndim}-d X")
    axis = int(head_axis)
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"head_axis must be in [-{ndim}, {ndim}) for a {ndim}-d X, got {head_axis}"
        )
    axis %= ndim
    if axis == 0:
        raise ValueError("head_axis must not be 0, the sample axis of X (B, H, ...), got 0")
    return axis


def drop_head_noise_shape(shape: tuple[Any, ...], head_axis: int) -> tuple[Any, ...]:
    """Return DropHead's noise shape: ``shape`` on axis 0 and ``head_axis``, 1 elsewhere (V2)."""
    return tuple(n if axis in (0, head_axis) else 1 for axis, n in enumerate(shape))


def validate_rescale(rescale: Any) -> str:
    """Return ``rescale`` if it is one of :data:`DROP_HEAD_RESCALES`; else raise ``ValueError``."""
    if not isinstance(rescale, str) or rescale not in DROP_HEAD_RESCALES:
        raise ValueError(f"rescale must be one of {DROP_HEAD_RESCALES}, got {rescale!r}")
    return rescale


def _checked_rate(ops: DropoutOps, p: Any) -> Any:
    """Return ``p`` checked as D1 says, naming it ``p`` (a runtime rate goes through, S1)."""
    return p if ops.is_runtime(p) else validate_rate(p, name="p")


def _head_block(
    shape: tuple[int, ...], head_axis: int, global_shape: Any, block_start: Any
) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    """Return the global noise shape and the block start of the head mask (P7), or Nones.

    ``rescale="kept"`` counts the kept heads of a sample, so a block must hold every
    head of its samples; the block's other axes are shared in the mask (start 0).
    """
    if global_shape is None and block_start is None:
        return None, None
    if global_shape is None or block_start is None:
        raise ValueError(
            "global_shape and block_start go together (SPEC P7); got "
            f"global_shape={global_shape!r}, block_start={block_start!r}"
        )
    gshape, start = tuple(global_shape), tuple(block_start)
    if len(gshape) != len(shape) or len(start) != len(shape):
        raise ValueError(
            f"global_shape {gshape} and block_start {start} need one entry per axis of X {shape}"
        )
    if shape[head_axis] != gshape[head_axis] or start[head_axis] != 0:
        raise ValueError(
            f"rescale='kept' counts every head of a sample: the block must hold the whole "
            f"head axis (head_axis={head_axis}), got block_start={start[head_axis]} and "
            f"{shape[head_axis]} of {gshape[head_axis]} heads; use rescale='rate' to split heads"
        )
    noise = drop_head_noise_shape(gshape, head_axis)
    return noise, tuple(s if axis in (0, head_axis) else 0 for axis, s in enumerate(start))


def kept_heads_dropout(
    ops: DropoutOps,
    dropout_layer: Callable[..., Any],
    X: Any,
    p: Any,
    head_axis: int,
    mask_kwargs: dict[str, Any],
    global_shape: Any = None,
    block_start: Any = None,
) -> Any:
    """DropHead with Zhou et al.'s rescale: kept heads times H / (kept heads of the sample).

    One mask is drawn, by ``dropout_layer`` on ones of the noise shape (so its
    counters are D12's and it is the mask ``rescale="rate"`` would use); the kept
    heads are counted from it exactly (0/1 floats, summed head by head) and a sample
    with none kept gives zeros, with no division by zero.
    """
    shape = _shape_of(X)
    noise = drop_head_noise_shape(shape, head_axis)
    if 0 in shape:
        # No element (no sample or no head): nothing to count; the plain structured
        # call checks the arguments and returns the empty X (D7).
        return dropout_layer(X, p, **mask_kwargs, noise_shape=noise)
    template = mask_template(X, noise)
    # +0.0 everywhere even where X is NaN or inf (D6), then exactly 1: ones on X's device.
    ones = ops.select_scaled(template, ops.constant_mask(template, False), 1.0) + 1.0
    gnoise, gstart = _head_block(shape, head_axis, global_shape, block_start)
    block = {} if gnoise is None else {"global_shape": gnoise, "block_start": gstart}
    scaled = dropout_layer(ones, p, **mask_kwargs, **block)
    keep = scaled > 0
    kept = ops.select_scaled(ones, keep, 1.0)
    heads = shape[head_axis]
    count = None
    for h in range(heads):
        index = tuple(
            slice(h, h + 1) if axis == head_axis else slice(None) for axis in range(len(shape))
        )
        count = kept[index] if count is None else count + kept[index]
    where = ops.block_arrays(X).where
    # count 0: any divisor will do (1 here), the select below gives +0.0 for the sample.
    factor = float(heads) / where(count > 0, count, count + 1.0)
    return ops.select_scaled(X * factor, keep, 1.0)


def make_drop_family(
    ops: DropoutOps, dropout_layer: Callable[..., Any]
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """Build one backend's public ``drop_path`` and ``drop_head`` on its ``dropout_layer``.

    Parameters
    ----------
    ops : DropoutOps
        The backend's primitives.
    dropout_layer : callable
        The backend's public ``dropout_layer``; ``key=`` is offered where it takes one (JAX).

    Returns
    -------
    tuple of callable
        ``(drop_path, drop_head)``.
    """
    takes_key = "key" in inspect.signature(dropout_layer).parameters

    def mask_arguments(seed: Any, offset: Any, key: Any) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"seed": seed, "offset": offset}
        if key is not None:
            if not takes_key:
                raise TypeError(
                    f"key= is not supported by the {ops.name} backend; pass seed= for a "
                    f"portable mask or nothing for {ops.name}'s global generator"
                )
            kwargs["key"] = key
        return kwargs

    def drop_path(
        X: Any,
        p: Any,
        *,
        seed: Any = None,
        offset: Any = 0,
        mode: str = "row",
        global_shape: Any = None,
        block_start: Any = None,
        key: Any = None,
    ) -> Any:
        rate = _checked_rate(ops, p)
        shape = _shape_of(X) if global_shape is None else tuple(global_shape)
        noise = drop_path_noise_shape(shape, mode)
        return dropout_layer(
            X,
            rate,
            **mask_arguments(seed, offset, key),
            noise_shape=noise,
            global_shape=global_shape,
            block_start=block_start,
        )

    def drop_head(
        X: Any,
        p: Any,
        *,
        head_axis: int = 1,
        rescale: str = "kept",
        seed: Any = None,
        offset: Any = 0,
        global_shape: Any = None,
        block_start: Any = None,
        key: Any = None,
    ) -> Any:
        rate = _checked_rate(ops, p)
        rule = validate_rescale(rescale)
        shape = _shape_of(X)
        axis = validate_head_axis(head_axis, len(shape))
        kwargs = mask_arguments(seed, offset, key)
        if rule == "rate":
            gshape = shape if global_shape is None else tuple(global_shape)
            return dropout_layer(
                X,
                rate,
                **kwargs,
                noise_shape=drop_head_noise_shape(gshape, axis),
                global_shape=global_shape,
                block_start=block_start,
            )
        if not ops.is_runtime(rate) and rate == 0.0:
            ops.check_array(X)
            return X  # D2: no mask, nothing to count
        return kept_heads_dropout(
            ops, dropout_layer, X, rate, axis, kwargs, global_shape, block_start
        )

    drop_path.__doc__ = f"""DropPath (stochastic depth) on a {ops.name} array (SPEC V1).

    Drops whole samples (``mode="row"``) or the whole call (``mode="batch"``)
    and scales what is kept by ``1 / (1 - p)``: ``dropout_layer`` with noise
    shape ``(B, 1, ..., 1)`` or all ones. Meant for a residual branch,
    ``x + drop_path(f(x), p)``. No training flag: eval calls it with ``p=0``
    (``X`` itself is returned) or not at all.

    Parameters
    ----------
    X : {ops.name} array
        Floating input of shape ``(B, ...)``; never modified.
    p : float or 0-d tensor
        Probability of dropping a sample (``0 <= p <= 1``); a runtime 0-d
        tensor inside compiled steps (SPEC S1).
    seed, offset : int, optional
        Portable Philox mask (SPEC P); counter ``offset + b`` decides sample ``b``.
    mode : {{"row", "batch"}}
        One decision per sample or one for the whole call.
    global_shape, block_start : sequence of int, optional
        ``X`` is that block of a global batch (SPEC P7, with ``seed``): a
        data-parallel rank holding rows ``[r*b, (r+1)*b)`` drops what the
        single process drops for those rows.
    key : optional
        A ``jax.random`` key, on the JAX backend only (as ``dropout_layer``).

    Returns
    -------
    {ops.name} array
        Same shape, dtype and device as ``X``.
    """
    drop_head.__doc__ = f"""DropHead on a per-head {ops.name} array (SPEC V2).

    One keep decision per (sample, head), drawn as ``dropout_layer``'s mask
    with noise shape ``(B, H, 1, ..., 1)`` (``H`` on ``head_axis``). Kept heads
    are scaled by ``H / (kept heads of the sample)`` (``rescale="kept"``, Zhou
    et al. 2020; a sample with no head kept gives zeros) or by ``1 / (1 - p)``
    (``rescale="rate"``). No training flag: eval calls it with ``p=0`` (``X``
    itself is returned, the identity) or not at all.

    Parameters
    ----------
    X : {ops.name} array
        Floating input of shape ``(B, H, ...)`` (heads on ``head_axis``).
    p : float or 0-d tensor
        Probability of dropping a head.
    head_axis : int
        The heads' axis (not 0, the samples' axis).
    rescale : {{"kept", "rate"}}
        The rescale rule of kept heads.
    seed, offset, global_shape, block_start, key
        As for ``drop_path``; with ``rescale="kept"`` a block must hold all heads.

    Returns
    -------
    {ops.name} array
        Same shape, dtype and device as ``X``.
    """
    for function in (drop_path, drop_head):
        function.__module__ = f"dropout_ref.{ops.name}"
        function.__qualname__ = function.__name__
    return drop_path, drop_head
