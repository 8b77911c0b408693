"""AdamW steps for the TensorFlow GPT (``Trainer`` of :mod:`dropout_ref.course.gpt_training`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf
from tensorflow import keras

if TYPE_CHECKING:  # importing the model first would import the adapter halfway
    from dropout_ref.course.tensorflow.gpt import GPT


class Trainer:
    """``keras.optimizers.AdamW`` on the mean next-token cross-entropy.

    Weight decay applies to the matrices only (nanoGPT's choice). Steps run
    eagerly: each step's portable ``mask_seed`` is a Python integer, which a
    ``tf.function`` would retrace for.

    Parameters
    ----------
    model : dropout_ref.course.tensorflow.gpt.GPT
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
        self.variables = list(model.weight_vars.values())
        self.optimizer = keras.optimizers.AdamW(
            learning_rate=lr, weight_decay=weight_decay, beta_1=betas[0], beta_2=betas[1]
        )
        self.optimizer.exclude_from_weight_decay(
            var_list=[v for v in self.variables if len(v.shape) < 2]
        )

    def _loss(self, x: np.ndarray, y: np.ndarray, training: bool, mask_seed: int | None):
        logits = self.model(tf.constant(x), training=training, mask_seed=mask_seed)
        return tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.constant(y), logits=logits)
        )

    def step(self, x: np.ndarray, y: np.ndarray, mask_seed: int | None = None) -> float:
        """Take one AdamW step with ``training=True``; return the batch loss before it."""
        with tf.GradientTape() as tape:
            loss = self._loss(x, y, True, mask_seed)
        grads = tape.gradient(loss, self.variables)
        self.optimizer.apply_gradients(zip(grads, self.variables, strict=True))
        return float(loss.numpy())

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        """Return the ``training=False`` loss of a batch (no update)."""
        return float(self._loss(x, y, False, None).numpy())
