"""Train/eval forward passes of a Keras model in its idiom: ``model(X, training=...)`` (M2)."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf


def train_forward(model: Any, images: np.ndarray) -> np.ndarray:
    """Return ``model(X, training=True)``."""
    return np.asarray(model(tf.constant(np.asarray(images, np.float32)), training=True))


def eval_forward(model: Any, images: np.ndarray) -> np.ndarray:
    """Return ``model(X, training=False)``."""
    return np.asarray(model(tf.constant(np.asarray(images, np.float32)), training=False))
