"""TensorFlow's fast path: eager dropout of large tensors as two XLA programs.

The keep bytes of layout v2 (four keep bits of a block packed into one word,
viewed as its bytes: no interleave for XLA's CPU backend to fuse into a slow
loop), then the select. Graphs and small inputs take the other paths of
:class:`~dropout_ref.tensorflow.ops.TensorflowOps` (in the portable mode TensorFlow's
own stateless Philox kernel, :mod:`dropout_ref.tensorflow.native`).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from dropout_ref.core.philox import philox4x32_10_keyed
from dropout_ref.core.thresholds import scale_compute_dtype
from dropout_ref.tensorflow.device import on_device_of
from dropout_ref.tensorflow.philox import TENSORFLOW_OPS, block_keep_bytes

#: Element count from which eager default-mode dropout runs as one XLA kernel
#: (:func:`_fused_dropout`). XLA compiles once per shape (0.2-2 s on 2 cores), so
#: small tensors, whose shapes vary more and whose cost is dominated by op
#: dispatch, keep the op-by-op path.
FUSE_MIN_SIZE = 1 << 20


def select_scaled(X: Any, keep: Any, scale: Any, zero: Any = None) -> Any:
    """Return ``where(keep, X * scale, +0.0)``, the product rounded once into ``X``'s dtype.

    ``zero`` is a 0-d ``+0.0`` of ``X``'s dtype to reuse (made here when ``None``).
    """
    compute = tf.as_dtype(scale_compute_dtype(X.dtype.name))
    scaled = tf.cast(tf.cast(X, compute) * tf.cast(scale, compute), X.dtype)
    # A broadcast scalar zero, not zeros_like: one full-size temporary less.
    # A select (not a multiply by the mask) gives +0.0 where X is NaN or inf (D6).
    return tf.where(keep, scaled, tf.zeros((), X.dtype) if zero is None else zero)


@tf.function(jit_compile=True, reduce_retracing=True)
def _fused_keep_bytes(n_blocks: int, key: Any, first_block: Any, threshold: Any) -> Any:
    # The project's Philox (layout v2) under ``key`` for the blocks first_block, ...
    # and the exact word rule w >= ceil(p * 2**32) (D4: u = w / 2**32 >= p), as one
    # XLA loop writing 1 keep byte per element (tensorflow.philox.block_keep_bytes).
    # n_blocks is a Python int: XLA needs the loop's extent at compile time.
    index = tf.range(n_blocks, dtype=tf.int64) + first_block
    words = philox4x32_10_keyed(TENSORFLOW_OPS, (index, 0, 0, 0), key[0], key[1])
    return block_keep_bytes(words, threshold)


@tf.function(jit_compile=True, reduce_retracing=True)
def _fused_select(X: Any, keep_bytes: Any, lane: int, scale: Any) -> Any:
    # tf.size, not the static shape: reduce_retracing traces with unknown dimensions.
    keep = keep_bytes[lane : lane + tf.size(X, out_type=tf.int64)]
    return select_scaled(X, tf.reshape(tf.not_equal(keep, 0), tf.shape(X)), scale)


def _fused_dropout(
    X: Any, key: Any, threshold: Any, scale: Any, first_block: int = 0, lane: int = 0
) -> Any:
    """Dropout of eager ``X`` by two XLA programs: keep bytes, then the select.

    One program for both ran 2.5x slower at 2**24 elements (XLA fused the byte view
    of the packed mask into the select's loop); two cost one 1-byte mask per element.
    """
    n_blocks = -(-(lane + X.shape.num_elements()) // 4)
    keep_bytes = _fused_keep_bytes(n_blocks, key, tf.constant(first_block, tf.int64), threshold)
    return _fused_select(X, keep_bytes, lane, scale)


def fusable_blocks(X: Any, offset: int) -> tuple[int, int] | None:
    """Return ``(first_block, lane)`` where the fused programs apply to ``X``, else ``None``.

    They serve eager inputs of at least :data:`FUSE_MIN_SIZE` elements whose block
    counters all stay below ``2**32`` (the programs keep ``c1 = 0``); graphs and
    small inputs take the other paths.
    """
    size = X.shape.num_elements()
    if not tf.executing_eagerly() or size is None or size < FUSE_MIN_SIZE:
        return None
    first_block, lane = divmod(offset, 4)
    if first_block + -(-(lane + size) // 4) > 2**32:
        return None
    return first_block, lane


def run_fused(
    X: Any, key: Any, threshold: int, scale: float, blocks: tuple[int, int]
) -> Any:
    """Run :func:`_fused_dropout` on eager ``X`` with Python-level arguments."""
    compute = tf.as_dtype(scale_compute_dtype(X.dtype.name))
    with on_device_of(X):
        return _fused_dropout(
            tf.convert_to_tensor(X),
            key,
            tf.constant(threshold, tf.int64),
            tf.constant(scale, compute),
            *blocks,
        )


