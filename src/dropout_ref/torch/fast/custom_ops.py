"""``dropout_layer``'s torch kernels as ``torch.library`` custom operators (SPEC G1, G2).

``torch.compile`` (Dynamo, AOTAutograd, inductor), ``torch.export`` and
``torch.func`` see each operator as one opaque node with a fake (meta)
implementation for shapes, an autograd formula and a vmap rule; they never
trace the Python inside. Three operators:

``dropout_ref::select_scaled(x, keep, scale)``
    ``where(keep, x * scale, +0.0)`` for a given bool mask (the generic path:
    default mode on a CPU or without Triton, ``dropout == 1``, and any caller of
    :meth:`TorchOps.select_scaled`). Backward is the same operator on the
    incoming gradient with the same mask, ``where(keep, G * scale, 0)`` (D8):
    the 1-byte mask, an input the caller made anyway, is what is saved.
``dropout_ref::philox_dropout(x, k0, k1, block, lane, threshold, scale)``
    The portable mode on the whole of ``x`` (SPEC P3): key ``(k0, k1)``, element
    ``i`` reads word ``(lane + i) % 4`` of block ``block + (lane + i) // 4``.
    Backward applies the same operator, with the same integers, to the
    gradient: the mask is *recomputed* from (key, counters), so nothing per
    element is saved for backward.
``dropout_ref::keyed_dropout(x, key, threshold, scale)``
    The same stream with the key in a 1-element ``int64`` tensor on ``x``'s
    device and counters from 0: the default mode on CUDA with Triton, where the
    caller draws ``key`` from torch's generator of ``x``'s device on every call
    (D9: ``torch.manual_seed`` reproduces it; the key stays on the device).
    Backward recomputes the mask from the saved 8-byte key.

Integers travel as separate ``int`` arguments because a schema ``int`` is
64-bit signed and seeds and offsets go up to ``2**64``; each argument here is
below ``2**62``. On CUDA tensors (and, in the tests, on CPU tensors under
``TRITON_INTERPRET=1``) the Philox operators run the one-pass Triton kernel of
:mod:`dropout_ref.torch.fast.triton_kernel`; elsewhere they run the exact torch-ops
paths (:mod:`dropout_ref.torch.fast.compiled` on large CPU inputs).
"""

from __future__ import annotations

from typing import Any

import torch

from dropout_ref.core import thresholds
from dropout_ref.core.philox import MASK32
from dropout_ref.torch.fast import compiled as fused
from dropout_ref.torch.fast import cpu_kernel, triton_kernel
from dropout_ref.torch.fast import eager as _eager

# The core computes thresholds and scales exactly, with Fraction, which Dynamo
# cannot trace. They are pure functions of Python constants: Dynamo's own door
# for that is to call them at trace time and keep the result as a constant.
for _pure in (thresholds.word_threshold, thresholds.inverse_keep_scale,
              thresholds.float32_threshold):
    torch.compiler.assume_constant_result(_pure)

#: Tags of the operators that draw randomness or depend on a key: the
#: partitioner must not recompute them in backward on its own.
_RANDOM_TAGS = (torch.Tag.nondeterministic_seeded,)



def _custom_op(name: str, **kwargs: Any) -> Any:
    """``torch.library.custom_op`` with ``tags`` where this torch accepts them."""
    try:
        return torch.library.custom_op(name, mutates_args=(), **kwargs)
    except TypeError:  # an older torch without custom_op(tags=)
        kwargs.pop("tags", None)
        return torch.library.custom_op(name, mutates_args=(), **kwargs)




def split_seed(seed: int, offset: int) -> tuple[int, int, int, int]:
    """Return ``(k0, k1, block, lane)``: the operator arguments of ``seed`` and ``offset``."""
    return seed & MASK32, (seed >> 32) & MASK32, offset // 4, offset % 4


def join_seed(k0: int, k1: int, block: int, lane: int) -> tuple[int, int]:
    """Inverse of :func:`split_seed`: return ``(seed, offset)``."""
    return k0 | (k1 << 32), 4 * block + lane


def philox_eager(
    x: torch.Tensor, seed: int, offset: int, threshold: int, scale: float
) -> torch.Tensor:
    """Return the portable dropout of the whole of ``x`` on real tensors (the kernel)."""
    first_block = offset // 4
    if triton_kernel.applies(x, first_block):
        return triton_kernel.dropout(x, threshold, scale, seed=seed, offset=offset)
    return _eager.portable_dropout_eager(x, threshold, seed, offset, scale)


