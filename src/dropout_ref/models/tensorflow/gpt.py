"""The course GPT as a ``keras.Model`` subclass (SPEC X1-X5).

Dropout follows Keras' ``training`` argument: ``model(idx, training=True)`` (X3).
As the MLP, the weights are Keras variables held in one dict, keyed and laid out
as Hugging Face's ``GPT2LMHeadModel.state_dict()`` (linear layers in Conv1D's
``(in, out)`` layout), so weights move in and out without transposes; the
output head is the token embedding (tied). Every dropout site calls
``dropout_ref.tensorflow.dropout_layer`` (SPEC X2, X4); attention is computed
explicitly (TensorFlow has no fused attention op to fall back on).
"""

from __future__ import annotations

import math
from typing import Any

# Keras 3 itself, not `tf.keras`: Hugging Face's TF models set TF_USE_LEGACY_KERAS=1 on import,
# after which `tf.keras` is Keras 2 (tf_keras) and a model built on it is no Keras 3 model.
import keras
import numpy as np
import tensorflow as tf
from keras.saving import register_keras_serializable

from dropout_ref.models.gpt_config import (
    EMBD_SITE,
    LAYER_NORM_EPS,
    GPTConfig,
    check_idx_dtype,
    check_idx_shape,
    check_token_range,
    family_sites,
    forward_rates,
    is_off,
    layer_sites,
    resolve_weights,
    site_offset,
    validate_weights,
)
from dropout_ref.tensorflow import drop_head, drop_path, dropout_layer


def _layer_norm(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor | None) -> tf.Tensor:
    """LayerNorm over the last axis with GPT-2's epsilon (biased variance, as torch)."""
    mean = tf.reduce_mean(x, axis=-1, keepdims=True)
    centred = x - mean
    var = tf.reduce_mean(tf.square(centred), axis=-1, keepdims=True)
    out = centred * tf.math.rsqrt(var + LAYER_NORM_EPS) * weight
    return out if bias is None else out + bias


