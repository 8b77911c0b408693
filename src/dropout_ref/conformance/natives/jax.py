"""JAX's own dropouts under the kit's calling convention, for the native audit.

``NATIVES`` maps a name to ``fn(X, p)``; ``EXPECTED_DEVIATIONS`` lists, per
native, the SPEC clauses it breaks on this machine with one line of evidence
each (the long form is ``docs/deviations/jax.md``). Flax's dropouts take
their keys from the array bridge's stream (:data:`dropout_ref.jax.keys.KEYS`), as our own
``kit_dropout_layer`` does, so D9 checks them through their key arguments.
Keras 3's dropouts are included when Keras runs on JAX in this process
(``KERAS_BACKEND=jax``; the report's jax worker sets it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dropout_ref.conformance.attention.jax import flax_attention_probe
from dropout_ref.conformance.natives.keras import keras_attention_natives, keras_natives
from dropout_ref.conformance.natives.stochastic_depth import (
    KERAS_CV_DEVIATIONS,
    KERAS_CV_DROP_PATH,
    keras_cv_natives,
)
from dropout_ref.jax.keys import KEYS


def nnx_dropout(X: Any, p: Any) -> Any:
    """``flax.nnx.Dropout(p, rngs=nnx.Rngs(dropout=key))(X)`` (a new module is in train mode)."""
    from flax import nnx

    return nnx.Dropout(p, rngs=nnx.Rngs(dropout=KEYS.next()))(X)


def linen_dropout(X: Any, p: Any) -> Any:
    """``flax.linen.Dropout(p).apply({}, X, deterministic=False, rngs={"dropout": key})``."""
    from flax import linen

    return linen.Dropout(p).apply({}, X, deterministic=False, rngs={"dropout": KEYS.next()})


def nnx_dropout_broadcast(X: Any, p: Any) -> Any:
    """``nnx.Dropout(p, broadcast_dims=(1,), rngs=...)(X)`` on an ``(N, T, C)`` X (SPEC D12)."""
    from flax import nnx

    layer = nnx.Dropout(p, broadcast_dims=(1,), rngs=nnx.Rngs(dropout=KEYS.next()))
    return layer(X)


#: Structured natives (SPEC D12): name -> (fn, noise_shape of the kit's variant).
STRUCTURED: dict[str, tuple[Callable[[Any, Any], Any], tuple[int | None, ...]]] = {
    "flax.nnx.Dropout(broadcast_dims=)": (nnx_dropout_broadcast, (None, 1, None)),
}

NATIVES: dict[str, Callable[[Any, Any], Any]] = {
    "flax.nnx.Dropout": nnx_dropout,
    "flax.linen.Dropout": linen_dropout,
    **keras_natives("jax"),
}

_FLAX_D1 = "rates -0.1, 1.5, nan, inf are accepted (no range check; 1.5 drops everything)"
_FLAX_D5 = (
    "16-bit X is divided by keep_prob in its own dtype: float16 at p=0.3 is 2 ulp off "
    "(1.8525390625 where 1.8544921875 is expected)"
)
_KERAS_D9 = (
    "the kit's key stream (JAX has no global generator) does not reach Keras' global "
    "SeedGenerator: 2056 of 4096 elements differ; keras.utils.set_random_seed is its seeding call"
)

#: Every documented deviation, Keras' included (in docs/deviations/jax.md).
DOCUMENTED_DEVIATIONS: dict[str, dict[str, str]] = {
    "flax.nnx.Dropout": {"D1": _FLAX_D1, "D5": _FLAX_D5},
    "flax.linen.Dropout": {"D1": _FLAX_D1, "D5": _FLAX_D5},
    "keras.layers.Dropout (jax)": {
        "D1": "rate=True is accepted; rate='0.5' raises a TypeError without the value",
        "D2": "the layer casts X to its dtype policy: float16/bfloat16 X come back as float32",
        "D3": "float16/bfloat16 X come back as float32 zeros (dtype policy)",
        "D7": "output dtype is the layer's policy (float32), not X's",
        "D9": _KERAS_D9,
    },
    "keras.random.dropout (jax)": {
        "D1": "rates -0.1, 1.5, nan, inf are accepted",
        "D5": "16-bit X is divided in its own dtype: float16 at p=0.3 is 2 ulp off",
        "D9": _KERAS_D9,
    },
}

# KerasCV's DropPath (SPEC V1), a Keras 3 layer: present only where keras_cv imports and Keras
# runs on jax here; documented whatever is installed.
STRUCTURED.update(keras_cv_natives("jax"))
DOCUMENTED_DEVIATIONS[f"{KERAS_CV_DROP_PATH} (jax)"] = KERAS_CV_DEVIATIONS["jax"]
#: Attention kernels audited through the identity trick (dropout_ref.conformance.attention.audit).
ATTENTION: dict[str, Callable[[], Any]] = {
    "flax.nnx.dot_product_attention(dropout_rate=)": flax_attention_probe,
    "flax.nnx.dot_product_attention(broadcast_dropout=False)": lambda: flax_attention_probe(
        broadcast_dropout=False
    ),
    **keras_attention_natives("jax"),
}
_FLAX_ATTENTION_D3 = (
    "dropout_rate=1 divides by keep_prob = 0: every probability is NaN (0/0), in every dtype"
)
DOCUMENTED_DEVIATIONS.update(
    {
        "flax.nnx.dot_product_attention(dropout_rate=)": {
            "D3": _FLAX_ATTENTION_D3,
            "D4": "broadcast_dropout=True (the default) draws one (S, S) mask and shares it "
            "over the batch and the heads: masks of batch elements 0 and 1 correlate, r = 1",
        },
        "flax.nnx.dot_product_attention(broadcast_dropout=False)": {"D3": _FLAX_ATTENTION_D3},
        "keras.layers.MultiHeadAttention(dropout=) (jax)": {},
        # The element-wise kernel's deviations carry over; D12 (one decision per group) holds.
        "flax.nnx.Dropout(broadcast_dims=)": {"D1": _FLAX_D1, "D5": _FLAX_D5},
    }
)

#: The deviations of the natives present in this process.
EXPECTED_DEVIATIONS: dict[str, dict[str, str]] = {
    name: DOCUMENTED_DEVIATIONS[name] for name in [*NATIVES, *STRUCTURED, *ATTENTION]
}
