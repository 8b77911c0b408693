"""The GPT of SPEC X as a Gluon ``Block`` on ``mxnet.numpy`` arrays (X1-X5).

Dropout applies only while ``autograd.is_training()``, i.e. inside
``autograd.record()`` (MXNet's idiom, M2/X3); every site calls
:func:`dropout_ref.mxnet.dropout_layer`, with ``seed=mask_seed, offset=j * 2**40``
for site ``j`` when a ``mask_seed`` is given (X4) and MXNet's global generator
otherwise (D9). The parameters are kept under Hugging Face GPT-2's names and
layouts (X5), Conv1D's ``(in, out)`` being the ``x @ W + b`` layout used here.
A plain ``Block`` rather than a ``HybridBlock``, as the course MLP: the per-step
``mask_seed`` is a Python int that a hybridized graph would bake in.
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
    weight_shapes,
)
from dropout_ref.mxnet import drop_head, drop_path, dropout_layer
from dropout_ref.mxnet.framework import autograd, gluon, mnp, mx

_GELU_C = math.sqrt(2.0 / math.pi)


def _layer_norm(x: Any, weight: Any, bias: Any | None) -> Any:
    # Two-pass variance E[(x - mean)^2], as torch's layer_norm: the one-pass form loses
    # digits in float32.
    centred = x - x.mean(axis=-1, keepdims=True)
    var = (centred * centred).mean(axis=-1, keepdims=True)
    out = centred / mnp.sqrt(var + LAYER_NORM_EPS) * weight
    return out if bias is None else out + bias


def _gelu_tanh(x: Any) -> Any:
    # GPT-2's gelu_new / nanoGPT's GELU(approximate="tanh") (X1).
    return 0.5 * x * (1.0 + mnp.tanh(_GELU_C * (x + 0.044715 * (x * x * x))))


def _softmax(x: Any) -> Any:
    # Written out rather than npx.softmax, whose CPU kernel in 1.9.1 is a few ulps off (see
    # dropout_ref.course.mxnet.training.log_softmax); the max is a constant shift, so detached.
    shifted = mnp.exp(x - x.max(axis=-1, keepdims=True).detach())
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _safe(name: str) -> str:
    """Return a Gluon parameter name for a Hugging Face key (Gluon names take no dots)."""
    return name.replace(".", "_")


@mx.util.use_np
class GPT(gluon.Block):
    """GPT-2 as nanoGPT reproduces it, with the dropout sites of SPEC X2.

    Parameters
    ----------
    config : dropout_ref.GPTConfig
        Sizes, ``bias`` and the per-site rates (``config.rates``).
    weights : dict of str to numpy.ndarray, optional
        Initial weights in Hugging Face GPT-2's names and layouts (X5; a
        ``GPT2LMHeadModel`` state dict loads as is); by default
        GPT-2's init (:func:`dropout_ref.models.gpt_config.init_weights`) from ``rng``.
    rng : numpy.random.Generator or int, optional
        Source of the default init (NumPy, so ``GPT(config, rng=0)`` holds the
        same weights in every backend).

    """

    def __init__(
        self,
        config: GPTConfig,
        weights: dict[str, np.ndarray] | None = None,
        rng: np.random.Generator | int | None = 0,
    ) -> None:
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config must be a dropout_ref.GPTConfig, got {type(config).__name__}")
        self.config = config
        checked = resolve_weights(config, weights, rng)
        self._weights: dict[str, gluon.Parameter] = {}
        with self.name_scope():
            for name in weight_shapes(config):
                self._weights[name] = self.params.get(
                    _safe(name), shape=checked[name].shape, init=mx.init.Zero()
                )
        self.initialize(ctx=mx.cpu())
        self._load(checked)

    def weight_params(self) -> dict[str, gluon.Parameter]:
        """Return the Gluon parameters by Hugging Face name (Gluon prefixes its own names)."""
        return dict(self._weights)

    def _load(self, checked: dict[str, np.ndarray]) -> None:
        for name, param in self._weights.items():
            param.set_data(mnp.array(checked[name], dtype="float32"))

    def get_weights(self) -> dict[str, np.ndarray]:
        """Return copies of the weights in Hugging Face GPT-2's names and layouts (X5).

        ``lm_head.weight`` is left out: it is tied to ``transformer.wte.weight``.
        """
        return {name: param.data().asnumpy().copy() for name, param in self._weights.items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load weights in Hugging Face GPT-2's names and layouts; they are validated first."""
        self._load(validate_weights(self.config, weights))

    def _site(self, x: Any, rate: float, site: int, mask_seed: int | None) -> Any:
        # Every site is a dropout_layer call in training, rate 0 included (X4's numbering).
        if not autograd.is_training():
            return x
        return dropout_layer(x, rate, seed=mask_seed, offset=site_offset(site))

    def _family(self, x: Any, fn: Any, rate: Any, site: int, mask_seed: int | None) -> Any:
        # V3's DropHead/DropPath sites; a Python 0 is the identity (D2), skipped.
        if not autograd.is_training() or is_off(rate):
            return x
        return fn(x, rate, seed=mask_seed, offset=site_offset(site))

    def forward(
        self, idx: Any, mask_seed: int | None = None, rates: dict[str, Any] | None = None
    ) -> Any:
        """Return the logits (B, T, vocab_size) of token ids ``idx`` (B, T).

        Parameters
        ----------
        idx : array of int
            Token ids in ``[0, vocab_size)`` (``mxnet.numpy`` or NumPy), at most
            ``block_size`` per row.
        mask_seed : int, optional
            Portable-mask seed (X4): site ``j`` drops with ``seed=mask_seed,
            offset=j * 2**40``; ``None`` draws from MXNet's generator. Dropout
            applies only while ``autograd.is_training()``.
        rates : dict of str to float, optional
            Rates of some or all sites (``RATE_NAMES``: X2's and V3's) for this
            call instead of the config's (a schedule's, SPEC S3). Gluon's ``__call__``
            takes positional arguments only: ``model(idx, mask_seed, rates)``.

        """
        host = idx.asnumpy() if isinstance(idx, (mnp.ndarray, mx.nd.NDArray)) else np.asarray(idx)
        tokens = mnp.array(validate_idx(host, self.config), dtype="int32")
        cfg, rates = self.config, forward_rates(self.config, rates)
        p = {name: param.data() for name, param in self._weights.items()}
        B, T = tokens.shape
        C, nh = cfg.n_embd, cfg.n_head
        hd = C // nh

        def bias(name: str) -> Any | None:
            return p.get(name)

        wte = p["transformer.wte.weight"]
        x = mnp.take(wte, tokens, axis=0) + p["transformer.wpe.weight"][:T]
        x = self._site(x, rates["embd"], EMBD_SITE, mask_seed)
        causal = mnp.tril(mnp.ones((T, T), dtype="float32")) > 0
        for layer in range(cfg.n_layer):
            pre = f"transformer.h.{layer}."
            attn_site, resid_attn_site, resid_mlp_site = layer_sites(layer)
            head_site, path_attn_site, path_mlp_site = family_sites(cfg, layer)
            path_rate = rates["drop_path"][layer]
            h = _layer_norm(x, p[pre + "ln_1.weight"], bias(pre + "ln_1.bias"))
            qkv = mnp.dot(h, p[pre + "attn.c_attn.weight"])
            if cfg.bias:
                qkv = qkv + p[pre + "attn.c_attn.bias"]
            q, k, v = (
                t.reshape(B, T, nh, hd).transpose(0, 2, 1, 3) for t in mnp.split(qkv, 3, axis=-1)
            )
            att = mnp.matmul(q, k.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(hd))
            # A full -inf tensor, not the scalar: MXNet 1.9.1's gradient of where(cond, x,
            # scalar) with a broadcast cond is wrong (tests: gradients vs torch's).
            att = _softmax(mnp.where(causal, att, mnp.full_like(att, -mnp.inf)))
            att = self._site(att, rates["attn"], attn_site, mask_seed)
            y = mnp.matmul(att, v)  # (B, nh, T, hd): DropHead's tensor (V3)
            y = self._family(y, drop_head, rates["drop_head"], head_site, mask_seed)
            y = y.transpose(0, 2, 1, 3).reshape(B, T, C)
            y = mnp.dot(y, p[pre + "attn.c_proj.weight"])
            if cfg.bias:
                y = y + p[pre + "attn.c_proj.bias"]
            y = self._site(y, rates["resid"], resid_attn_site, mask_seed)
            x = x + self._family(y, drop_path, path_rate, path_attn_site, mask_seed)
            h = _layer_norm(x, p[pre + "ln_2.weight"], bias(pre + "ln_2.bias"))
            h = mnp.dot(h, p[pre + "mlp.c_fc.weight"])
            if cfg.bias:
                h = h + p[pre + "mlp.c_fc.bias"]
            h = mnp.dot(_gelu_tanh(h), p[pre + "mlp.c_proj.weight"])
            if cfg.bias:
                h = h + p[pre + "mlp.c_proj.bias"]
            h = self._site(h, rates["resid"], resid_mlp_site, mask_seed)
            x = x + self._family(h, drop_path, path_rate, path_mlp_site, mask_seed)
        x = _layer_norm(x, p["transformer.ln_f.weight"], bias("transformer.ln_f.bias"))
        # The LM head is tied to the token embedding (X1).
        return mnp.dot(x, wte.T)


__all__ = ["GPT"]
