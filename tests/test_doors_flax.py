"""Flax's attention-weight dropout inside ``dropout_ref.jax.portable_masks`` (SPEC P8).

Every comparison here is against a hand-written attention that calls our own
``dropout_layer`` at the site's offset ``j * 2**40``: deterministic (same seed,
same counters), so there is no false-alarm probability to budget; tolerances
only absorb float32 reassociation between Flax's einsums and ours.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
flax = pytest.importorskip("flax")

from flax import linen, nnx  # noqa: E402
from flax.linen import attention as linen_attention  # noqa: E402
from flax.nnx.nn import attention as nnx_attention  # noqa: E402

from dropout_ref.core.sites import site_offset  # noqa: E402
from dropout_ref.jax import dropout_layer, portable_masks  # noqa: E402
from dropout_ref.jax.intercept import DOORS  # noqa: E402

B, T, D, H = 3, 5, 8, 2
SEED = 11


class RandomDrawnError(RuntimeError):
    """Raised by the framework's generator when a test forbids it."""


@pytest.fixture
def x():
    return jax.random.normal(jax.random.key(0), (B, T, D), jnp.float32)


@pytest.fixture
def no_native_random(monkeypatch):
    """Make JAX's random draws behind Flax's dropouts raise (key derivation stays allowed)."""

    def refuse(*args, **kwargs):
        raise RandomDrawnError("jax.random drew a number")

    for name in ("bernoulli", "uniform", "bits"):
        monkeypatch.setattr(jax.random, name, refuse)


def hand_attention(p, x, rate, offset, noise_shape):
    """Multi-head attention as Flax defines it, with our dropout on the softmax weights."""
    heads = {n: jnp.einsum("btd,dhk->bthk", x, p[n]["kernel"]) + p[n]["bias"]
             for n in ("query", "key", "value")}
    q = heads["query"] / jnp.sqrt(heads["query"].shape[-1]).astype(x.dtype)
    w = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, heads["key"]))
    w = dropout_layer(w, rate, seed=SEED, offset=offset, noise_shape=noise_shape)
    out = jnp.einsum("bhqk,bkhd->bqhd", w, heads["value"])
    return jnp.einsum("bqhd,hdo->bqo", out, p["out"]["kernel"]) + p["out"]["bias"]


def hand_model(p, x, rate):
    """Site 0: a Dropout(0.2) on the input; site 1: the attention weights (broadcast)."""
    x = dropout_layer(x, 0.2, seed=SEED, offset=site_offset(0))
    return hand_attention(p, x, rate, site_offset(1), (1, 1, T, T))


def _loss(y):
    return jnp.sum(y * jnp.linspace(-1.0, 1.0, y.size).reshape(y.shape))


def _assert_trees_close(got, want, rtol):
    flat_got = dict(jax.tree_util.tree_leaves_with_path(got))
    flat_want = dict(jax.tree_util.tree_leaves_with_path(want))
    assert set(flat_got) == set(flat_want)
    for path, ref in flat_want.items():
        scale = max(float(jnp.abs(ref).max()), 1e-30)
        err = float(jnp.abs(flat_got[path] - ref).max())
        assert err <= rtol * scale, (jax.tree_util.keystr(path), err, scale)


# --- linen -----------------------------------------------------------------------------------


class LinenBlock(linen.Module):
    rate: float
    broadcast: bool = True

    @linen.compact
    def __call__(self, x, deterministic):
        x = linen.Dropout(0.2)(x, deterministic=deterministic)
        return linen.MultiHeadDotProductAttention(
            num_heads=H, qkv_features=D, dropout_rate=self.rate,
            broadcast_dropout=self.broadcast, name="attn",
        )(x, deterministic=deterministic)


def test_p8_linen_multihead_attention_equals_hand_attention_outputs_and_grads(x):
    block = LinenBlock(rate=0.4)
    params = block.init(jax.random.key(1), x, deterministic=True)
    rngs = {"dropout": jax.random.key(2)}

    def flax_loss(params):
        return _loss(block.apply(params, x, deterministic=False, rngs=rngs))

    with portable_masks(SEED) as ctx:
        y = block.apply(params, x, deterministic=False, rngs=rngs)
    with portable_masks(SEED):  # numbering restarts at 0: the same masks under jax.grad
        grads = jax.grad(flax_loss)(params)
    assert [(s.j, s.source) for s in ctx.sites] == [
        (0, "flax.linen.Dropout"), (1, "flax.linen.dot_product_attention_weights"),
    ]
    assert ctx.sites[1].shape == (B, H, T, T) and ctx.sites[1].rate == pytest.approx(0.4)
    assert ctx.sites[1].noise_shape == (1, 1, T, T)  # Flax's default broadcast_dropout=True

    p = params["params"]["attn"]
    want = hand_model(p, x, 0.4)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    hand_grads = jax.grad(lambda p: _loss(hand_model(p, x, 0.4)))(p)
    _assert_trees_close(grads["params"]["attn"], hand_grads, 1e-5)
    # The masks matter: eval differs from training.
    y_eval = block.apply(params, x, deterministic=True)
    assert float(jnp.abs(y_eval - y).max()) > 1e-3


