"""Philox4x32-10 in MXNet ops on ``x``'s context (SPEC P3, P5).

Only the integer primitives and the index ``arange`` live here; the
generator is :mod:`dropout_ref.core.philox`. Words are ``int64`` arrays.
MXNet 1.9.1's ``mxnet.numpy`` has ``*``, ``+``, ``&`` and ``^`` on ``int64``
but no shift operator and no ``//``. :class:`MxnetIntOps` shifts right by
dividing the same memory, viewed as a legacy ``NDArray`` (no copy), by
``2**bits``: the legacy division of an integer array by a scalar is integer
division (C++ ``/`` on ``int64``, truncating), which is the floor for the
non-negative values used here. Everything stays on ``x``'s context; there is
no host round trip (docs/deviations/mxnet.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dropout_ref.core.blocks import BlockArrays
from dropout_ref.core.philox import (
    HalfWordProducts,
    as_counter_words,
    as_key_words,
    block_span,
    element_words,
)
from dropout_ref.core.philox import (
    philox4x32_10 as _philox4x32_10,
)
from dropout_ref.mxnet.framework import mnp, mx


class MxnetIntOps(HalfWordProducts):
    """:class:`~dropout_ref.core.philox.IntOps` on ``int64`` ``mxnet.numpy`` arrays."""

    def add(self, a: Any, b: Any) -> Any:
        """Return ``a + b``."""
        return a + b

    def mul(self, a: Any, m: int) -> Any:
        """Return ``a * m``."""
        return a * m

    def and_(self, a: Any, mask: int) -> Any:
        """Return ``a & mask``."""
        return a & mask

    def xor(self, a: Any, b: Any) -> Any:
        """Return ``a ^ b``."""
        return a ^ b

    def shr(self, a: Any, bits: int) -> Any:
        """Return ``a >> bits`` as the integer quotient ``a / 2**bits`` of a legacy ``NDArray``."""
        return (a.as_nd_ndarray() / (1 << bits)).as_np_ndarray()

    def shl(self, a: Any, bits: int) -> Any:
        """Return ``a * 2**bits``."""
        return a * (1 << bits)

    def interleave(self, words: Sequence[Any]) -> Any:
        """Return the four words of each block, block after block, as one flat array."""
        return mnp.stack(list(words), axis=-1).reshape(-1)


MXNET_OPS = INT_OPS = MxnetIntOps()


class MxnetBlockArrays(BlockArrays):
    """Block arrays on ``ctx``: ``int64`` ``mxnet.numpy`` arrays."""

    int_ops = MXNET_OPS

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def index(self, values: np.ndarray) -> Any:
        """Return ``values`` as an ``int64`` array on the context."""
        return mnp.array(np.asarray(values, np.int64), dtype="int64", ctx=self.ctx)

    def reshape(self, a: Any, shape: tuple[int, ...]) -> Any:
        """Return ``a.reshape(shape)``."""
        return a.reshape(shape)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        """Return ``a`` where ``cond`` else ``b``."""
        return mnp.where(cond, a, b)


def keep_mask(x: Any, threshold: int, seed: int, offset: int) -> Any:
    """Return the portable keep mask of ``x`` (SPEC P), a bool array on ``x``'s context.

    Parameters
    ----------
    x : mxnet.numpy.ndarray or mxnet.nd.NDArray
        Only its shape and context are used.
    threshold : int
        ``ceil(p * 2**32)`` in ``[1, 2**32]``; an element is kept iff its word ``w >= threshold``.
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int
        Counter of element 0.

    Returns
    -------
    mxnet.numpy.ndarray
        Bool array of ``x``'s shape.

    """
    shape = tuple(x.shape)
    size = int(np.prod(shape, dtype=np.int64))
    # NumPy shape semantics, so that 0-d and empty masks work without npx.set_np().
    with mx.util.np_shape(True):
        _, _, n_blocks = block_span(offset, size)
        index = mnp.arange(n_blocks, dtype="int64", ctx=x.ctx)
        words = element_words(MXNET_OPS, index, seed, offset, size, n_blocks)
        # Threshold 2**32 ("drop all") as a scalar is exact: MXNet passes scalars as float64.
        return (words >= threshold).reshape(shape)


def philox4x32_10(counter_words: Any, key_words: Sequence[int], ctx: Any = None) -> np.ndarray:
    """Random123's ``philox4x32_10(ctr, key)`` computed with MXNet ops on ``ctx`` (P3).

    Parameters
    ----------
    counter_words : array_like
        Four counter words, each an integer array or scalar in ``[0, 2**32)``.
    key_words : sequence of two int
        ``(k0, k1)``.
    ctx : mxnet.Context, optional
        Where to compute; the current default context if omitted.

    Returns
    -------
    numpy.ndarray
        ``uint32`` array of shape ``(4, *word_shape)``.

    """
    ctx = ctx or mx.context.current_context()
    with mx.util.np_shape(True):
        counter = [
            mnp.array(w.astype(np.int64), dtype="int64", ctx=ctx)
            for w in as_counter_words(counter_words)
        ]
        words = _philox4x32_10(MXNET_OPS, counter, as_key_words(key_words))
        return np.stack([w.asnumpy() for w in words]).astype(np.uint32)