def mask_is_fused(x: torch.Tensor, offset: int) -> bool:
    """Whether :func:`philox_eager` draws the mask of ``x`` in one fused kernel, not op by op."""
    # The numba kernel on the CPU is left out on purpose: eager autograd then saves the
    # 1-byte mask, as native dropout does, and its backward is one select, not a
    # second pass through the generator.
    if triton_kernel.applies(x, offset // 4):
        return True
    return fused.chosen_for(x, offset)


def keyed_dropout_eager(
    x: torch.Tensor, key: torch.Tensor, threshold: int, scale: float
) -> torch.Tensor:
    """Return the Philox dropout of ``x`` keyed by the tensor ``key`` on real tensors."""
    if triton_kernel.applies(x) and key.device == x.device:
        return triton_kernel.dropout(x, threshold, scale, key=key)
    return philox_eager(x, int(key.reshape(()).item()), 0, threshold, scale)


# --------------------------------------------------------------------------- select_scaled


@_custom_op("dropout_ref::select_scaled")
def select_scaled(x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
    """``where(keep, x * scale, +0.0)`` in ``x``'s dtype (product in float32 for 16-bit ``x``)."""
    return _eager.select_eager(x, keep, scale)


@select_scaled.register_fake
def _(x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _select_setup(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    _, keep, scale = inputs
    ctx.save_for_backward(keep)
    ctx.scale = scale


def _select_backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, None, None]:
    (keep,) = ctx.saved_tensors
    # The operator again: differentiable, so double backward works too.
    return select_scaled(grad, keep, ctx.scale), None, None


select_scaled.register_autograd(_select_backward, setup_context=_select_setup)


def _batched(value: torch.Tensor, dim: int | None, size: int) -> torch.Tensor:
    """Return ``value`` with its batch dimension first (expanded if it had none)."""
    if dim is None:
        return value.expand(size, *value.shape)
    return value.movedim(dim, 0)


@select_scaled.register_vmap
def _(info: Any, in_dims: tuple[Any, ...], x: torch.Tensor, keep: torch.Tensor, scale: float):
    x_dim, keep_dim, _ = in_dims
    xb = _batched(x, x_dim, info.batch_size)
    keepb = _batched(keep, keep_dim, info.batch_size).expand(xb.shape)
    return select_scaled(xb, keepb, scale), 0


# --------------------------------------------------------------------------- philox_dropout


@_custom_op("dropout_ref::philox_dropout", tags=_RANDOM_TAGS)
def philox_dropout(
    x: torch.Tensor, k0: int, k1: int, block: int, lane: int, threshold: int, scale: float
) -> torch.Tensor:
    """Portable dropout of the whole of ``x`` (SPEC P3; see the module docstring)."""
    seed, offset = join_seed(k0, k1, block, lane)
    return philox_eager(x, seed, offset, threshold, scale)


@philox_dropout.register_fake
def _(x, k0, k1, block, lane, threshold, scale):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _philox_setup(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    ctx.args = inputs[1:]  # integers and the scale only: nothing per element


def _philox_backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
    return (philox_dropout(grad, *ctx.args), *([None] * len(ctx.args)))


philox_dropout.register_autograd(_philox_backward, setup_context=_philox_setup)


@philox_dropout.register_vmap
def _(info, in_dims, x, k0, k1, block, lane, threshold, scale):
    # Each batch element is its own call with the same seed and offset, so every
    # slice gets the same mask: draw the slice's mask once and select.
    xb = _batched(x, in_dims[0], info.batch_size)
    seed, offset = join_seed(k0, k1, block, lane)
    keep = _eager.portable_keep_mask_eager(xb[0], threshold, seed, offset)
    return select_scaled(xb, keep.expand(xb.shape), scale), 0


# --------------------------------------------------------------------------- keyed_dropout


@_custom_op("dropout_ref::keyed_dropout", tags=_RANDOM_TAGS)
def keyed_dropout(x: torch.Tensor, key: torch.Tensor, threshold: int, scale: float) -> torch.Tensor:
    """Philox dropout of ``x`` with the seed in the 1-element tensor ``key``, counters from 0."""
    return keyed_dropout_eager(x, key, threshold, scale)


@keyed_dropout.register_fake
def _(x, key, threshold, scale):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _keyed_setup(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    _, key, threshold, scale = inputs
    ctx.save_for_backward(key)  # 8 bytes; the mask is recomputed from it
    ctx.threshold, ctx.scale = threshold, scale


def _keyed_backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, None, None, None]:
    (key,) = ctx.saved_tensors
    return keyed_dropout(grad, key, ctx.threshold, ctx.scale), None, None, None


keyed_dropout.register_autograd(_keyed_backward, setup_context=_keyed_setup)


@keyed_dropout.register_vmap
def _(info, in_dims, x, key, threshold, scale):
    xb = _batched(x, in_dims[0], info.batch_size)
    if in_dims[1] is not None:  # randomness="different": one key per batch element
        keys = key.movedim(in_dims[1], 0)
        return torch.stack([keyed_dropout(xb[i], keys[i], threshold, scale)
                            for i in range(info.batch_size)]), 0
    keep = _eager.portable_keep_mask_eager(xb[0], threshold, int(key.reshape(()).item()), 0)
    return select_scaled(xb, keep.expand(xb.shape), scale), 0


def draw_key(device: torch.device) -> torch.Tensor:
    """Draw a 63-bit Philox seed from torch's generator of ``device``, kept on ``device`` (D9)."""
    return torch.randint(2**63 - 1, (1,), dtype=torch.int64, device=device)


# --------------------------------------------------------------------------- eager autograd
# The same kernels and formulas as the operators above, as autograd.Functions for eager
# calls that need a gradient (``Function.apply`` costs a fraction of the operator dispatch,
# ~50 us a call, visible in an MLP epoch at 2**16 elements per dropout) and for torch.func
# transforms (an autograd.Function with ``setup_context`` and a ``vmap`` rule composes with
# torch.func.grad/vjp/vmap; a custom operator's registered autograd does not).
# torch.compile and torch.export always get the operators.


class EagerSelect(torch.autograd.Function):
    """``select_scaled`` for eager autograd: saves the 1-byte mask."""

    @staticmethod
    def forward(x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:  # noqa: D102
        return _eager.select_eager(x, keep, scale)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:  # noqa: D102
        ctx.save_for_backward(inputs[1])
        ctx.scale = inputs[2]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, None, None]:  # noqa: D102
        (keep,) = ctx.saved_tensors
        return EagerSelect.apply(grad, keep, ctx.scale), None, None

    @staticmethod
    def vmap(info: Any, in_dims: tuple[Any, ...], x: torch.Tensor, keep: torch.Tensor,
             scale: float) -> tuple[torch.Tensor, int]:
        """Batch rule: the mask broadcast over the batch dimension."""
        xb = _batched(x, in_dims[0], info.batch_size)
        keepb = _batched(keep, in_dims[1], info.batch_size).expand(xb.shape)
        return EagerSelect.apply(xb, keepb, scale), 0


class EagerPhilox(torch.autograd.Function):
    """``philox_dropout`` for eager autograd: saves nothing per element (mask recomputed)."""

    @staticmethod
    def forward(x: torch.Tensor, seed: int, offset: int, threshold: int, scale: float) -> Any:  # noqa: D102
        return philox_eager(x, seed, offset, threshold, scale)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:  # noqa: D102
        ctx.args = inputs[1:]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:  # noqa: D102
        return (EagerPhilox.apply(grad, *ctx.args), None, None, None, None)

    @staticmethod
    def vmap(info: Any, in_dims: tuple[Any, ...], x: torch.Tensor, seed: int, offset: int,
             threshold: int, scale: float) -> tuple[torch.Tensor, int]:
        """Batch rule: every batch element is the per-slice call (same seed/offset, one mask)."""
        xb = _batched(x, in_dims[0], info.batch_size)
        keep = _eager.portable_keep_mask_eager(xb[0], threshold, seed, offset)
        return EagerSelect.apply(xb, keep.expand(xb.shape), scale), 0


class EagerKernelMask(torch.autograd.Function):
    """Portable dropout of a CPU tensor for eager autograd, output and mask in one pass.

    One numba pass writes the output and the 1-byte mask, which is saved; the
    backward is one select (D8).

    Only where :func:`dropout_ref.torch.fast.cpu_kernel.fused_applies` holds, which is never
    under a ``torch.func`` transform, so the classic ``forward(ctx, ...)`` form suffices.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, seed: int, offset: int, threshold: int,  # noqa: D102
                scale: float) -> torch.Tensor:
        done = cpu_kernel.dropout_with_mask(x, threshold, seed, offset, scale)
        if done is None:  # the kernel failed for this dtype: the same values another way
            keep = _eager.portable_keep_mask_eager(x, threshold, seed, offset)
            out = _eager.select_eager(x, keep, scale)
        else:
            out, keep = done
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:  # noqa: D102
        (keep,) = ctx.saved_tensors
        return EagerSelect.apply(grad, keep, ctx.scale), None, None, None, None


class EagerKeyed(torch.autograd.Function):
    """``keyed_dropout`` for eager autograd: saves the 8-byte key."""

    @staticmethod
    def forward(x: torch.Tensor, key: torch.Tensor, threshold: int, scale: float) -> Any:  # noqa: D102
        return keyed_dropout_eager(x, key, threshold, scale)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:  # noqa: D102
        ctx.save_for_backward(inputs[1])
        ctx.threshold, ctx.scale = inputs[2], inputs[3]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, None, None, None]:  # noqa: D102
        (key,) = ctx.saved_tensors
        return EagerKeyed.apply(grad, key, ctx.threshold, ctx.scale), None, None, None

    @staticmethod
    def vmap(info: Any, in_dims: tuple[Any, ...], x: torch.Tensor, key: torch.Tensor,
             threshold: int, scale: float) -> tuple[torch.Tensor, int]:
        """Batch rule: one mask for an unbatched key, one per element for a batched key."""
        xb = _batched(x, in_dims[0], info.batch_size)
        if in_dims[1] is not None:  # randomness="different": one key per batch element
            keys = key.movedim(in_dims[1], 0)
            return torch.stack([EagerKeyed.apply(xb[i], keys[i], threshold, scale)
                                for i in range(info.batch_size)]), 0
        seed = int(key.reshape(()).item())
        keep = _eager.portable_keep_mask_eager(xb[0], threshold, seed, 0)
        return EagerSelect.apply(xb, keep.expand(xb.shape), scale), 0
