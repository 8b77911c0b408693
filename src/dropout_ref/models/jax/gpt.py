"""The GPT of SPEC X as a Flax NNX module (X1-X5).

Dropout follows NNX's idiom, as the course MLP's: ``model.train()`` /
``model.eval()`` set the ``deterministic`` attribute of every nested
:class:`~dropout_ref.models.jax.mlp.Dropout`, whose keys come from the model's
``nnx.Rngs`` stream ``dropout``; with ``mask_seed=`` site ``j`` draws the
portable mask of ``dropout_layer(T, rate, seed=mask_seed, offset=j * 2**40)``
instead (X4). Parameters are ``nnx.Param`` arrays kept in Hugging Face GPT-2's
names and layouts (X5): ``nnx.Linear``'s kernel is already Conv1D's
``(in, out)`` layout and ``nnx.Embed``'s table is ``wte``'s ``(vocab, n_embd)``.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dropout_ref.jax import drop_head, drop_path
from dropout_ref.models.gpt_config import (
    EMBD_SITE,
    LAYER_NORM_EPS,
    GPTConfig,
    check_idx_dtype,
    check_idx_shape,
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
from dropout_ref.models.jax.mlp import Dropout, _default_dropout_key

_ZEROS = nnx.initializers.zeros_init()


def _layer_norm(n_embd: int, bias: bool) -> nnx.LayerNorm:
    # Holds the parameters; the forward pass computes with _layer_norm_fn (two-pass variance,
    # which use_fast_variance=False gives a direct call too).
    return nnx.LayerNorm(
        n_embd, epsilon=LAYER_NORM_EPS, use_bias=bias, use_fast_variance=False, rngs=nnx.Rngs(0)
    )


def _linear(n_in: int, n_out: int, bias: bool) -> nnx.Linear:
    # The neutral init overwrites the parameters: zeros spare compiling a random init per shape.
    return nnx.Linear(n_in, n_out, use_bias=bias, kernel_init=_ZEROS, rngs=nnx.Rngs(0))


def _embed(n: int, n_embd: int) -> nnx.Embed:
    return nnx.Embed(n, n_embd, embedding_init=_ZEROS, rngs=nnx.Rngs(0))


# The arithmetic between two dropout sites runs as one jitted function each: eagerly (a
# mask_seed step, the conformance kit's recorded passes) JAX would otherwise dispatch, and
# linearise under grad, every primitive on its own, several times slower.


def _value(param: nnx.Param | None) -> jax.Array | None:
    return None if param is None else param[...]


def _affine(x: jax.Array, weight: jax.Array, bias: jax.Array | None) -> jax.Array:
    out = x @ weight
    return out if bias is None else out + bias


@jax.jit
def _layer_norm_fn(x: jax.Array, scale: jax.Array, bias: jax.Array | None) -> jax.Array:
    # Two-pass variance E[(x - mean)^2], as torch's layer_norm (the one-pass form loses digits).
    centred = x - x.mean(axis=-1, keepdims=True)
    var = (centred * centred).mean(axis=-1, keepdims=True)
    out = centred * jax.lax.rsqrt(var + LAYER_NORM_EPS) * scale
    return out if bias is None else out + bias


@functools.partial(jax.jit, static_argnames="n_head")
def _attention_probs(
    x: jax.Array, weight: jax.Array, bias: jax.Array | None, n_head: int
) -> tuple[jax.Array, jax.Array]:
    """Return the causal softmax probabilities (B, n_head, T, T) and the values."""
    B, T, C = x.shape
    hd = C // n_head
    q, k, v = jnp.split(_affine(x, weight, bias), 3, axis=-1)
    q, k, v = (t.reshape(B, T, n_head, hd).transpose(0, 2, 1, 3) for t in (q, k, v))
    att = (q @ k.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(hd))
    causal = jnp.tril(jnp.ones((T, T), dtype=bool))
    return jax.nn.softmax(jnp.where(causal, att, -jnp.inf), axis=-1), v


@jax.jit
def _attend(att: jax.Array, v: jax.Array, weight: jax.Array, bias: jax.Array | None) -> jax.Array:
    """Return the output projection of the heads' weighted values (B, T, C)."""
    B, nh, T, hd = v.shape
    return _affine((att @ v).transpose(0, 2, 1, 3).reshape(B, T, nh * hd), weight, bias)


@jax.jit
def _project_heads(y: jax.Array, weight: jax.Array, bias: jax.Array | None) -> jax.Array:
    """Return the output projection of the per-head outputs ``y`` (B, n_head, T, hd)."""
    B, nh, T, hd = y.shape
    return _affine(y.transpose(0, 2, 1, 3).reshape(B, T, nh * hd), weight, bias)


