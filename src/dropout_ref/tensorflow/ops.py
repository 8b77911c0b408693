"""TensorFlow primitives for dropout (the adapter's ``DropoutOps``)."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from dropout_ref.core.contract import DropoutOps
from dropout_ref.core.philox import seed_key
from dropout_ref.core.thresholds import float32_threshold, scale_compute_dtype, word_threshold
from dropout_ref.tensorflow import native, runtime
from dropout_ref.tensorflow.device import on_device_of
from dropout_ref.tensorflow.fast import fusable_blocks, run_fused, select_scaled
from dropout_ref.tensorflow.philox import TensorflowBlockArrays, keep_mask


class TensorflowOps(DropoutOps):
    """Dropout primitives on ``tf.Tensor`` (the contract's ``DropoutOps``)."""

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
        blocks = fusable_blocks(X, 0)
        if blocks is None:  # decided before the draw: the generator's stream stays the same
            return None
        with on_device_of(X):
            key = tf.random.uniform([2], maxval=2**32, dtype=tf.int64)
        return run_fused(X, key, word_threshold(dropout), scale, blocks)

    def fused_portable_dropout(
        self, X: Any, threshold: int, seed: int, offset: int, scale: float
    ) -> Any:
        """Portable dropout of a large eager ``X`` by the fused XLA programs, or ``None``.

        The same programs as the default mode, with the key of ``seed`` and the
        counters of ``offset``: bit for bit :meth:`portable_keep_mask` and the select.
        Measured faster than ``tf.nn.dropout`` from 2**20 elements (docs/benchmark.md);
        below, the stateless kernel of :meth:`portable_keep_mask` serves.
        """
        blocks = fusable_blocks(X, offset)
        if blocks is None:
            return None
        with on_device_of(X):
            key = tf.constant(seed_key(seed), tf.int64)
        return run_fused(X, key, threshold, scale, blocks)

    def portable_keep_mask(self, X: Any, threshold: int, seed: int, offset: int) -> tf.Tensor:
        """Return the Philox keep mask (SPEC P3), computed on ``X``'s device (P5).

        Where ``X``'s size is static, TensorFlow's own stateless Philox kernel draws
        the words (:mod:`dropout_ref.tensorflow.native`, one op instead of ~150);
        a shape known only at run time takes the generic Philox, which checks
        ``offset + size <= 2**64`` there.
        """
        if X.shape.num_elements() is None:
            return keep_mask(X, threshold, seed, offset)
        with on_device_of(X):
            return native.keep_mask(X, threshold, seed, offset, getattr(X, "device", ""))

    def is_runtime(self, value: Any) -> bool:
        """Return whether ``value`` is a symbolic tensor inside ``tf.function`` (SPEC S1, S2)."""
        return runtime.is_runtime(value)

    def runtime_dropout(
        self, X: Any, rate: Any, seed: Any, offset: Any, noise: Any, key: Any
    ) -> tf.Tensor:
        """Dropout with symbolic values (:mod:`dropout_ref.tensorflow.runtime`)."""
        return runtime.runtime_dropout(X, rate, seed, offset, noise, key)

    def block_arrays(self, X: Any) -> Any:
        """Index data and reshape on ``X``'s device for block masks (SPEC P7)."""
        return TensorflowBlockArrays(X)

    def select_scaled(self, X: Any, keep: Any, scale: float) -> tf.Tensor:
        """Return ``where(keep, X * scale, +0.0)``, the product rounded once into ``X``'s dtype."""
        compute = scale_compute_dtype(X.dtype.name)
        device = getattr(X, "device", "") or ""
        with on_device_of(X):
            if not tf.executing_eagerly():
                return select_scaled(X, keep, tf.constant(scale, compute))
            # Cached eager constants: two dispatches less per call.
            zero = native.constant(0, X.dtype.name, device) if X.dtype.name != "bfloat16" \
                else None
            return select_scaled(X, keep, native.constant(scale, compute, device), zero)
