"""Probe Keras' attention layer for its dropout sites (see the package docstring).

Keras 3 has no Transformer block in its core (KerasHub has); its
``keras.layers.MultiHeadAttention(dropout=)`` is probed. Every
``keras.layers.Dropout`` call is intercepted (the class's ``call``, patched for
the duration of the probe) with its rate, its input's shape and its training
flag; a rank-4 input with the probe's target and memory lengths as its last two
axes is the attention probabilities (the memory is longer than the target, so
the axes cannot be confused).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from dropout_ref.conformance.transformer import LayerAudit, Recorder

BATCH, TARGET, MEMORY, WIDTH, HEADS = 2, 5, 7, 8, 2
RATE = 0.1
METHOD = "keras.layers.Dropout.call intercepted: rate, input shape, training flag"


@contextlib.contextmanager
def intercept_dropout(recorder: Recorder) -> Iterator[None]:
    """Record every training-mode ``keras.layers.Dropout`` call made inside the block."""
    import keras

    original = keras.layers.Dropout.call

    def call(self: Any, inputs: Any, training: Any = None) -> Any:
        shape = tuple(inputs.shape)
        if training and self.rate > 0:
            if len(shape) == 4 and shape[-2:] == (TARGET, MEMORY):
                site = "attention probabilities"
            else:
                site = f"unclassified (dropout on {shape})"
            recorder.add(site, self.rate, f"keras.layers.Dropout(rate={self.rate:g}) on {shape}")
        return original(self, inputs, training=training)

    keras.layers.Dropout.call = call
    try:
        yield
    finally:
        keras.layers.Dropout.call = original


def audits() -> list[LayerAudit]:
    """Audit ``keras.layers.MultiHeadAttention(dropout=0.1)``."""
    import keras

    rng = np.random.default_rng(0)
    query = rng.normal(size=(BATCH, TARGET, WIDTH)).astype("float32")
    value = rng.normal(size=(BATCH, MEMORY, WIDTH)).astype("float32")
    layer = keras.layers.MultiHeadAttention(num_heads=HEADS, key_dim=WIDTH // HEADS, dropout=RATE)
    results = {}
    for training in (True, False):
        recorder = Recorder()
        with intercept_dropout(recorder):
            layer(query, value, training=training)
        results[training] = recorder
    return [
        LayerAudit(
            layer=f"keras.layers.MultiHeadAttention(dropout={RATE})",
            framework=f"keras {keras.__version__} ({keras.backend.backend()})",
            findings=results[True].findings,
            eval_calls=results[False].calls,
            method=METHOD,
        )
    ]
