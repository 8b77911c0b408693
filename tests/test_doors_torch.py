"""PyTorch's Transformer and recurrent layers are portable-mask sites (SPEC P8).

Inside ``dropout_ref.torch.portable_masks(seed)``, ``nn.MultiheadAttention`` and
the ``nn.Transformer*`` layers (``F.multi_head_attention_forward``) drop their
attention probabilities as one site of shape ``(B, heads, L, S)``, and
``nn.LSTM/GRU/RNN(num_layers > 1, dropout=p)`` drop each non-final layer's output,
sequence first, as one site per layer gap. Every check compares the unmodified
torch module with a hand-written equivalent (``F.linear``, ``F.softmax``,
``F.dropout``, single-layer recurrent modules) run in a context with the same
seed, outputs and gradients; while they run, a dispatch mode makes every seeded
aten op (torch's random generator) raise, so no native mask can hide in them.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
nn = torch.nn

from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from dropout_ref.torch import dropout_layer, portable_masks  # noqa: E402

TOL = {"rtol": 1e-6, "atol": 1e-6}
SEED = 12345
E, HEADS, FF = 8, 2, 16
B, L_TGT, S_SRC = 2, 4, 5


class RaiseOnNativeRandom(TorchDispatchMode):
    """Every aten op that draws from torch's generator raises (tag ``nondeterministic_seeded``).

    ``bernoulli``, ``native_dropout``, ``rand``/``uniform_``, ``randint``, ``normal_``
    ... all carry the tag; the names are listed too, should a release drop a tag.
    """

    NAMES = frozenset({
        "bernoulli", "bernoulli_", "native_dropout", "rand", "rand_like", "uniform_",
        "randint", "randint_like", "randn", "randn_like", "normal_", "normal", "random_",
        "randperm", "multinomial", "exponential_", "geometric_", "cauchy_", "log_normal_",
        "poisson",
    })

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        seeded = torch.Tag.nondeterministic_seeded in func.tags
        if seeded or func.overloadpacket.__name__ in self.NAMES:
            # The fused attention kernels carry the tag for their dropout_p; at 0 they
            # draw nothing (eval mode, rate 0), so only a positive dropout_p counts.
            rate = self._dropout_p(func, args, kwargs)
            if rate is None or rate > 0:
                raise AssertionError(f"native random op ran: {func}")
        return func(*args, **kwargs)

    @staticmethod
    def _dropout_p(func, args, kwargs):
        for index, argument in enumerate(func._schema.arguments):
            if argument.name == "dropout_p":
                return float(args[index] if index < len(args) else kwargs.get("dropout_p", 0.0))
        return None


def _grads(out, inputs):
    """Gradients of a fixed random projection of ``out`` (a tensor or tuple) wrt ``inputs``."""
    outs = out if isinstance(out, tuple) else (out,)
    g = torch.Generator().manual_seed(7)
    weights = [torch.randn(o.shape, generator=g, dtype=o.dtype) for o in outs]
    loss = sum((o * w).sum() for o, w in zip(outs, weights, strict=True))
    # retain_graph: a packed input's packing is shared by the two graphs compared.
    with RaiseOnNativeRandom():  # the backward passes draw nothing either
        return torch.autograd.grad(loss, inputs, retain_graph=True)


def _assert_same(ours, theirs, inputs_ours, inputs_theirs):
    """Outputs and gradients equal to 1e-6 (float64 throughout)."""
    ours_t = ours if isinstance(ours, tuple) else (ours,)
    theirs_t = theirs if isinstance(theirs, tuple) else (theirs,)
    for a, b in zip(ours_t, theirs_t, strict=True):
        torch.testing.assert_close(a, b, **TOL)
    for a, b in zip(
        _grads(ours, inputs_ours), _grads(theirs, inputs_theirs), strict=True
    ):
        torch.testing.assert_close(a, b, **TOL)


def _run(seed, fn):
    """``fn()`` in ``portable_masks(seed)`` with torch's generator made to raise."""
    with portable_masks(seed) as ctx, RaiseOnNativeRandom():
        out = fn()
    return out, ctx.sites


