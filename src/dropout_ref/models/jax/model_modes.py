"""Train/eval forward passes of an NNX model in its idiom: ``train()``/``eval()`` (M2)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np


def train_forward(model: Any, images: np.ndarray) -> np.ndarray:
    """Return the logits after ``model.train()`` (keys from the model's ``nnx.Rngs``)."""
    model.train()
    return np.asarray(model(jnp.asarray(np.asarray(images, np.float32))))


def eval_forward(model: Any, images: np.ndarray) -> np.ndarray:
    """Return the logits after ``model.eval()``."""
    model.eval()
    return np.asarray(model(jnp.asarray(np.asarray(images, np.float32))))
