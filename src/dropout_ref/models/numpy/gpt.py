"""The course GPT in NumPy: the forward oracle of every backend (SPEC X1-X5).

NumPy has no train/eval mode, so ``__call__`` takes an explicit ``training``
flag (as the MLP, M2). Every dropout site calls ``dropout_ref.numpy.dropout_layer``
with the site's offset of SPEC X4; with ``mask_seed=None`` the masks come from
NumPy's global generator (``np.random.seed`` makes a run reproducible, D9).
There is no backward pass: the autodiff backends train, this one checks their
forward passes. Everything is computed in float32, as the frameworks do.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dropout_ref.models.gpt_config import (
    EMBD_SITE,
    LAYER_NORM_EPS,
    GPTConfig,
    family_sites,
    forward_rates,
    is_off,
    layer_sites,
    resolve_weights,
    site_offset,
    validate_idx,
    validate_weights,
)
from dropout_ref.numpy import drop_head, drop_path, dropout_layer


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """LayerNorm over the last axis with GPT-2's epsilon (biased variance, as torch)."""
    mean = x.mean(axis=-1, keepdims=True)
    var = np.square(x - mean).mean(axis=-1, keepdims=True)
    out = (x - mean) / np.sqrt(var + np.float32(LAYER_NORM_EPS)) * weight
    return out if bias is None else out + bias


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """GELU with the tanh approximation (GPT-2's ``gelu_new``); NumPy has none of its own."""
    c = np.float32(math.sqrt(2.0 / math.pi))
    return np.float32(0.5) * x * (np.float32(1.0) + np.tanh(c * (x + np.float32(0.044715) * x**3)))


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis; rows of ``-inf`` but one entry stay finite."""
    shifted = x - x.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


class GPT:
    """GPT-2 as nanoGPT reproduces it (SPEC X1), forward only.

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
    ) -> None:
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.params = resolve_weights(config, weights, rng)

    def get_weights(self) -> dict[str, np.ndarray]:
        """Return copies of the weights, keyed as Hugging Face's state dict (SPEC X5)."""
        return {name: value.copy() for name, value in self.params.items()}

    def set_weights(self, weights: dict[str, Any]) -> None:
        """Load weights keyed as Hugging Face's state dict; validated before anything changes."""
        self.params = validate_weights(self.config, weights)

    def _get(self, name: str) -> np.ndarray | None:
        return self.params.get(name)

    def __call__(
        self,
        idx: Any,
        *,
        training: bool = False,
        mask_seed: int | None = None,
        rates: dict[str, float] | None = None,
    ) -> np.ndarray:
        """Return float32 logits of shape ``(B, T, vocab_size)`` for token ids ``idx``.

        Parameters
        ----------
        idx : array of int, shape (B, T)
            Token ids in ``[0, vocab_size)``, ``T <= block_size``.
        training : bool, optional
            Apply dropout at every site (SPEC X2); ``False`` is deterministic (X3).
        mask_seed : int, optional
            Portable masks (SPEC X4): site ``j`` uses ``seed=mask_seed,
            offset=j * 2**40``. ``None`` draws from ``np.random``.
        rates : dict of str to float, optional
            Rates of some or all sites (``RATE_NAMES``: X2's and V3's) for this
            call instead of the config's (a schedule's, SPEC S3).

        """
        if not isinstance(training, (bool, np.bool_)):
            raise TypeError(f"training must be True or False, got {training!r}")
        cfg, p = self.config, self.params
        idx = validate_idx(idx, cfg)
        B, T = idx.shape
        rates = forward_rates(cfg, rates)

        def drop(x: np.ndarray, site: str, j: int) -> np.ndarray:
            if not training:
                return x
            return dropout_layer(x, rates[site], seed=mask_seed, offset=site_offset(j))

        def family(x: np.ndarray, fn: Any, rate: Any, j: int) -> np.ndarray:
            # V3's DropHead/DropPath sites; a Python 0 is the identity (D2), skipped;
            # a runtime rate always runs (one program for every rate, S1).
            if not training or is_off(rate):
                return x
            return fn(x, rate, seed=mask_seed, offset=site_offset(j))

        x = p["transformer.wte.weight"][idx] + p["transformer.wpe.weight"][:T]
        x = drop(x, "embd", EMBD_SITE)
        causal = np.tril(np.ones((T, T), dtype=bool))
        nh, hs = cfg.n_head, cfg.head_size
        scale = np.float32(1.0 / math.sqrt(hs))
        for layer in range(cfg.n_layer):
            h = f"transformer.h.{layer}"
            attn_site, resid_attn_site, resid_mlp_site = layer_sites(layer)
            head_site, path_attn_site, path_mlp_site = family_sites(cfg, layer)
            path_rate = rates["drop_path"][layer]
            a = layer_norm(x, p[f"{h}.ln_1.weight"], self._get(f"{h}.ln_1.bias"))
            qkv = self._linear(a, f"{h}.attn.c_attn")
            # (B, T, 3 * n_embd) -> three (B, n_head, T, head_size), as nanoGPT splits them.
            q, k, v = (
                part.reshape(B, T, nh, hs).transpose(0, 2, 1, 3)
                for part in np.split(qkv, 3, axis=-1)
            )
            att = np.where(causal, (q @ k.transpose(0, 1, 3, 2)) * scale, -np.inf)
            att = drop(softmax(att).astype(np.float32), "attn", attn_site)
            heads = family(att @ v, drop_head, rates["drop_head"], head_site)  # (B, nh, T, hs), V3
            y = heads.transpose(0, 2, 1, 3).reshape(B, T, cfg.n_embd)
            y = drop(self._linear(y, f"{h}.attn.c_proj"), "resid", resid_attn_site)
            x = x + family(y, drop_path, path_rate, path_attn_site)
            m = layer_norm(x, p[f"{h}.ln_2.weight"], self._get(f"{h}.ln_2.bias"))
            m = self._linear(gelu_tanh(self._linear(m, f"{h}.mlp.c_fc")), f"{h}.mlp.c_proj")
            x = x + family(drop(m, "resid", resid_mlp_site), drop_path, path_rate, path_mlp_site)
        x = layer_norm(x, p["transformer.ln_f.weight"], self._get("transformer.ln_f.bias"))
        # The output head is the token embedding (tied, SPEC X1).
        return (x @ p["transformer.wte.weight"].T).astype(np.float32, copy=False)

    forward = __call__

    def _linear(self, x: np.ndarray, prefix: str) -> np.ndarray:
        """Conv1D of GPT-2: ``x @ W + b`` with ``W`` of shape (in, out)."""
        out = x @ self.params[f"{prefix}.weight"]
        bias = self._get(f"{prefix}.bias")
        return out if bias is None else out + bias