#: V3's functions by kind, for :class:`FamilyDropout`.
_FAMILY = {"path": drop_path, "head": drop_head}


class FamilyDropout(nnx.Module):
    """A V3 site, DropPath (``kind="path"``) or DropHead (``"head"``), in NNX's idiom.

    As :class:`~dropout_ref.models.jax.mlp.Dropout`: ``deterministic`` (set by
    ``model.train()``/``model.eval()``) passes inputs through; in training the mask
    is the portable one with ``mask_seed`` (offset of the site, SPEC V3) or is drawn
    from a key of ``rngs``. Rate 0 is the identity (D2) and draws no key.
    """

    def __init__(
        self,
        kind: str,
        rate: float,
        *,
        offset: int,
        rngs: nnx.Rngs | None,
        deterministic: bool = False,
        rng_collection: str = "dropout",
    ) -> None:
        if kind not in _FAMILY:
            raise ValueError(f"kind must be one of {tuple(_FAMILY)}, got {kind!r}")
        self.kind, self.rate, self.offset = kind, rate, offset
        self.deterministic = deterministic
        self.rng_collection = rng_collection
        self.rngs = rngs

    def active(self, rate: Any = None) -> bool:
        """Whether a call drops anything: training mode, and a runtime rate or one above 0.

        ``rate``: this call's rate (``None``: the built-in one). A traced rate is
        always active, its value unread, so one program serves every rate (SPEC S1).
        """
        rate = self.rate if rate is None else rate
        return not self.deterministic and not is_off(rate)

    def __call__(self, X: jax.Array, *, mask_seed: Any = None, rate: Any = None) -> jax.Array:
        """Return ``X`` in eval mode or at rate 0; else DropPath/DropHead of ``X``.

        ``rate``: this call's rate (a schedule's, SPEC S3; a traced array under
        ``jit``, S1) instead of the built-in one; nothing is rebuilt.
        """
        rate = self.rate if rate is None else rate
        if not self.active(rate):
            return X
        fn = _FAMILY[self.kind]
        if mask_seed is not None:
            return fn(X, rate, seed=mask_seed, offset=self.offset)
        if self.rngs is None:
            raise TypeError(
                "DropPath/DropHead in training mode need rngs=nnx.Rngs(dropout=...) or mask_seed="
            )
        return fn(X, rate, key=self.rngs[self.rng_collection]())


@jax.jit
def _mlp(
    x: jax.Array, w_fc: jax.Array, b_fc: jax.Array | None, w_proj: jax.Array,
    b_proj: jax.Array | None,
) -> jax.Array:  # fmt: skip
    return _affine(jax.nn.gelu(_affine(x, w_fc, b_fc), approximate=True), w_proj, b_proj)


@jax.jit
def _embed_tokens(idx: jax.Array, wte: jax.Array, wpe: jax.Array) -> jax.Array:
    return jnp.take(wte, idx, axis=0) + wpe[: idx.shape[1]][None]


@jax.jit
def _lm_head(x: jax.Array, scale: jax.Array, bias: jax.Array | None, wte: jax.Array) -> jax.Array:
    # Final LayerNorm, then the head tied to the token embedding (X1).
    return _layer_norm_fn(x, scale, bias) @ wte.T


def _apply_layer_norm(ln: nnx.LayerNorm, x: jax.Array) -> jax.Array:
    return _layer_norm_fn(x, ln.scale[...], _value(ln.bias))


class CausalSelfAttention(nnx.Module):
    """Fused-qkv causal self-attention; ``attn`` dropout on the probabilities (X2)."""

    def __init__(self, config: GPTConfig, layer: int, rngs: nnx.Rngs) -> None:
        self.n_head = config.n_head
        self.c_attn = _linear(config.n_embd, 3 * config.n_embd, config.bias)
        self.c_proj = _linear(config.n_embd, config.n_embd, config.bias)
        attn_site, resid_site, _ = layer_sites(layer)
        self.attn_dropout = Dropout(config.rates["attn"], offset=site_offset(attn_site), rngs=rngs)
        self.resid_dropout = Dropout(
            config.rates["resid"], offset=site_offset(resid_site), rngs=rngs
        )
        head_site = family_sites(config, layer)[0]
        self.drop_head = FamilyDropout(
            "head", config.drop_head, offset=site_offset(head_site), rngs=rngs
        )

    def __call__(self, x: jax.Array, mask_seed: Any, rates: dict[str, Any]) -> jax.Array:
        """Return the attention branch of ``x`` (B, T, C), before the residual add."""
        c_attn, c_proj = self.c_attn, self.c_proj
        att, v = _attention_probs(x, c_attn.kernel[...], _value(c_attn.bias), self.n_head)
        # Site 1 + 3l: the (B, n_head, T, T) probabilities, row-major (X4).
        att = self.attn_dropout(att, mask_seed=mask_seed, rate=rates["attn"])
        if self.drop_head.active(rates["drop_head"]):
            # DropHead on the per-head output (B, n_head, T, hd), before c_proj (V3).
            heads = self.drop_head(att @ v, mask_seed=mask_seed, rate=rates["drop_head"])
            y = _project_heads(heads, c_proj.kernel[...], _value(c_proj.bias))
        else:
            y = _attend(att, v, c_proj.kernel[...], _value(c_proj.bias))
        return self.resid_dropout(y, mask_seed=mask_seed, rate=rates["resid"])


