"""AdamW steps for the torch GPT (the ``Trainer`` of :mod:`dropout_ref.course.gpt_training`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # importing the model first would import the adapter halfway
    from dropout_ref.course.torch.gpt import GPT


class Trainer:
    """``torch.optim.AdamW`` on the mean next-token cross-entropy.

    Weight decay applies to the matrices only (nanoGPT's choice: not to biases,
    LayerNorm weights); the embedding, tied to the output head, is a matrix.

    Parameters
    ----------
    model : dropout_ref.course.torch.gpt.GPT
        Trained in place.
    lr, weight_decay : float
        AdamW's learning rate and decoupled weight decay.
    betas : tuple of float
        AdamW's moment decays.

    """

    def __init__(
        self, model: GPT, *, lr: float, weight_decay: float, betas: tuple[float, float]
    ) -> None:
        self.model = model
        params = list(model.parameters())
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW(groups, lr=lr, betas=betas)

    def _loss(self, x: np.ndarray, y: np.ndarray, mask_seed: int | None) -> torch.Tensor:
        device = self.model.transformer["wte"].weight.device
        logits = self.model(torch.as_tensor(x, device=device), mask_seed=mask_seed)
        targets = torch.as_tensor(y, device=device)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    def step(self, x: np.ndarray, y: np.ndarray, mask_seed: int | None = None) -> float:
        """Take one AdamW step in ``train()`` mode; return the batch loss before it."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._loss(x, y, mask_seed)
        loss.backward()
        self.optimizer.step()
        return float(loss.item())

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        """Return the ``eval()``-mode loss of a batch (no update)."""
        self.model.eval()
        with torch.no_grad():
            return float(self._loss(x, y, None).item())
