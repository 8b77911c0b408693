"""JAX piece of :func:`dropout_ref.forward_numpy`: NNX's ``train()``/``eval()`` (M2, X3)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np


def forward_numpy(
    model: Any, inputs: Any, *, training: bool, mask_seed: int | None = None
) -> np.ndarray:
    """Return the output of ``model`` after ``model.train()`` or ``model.eval()``, as NumPy.

    Integer inputs (a GPT's token ids) stay integers, everything else (an MLP's
    images) becomes float32. In training without ``mask_seed`` the dropout keys
    come from the model's ``nnx.Rngs``. The model is left in ``eval()`` mode
    after an eval call and in ``train()`` mode after a training call, as
    NNX's own idiom leaves it (it keeps no single mode flag to restore).
    """
    array = np.asarray(inputs)
    X = jnp.asarray(array if array.dtype.kind in "iu" else array.astype(np.float32))
    if training:
        model.train()
    else:
        model.eval()
    return np.asarray(model(X, mask_seed=mask_seed))
