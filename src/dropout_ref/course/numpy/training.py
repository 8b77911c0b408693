"""One SGD step and prediction for the NumPy MLP.

The step interface of :mod:`dropout_ref.course.training` (also used by ``dropout-ref compare``).
"""

from __future__ import annotations

import numpy as np

from dropout_ref.models.numpy.mlp import MLP


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Return the mean softmax cross-entropy and its gradient with respect to ``logits``.

    Parameters
    ----------
    logits : numpy.ndarray
        float32 array of shape ``(n, classes)``.
    labels : numpy.ndarray
        Integer class indices of shape ``(n,)``.

    Returns
    -------
    loss : float
        ``mean(logsumexp(logits) - logits[label])``.
    grad : numpy.ndarray
        ``(softmax(logits) - onehot(labels)) / n``, float32.

    """
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_probs = shifted - log_z
    rows = np.arange(n)
    loss = float(-log_probs[rows, labels].mean())
    grad = np.exp(log_probs)
    grad[rows, labels] -= 1.0
    return loss, (grad / np.float32(n)).astype(np.float32, copy=False)


def sgd_step(
    model: MLP,
    images: np.ndarray,
    labels: np.ndarray,
    lr: float,
    mask_seed: int | None = None,
    rates: tuple[float, float] | None = None,
) -> float:
    """Take one SGD step on the batch's mean softmax cross-entropy, in training mode.

    Parameters
    ----------
    model : dropout_ref.numpy.MLP
        Updated in place.
    images : numpy.ndarray
        float32 batch, trailing dimensions holding ``num_inputs`` elements.
    labels : numpy.ndarray
        Integer labels of shape ``(n,)``.
    lr : float
        Learning rate.
    mask_seed : int, optional
        Portable-mask seed of this step (SPEC P); ``None`` uses ``np.random``.
    rates : pair of float, optional
        This step's rates of the two hidden dropouts (a schedule's, SPEC S3);
        ``None``: the model's own.

    Returns
    -------
    float
        The batch loss before the update.

    """
    logits = model.forward(images, training=True, mask_seed=mask_seed, rates=rates)
    loss, grad_logits = softmax_cross_entropy(logits, np.asarray(labels, dtype=np.int64))
    grads = model.backward(grad_logits)
    step = np.float32(lr)
    for name, grad in grads.items():
        model.params[name] -= step * grad
    return loss


def predict(model: MLP, images: np.ndarray) -> np.ndarray:
    """Return the eval-mode (no dropout) logits of ``images`` as float32 NumPy."""
    return model.forward(images, training=False)
