"""SPEC G1 for torch: ``torch.compile(fullgraph=True)``, ``torch.export`` and ``torch.func``.

``dropout_layer`` reaches them as ``torch.library`` custom operators
(``dropout_ref::select_scaled``, ``philox_dropout``, ``keyed_dropout``) with
fake, autograd and vmap registrations. Each ``torch.compile`` costs seconds on
a 2-core CPU, so each test compiles one small function and checks several
clauses on it.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from dropout_ref.core.philox import numpy_keep_mask  # noqa: E402
from dropout_ref.core.thresholds import word_threshold  # noqa: E402
from dropout_ref.torch import MLP, dropout_layer  # noqa: E402


def saved_numels(fn, *args):
    """Return the element counts of the tensors autograd saves while running ``fn(*args)``."""
    saved = []

    def pack(t):
        saved.append((t.numel(), t.dtype))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*args)
    return out, saved


@pytest.mark.slow
def test_g1_d8_d9_default_mode_compiles_fullgraph_with_autograd():
    """G1 default mode: fullgraph compile, forward and backward; D8 gradient on the same mask;
    D9 torch.manual_seed reproduces the compiled draw and later calls draw fresh masks."""
    f = torch.compile(lambda x: dropout_layer(x, 0.5), fullgraph=True)
    x = torch.randn(6, 37).requires_grad_(True)
    torch.manual_seed(11)
    out = f(x)
    out.backward(torch.full_like(out, 3.0))
    keep = out.detach() != 0
    assert 0 < keep.sum() < keep.numel()
    torch.testing.assert_close(out.detach()[keep], x.detach()[keep] * 2.0, rtol=0, atol=0)
    expected_grad = torch.where(keep, torch.tensor(6.0), torch.tensor(0.0))
    assert torch.equal(x.grad, expected_grad)
    torch.manual_seed(11)
    assert torch.equal(f(x).detach(), out.detach())
    assert not torch.equal(f(x).detach(), out.detach())  # a fresh mask (P[same] = 2**-222)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_g1_p1_seed_mode_compiled_equals_eager_bit_for_bit(dtype):
    """G1 seed mode: the compiled output equals the eager one bit for bit, at offsets that are
    not multiples of 4 (P3, P4), and the gradient is keep * G / (1 - p) (D8)."""
    f = torch.compile(lambda x, o: dropout_layer(x, 0.3, seed=2**63 + 5, offset=o),
                      fullgraph=True, dynamic=False)
    x = torch.randn(5, 19, dtype=dtype).requires_grad_(True)
    for offset in (0, 3, 4 * (2**32 - 3) + 1):
        out = f(x, offset)
        eager = dropout_layer(x.detach(), 0.3, seed=2**63 + 5, offset=offset)
        assert torch.equal(out.detach(), eager)
        keep = numpy_keep_mask(x.shape, word_threshold(0.3), 2**63 + 5, offset)
        np.testing.assert_array_equal(out.detach().float().numpy() != 0, keep)
    x.grad = None
    out = f(x, 3)
    out.sum().backward()
    scale = torch.tensor(1 / 0.7, dtype=torch.float32)
    expected = torch.where(out.detach() != 0, scale.to(dtype), torch.zeros((), dtype=dtype))
    assert torch.equal(x.grad, expected)


def test_g3_seed_mode_saves_at_most_the_native_mask_for_backward(monkeypatch):
    """G3/D8 seed mode: where one fused kernel draws the mask (Triton, the compiled CPU
    kernel), backward recomputes it from (key, counters) and autograd saves no tensor; where
    it is drawn op by op (a small CPU tensor), regenerating it costs as much as drawing it,
    so the 1-byte mask is saved, as the default mode and native dropout save theirs."""
    from dropout_ref.torch.fast import custom_ops

    x = torch.randn(4099).requires_grad_(True)
    out, saved = saved_numels(lambda t: dropout_layer(t, 0.5, seed=7, offset=1), x)
    assert saved == [(4099, torch.bool)]
    out.backward(torch.ones_like(out))
    assert torch.equal(x.grad, torch.where(out.detach() != 0, 2.0, 0.0))
    monkeypatch.setattr(custom_ops, "mask_is_fused", lambda x, offset: True)
    x.grad = None
    fused_out, saved = saved_numels(lambda t: dropout_layer(t, 0.5, seed=7, offset=1), x)
    assert saved == [] and torch.equal(fused_out, out)
    fused_out.backward(torch.ones_like(fused_out))
    assert torch.equal(x.grad, torch.where(out.detach() != 0, 2.0, 0.0))
    _, saved = saved_numels(lambda t: dropout_layer(t, 0.5), x)
    assert saved == [(4099, torch.bool)]


def test_d8_seed_mode_double_backward():
    """D8 twice: backward is the operator again, so it is differentiable too."""
    x = torch.randn(33, dtype=torch.float64).requires_grad_(True)
    g = torch.randn(33, dtype=torch.float64).requires_grad_(True)
    out = dropout_layer(x, 0.25, seed=3)
    (gx,) = torch.autograd.grad(out, x, g, create_graph=True)
    (gg,) = torch.autograd.grad(gx.sum(), g)
    keep = out.detach() != 0
    assert torch.equal(gg, torch.where(keep, torch.tensor(1 / 0.75, dtype=torch.float64), 0.0))


@pytest.mark.parametrize("op, args", [
    ("philox_dropout", lambda x: (x, 7, 1, 3, 2, word_threshold(0.4), 1 / 0.6)),
    ("select_scaled", lambda x: (x, x > 0, 2.0)),
    ("keyed_dropout", lambda x: (x, torch.tensor([12345]), word_threshold(0.4), 1 / 0.6)),
])
def test_g1_custom_operators_pass_opcheck(op, args):
    """G1: torch's own check of the operators' schema, fake (meta), autograd registration and
    AOT dispatch."""
    x = torch.randn(3, 41, requires_grad=True)
    torch.library.opcheck(getattr(torch.ops.dropout_ref, op).default, args(x))


def test_g1_export_keeps_the_portable_operator():
    """G1: torch.export gives a graph holding dropout_ref::philox_dropout that runs bit for bit
    like eager."""

    class Layer(torch.nn.Module):
        def forward(self, x):
            return dropout_layer(x, 0.5, seed=3, offset=5)

    x = torch.randn(4, 10)
    program = torch.export.export(Layer(), (x,))
    assert "dropout_ref.philox_dropout" in program.graph_module.code
    assert torch.equal(program.module()(x), dropout_layer(x, 0.5, seed=3, offset=5))


def test_g1_vmap_seed_mode_is_the_per_slice_call():
    """G1/torch.func: vmap of the seed mode equals calling each slice (the same mask for each,
    as the per-slice calls have the same seed and offset)."""
    x = torch.randn(3, 2, 9)
    out = torch.vmap(lambda r: dropout_layer(r, 0.5, seed=4, offset=2), in_dims=1)(x)
    for i in range(2):
        assert torch.equal(out[i], dropout_layer(x[:, i], 0.5, seed=4, offset=2))


def test_g1_vmap_default_mode_needs_a_randomness_choice():
    """G1/torch.func: the default mode draws from torch's generator, so vmap's default
    randomness="error" raises torch's clear error; "same" gives one mask for all, "different"
    one per batch element."""
    x = torch.randn(3, 50)
    with pytest.raises(RuntimeError, match="randomness"):
        torch.vmap(lambda r: dropout_layer(r, 0.5))(x)
    out = torch.vmap(lambda r: dropout_layer(r, 0.5), randomness="same")(torch.ones(3, 50))
    assert torch.equal(out[0], out[1]) and torch.equal(out[0], out[2])
    assert set(out.unique().tolist()) == {0.0, 2.0}
    # "different": a mask per batch element (P[two of 3 masks of 50 equal] < 3 * 2**-50).
    out = torch.vmap(lambda r: dropout_layer(r, 0.5), randomness="different")(torch.ones(3, 50))
    assert not torch.equal(out[0], out[1]) and not torch.equal(out[1], out[2])
    assert set(out.unique().tolist()) == {0.0, 2.0}


@pytest.mark.slow
def test_g1_m2_compiled_course_mlp_trains_and_evaluates():
    """G1 with the course MLP (M1, M2): the compiled module takes SGD steps in train() mode
    (default-mode dropout, forward and backward) and its eval() logits match eager."""
    model = MLP(num_inputs=20, num_hiddens1=16, num_hiddens2=12, rng=0)
    compiled = torch.compile(model, fullgraph=True)
    X = torch.randn(64, 20, generator=torch.Generator().manual_seed(0))
    y = torch.arange(64) % 10
    compiled.train()
    losses = []
    for _ in range(3):
        loss = F.cross_entropy(compiled(X), y)
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                assert p.grad is not None and torch.isfinite(p.grad).all()
                p -= 0.5 * p.grad
                p.grad = None
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    compiled.eval()
    torch.testing.assert_close(compiled(X), model(X))
    compiled.train()
    torch.testing.assert_close(compiled(X, mask_seed=9), model(X, mask_seed=9))


def test_g1_torch_func_grad_vjp_jacrev_and_vmap_of_grad():
    """G1/torch.func: grad, vjp, jacrev and vmap(grad) of the seed mode give keep / (1 - p)
    on the forward's mask (D8); the Jacobian is diagonal."""
    x = torch.randn(3, 9)
    keep = dropout_layer(torch.ones(9), 0.5, seed=4) != 0
    expected = torch.where(keep, 2.0, 0.0)
    g = torch.func.grad(lambda r: dropout_layer(r, 0.5, seed=4).sum())(x[0])
    assert torch.equal(g, expected)
    out, vjp = torch.func.vjp(lambda r: dropout_layer(r, 0.5, seed=4), x[0])
    assert torch.equal(vjp(torch.ones(9))[0], expected) and torch.equal(out != 0, keep)
    assert torch.equal(torch.func.jacrev(lambda r: dropout_layer(r, 0.5, seed=4))(x[0]),
                       torch.diag(expected))
    grads = torch.func.vmap(torch.func.grad(lambda r: dropout_layer(r, 0.5, seed=4).sum()))(x)
    assert torch.equal(grads, expected.expand(3, 9))


def test_g1_torch_func_grad_of_the_default_mode():
    """torch.func.grad of the default mode: the gradient is 1 / (1 - p) on a fresh mask drawn
    from torch's generator (D8, D9); under vmap a randomness choice is needed, as for any
    random op, and "different" gives each batch element its own mask."""
    x = torch.randn(4, 64)
    torch.manual_seed(2)
    g = torch.func.grad(lambda r: dropout_layer(r, 0.25).sum())(x[0])
    torch.manual_seed(2)
    assert torch.equal(torch.func.grad(lambda r: dropout_layer(r, 0.25).sum())(x[0]), g)
    assert set(g.unique().tolist()) == {0.0, float(torch.tensor(1 / 0.75))}
    grads = torch.func.vmap(torch.func.grad(lambda r: dropout_layer(r, 0.25).sum()),
                            randomness="different")(x)
    assert not torch.equal(grads[0], grads[1])
