"""PyTorch side of the array bridge (see :class:`dropout_ref.core.contract.ArrayBridge`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from dropout_ref.core.contract import ArrayBridge


class TorchArrays(ArrayBridge):
    """Array bridge for the torch backend.

    Parameters
    ----------
    device : str or torch.device, optional
        Where :meth:`from_numpy` puts new tensors.
    """

    name = "torch"
    float_dtypes = ("float16", "bfloat16", "float32", "float64")

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)

    def on_device(self, device: str | torch.device) -> TorchArrays:
        """Return a bridge whose new tensors live on ``device`` (checked: it must exist here).

        Raises
        ------
        ValueError
            If ``device`` is not a torch device string or is not available on this machine.
        """
        try:
            target = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device must be a torch device like 'cpu' or 'cuda:0', "
                             f"got {device!r}: {exc}") from None
        if target.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(f"device={str(device)!r}: no CUDA device on this machine "
                                 f"(torch {torch.__version__}, torch.cuda.is_available() is False)")
            if target.index is not None and target.index >= torch.cuda.device_count():
                raise ValueError(f"device={str(device)!r}: this machine has "
                                 f"{torch.cuda.device_count()} CUDA device(s)")
        elif target.type != "cpu":
            raise ValueError(f"device={str(device)!r}: the torch backend is checked on 'cpu' "
                             "and 'cuda' devices")
        return TorchArrays(target)

    def place_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move ``model`` to :attr:`device` (in place, as ``Module.to`` does) and return it."""
        return model.to(self.device)

    def from_numpy(self, array: np.ndarray, dtype: str | None = None) -> torch.Tensor:
        """Return a tensor on :attr:`device` holding ``array``."""
        tensor = torch.from_numpy(np.array(array, copy=True))
        target = getattr(torch, dtype) if dtype else tensor.dtype
        return tensor.to(device=self.device, dtype=target)

    def to_numpy(self, x: torch.Tensor) -> np.ndarray:
        """Return ``x`` on the host as NumPy (bfloat16 widened to float32)."""
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            x = x.float()
        return x.numpy()

    def dtype_name(self, x: torch.Tensor) -> str:
        """Return the dtype without its ``torch.`` prefix."""
        return str(x.dtype).removeprefix("torch.")

    def device_name(self, x: torch.Tensor) -> str:
        """Return ``str(x.device)``."""
        return str(x.device)

    def seed_global(self, seed: int) -> None:
        """Seed torch's global generators (``torch.manual_seed``)."""
        torch.manual_seed(seed)

    def value_and_grad(
        self, fn: Callable[[Any], Any], x: torch.Tensor, cotangent: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``fn(x)`` and the gradient of ``sum(fn(x) * cotangent)`` by autograd."""
        leaf = x.detach().clone().requires_grad_(True)
        out = fn(leaf)
        weights = torch.as_tensor(cotangent, device=out.device).to(out.dtype)
        grad = None
        if out.requires_grad:  # an output built without X (zeros at p=1) has gradient 0
            (grad,) = torch.autograd.grad((out * weights).sum(), leaf, allow_unused=True)
        if grad is None:
            grad = torch.zeros_like(leaf)
        return self.to_numpy(out), self.to_numpy(grad)
