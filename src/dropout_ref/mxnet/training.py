"""One SGD step and prediction for the Gluon MLP.

The step interface of :mod:`dropout_ref.training` (also used by ``dropout-ref compare``).
"""

# ruff: noqa: N806 - X is the course's name for a batch

from __future__ import annotations

import numpy as np

from dropout_ref.mxnet.framework import autograd, mnp, npx
from dropout_ref.mxnet.mlp import MLP


def sgd_step(
    model: MLP, images: np.ndarray, labels: np.ndarray, lr: float, mask_seed: int | None = None
) -> float:
    """Take one SGD step on the batch's mean softmax cross-entropy under ``autograd.record()``.

    Parameters
    ----------
    model : dropout_ref.mxnet.MLP
        Updated in place.
    images : numpy.ndarray
        float32 batch, trailing dimensions holding ``num_inputs`` elements.
    labels : numpy.ndarray
        Integer labels of shape ``(n,)``.
    lr : float
        Learning rate.
    mask_seed : int, optional
        Portable-mask seed of this step (SPEC P); ``None`` uses MXNet's generator.

    Returns
    -------
    float
        The batch loss before the update.

    """
    X = mnp.array(np.asarray(images, dtype=np.float32), dtype="float32")
    y = mnp.array(np.asarray(labels, dtype=np.int64), dtype="int64")
    with autograd.record(train_mode=True):
        # Gluon 1.x Block.__call__ takes positional arguments only.
        logits = model(X, mask_seed)
        log_probs = npx.log_softmax(logits, axis=-1)
        loss = -npx.pick(log_probs, y, axis=-1).mean()
    loss.backward()
    for param in model.weight_params().values():
        param.set_data(param.data() - lr * param.grad())
    return float(loss.item())


def predict(model: MLP, images: np.ndarray) -> np.ndarray:
    """Return the logits of ``images`` outside ``autograd.record()`` (no dropout) as NumPy."""
    return model(mnp.array(np.asarray(images, dtype=np.float32), dtype="float32")).asnumpy()
