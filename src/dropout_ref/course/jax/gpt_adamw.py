"""AdamW for the JAX GPT as nanoGPT sets it up (see dropout_ref.course.gpt_training)."""

from __future__ import annotations

from typing import Any

import jax
import optax
from flax import nnx


def gpt_adamw(
    model: Any, *, lr: float, weight_decay: float, betas: tuple[float, float]
) -> nnx.Optimizer:
    """Return ``optax.adamw`` over the model's ``nnx.Param``, weight decay on matrices only."""
    transform = optax.adamw(
        lr,
        b1=betas[0],
        b2=betas[1],
        weight_decay=weight_decay,
        mask=lambda params: jax.tree.map(lambda p: p.ndim >= 2, params),
    )
    return nnx.Optimizer(model, transform, wrt=nnx.Param)
