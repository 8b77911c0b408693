"""One SGD step and prediction for the Keras MLP.

The step interface of :mod:`dropout_ref.course.training` (also used by ``dropout-ref compare``).
"""



from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from dropout_ref.core.runtime import checked_rates
from dropout_ref.core.validation import int64_bits, validate_seed
from dropout_ref.models.mlp_spec import WEIGHT_NAMES
from dropout_ref.models.tensorflow.mlp import MLP

#: One compiled step per model and path: portable masks (XLA) or TensorFlow's generator.
_GRAPH_STEPS: dict[bool, weakref.WeakKeyDictionary[MLP, Callable[..., tf.Tensor]]] = {
    True: weakref.WeakKeyDictionary(),
    False: weakref.WeakKeyDictionary(),
}


def _step(model: MLP, X: tf.Tensor, y: tf.Tensor, lr: tf.Tensor, mask_seed: Any, rates: Any = None):
    variables = [model.weight_vars[name] for name in WEIGHT_NAMES]
    with tf.GradientTape() as tape:
        logits = model(X, training=True, mask_seed=mask_seed, rates=rates)
        loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        )
    grads = tape.gradient(loss, variables)
    for var, grad in zip(variables, grads, strict=True):
        var.assign_sub(lr * grad)
    return loss


def _graph_step(model: MLP, portable: bool = True) -> Callable[..., tf.Tensor]:
    """Return the model's ``tf.function`` step: XLA-compiled for portable masks (``portable``).

    XLA fuses the runtime-rate arithmetic (SPEC S1) and the Philox words into the
    step; measured on 2 CPU cores (``dropout-ref bench --compiled``): runtime
    rates cost 15% of a graph-mode step and nothing under XLA. TensorFlow's own
    generator (``portable=False``) stays in graph mode: its stateful ops under
    XLA would draw other numbers than the same graph without it.
    """
    step = _GRAPH_STEPS[portable].get(model)
    if step is None:
        # A weak reference: a value that held its own key strongly would keep every
        # model (variables, traced graph) alive for the life of the process.
        model_ref = weakref.ref(model)

        # seed: None (TensorFlow's generator) or an int64 tensor; rates: None (the
        # model's own, constants) or two float64 tensors (SPEC S1, S2): one trace per
        # combination of kinds, none per value.
        @tf.function(reduce_retracing=True, jit_compile=portable)
        def step(X: tf.Tensor, y: tf.Tensor, lr: tf.Tensor, seed: Any, rates: Any) -> tf.Tensor:
            return _step(model_ref(), X, y, lr, seed, rates)

        _GRAPH_STEPS[portable][model] = step
    return step


def runtime_rates(rates: Any) -> Any:
    """Return a schedule's rates (a pair, or a dict per GPT site) as float64 0-d tensors.

    Exact for every float; each checked on the host first (D1). ``None`` stays ``None``.
    """
    return checked_rates(rates, lambda r: tf.constant(r, tf.float64))


def sgd_step(
    model: MLP,
    images: np.ndarray,
    labels: np.ndarray,
    lr: float,
    mask_seed: int | None = None,
    rates: Any = None,
) -> float:
    """Take one SGD step on the batch's mean softmax cross-entropy with ``training=True``.

    The step runs as a ``tf.function`` traced once per model and kind of call:
    without ``mask_seed`` dropout draws from TensorFlow's global generator inside
    the graph; with one, the step is compiled by XLA (``jit_compile=True``) and
    the seed is an ``int64`` tensor (SPEC S2), so every seed runs the same program.
    ``rates`` (a schedule's, SPEC S3) enter as float64 tensors (S1): changing them
    retraces nothing.

    Parameters
    ----------
    model : dropout_ref.tensorflow.MLP
        Updated in place.
    images : numpy.ndarray
        float32 batch, trailing dimensions holding ``num_inputs`` elements.
    labels : numpy.ndarray
        Integer labels of shape ``(n,)``.
    lr : float
        Learning rate.
    mask_seed : int, optional
        Portable-mask seed of this step (SPEC P); ``None`` uses TensorFlow's generator.
    rates : pair of float, optional
        This step's rates of the two hidden dropouts; ``None``: the model's own.

    Returns
    -------
    float
        The batch loss before the update.

    """
    X = tf.constant(np.asarray(images, dtype=np.float32))
    y = tf.constant(np.asarray(labels, dtype=np.int64))
    rate = tf.constant(lr, tf.float32)
    seed = validate_seed(mask_seed, "mask_seed")
    seed = None if seed is None else tf.constant(int64_bits(seed), tf.int64)
    loss = _graph_step(model, portable=seed is not None)(X, y, rate, seed, runtime_rates(rates))
    return float(loss.numpy())


def predict(model: MLP, images: np.ndarray) -> np.ndarray:
    """Return the ``training=False`` logits of ``images`` as float32 NumPy."""
    return model(tf.constant(np.asarray(images, dtype=np.float32)), training=False).numpy()
