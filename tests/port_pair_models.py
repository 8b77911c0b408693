"""A tiny causal Transformer written three times, in torch, Keras 3 and Flax NNX (SPEC P8).

Each version has the same dropouts in the same order, so inside ``portable_masks``
they number the same sites: the embeddings' ``(B, T, D)``, the attention
probabilities' ``(B, H, T, T)``, the attention output's and the MLP output's
``(B, T, D)``. Their weights map onto torch's names (:data:`KERAS_NAMES`,
:func:`nnx_name`), their steps are plain SGD on the next-token cross-entropy, and
:func:`torch_port` and friends wrap them as :class:`PortModel`.
"""

from __future__ import annotations

import numpy as np

from dropout_ref.porting.pair import PortModel

VOCAB, T, D, HEADS = 11, 6, 8, 2
EPS = 1e-5


def token_batches(seed: int, count: int = 4, batch: int = 3) -> list[np.ndarray]:
    """``count`` int64 batches of ``(batch, T + 1)`` token ids (inputs and next tokens)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, VOCAB, size=(batch, T + 1)) for _ in range(count)]


# --- torch -------------------------------------------------------------------------------------


def torch_transformer(
    resid: float = 0.1, attn: float = 0.2, *, resid_dropout: str = "Dropout",
    extra: bool = False, seed: int = 0,
):
    """The torch original; ``resid_dropout="Dropout1d"`` drops whole positions instead."""
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(VOCAB, D)
            self.pos = nn.Parameter(0.1 * torch.randn(T, D))
            self.emb_drop = nn.Dropout(0.1)
            self.qkv = nn.Linear(D, 3 * D)
            self.attn_drop = nn.Dropout(attn)
            self.proj = nn.Linear(D, D)
            self.proj_drop = getattr(nn, resid_dropout)(resid)
            self.ln = nn.LayerNorm(D, eps=EPS)
            self.fc = nn.Linear(D, D)
            self.fc_drop = nn.Dropout(resid)
            self.head = nn.Linear(D, VOCAB)
            self.extra = nn.Dropout(0.1) if extra else None

        def forward(self, ids):
            b, t = ids.shape
            x = self.emb_drop(self.emb(ids) + self.pos[:t])
            q, k, v = self.qkv(x).view(b, t, 3, HEADS, D // HEADS).permute(2, 0, 3, 1, 4)
            scores = q @ k.transpose(-1, -2) / (D // HEADS) ** 0.5
            causal = torch.ones(t, t, dtype=torch.bool).tril()
            probs = self.attn_drop(scores.masked_fill(~causal, -1e9).softmax(-1))
            y = (probs @ v).transpose(1, 2).reshape(b, t, D)
            x = x + self.proj_drop(self.proj(y))
            x = x + self.fc_drop(torch.relu(self.fc(self.ln(x))))
            logits = self.head(x)
            return self.extra(logits) if self.extra is not None else logits

    torch.manual_seed(seed)
    return Tiny()


def torch_step(model, batch, lr):
    """One SGD step on the mean next-token cross-entropy, in training mode."""
    import torch

    ids = torch.from_numpy(batch)
    model.train()
    model.zero_grad(set_to_none=True)
    logits = model(ids[:, :-1])
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
    loss.backward()
    with torch.no_grad():
        for param in model.parameters():
            param -= lr * param.grad
    return loss.item()


def torch_port(label: str = "torch", **kwargs) -> PortModel:
    """The torch original as a PortModel (its names are the shared ones)."""
    return PortModel(torch_transformer(**kwargs), torch_step, label=label)


# --- Keras 3 (TensorFlow backend) --------------------------------------------------------------


def keras_transformer(resid: float = 0.1, attn: float = 0.2):
    """The Keras 3 port, with Keras' own Dropout layers."""
    import keras
    from keras import layers, ops

    class Tiny(keras.Model):
        def __init__(self) -> None:
            super().__init__(name="tiny")
            self.emb = layers.Embedding(VOCAB, D, name="emb")
            self.pos = self.add_weight(shape=(T, D), name="pos")
            self.emb_drop = layers.Dropout(0.1)
            self.qkv = layers.Dense(3 * D, name="qkv")
            self.attn_drop = layers.Dropout(attn)
            self.proj = layers.Dense(D, name="proj")
            self.proj_drop = layers.Dropout(resid)
            self.ln = layers.LayerNormalization(epsilon=EPS, name="ln")
            self.fc = layers.Dense(D, name="fc")
            self.fc_drop = layers.Dropout(resid)
            self.head = layers.Dense(VOCAB, name="head")

        def call(self, ids, training=False):
            b, t = ids.shape
            x = self.emb_drop(self.emb(ids) + self.pos[:t], training=training)
            qkv = ops.transpose(ops.reshape(self.qkv(x), (b, t, 3, HEADS, D // HEADS)),
                                (2, 0, 3, 1, 4))
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = ops.matmul(q, ops.swapaxes(k, -1, -2)) / (D // HEADS) ** 0.5
            causal = ops.tril(ops.ones((t, t), dtype="bool"))
            probs = ops.softmax(ops.where(causal, scores, -1e9), axis=-1)
            probs = self.attn_drop(probs, training=training)
            y = ops.reshape(ops.transpose(ops.matmul(probs, v), (0, 2, 1, 3)), (b, t, D))
            x = x + self.proj_drop(self.proj(y), training=training)
            x = x + self.fc_drop(ops.relu(self.fc(self.ln(x))), training=training)
            return self.head(x)

    model = Tiny()
    model(np.zeros((1, T), np.int64))
    return model


def keras_step(model, batch, lr):
    """The same SGD step with ``tf.GradientTape``."""
    import tensorflow as tf

    ids = tf.constant(batch)
    with tf.GradientTape() as tape:
        logits = model(ids[:, :-1], training=True)
        loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=ids[:, 1:], logits=logits)
        )
    variables = model.trainable_variables
    for var, grad in zip(variables, tape.gradient(loss, variables), strict=True):
        var.assign_sub(lr * tf.convert_to_tensor(grad))  # embeddings: IndexedSlices
    return float(loss)


def keras_name(path: str):
    """Keras 3 path (``tiny/qkv/kernel``) -> torch's name, kernels transposed."""
    parts = path.split("/")[1:]
    if parts == ["pos"]:
        return "pos"
    layer, weight = parts
    if weight == "kernel":
        return f"{layer}.weight", (1, 0)
    return f"{layer}." + {"embeddings": "weight", "gamma": "weight", "beta": "bias"}.get(
        weight, weight
    )


def keras_port(**kwargs) -> PortModel:
    """The Keras 3 port as a PortModel."""
    return PortModel(keras_transformer(**kwargs), keras_step, name_map=keras_name,
                     label="keras")


# --- Flax NNX -----------------------------------------------------------------------------------


def nnx_transformer(resid: float = 0.1, attn: float = 0.2):
    """The Flax NNX port, with ``nnx.Dropout``."""
    import jax.numpy as jnp
    from flax import nnx

    class Tiny(nnx.Module):
        def __init__(self, rngs) -> None:
            self.emb = nnx.Embed(VOCAB, D, rngs=rngs)
            self.pos = nnx.Param(jnp.zeros((T, D)))
            self.emb_drop = nnx.Dropout(0.1, rngs=rngs)
            self.qkv = nnx.Linear(D, 3 * D, rngs=rngs)
            self.attn_drop = nnx.Dropout(attn, rngs=rngs)
            self.proj = nnx.Linear(D, D, rngs=rngs)
            self.proj_drop = nnx.Dropout(resid, rngs=rngs)
            self.ln = nnx.LayerNorm(D, epsilon=EPS, rngs=rngs)
            self.fc = nnx.Linear(D, D, rngs=rngs)
            self.fc_drop = nnx.Dropout(resid, rngs=rngs)
            self.head = nnx.Linear(D, VOCAB, rngs=rngs)

        def __call__(self, ids):
            b, t = ids.shape
            x = self.emb_drop(self.emb(ids) + self.pos[...][:t])
            qkv = self.qkv(x).reshape(b, t, 3, HEADS, D // HEADS).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = q @ k.swapaxes(-1, -2) / (D // HEADS) ** 0.5
            causal = jnp.tril(jnp.ones((t, t), bool))
            probs = self.attn_drop(nnx.softmax(jnp.where(causal, scores, -1e9), axis=-1))
            y = (probs @ v).transpose(0, 2, 1, 3).reshape(b, t, D)
            x = x + self.proj_drop(self.proj(y))
            x = x + self.fc_drop(nnx.relu(self.fc(self.ln(x))))
            return self.head(x)

    return Tiny(nnx.Rngs(0))


def nnx_step(model, batch, lr):
    """The same SGD step with ``nnx.value_and_grad`` (eager: no jit inside the context)."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    ids = jnp.asarray(batch)
    model.train()

    def loss_fn(m):
        logp = jax.nn.log_softmax(m(ids[:, :-1]))
        return -jnp.take_along_axis(logp, ids[:, 1:, None], axis=-1).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    params = nnx.state(model, nnx.Param)
    nnx.update(model, jax.tree.map(lambda p, g: p - lr * g, params, grads))
    return float(loss)


def nnx_name(path: str):
    """NNX path (``qkv.kernel``) -> torch's name, kernels transposed."""
    if path == "pos":
        return "pos"
    layer, weight = path.split(".")
    if weight == "kernel":
        return f"{layer}.weight", (1, 0)
    return f"{layer}." + {"embedding": "weight", "scale": "weight"}.get(weight, weight)


def nnx_port(**kwargs) -> PortModel:
    """The Flax NNX port as a PortModel."""
    return PortModel(nnx_transformer(**kwargs), nnx_step, name_map=nnx_name, label="flax nnx")
