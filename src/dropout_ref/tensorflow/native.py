"""P3's words from TensorFlow's own stateless Philox kernel (SPEC P3, P5).

``tf.raw_ops.StatelessRandomUniformFullIntV2(shape=[m], key=[seed],
counter=[b, 0], alg=1, dtype=uint32)`` is Philox4x32-10 with the key
``(seed mod 2**32, seed >> 32)`` (``key`` is one ``uint64``) and the 128-bit
counter ``(c0 | c1 << 32, c2 | c3 << 32) = (b, 0)``: it writes the four words
of block ``b``, then of block ``b + 1``, ... -- exactly the words of the
global indices ``4 b, 4 b + 1, ...`` of SPEC P3, the 128-bit counter carrying
from ``c0`` into ``c1`` as P3's ``floor(g / 4)`` does. A tensor at ``offset``
reads them from word ``offset % 4`` of block ``offset // 4`` on: draw
``offset % 4 + n`` words and drop the first ``offset % 4``.

It is one native kernel in eager mode and in graphs, and XLA lowers it to its
own Philox (``jit_compile=True``), where the key and the counter may be
run-time tensors (SPEC S2): one program serves every seed and offset.
A block index stays below ``2**62`` (offset + size <= 2**64), so the counter's
high word stays 0 as P3 requires.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import numpy as np
import tensorflow as tf

from dropout_ref.core.philox import WORDS_PER_BLOCK

#: ``alg`` of TensorFlow's stateless kernels for Philox4x32-10 (``RNG_ALG_PHILOX``).
ALG_PHILOX = 1


#: Eager constants kept per (value, dtype, device): an eager ``tf.constant`` is a host
#: allocation and a dispatch (~10 us), a visible share of a call at 2**14 elements.
CONSTANT_CACHE_SIZE = 1024


@functools.lru_cache(maxsize=CONSTANT_CACHE_SIZE)
def _eager_constant(value: Any, dtype: str, device: str) -> tf.Tensor:
    place = tf.device(device) if device else contextlib.nullcontext()
    with place:
        # Through NumPy: tf.constant refuses Python ints >= 2**63 for uint64.
        return tf.constant(np.array(value, dtype=np.dtype(dtype)))


def constant(value: Any, dtype: str, device: str = "") -> tf.Tensor:
    """Return ``value`` (a number or a tuple of numbers) as a ``dtype`` constant.

    Eagerly the tensor is cached (it is immutable); inside a graph a new constant op.
    """
    if tf.executing_eagerly():
        return _eager_constant(value, dtype, device)
    return tf.constant(np.array(value, dtype=np.dtype(dtype)))


def _draw(count: Any, key: tf.Tensor, counter: tf.Tensor) -> tf.Tensor:
    """Return ``count`` ``uint32`` Philox words from ``counter``'s block on."""
    # The shape as an int64 tensor (cached eagerly): a Python list sends the eager call
    # down TensorFlow's slow fallback that converts every argument again.
    if isinstance(count, tf.Tensor):
        shape = tf.reshape(tf.cast(count, tf.int64), [1])
    else:
        shape = constant((count,), "int64", "/CPU:0")
    return tf.raw_ops.StatelessRandomUniformFullIntV2(
        shape=shape,
        key=key, counter=counter, alg=ALG_PHILOX, dtype=tf.uint32,
    )


def words(size: Any, seed: int, offset: int) -> tf.Tensor:
    """Return the P3 words of global indices ``offset .. offset + size - 1`` (``uint32``).

    Parameters
    ----------
    size : int or tf.Tensor
        Number of words; an ``int64`` 0-d tensor inside a graph whose shape is
        known only at run time.
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int
        Global index of the first word, ``offset + size <= 2**64``.

    Returns
    -------
    tf.Tensor
        1-D ``uint32`` tensor of ``size`` words, on the current device.
    """
    first_block, lane = divmod(offset, WORDS_PER_BLOCK)
    # Host-memory inputs of the kernel: on the CPU whatever the device of the draw.
    key = constant((seed,), "uint64", "/CPU:0")
    counter = constant((first_block, 0), "uint64", "/CPU:0")
    drawn = _draw(size + lane, key, counter)
    return drawn[lane:] if lane else drawn


