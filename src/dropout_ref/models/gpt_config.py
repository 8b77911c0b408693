"""The course GPT, framework-neutral: config, dropout presets, sites and weights (SPEC X1-X5).

Every backend's ``GPT`` is built from a :class:`GPTConfig` and exchanges its
weights as a ``dict[str, numpy.ndarray]`` keyed and laid out as Hugging Face's
``GPT2LMHeadModel.state_dict()``, so one set of weights runs everywhere and a
GPT-2 checkpoint loads as is. Nothing here imports a framework.

Dropout (SPEC X2)
    Three sites, each with its own rate: ``embd`` on ``tok_emb + pos_emb``,
    ``attn`` on the attention probabilities after the causal-masked softmax,
    ``resid`` on the output projections of attention and of the MLP, before
    each residual add. ``GPTConfig(dropout=...)`` takes a preset name
    (:data:`PRESETS`), one rate for every site, or a dict per site; a site the
    dict leaves out has rate 0 (so ``{"attn": 0.1}`` means attention dropout
    only), and a name that is not a site is refused.

Site numbering (SPEC X4)
    With ``mask_seed=s`` site ``j`` calls ``dropout_layer(T, rate, seed=s,
    offset=j * SITE_STRIDE)``: ``j = 0`` is ``embd``, and layer ``l`` has
    ``j = 1 + 3l`` (``attn``), ``2 + 3l`` (``resid`` after attention) and
    ``3 + 3l`` (``resid`` after the MLP). :func:`dropout_sites` lists them.
    The counters of two sites cannot overlap for site tensors of fewer than
    ``2**40`` elements.

DropPath and DropHead (SPEC V3)
    ``GPTConfig(drop_path=r, drop_head=p)``: DropPath on each residual branch of
    block ``l`` (attention and MLP, after the branch's ``resid`` dropout) at rate
    ``linspace(0, r, n_layer)[l]`` (timm's rule) or the list's entry; DropHead
    (``rescale="kept"``) on the per-head attention output ``(B, n_head, T,
    head_dim)`` before ``c_proj``. Both default to 0 (off). Their sites come
    after X4's, so X4's numbers do not move: block ``l`` has ``j = 1 + 3L + 3l``
    (DropHead), ``+1`` (DropPath of the attention branch) and ``+2`` (DropPath of
    the MLP branch), ``L = n_layer`` (:func:`family_sites`). The numbers are fixed
    by the structure, whatever the rates.

Weights (SPEC X5)
    :func:`weight_shapes` gives the names and shapes, in state-dict order;
    linear layers are in Conv1D's ``(in, out)`` layout (``y = x @ W + b``).
    ``lm_head.weight`` is tied to ``transformer.wte.weight``: it is never
    returned, and accepted on input only when it equals the embedding.
    Older ``transformers`` releases also put the non-trainable causal-mask
    buffers ``transformer.h.{i}.attn.bias`` / ``attn.masked_bias`` into the
    state dict; they are ignored (5.x has none).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

from dropout_ref.core.sites import SITE_STRIDE, site_offset  # noqa: F401  (X4 numbers the sites)
from dropout_ref.core.validation import validate_rate
from dropout_ref.models.mlp_spec import WEIGHT_DTYPE, _positive_int, as_generator, checked_weight

#: The dropout sites, in the order of :attr:`GPTConfig.rates`.
SITE_NAMES: tuple[str, ...] = ("embd", "attn", "resid")

#: SPEC V3's rates, which a call's ``rates=`` may also set (S1, S3): DropPath, DropHead.
FAMILY_NAMES: tuple[str, ...] = ("drop_path", "drop_head")

#: Every name a call's ``rates=`` (and a dict schedule) may use.
RATE_NAMES: tuple[str, ...] = SITE_NAMES + FAMILY_NAMES

#: SPEC X2 presets: rate per site.
PRESETS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        # Vaswani et al. 2017, section 5.4: residual and embedding dropout only.
        "transformer-2017": MappingProxyType({"embd": 0.1, "attn": 0.0, "resid": 0.1}),
        # BERT: hidden_dropout_prob and attention_probs_dropout_prob.
        "bert": MappingProxyType({"embd": 0.1, "attn": 0.1, "resid": 0.1}),
        # Hugging Face GPT2Config: embd_pdrop, attn_pdrop, resid_pdrop.
        "gpt2-hf": MappingProxyType({"embd": 0.1, "attn": 0.1, "resid": 0.1}),
        # nanoGPT's pretraining default (train.py) and its shakespeare_char config.
        "nanogpt": MappingProxyType({"embd": 0.0, "attn": 0.0, "resid": 0.0}),
        "nanogpt-char": MappingProxyType({"embd": 0.2, "attn": 0.2, "resid": 0.2}),
    }
)

#: Site number of the embedding dropout (SPEC X4).
EMBD_SITE = 0

#: Standard deviation of GPT-2's weight init.
INIT_STD = 0.02

#: LayerNorm epsilon of GPT-2 (``GPT2Config.layer_norm_epsilon``).
LAYER_NORM_EPS = 1e-5

#: The tied output head's key: optional on input, never output.
LM_HEAD_KEY = "lm_head.weight"


def _resolve_dropout(dropout: Any) -> dict[str, float]:
    """Return the rate of every site from a preset name, one rate, or a dict per site."""
    if isinstance(dropout, str):
        if dropout not in PRESETS:
            raise ValueError(
                f"dropout: unknown preset {dropout!r}; known presets: {', '.join(PRESETS)}"
            )
        return dict(PRESETS[dropout])
    if isinstance(dropout, Mapping):
        unknown = [str(name) for name in dropout if name not in SITE_NAMES]
        if unknown:
            raise ValueError(
                f"dropout: unknown site {unknown[0]!r}; the sites are {', '.join(SITE_NAMES)}"
            )
        return {
            name: validate_rate(dropout.get(name, 0.0), f"dropout[{name!r}]") for name in SITE_NAMES
        }
    if dropout is None:
        raise TypeError(
            "dropout must be a preset name, a rate in [0, 1] or a dict per site, got None"
        )
    rate = validate_rate(dropout, "dropout")
    return dict.fromkeys(SITE_NAMES, rate)


@dataclass(frozen=True)
class GPTConfig:
    """Sizes and dropout rates of the course GPT (SPEC X1, X2); validated on construction.

    Parameters
    ----------
    vocab_size : int
        Number of token ids.
    block_size : int
        Longest sequence (number of learned positions).
    n_layer, n_head, n_embd : int
        Transformer blocks, attention heads, embedding width
        (``n_embd % n_head == 0``).
    bias : bool, optional
        Biases in the linear layers and LayerNorms (GPT-2: True). With False,
        the ``.bias`` weights are absent (nanoGPT's option); Hugging Face
        GPT-2 weights need True.
    dropout : str or float or dict, optional
        A preset name of :data:`PRESETS`, one rate for every site, or a dict
        ``{site: rate}`` over :data:`SITE_NAMES` (missing sites have rate 0).
    drop_path : float or sequence of float, optional
        DropPath (SPEC V3): the deepest block's rate ``r`` (block ``l`` at
        ``linspace(0, r, n_layer)[l]``) or one rate per block. Default 0: off.
    drop_head : float, optional
        DropHead's rate on each block's per-head attention output (SPEC V3).
        Default 0: off.
        Stored normalised (a preset name as given, one rate as a float, a dict
        as a copy with every site); :attr:`rates` resolves it. Two configs are
        equal when their fields are: ``"bert"`` and ``0.1`` are not, though
        their :attr:`rates` are.

    Raises
    ------
    TypeError, ValueError
        For a size that is not a positive integer, ``n_embd`` not divisible by
        ``n_head``, a non-bool ``bias``, or an unknown preset, unknown site or
        rate outside ``[0, 1]``; the message names the argument.

    """

    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int
    bias: bool = True
    dropout: Any = "nanogpt"
    drop_path: Any = 0.0
    drop_head: Any = 0.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            object.__setattr__(self, name, _positive_int(getattr(self, name), name))
        if self.n_embd % self.n_head:
            raise ValueError(
                f"n_embd must be divisible by n_head, got n_embd={self.n_embd}, "
                f"n_head={self.n_head}"
            )
        if not isinstance(self.bias, (bool, np.bool_)):
            raise TypeError(f"bias must be True or False, got {self.bias!r}")
        object.__setattr__(self, "bias", bool(self.bias))
        dropout = self.dropout
        # A private copy: the frozen config must not change with the caller's dict.
        if isinstance(dropout, Mapping):
            dropout = {str(k): v for k, v in dropout.items()}
        rates = _resolve_dropout(dropout)
        if isinstance(dropout, Mapping):
            dropout = dict(rates)
        elif not isinstance(dropout, str):
            dropout = rates["embd"]
        object.__setattr__(self, "dropout", dropout)
        # A tuple, not a dict: the config stays hashable and picklable.
        object.__setattr__(self, "_rates", tuple(rates.items()))
        path = _resolve_drop_path(self.drop_path, self.n_layer)
        if _is_rate(self.drop_path):
            # timm's rule: block l at linspace(0, r, n_layer)[l] (the first block at 0).
            object.__setattr__(self, "drop_path", path[0])
            path = tuple(float(r) for r in np.linspace(0.0, path[0], self.n_layer))
        else:
            object.__setattr__(self, "drop_path", path)
        object.__setattr__(self, "_drop_path_rates", path)
        object.__setattr__(self, "drop_head", validate_rate(self.drop_head, "drop_head"))

    def __hash__(self) -> int:
        sizes = (self.vocab_size, self.block_size, self.n_layer, self.n_head, self.n_embd)
        family = (self.drop_path, self.drop_head)
        return hash((*sizes, self.bias, self._rates, family))  # type: ignore[attr-defined]

    @property
    def rates(self) -> dict[str, float]:
        """The rate of every site: ``{"embd": ..., "attn": ..., "resid": ...}``."""
        return dict(self._rates)  # type: ignore[attr-defined]

    @property
    def drop_path_rates(self) -> tuple[float, ...]:
        """DropPath's rate of each block (SPEC V3): ``linspace(0, r, n_layer)`` or the list."""
        return self._drop_path_rates  # type: ignore[attr-defined]

    @property
    def head_size(self) -> int:
        """``n_embd // n_head``."""
        return self.n_embd // self.n_head

    @property
    def num_sites(self) -> int:
        """Number of dropout sites of the forward pass: ``1 + 3 * n_layer`` (SPEC X4)."""
        return 1 + 3 * self.n_layer

    def with_dropout(self, dropout: Any) -> GPTConfig:
        """Return the same architecture with other dropout rates."""
        return replace(self, dropout=dropout)

    def to_dict(self) -> dict[str, Any]:
        """Return the constructor arguments (JSON-ready), from which ``GPTConfig(**d)`` rebuilds."""
        dropout = dict(self.dropout) if isinstance(self.dropout, Mapping) else self.dropout
        return {
            "vocab_size": self.vocab_size,
            "block_size": self.block_size,
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "n_embd": self.n_embd,
            "bias": self.bias,
            "dropout": dropout,
            # V3's fields only when on: checkpoints of GPTs without them stay as they were.
            **({"drop_path": self._path_field()} if self._path_field() else {}),
            **({"drop_head": self.drop_head} if self.drop_head else {}),
        }

    def _path_field(self) -> Any:
        """``drop_path`` as given (a list for per-block rates), or 0.0 when off."""
        if isinstance(self.drop_path, tuple):
            return list(self.drop_path) if any(self.drop_path) else 0.0
        return self.drop_path


