"""Train/eval forward passes of a NumPy model in its idiom: an explicit ``training`` flag (M2)."""

from __future__ import annotations

from typing import Any

import numpy as np


def train_forward(model: Any, images: np.ndarray) -> np.ndarray:
    """Return ``model.forward(images, training=True)``."""
    return np.asarray(model.forward(np.asarray(images, np.float32), training=True))


def eval_forward(model: Any, images: np.ndarray) -> np.ndarray:
    """Return ``model.forward(images, training=False)``."""
    return np.asarray(model.forward(np.asarray(images, np.float32), training=False))
