"""TensorFlow primitives for dropout."""

from __future__ import annotations

import contextlib
from typing import Any

import tensorflow as tf

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
def _fused_dropout(X: Any, key: Any, threshold: Any, scale: Any) -> Any:
    # The project's Philox (counter = element index, key drawn by the caller),
    # the exact word rule w >= ceil(p * 2**32) (D4: u = w / 2**32 >= p) and the
    # select in one XLA loop: no word, mask or product tensor is materialised.
    # (tf.random.stateless_uniform was not fused by XLA on the CPU: 4 B/el.)
    from dropout_ref.philox import philox4x32_10_keyed
    from dropout_ref.tensorflow.philox import TENSORFLOW_OPS

    size = tf.size(X, out_type=tf.int64)
    # Layout v2: element g reads word g % 4 of block g // 4 (all four words used).
    index = tf.range((size + 3) // 4, dtype=tf.int64)
    words = philox4x32_10_keyed(TENSORFLOW_OPS, (index, 0, 0, 0), key[0], key[1])
    flat = TENSORFLOW_OPS.interleave(words)[:size]
    return _select_scaled(X, tf.reshape(flat >= threshold, tf.shape(X)), scale)


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
        """Dropout of a large eager ``X`` as one XLA kernel, or ``None`` (op-by-op path).

        The uniforms are the project's Philox words ``w / 2**32`` at counters
        ``0 .. size - 1`` under a 64-bit key drawn from TensorFlow's global
        generator (``tf.random.uniform``) at every call: a fresh mask per call,
        and ``tf.random.set_seed`` makes a run reproducible (D9). Kept iff
        ``w >= ceil(p * 2**32)``, i.e. exactly ``u >= p`` (D4). Inside a user's
        ``tf.function`` (not eager) the op-by-op path is used.
        """
        size = X.shape.num_elements()
        eligible = size is not None and FUSE_MIN_SIZE <= size <= 2**32
        if not tf.executing_eagerly() or not eligible:
            return None
        with on_device_of(X):
            seed = tf.random.uniform([2], maxval=2**32, dtype=tf.int64)
            threshold = tf.constant(word_threshold(dropout), tf.int64)
            scale_tensor = tf.constant(scale, tf.float64)
            return _fused_dropout(tf.convert_to_tensor(X), seed, threshold, scale_tensor)

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
