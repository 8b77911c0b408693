"""One SGD step and prediction for the torch MLP.

The step interface of :mod:`dropout_ref.course.training` (also used by ``dropout-ref compare``).
"""



from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dropout_ref.course.torch.mlp import MLP


def _device(model: MLP) -> torch.device:
    return model.W1.device


def sgd_step(
    model: MLP, images: np.ndarray, labels: np.ndarray, lr: float, mask_seed: int | None = None
) -> float:
    """Take one SGD step on the batch's mean softmax cross-entropy in ``train()`` mode.

    Parameters
    ----------
    model : dropout_ref.torch.MLP
        Updated in place; left in ``train()`` mode.
    images : numpy.ndarray
        float32 batch, trailing dimensions holding ``num_inputs`` elements.
    labels : numpy.ndarray
        Integer labels of shape ``(n,)``.
    lr : float
        Learning rate.
    mask_seed : int, optional
        Portable-mask seed of this step (SPEC P); ``None`` uses torch's generator.

    Returns
    -------
    float
        The batch loss before the update.

    """
    device = _device(model)
    X = torch.as_tensor(np.asarray(images, dtype=np.float32), device=device)
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64), device=device)
    model.train()
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(X, mask_seed=mask_seed), y)
    loss.backward()
    with torch.no_grad():
        for param in model.parameters():
            param -= lr * param.grad
    return float(loss.item())


def predict(model: MLP, images: np.ndarray) -> np.ndarray:
    """Return the ``eval()``-mode logits of ``images`` as float32 NumPy."""
    model.eval()
    with torch.no_grad():
        X = torch.as_tensor(np.asarray(images, dtype=np.float32), device=_device(model))
        return model(X).cpu().numpy()
