"""``keras.layers.MultiHeadAttention(dropout=)`` under the identity trick, on any Keras 3 backend.

Zero query and key kernels make every score 0 (uniform softmax, ``1/S``); the
value kernel is the identity for every head and the output kernel puts head
``h`` in columns ``h*S .. (h+1)*S``, no biases: the layer's output, reshaped, is
the dropped attention matrix of every head
(:mod:`dropout_ref.conformance.attention.audit`). Keras is imported lazily, with
whatever backend ``KERAS_BACKEND`` selects when it is first imported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dropout_ref.conformance.attention.audit import BATCH, HEADS, SEQ, AttentionProbe


def keras_backend() -> str:
    """Return the backend Keras runs on in this process (imports Keras)."""
    import keras

    return keras.backend.backend()


def _identity_layer(p: float, dtype: str) -> Any:
    import keras

    layer = keras.layers.MultiHeadAttention(
        num_heads=HEADS, key_dim=SEQ, value_dim=SEQ, dropout=p, use_bias=False,
        output_shape=HEADS * SEQ, dtype=dtype,
    )  # fmt: skip
    eye = np.eye(SEQ)
    x = np.broadcast_to(eye, (BATCH, SEQ, SEQ)).astype(dtype if dtype != "bfloat16" else "float32")
    layer(x, x, x)  # builds the weights
    for weight in layer.weights:
        path = weight.path if hasattr(weight, "path") else weight.name
        shape = tuple(weight.shape)
        if "query" in path or "key" in path:
            value = np.zeros(shape)
        elif "value" in path:  # (S, heads, S): the identity for every head
            value = np.broadcast_to(eye[:, None, :], shape)
        else:  # attention_output (heads, S, heads * S): head h to its own columns
            value = np.zeros(shape)
            for h in range(HEADS):
                value[h, :, h * SEQ : (h + 1) * SEQ] = eye
        weight.assign(value.astype("float32" if dtype == "bfloat16" else dtype))
    return layer, x


def keras_mha_probe(
    dtypes: tuple[str, ...] = ("float32", "float64", "bfloat16", "float16"),
) -> AttentionProbe:
    """Return the probe of ``MultiHeadAttention(dropout=p)(x, x, x, training=True)``."""
    import keras

    layers: dict[tuple[float, str], Any] = {}

    def run(p: float, dtype: str) -> np.ndarray:
        if (p, dtype) not in layers:
            layers[(p, dtype)] = _identity_layer(p, dtype)
        layer, x = layers[(p, dtype)]
        out = keras.ops.convert_to_numpy(keras.ops.cast(layer(x, x, x, training=True), "float64"))
        # (B, S, heads * S) -> (B, heads, S, S)
        return out.reshape(BATCH, SEQ, HEADS, SEQ).transpose(0, 2, 1, 3)

    def seed(s: int) -> None:
        # Keras's seeding call; the layers' SeedGenerators are drawn at construction.
        keras.utils.set_random_seed(s)
        layers.clear()

    return AttentionProbe(run=run, seed=seed, dtypes=tuple(dtypes))
