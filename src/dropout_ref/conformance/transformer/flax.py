"""Probe Flax NNX's attention layer for its dropout sites (see the package docstring).

``flax.nnx.MultiHeadAttention(dropout_rate=)`` takes its attention function as
an argument: the probe passes a recording wrapper around Flax's own
``nnx.dot_product_attention`` that notes the ``dropout_rate`` and
``deterministic`` it is called with (dropout there falls on the attention
weights, ``(B, H, T, S)``), and lists every ``nnx.Dropout`` module of the layer
(none would mean no other site).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dropout_ref.conformance.transformer import Finding, LayerAudit, Recorder

BATCH, TARGET, MEMORY, WIDTH, HEADS = 2, 5, 7, 8, 2
RATE = 0.1
METHOD = "attention_fn wrapper records dropout_rate/deterministic; nnx.Dropout modules listed"


def audits() -> list[LayerAudit]:
    """Audit ``flax.nnx.MultiHeadAttention(dropout_rate=0.1)``."""
    import flax
    import jax.numpy as jnp
    from flax import nnx

    recorder: list[Recorder] = [Recorder()]

    def attention_fn(query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        rate = kwargs.get("dropout_rate", 0.0)
        if rate > 0 and not kwargs.get("deterministic", False):
            shape = (query.shape[0], query.shape[-2], query.shape[1], key.shape[1])
            recorder[0].add(
                "attention probabilities",
                rate,
                f"nnx.dot_product_attention(dropout_rate={rate:g}, deterministic=False) on "
                f"weights (B, H, T, S) = {shape}",
            )
        return nnx.dot_product_attention(query, key, value, *args, **kwargs)

    layer = nnx.MultiHeadAttention(
        num_heads=HEADS, in_features=WIDTH, dropout_rate=RATE, decode=False,
        attention_fn=attention_fn, rngs=nnx.Rngs(0),
    )  # fmt: skip
    rng = np.random.default_rng(0)
    query = jnp.asarray(rng.normal(size=(BATCH, TARGET, WIDTH)), jnp.float32)
    value = jnp.asarray(rng.normal(size=(BATCH, MEMORY, WIDTH)), jnp.float32)
    results = {}
    for training in (True, False):
        recorder[0] = Recorder()
        layer.train() if training else layer.eval()
        layer(query, value, rngs=nnx.Rngs(dropout=1))
        results[training] = recorder[0]
    findings = results[True].findings
    others = [path for path, node in nnx.iter_graph(layer) if isinstance(node, nnx.Dropout)]
    for path in others:
        site = f"unclassified (nnx.Dropout module at {path})"
        findings[site] = Finding(site, evidence=["an nnx.Dropout module inside the layer"])
    return [
        LayerAudit(
            layer=f"flax.nnx.MultiHeadAttention(dropout_rate={RATE})",
            framework=f"flax {flax.__version__}",
            findings=findings,
            eval_calls=results[False].calls,
            method=METHOD,
        )
    ]
