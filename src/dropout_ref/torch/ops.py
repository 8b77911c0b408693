"""PyTorch primitives for dropout."""

from __future__ import annotations

from typing import Any

import torch

from dropout_ref.thresholds import float32_threshold, word_threshold

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


def select_eager(X: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
    """Return the select on real tensors (no autograd); one compiled kernel for large CPU inputs.

    Always returns a new contiguous tensor (the custom operator's fake promises that).
    """
    X = X.contiguous()
    if keep.shape != X.shape:
        keep = keep.expand(X.shape)
    if X.numel() >= FUSED_SELECT_MIN_SIZE and X.device.type == "cpu":
        from dropout_ref.torch import fused

        out = fused.try_compiled("select", fused.fused_select_scaled, X, keep, scale)
        if out is not None:
            return out
    return scaled_select_no_grad(X, keep, scale)


def portable_dropout_eager(
    x: torch.Tensor, threshold: int, seed: int, offset: int, scale: float
) -> torch.Tensor:
    """Return the portable dropout of the whole of ``x`` on real tensors, without Triton.

    From :data:`dropout_ref.torch.fused.FUSE_MIN_SIZE` elements one compiled pass
    (mask and select together); below it, or where the compiled kernel cannot run, the
    keep mask and then the select.
    """
    from dropout_ref.torch import fused

    if x.numel() >= fused.FUSE_MIN_SIZE and fused.fusable(x, offset):
        out = fused.try_compiled(
            "dropout", fused.fused_philox_dropout, x, threshold, seed, offset, scale
        )
        if out is not None:
            return out
    return select_eager(x, portable_keep_mask_eager(x, threshold, seed, offset), scale)


def portable_keep_mask_eager(
    x: torch.Tensor, threshold: int, seed: int, offset: int
) -> torch.Tensor:
    """Return the Philox keep mask on real tensors: compiled for large inputs, else op by op."""
    from dropout_ref.torch import fused
    from dropout_ref.torch.philox import keep_mask

    if x.numel() >= fused.FUSE_MIN_SIZE and fused.fusable(x, offset):
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
        plain = eager_route(X) is not None and not torch._C._are_functorch_transforms_active()
        if X.device.type == "cpu" and plain:
            return draw_keep_mask_cpu(X, threshold)
        # In a compiled graph inductor fuses the draw and the compare into one kernel
        # (its generator is seeded from torch's, so torch.manual_seed still reproduces it);
        # under vmap an out-of-place draw follows the chosen randomness ("same"/"different").
        u = torch.rand(X.shape, dtype=torch.float32, device=X.device)
        return u >= threshold

    def portable_keep_mask(
        self, X: torch.Tensor, threshold: int, seed: int, offset: int
    ) -> torch.Tensor:
        """Return the Philox keep mask (SPEC P), computed with torch ops on ``X``'s device."""
        if torch.compiler.is_compiling():
            # Plain tensor ops: the graph's compiler fuses the generator itself.
            from dropout_ref.torch.philox import keep_mask

            return keep_mask(X, threshold, seed, offset)
        return portable_keep_mask_eager(X, threshold, seed, offset)

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

        The custom operator ``dropout_ref::select_scaled`` (autograd saves the
        1-byte mask; compiles and vmaps as one node).
        """
        from dropout_ref.torch import custom_ops

        route = eager_route(X)
        if route == "kernel":
            return select_eager(X, keep, scale)
        if route == "autograd":
            return custom_ops.EagerSelect.apply(X, keep, scale)
        return custom_ops.select_scaled(X, keep, scale)

    def fused_global_dropout(
        self, X: torch.Tensor, dropout: float, scale: float
    ) -> torch.Tensor | None:
        """Default mode in one kernel where Triton runs (CUDA): ``None`` elsewhere.

        The key is drawn from torch's generator of ``X``'s device on every call
        (D9) and stays there; the mask is Philox words ``>= ceil(p * 2**32)``,
        i.e. ``u >= p`` exactly for ``u = w / 2**32`` (D4).
        """
        from dropout_ref.torch import custom_ops, triton_kernel

        if not triton_kernel.applies(X):
            return None
        key = custom_ops.draw_key(X.device)
        route, threshold = eager_route(X), word_threshold(dropout)
        if route == "kernel":  # the kernel itself: no operator dispatch on the host's clock
            return triton_kernel.dropout(X, threshold, scale, key=key)
        if route == "autograd":
            return custom_ops.EagerKeyed.apply(X, key, threshold, scale)
        return custom_ops.keyed_dropout(X, key, threshold, scale)

    def fused_portable_dropout(
        self, X: torch.Tensor, threshold: int, seed: int, offset: int, scale: float
    ) -> torch.Tensor:
        """Portable mode on the whole of ``X``: one custom operator, mask recomputed in backward."""
        from dropout_ref.torch import custom_ops

        route = eager_route(X)
        if route == "kernel":
            return custom_ops.philox_eager(X, seed, offset, threshold, scale)
        if route == "autograd":
            return custom_ops.EagerPhilox.apply(X, seed, offset, threshold, scale)
        return custom_ops.philox_dropout(X, *custom_ops.split_seed(seed, offset), threshold, scale)
