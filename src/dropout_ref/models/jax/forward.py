"""JAX piece of :func:`dropout_ref.forward_numpy`: NNX's ``train()``/``eval()`` (M2, X3)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from dropout_ref.jax.keys import KEYS


def forward_numpy(
    model: Any, inputs: Any, *, training: bool, mask_seed: int | None = None
) -> np.ndarray:
    """Return the output of ``model`` after ``model.train()`` or ``model.eval()``, as NumPy.

    Integer inputs (a GPT's token ids) stay integers, everything else (an MLP's
    images) becomes float32. In training without ``mask_seed``, the model's
    ``dropout`` stream is first reseeded (``nnx.reseed``) with the next key of
    the stream :data:`dropout_ref.jax.keys.KEYS`, JAX's stand-in for a global generator
    (D9): ``BACKEND.arrays.seed_global(s)`` then makes the tools' calls repeatable, as
    ``torch.manual_seed`` does for torch, and consecutive calls draw fresh masks.
    The model is left in the mode of the call (NNX keeps no single flag to restore).
    """
    array = np.asarray(inputs)
    X = jnp.asarray(array if array.dtype.kind in "iu" else array.astype(np.float32))
    if training:
        model.train()
        if mask_seed is None:
            nnx.reseed(model, dropout=KEYS.next())
    else:
        model.eval()
    return np.asarray(model(X, mask_seed=mask_seed))
