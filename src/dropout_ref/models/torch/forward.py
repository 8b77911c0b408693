"""PyTorch piece of :func:`dropout_ref.forward_numpy`: ``train()``/``eval()`` (M2, X3)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def forward_numpy(
    model: torch.nn.Module, inputs: Any, *, training: bool, mask_seed: int | None = None
) -> np.ndarray:
    """Return the output of ``model`` in ``train()`` or ``eval()`` mode, as NumPy.

    The inputs go to the device of the model's parameters; the model's mode is
    restored afterwards.
    """
    device = next(model.parameters()).device
    X = torch.as_tensor(np.asarray(inputs), device=device)
    was_training = model.training
    model.train(training)
    try:
        with torch.no_grad():
            out = model(X, mask_seed=mask_seed)
    finally:
        model.train(was_training)
    return out.cpu().numpy()
