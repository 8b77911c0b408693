"""The composite doors of ``dropout_ref.torch.portable_masks``: attention and recurrent stacks (P8).

Three torch functions drop units inside one call that a ``TorchFunctionMode``
cannot enter (a mode is popped while its handler runs, and re-entering it
re-dispatches the same call), so the context recomputes them with its own
dropout in the place of torch's:

- ``scaled_dot_product_attention`` (``dropout_p > 0``): ``softmax(q @ kᵀ · scale +
  mask)``, our dropout on the ``(..., heads, L, S)`` probabilities, ``@ v``;
- ``multi_head_attention_forward`` (``nn.MultiheadAttention`` and the
  ``nn.Transformer*`` layers built on it) in training mode: torch's own steps
  (in-projection, ``bias_k``/``bias_v``, ``add_zero_attn``, ``static_k``/``static_v``,
  the merged key-padding and attention masks, ``is_causal``), one site on the
  ``(B, heads, L, S)`` probabilities, the out-projection and, with
  ``need_weights``, the dropped weights torch returns;
- the recurrent kernels ``torch.lstm`` / ``gru`` / ``rnn_tanh`` / ``rnn_relu`` with
  ``num_layers > 1`` in training mode: layer by layer with torch's own kernel
  (``num_layers=1``, no dropout), one site on each non-final layer's output
  (``(L, N, D * H)``, sequence first as torch's kernel drops it, or the packed data).

P8's rate rule: both ``multi_head_attention_forward`` and the recurrent kernels
carry a training flag, so in training mode they are sites at rate 0 too (the
numbering follows the model's structure); at rate 0 torch's own function runs and
the site is numbered with no mask drawn (the dropout is the identity).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
import torch.nn.functional as F

from dropout_ref.core.sites import SiteCounter
from dropout_ref.torch import dropout_layer

__all__ = ["attention", "compiled_site_error", "multi_head_attention", "recurrent_stack"]


def compiled_site_error(source: str) -> RuntimeError:
    """Return the error of a site met while ``torch.compile`` traces inside the context (P8).

    torch 2.13's Dynamo runs an active mode and patched functions outside the graph (it
    guards on the mode stack: tests check compiled models); should a release trace into
    a site, the context refuses rather than bake one seed and site number into a graph.
    """
    return RuntimeError(
        f"{source} traced by torch.compile inside dropout_ref.torch.portable_masks: the "
        "compiled graph would bake this seed and site number in. Call the model without "
        "torch.compile inside the context (SPEC P8)"
    )

_MHA_SOURCE = "torch.nn.functional.multi_head_attention_forward"
_MHA_SIGNATURE = inspect.signature(F.multi_head_attention_forward)


def attention(
    counter: SiteCounter,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None,
    dropout_p: float,
    is_causal: bool,
    scale: float | None,
    source: str,
) -> torch.Tensor:
    """``softmax(q @ kᵀ · scale + mask)``, dropped as one site, ``@ v`` (SDPA's math, P8).

    ``q`` is ``(..., heads, L, E)``, ``k`` and ``v`` ``(..., heads, S, E)``; the site is
    the ``(..., heads, L, S)`` probabilities in row-major order. ``attn_mask`` is
    boolean (``True`` keeps) or additive, broadcast to the scores.
    """
    if is_causal and attn_mask is not None:
        raise RuntimeError(
            f"{source}: an explicit attn_mask must not be set when is_causal=True "
            "(as torch's kernels refuse it)"
        )
    factor = 1.0 / math.sqrt(q.size(-1)) if scale is None else scale
    scores = torch.matmul(q, k.transpose(-2, -1)) * factor
    L, S = q.size(-2), k.size(-2)
    if is_causal:
        causal = torch.ones(L, S, dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    probs = torch.softmax(scores, dim=-1)
    probs = counter.apply(dropout_layer, probs, dropout_p, source=source)
    return torch.matmul(probs, v)


# --- multi_head_attention_forward --------------------------------------------------------------


def multi_head_attention(counter: SiteCounter, func, args: tuple, kwargs: dict):
    """``F.multi_head_attention_forward`` in training mode: one site on the probabilities (P8)."""
    bound = _MHA_SIGNATURE.bind(*args, **kwargs)
    bound.apply_defaults()
    call = dict(bound.arguments)
    if not call["training"]:
        return func(*args, **kwargs)
    if not float(call["dropout_p"]) > 0:
        # Rate 0 in training is a site (P8: structure, not rates); its mask is all ones,
        # so torch's own function gives the result and the site is numbered with its shape.
        out = func(*args, **kwargs)
        counter.next(_MHA_SOURCE, _mha_probs_shape(call), 0.0)
        return out
    return _mha_forward(counter, **call)


def _mha_probs_shape(call: dict[str, Any]) -> tuple[int, int, int, int]:
    """``(B, heads, L, S)`` of the probabilities, as torch builds them (unbatched: B = 1)."""
    query, key = call["query"], call["key"]
    batch = query.shape[1] if query.dim() == 3 else 1
    static_k = call["static_k"]
    if static_k is not None:
        src_len = static_k.size(1)
    else:
        src_len = key.shape[0] + (call["bias_k"] is not None)
    src_len += bool(call["add_zero_attn"])
    return (batch, int(call["num_heads"]), query.shape[0], src_len)


def _mha_forward(
    counter: SiteCounter,
    query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias,
    bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias,
    training, key_padding_mask, need_weights, attn_mask, use_separate_proj_weight,
    q_proj_weight, k_proj_weight, v_proj_weight, static_k, static_v,
    average_attn_weights, is_causal,
):
    """Run torch 2.13's ``multi_head_attention_forward``, step for step, with our dropout (P8).

    Torch's private helpers do the checks and projections exactly as torch does;
    only the attention itself is ours: the probabilities are dropped as one site of
    shape ``(B, heads, L, S)``.
    """
    is_batched = F._mha_shape_check(
        query, key, value, key_padding_mask, attn_mask, num_heads
    )
    if not is_batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    tgt_len, bsz, embed_dim = query.shape
    src_len = key.shape[0]
    key_padding_mask = F._canonical_mask(
        mask=key_padding_mask, mask_name="key_padding_mask",
        other_type=F._none_or_dtype(attn_mask), other_name="attn_mask",
        target_type=query.dtype,
    )
    if is_causal and attn_mask is None:
        raise RuntimeError(
            "Need attn_mask if specifying the is_causal hint. You may use the Transformer "
            "module method `generate_square_subsequent_mask` to create this mask."
        )
    if is_causal and key_padding_mask is None and not need_weights:
        # As torch: the hint alone, the causal mask is built in the attention.
        attn_mask = None
    else:
        attn_mask = F._canonical_mask(
            mask=attn_mask, mask_name="attn_mask", other_type=None, other_name="",
            target_type=query.dtype, check_other=False,
        )
        if key_padding_mask is not None:
            is_causal = False
    if embed_dim != embed_dim_to_check:
        raise AssertionError(
            f"was expecting embedding dimension of {embed_dim_to_check}, but got {embed_dim}"
        )
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise AssertionError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    q, k, v = _in_projection(
        query, key, value, in_proj_weight, in_proj_bias, use_separate_proj_weight,
        q_proj_weight, k_proj_weight, v_proj_weight,
    )
    if attn_mask is not None:
        attn_mask = _mask_3d(attn_mask, bsz * num_heads, tgt_len, src_len)
    if bias_k is not None and bias_v is not None:
        if static_k is not None or static_v is not None:
            raise AssertionError("bias cannot be added to static key or value.")
        k = torch.cat([k, bias_k.repeat(1, bsz, 1)])
        v = torch.cat([v, bias_v.repeat(1, bsz, 1)])
        attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
        key_padding_mask = None if key_padding_mask is None else F.pad(key_padding_mask, (0, 1))
    elif bias_k is not None or bias_v is not None:
        raise AssertionError("bias_k and bias_v must be set together")
    q = q.view(tgt_len, bsz * num_heads, head_dim).transpose(0, 1)
    k = _heads(k, static_k, bsz * num_heads, head_dim, "static_k")
    v = _heads(v, static_v, bsz * num_heads, head_dim, "static_v")
    if add_zero_attn:
        zeros = (bsz * num_heads, 1, head_dim)
        k = torch.cat([k, torch.zeros(zeros, dtype=k.dtype, device=k.device)], dim=1)
        v = torch.cat([v, torch.zeros(zeros, dtype=v.dtype, device=v.device)], dim=1)
        attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
        key_padding_mask = None if key_padding_mask is None else F.pad(key_padding_mask, (0, 1))
    src_len = k.size(1)
    if key_padding_mask is not None:
        F._check_key_padding_mask(key_padding_mask, src_len, bsz)
        key_padding_mask = (
            key_padding_mask.view(bsz, 1, 1, src_len)
            .expand(-1, num_heads, -1, -1)
            .reshape(bsz * num_heads, 1, src_len)
        )
        attn_mask = key_padding_mask if attn_mask is None else attn_mask + key_padding_mask
    shape4 = (bsz, num_heads, tgt_len, src_len)
    if need_weights:
        q_scaled = q * math.sqrt(1.0 / float(head_dim))
        if attn_mask is not None:
            weights = torch.baddbmm(attn_mask, q_scaled, k.transpose(-2, -1))
        else:
            weights = torch.bmm(q_scaled, k.transpose(-2, -1))
        weights = torch.softmax(weights, dim=-1)
        # One site, (B, heads, L, S) row-major: torch's (B * heads) rows are batch-major.
        weights = counter.apply(
            dropout_layer, weights.view(shape4), dropout_p, source=_MHA_SOURCE
        )
        out = torch.bmm(weights.view(bsz * num_heads, tgt_len, src_len), v)
        out = out.transpose(0, 1).reshape(tgt_len * bsz, embed_dim)
        returned = weights.mean(dim=1) if average_attn_weights else weights
    else:
        if attn_mask is not None:
            if attn_mask.size(0) == 1 and attn_mask.dim() == 3:
                attn_mask = attn_mask.unsqueeze(0)
            else:
                attn_mask = attn_mask.view(bsz, num_heads, -1, src_len)
        out = attention(
            counter,
            q.view(bsz, num_heads, tgt_len, head_dim),
            k.view(bsz, num_heads, src_len, head_dim),
            v.view(bsz, num_heads, src_len, head_dim),
            attn_mask, dropout_p, is_causal, None, _MHA_SOURCE,
        )
        out = out.permute(2, 0, 1, 3).reshape(bsz * tgt_len, embed_dim)
        returned = None
    out = F.linear(out, out_proj_weight, out_proj_bias).view(tgt_len, bsz, -1)
    if not is_batched:
        out = out.squeeze(1)
        returned = None if returned is None else returned.squeeze(0)
    return out, returned


def _in_projection(
    query, key, value, in_proj_weight, in_proj_bias, separate, q_weight, k_weight, v_weight
):
    """Torch's own in-projection: packed weight, or separate q/k/v weights."""
    if not separate:
        if in_proj_weight is None:
            raise AssertionError("use_separate_proj_weight is False but in_proj_weight is None")
        if key.shape != value.shape:
            raise AssertionError(f"key shape {key.shape} does not match value shape {value.shape}")
        return F._in_projection_packed(query, key, value, in_proj_weight, in_proj_bias)
    if q_weight is None or k_weight is None or v_weight is None:
        raise AssertionError(
            "use_separate_proj_weight is True but q/k/v_proj_weight is None"
        )
    if key.shape[:2] != value.shape[:2]:
        raise AssertionError(
            f"key's sequence and batch dims {key.shape[:2]} do not match value's "
            f"{value.shape[:2]}"
        )
    biases = (None, None, None) if in_proj_bias is None else in_proj_bias.chunk(3)
    return F._in_projection(query, key, value, q_weight, k_weight, v_weight, *biases)


def _mask_3d(attn_mask: torch.Tensor, rows: int, tgt_len: int, src_len: int) -> torch.Tensor:
    """Return a 2-D ``(L, S)`` mask as ``(1, L, S)``; check a 3-D one is ``(B * heads, L, S)``."""
    if attn_mask.dim() == 2:
        if attn_mask.shape != (tgt_len, src_len):
            raise RuntimeError(
                f"The shape of the 2D attn_mask is {attn_mask.shape}, but should be "
                f"{(tgt_len, src_len)}."
            )
        return attn_mask.unsqueeze(0)
    if attn_mask.dim() == 3:
        if attn_mask.shape != (rows, tgt_len, src_len):
            raise RuntimeError(
                f"The shape of the 3D attn_mask is {attn_mask.shape}, but should be "
                f"{(rows, tgt_len, src_len)}."
            )
        return attn_mask
    raise RuntimeError(f"attn_mask's dimension {attn_mask.dim()} is not supported")


def _heads(
    t: torch.Tensor, static: torch.Tensor | None, rows: int, head_dim: int, name: str
) -> torch.Tensor:
    """``(S, B, E)`` as ``(B * heads, S, head_dim)``, or the given static keys/values."""
    if static is None:
        return t.view(t.shape[0], rows, head_dim).transpose(0, 1)
    if static.size(0) != rows or static.size(2) != head_dim:
        raise AssertionError(
            f"expecting {name} of shape ({rows}, S, {head_dim}), got {tuple(static.shape)}"
        )
    return static


# --- torch.lstm / gru / rnn_tanh / rnn_relu ----------------------------------------------------

_RNN_NAMES = (
    "input", "hx", "params", "has_biases", "num_layers", "dropout", "train", "bidirectional",
    "batch_first",
)
_PACKED_RNN_NAMES = (
    "data", "batch_sizes", "hx", "params", "has_biases", "num_layers", "dropout", "train",
    "bidirectional",
)


def _rnn_call(func, args: tuple, kwargs: dict) -> tuple[bool, dict[str, Any]] | None:
    """Name the kernel's arguments; ``None`` where some are missing (torch then raises)."""
    lstm = func is torch.lstm
    packed = "batch_sizes" in kwargs or (
        len(args) >= 2 and isinstance(args[1], torch.Tensor)
        and (lstm or (len(args) >= 3 and isinstance(args[2], torch.Tensor)))
    )
    names = _PACKED_RNN_NAMES if packed else _RNN_NAMES
    call = dict(zip(names, args, strict=False))  # some may come by keyword
    call.update(kwargs)
    if any(name not in call for name in names):
        return None
    return packed, call


def recurrent_stack(counter: SiteCounter, func, args: tuple, kwargs: dict):
    """``torch.lstm/gru/rnn_*`` with ``num_layers > 1`` in training: one site per layer gap (P8).

    Each layer runs torch's own kernel (``num_layers=1``, dropout 0) on its slice of
    the flat weights and of ``hx``; the output of every non-final layer, sequence
    first ``(L, N, D * H)`` (torch's kernel transposes a batch-first input before its
    layers) or the packed data, is one site, in layer order. At rate 0 torch's own
    stacked kernel runs and the sites are numbered with their shapes.
    """
    parsed = _rnn_call(func, args, kwargs)
    if parsed is None or not (parsed[1]["train"] and int(parsed[1]["num_layers"]) > 1):
        # Eval mode or a single layer: no dropout between layers, torch's own kernel.
        return func(*args, **kwargs)
    packed, call = parsed
    source = f"torch.{func.__name__}"
    num_layers, rate = int(call["num_layers"]), float(call["dropout"])
    directions = 2 if call["bidirectional"] else 1
    lstm = func is torch.lstm
    hx = tuple(call["hx"]) if lstm else (call["hx"],)
    if not rate > 0:
        out = func(*args, **kwargs)
        gap = _gap_shape(packed, call, hx[0].size(2) * directions)
        for _ in range(num_layers - 1):
            counter.next(source, gap, 0.0)
        return out
    params = list(call["params"])
    per_layer, leftover = divmod(len(params), num_layers * directions)
    if leftover:
        raise ValueError(
            f"{source}: params holds {len(params)} tensors, not a multiple of num_layers * "
            f"directions = {num_layers * directions}"
        )
    batch_first = not packed and bool(call["batch_first"])
    x = call["data"] if packed else call["input"]
    if batch_first:
        x = x.transpose(0, 1)
    finals: list[list[torch.Tensor]] = [[] for _ in hx]
    for layer in range(num_layers):
        if layer > 0:
            x = counter.apply(dropout_layer, x, rate, source=source)
        rows = slice(layer * directions, (layer + 1) * directions)
        h = tuple(t[rows] for t in hx) if lstm else hx[0][rows]
        weights = params[layer * directions * per_layer:(layer + 1) * directions * per_layer]
        if packed:
            out = func(
                x, call["batch_sizes"], h, weights, call["has_biases"], 1, 0.0, True,
                call["bidirectional"],
            )
        else:
            out = func(
                x, h, weights, call["has_biases"], 1, 0.0, True, call["bidirectional"], False
            )
        x = out[0]
        for kept, state in zip(finals, out[1:], strict=True):
            kept.append(state)
    if batch_first:
        x = x.transpose(0, 1)
    return (x, *(torch.cat(kept, 0) for kept in finals))


def _gap_shape(packed: bool, call: dict[str, Any], features: int) -> tuple[int, ...]:
    """Return a non-final layer output's shape: ``(L, N, D * H)``, or ``(rows, D * H)`` packed."""
    if packed:
        return (call["data"].shape[0], features)
    shape = call["input"].shape
    length, batch = (shape[1], shape[0]) if call["batch_first"] else (shape[0], shape[1])
    return (length, batch, features)