@register_keras_serializable(package="dropout_ref")
class GPT(keras.Model):
    """GPT-2 as nanoGPT reproduces it (SPEC X1), in Keras' ``training=`` idiom.

    Parameters
    ----------
    config : GPTConfig
        Sizes and dropout rates.
    weights : dict of str to array, optional
        Weights keyed as ``GPT2LMHeadModel.state_dict()`` (SPEC X5; a Hugging Face
        state dict loads as is); by default GPT-2's init drawn from ``rng``.
    rng : numpy.random.Generator or int, optional
        Source of the default init.

    """

    def __init__(
        self,
        config: GPTConfig,
        weights: dict[str, Any] | None = None,
        rng: np.random.Generator | int | None = 0,
        **kwargs: Any,
    ) -> None:
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
        initial = resolve_weights(config, weights, rng)  # checked before anything is built
        super().__init__(**kwargs)
        self.config = config
        self.weight_vars = {
            name: self.add_weight(
                name=name,
                shape=value.shape,
                dtype="float32",
                initializer=keras.initializers.Constant(value),
                trainable=True,
            )
            for name, value in initial.items()
        }
        # The initializer copies lazily in some Keras versions: assign to be sure.
        for name, value in initial.items():
            self.weight_vars[name].assign(value)
        # Every variable exists now: saving needs no call on data first.
        self.built = True

    def get_config(self) -> dict[str, object]:
        """Return the :class:`GPTConfig` arguments; :meth:`from_config` rebuilds the model.

        Registered with Keras (``dropout_ref>GPT``): ``model.save("m.keras")`` then
        ``keras.models.load_model("m.keras")`` gives back a GPT (the weights travel
        in the file's variables). The loading process must have imported
        ``dropout_ref.tensorflow``.
        """
        return {"config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GPT:
        """Build a GPT of the saved config (weights are loaded afterwards)."""
        return cls(GPTConfig(**config["config"]))

    def get_weights(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        """Return copies of the weights, keyed as Hugging Face's state dict (SPEC X5).

        Unlike ``keras.Model.get_weights`` (a list), this returns the
        framework-neutral dict shared by every backend.
        """
        return {name: np.array(var.numpy()) for name, var in self.weight_vars.items()}

    def set_weights(self, weights: dict[str, Any]) -> None:  # type: ignore[override]
        """Load weights keyed as Hugging Face's state dict; validated before any changes."""
        for name, value in validate_weights(self.config, weights).items():
            self.weight_vars[name].assign(value)

    def _linear(self, x: tf.Tensor, prefix: str) -> tf.Tensor:
        """Conv1D of GPT-2: ``x @ W + b`` with ``W`` of shape (in, out)."""
        out = tf.tensordot(x, self.weight_vars[f"{prefix}.weight"], axes=1)
        bias = self.weight_vars.get(f"{prefix}.bias")
        return out if bias is None else out + bias

    def _norm(self, x: tf.Tensor, prefix: str) -> tf.Tensor:
        v = self.weight_vars
        return _layer_norm(x, v[f"{prefix}.weight"], v.get(f"{prefix}.bias"))

    def _check_idx(self, idx: tf.Tensor) -> tf.Tensor:
        cfg = self.config
        check_idx_dtype("i" if idx.dtype.is_integer else "f", idx.dtype.name)
        check_idx_shape(idx.shape.as_list() if idx.shape.rank is not None else (), cfg)
        if tf.executing_eagerly():
            if tf.size(idx) > 0:
                check_token_range(int(tf.reduce_min(idx)), int(tf.reduce_max(idx)), cfg)
            return idx
        message = f"idx holds a token id outside [0, vocab_size={cfg.vocab_size})"
        checks = [
            tf.debugging.assert_non_negative(idx, message=message),
            tf.debugging.assert_less(idx, tf.cast(cfg.vocab_size, idx.dtype), message=message),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(idx)

    def call(self, idx, training=None, mask_seed: int | None = None, rates=None):
        """Return logits ``(B, T, vocab_size)``; dropout at every site only when ``training``.

        Parameters
        ----------
        idx : tf.Tensor of int, shape (B, T)
            Token ids in ``[0, vocab_size)``, ``T <= block_size``.
        training : bool, optional
            Keras' training flag (X3); dropout only when truthy.
        mask_seed : int, optional
            Portable masks (SPEC X4): site ``j`` uses ``seed=mask_seed,
            offset=j * 2**40``; ``None`` draws from TensorFlow's global generator.
            An int64 tensor inside ``tf.function`` (SPEC S2).
        rates : dict of str to float or 0-d tensor, optional
            Rates of some or all sites (``RATE_NAMES``: X2's and V3's) for this
            call instead of the config's: a schedule's (SPEC S3), 0-d float tensors
            inside ``tf.function`` (S1: no retrace per value). Nothing is rebuilt.

        """
        cfg, v = self.config, self.weight_vars
        rates = forward_rates(cfg, rates)
        idx = self._check_idx(tf.convert_to_tensor(idx))

        def drop(x: tf.Tensor, site: str, j: int) -> tf.Tensor:
            if not training:
                return x
            return dropout_layer(x, rates[site], seed=mask_seed, offset=site_offset(j))

        def family(x: tf.Tensor, fn: Any, rate: Any, j: int) -> tf.Tensor:
            # V3's DropHead/DropPath sites; a Python 0 is the identity (D2), skipped;
            # a runtime rate always runs (one program for every rate, S1).
            if not training or is_off(rate):
                return x
            return fn(x, rate, seed=mask_seed, offset=site_offset(j))

        shape = tf.shape(idx)
        B, T = shape[0], shape[1]
        nh, hs = cfg.n_head, cfg.head_size
        x = tf.gather(v["transformer.wte.weight"], idx) + v["transformer.wpe.weight"][:T]
        x = drop(x, "embd", EMBD_SITE)
        causal = tf.cast(tf.linalg.band_part(tf.ones((T, T)), -1, 0), tf.bool)
        scale = 1.0 / math.sqrt(hs)

        def heads(t: tf.Tensor) -> tf.Tensor:  # (B, T, n_embd) -> (B, n_head, T, head_size)
            return tf.transpose(tf.reshape(t, (B, T, nh, hs)), (0, 2, 1, 3))

        for layer in range(cfg.n_layer):
            h = f"transformer.h.{layer}"
            attn_site, resid_attn_site, resid_mlp_site = layer_sites(layer)
            head_site, path_attn_site, path_mlp_site = family_sites(cfg, layer)
            path_rate = rates["drop_path"][layer]
            qkv = self._linear(self._norm(x, f"{h}.ln_1"), f"{h}.attn.c_attn")
            q, k, val = tf.split(qkv, 3, axis=-1)
            att = tf.matmul(heads(q), heads(k), transpose_b=True) * scale
            att = tf.nn.softmax(tf.where(causal, att, float("-inf")), axis=-1)
            y = tf.matmul(drop(att, "attn", attn_site), heads(val))
            y = family(y, drop_head, rates["drop_head"], head_site)  # (B, nh, T, hs), V3
            y = tf.reshape(tf.transpose(y, (0, 2, 1, 3)), (B, T, cfg.n_embd))
            y = drop(self._linear(y, f"{h}.attn.c_proj"), "resid", resid_attn_site)
            x = x + family(y, drop_path, path_rate, path_attn_site)
            m = self._linear(self._norm(x, f"{h}.ln_2"), f"{h}.mlp.c_fc")
            m = tf.nn.gelu(m, approximate=True)
            m = drop(self._linear(m, f"{h}.mlp.c_proj"), "resid", resid_mlp_site)
            x = x + family(m, drop_path, path_rate, path_mlp_site)
        x = self._norm(x, "transformer.ln_f")
        # The output head is the token embedding (tied, SPEC X1).
        return tf.tensordot(x, v["transformer.wte.weight"], axes=[[2], [1]])
