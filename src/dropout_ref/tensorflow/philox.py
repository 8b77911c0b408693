"""Philox4x32-10 in TensorFlow ops on ``x``'s device (SPEC P3, P5).

Only the integer primitives and the index ``tf.range`` live here; the
generator is :mod:`dropout_ref.core.philox`. Words are ``int64`` tensors.
TensorFlow's ``int64`` tensors overload ``*``, ``+``, ``&`` and ``^`` but not
the shifts, hence ``tf.bitwise``. Products come from
:class:`~dropout_ref.core.philox.ComplementProducts` (one ``int64`` multiply by
``m - 2**32``, no overflow); ``tf.bitwise.right_shift`` is an arithmetic
shift on signed types, as that needs. Every op is a graph op created under
``tf.device(x.device)``, so the mask never leaves the device and the code
traces inside ``tf.function`` (also when ``x``'s shape is only known at run time).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from dropout_ref.core.blocks import BlockArrays
from dropout_ref.core.philox import (
    COUNTER_SPACE,
    WORDS_PER_BLOCK,
    ComplementProducts,
    as_counter_words,
    as_key_words,
    block_words,
)
from dropout_ref.core.philox import (
    philox4x32_10 as _philox4x32_10,
)
from dropout_ref.tensorflow.device import on_device_of


def _int64(b: Any) -> Any:
    return tf.constant(b, tf.int64) if isinstance(b, int) else b


class TensorflowIntOps(ComplementProducts):
    """:class:`~dropout_ref.core.philox.IntOps` on ``int64`` tensors."""

    def add(self, a: tf.Tensor, b: Any) -> tf.Tensor:
        """Return ``a + b``."""
        return tf.add(a, _int64(b))

    def mul(self, a: tf.Tensor, m: int) -> tf.Tensor:
        """Return ``a * m``."""
        return tf.multiply(a, _int64(m))

    def and_(self, a: tf.Tensor, mask: int) -> tf.Tensor:
        """Return ``a & mask``."""
        return tf.bitwise.bitwise_and(a, _int64(mask))

    def xor(self, a: tf.Tensor, b: Any) -> tf.Tensor:
        """Return ``a ^ b``."""
        return tf.bitwise.bitwise_xor(a, _int64(b))

    def shr(self, a: tf.Tensor, bits: int) -> tf.Tensor:
        """Return ``a >> bits``."""
        return tf.bitwise.right_shift(a, _int64(bits))

    def shl(self, a: tf.Tensor, bits: int) -> tf.Tensor:
        """Return ``a << bits``."""
        return tf.bitwise.left_shift(a, _int64(bits))

    def interleave(self, words: Sequence[tf.Tensor]) -> tf.Tensor:
        """Return the four words of each block, block after block, as one flat tensor."""
        return tf.reshape(tf.stack(list(words), axis=-1), [-1])


TENSORFLOW_OPS = INT_OPS = TensorflowIntOps()


class TensorflowBlockArrays(BlockArrays):
    """:class:`~dropout_ref.core.blocks.BlockArrays` on ``x``'s device: ``int64`` tensors."""

    int_ops = TENSORFLOW_OPS

    def __init__(self, x: Any) -> None:
        self.x = x

    def index(self, values: np.ndarray) -> tf.Tensor:
        """Return ``values`` as an ``int64`` constant on ``x``'s device."""
        with on_device_of(self.x):
            return tf.constant(np.asarray(values, np.int64))

    def reshape(self, a: tf.Tensor, shape: tuple[int, ...]) -> tf.Tensor:
        """Return ``tf.reshape(a, shape)``."""
        return tf.reshape(a, shape)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        """Return ``a`` where ``cond`` else ``b``."""
        return tf.where(cond, a, b)


