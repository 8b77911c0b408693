"""TensorFlow primitives for dropout."""

from __future__ import annotations

import contextlib
from typing import Any

import tensorflow as tf

from dropout_ref.philox import seed_key
from dropout_ref.thresholds import float32_threshold, scale_compute_dtype, word_threshold


def on_device_of(X: Any) -> contextlib.AbstractContextManager[Any]:
    """Place new ops on ``X``'s device (eager tensors know it; symbolic ones do not)."""
    device = getattr(X, "device", "") or ""
    return tf.device(device) if device else contextlib.nullcontext()


#: Element count from which eager default-mode dropout runs as one XLA kernel
#: (:func:`_fused_dropout`). XLA compiles once per shape (0.2-2 s on 2 cores), so
#: small tensors, whose shapes vary more and whose cost is dominated by op
#: dispatch, keep the op-by-op path.
FUSE_MIN_SIZE = 1 << 20

def _select_scaled(X: Any, keep: Any, scale: Any) -> Any:
    compute = tf.as_dtype(scale_compute_dtype(X.dtype.name))
    scaled = tf.cast(tf.cast(X, compute) * tf.cast(scale, compute), X.dtype)
    # A broadcast scalar zero, not zeros_like: one full-size temporary less.
    # A select (not a multiply by the mask) gives +0.0 where X is NaN or inf (D6).
    return tf.where(keep, scaled, tf.zeros((), X.dtype))


@tf.function(jit_compile=True, reduce_retracing=True)
def _fused_keep_bytes(n_blocks: int, key: Any, first_block: Any, threshold: Any) -> Any:
    # The project's Philox (layout v2) under ``key`` for the blocks first_block, ...
    # and the exact word rule w >= ceil(p * 2**32) (D4: u = w / 2**32 >= p), as one
    # XLA loop writing 1 keep byte per element (tensorflow.philox.block_keep_bytes).
    from dropout_ref.philox import philox4x32_10_keyed
    from dropout_ref.tensorflow.philox import TENSORFLOW_OPS, block_keep_bytes

    # n_blocks is a Python int: XLA needs the loop's extent at compile time.
    index = tf.range(n_blocks, dtype=tf.int64) + first_block
    words = philox4x32_10_keyed(TENSORFLOW_OPS, (index, 0, 0, 0), key[0], key[1])
    return block_keep_bytes(words, threshold)


@tf.function(jit_compile=True, reduce_retracing=True)
def _fused_select(X: Any, keep_bytes: Any, lane: int, scale: Any) -> Any:
    # tf.size, not the static shape: reduce_retracing traces with unknown dimensions.
    keep = keep_bytes[lane : lane + tf.size(X, out_type=tf.int64)]
    return _select_scaled(X, tf.reshape(tf.not_equal(keep, 0), tf.shape(X)), scale)


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


def _fusable_blocks(X: Any, offset: int) -> tuple[int, int] | None:
    """Return ``(first_block, lane)`` where the fused programs apply to ``X``, else ``None``.

    They serve eager inputs of at least :data:`FUSE_MIN_SIZE` elements whose block
    counters all stay below ``2**32`` (the programs keep ``c1 = 0``); graphs and
    small inputs take the op-by-op path.
    """
    size = X.shape.num_elements()
    if not tf.executing_eagerly() or size is None or size < FUSE_MIN_SIZE:
        return None
    first_block, lane = divmod(offset, 4)
    if first_block + -(-(lane + size) // 4) > 2**32:
        return None
    return first_block, lane


def _run_fused(
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


class TensorflowOps:
    """Dropout primitives on ``tf.Tensor`` (see :class:`dropout_ref.backend_api.DropoutOps`)."""

    name = "tensorflow"
    conversion_hint = "X = tf.cast(X, tf.float32)"

    def check_array(self, X: Any) -> None:
        """Refuse anything but a tensor or variable."""
        if not isinstance(X, (tf.Tensor, tf.Variable)):
            raise TypeError(
                f"X must be a tf.Tensor on the tensorflow backend, got {type(X).__name__}; "
                "use tf.convert_to_tensor(X, dtype=tf.float32)"
            )

    def dtype_name(self, X: Any) -> str:
        """Return ``X.dtype.name``."""
        return X.dtype.name

    def size(self, X: Any) -> int | None:
        """Return the static element count, or ``None`` inside a graph with unknown shape."""
        return X.shape.num_elements()

    def constant_mask(self, X: Any, keep: bool) -> tf.Tensor:
        """Return a bool tensor of ``X``'s shape, all ``keep``."""
        with on_device_of(X):
            return tf.fill(tf.shape(X), keep)

    def global_keep_mask(self, X: Any, dropout: float) -> tf.Tensor:
        """Draw float32 uniforms from TensorFlow's global generator (``tf.random.set_seed``)."""
        # Always float32: tf.nn.dropout draws in X's dtype, which biases bf16/fp16 keep rates.
        with on_device_of(X):
            u = tf.random.uniform(tf.shape(X), dtype=tf.float32)
            return tf.greater_equal(u, tf.constant(float32_threshold(dropout), tf.float32))

    def fused_global_dropout(self, X: Any, dropout: float, scale: float) -> Any:
        """Dropout of a large eager ``X`` by the two fused XLA programs, or ``None``.

        The uniforms are the project's Philox words ``w / 2**32`` at counters
        ``0 .. size - 1`` under a 64-bit key drawn from TensorFlow's global
        generator (``tf.random.uniform``) at every call: a fresh mask per call,
        and ``tf.random.set_seed`` makes a run reproducible (D9). Kept iff
        ``w >= ceil(p * 2**32)``, i.e. exactly ``u >= p`` (D4). Inside a user's
        ``tf.function`` (not eager) the op-by-op path is used.
        """
        blocks = _fusable_blocks(X, 0)
        if blocks is None:  # decided before the draw: the generator's stream stays the same
            return None
        with on_device_of(X):
            key = tf.random.uniform([2], maxval=2**32, dtype=tf.int64)
        return _run_fused(X, key, word_threshold(dropout), scale, blocks)

    def fused_portable_dropout(
        self, X: Any, threshold: int, seed: int, offset: int, scale: float
    ) -> Any:
        """Portable dropout of a large eager ``X`` by the fused XLA programs, or ``None``.

        The same programs as the default mode, with the key of ``seed`` and the
        counters of ``offset``: bit for bit :meth:`portable_keep_mask` and the select.
        """
        blocks = _fusable_blocks(X, offset)
        if blocks is None:
            return None
        with on_device_of(X):
            key = tf.constant(seed_key(seed), tf.int64)
        return _run_fused(X, key, threshold, scale, blocks)

    def portable_keep_mask(self, X: Any, threshold: int, seed: int, offset: int) -> tf.Tensor:
        """Return the Philox keep mask (SPEC P), computed with TensorFlow ops on ``X``'s device."""
        from dropout_ref.tensorflow.philox import keep_mask

        return keep_mask(X, threshold, seed, offset)

    def block_arrays(self, X: Any) -> Any:
        """Index data and reshape on ``X``'s device for block masks (SPEC P7)."""
        from dropout_ref.tensorflow.philox import TensorflowBlockArrays

        return TensorflowBlockArrays(X)

    def select_scaled(self, X: Any, keep: Any, scale: float) -> tf.Tensor:
        """Return ``where(keep, X * scale, +0.0)``, the product rounded once into ``X``'s dtype."""
        compute = tf.as_dtype(scale_compute_dtype(X.dtype.name))
        with on_device_of(X):
            return _select_scaled(X, keep, tf.constant(scale, compute))
