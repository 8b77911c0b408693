"""AdamW for the TensorFlow GPT as nanoGPT sets it up (see dropout_ref.course.gpt_training)."""

from __future__ import annotations

from typing import Any

# Keras 3 itself, not `tf.keras`: Hugging Face's TF models set TF_USE_LEGACY_KERAS=1 on import,
# after which `tf.keras` is Keras 2 (tf_keras) and a model built on it is no Keras 3 model.
import keras


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
