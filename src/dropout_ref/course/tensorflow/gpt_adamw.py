"""AdamW for the TensorFlow GPT as nanoGPT sets it up (see dropout_ref.course.gpt_training)."""

from __future__ import annotations

from typing import Any

from tensorflow import keras


def gpt_adamw(
    model: Any, *, lr: float, weight_decay: float, betas: tuple[float, float]
) -> keras.optimizers.AdamW:
    """Return ``keras.optimizers.AdamW`` with weight decay on the matrices only (nanoGPT's)."""
    optimizer = keras.optimizers.AdamW(
        learning_rate=lr, weight_decay=weight_decay, beta_1=betas[0], beta_2=betas[1]
    )
    optimizer.exclude_from_weight_decay(
        var_list=[v for v in model.weight_vars.values() if len(v.shape) < 2]
    )
    return optimizer
