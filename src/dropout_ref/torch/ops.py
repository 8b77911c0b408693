"""PyTorch primitives for dropout."""

from __future__ import annotations

from typing import Any

import torch

from dropout_ref.thresholds import float32_threshold

#: Float32 uniforms drawn per step on the CPU. 64 KiB of scratch stays in cache
#: and, being below ATen's parallel grain (32768), runs without an OpenMP
#: barrier, which costs milliseconds on a loaded machine.
UNIFORM_CHUNK = 1 << 14
#: Element count from which the no-grad select runs as one compiled kernel
#: (:func:`dropout_ref.torch.fused.fused_select_scaled`); the one-off compile
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


class ScaledSelect(torch.autograd.Function):
    """``where(keep, X * scale, +0.0)`` whose backward is ``where(keep, G * scale, 0)`` (D8).

    Forward runs the allocation-lean no-grad path, so the values are the same
    with and without autograd; only the 1-byte mask is saved for backward.
    """

    @staticmethod
    def forward(X: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:  # noqa: D102
        return scaled_select_no_grad(X, keep, scale)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:  # noqa: D102
        _, keep, scale = inputs
        ctx.save_for_backward(keep)
        ctx.scale = scale
        ctx.mark_non_differentiable(keep)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, None, None]:  # noqa: D102
        (keep,) = ctx.saved_tensors
        # Differentiable ops, so double backward works too.
        return torch.where(keep, grad * ctx.scale, 0.0), None, None


class TorchOps:
    """Dropout primitives on ``torch.Tensor`` (see :class:`dropout_ref.backend_api.DropoutOps`)."""

    name = "torch"
    conversion_hint = "X = X.float()"

    def check_array(self, X: Any) -> None:
        """Refuse anything but a tensor."""
        if not isinstance(X, torch.Tensor):
            raise TypeError(
                f"X must be a torch.Tensor on the torch backend, got {type(X).__name__}; "
                "use torch.as_tensor(X, dtype=torch.float32)"
            )

    def dtype_name(self, X: torch.Tensor) -> str:
        """Return the dtype without its ``torch.`` prefix."""
        return str(X.dtype).removeprefix("torch.")

    def size(self, X: torch.Tensor) -> int:
        """Return ``X.numel()``."""
        return X.numel()

    def constant_mask(self, X: torch.Tensor, keep: bool) -> torch.Tensor:
        """Return a bool tensor of ``X``'s shape on ``X``'s device, all ``keep``."""
        return torch.full(X.shape, keep, dtype=torch.bool, device=X.device)

    def global_keep_mask(self, X: torch.Tensor, dropout: float) -> torch.Tensor:
        """Draw float32 uniforms on ``X``'s device from torch's global generator."""
        # float32 whatever X's dtype: a float16/bfloat16 uniform would bias the keep rate.
        threshold = float32_threshold(dropout)
        if X.device.type == "cpu":
            return draw_keep_mask_cpu(X, threshold)
        u = torch.rand(X.shape, dtype=torch.float32, device=X.device)
        return u >= threshold

    def portable_keep_mask(
        self, X: torch.Tensor, threshold: int, seed: int, offset: int
    ) -> torch.Tensor:
        """Return the Philox keep mask (SPEC P), computed with torch ops on ``X``'s device."""
        from dropout_ref.torch import fused
        from dropout_ref.torch.philox import keep_mask

        if X.numel() >= fused.FUSE_MIN_SIZE and fused.fusable(X, offset):
            mask = fused.try_compiled("mask", fused.fused_keep_mask, X, threshold, seed, offset)
            if mask is not None:
                return mask
        return keep_mask(X, threshold, seed, offset)

    def block_arrays(self, X: torch.Tensor) -> Any:
        """Index data and reshape on ``X``'s device for block masks (SPEC P7)."""
        from dropout_ref.torch.philox import TorchBlockArrays

        return TorchBlockArrays(X.device)

    def local_block(self, X: torch.Tensor) -> Any:
        """Return a DTensor's local shard, global shape, block start and a rewrap (SPEC P7)."""
        from dropout_ref.torch.distributed import local_block

        return local_block(X)

    def select_scaled(self, X: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        """Return ``where(keep, X * scale, +0.0)``; torch widens 16-bit floats for the product.

        ``keep`` may have a noise shape that broadcasts to ``X``'s (D12).
        """
        if torch.is_grad_enabled() and X.requires_grad:
            return ScaledSelect.apply(X, keep, scale)
        # The compiled select takes a mask of X's shape; a noise-shaped one (D12) broadcasts
        # in the plain path instead.
        full_mask = keep.shape == X.shape
        if full_mask and X.numel() >= FUSED_SELECT_MIN_SIZE and X.device.type == "cpu":
            from dropout_ref.torch import fused

            out = fused.try_compiled("select", fused.fused_select_scaled, X, keep, scale)
            if out is not None:
                return out
        return scaled_select_no_grad(X, keep, scale)