class MLPBlock(nnx.Module):
    """n_embd → 4·n_embd → GELU (tanh) → n_embd, then ``resid`` dropout (X1, X2)."""

    def __init__(self, config: GPTConfig, layer: int, rngs: nnx.Rngs) -> None:
        self.c_fc = _linear(config.n_embd, 4 * config.n_embd, config.bias)
        self.c_proj = _linear(4 * config.n_embd, config.n_embd, config.bias)
        self.dropout = Dropout(
            config.rates["resid"], offset=site_offset(layer_sites(layer)[2]), rngs=rngs
        )

    def __call__(self, x: jax.Array, mask_seed: Any, rates: dict[str, Any]) -> jax.Array:
        """Return the MLP branch of ``x``, before the residual add."""
        c_fc, c_proj = self.c_fc, self.c_proj
        h = _mlp(x, c_fc.kernel[...], _value(c_fc.bias), c_proj.kernel[...], _value(c_proj.bias))
        return self.dropout(h, mask_seed=mask_seed, rate=rates["resid"])


class Block(nnx.Module):
    """One pre-LayerNorm transformer block."""

    def __init__(self, config: GPTConfig, layer: int, rngs: nnx.Rngs) -> None:
        self.ln_1 = _layer_norm(config.n_embd, config.bias)
        self.attn = CausalSelfAttention(config, layer, rngs)
        self.ln_2 = _layer_norm(config.n_embd, config.bias)
        self.mlp = MLPBlock(config, layer, rngs)
        # DropPath on each residual branch (V3), after the branch's resid dropout.
        _, attn_site, mlp_site = family_sites(config, layer)
        rate = config.drop_path_rates[layer]
        self.path_attn = FamilyDropout("path", rate, offset=site_offset(attn_site), rngs=rngs)
        self.path_mlp = FamilyDropout("path", rate, offset=site_offset(mlp_site), rngs=rngs)
        self.layer = layer

    def __call__(self, x: jax.Array, mask_seed: Any, rates: dict[str, Any]) -> jax.Array:
        """Return ``x`` after both residual branches."""
        path_rate = rates["drop_path"][self.layer]  # this call's (S1) or the built-in one
        y = self.attn(_apply_layer_norm(self.ln_1, x), mask_seed, rates)
        x = x + self.path_attn(y, mask_seed=mask_seed, rate=path_rate)
        y = self.mlp(_apply_layer_norm(self.ln_2, x), mask_seed, rates)
        return x + self.path_mlp(y, mask_seed=mask_seed, rate=path_rate)


#: Hugging Face name (after ``transformer.h.{i}.``) -> path of the NNX parameter in a Block.
_BLOCK_PARAMS = {
    "ln_1.weight": ("ln_1", "scale"),
    "ln_1.bias": ("ln_1", "bias"),
    "attn.c_attn.weight": ("attn", "c_attn", "kernel"),
    "attn.c_attn.bias": ("attn", "c_attn", "bias"),
    "attn.c_proj.weight": ("attn", "c_proj", "kernel"),
    "attn.c_proj.bias": ("attn", "c_proj", "bias"),
    "ln_2.weight": ("ln_2", "scale"),
    "ln_2.bias": ("ln_2", "bias"),
    "mlp.c_fc.weight": ("mlp", "c_fc", "kernel"),
    "mlp.c_fc.bias": ("mlp", "c_fc", "bias"),
    "mlp.c_proj.weight": ("mlp", "c_proj", "kernel"),
    "mlp.c_proj.bias": ("mlp", "c_proj", "bias"),
}

_TOP_PARAMS = {
    "transformer.wte.weight": ("wte", "embedding"),
    "transformer.wpe.weight": ("wpe", "embedding"),
    "transformer.ln_f.weight": ("ln_f", "scale"),
    "transformer.ln_f.bias": ("ln_f", "bias"),
}


