"""TensorFlow piece of :func:`dropout_ref.forward_numpy`: Keras' ``training=`` (M2, X3)."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf


def forward_numpy(
    model: Any, inputs: Any, *, training: bool, mask_seed: int | None = None
) -> np.ndarray:
    """Return ``model(inputs, training=training, mask_seed=mask_seed)`` as NumPy."""
    out = model(tf.constant(np.asarray(inputs)), training=training, mask_seed=mask_seed)
    return np.asarray(out)