def test_p8_nnx_multihead_attention_equals_hand_attention_outputs_and_grads(x):
    class NnxBlock(nnx.Module):
        def __init__(self, rngs):
            self.drop = nnx.Dropout(0.2, rngs=rngs)
            self.attn = nnx.MultiHeadAttention(
                num_heads=H, in_features=D, dropout_rate=0.4, decode=False, rngs=rngs)

        def __call__(self, x):
            return self.attn(self.drop(x))

    model = NnxBlock(nnx.Rngs(0, dropout=3))
    model.train()

    with portable_masks(SEED) as ctx:
        y = model(x)
    with portable_masks(SEED):
        grads = nnx.grad(lambda m: _loss(m(x)))(model)
    assert [(s.j, s.source) for s in ctx.sites] == [
        (0, "flax.nnx.Dropout"), (1, "flax.nnx.nn.attention.dot_product_attention_weights"),
    ]
    assert ctx.sites[1].shape == (B, H, T, T) and ctx.sites[1].noise_shape == (1, 1, T, T)

    p = nnx.to_pure_dict(nnx.state(model.attn, nnx.Param))
    p = {name: p[name] for name in ("query", "key", "value", "out")}
    np.testing.assert_allclose(y, hand_model(p, x, 0.4), rtol=1e-5, atol=1e-6)
    hand_grads = jax.grad(lambda p: _loss(hand_model(p, x, 0.4)))(p)
    got = nnx.to_pure_dict(grads)["attn"]
    _assert_trees_close({name: got[name] for name in p}, hand_grads, 1e-5)


