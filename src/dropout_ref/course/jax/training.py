"""One SGD step and prediction for the Flax NNX MLP.

The step interface of :mod:`dropout_ref.course.training` (also used by ``dropout-ref compare``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dropout_ref.core.runtime import checked_rates
from dropout_ref.core.validation import validate_seed
from dropout_ref.jax.runtime import seed_words
from dropout_ref.models.jax.mlp import MLP


def _loss(model: MLP, X: jax.Array, y: jax.Array, mask_seed: Any, rates: Any) -> jax.Array:
    logits = model(X, mask_seed=mask_seed, rates=rates)
    # Mean softmax cross-entropy, log-sum-exp stabilised as every framework's own.
    picked = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)


def _update(model: MLP, X: jax.Array, y: jax.Array, lr: jax.Array, mask_seed: Any, rates: Any):
    loss, grads = nnx.value_and_grad(_loss)(model, X, y, mask_seed, rates)
    params = nnx.state(model, nnx.Param)
    nnx.update(model, jax.tree.map(lambda p, g: p - lr * g, params, grads))
    return loss


@nnx.jit
def _compiled_step(model: MLP, X: jax.Array, y: jax.Array, lr: jax.Array, rates: Any) -> jax.Array:
    # nnx.jit carries the model's state in and out: the updated parameters and the
    # advanced dropout key counter of its Rngs. rates: None (the model's own, constants)
    # or two traced 0-d arrays (SPEC S1): one program for every value.
    return _update(model, X, y, lr, None, rates)


@nnx.jit
def _compiled_seeded_step(
    model: MLP, X: jax.Array, y: jax.Array, lr: jax.Array, seed: jax.Array, rates: Any
) -> jax.Array:
    # The portable masks' seed is traced as uint32[2] (SPEC S2): one program for every seed.
    return _update(model, X, y, lr, seed, rates)


@nnx.jit
def _compiled_logits(model: MLP, X: jax.Array) -> jax.Array:
    return model(X)


def runtime_rates(rates: Any) -> Any:
    """Return a schedule's rates (a pair, or a dict per GPT site) as float32 0-d arrays.

    Traced under ``jit``; each checked on the host first (D1). ``None`` stays ``None``.
    """
    return checked_rates(rates, lambda r: jnp.asarray(r, jnp.float32))


def sgd_step(
    model: MLP,
    images: np.ndarray,
    labels: np.ndarray,
    lr: float,
    mask_seed: int | None = None,
    rates: Any = None,
) -> float:
    """Take one SGD step on the batch's mean softmax cross-entropy in ``train()`` mode.

    The step is one ``nnx.jit`` program, compiled once per batch shape: the
    masks' keys come from the model's ``nnx.Rngs``, or, with ``mask_seed``, the
    portable masks take the seed as its two traced 32-bit words
    (``uint32[2]``, SPEC S2; JAX without x64 has no 64-bit integers), so one
    program serves every seed.

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
    rates : pair of float, optional
        This step's rates of the two hidden dropouts (a schedule's, SPEC S3),
        passed as traced float32 arrays (S1): changing them recompiles nothing.

    Returns
    -------
    float
        The batch loss before the update.

    """
    X = jnp.asarray(np.asarray(images, dtype=np.float32))
    y = jnp.asarray(np.asarray(labels).astype(np.int32))
    rate = jnp.asarray(lr, jnp.float32)
    model.train()
    traced = runtime_rates(rates)
    if mask_seed is None:
        loss = _compiled_step(model, X, y, rate, traced)
    else:
        seed = seed_words(validate_seed(mask_seed, "mask_seed"))
        loss = _compiled_seeded_step(model, X, y, rate, seed, traced)
    return float(loss)


def predict(model: MLP, images: np.ndarray) -> np.ndarray:
    """Return the ``eval()``-mode logits of ``images`` as float32 NumPy."""
    model.eval()
    return np.asarray(_compiled_logits(model, jnp.asarray(np.asarray(images, np.float32))))