# --- hand-written attention -------------------------------------------------------------------


def _additive(attn_mask, kpm, batch, tgt, src):
    """The float mask ``(B, 1, L, S)`` torch merges from an (L, S) mask and a (B, S) padding."""
    mask = torch.zeros(batch, 1, tgt, src, dtype=torch.float64)
    if attn_mask is not None:
        mask = mask + attn_mask
    if kpm is not None:
        mask = mask.masked_fill(kpm.view(batch, 1, 1, src), float("-inf"))
    return mask


def ref_mha(mha, q_in, kv_in, mask, *, extras=False):
    """Attention by hand: ``F.linear``, ``F.softmax``, ``F.dropout`` on (B, H, L, S).

    Inputs and output in the module's layout (``mha.batch_first``); ``extras``: the
    module's ``bias_k``/``bias_v`` keys and its zero key (``add_zero_attn``) appended
    after the projection, as torch documents them.
    """
    if not mha.batch_first:
        q_in, kv_in = q_in.transpose(0, 1), kv_in.transpose(0, 1)
    hd = mha.embed_dim // mha.num_heads
    if mha._qkv_same_embed_dim:
        wq, wk, wv = mha.in_proj_weight.chunk(3)
    else:
        wq, wk, wv = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
    bq, bk, bv = mha.in_proj_bias.chunk(3)
    batch, tgt = q_in.shape[:2]
    q = F.linear(q_in, wq, bq)
    k = F.linear(kv_in, wk, bk)
    v = F.linear(kv_in, wv, bv)
    if extras:
        k = torch.cat([k, mha.bias_k.expand(batch, 1, -1)], 1)
        v = torch.cat([v, mha.bias_v.expand(batch, 1, -1)], 1)
    q, k, v = (t.view(batch, t.shape[1], mha.num_heads, hd).transpose(1, 2) for t in (q, k, v))
    if extras:
        zeros = torch.zeros(batch, mha.num_heads, 1, hd, dtype=k.dtype)
        k, v = torch.cat([k, zeros], 2), torch.cat([v, zeros], 2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(hd)
    if mask is not None:
        scores = scores + F.pad(mask, (0, scores.shape[-1] - mask.shape[-1]))
    probs = F.dropout(F.softmax(scores, -1), mha.dropout, training=True)
    out = (probs @ v).transpose(1, 2).reshape(batch, tgt, mha.embed_dim)
    out = F.linear(out, mha.out_proj.weight, mha.out_proj.bias)
    return (out if mha.batch_first else out.transpose(0, 1)), probs


def _ln(norm, x):
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def _ff(layer, x):
    p = layer.dropout.p
    hidden = F.dropout(F.relu(F.linear(x, layer.linear1.weight, layer.linear1.bias)), p, True)
    return F.dropout(F.linear(hidden, layer.linear2.weight, layer.linear2.bias), p, True)


def ref_encoder_layer(layer, x, mask):
    """``nn.TransformerEncoderLayer`` by hand (the module's layout), sites in torch's order."""
    p = layer.dropout1.p

    def sa(h):
        return F.dropout(ref_mha(layer.self_attn, h, h, mask)[0], p, True)

    if layer.norm_first:
        x = x + sa(_ln(layer.norm1, x))
        return x + _ff(layer, _ln(layer.norm2, x))
    x = _ln(layer.norm1, x + sa(x))
    return _ln(layer.norm2, x + _ff(layer, x))


def ref_decoder_layer(layer, x, memory, tgt_mask, memory_mask):
    """``nn.TransformerDecoderLayer`` by hand (the module's layout), sites in torch's order."""
    p = layer.dropout1.p

    def sa(h):
        return F.dropout(ref_mha(layer.self_attn, h, h, tgt_mask)[0], p, True)

    def ca(h):
        return F.dropout(ref_mha(layer.multihead_attn, h, memory, memory_mask)[0], p, True)

    if layer.norm_first:
        x = x + sa(_ln(layer.norm1, x))
        x = x + ca(_ln(layer.norm2, x))
        return x + _ff(layer, _ln(layer.norm3, x))
    x = _ln(layer.norm1, x + sa(x))
    x = _ln(layer.norm2, x + ca(x))
    return _ln(layer.norm3, x + _ff(layer, x))


# --- Transformer layers ------------------------------------------------------------------------


def _inputs(batch_first):
    g = torch.Generator().manual_seed(3)
    src = torch.randn(B, S_SRC, E, generator=g, dtype=torch.float64, requires_grad=True)
    tgt = torch.randn(B, L_TGT, E, generator=g, dtype=torch.float64, requires_grad=True)

    def layout(t):
        return t if batch_first else t.transpose(0, 1)

    return src, tgt, layout


def _masks(kind):
    """(causal tgt mask or None, src padding or None, tgt padding or None)."""
    causal = None
    if kind in ("causal", "both"):
        causal = nn.Transformer.generate_square_subsequent_mask(L_TGT, dtype=torch.float64)
    src_pad = tgt_pad = None
    if kind in ("padding", "both"):
        src_pad = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
        tgt_pad = torch.tensor([[0, 0, 0, 1], [0, 0, 0, 0]], dtype=torch.bool)
    return causal, src_pad, tgt_pad


def _check_sites(ours, theirs, count):
    assert len(ours) == count
    assert [(s.j, s.shape, s.rate) for s in ours] == [(s.j, s.shape, s.rate) for s in theirs]


LAYER_CASES = pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
LAYOUTS = pytest.mark.parametrize("batch_first", [True, False], ids=["batch-first", "seq-first"])
MASKS = pytest.mark.parametrize("kind", ["none", "causal", "padding", "both"])


@LAYER_CASES
@LAYOUTS
@MASKS
def test_p8_transformer_encoder_layer_equals_hand_written(norm_first, batch_first, kind):
    """P8: TransformerEncoderLayer's 4 sites (probs, dropout1, ff, dropout2) as by hand."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(
        E, HEADS, FF, dropout=0.3, batch_first=batch_first, norm_first=norm_first
    ).double().train()
    x, _, layout = _inputs(batch_first)
    # Self-attention over the target length: the causal mask is (L_TGT, L_TGT).
    x = x[:, :L_TGT].detach().requires_grad_()
    causal, _, pad = _masks(kind)
    params = [x, *layer.parameters()]
    ours, sites = _run(SEED, lambda: layer(
        layout(x), src_mask=causal, src_key_padding_mask=pad, is_causal=kind == "causal"
    ))
    mask = _additive(causal, pad, B, L_TGT, L_TGT)
    theirs, ref_sites = _run(SEED, lambda: ref_encoder_layer(layer, layout(x), mask))
    _check_sites(sites, ref_sites, 4)
    assert sites[0].shape == (B, HEADS, L_TGT, L_TGT)
    assert sites[0].source == "torch.nn.functional.multi_head_attention_forward"
    _assert_same(ours, theirs, params, params)


@LAYER_CASES
@LAYOUTS
@MASKS
def test_p8_transformer_decoder_layer_equals_hand_written(norm_first, batch_first, kind):
    """P8: TransformerDecoderLayer's 6 sites (self-attn, dropout1, cross-attn, dropout2, ff)."""
    torch.manual_seed(0)
    layer = nn.TransformerDecoderLayer(
        E, HEADS, FF, dropout=0.3, batch_first=batch_first, norm_first=norm_first
    ).double().train()
    memory, tgt, layout = _inputs(batch_first)
    causal, src_pad, tgt_pad = _masks(kind)
    params = [memory, tgt, *layer.parameters()]
    ours, sites = _run(SEED, lambda: layer(
        layout(tgt), layout(memory), tgt_mask=causal, tgt_key_padding_mask=tgt_pad,
        memory_key_padding_mask=src_pad, tgt_is_causal=kind == "causal",
    ))
    theirs, ref_sites = _run(SEED, lambda: ref_decoder_layer(
        layer, layout(tgt), layout(memory), _additive(causal, tgt_pad, B, L_TGT, L_TGT),
        _additive(None, src_pad, B, L_TGT, S_SRC),
    ))
    _check_sites(sites, ref_sites, 6)
    assert sites[0].shape == (B, HEADS, L_TGT, L_TGT)
    assert sites[2].shape == (B, HEADS, L_TGT, S_SRC)
    _assert_same(ours, theirs, params, params)


@LAYER_CASES
@LAYOUTS
@MASKS
def test_p8_transformer_equals_hand_written(norm_first, batch_first, kind):
    """P8: nn.Transformer (2 + 2 layers, final norms): 2 * 4 + 2 * 6 sites in forward order."""
    torch.manual_seed(0)
    model = nn.Transformer(
        E, HEADS, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=FF,
        dropout=0.3, batch_first=batch_first, norm_first=norm_first,
    ).double().train()
    src, tgt, layout = _inputs(batch_first)
    causal, src_pad, tgt_pad = _masks(kind)
    params = [src, tgt, *model.parameters()]
    ours, sites = _run(SEED, lambda: model(
        layout(src), layout(tgt), tgt_mask=causal, src_key_padding_mask=src_pad,
        tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=src_pad,
        tgt_is_causal=kind == "causal",
    ))

    def by_hand():
        memory = layout(src)
        for layer in model.encoder.layers:
            memory = ref_encoder_layer(layer, memory, _additive(None, src_pad, B, S_SRC, S_SRC))
        memory = _ln(model.encoder.norm, memory)
        out = layout(tgt)
        for layer in model.decoder.layers:
            out = ref_decoder_layer(
                layer, out, memory, _additive(causal, tgt_pad, B, L_TGT, L_TGT),
                _additive(None, src_pad, B, L_TGT, S_SRC),
            )
        return _ln(model.decoder.norm, out)

    theirs, ref_sites = _run(SEED, by_hand)
    _check_sites(sites, ref_sites, 2 * 4 + 2 * 6)
    _assert_same(ours, theirs, params, params)


# --- nn.MultiheadAttention ---------------------------------------------------------------------

MHA_CASES = {
    "plain": {},
    "extras": {"add_bias_kv": True, "add_zero_attn": True, "kdim": 6, "vdim": 6},
    "bool-3d-mask": {"mask": "bool-3d"},
    "padding": {"mask": "padding"},
    "float-2d-mask": {"mask": "float-2d"},
}


@pytest.mark.parametrize("need_weights", [True, False], ids=["weights", "sdpa"])
@pytest.mark.parametrize("average", [True, False], ids=["mean", "per-head"])
@pytest.mark.parametrize("case", list(MHA_CASES))
def test_p8_multihead_attention_equals_hand_written(need_weights, average, case):
    """P8: nn.MultiheadAttention, need_weights both ways: one (B, H, L, S) site; weights dropped.

    torch returns the attention weights after its dropout; so do we.
    """
    options = dict(MHA_CASES[case])
    mask_kind = options.pop("mask", None)
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(E, HEADS, dropout=0.4, batch_first=True, **options)
    mha = mha.double().train()
    g = torch.Generator().manual_seed(5)
    kv_dim = options.get("kdim", E)
    q = torch.randn(B, L_TGT, E, generator=g, dtype=torch.float64, requires_grad=True)
    kv = torch.randn(B, S_SRC, kv_dim, generator=g, dtype=torch.float64, requires_grad=True)
    attn_mask = kpm = None
    mask = None
    if mask_kind == "bool-3d":
        attn_mask = torch.rand(B * HEADS, L_TGT, S_SRC, generator=g) > 0.6
        attn_mask[..., 0] = False  # every row keeps a key: no all -inf row
        mask = torch.zeros(B, HEADS, L_TGT, S_SRC, dtype=torch.float64).masked_fill(
            attn_mask.view(B, HEADS, L_TGT, S_SRC), float("-inf")
        )
    elif mask_kind == "padding":
        kpm = torch.tensor([[0, 0, 1, 0, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
        mask = _additive(None, kpm, B, L_TGT, S_SRC)
    elif mask_kind == "float-2d":
        attn_mask = torch.randn(L_TGT, S_SRC, generator=g, dtype=torch.float64)
        mask = _additive(attn_mask, None, B, L_TGT, S_SRC)
    params = [q, kv, *mha.parameters()]
    ours, sites = _run(SEED, lambda: mha(
        q, kv, kv, key_padding_mask=kpm, attn_mask=attn_mask, need_weights=need_weights,
        average_attn_weights=average,
    ))
    (theirs, probs), ref_sites = _run(
        SEED, lambda: ref_mha(mha, q, kv, mask, extras=case == "extras")
    )
    _check_sites(sites, ref_sites, 1)
    src_len = S_SRC + 2 * (case == "extras")
    assert sites[0].shape == (B, HEADS, L_TGT, src_len)
    if need_weights:
        weights = probs.mean(1) if average else probs
        _assert_same(ours, (theirs, weights), params, params)
    else:
        assert ours[1] is None
        _assert_same(ours[0], theirs, params, params)


def test_p8_multihead_attention_site_is_dropout_layer_on_b_h_l_s():
    """P8: the site's mask is dropout_layer on the (B, H, L, S) probabilities at offset j * 2**40.

    Checked on the returned per-head weights (need_weights): zeros exactly where
    dropout_layer(ones) on (B, H, L, S) has zeros (a head-major (H, B, L, S) order would not).
    """
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(E, HEADS, dropout=0.5, batch_first=True).train()
    x = torch.randn(3, 6, E)
    with portable_masks(SEED):
        F.dropout(x, 0.1, training=True)  # site 0: the attention is site 1
        _, weights = mha(x, x, x, average_attn_weights=False)
    expected = dropout_layer(torch.ones(3, HEADS, 6, 6), 0.5, seed=SEED, offset=2**40)
    assert torch.equal(weights == 0, expected == 0)


@pytest.mark.parametrize("need_weights", [True, False], ids=["weights", "sdpa"])
def test_p8_multihead_attention_unbatched_input(need_weights):
    """P8: an unbatched (L, E) query is one site of shape (1, H, L, S), as torch batches it."""
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(E, HEADS, dropout=0.4).double().train()
    q = torch.randn(L_TGT, E, dtype=torch.float64, requires_grad=True)
    params = [q, *mha.parameters()]
    ours, sites = _run(SEED, lambda: mha(q, q, q, need_weights=need_weights))
    (theirs, probs), _ = _run(SEED, lambda: ref_mha(mha, q.unsqueeze(1), q.unsqueeze(1), None))
    assert [s.shape for s in sites] == [(1, HEADS, L_TGT, L_TGT)]
    if need_weights:
        _assert_same(ours, (theirs.squeeze(1), probs.mean(1).squeeze(0)), params, params)
    else:
        _assert_same(ours[0], theirs.squeeze(1), params, params)


@pytest.mark.parametrize("rate", [0.4, 0.0], ids=["rate", "rate-0"])
def test_p8_multi_head_attention_forward_static_keys(rate):
    """P8: F.multi_head_attention_forward with static_k/static_v (B*H, S, hd): one site."""
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(E, HEADS).double()
    hd, src = E // HEADS, 3
    g = torch.Generator().manual_seed(9)
    x = torch.randn(L_TGT, B, E, generator=g, dtype=torch.float64, requires_grad=True)
    static_k, static_v = (
        torch.randn(B * HEADS, src, hd, generator=g, dtype=torch.float64, requires_grad=True)
        for _ in range(2)
    )
    params = [x, static_k, static_v, *mha.parameters()]

    def call():
        return F.multi_head_attention_forward(
            x, x, x, E, HEADS, mha.in_proj_weight, mha.in_proj_bias, None, None, False, rate,
            mha.out_proj.weight, mha.out_proj.bias, training=True, static_k=static_k,
            static_v=static_v, need_weights=False,
        )[0]

    def by_hand():
        wq, bq = mha.in_proj_weight.chunk(3)[0], mha.in_proj_bias.chunk(3)[0]
        q = F.linear(x, wq, bq).view(L_TGT, B * HEADS, hd).transpose(0, 1)
        q, k, v = (t.reshape(B, HEADS, -1, hd) for t in (q, static_k, static_v))
        probs = F.dropout(F.softmax(q @ k.transpose(-2, -1) / math.sqrt(hd), -1), rate, True)
        out = (probs @ v).permute(2, 0, 1, 3).reshape(L_TGT, B, E)
        return F.linear(out, mha.out_proj.weight, mha.out_proj.bias)

    ours, sites = _run(SEED, call)
    theirs, ref_sites = _run(SEED, by_hand)
    _check_sites(sites, ref_sites, 1)
    assert sites[0].shape == (B, HEADS, L_TGT, src) and sites[0].rate == rate
    _assert_same(ours, theirs, params, params)


# --- recurrent stacks -------------------------------------------------------------------------


def _single_layers(rnn):
    """One single-layer module per layer, sharing the stacked module's Parameters."""
    kind = type(rnn)
    directions = 2 if rnn.bidirectional else 1
    out_size = rnn.proj_size if getattr(rnn, "proj_size", 0) else rnn.hidden_size
    layers = []
    for layer in range(rnn.num_layers):
        kwargs = {"bias": rnn.bias, "bidirectional": rnn.bidirectional}
        if kind is nn.LSTM:
            kwargs["proj_size"] = rnn.proj_size
        if kind is nn.RNN:
            kwargs["nonlinearity"] = rnn.nonlinearity
        size = rnn.input_size if layer == 0 else directions * out_size
        single = kind(size, rnn.hidden_size, num_layers=1, **kwargs).double()
        for suffix in ("", "_reverse")[:directions]:
            for name in single._flat_weights_names:
                if name.endswith(f"_l0{suffix}"):
                    stacked = name.replace(f"_l0{suffix}", f"_l{layer}{suffix}")
                    setattr(single, name, getattr(rnn, stacked))
        layers.append(single)
    return layers


def ref_stack(rnn, layers, x, hx):
    """The stack by hand: single-layer modules, F.dropout between them, sequence first."""
    packed = isinstance(x, nn.utils.rnn.PackedSequence)
    if rnn.batch_first and not packed:
        x = x.transpose(0, 1)
    directions = 2 if rnn.bidirectional else 1
    finals = []
    for layer, single in enumerate(layers):
        if layer > 0:
            if packed:
                x = x._replace(data=F.dropout(x.data, rnn.dropout, training=True))
            else:
                x = F.dropout(x, rnn.dropout, training=True)
        rows = slice(layer * directions, (layer + 1) * directions)
        h = tuple(t[rows] for t in hx) if isinstance(hx, tuple) else hx[rows]
        x, state = single(x, h)
        finals.append(state if isinstance(state, tuple) else (state,))
    if rnn.batch_first and not packed:
        x = x.transpose(0, 1)
    states = tuple(torch.cat(parts, 0) for parts in zip(*finals, strict=True))
    return x, states if isinstance(hx, tuple) else states[0]


RNN_CASES = {
    "lstm": lambda: nn.LSTM(3, 5, num_layers=3, dropout=0.3),
    "lstm-bi-batch-first": lambda: nn.LSTM(
        3, 5, num_layers=3, dropout=0.3, bidirectional=True, batch_first=True
    ),
    "lstm-proj-bi": lambda: nn.LSTM(3, 5, num_layers=3, dropout=0.3, proj_size=2,
                                    bidirectional=True),
    "lstm-no-bias": lambda: nn.LSTM(3, 5, num_layers=2, dropout=0.3, bias=False),
    "gru": lambda: nn.GRU(3, 5, num_layers=3, dropout=0.3, batch_first=True),
    "gru-bi": lambda: nn.GRU(3, 5, num_layers=2, dropout=0.3, bidirectional=True),
    "rnn-tanh": lambda: nn.RNN(3, 5, num_layers=3, dropout=0.3, nonlinearity="tanh"),
    "rnn-relu-bi": lambda: nn.RNN(
        3, 5, num_layers=3, dropout=0.3, nonlinearity="relu", bidirectional=True
    ),
}


def _rnn_inputs(rnn, packed):
    g = torch.Generator().manual_seed(11)
    T, N = 6, 3
    directions = 2 if rnn.bidirectional else 1
    out_size = rnn.proj_size if getattr(rnn, "proj_size", 0) else rnn.hidden_size
    shape = (N, T, 3) if rnn.batch_first else (T, N, 3)
    x = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(rnn.num_layers * directions, N, out_size, generator=g, dtype=torch.float64,
                     requires_grad=True)
    hx = h0
    leaves = [x, h0]
    if isinstance(rnn, nn.LSTM):
        c0 = torch.randn(rnn.num_layers * directions, N, rnn.hidden_size, generator=g,
                         dtype=torch.float64, requires_grad=True)
        hx = (h0, c0)
        leaves.append(c0)
    data = x
    if packed:
        data = nn.utils.rnn.pack_padded_sequence(
            x, [T, 2, 4], batch_first=rnn.batch_first, enforce_sorted=False
        )
    return data, hx, leaves


def _flat(out):
    """(output, h_n[, c_n]) as tensors; a packed output as its data."""
    y, state = out
    y = y.data if isinstance(y, nn.utils.rnn.PackedSequence) else y
    return (y, *(state if isinstance(state, tuple) else (state,)))


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("case", list(RNN_CASES))
def test_p8_recurrent_stack_equals_single_layers_with_dropout(case, packed):
    """P8: one site per layer gap, (L, N, D*H) sequence first or the packed data, in order."""
    torch.manual_seed(0)
    rnn = RNN_CASES[case]().double().train()
    x, hx, leaves = _rnn_inputs(rnn, packed)
    params = [*leaves, *rnn.parameters()]
    ours, sites = _run(SEED, lambda: _flat(rnn(x, hx)))
    layers = _single_layers(rnn)
    theirs, ref_sites = _run(SEED, lambda: _flat(ref_stack(rnn, layers, x, hx)))
    _check_sites(sites, ref_sites, rnn.num_layers - 1)
    directions = 2 if rnn.bidirectional else 1
    out_size = rnn.proj_size if getattr(rnn, "proj_size", 0) else rnn.hidden_size
    gap = (12, directions * out_size) if packed else (6, 3, directions * out_size)
    assert all(s.shape == gap and s.source.startswith("torch.") for s in sites)
    _assert_same(ours, theirs, params, params)


def test_p8_recurrent_stack_unbatched_input():
    """P8: an unbatched (L, H_in) input goes through the same stack (torch adds the batch)."""
    torch.manual_seed(0)
    rnn = nn.GRU(3, 4, num_layers=2, dropout=0.5).double().train()
    x = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    params = [x, *rnn.parameters()]
    ours, sites = _run(SEED, lambda: rnn(x))
    layers, h0 = _single_layers(rnn), torch.zeros(2, 1, 4, dtype=torch.float64)
    theirs, _ = _run(SEED, lambda: tuple(
        t.squeeze(1) for t in ref_stack(rnn, layers, x.unsqueeze(1), h0)
    ))
    assert [s.shape for s in sites] == [(7, 1, 4)]
    _assert_same(ours, theirs, params, params)


# --- rate 0, eval mode, nothing silent, torch.compile -------------------------------------------


def _models():
    torch.manual_seed(0)
    return {
        "encoder-layer": (nn.TransformerEncoderLayer(E, HEADS, FF, dropout=0.3), (5, 2, E), 4),
        "mha": (_SelfAttention(nn.MultiheadAttention(E, HEADS, dropout=0.3)), (5, 2, E), 1),
        "lstm": (_Output(nn.LSTM(E, 4, num_layers=3, dropout=0.3)), (5, 2, E), 2),
        "gru": (_Output(nn.GRU(E, 4, num_layers=2, dropout=0.3)), (5, 2, E), 1),
    }


class _SelfAttention(nn.Module):
    def __init__(self, mha):
        super().__init__()
        self.mha = mha

    def forward(self, x):
        return self.mha(x, x, x)[0]


class _Output(nn.Module):
    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        return self.rnn(x)[0]


MODELS = pytest.mark.parametrize("name", ["encoder-layer", "mha", "lstm", "gru"])


@MODELS
def test_p8_torch_native_generator_would_have_been_used(name):
    """Control of the raising mode: outside the context torch's own layers draw and raise."""
    model, shape, _ = _models()[name]
    x = torch.randn(*shape)
    with RaiseOnNativeRandom(), pytest.raises(AssertionError, match="native random op"):
        model.train()(x)
    with RaiseOnNativeRandom():
        model.eval()(x)  # eval: no dropout, nothing drawn


@MODELS
def test_p8_eval_mode_is_torch_own_result_and_no_site(name):
    """P8: eval-mode calls take no number and give torch's own result."""
    model, shape, _ = _models()[name]
    model.eval()
    x = torch.randn(*shape)
    expected = model(x)
    out, sites = _run(SEED, lambda: model(x))
    assert sites == []
    assert torch.equal(out, expected)


@MODELS
def test_p8_rate_zero_in_training_is_numbered_and_changes_nothing(name):
    """P8: rate 0 in training takes a number (structure, not rates); the result is torch's."""
    model, shape, count = _models()[name]
    for module in model.modules():
        if isinstance(module, (nn.Dropout, nn.MultiheadAttention, nn.RNNBase)):
            if isinstance(module, nn.Dropout):
                module.p = 0.0
            else:
                module.dropout = 0.0
    model.train()
    x = torch.randn(*shape)
    expected = model(x)
    out, sites = _run(SEED, lambda: model(x))
    assert len(sites) == count and all(s.rate == 0.0 for s in sites)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)


@MODELS
def test_p8_compiled_model_gets_portable_masks(name):
    """P8: torch.compile'd Transformer/attention/recurrent models draw the context's masks."""
    model, shape, count = _models()[name]
    model.train()
    x = torch.randn(*shape)
    compiled = torch.compile(model, backend="eager")
    for seed in (1, 2):
        eager, eager_sites = _run(seed, lambda: model(x))
        out, sites = _run(seed, lambda: compiled(x))
        assert len(sites) == count
        assert [(s.shape, s.rate) for s in sites] == [(s.shape, s.rate) for s in eager_sites]
        torch.testing.assert_close(out, eager, rtol=1e-6, atol=1e-6)


def test_p8_doors_table_names_the_new_sites_and_refusals():
    """P8: DOORS lists MHA and the recurrent kernels as sites; alpha and native_dropout refused."""
    from dropout_ref.torch.intercept import DOORS

    handling = {door.name: door.handling for door in DOORS}
    assert handling["torch.nn.functional.multi_head_attention_forward"] == "site"
    assert handling["torch.lstm / gru / rnn_tanh / rnn_relu"] == "site"
    for refused in ("torch.nn.functional.alpha_dropout", "torch.native_dropout"):
        assert handling[refused] == "refused"
