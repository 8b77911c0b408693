"""Training step of the Flax NNX GPT (the contract of :mod:`dropout_ref.porting.gpt_compare`).

One step: ``model.train()``, mean token cross-entropy of the train-mode logits
(dropout at every site, portable with ``mask_seed``), ``nnx.value_and_grad``, and
one update of the framework's own SGD (``optax.sgd`` through ``nnx.Optimizer``, no
momentum, no weight decay). The step is one ``nnx.jit`` program: without
``mask_seed`` the dropout keys come from the model's ``nnx.Rngs``; with one the
seed is traced as its two 32-bit words (``uint32[2]``, SPEC S2: JAX without x64
has no 64-bit integers), and a schedule's ``rates`` are traced float32 arrays
(S1), so neither a new seed nor a new rate recompiles it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from dropout_ref.core.validation import validate_seed
from dropout_ref.jax.runtime import seed_words
from dropout_ref.models.gpt_config import runtime_call_rates, validate_batch
from dropout_ref.models.jax.gpt import GPT
from dropout_ref.porting.gpt_compare import DEFAULT_LR, validate_lr


def gpt_optimizer(model: GPT, lr: float = DEFAULT_LR) -> nnx.Optimizer:
    """Return plain SGD (``optax.sgd``) with learning rate ``lr`` over the model's parameters."""
    return nnx.Optimizer(model, optax.sgd(validate_lr(lr)), wrt=nnx.Param)


def _loss(model: GPT, idx: jax.Array, targets: jax.Array, mask_seed: Any, rates: Any) -> jax.Array:
    logits = model(idx, mask_seed=mask_seed, rates=rates)
    # Mean token cross-entropy, log-sum-exp stabilised as every framework's own.
    picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - picked)


def _step(
    model: GPT,
    optimizer: nnx.Optimizer,
    idx: jax.Array,
    targets: jax.Array,
    mask_seed: Any,
    rates: Any = None,
) -> jax.Array:
    loss, grads = nnx.value_and_grad(_loss)(model, idx, targets, mask_seed, rates)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def _compiled_step(
    model: GPT, optimizer: nnx.Optimizer, idx: jax.Array, targets: jax.Array, rates: Any
) -> jax.Array:
    # nnx.jit carries the state in and out: parameters, optimizer state and the
    # advanced key counter of the model's Rngs. rates: None (the config's, constants)
    # or a dict of traced float32 0-d arrays: one program for every value.
    return _step(model, optimizer, idx, targets, None, rates)


@nnx.jit
def _compiled_seeded_step(
    model: GPT,
    optimizer: nnx.Optimizer,
    idx: jax.Array,
    targets: jax.Array,
    seed: jax.Array,
    rates: Any,
) -> jax.Array:
    # The portable masks' seed is traced as uint32[2] (SPEC S2): one program for every seed.
    return _step(model, optimizer, idx, targets, seed, rates)


def _batch(model: GPT, idx: Any, targets: Any) -> tuple[jax.Array, jax.Array]:
    idx, targets = validate_batch(idx, targets, model.config)
    return jnp.asarray(idx, jnp.int32), jnp.asarray(targets, jnp.int32)


def gpt_loss_and_gradients(
    model: GPT, idx: Any, targets: Any, *, mask_seed: int | None = None, rates: Any = None
) -> tuple[float, dict[str, np.ndarray]]:
    """Return the train-mode loss and its gradient per weight (HF names), without a step.

    ``rates``: this call's rates of some or all sites (a schedule's, SPEC S3).
    """
    x, y = _batch(model, idx, targets)
    model.train()
    loss, grads = nnx.value_and_grad(_loss)(model, x, y, mask_seed, rates)
    # The gradient State mirrors the model: a GPT over it reads the names back out.
    view = nnx.merge(nnx.graphdef(model), grads, nnx.state(model, nnx.Not(nnx.Param)))
    return float(loss), view.get_weights()


def gpt_train_step(
    model: GPT,
    optimizer: nnx.Optimizer,
    idx: Any,
    targets: Any,
    *,
    mask_seed: int | None = None,
    rates: Any = None,
) -> float:
    """Take one optimizer step on the mean token cross-entropy; return the loss before it.

    Parameters
    ----------
    model : dropout_ref.jax.GPT
        Updated in place; left in ``train()`` mode.
    optimizer : flax.nnx.Optimizer
        From :func:`gpt_optimizer` (or any ``nnx.Optimizer`` over ``model``'s ``nnx.Param``).
    idx, targets : array of int, shape (B, T)
        Token ids and the ids to predict at each position.
    mask_seed : int, optional
        Portable masks of this step (SPEC X4); ``None`` uses the model's ``nnx.Rngs``.
    rates : dict of str to float, optional
        This step's rates of some or all sites (``RATE_NAMES``: X2's and V3's;
        a schedule's, SPEC S3) instead of the config's, passed as traced float32
        arrays (S1): changing them recompiles nothing.

    """
    x, y = _batch(model, idx, targets)
    model.train()
    # The given rates as float32 arrays (DropPath's one per block), traced: no recompilation.
    traced = runtime_call_rates(model.config, rates, lambda r: jnp.asarray(r, jnp.float32))
    if mask_seed is None:
        loss = _compiled_step(model, optimizer, x, y, traced)
    else:
        seed = seed_words(validate_seed(mask_seed, "mask_seed"))
        loss = _compiled_seeded_step(model, optimizer, x, y, seed, traced)
    return float(loss)
