"""Calling each backend's MLP in its own framework's idiom (SPEC M2), from NumPy, for the tests."""



from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np


def run_forward(
    backend: ModuleType,
    model: Any,
    X: np.ndarray,
    *,
    training: bool,
    mask_seed: int | None = None,
) -> np.ndarray:
    """Return the logits of ``X`` with dropout on or off, switched the framework's way."""
    name = backend.ops.name
    if name == "numpy":
        return model.forward(X, training=training, mask_seed=mask_seed)
    if name == "torch":
        import torch

        model.train(training)  # model.train() / model.eval()
        with torch.no_grad():
            return model(torch.from_numpy(X), mask_seed=mask_seed).numpy()
    if name == "tensorflow":
        import tensorflow as tf

        return model(tf.constant(X), training=training, mask_seed=mask_seed).numpy()
    if name == "jax":
        model.train() if training else model.eval()  # nnx: sets Dropout.deterministic
        return np.asarray(model(X, mask_seed=mask_seed))
    if name == "mxnet":
        from dropout_ref.mxnet.framework import autograd, mnp

        x = mnp.array(X, dtype="float32")
        if training:
            with autograd.record():  # autograd.is_training() is True in here
                out = model(x, mask_seed)
        else:
            out = model(x, mask_seed)
        return out.asnumpy()
    raise AssertionError(f"no idiom for backend {name}")


def oracle_hidden(weights: dict[str, np.ndarray], X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the eval-mode hidden activations ``H1, H2`` in NumPy."""
    H1 = np.maximum(X.reshape(len(X), -1) @ weights["W1"] + weights["b1"], 0)
    H2 = np.maximum(H1 @ weights["W2"] + weights["b2"], 0)
    return H1, H2
