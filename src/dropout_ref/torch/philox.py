"""Philox4x32-10 in torch ops on ``x``'s device (SPEC P3, P5).

Only the integer primitives and the index ``arange`` live here; the
generator is :mod:`dropout_ref.core.philox`. Words are ``int64`` tensors; the
products of :class:`~dropout_ref.core.philox.ComplementProducts` use one signed
``int64`` multiply per ``mulhilo`` by ``m - 2**32`` (negative, never
overflowing), so nothing depends on ``int64`` overflow (which C++ and
compiled kernels leave undefined); ``>>`` on ``int64`` tensors is an
arithmetic shift, as the mixin requires. Plain tensor operators only, so
``torch.compile`` can fuse the whole generator into one kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from dropout_ref.core.blocks import BlockArrays
from dropout_ref.core.philox import (
    ComplementProducts,
    as_counter_words,
    as_key_words,
    block_span,
    element_words,
)
from dropout_ref.core.philox import (
    philox4x32_10 as _philox4x32_10,
)


class TorchIntOps(ComplementProducts):
    """:class:`~dropout_ref.core.philox.IntOps` on ``int64`` tensors."""

    def add(self, a: torch.Tensor, b: Any) -> torch.Tensor:
        """Return ``a + b``."""
        return a + b

    def mul(self, a: torch.Tensor, m: int) -> torch.Tensor:
        """Return ``a * m``."""
        return a * m

    def and_(self, a: torch.Tensor, mask: int) -> torch.Tensor:
        """Return ``a & mask``."""
        return a & mask

    def xor(self, a: torch.Tensor, b: Any) -> torch.Tensor:
        """Return ``a ^ b``."""
        return a ^ b

    def shr(self, a: torch.Tensor, bits: int) -> torch.Tensor:
        """Return ``a >> bits``."""
        return a >> bits

    def shl(self, a: torch.Tensor, bits: int) -> torch.Tensor:
        """Return ``a << bits``."""
        return a << bits

    def interleave(self, words: Sequence[torch.Tensor]) -> torch.Tensor:
        """Return the four words of each block, block after block, as one flat tensor."""
        return torch.stack(list(words), dim=-1).reshape(-1)


TORCH_OPS = INT_OPS = TorchIntOps()


class TorchBlockArrays(BlockArrays):
    """:class:`~dropout_ref.core.blocks.BlockArrays` on ``device``: ``int64`` tensors."""

    int_ops = TORCH_OPS

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def index(self, values: np.ndarray) -> torch.Tensor:
        """Return ``values`` as an ``int64`` tensor on the device (row counters, lanes)."""
        return torch.as_tensor(np.ascontiguousarray(values, dtype=np.int64), device=self.device)

    def reshape(self, a: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """Return ``a.reshape(shape)``."""
        return a.reshape(shape)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        """Return ``a`` where ``cond`` else ``b``."""
        return torch.where(cond, a, b)


def keep_mask(x: torch.Tensor, threshold: int, seed: int, offset: int) -> torch.Tensor:
    """Return the portable keep mask of ``x`` (SPEC P), a bool tensor on ``x``'s device.

    Parameters
    ----------
    x : torch.Tensor
        Only its shape and device are used.
    threshold : int
        ``ceil(p * 2**32)`` in ``[1, 2**32]``; an element is kept iff its word ``w >= threshold``.
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int
        Counter of element 0.

    Returns
    -------
    torch.Tensor
        Bool tensor of ``x``'s shape on ``x``'s device.

    """
    size = x.numel()
    _, _, n_blocks = block_span(offset, size)
    index = torch.arange(n_blocks, dtype=torch.int64, device=x.device)
    words = element_words(TORCH_OPS, index, seed, offset, size, n_blocks)
    return (words >= threshold).reshape(x.shape)


def philox4x32_10(
    counter_words: Any, key_words: Sequence[int], device: str | torch.device = "cpu"
) -> np.ndarray:
    """Random123's ``philox4x32_10(ctr, key)`` computed with torch ops on ``device`` (P3).

    Parameters
    ----------
    counter_words : array_like
        Four counter words, each an integer array or scalar in ``[0, 2**32)``.
    key_words : sequence of two int
        ``(k0, k1)``.
    device : str or torch.device, optional
        Where to compute.

    Returns
    -------
    numpy.ndarray
        ``uint32`` array of shape ``(4, *word_shape)``.

    """
    counter = [
        torch.as_tensor(w.astype(np.int64), device=device) for w in as_counter_words(counter_words)
    ]
    words = _philox4x32_10(TORCH_OPS, counter, as_key_words(key_words))
    return np.stack([w.cpu().numpy() for w in words]).astype(np.uint32)
