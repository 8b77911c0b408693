"""Training step of the Keras GPT (the contract of :mod:`dropout_ref.porting.gpt_compare`).

One step: mean token cross-entropy of ``model(idx, training=True)`` (dropout at
every site, portable with ``mask_seed``) under a ``GradientTape``, and one step of
the framework's own SGD (``keras.optimizers.SGD``, no momentum, no weight decay);
see :mod:`dropout_ref.porting.gpt_compare` for why SGD and not AdamW.

The step (forward, gradients and the optimizer's update) is one ``tf.function``
per model and optimizer, in graph mode. With ``mask_seed`` the seed enters as an
``int64`` tensor (SPEC S2) and a schedule's rates as float64 tensors (S1), so no
seed or rate retraces it; TensorFlow's own stateless Philox kernel draws the
masks (:mod:`dropout_ref.tensorflow.native`). Graph mode, not XLA: on the CPU the
XLA-compiled portable step measured 1.06-1.13x the native graph step
(``tf.nn.dropout``), the graph step 0.98-1.06x (docs/benchmark.md); XLA would also
draw other numbers for TensorFlow's stateful generator (``mask_seed=None``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

# Keras 3 itself, not `tf.keras`: Hugging Face's TF models set TF_USE_LEGACY_KERAS=1 on import,
# after which `tf.keras` is Keras 2 (tf_keras) and a model built on it is no Keras 3 model.
import keras
import numpy as np
import tensorflow as tf

from dropout_ref.core.validation import int64_bits, validate_seed
from dropout_ref.models.gpt_config import runtime_call_rates, validate_batch
from dropout_ref.models.tensorflow.gpt import GPT
from dropout_ref.porting.gpt_compare import DEFAULT_LR, validate_lr


def gpt_optimizer(model: GPT, lr: float = DEFAULT_LR) -> keras.optimizers.Optimizer:
    """Return plain SGD with learning rate ``lr`` (Keras optimizers bind variables on use)."""
    return keras.optimizers.SGD(learning_rate=validate_lr(lr))


def _loss_and_grads(
    model: GPT, idx: Any, targets: Any, mask_seed: int | None, rates: Any
) -> tuple[tf.Tensor, list[tf.Tensor], list[tf.Variable]]:
    idx, targets = validate_batch(idx, targets, model.config)
    variables = list(model.weight_vars.values())
    with tf.GradientTape() as tape:
        loss = _token_loss(model, tf.constant(idx), tf.constant(targets), mask_seed, rates)
    return loss, tape.gradient(loss, variables), variables


def _token_loss(model: GPT, idx: tf.Tensor, targets: tf.Tensor, mask_seed: Any, rates: Any):
    logits = model(idx, training=True, mask_seed=mask_seed, rates=rates)
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
    )


#: One compiled step per path (portable or not), model and optimizer (see
#: :func:`gpt_train_step`). Weak keys: a step dies with its model or optimizer, and a
#: new optimizer never meets a step bound to an old one.
_COMPILED_STEPS: dict[
    bool, weakref.WeakKeyDictionary[GPT, weakref.WeakKeyDictionary[Any, Callable[..., tf.Tensor]]]
] = {True: weakref.WeakKeyDictionary(), False: weakref.WeakKeyDictionary()}


def _compiled_step(
    model: GPT, optimizer: keras.optimizers.Optimizer, portable: bool = True
) -> Callable[..., tf.Tensor]:
    """Return the step as a graph-mode ``tf.function``, cached per path, model and optimizer.

    ``portable``: the seeded path (a run-time seed tensor), else TensorFlow's generator.
    """
    steps = _COMPILED_STEPS[portable].setdefault(model, weakref.WeakKeyDictionary())
    step = steps.get(optimizer)
    if step is None:
        variables = list(model.weight_vars.values())
        # The optimizer's slots exist before tracing: tf.function creates no variables
        # after its first trace, and a Keras optimizer builds them on first use.
        optimizer.build(variables)
        model_ref, optimizer_ref = weakref.ref(model), weakref.ref(optimizer)

        @tf.function(reduce_retracing=True)
        def step(idx: tf.Tensor, targets: tf.Tensor, seed: Any, rates: Any) -> tf.Tensor:
            model = model_ref()
            with tf.GradientTape() as tape:
                loss = _token_loss(model, idx, targets, seed, rates)
            grads = tape.gradient(loss, variables)
            optimizer_ref().apply_gradients(zip(grads, variables, strict=True))
            return loss

        steps[optimizer] = step
    return step


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
        This step's rates of some or all sites (``RATE_NAMES``: X2's and V3's;
        a schedule's, SPEC S3) instead of the config's; the model is not rebuilt.

    """
    idx, targets = validate_batch(idx, targets, model.config)
    seed = validate_seed(mask_seed, "mask_seed")
    seed = None if seed is None else tf.constant(int64_bits(seed), tf.int64)
    step = _compiled_step(model, optimizer, portable=seed is not None)
    # The given rates as float64 tensors (DropPath's one per block): no retrace per value.
    rates = runtime_call_rates(model.config, rates, lambda r: tf.constant(r, tf.float64))
    loss = step(tf.constant(idx), tf.constant(targets), seed, rates)
    return float(loss.numpy())
