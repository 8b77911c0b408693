"""Flax's attention dropout under the identity trick (see :mod:`.audit`).

``flax.nnx.dot_product_attention(q, k, v, dropout_rng=key, dropout_rate=p,
deterministic=False)``, the function ``flax.nnx.MultiHeadAttention`` calls, with
``q = k = 0`` and ``v = I`` in Flax's ``(batch, length, heads, features)``
layout. JAX has no global generator (D9 as amended for JAX): the probe's
seeding call makes a ``jax.random.key(seed)`` and every call splits it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dropout_ref.conformance.attention.audit import BATCH, HEADS, SEQ, AttentionProbe


def flax_attention_probe(broadcast_dropout: bool = True) -> AttentionProbe:
    """Return the probe of ``nnx.dot_product_attention`` (Flax's default ``broadcast_dropout``)."""
    from flax import nnx

    from dropout_ref.jax import BACKEND

    state: dict[str, Any] = {"key": jax.random.key(0)}

    def run(p: float, dtype: str) -> np.ndarray:
        state["key"], sub = jax.random.split(state["key"])
        q = jnp.zeros((BATCH, SEQ, HEADS, SEQ), dtype=dtype)
        eye = jnp.broadcast_to(jnp.eye(SEQ, dtype=dtype)[None, :, None, :], q.shape)
        out = nnx.dot_product_attention(
            q, q, eye, dropout_rng=sub, dropout_rate=p, deterministic=False,
            broadcast_dropout=broadcast_dropout, dtype=jnp.dtype(dtype),
        )  # fmt: skip
        # (B, S_q, H, S) -> (B, H, S_q, S)
        return np.asarray(out.astype(jnp.float32), dtype=np.float64).transpose(0, 2, 1, 3)

    def seed(s: int) -> None:
        state["key"] = jax.random.key(s)

    return AttentionProbe(run=run, seed=seed, dtypes=tuple(BACKEND.arrays.float_dtypes))
