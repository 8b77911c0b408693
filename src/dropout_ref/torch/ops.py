"""PyTorch primitives for dropout (the adapter's ``DropoutOps``).

The kernels behind them live in :mod:`dropout_ref.torch.fast`.
"""

from __future__ import annotations

from typing import Any

import torch

from dropout_ref.core.contract import DropoutOps
from dropout_ref.core.thresholds import float32_threshold, word_threshold
from dropout_ref.torch import runtime
from dropout_ref.torch.distributed import local_block
from dropout_ref.torch.fast import cpu_kernel, custom_ops, triton_kernel
from dropout_ref.torch.fast.eager import (
    draw_keep_mask_cpu,
    eager_route,
    portable_keep_mask_eager,
    select_eager,
)
from dropout_ref.torch.philox import TorchBlockArrays, keep_mask


class TorchOps(DropoutOps):
    """Dropout primitives on ``torch.Tensor`` (the contract's ``DropoutOps``)."""

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
            return keep_mask(X, threshold, seed, offset)
        return portable_keep_mask_eager(X, threshold, seed, offset)

    def is_runtime(self, value: Any) -> bool:
        """Return whether ``value`` is a tensor traced by ``torch.compile`` (SPEC S1, S2)."""
        return runtime.is_runtime(value)

    def runtime_dropout(
        self, X: torch.Tensor, rate: Any, seed: Any, offset: Any, noise: Any, key: Any
    ) -> torch.Tensor:
        """Plain-op dropout with runtime values (:mod:`dropout_ref.torch.runtime`)."""
        return runtime.runtime_dropout(X, rate, seed, offset, noise, key)

    def block_arrays(self, X: torch.Tensor) -> Any:
        """Index data and reshape on ``X``'s device for block masks (SPEC P7)."""
        return TorchBlockArrays(X.device)

    def local_block(self, X: torch.Tensor) -> Any:
        """Return a DTensor's local shard, global shape, block start and a rewrap (SPEC P7)."""
        return local_block(X)

    def select_scaled(self, X: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        """Return ``where(keep, X * scale, +0.0)``; torch widens 16-bit floats for the product.

        ``keep`` may have a noise shape that broadcasts to ``X``'s (D12).

        The custom operator ``dropout_ref::select_scaled`` (autograd saves the
        1-byte mask; compiles and vmaps as one node).
        """
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
        """Portable mode on the whole of ``X``: one custom operator.

        The backward regenerates the mask from the seed where one fused kernel draws
        it (Triton, the compiled CPU kernel, any compiled graph): no per-element
        memory. Where the mask is drawn op by op (eager autograd on a CPU tensor below
        the compiled kernel's size), regenerating it would cost as much as drawing
        it, so the 1-byte mask is saved for the backward instead, as native dropout
        saves its own (``bench --gpt-step``: the GPT step's portable mode from 1.62x
        to 1.32x the native step on 2 CPU cores).
        """
        route = eager_route(X)
        if route == "kernel":
            return custom_ops.philox_eager(X, seed, offset, threshold, scale)
        if route == "autograd":
            if custom_ops.mask_is_fused(X, offset):
                return custom_ops.EagerPhilox.apply(X, seed, offset, threshold, scale)
            if cpu_kernel.fused_applies(X):  # output and mask in one numba pass
                return custom_ops.EagerKernelMask.apply(X, seed, offset, threshold, scale)
            keep = portable_keep_mask_eager(X, threshold, seed, offset)
            return custom_ops.EagerSelect.apply(X, keep, scale)
        return custom_ops.philox_dropout(X, *custom_ops.split_seed(seed, offset), threshold, scale)
