"""PyTorch primitives for dropout."""

from __future__ import annotations

from typing import Any

import torch

from dropout_ref.thresholds import float32_threshold


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
        u = torch.rand(X.shape, dtype=torch.float32, device=X.device)
        return u >= float32_threshold(dropout)

    def portable_keep_mask(
        self, X: torch.Tensor, threshold: int, seed: int, offset: int
    ) -> torch.Tensor:
        """Return the Philox keep mask (SPEC P), computed with torch ops on ``X``'s device."""
        from dropout_ref.torch.philox import keep_mask

        return keep_mask(X, threshold, seed, offset)

    def select_scaled(self, X: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        """Return ``where(keep, X * scale, +0.0)``, the product rounded once into ``X``'s dtype."""
        # torch computes 16-bit products in float32 by itself (scale_compute_dtype's rule).
        return torch.where(keep, X * scale, 0.0)