# --- sites (SPEC X4) ---------------------------------------------------------------------


class Site(NamedTuple):
    """One dropout site of the forward pass."""

    #: Site number ``j``: the call uses ``offset = j * SITE_STRIDE``.
    index: int
    #: Which rate applies: one of :data:`SITE_NAMES`.
    name: str
    #: Where it sits, e.g. ``"h.0 attention probabilities (B, n_head, T, T)"``.
    description: str


def layer_sites(layer: int) -> tuple[int, int, int]:
    """Return block ``layer``'s site numbers: (attn, resid after attention, resid after MLP)."""
    if isinstance(layer, (bool, np.bool_)) or not isinstance(layer, numbers.Integral) or layer < 0:
        raise ValueError(f"layer must be a non-negative integer, got {layer!r}")
    base = 1 + 3 * int(layer)
    return (base, base + 1, base + 2)


def dropout_sites(n_layer: int) -> list[Site]:
    """Return every site of a GPT of ``n_layer`` blocks in forward order (SPEC X4)."""
    n_layer = _positive_int(n_layer, "n_layer")
    sites = [Site(EMBD_SITE, "embd", "token + position embeddings (B, T, n_embd)")]
    for layer in range(n_layer):
        attn, resid_attn, resid_mlp = layer_sites(layer)
        sites += [
            Site(attn, "attn", f"h.{layer} attention probabilities (B, n_head, T, T)"),
            Site(resid_attn, "resid", f"h.{layer} attention output projection (B, T, n_embd)"),
            Site(resid_mlp, "resid", f"h.{layer} MLP output projection (B, T, n_embd)"),
        ]
    return sites