class GPT(nnx.Module):
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
    rngs : nnx.Rngs, optional
        Source of the dropout keys (stream ``dropout``) in training mode without
        ``mask_seed``; by default ``nnx.Rngs(dropout=key)`` with a key drawn from
        ``rng`` when it is given, else the next key of ``dropout_ref.jax.arrays``'
        stream, which ``arrays.seed_global(s)`` restarts.

    """

    def __init__(
        self,
        config: GPTConfig,
        weights: dict[str, np.ndarray] | None = None,
        rng: np.random.Generator | int | None = 0,
        *,
        rngs: nnx.Rngs | None = None,
    ) -> None:
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config must be a dropout_ref.GPTConfig, got {type(config).__name__}")
        self.config = config
        checked = resolve_weights(config, weights, rng)
        if rngs is None:
            rngs = nnx.Rngs(dropout=_default_dropout_key(rng))
        self.wte = _embed(config.vocab_size, config.n_embd)
        self.wpe = _embed(config.block_size, config.n_embd)
        self.drop = Dropout(config.rates["embd"], offset=site_offset(EMBD_SITE), rngs=rngs)
        self.h = nnx.List([Block(config, layer, rngs) for layer in range(config.n_layer)])
        self.ln_f = _layer_norm(config.n_embd, config.bias)
        self._load(checked)

    def _param(self, name: str) -> nnx.Param:
        if name in _TOP_PARAMS:
            path: tuple[str | int, ...] = _TOP_PARAMS[name]
        else:
            _, _, layer, rest = name.split(".", 3)
            path = ("h", int(layer), *_BLOCK_PARAMS[rest])
        node: Any = self
        for step in path:
            node = node[step] if isinstance(step, int) else getattr(node, step)
        return node

    def _load(self, checked: dict[str, np.ndarray]) -> None:
        for name in weight_shapes(self.config):
            self._param(name)[...] = jnp.asarray(checked[name], jnp.float32)

    def get_weights(self) -> dict[str, np.ndarray]:
        """Return copies of the weights in Hugging Face GPT-2's names and layouts (X5).

        ``lm_head.weight`` is left out: it is tied to ``transformer.wte.weight``.
        """
        return {
            name: np.array(self._param(name)[...], dtype=np.float32)
            for name in weight_shapes(self.config)
        }

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load weights in Hugging Face GPT-2's names and layouts; they are validated first."""
        self._load(validate_weights(self.config, weights))

    def __call__(
        self, idx: Any, mask_seed: Any = None, rates: dict[str, Any] | None = None
    ) -> jax.Array:
        """Return the logits (B, T, vocab_size) of token ids ``idx`` (B, T).

        Parameters
        ----------
        idx : array of int
            Token ids in ``[0, vocab_size)``, at most ``block_size`` per row.
        mask_seed : int, optional
            Portable-mask seed (X4): site ``j`` drops with ``seed=mask_seed,
            offset=j * 2**40``. ``None`` draws keys from the model's ``rngs``.
            Only used after ``model.train()``. A traced 0-d integer array under
            ``jit`` (SPEC S2).
        rates : dict of str to float or 0-d array, optional
            Rates of some or all sites (``RATE_NAMES``: X2's and V3's) for this
            call instead of the config's: a schedule's (SPEC S3), traced float32
            arrays under ``jit`` (S1: one program for every value). Nothing is rebuilt.

        """
        rates = forward_rates(self.config, rates)
        if isinstance(idx, jax.core.Tracer):
            # Under jit the ids' values are unknown; the shape and dtype still are.
            check_idx_dtype(np.dtype(idx.dtype).kind, idx.dtype)
            check_idx_shape(idx.shape, self.config)
        else:
            idx = validate_idx(np.asarray(idx), self.config)
        idx = jnp.asarray(idx, jnp.int32)
        x = _embed_tokens(idx, self.wte.embedding[...], self.wpe.embedding[...])
        x = self.drop(x, mask_seed=mask_seed, rate=rates["embd"])
        for block in self.h:
            x = block(x, mask_seed, rates)
        ln_f = self.ln_f
        return _lm_head(x, ln_f.scale[...], _value(ln_f.bias), self.wte.embedding[...])


# NNX's metaclass hides __init__'s parameters from inspect.signature(GPT); show them.
GPT.__signature__ = inspect.signature(
    GPT.__init__
).replace(  # type: ignore[attr-defined]
    parameters=list(inspect.signature(GPT.__init__).parameters.values())[1:]
)
