"""The torch kernels of eager calls: chunked draws, the select, the compiled CPU passes.

The custom operators (:mod:`dropout_ref.torch.fast.custom_ops`) and the adapter's
:class:`~dropout_ref.torch.ops.TorchOps` both run these on real tensors.
"""

from __future__ import annotations

import torch

from dropout_ref.torch.fast import compiled as fused
from dropout_ref.torch.fast import cpu_kernel
from dropout_ref.torch.philox import keep_mask

#: Float32 uniforms drawn per step on the CPU. 64 KiB of scratch stays in cache
#: and, being below ATen's parallel grain (32768), runs without an OpenMP
#: barrier, which costs milliseconds on a loaded machine.
UNIFORM_CHUNK = 1 << 14
#: Element count from which the no-grad select runs as one compiled kernel
#: (:func:`dropout_ref.torch.fast.compiled.fused_select_scaled`); the one-off compile
#: (~5-10 s) is repaid from here.
FUSED_SELECT_MIN_SIZE = 1 << 22


def draw_keep_mask_cpu(X: torch.Tensor, threshold: float) -> torch.Tensor:
    """Return ``u >= threshold`` for float32 uniforms drawn chunk by chunk into a small buffer.

    ``torch.rand(X.shape)`` would allocate 4 bytes per element (more than the
    output itself for 16-bit ``X``) and fault every page in; this keeps the
    extra memory at the 1-byte mask plus 64 KiB, and is faster.
    """
    keep = torch.empty(X.shape, dtype=torch.bool, device=X.device)
    flat = keep.view(-1)
    n = flat.numel()
    scratch = torch.empty(min(n, UNIFORM_CHUNK), dtype=torch.float32, device=X.device)
    for start in range(0, n, UNIFORM_CHUNK):
        stop = min(start + UNIFORM_CHUNK, n)
        u = scratch[: stop - start].uniform_()
        torch.ge(u, threshold, out=flat[start:stop])
    return keep


def scaled_select_no_grad(X: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
    """Return ``where(keep, X * scale, +0.0)`` with one output allocation and no temporary."""
    # X * scale rounds once into X's dtype (ATen computes 16-bit products in float32).
    out = torch.mul(X, scale)
    zero = torch.zeros((), dtype=out.dtype, device=out.device)
    # Elementwise and position-aligned, so writing into an input is safe; a
    # select (not a multiply by the mask) gives +0.0 even where X is NaN or inf (D6).
    return torch.where(keep, out, zero, out=out)


def select_eager(X: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
    """Return the select on real tensors (no autograd); one compiled kernel for large CPU inputs.

    Always returns a new contiguous tensor (the custom operator's fake promises that).
    """
    X = X.contiguous()
    if keep.shape != X.shape:
        keep = keep.expand(X.shape)
    if X.numel() >= FUSED_SELECT_MIN_SIZE and X.device.type == "cpu":
        out = fused.try_compiled("select", fused.fused_select_scaled, X, keep, scale)
        if out is not None:
            return out
    return scaled_select_no_grad(X, keep, scale)


def portable_dropout_eager(
    x: torch.Tensor, threshold: int, seed: int, offset: int, scale: float
) -> torch.Tensor:
    """Return the portable dropout of the whole of ``x`` on real tensors, without Triton.

    On the CPU, one pass of the compiled numba kernel on ``x``'s own memory
    (:mod:`dropout_ref.torch.fast.cpu_kernel`); elsewhere (or without numba), from
    :data:`dropout_ref.torch.fast.compiled.FUSE_MIN_SIZE` elements one pass compiled by
    inductor (mask and select together); below it, or where no compiled kernel runs,
    the keep mask and then the select.
    """
    if cpu_kernel.applies(x):
        out = cpu_kernel.dropout(x, threshold, seed, offset, scale)
        if out is not None:
            return out
    if fused.chosen_for(x, offset):
        out = fused.try_compiled(
            "dropout", fused.fused_philox_dropout, x, threshold, seed, offset, scale
        )
        if out is not None:
            return out
    return select_eager(x, portable_keep_mask_eager(x, threshold, seed, offset), scale)


def portable_keep_mask_eager(
    x: torch.Tensor, threshold: int, seed: int, offset: int
) -> torch.Tensor:
    """Return the Philox keep mask on real tensors: compiled where possible, else op by op.

    On the CPU the numba kernel; elsewhere inductor's kernel for large inputs.
    """
    if cpu_kernel.applies(x):
        mask = cpu_kernel.keep_mask(x, threshold, seed, offset)
        if mask is not None:
            return mask
    if fused.chosen_for(x, offset):
        mask = fused.try_compiled("mask", fused.fused_keep_mask, x, threshold, seed, offset)
        if mask is not None:
            return mask
    return keep_mask(x, threshold, seed, offset)


def eager_route(X: torch.Tensor) -> str | None:
    """Return how an eager call on ``X`` skips the custom operators' dispatch (~50 us).

    ``"kernel"``: no gradient needed, run the eager kernel directly; ``"autograd"``: a
    gradient is needed, or a ``torch.func`` transform is active (its batched and
    grad-tracking tensors look like plain ones): run the kernel inside the matching
    ``autograd.Function``, which has a vmap rule; ``None``: use the operator -- under
    ``torch.compile``/``torch.export`` tracing, or for a tensor subclass.
    """
    if type(X) is not torch.Tensor or torch.compiler.is_compiling():
        return None
    if torch._C._are_functorch_transforms_active():
        return "autograd"
    return "autograd" if X.requires_grad and torch.is_grad_enabled() else "kernel"
