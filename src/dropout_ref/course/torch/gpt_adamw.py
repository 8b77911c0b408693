"""AdamW for the torch GPT as nanoGPT sets it up (see dropout_ref.course.gpt_training)."""

from __future__ import annotations

from typing import Any

import torch


def gpt_adamw(
    model: Any, *, lr: float, weight_decay: float, betas: tuple[float, float]
) -> torch.optim.AdamW:
    """Return ``torch.optim.AdamW`` with weight decay on the matrices only.

    nanoGPT's choice: biases and LayerNorm weights are not decayed; the
    embedding (tied to the output head) is a matrix and is.
    """
    params = list(model.parameters())
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)