def keep_mask(x: Any, threshold: int, seed: int, offset: int) -> tf.Tensor:
    """Return the portable keep mask of ``x`` (SPEC P), a bool tensor on ``x``'s device.

    Parameters
    ----------
    x : tf.Tensor
        Only its shape and device are used; the shape may be dynamic inside ``tf.function``.
    threshold : int
        ``ceil(p * 2**32)`` in ``[1, 2**32]``; an element is kept iff its word ``w >= threshold``.
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int
        Counter of element 0.

    Returns
    -------
    tf.Tensor
        Bool tensor of ``x``'s shape.

    """
    size = x.shape.num_elements()
    with on_device_of(x):
        n = tf.size(x, out_type=tf.int64)
        checks = []
        if size is None and COUNTER_SPACE - offset < 2**63:
            # The static check of validate_offset could not run; check at run time instead.
            checks.append(
                tf.debugging.assert_less_equal(
                    n,
                    tf.constant(COUNTER_SPACE - offset, tf.int64),
                    message=f"offset + number of elements exceeds 2**64 (offset={offset})",
                )
            )
        first_block, lane = divmod(offset, WORDS_PER_BLOCK)
        n_blocks = (n + lane + WORDS_PER_BLOCK - 1) // WORDS_PER_BLOCK
        with tf.control_dependencies(checks):
            index = tf.range(n_blocks, dtype=tf.int64)
        static_blocks = None if size is None else -(-(lane + size) // WORDS_PER_BLOCK)
        words = block_words(TENSORFLOW_OPS, index, seed, first_block, static_blocks)
        keep = block_keep_bytes(words, tf.constant(threshold, tf.int64))[lane : lane + n]
        return tf.reshape(tf.not_equal(keep, 0), tf.shape(x))


def block_keep_bytes(words: Sequence[tf.Tensor], threshold: tf.Tensor) -> tf.Tensor:
    """Return the keep bytes (1 keep, 0 drop) of every element of the blocks, in element order.

    Layout v2 lays the four words of a block out one after the other. Under XLA on the
    CPU, interleaving them (``tf.stack(words, -1)``, concatenation or scatters) is fused
    with the generator into a loop 6-15x slower than the generator itself (measured at
    2**24 elements: 349 ms stacked vs 12 ms for the generator alone). Instead the four
    keep bits of a block are packed into one 32-bit word, byte ``j`` for word ``j``, and
    that word is reinterpreted as its four bytes: on a little-endian machine the bytes
    come out in element order, with no interleave at all.

    Parameters
    ----------
    words : sequence of four tf.Tensor
        ``(x0, x1, x2, x3)`` of each block, ``int64`` values below ``2**32``.
    threshold : tf.Tensor
        ``int64`` scalar in ``[1, 2**32]``: a word is kept iff ``w >= threshold``.

    Returns
    -------
    tf.Tensor
        ``uint8`` tensor of ``4 * n_blocks`` keep bytes.

    """
    if sys.byteorder != "little":  # byte j of the packed word would not be element j
        keep = [tf.greater_equal(w, threshold) for w in words]
        return tf.cast(tf.reshape(tf.stack(keep, axis=-1), [-1]), tf.uint8)
    bits = [tf.cast(tf.greater_equal(w, threshold), tf.int64) for w in words]
    packed = bits[0] + bits[1] * (1 << 8) + bits[2] * (1 << 16) + bits[3] * (1 << 24)
    return tf.reshape(tf.bitcast(tf.cast(packed, tf.uint32), tf.uint8), [-1])


def philox4x32_10(
    counter_words: Any, key_words: Sequence[int], device: str = "/CPU:0"
) -> np.ndarray:
    """Random123's ``philox4x32_10(ctr, key)`` computed with TensorFlow ops on ``device`` (P3).

    Parameters
    ----------
    counter_words : array_like
        Four counter words, each an integer array or scalar in ``[0, 2**32)``.
    key_words : sequence of two int
        ``(k0, k1)``.
    device : str, optional
        Where to compute.

    Returns
    -------
    numpy.ndarray
        ``uint32`` array of shape ``(4, *word_shape)``.

    """
    with tf.device(device):
        counter = [tf.constant(w.astype(np.int64)) for w in as_counter_words(counter_words)]
        words = _philox4x32_10(TENSORFLOW_OPS, counter, as_key_words(key_words))
    return np.stack([w.numpy() for w in words]).astype(np.uint32)