def family_sites(config: GPTConfig, layer: int) -> tuple[int, int, int]:
    """Return block ``layer``'s V3 site numbers: (DropHead, DropPath attention, DropPath MLP).

    They follow X4's ``1 + 3 * n_layer`` sites in forward order (SPEC V3).
    """
    layer_sites(layer)  # the same check of ``layer``
    if layer >= config.n_layer:
        raise ValueError(f"layer must be < n_layer={config.n_layer}, got {layer}")
    base = config.num_sites + 3 * int(layer)
    return (base, base + 1, base + 2)


def _is_rate(value: Any) -> bool:
    """Whether ``drop_path`` is one rate (not a per-block sequence)."""
    return isinstance(value, (numbers.Real, np.generic)) or (
        isinstance(value, np.ndarray) and value.ndim == 0
    )


def _resolve_drop_path(value: Any, n_layer: int) -> tuple[float, ...]:
    """Return ``(r,)`` for one rate or the checked per-block rates (SPEC V3)."""
    if _is_rate(value):
        return (validate_rate(value, "drop_path"),)
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__len__"):
        raise TypeError(
            f"drop_path must be a rate in [0, 1] or a sequence of n_layer={n_layer} rates, "
            f"got {value!r} ({type(value).__name__})"
        )
    rates = tuple(validate_rate(r, f"drop_path[{i}]") for i, r in enumerate(value))
    if len(rates) != n_layer:
        raise ValueError(
            f"drop_path needs one rate per block, n_layer={n_layer}, got {len(rates)}: {value!r}"
        )
    return rates