@pytest.mark.parametrize("broadcast", [True, False])
def test_p8_linen_broadcast_dropout_sets_the_noise_shape(x, broadcast):
    attn = linen.MultiHeadDotProductAttention(
        num_heads=H, qkv_features=D, dropout_rate=0.5, broadcast_dropout=broadcast)
    params = attn.init(jax.random.key(1), x, deterministic=True)
    with portable_masks(SEED) as ctx:
        y = attn.apply(params, x, deterministic=False, rngs={"dropout": jax.random.key(2)})
    expected = (1, 1, T, T) if broadcast else None
    assert [s.noise_shape for s in ctx.sites] == [expected]
    np.testing.assert_allclose(
        y, hand_attention(params["params"], x, 0.5, 0, expected), rtol=1e-5, atol=1e-6)
    # Shared over batch and heads exactly when broadcast: every (b, h) slice drops alike.
    with portable_masks(SEED):
        w = linen_attention.dot_product_attention_weights(
            x.reshape(B, T, H, D // H), x.reshape(B, T, H, D // H), dropout_rate=0.5,
            broadcast_dropout=broadcast)
    zeros = np.asarray(w) == 0.0
    same_everywhere = bool((zeros == zeros[:1, :1]).all())
    # With element-wise masks, 3*2 slices of 25 weights at rate 0.5 coincide with
    # probability 2**-125 (the false alarm of this check).
    assert same_everywhere is broadcast


def test_p8_nnx_broadcast_false_is_element_wise(x):
    attn = nnx.MultiHeadAttention(
        num_heads=H, in_features=D, dropout_rate=0.5, broadcast_dropout=False, decode=False,
        rngs=nnx.Rngs(0))
    with portable_masks(SEED) as ctx:
        y = attn(x, deterministic=False)
    assert [(s.shape, s.noise_shape) for s in ctx.sites] == [((B, H, T, T), None)]
    p = nnx.to_pure_dict(nnx.state(attn, nnx.Param))
    np.testing.assert_allclose(y, hand_attention(p, x, 0.5, 0, None), rtol=1e-5, atol=1e-6)


def test_p8_dot_product_attention_functions_are_doors(x):
    q = k = v = x.reshape(B, T, H, D // H)
    for module, source in (
        (linen_attention, "flax.linen.dot_product_attention_weights"),
        (nnx_attention, "flax.nnx.nn.attention.dot_product_attention_weights"),
    ):
        eval_weights = module.dot_product_attention_weights(q, k, deterministic=True)
        with portable_masks(SEED) as ctx:
            out = module.dot_product_attention(q, k, v, dropout_rate=0.3)
        assert [(s.source, s.noise_shape) for s in ctx.sites] == [(source, (1, 1, T, T))]
        dropped = dropout_layer(eval_weights, 0.3, seed=SEED, offset=0, noise_shape=(1, 1, T, T))
        np.testing.assert_allclose(
            out, jnp.einsum("...hqk,...khd->...qhd", dropped, v), rtol=1e-5, atol=1e-6)


# --- the rate-0 and eval rules ---------------------------------------------------------------


def test_p8_eval_and_rate_zero_rules(x):
    q = k = v = x.reshape(B, T, H, D // H)
    linen_attn = linen.MultiHeadDotProductAttention(num_heads=H, qkv_features=D, dropout_rate=0.3)
    params = linen_attn.init(jax.random.key(1), x, deterministic=True)
    zero_rate = linen.MultiHeadDotProductAttention(num_heads=H, qkv_features=D)
    nnx_attn = nnx.MultiHeadAttention(
        num_heads=H, in_features=D, dropout_rate=0.3, decode=False, rngs=nnx.Rngs(0))
    nnx_zero = nnx.MultiHeadAttention(num_heads=H, in_features=D, decode=False, rngs=nnx.Rngs(0))
    with portable_masks(SEED) as ctx:
        # Eval: no number.
        linen_attn.apply(params, x, deterministic=True)
        nnx_attn(x, deterministic=True)
        linen_attention.dot_product_attention_weights(q, k, dropout_rate=0.3, deterministic=True)
        # Modules at rate 0: Flax passes deterministic=True (it does not resolve the flag).
        zero_rate.apply(params, x, deterministic=False)
        nnx_zero(x, deterministic=False)
        assert ctx.count == 0
        # The functions in training at rate 0: one site each, Flax's values unchanged (D2).
        w = linen_attention.dot_product_attention_weights(q, k, deterministic=False)
        w_nnx = nnx_attention.dot_product_attention_weights(q, k, deterministic=False)
        out = nnx_attention.dot_product_attention(q, k, v, deterministic=False)
    assert [(s.source, s.rate) for s in ctx.sites] == [
        ("flax.linen.dot_product_attention_weights", 0.0),
        ("flax.nnx.nn.attention.dot_product_attention_weights", 0.0),
        ("flax.nnx.dot_product_attention", 0.0),
    ]
    assert ctx.sites[2].shape == (B, H, T, T) and ctx.sites[2].noise_shape == (1, 1, T, T)
    np.testing.assert_array_equal(w, linen_attention.dot_product_attention_weights(q, k))
    np.testing.assert_array_equal(w_nnx, nnx_attention.dot_product_attention_weights(q, k))
    np.testing.assert_array_equal(out, nnx_attention.dot_product_attention(q, k, v))


# --- modules that imported the function by name ----------------------------------------------


def _module_importing_by_name(name: str, source: str) -> types.ModuleType:
    module = types.ModuleType(name)
    # The test writes a user module that imports Flax's function by name.
    exec(
        f"from {source} import dot_product_attention_weights\n"
        "def weights(q, k, rng):\n"
        "    return dot_product_attention_weights(\n"
        "        q, k, dropout_rng=rng, dropout_rate=0.5, deterministic=False)\n",
        module.__dict__,
    )
    return module


@pytest.mark.parametrize("source", ["flax.linen.attention", "flax.nnx.nn.attention"])
def test_p8_a_module_that_imported_the_function_by_name_is_seen(x, monkeypatch, source):
    name = f"_dropout_ref_user_attention_{source.split('.')[1]}"
    user = _module_importing_by_name(name, source)
    monkeypatch.setitem(sys.modules, name, user)
    original = user.dot_product_attention_weights
    q = x.reshape(B, T, H, D // H)
    rng = jax.random.key(5)
    native = user.weights(q, q, rng)
    with portable_masks(SEED) as ctx:
        assert user.dot_product_attention_weights is not original
        inside = user.weights(q, q, rng)
    assert user.dot_product_attention_weights is original  # restored on exit
    assert len(ctx.sites) == 1 and ctx.sites[0].noise_shape == (1, 1, T, T)
    eval_weights = original(q, q, deterministic=True)
    want = dropout_layer(eval_weights, 0.5, seed=SEED, offset=0, noise_shape=(1, 1, T, T))
    np.testing.assert_array_equal(inside, want)
    assert not np.array_equal(inside, native)  # Flax's own mask is another one


def test_p8_a_module_imported_inside_the_context_keeps_working_after_it(x, monkeypatch):
    name = "_dropout_ref_user_attention_late"
    q = x.reshape(B, T, H, D // H)
    rng = jax.random.key(5)
    native = linen_attention.dot_product_attention_weights(
        q, q, dropout_rng=rng, dropout_rate=0.5, deterministic=False)
    with portable_masks(SEED) as ctx:
        late = _module_importing_by_name(name, "flax.linen.attention")  # binds the door
        monkeypatch.setitem(sys.modules, name, late)
        late.weights(q, q, rng)
    assert ctx.count == 1
    # Outside any context the door is Flax's original: same weights as native Flax.
    np.testing.assert_array_equal(late.weights(q, q, rng), native)
    with portable_masks(SEED) as again:
        late.weights(q, q, rng)
    assert again.count == 1


# --- nothing silent ---------------------------------------------------------------------------


def test_p8_attention_never_draws_flax_random_numbers(x, no_native_random):
    linen_attn = linen.MultiHeadDotProductAttention(num_heads=H, qkv_features=D, dropout_rate=0.3)
    params = linen_attn.init(jax.random.key(1), x, deterministic=True)
    nnx_attn = nnx.MultiHeadAttention(
        num_heads=H, in_features=D, dropout_rate=0.3, decode=False, rngs=nnx.Rngs(0))
    q = x.reshape(B, T, H, D // H)
    rngs = {"dropout": jax.random.key(2)}
    with portable_masks(SEED) as ctx:
        linen_attn.apply(params, x, deterministic=False, rngs=rngs)
        nnx_attn(x, deterministic=False)
        # No dropout_rng at all: Flax's branch would need one; the door never reads it.
        nnx_attention.dot_product_attention_weights(q, q, dropout_rate=0.3)
    assert ctx.count == 3
    # The same patch outside the context: Flax's own attention dropout draws, and raises.
    with pytest.raises(RandomDrawnError):
        linen_attn.apply(params, x, deterministic=False, rngs=rngs)
    with pytest.raises(RandomDrawnError):
        nnx_attn(x, deterministic=False)


def test_p8_attention_doors_are_declared():
    names = {door.name for door in DOORS if door.handling == "site"}
    for name in ("flax.linen.dot_product_attention_weights", "flax.linen.dot_product_attention",
                 "flax.linen.MultiHeadDotProductAttention",
                 "flax.nnx.nn.attention.dot_product_attention_weights",
                 "flax.nnx.dot_product_attention", "flax.nnx.MultiHeadAttention"):
        assert name in names


@pytest.mark.parametrize("rate", [0.3, 0.0])
def test_p9_attention_doors_under_jit_equal_the_eager_context(x, no_native_random, rate):
    """SPEC P9: a jitted attention call inside an eagerly entered context numbers its site
    when it runs (the k-th call drops what the k-th eager call would), the rate-0 shortcut of
    nnx.dot_product_attention included; jax.random is made to raise throughout."""
    q = x.reshape(B, T, H, D // H)

    def both(q):
        w = linen_attention.dot_product_attention_weights(
            q, q, dropout_rate=0.3, deterministic=False
        )
        out = nnx_attention.dot_product_attention(q, q, q, dropout_rate=rate, deterministic=False)
        return w, out

    traced = jax.jit(both)
    with portable_masks(SEED) as eager_ctx:
        eager = [both(q) for _ in range(2)]
    with portable_masks(SEED) as compiled_ctx:
        compiled = [traced(q) for _ in range(2)]
    assert eager_ctx.count == compiled_ctx.count == 4
    for (w_e, o_e), (w_c, o_c) in zip(eager, compiled, strict=True):
        np.testing.assert_array_equal(np.asarray(w_c) == 0, np.asarray(w_e) == 0)
        np.testing.assert_allclose(np.asarray(w_c), np.asarray(w_e), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(np.asarray(o_c), np.asarray(o_e), rtol=1e-5, atol=1e-6)
