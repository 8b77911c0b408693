"""TensorFlow primitives for dropout."""

from __future__ import annotations

import contextlib
from typing import Any

import tensorflow as tf

from dropout_ref.thresholds import float32_threshold, scale_compute_dtype


def on_device_of(X: Any) -> contextlib.AbstractContextManager[Any]:
    """Place new ops on ``X``'s device (eager tensors know it; symbolic ones do not)."""
    device = getattr(X, "device", "") or ""
    return tf.device(device) if device else contextlib.nullcontext()


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

    def portable_keep_mask(self, X: Any, threshold: int, seed: int, offset: int) -> tf.Tensor:
        """Return the Philox keep mask (SPEC P), computed with TensorFlow ops on ``X``'s device."""
        from dropout_ref.tensorflow.philox import keep_mask

        return keep_mask(X, threshold, seed, offset)

    def select_scaled(self, X: Any, keep: Any, scale: float) -> tf.Tensor:
        """Return ``where(keep, X * scale, +0.0)``, the product rounded once into ``X``'s dtype."""
        compute = tf.as_dtype(scale_compute_dtype(X.dtype.name))
        with on_device_of(X):
            scaled = tf.cast(tf.cast(X, compute) * tf.constant(scale, compute), X.dtype)
            # A broadcast scalar zero, not zeros_like: one full-size temporary less.
            # A select (not a multiply by the mask) gives +0.0 where X is NaN or inf (D6).
            return tf.where(keep, scaled, tf.zeros((), X.dtype))
