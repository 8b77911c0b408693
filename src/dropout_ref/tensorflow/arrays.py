"""TensorFlow side of the array bridge (see :class:`dropout_ref.core.contract.ArrayBridge`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from dropout_ref.core.contract import ArrayBridge


class TensorflowArrays(ArrayBridge):
    """Array bridge for the tensorflow backend."""

    name = "tensorflow"
    float_dtypes = ("float16", "bfloat16", "float32", "float64")

    def from_numpy(self, array: np.ndarray, dtype: str | None = None) -> tf.Tensor:
        """Return an eager tensor holding ``array``, cast to ``dtype`` if given."""
        tensor = tf.constant(np.array(array, copy=True))
        return tf.cast(tensor, dtype) if dtype else tensor

    def to_numpy(self, x: Any) -> np.ndarray:
        """Return ``x`` as NumPy (bfloat16 widened to float32)."""
        if x.dtype == tf.bfloat16:
            x = tf.cast(x, tf.float32)
        return np.asarray(x.numpy())

    def dtype_name(self, x: Any) -> str:
        """Return ``x.dtype.name``."""
        return x.dtype.name

    def device_name(self, x: Any) -> str:
        """Return the device string of ``x``."""
        return str(x.device)

    def seed_global(self, seed: int) -> None:
        """Seed TensorFlow's global generator (``tf.random.set_seed``)."""
        tf.random.set_seed(seed)

    def value_and_grad(
        self, fn: Callable[[Any], Any], x: Any, cotangent: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``fn(x)`` and the gradient of ``sum(fn(x) * cotangent)`` by ``GradientTape``."""
        x = tf.identity(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = fn(x)
            loss = tf.reduce_sum(out * tf.cast(cotangent, out.dtype))
        grad = tape.gradient(loss, x)
        if grad is None:
            grad = tf.zeros_like(x)
        return self.to_numpy(out), self.to_numpy(grad)
