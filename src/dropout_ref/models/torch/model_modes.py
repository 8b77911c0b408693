"""Train/eval forward passes of a torch model in its idiom: ``train()``/``eval()`` (M2)."""

from __future__ import annotations

import numpy as np
import torch


def _input(model: torch.nn.Module, images: np.ndarray) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.as_tensor(np.asarray(images, np.float32), device=device)


def train_forward(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    """Return the logits after ``model.train()``."""
    model.train()
    with torch.no_grad():
        return model(_input(model, images)).cpu().numpy()


def eval_forward(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    """Return the logits after ``model.eval()``."""
    model.eval()
    with torch.no_grad():
        return model(_input(model, images)).cpu().numpy()