def path_fractions(n_layer: int) -> tuple[float, ...]:
    """Return ``linspace(0, 1, n_layer)``: block ``l``'s share of a runtime DropPath rate."""
    return tuple(float(f) for f in np.linspace(0.0, 1.0, n_layer))


def _call_path_rates(value: Any, n_layer: int) -> tuple[Any, ...]:
    """Return one DropPath rate per block from a call's ``rates["drop_path"]`` (SPEC V3, S1).

    A Python number ``r`` follows the config's rule exactly (``linspace(0, r, n_layer)``);
    a list or tuple gives one rate per block (floats, checked, or 0-d runtime tensors);
    a 0-d runtime tensor ``r`` gives block ``l`` the runtime rate ``r * linspace(0, 1,
    n_layer)[l]``, computed in ``r``'s dtype inside the compiled step.
    """
    if _is_rate(value):
        rate = validate_rate(value, "rates['drop_path']")
        return tuple(float(r) for r in np.linspace(0.0, rate, n_layer))
    if isinstance(value, (list, tuple)):
        if len(value) != n_layer:
            raise ValueError(
                f"rates['drop_path'] needs one rate per block, n_layer={n_layer}, "
                f"got {len(value)}: {value!r}"
            )
        return tuple(
            validate_rate(r, f"rates['drop_path'][{i}]") if _is_rate(r) else r
            for i, r in enumerate(value)
        )
    if isinstance(value, (str, bytes, Mapping)) or value is None:
        raise TypeError(
            f"rates['drop_path'] must be a rate, a list of n_layer={n_layer} rates or a 0-d "
            f"runtime tensor, got {value!r} ({type(value).__name__})"
        )
    return tuple(value * f for f in path_fractions(n_layer))