def runtime_words(size: Any, seed: tf.Tensor, offset: tf.Tensor) -> tf.Tensor:
    """Return the P3 words for a run-time seed and offset (SPEC S2), ``uint32``.

    Parameters
    ----------
    size : int or tf.Tensor
        Number of words: a Python int where the shape is static (XLA needs it).
    seed, offset : tf.Tensor
        0-d ``int64`` tensors read as their 64 bits (a negative ``v`` means ``v + 2**64``).

    Returns
    -------
    tf.Tensor
        1-D ``uint32`` tensor of ``size`` words.
    """
    drawn, lane = _runtime_draw(size, seed, offset)
    return _from_lane(drawn, lane, size)


def _runtime_draw(size: Any, seed: tf.Tensor, offset: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Return ``size + 3`` words from ``offset``'s block on and the run-time first lane."""
    key = tf.reshape(tf.bitcast(seed, tf.uint64), [1])
    bits = tf.bitcast(offset, tf.uint64)
    first_block = tf.bitwise.right_shift(bits, tf.constant(2, tf.uint64))
    counter = tf.stack([first_block, tf.zeros((), tf.uint64)])
    lane = tf.bitwise.bitwise_and(offset, WORDS_PER_BLOCK - 1)
    # Three words more than the call needs: the first lane is known only at run time,
    # and the drawn shape must not depend on it (one XLA program for every offset).
    return _draw(size + WORDS_PER_BLOCK - 1, key, counter), lane


def _from_lane(drawn: tf.Tensor, lane: tf.Tensor, size: Any) -> tf.Tensor:
    """Return ``size`` elements of ``drawn`` from the run-time index ``lane`` on."""
    size64 = tf.cast(size, tf.int64)
    return tf.slice(drawn, tf.reshape(lane, [1]), tf.reshape(size64, [1]))


def runtime_keep(size: Any, seed: tf.Tensor, offset: tf.Tensor, threshold: tf.Tensor) -> tf.Tensor:
    """Return P3's keep decisions ``w >= threshold`` for a run-time seed and offset (S2).

    :func:`runtime_words` compared before the run-time slice: the three spare words
    are dropped as bools (1 byte each) rather than as words, and the words are never
    widened (a ``uint32`` comparison).

    Parameters
    ----------
    size : int or tf.Tensor
        Number of decisions (a Python int where the shape is static).
    seed, offset : tf.Tensor
        0-d ``int64`` tensors read as their 64 bits.
    threshold : tf.Tensor
        0-d ``uint32``: ``ceil(p * 2**32)``, below ``2**32`` (the caller handles p = 1).

    Returns
    -------
    tf.Tensor
        1-D bool tensor of ``size`` decisions.
    """
    drawn, lane = _runtime_draw(size, seed, offset)
    return _from_lane(tf.greater_equal(drawn, threshold), lane, size)


def keep_mask(x: Any, threshold: int, seed: int, offset: int, device: str = "") -> tf.Tensor:
    """Return the portable keep mask of ``x`` (P3: ``w >= threshold``), a bool tensor.

    Parameters
    ----------
    x : tf.Tensor
        Only its shape is used (static, or dynamic inside ``tf.function``).
    threshold : int
        ``ceil(p * 2**32)`` in ``[1, 2**32]``; ``2**32`` drops every element.
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int
        Counter of element 0.
    device : str, optional
        ``x``'s device, where the threshold constant is kept.

    Returns
    -------
    tf.Tensor
        Bool tensor of ``x``'s shape, on the current device.
    """
    size = x.shape.num_elements()
    static = size is not None and x.shape.rank is not None
    shape = x.shape if static else tf.shape(x)
    if threshold > np.iinfo(np.uint32).max:  # no uint32 word reaches 2**32
        return tf.zeros(shape, tf.bool)
    count = size if static else tf.size(x, out_type=tf.int64)
    drawn = words(count, seed, offset)
    keep = tf.greater_equal(drawn, constant(threshold, "uint32", device))
    # A 1-D x needs no reshape (one eager dispatch less).
    return keep if static and x.shape.rank == 1 else tf.reshape(keep, shape)
