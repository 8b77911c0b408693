"""One SGD step and prediction for the Flax NNX MLP.

The step interface of :mod:`dropout_ref.course.training` (also used by ``dropout-ref compare``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dropout_ref.course.jax.mlp import MLP


def _loss(model: MLP, X: jax.Array, y: jax.Array, mask_seed: int | None) -> jax.Array:
    logits = model(X, mask_seed=mask_seed)
    # Mean softmax cross-entropy, log-sum-exp stabilised as every framework's own.
    picked = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)


def _update(model: MLP, X: jax.Array, y: jax.Array, lr: jax.Array, mask_seed: int | None):
    loss, grads = nnx.value_and_grad(_loss)(model, X, y, mask_seed)
    params = nnx.state(model, nnx.Param)
    nnx.update(model, jax.tree.map(lambda p, g: p - lr * g, params, grads))
    return loss


@nnx.jit
def _compiled_step(model: MLP, X: jax.Array, y: jax.Array, lr: jax.Array) -> jax.Array:
    # nnx.jit carries the model's state in and out: the updated parameters and the
    # advanced dropout key counter of its Rngs.
    return _update(model, X, y, lr, None)


@nnx.jit
def _compiled_logits(model: MLP, X: jax.Array) -> jax.Array:
    return model(X)


def sgd_step(
    model: MLP, images: np.ndarray, labels: np.ndarray, lr: float, mask_seed: int | None = None
) -> float:
    """Take one SGD step on the batch's mean softmax cross-entropy in ``train()`` mode.

    Without ``mask_seed`` the step is one ``nnx.jit`` program (compiled once per
    batch shape; the masks' keys come from the model's ``nnx.Rngs``). With one,
    it runs op by op, since a seed is a Python int that a compiled program
    would bake in (the portable mask itself is still one compiled kernel whose
    key is an argument).

    Parameters
    ----------
    model : dropout_ref.jax.MLP
        Updated in place; left in ``train()`` mode.
    images : numpy.ndarray
        float32 batch, trailing dimensions holding ``num_inputs`` elements.
    labels : numpy.ndarray
        Integer labels of shape ``(n,)``.
    lr : float
        Learning rate.
    mask_seed : int, optional
        Portable-mask seed of this step (SPEC P); ``None`` uses the model's ``rngs``.

    Returns
    -------
    float
        The batch loss before the update.

    """
    X = jnp.asarray(np.asarray(images, dtype=np.float32))
    y = jnp.asarray(np.asarray(labels).astype(np.int32))
    rate = jnp.asarray(lr, jnp.float32)
    model.train()
    if mask_seed is None:
        loss = _compiled_step(model, X, y, rate)
    else:
        loss = _update(model, X, y, rate, mask_seed)
    return float(loss)


def predict(model: MLP, images: np.ndarray) -> np.ndarray:
    """Return the ``eval()``-mode logits of ``images`` as float32 NumPy."""
    model.eval()
    return np.asarray(_compiled_logits(model, jnp.asarray(np.asarray(images, np.float32))))
