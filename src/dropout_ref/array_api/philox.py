"""Philox4x32-10 in Array API standard ops, on ``int64`` words (SPEC P3, P5).

Only the integer primitives live here; the generator is
:mod:`dropout_ref.core.philox`. The standard guarantees ``int64`` (its
default integer dtype) with an arithmetic right shift (``>>`` floors, the
standard says so) and two's complement bitwise ops, but it leaves integer
overflow unspecified. So the products come from
:class:`~dropout_ref.core.philox.ComplementProducts`: one ``int64`` product by
the negative ``m - 2**32``, whose magnitude stays below ``2**63``, so no step
ever overflows, in any conforming namespace. ``uint64`` would make the product
exact too, but torch and others implement few ``uint64`` ops.

The primitives are the arrays' own operators (``+``, ``*``, ``&``, ``^``,
``>>``, ``<<``), which every Array API array has, and the only namespace
functions (``stack``, ``reshape``, ``arange``) are looked up from the arrays
themselves, so one :data:`INT_OPS` serves every namespace.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from dropout_ref.array_api.namespaces import device_of, namespace_of
from dropout_ref.core.blocks import BlockArrays
from dropout_ref.core.philox import (
    ComplementProducts,
    as_counter_words,
    as_key_words,
    block_span,
    element_words,
)
from dropout_ref.core.philox import philox4x32_10 as _philox4x32_10


class ArrayApiIntOps(ComplementProducts):
    """:class:`~dropout_ref.core.philox.IntOps` on ``int64`` arrays of any Array API namespace.

    Python ``int`` operands are allowed by the standard wherever they fit the
    array's dtype, which every constant here (below ``2**32`` in magnitude) does.
    """

    def add(self, a: Any, b: Any) -> Any:
        """Return ``a + b``."""
        return a + b

    def mul(self, a: Any, m: int) -> Any:
        """Return ``a * m`` (``m`` may be negative: ``ComplementProducts``' ``m - 2**32``)."""
        return a * m

    def and_(self, a: Any, mask: int) -> Any:
        """Return ``a & mask`` (two's complement for the negative products)."""
        return a & mask

    def xor(self, a: Any, b: Any) -> Any:
        """Return ``a ^ b``."""
        return a ^ b

    def shr(self, a: Any, bits: int) -> Any:
        """Return ``a >> bits``: the standard's right shift floors negative values."""
        return a >> bits

    def shl(self, a: Any, bits: int) -> Any:
        """Return ``a << bits``."""
        return a << bits

    def interleave(self, words: Sequence[Any]) -> Any:
        """Return the four words of each block, block after block, as one flat array."""
        xp = namespace_of(words[0])
        return xp.reshape(xp.stack(list(words), axis=-1), (-1,))


INT_OPS = ArrayApiIntOps()


def int64_arange(xp: Any, n: int, device: Any) -> Any:
    """Return ``0 .. n - 1`` as ``int64`` on ``device``, refusing a namespace without ``int64``.

    Raises
    ------
    TypeError
        If the namespace gives another dtype (JAX without ``jax_enable_x64``
        silently makes ``int32``), where the words would overflow.
    """
    with warnings.catch_warnings():  # JAX warns of the truncation; the error below says more
        warnings.simplefilter("ignore", UserWarning)
        index = xp.arange(n, dtype=xp.int64, device=device)
    if index.dtype != xp.int64:
        raise TypeError(
            f"seed= on the array_api backend computes Philox in int64, but the namespace "
            f"{xp.__name__} made {index.dtype} for int64 (JAX: enable jax_enable_x64, or use "
            "the jax backend, dropout_ref.jax, whose Philox runs in uint32)"
        )
    return index


class ArrayApiBlockArrays(BlockArrays):
    """:class:`~dropout_ref.core.blocks.BlockArrays` in ``X``'s namespace and on its device."""

    int_ops = INT_OPS

    def __init__(self, xp: Any, device: Any) -> None:
        self.xp = xp
        self.device = device

    def index(self, values: np.ndarray) -> Any:
        """Return the host index data ``values`` as ``int64`` on ``X``'s device."""
        return self.xp.asarray(np.asarray(values, dtype=np.int64), device=self.device)

    def reshape(self, a: Any, shape: tuple[int, ...]) -> Any:
        """Return ``a`` reshaped (row-major) to ``shape``."""
        return self.xp.reshape(a, shape)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        """Return ``a`` where ``cond`` else ``b``."""
        return self.xp.where(cond, a, b)


def keep_mask(x: Any, threshold: int, seed: int, offset: int) -> Any:
    """Return the portable keep mask of ``x`` (SPEC P): word ``>= threshold``, in ``x``'s namespace.

    Parameters
    ----------
    x : array
        Any Array API array; only its shape, namespace and device are used.
    threshold : int
        ``ceil(p * 2**32)`` in ``[1, 2**32]``; ``2**32`` (which ``int64`` holds)
        drops every element.
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int
        Counter of element 0.

    Returns
    -------
    array
        Bool array of ``x``'s shape, on its device.

    """
    xp = namespace_of(x)
    shape = tuple(int(n) for n in x.shape)
    size = int(np.prod(shape, dtype=np.int64))
    _, _, n_blocks = block_span(offset, size)
    index = int64_arange(xp, n_blocks, device_of(x))
    words = element_words(INT_OPS, index, seed, offset, size, n_blocks)
    return xp.reshape(words >= threshold, shape)


def default_namespace() -> Any:
    """Return the namespace the bridge uses: ``array_api_strict`` if installed, else NumPy's."""
    try:
        import array_api_strict
    except ImportError:
        import array_api_compat.numpy

        return array_api_compat.numpy
    return array_api_strict


def philox4x32_10(counter_words: Any, key_words: Sequence[int], xp: Any = None) -> np.ndarray:
    """Random123's ``philox4x32_10(ctr, key)`` in Array API ops (the P3 known answers).

    Parameters
    ----------
    counter_words : array_like
        Four counter words, each an integer array or scalar in ``[0, 2**32)``.
    key_words : sequence of two int
        ``(k0, k1)``.
    xp : namespace, optional
        Where to compute (default :func:`default_namespace`).

    Returns
    -------
    numpy.ndarray
        ``uint32`` array of shape ``(4, *word_shape)``.

    """
    xp = default_namespace() if xp is None else xp
    counter = [xp.asarray(w.astype(np.int64)) for w in as_counter_words(counter_words)]
    words = _philox4x32_10(INT_OPS, counter, as_key_words(key_words))
    return np.stack([np.from_dlpack(w) for w in words]).astype(np.uint32)


__all__ = [
    "INT_OPS",
    "ArrayApiBlockArrays",
    "ArrayApiIntOps",
    "default_namespace",
    "keep_mask",
    "philox4x32_10",
]