def call_rates(config: GPTConfig, rates: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the X2 rates of one forward call: ``config.rates`` with ``rates`` over it.

    ``rates`` (a schedule's, SPEC S3) maps some or all of :data:`RATE_NAMES` to a
    Python float or a 0-d runtime tensor/array (S1); the values are not read here,
    each site's ``dropout_layer`` checks them. V3's names, when given, pass through
    as given (:func:`forward_rates` resolves them). ``None`` keeps the config's rates.

    Raises
    ------
    TypeError
        If ``rates`` is not a mapping.
    ValueError
        If it names an unknown site.
    """
    resolved: dict[str, Any] = config.rates
    if rates is None:
        return resolved
    if not isinstance(rates, Mapping):
        raise TypeError(
            f"rates must be a dict per site ({', '.join(RATE_NAMES)}), got {rates!r} "
            f"({type(rates).__name__})"
        )
    unknown = [str(name) for name in rates if name not in RATE_NAMES]
    if unknown:
        raise ValueError(
            f"rates: unknown site {unknown[0]!r}; the sites are {', '.join(RATE_NAMES)}"
        )
    resolved.update(rates)
    return resolved


def forward_rates(config: GPTConfig, rates: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the rate of every site of one forward call, X2's and V3's (SPEC S1, S3, V3).

    :func:`call_rates`, plus ``"drop_head"`` (one rate) and ``"drop_path"`` (a tuple
    of ``n_layer`` rates, :func:`_call_path_rates`), the call's or the config's.

    Raises
    ------
    TypeError
        As :func:`call_rates`, or for a ``rates["drop_path"]`` of no known form.
    ValueError
        As :func:`call_rates`, or for a ``drop_path`` list of the wrong length.
    """
    resolved = call_rates(config, rates)
    if "drop_path" in resolved:
        resolved["drop_path"] = _call_path_rates(resolved["drop_path"], config.n_layer)
    else:
        resolved["drop_path"] = config.drop_path_rates
    resolved.setdefault("drop_head", config.drop_head)
    return resolved


def runtime_call_rates(
    config: GPTConfig, rates: Mapping[str, Any] | None, convert: Any
) -> dict[str, Any] | None:
    """Check a step's rates on the host and make them runtime values (SPEC S1, D1).

    X2's three sites always become ``convert(float)`` (e.g. a 0-d float64 tensor),
    the config's rate where ``rates`` leaves one out, so a step given some X2 sites
    and a step given others run one program. V3's names become runtime values only
    when given (else they stay the config's Python floats, constants of the
    compiled step; a zero one skips its site): ``"drop_path"`` as a tuple of one
    runtime rate per block, each the float of the config's rule
    (:func:`_call_path_rates`), so a compiled step with runtime rates equals the
    model built with those rates bit for bit. Changing the values recompiles
    nothing; giving or leaving out a V3 name does (another structure of inputs).

    Raises
    ------
    TypeError, ValueError
        For a rate that ``dropout_layer`` would refuse, naming it (``rates['attn']``).
    """
    if rates is None:
        return None
    given = call_rates(config, rates)  # a mapping of known names, the config's X2 filled in
    out: dict[str, Any] = {}
    for name, value in given.items():
        if name == "drop_path":
            out[name] = tuple(
                convert(validate_rate(r, f"rates['drop_path'][{i}]"))
                for i, r in enumerate(_call_path_rates(value, config.n_layer))
            )
        else:
            out[name] = convert(validate_rate(value, f"rates[{name!r}]"))
    return out


def is_off(rate: Any) -> bool:
    """Whether ``rate`` is a Python (or NumPy) zero: its site is skipped (D2's identity).

    A runtime tensor is never off: its value is not read on the host, so one
    compiled program serves every rate, 0 included (SPEC S1).
    """
    return _is_rate(rate) and float(rate) == 0.0


# --- inputs ------------------------------------------------------------------------------


def check_idx_shape(shape: Any, config: GPTConfig) -> tuple[int, int]:
    """Return ``(B, T)`` of token ids of ``shape``; refuse other ranks and ``T > block_size``.

    Raises
    ------
    ValueError
        If ``idx`` is not 2-D ``(batch, time)``, is empty along time, or is longer
        than ``config.block_size``; the message names ``idx``.

    """
    dims = tuple(shape)
    if len(dims) != 2:
        raise ValueError(f"idx must have shape (batch, time), got shape {dims}")
    batch, time = dims
    if time is not None and int(time) > config.block_size:
        raise ValueError(f"idx has {int(time)} positions, more than block_size={config.block_size}")
    if time is not None and int(time) == 0:
        raise ValueError("idx must hold at least one position, got shape (B, 0)")
    return (batch if batch is None else int(batch), time if time is None else int(time))


def check_idx_dtype(kind: str, dtype: Any, name: str = "idx") -> None:
    """Refuse token ids that are not integers (``kind`` is NumPy's ``dtype.kind``)."""
    if kind not in "iu":
        raise TypeError(
            f"{name} must hold integer token ids, got dtype {dtype}; convert with astype(int64)"
        )


def check_token_range(low: int, high: int, config: GPTConfig, name: str = "idx") -> None:
    """Refuse token ids outside ``[0, vocab_size)``, given the smallest and largest.

    Raises
    ------
    ValueError
        Naming ``name`` (``idx``), the offending value and ``vocab_size``.

    """
    if low < 0 or high >= config.vocab_size:
        bad = low if low < 0 else high
        raise ValueError(
            f"{name} holds token id {bad}, outside [0, vocab_size={config.vocab_size})"
        )


def validate_idx(idx: Any, config: GPTConfig) -> np.ndarray:
    """Check NumPy-convertible token ids (dtype, shape, range) and return them as int64."""
    array = np.asarray(idx)
    check_idx_dtype(array.dtype.kind, array.dtype)
    check_idx_shape(array.shape, config)
    if array.size:  # an empty batch has no ids to check
        check_token_range(int(array.min()), int(array.max()), config)
    return array.astype(np.int64, copy=False)


def validate_batch(idx: Any, targets: Any, config: GPTConfig) -> tuple[np.ndarray, np.ndarray]:
    """Check a language-model batch: ``idx`` as :func:`validate_idx`, ``targets`` alike.

    Returns
    -------
    idx, targets : numpy.ndarray
        int64 arrays of the same shape ``(B, T)``.

    Raises
    ------
    TypeError, ValueError
        Naming ``idx`` or ``targets``.

    """
    idx = validate_idx(idx, config)
    targets = np.asarray(targets)
    check_idx_dtype(targets.dtype.kind, targets.dtype, "targets")
    if targets.shape != idx.shape:
        raise ValueError(f"targets must have the shape of idx {idx.shape}, got {targets.shape}")
    if targets.size:
        check_token_range(int(targets.min()), int(targets.max()), config, "targets")
    return idx, targets.astype(np.int64, copy=False)


# --- weights (SPEC X5) -------------------------------------------------------------------


def _is_attn_buffer(name: str, config: GPTConfig) -> bool:
    """Whether ``name`` is a causal-mask buffer that older transformers put in state dicts."""
    return any(
        name in (f"transformer.h.{i}.attn.bias", f"transformer.h.{i}.attn.masked_bias")
        for i in range(config.n_layer)
    )


def weight_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    """Return the shape of every weight, by Hugging Face name, in state-dict order (SPEC X5).

    ``lm_head.weight`` is not listed: it is the token embedding (tied).
    """
    d, bias = config.n_embd, config.bias
    shapes: dict[str, tuple[int, ...]] = {
        "transformer.wte.weight": (config.vocab_size, d),
        "transformer.wpe.weight": (config.block_size, d),
    }

    def add(prefix: str, weight: tuple[int, ...], out: int) -> None:
        shapes[f"{prefix}.weight"] = weight
        if bias:
            shapes[f"{prefix}.bias"] = (out,)

    for i in range(config.n_layer):
        h = f"transformer.h.{i}"
        add(f"{h}.ln_1", (d,), d)
        add(f"{h}.attn.c_attn", (d, 3 * d), 3 * d)
        add(f"{h}.attn.c_proj", (d, d), d)
        add(f"{h}.ln_2", (d,), d)
        add(f"{h}.mlp.c_fc", (d, 4 * d), 4 * d)
        add(f"{h}.mlp.c_proj", (4 * d, d), d)
    add("transformer.ln_f", (d,), d)
    return shapes


def init_weights(
    config: GPTConfig, rng: np.random.Generator | int | None = None
) -> dict[str, np.ndarray]:
    """Draw GPT-2's init: N(0, 0.02²) matrices, zero biases, LayerNorm weight 1 (float32).

    The output projections (``attn.c_proj.weight``, ``mlp.c_proj.weight``) get the
    smaller ``0.02 / sqrt(2 * n_layer)`` of GPT-2's paper and nanoGPT. Draws are made
    in :func:`weight_shapes` order from ``rng`` (a Generator, an int seed, or ``None``).
    """
    gen = as_generator(rng)
    proj_std = INIT_STD / math.sqrt(2 * config.n_layer)
    weights = {}
    for name, shape in weight_shapes(config).items():
        if name.endswith(".bias"):
            weights[name] = np.zeros(shape, dtype=WEIGHT_DTYPE)
        elif ".ln_" in name:
            weights[name] = np.ones(shape, dtype=WEIGHT_DTYPE)
        else:
            std = proj_std if name.endswith("c_proj.weight") else INIT_STD
            weights[name] = gen.normal(0.0, std, size=shape).astype(WEIGHT_DTYPE)
    return weights


def _as_array(name: str, value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    # A state dict of torch (or any __array__) tensors loads as is: NumPy converts it.
    if hasattr(value, "__array__"):
        try:
            return np.asarray(value)
        except Exception as exc:  # e.g. a CUDA tensor or bfloat16: say which key
            raise TypeError(
                f"weights[{name!r}] could not be converted to a numpy.ndarray ({exc}); "
                "move it to the CPU as float32 first"
            ) from exc
    raise TypeError(f"weights[{name!r}] must be a numpy.ndarray, got {type(value).__name__}")


def validate_weights(
    config: GPTConfig, weights: Any, *, finite: bool = True
) -> dict[str, np.ndarray]:
    """Check a weight dict against ``config``; return float32 copies in state-dict order.

    Parameters
    ----------
    config : GPTConfig
        The architecture the weights must fit.
    weights : mapping of str to array
        Exactly the keys of :func:`weight_shapes`, plus optionally
        ``lm_head.weight`` (equal to ``transformer.wte.weight``) and the attention
        mask buffers of older transformers (ignored). Values are NumPy arrays or
        anything NumPy converts (CPU torch tensors: a ``GPT2LMHeadModel``
        state dict loads as is), of a floating dtype.
    finite : bool, optional
        Whether NaN and inf are refused (default).

    Returns
    -------
    dict of str to numpy.ndarray
        C-contiguous float32 copies, without ``lm_head.weight``. Nothing is
        returned (and nothing loaded by the callers) when any entry is wrong.

    Raises
    ------
    TypeError
        If ``weights`` is not a mapping or a value is not a floating array.
    ValueError
        For missing, unexpected or misshapen entries, a non-finite value, or an
        ``lm_head.weight`` that differs from the embedding; the message names the key.

    """
    if not isinstance(weights, Mapping):
        raise TypeError(
            f"weights must be a dict of str to numpy.ndarray, got {type(weights).__name__}"
        )
    expected = weight_shapes(config)
    missing = [name for name in expected if name not in weights]
    extra = sorted(
        str(name)
        for name in weights
        if name not in expected and name != LM_HEAD_KEY and not _is_attn_buffer(name, config)
    )
    if missing or extra:
        hint = " (bias=False has no .bias weights)" if not config.bias else ""
        raise ValueError(
            f"weights do not fit the config{hint}: missing keys {missing}, unexpected keys {extra}"
        )
    checked = {}
    for name, shape in expected.items():
        checked[name] = checked_weight(name, _as_array(name, weights[name]), shape, finite=finite)
    if LM_HEAD_KEY in weights:
        head = _as_array(LM_HEAD_KEY, weights[LM_HEAD_KEY])
        if head.shape != expected["transformer.wte.weight"] or not np.array_equal(
            head.astype(WEIGHT_DTYPE), checked["transformer.wte.weight"]
        ):
            raise ValueError(
                f"weights[{LM_HEAD_KEY!r}] must equal weights['transformer.wte.weight'] "
                "(the output head is tied to the token embedding)"
            )
    return checked


def resolve_weights(
    config: GPTConfig, weights: Any = None, rng: np.random.Generator | int | None = None
) -> dict[str, np.ndarray]:
    """Return validated ``weights``, or GPT-2's init drawn from ``rng`` when ``None``."""
    if weights is None:
        return init_weights(config, rng)
    return validate_weights(config, weights)
