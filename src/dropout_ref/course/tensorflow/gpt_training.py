"""Training step of the Keras GPT (the contract of :mod:`dropout_ref.course.gpt_compare`).

One step: mean token cross-entropy of ``model(idx, training=True)`` (dropout at
every site, portable with ``mask_seed``) under a ``GradientTape``, and one step of
the framework's own SGD (``keras.optimizers.SGD``, no momentum, no weight decay);
see :mod:`dropout_ref.course.gpt_compare` for why SGD and not AdamW. The step runs
eagerly: a portable seed is a Python int that a traced graph would bake in.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow import keras

from dropout_ref.course.gpt_compare import DEFAULT_LR, validate_lr
from dropout_ref.course.gpt_config import validate_batch
from dropout_ref.course.tensorflow.gpt import GPT


def gpt_optimizer(model: GPT, lr: float = DEFAULT_LR) -> keras.optimizers.Optimizer:
    """Return plain SGD with learning rate ``lr`` (Keras optimizers bind variables on use)."""
    return keras.optimizers.SGD(learning_rate=validate_lr(lr))


def _loss_and_grads(
    model: GPT, idx: Any, targets: Any, mask_seed: int | None, rates: Any
) -> tuple[tf.Tensor, list[tf.Tensor], list[tf.Variable]]:
    idx, targets = validate_batch(idx, targets, model.config)
    variables = list(model.weight_vars.values())
    with tf.GradientTape() as tape:
        logits = model(tf.constant(idx), training=True, mask_seed=mask_seed, rates=rates)
        loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.constant(targets), logits=logits
            )
        )
    return loss, tape.gradient(loss, variables), variables


def gpt_loss_and_gradients(
    model: GPT, idx: Any, targets: Any, *, mask_seed: int | None = None, rates: Any = None
) -> tuple[float, dict[str, np.ndarray]]:
    """Return the train-mode loss and its gradient per weight (HF names), without a step.

    ``rates``: this call's rates of some or all sites (a schedule's, SPEC S3).
    """
    loss, grads, _ = _loss_and_grads(model, idx, targets, mask_seed, rates)
    names = list(model.weight_vars)
    return float(loss.numpy()), {
        name: np.asarray(tf.convert_to_tensor(g)) for name, g in zip(names, grads, strict=True)
    }


def gpt_train_step(
    model: GPT,
    optimizer: keras.optimizers.Optimizer,
    idx: Any,
    targets: Any,
    *,
    mask_seed: int | None = None,
    rates: Any = None,
) -> float:
    """Take one optimizer step on the mean token cross-entropy; return the loss before it.

    Parameters
    ----------
    model : dropout_ref.tensorflow.GPT
        Updated in place.
    optimizer : keras.optimizers.Optimizer
        From :func:`gpt_optimizer` (or any Keras optimizer).
    idx, targets : array of int, shape (B, T)
        Token ids and the ids to predict at each position.
    mask_seed : int, optional
        Portable masks of this step (SPEC X4); ``None`` uses TensorFlow's generator.
    rates : dict of str to float, optional
        This step's rates of some or all sites (``"embd"``, ``"attn"``, ``"resid"``;
        a schedule's, SPEC S3) instead of the config's; the model is not rebuilt.

    """
    loss, grads, variables = _loss_and_grads(model, idx, targets, mask_seed, rates)
    optimizer.apply_gradients(zip(grads, variables, strict=True))
    return float(loss.numpy())
