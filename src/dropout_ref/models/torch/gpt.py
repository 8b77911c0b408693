"""The course GPT as a ``torch.nn.Module`` (SPEC X1-X5).

Dropout follows the module's training flag: ``model.train()`` / ``model.eval()``
(X3). The submodules mirror Hugging Face's ``GPT2LMHeadModel.transformer`` (``wte``,
``wpe``, ``h.{i}.ln_1``, ``h.{i}.attn.c_attn``, ...), and the linear layers are
:class:`Conv1D` s holding their weight in the ``(in, out)`` layout of GPT-2's
checkpoints, so ``model.state_dict()`` has exactly the keys and layouts of
:func:`dropout_ref.models.gpt_config.weight_shapes`: weights move in and out
without transposes. The output head is ``wte.weight`` itself (tied); there is no
``lm_head`` parameter.

Every dropout site calls ``dropout_ref.torch.dropout_layer`` (SPEC X2, X4); the
attention probabilities go through it whenever they are dropped, and
``F.scaled_dot_product_attention`` (a fused kernel) serves eval mode and a zero
attention rate, where the two agree to rounding.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import skip_init

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
from dropout_ref.torch import drop_head, drop_path, dropout_layer


class Conv1D(nn.Module):
    """GPT-2's linear layer: ``y = x @ weight + bias`` with ``weight`` of shape (in, out)."""

    def __init__(self, n_in: int, n_out: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer to the last axis of ``x``."""
        # F.linear takes (out, in): the transposed view costs no copy.
        return F.linear(x, self.weight.t(), self.bias)


class _Sites:
    """The dropout calls of one forward pass: rates, mode and portable seed (SPEC X4)."""

    def __init__(
        self, rates: dict[str, Any], training: bool, mask_seed: Any, config: GPTConfig
    ) -> None:
        self.rates, self.training, self.mask_seed = rates, training, mask_seed
        self.config = config

    def explicit_attention(self) -> bool:
        """Whether the attention probabilities go through ``dropout_layer`` (X2).

        A runtime (tensor) rate always does: its value is not read on the host, so
        one graph serves every rate, 0 included (SPEC S1).
        """
        rate = self.rates["attn"]
        return self.training and (isinstance(rate, torch.Tensor) or rate > 0)

    def __call__(self, x: torch.Tensor, site: str, j: int) -> torch.Tensor:
        if not self.training:
            return x
        return dropout_layer(x, self.rates[site], seed=self.mask_seed, offset=site_offset(j))

    def family(self, x: torch.Tensor, fn: Any, rate: Any, j: int) -> torch.Tensor:
        """Apply a V3 site (``drop_head``/``drop_path``); a Python 0 is the identity (D2), skipped.

        A runtime (tensor) rate always runs the site, so one graph serves every rate (S1).
        """
        if not self.training or is_off(rate):
            return x
        return fn(x, rate, seed=self.mask_seed, offset=site_offset(j))


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with a fused qkv projection (``attn``)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        d = config.n_embd
        self.n_head = config.n_head
        self.c_attn = Conv1D(d, 3 * d, config.bias)
        self.c_proj = Conv1D(d, d, config.bias)

    def forward(self, x: torch.Tensor, drop: _Sites, layer: int) -> torch.Tensor:
        """Return the attention output projection (before its residual dropout)."""
        B, T, C = x.shape
        attn_site, _, _ = layer_sites(layer)
        q, k, v = (
            part.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            for part in self.c_attn(x).split(C, dim=2)
        )
        if drop.explicit_attention():
            # Explicit attention: the probabilities must pass through dropout_layer (X2).
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            att = F.softmax(att.masked_fill(~causal, float("-inf")), dim=-1)
            y = drop(att, "attn", attn_site) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        # DropHead on the per-head output (B, n_head, T, head_dim), before c_proj (V3).
        head_site = family_sites(drop.config, layer)[0]
        y = drop.family(y, drop_head, drop.rates["drop_head"], head_site)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLPBlock(nn.Module):
    """n_embd -> 4 n_embd -> GELU (tanh) -> n_embd (``mlp``)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        d = config.n_embd
        self.c_fc = Conv1D(d, 4 * d, config.bias)
        self.c_proj = Conv1D(4 * d, d, config.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the MLP output projection (before its residual dropout)."""
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    """One pre-LayerNorm Transformer block (``h.{i}``)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        d = config.n_embd
        self.ln_1 = nn.LayerNorm(d, eps=LAYER_NORM_EPS, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(d, eps=LAYER_NORM_EPS, bias=config.bias)
        self.mlp = MLPBlock(config)

    def forward(self, x: torch.Tensor, drop: _Sites, layer: int) -> torch.Tensor:
        """Apply the block; residual dropout on both branches before their adds."""
        _, resid_attn_site, resid_mlp_site = layer_sites(layer)
        _, path_attn_site, path_mlp_site = family_sites(drop.config, layer)
        rate = drop.rates["drop_path"][layer]  # DropPath on each branch (V3)
        y = drop(self.attn(self.ln_1(x), drop, layer), "resid", resid_attn_site)
        x = x + drop.family(y, drop_path, rate, path_attn_site)
        y = drop(self.mlp(self.ln_2(x)), "resid", resid_mlp_site)
        return x + drop.family(y, drop_path, rate, path_mlp_site)


class GPT(nn.Module):
    """GPT-2 as nanoGPT reproduces it (SPEC X1), in ``train()``/``eval()`` idiom.

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
        initial = resolve_weights(config, weights, rng)  # checked before anything is built
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            {
                # skip_init: the weights are loaded below, so torch's global
                # generator (which seed=None dropout draws from) is left untouched.
                "wte": skip_init(nn.Embedding, config.vocab_size, config.n_embd),
                "wpe": skip_init(nn.Embedding, config.block_size, config.n_embd),
                "h": nn.ModuleList(Block(config) for _ in range(config.n_layer)),
                "ln_f": nn.LayerNorm(config.n_embd, eps=LAYER_NORM_EPS, bias=config.bias),
            }
        )
        self._load(initial)

    def _load(self, checked: dict[str, np.ndarray]) -> None:
        params = dict(self.named_parameters())
        with torch.no_grad():
            for name, value in checked.items():
                param = params[name]
                param.copy_(torch.from_numpy(value).to(device=param.device, dtype=param.dtype))

    def get_weights(self) -> dict[str, np.ndarray]:
        """Return copies of the weights, keyed as Hugging Face's state dict (SPEC X5)."""
        return {
            name: param.detach().cpu().numpy().copy() for name, param in self.named_parameters()
        }

    def set_weights(self, weights: dict[str, Any]) -> None:
        """Load weights keyed as Hugging Face's state dict, keeping each parameter's device.

        Everything is validated before the first parameter changes.
        """
        self._load(validate_weights(self.config, weights))

    def forward(
        self, idx: torch.Tensor, mask_seed: Any = None, rates: dict[str, Any] | None = None
    ) -> torch.Tensor:
        """Return logits ``(B, T, vocab_size)``; dropout at every site only in ``train()`` mode.

        Parameters
        ----------
        idx : torch.Tensor of int, shape (B, T)
            Token ids in ``[0, vocab_size)``, ``T <= block_size``.
        mask_seed : int, optional
            Portable masks (SPEC X4): site ``j`` uses ``seed=mask_seed,
            offset=j * 2**40``; ``None`` draws from torch's global generator. A 0-d
            int64 tensor in compiled code (SPEC S2).
        rates : dict of str to float or 0-d tensor, optional
            Rates of some or all sites (``"embd"``, ``"attn"``, ``"resid"``,
            ``"drop_head"``, ``"drop_path"``) for this call instead of the config's: a
            schedule's (SPEC S3), 0-d float tensors in compiled code (S1). Nothing is
            rebuilt. ``"drop_path"``: a float ``r`` (``linspace(0, r, n_layer)``), one
            rate per block, or a 0-d tensor ``r`` (block ``l`` at ``r * l / (n_layer -
            1)``), see :func:`dropout_ref.models.gpt_config.forward_rates`.

        """
        cfg = self.config
        idx = torch.as_tensor(idx)
        dtype = idx.dtype
        integer = not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)
        check_idx_dtype("i" if integer else "f", dtype)
        _, T = check_idx_shape(idx.shape, cfg)
        if idx.numel() and not torch.compiler.is_compiling():
            # One host sync per eager call: an out-of-range id would otherwise be an opaque
            # index error inside the embedding (or a device-side assert on CUDA). Compiled
            # code skips it: reading the ids on the host would break the graph.
            low, high = torch.aminmax(idx)
            check_token_range(int(low), int(high), cfg)
        drop = _Sites(forward_rates(cfg, rates), self.training, mask_seed, cfg)
        wte = self.transformer["wte"]
        pos = torch.arange(T, device=idx.device)
        x = drop(wte(idx) + self.transformer["wpe"](pos), "embd", EMBD_SITE)
        for layer, block in enumerate(self.transformer["h"]):
            x = block(x, drop, layer)
        x = self.transformer["ln_f"](x)
        return F.linear(x, wte.weight)
