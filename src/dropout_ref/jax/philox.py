"""Philox4x32-10 in ``jax.numpy`` ops, 32-bit integers only (SPEC P3, P5).

Only the integer primitives live here; the generator is
:mod:`dropout_ref.core.philox`. JAX without ``jax_enable_x64`` has no 64-bit
integers, so words are ``uint32`` arrays: products come from
:class:`~dropout_ref.core.philox.Uint32Products` (16-bit halves, XLA's unsigned
multiply wrapping modulo ``2**32``), and the 64-bit block counter is split in
Python into two 32-bit words whose carry is a comparison. The whole mask is
one ``jax.jit`` kernel whose key, counter base and threshold are arguments,
so XLA fuses it and one compilation serves every seed and offset of a size.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dropout_ref.core.blocks import BlockArrays
from dropout_ref.core.philox import (
    MASK32,
    WORDS_PER_BLOCK,
    Uint32Products,
    as_counter_words,
    as_key_words,
    block_span,
    philox4x32_10_keyed,
    seed_key,
)
from dropout_ref.core.philox import philox4x32_10 as _philox4x32_10


@functools.cache
def _mulhi() -> Any:
    """Return ``jax.lax.mulhi`` where it can serve, else ``None`` (the 16-bit products).

    Absent from older JAX releases. With several devices it is not used: XLA's SPMD
    partitioning then fails to legalize it ("failed to legalize operation 'mhlo.unknown'",
    ``tests/test_jax_sharding.py`` on 8 forced host devices).
    """
    mulhi = getattr(jax.lax, "mulhi", None)
    return mulhi if mulhi is not None and jax.device_count() == 1 else None


def _u32(b: Any) -> Any:
    return jnp.uint32(b) if isinstance(b, int) else b


class JaxIntOps(Uint32Products):
    """:class:`~dropout_ref.core.philox.IntOps` on ``uint32`` arrays (operands below ``2**32``)."""

    def add(self, a: Any, b: Any) -> Any:
        """Return ``a + b`` modulo ``2**32``."""
        return a + _u32(b)

    def mul(self, a: Any, m: int) -> Any:
        """Return ``a * m`` modulo ``2**32`` (unsigned multiplication wraps)."""
        return a * _u32(m)

    def and_(self, a: Any, mask: int) -> Any:
        """Return ``a & mask``."""
        return a & _u32(mask)

    def xor(self, a: Any, b: Any) -> Any:
        """Return ``a ^ b``."""
        return a ^ _u32(b)

    def shr(self, a: Any, bits: int) -> Any:
        """Return ``a >> bits`` (logical: the words are unsigned)."""
        return jax.lax.shift_right_logical(a, _u32(bits))

    def shl(self, a: Any, bits: int) -> Any:
        """Return ``a << bits`` modulo ``2**32``."""
        return jax.lax.shift_left(a, _u32(bits))

    def mulhilo(self, x: Any, m: int) -> tuple[Any, Any]:
        """Return ``(x * m) >> 32`` and ``(x * m) & 0xFFFFFFFF``.

        ``jax.lax.mulhi`` where this JAX has it: XLA multiplies in 64 bits inside its
        lowering (no ``jax_enable_x64`` needed), one product instead of four 16-bit ones.
        """
        mulhi = _mulhi()
        if mulhi is None:
            return super().mulhilo(x, m)
        return mulhi(x, _u32(m)), x * _u32(m)

    def mulhi(self, x: Any, m: int) -> Any:
        """Return ``(x * m) >> 32`` (``jax.lax.mulhi`` where available)."""
        mulhi = _mulhi()
        if mulhi is None:
            return super().mulhi(x, m)
        return mulhi(x, _u32(m))

    def interleave(self, words: Sequence[Any]) -> Any:
        """Return the four words of each block, block after block, as one flat array.

        Four strided writes, not ``jnp.stack(words, axis=-1)``: XLA's CPU backend fuses
        that stack with the generator into a loop about 15 times slower (measured: 260 ms
        against 16-22 ms for 2**20 words).
        """
        words = list(words)
        out = jnp.zeros(len(words) * words[0].shape[0], dtype=words[0].dtype)
        for lane, word in enumerate(words):
            out = out.at[lane :: len(words)].set(word)
        return out


JAX_OPS = INT_OPS = JaxIntOps()


class JaxBlockArrays(BlockArrays):
    """Block arrays in ``uint32`` (counter words are below 2**32)."""

    int_ops = JAX_OPS

    def index(self, values: np.ndarray) -> jax.Array:
        """Return ``values`` (row counter words, lanes: all below ``2**32``) as ``uint32``."""
        return jnp.asarray(np.asarray(values).astype(np.uint32))

    def reshape(self, a: Any, shape: tuple[int, ...]) -> jax.Array:
        """Return ``a.reshape(shape)``."""
        return jnp.reshape(a, shape)

    def where(self, cond: Any, a: Any, b: Any) -> jax.Array:
        """Return ``a`` where ``cond`` else ``b``."""
        return jnp.where(cond, a, b)

    def scalar(self, value: int) -> Any:
        """Return the threshold (below ``2**32``) as a ``uint32`` scalar."""
        return jnp.uint32(value)


@partial(jax.jit, static_argnames=("size", "lane", "carry"))
def _words(k0: Any, k1: Any, low: Any, high: Any, *, size: int, lane: int, carry: bool) -> Any:
    """Words of elements ``0 .. size - 1`` whose first block counter is ``(low, high)``."""
    n_blocks = -(-(lane + size) // WORDS_PER_BLOCK)
    c0 = jnp.arange(n_blocks, dtype=jnp.uint32) + low  # wraps past 2**32 ...
    # ... and then carries into the upper word: c0 < low exactly where it wrapped.
    c1 = high + (c0 < low).astype(jnp.uint32) if carry else high
    words = philox4x32_10_keyed(JAX_OPS, (c0, c1, 0, 0), k0, k1)
    return JAX_OPS.interleave(words)[lane : lane + size]


def element_words(size: int, seed: int, offset: int) -> jax.Array:
    """Return the random word of each of ``size`` elements from ``offset`` on, ``uint32`` (P3).

    Parameters
    ----------
    size : int
        Number of elements.
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int
        Global index of element 0; ``offset + size <= 2**64``.

    Returns
    -------
    jax.Array
        Flat ``uint32`` words, identical to :func:`dropout_ref.core.philox.numpy_words`.

    """
    first_block, lane, n_blocks = block_span(offset, size)
    low, high = first_block & MASK32, first_block >> 32
    k0, k1 = seed_key(seed)
    return _words(
        jnp.uint32(k0),
        jnp.uint32(k1),
        jnp.uint32(low),
        jnp.uint32(high),
        size=size,
        lane=lane,
        carry=low + n_blocks > 2**32,
    )


@partial(jax.jit, static_argnames=("lane", "carry"))
def _dropout(
    x: Any, k0: Any, k1: Any, low: Any, high: Any, threshold: Any, scale: Any, *,
    lane: int, carry: bool,
) -> Any:
    # _words inlined into one XLA program with the keep rule and the select: the mask
    # never exists as an array, and an eager call is one dispatch, not six.
    words = _words(k0, k1, low, high, size=x.size, lane=lane, carry=carry)
    keep = (words >= threshold).reshape(x.shape)
    scaled = (x.astype(scale.dtype) * scale).astype(x.dtype)
    return jnp.where(keep, scaled, jnp.zeros((), x.dtype))


def fused_dropout(
    x: Any, threshold: int, seed: int, offset: int, scale: float, compute: str
) -> jax.Array | None:
    """Return the portable dropout of the whole of ``x`` as one jitted program, or ``None``.

    Bit for bit ``where(keep_mask(x, ...), (x.astype(compute) * scale).astype(x.dtype), +0.0)``
    (the adapter's ``select_scaled``); the key, counters, threshold and scale are
    arguments, so one compilation per shape, dtype and ``offset % 4`` serves every seed,
    offset and rate. ``None`` for a threshold of ``2**32`` (drop all: the generic path).

    Parameters
    ----------
    x : jax.Array
        Input (a tracer too: the program is then inlined into the caller's).
    threshold : int
        ``ceil(p * 2**32)`` in ``[1, 2**32]``.
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int
        Counter of element 0.
    scale : float
        ``1 / (1 - p)``.
    compute : str
        dtype of the product (``scale_compute_dtype`` of ``x``'s dtype).

    Returns
    -------
    jax.Array or None
        The output, of ``x``'s shape and dtype.
    """
    if threshold > MASK32 or x.size == 0:
        return None
    first_block, lane, n_blocks = block_span(offset, int(x.size))
    low, high = first_block & MASK32, first_block >> 32
    k0, k1 = seed_key(seed)
    return _dropout(
        x, np.uint32(k0), np.uint32(k1), np.uint32(low), np.uint32(high),
        np.uint32(threshold), np.asarray(scale, dtype=jnp.dtype(compute)),
        lane=lane, carry=low + n_blocks > 2**32,
    )


def keep_mask(x: Any, threshold: int, seed: int, offset: int) -> jax.Array:
    """Return the portable keep mask of ``x`` (SPEC P): word ``>= threshold``, bool, ``x``'s shape.

    Parameters
    ----------
    x : jax.Array
        Only its (static) shape is used.
    threshold : int
        ``ceil(p * 2**32)`` in ``[1, 2**32]``; ``2**32`` drops every element.
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int
        Counter of element 0.

    Returns
    -------
    jax.Array
        Bool array of ``x``'s shape.

    """
    shape = tuple(x.shape)
    if threshold > MASK32:  # "drop all": 2**32 does not fit a uint32 word
        return jnp.zeros(shape, dtype=bool)
    size = int(np.prod(shape, dtype=np.int64))
    words = element_words(size, seed, offset)
    return (words >= jnp.uint32(threshold)).reshape(shape)


def philox4x32_10(counter_words: Any, key_words: Sequence[int]) -> np.ndarray:
    """Random123's ``philox4x32_10(ctr, key)`` computed with JAX ops (P3 known answers).

    Parameters
    ----------
    counter_words : array_like
        Four counter words, each an integer array or scalar in ``[0, 2**32)``.
    key_words : sequence of two int
        ``(k0, k1)``.

    Returns
    -------
    numpy.ndarray
        ``uint32`` array of shape ``(4, *word_shape)``.

    """
    counter = [jnp.asarray(w.astype(np.uint32)) for w in as_counter_words(counter_words)]
    words = _philox4x32_10(JAX_OPS, counter, as_key_words(key_words))
    return np.stack([np.asarray(w) for w in words]).astype(np.uint32)
