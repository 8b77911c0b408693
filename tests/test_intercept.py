"""``dropout_ref.<backend>.portable_masks(seed)``: the framework's own dropouts draw portable masks.

SPEC P8 (call-order sites), M6 (the course's concise MLPs, unmodified, against
our MLP), X4 (Hugging Face's GPT-2 against our GPT). Every framework test skips
where its framework is missing.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest

from dropout_ref.core.sites import SITE_STRIDE, active, site_offset, validate_context_seed
from dropout_ref.models.mlp_spec import DROPOUT_OFFSETS, MLPSpec
from dropout_ref.porting.compare import backend_step_function, loss_difference, weight_differences

COURSE = MLPSpec()  # 784 -> 256 -> 256 -> 10, rates 0.2 / 0.5


def _backend(name: str):
    from dropout_ref.core.registry import get_backend

    try:
        return get_backend(name).module
    except ImportError as exc:
        pytest.skip(str(exc))


def _batch(n: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n).astype(np.int64)


def _probe_weights(seed: int = 1) -> dict[str, np.ndarray]:
    # Larger than the init, so both dropout layers move the loss (a wrong mask shows).
    from dropout_ref.porting.port_check import probe_weights

    return probe_weights(COURSE, seed)


# --- the framework-free part ------------------------------------------------------------------


def test_p8_site_offsets_are_the_models_numbering():
    assert site_offset(0) == 0 and site_offset(1) == SITE_STRIDE == 2**40
    assert DROPOUT_OFFSETS == (site_offset(0), site_offset(1))
    from dropout_ref.models import gpt_config

    assert gpt_config.SITE_STRIDE == SITE_STRIDE  # X4's sites are P8's numbering
    with pytest.raises(ValueError, match="site index j"):
        site_offset(2**24)


@pytest.mark.parametrize(
    ("seed", "error"),
    [(None, TypeError), (1.0, TypeError), (True, TypeError), ("3", TypeError),
     (-1, ValueError), (2**64, ValueError)],
)
def test_p8_bad_seed_names_seed(seed, error):
    with pytest.raises(error, match="seed"):
        validate_context_seed(seed)


@pytest.mark.parametrize("name", ["torch", "tensorflow", "mxnet", "jax"])
def test_p8_every_portable_masks_refuses_a_bad_seed_before_patching(name):
    backend = _backend(name)
    with pytest.raises(ValueError, match="seed"):
        backend.portable_masks(-1)
    with pytest.raises(TypeError, match="seed"):
        backend.portable_masks(0.5)
    assert active() is None


# --- torch -------------------------------------------------------------------------------------


@pytest.fixture
def torch_b():
    return _backend("torch")


def test_p8_torch_sites_in_call_order_rate0_counted_eval_not(torch_b):
    import torch
    from torch import nn

    x = torch.randn(4, 6)
    net = nn.Sequential(nn.Dropout(0.3), nn.Dropout(0.0), nn.Dropout(0.5))
    with torch_b.portable_masks(11) as ctx:
        net.train()
        out = net(x)
        net.eval()
        assert torch.equal(net(x), x)  # eval: identity, no number
    assert [s.j for s in ctx.sites] == [0, 1, 2]
    assert [s.rate for s in ctx.sites] == [0.3, 0.0, 0.5]
    expected = torch_b.dropout_layer(x, 0.3, seed=11, offset=0)
    expected = torch_b.dropout_layer(expected, 0.5, seed=11, offset=2 * 2**40)
    assert torch.equal(out, expected)


def test_p8_site_log_is_bounded_numbering_is_not(torch_b):
    import torch
    import torch.nn.functional as F

    from dropout_ref.core.sites import MAX_LOGGED_SITES

    x = torch.ones(3)
    with torch_b.portable_masks(0) as ctx:
        for _ in range(MAX_LOGGED_SITES + 2):
            last = F.dropout(x, 0.5, training=True)
    assert ctx.count == MAX_LOGGED_SITES + 2 and len(ctx.sites) == MAX_LOGGED_SITES
    offset = (MAX_LOGGED_SITES + 1) * 2**40
    assert torch.equal(last, torch_b.dropout_layer(x, 0.5, seed=0, offset=offset))


def test_p8_torch_restores_after_exception_and_refuses_nesting(torch_b):
    import torch
    import torch.nn.functional as F

    x = torch.ones(1000)
    with pytest.raises(ZeroDivisionError):
        with torch_b.portable_masks(1):
            assert active() is not None
            raise ZeroDivisionError
    assert active() is None
    torch.manual_seed(0)
    native = F.dropout(x, 0.5, training=True)
    torch.manual_seed(0)
    assert torch.equal(F.dropout(x, 0.5, training=True), native)  # torch's own generator again
    ctx = torch_b.portable_masks(1)
    with ctx:
        with pytest.raises(RuntimeError, match="already active"):
            with torch_b.portable_masks(2):
                pass
        with pytest.raises(RuntimeError, match="already active"):
            ctx.__enter__()
        y = F.dropout(x, 0.5, training=True)
    assert torch.equal(y, torch_b.dropout_layer(x, 0.5, seed=1, offset=0))
    assert active() is None


def test_p8_torch_other_threads_keep_native_dropout(torch_b):
    import torch
    import torch.nn.functional as F

    x = torch.ones(4096)
    portable = torch_b.dropout_layer(x, 0.5, seed=5, offset=0)
    seen = {}

    def other():
        seen["active"] = active()
        seen["out"] = F.dropout(x, 0.5, training=True)

    with torch_b.portable_masks(5) as ctx:
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        mine = F.dropout(x, 0.5, training=True)
    assert seen["active"] is None
    assert len(ctx.sites) == 1 and torch.equal(mine, portable)
    # The other thread drew from torch's generator: equal to the portable mask with
    # probability 2**-4096 (false-alarm probability of this check).
    assert not torch.equal(seen["out"], portable)


def test_p8_torch_channel_dropout_and_refused_ones(torch_b):
    import torch
    import torch.nn.functional as F

    x = torch.randn(2, 3, 4, 5)
    with torch_b.portable_masks(9):
        y = F.dropout2d(x, 0.5, training=True)
        with pytest.raises(NotImplementedError, match="alpha_dropout"):
            F.alpha_dropout(x, 0.5, training=True)
        assert torch.equal(F.alpha_dropout(x, 0.5, training=False), x)
    assert torch.equal(y, torch_b.dropout_layer(x, 0.5, seed=9, offset=0, noise_shape=(2, 3, 1, 1)))


def test_p8_torch_compiled_model_gets_portable_masks(torch_b):
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 16), nn.Dropout(0.5), nn.Linear(16, 16))
    compiled = torch.compile(net, backend="eager")
    x = torch.randn(4, 16)
    compiled(x)  # compiled outside the context: native dropout in there
    for seed in (1, 2):
        with torch_b.portable_masks(seed) as ctx:
            y = compiled(x)
        expected = net[2](torch_b.dropout_layer(net[0](x), 0.5, seed=seed, offset=0))
        torch.testing.assert_close(y, expected, rtol=1e-6, atol=1e-6)
        assert len(ctx.sites) == 1


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda torch, x, train: torch.nn.AlphaDropout(0.3).train(train)(x), "alpha_dropout"),
        (lambda torch, x, train: torch.nn.FeatureAlphaDropout(0.3).train(train)(x),
         "feature_alpha_dropout"),
        (lambda torch, x, train: torch.native_dropout(x, 0.3, train), "torch.native_dropout"),
    ],
    ids=["alpha", "feature-alpha", "native"],
)
def test_p8_torch_refuses_dropouts_it_cannot_reproduce(torch_b, call, needle):
    """P8: alpha dropouts and torch.native_dropout raise in training, naming the door.

    (multi_head_attention_forward and the stacked recurrent kernels are sites now:
    tests/test_doors_torch.py.)
    """
    import torch

    x = torch.randn(2, 3, 4)
    with torch_b.portable_masks(1) as ctx:
        with pytest.raises(NotImplementedError, match=needle):
            call(torch, x, True)
        call(torch, x, False)  # eval mode: torch's own function, nothing refused, no number
    assert ctx.sites == []


def test_p8_torch_inplace_dropout_writes_the_input_with_its_gradient(torch_b):
    import torch
    import torch.nn.functional as F

    x = torch.randn(4, 6, requires_grad=True)
    h = x * 1.0
    with torch_b.portable_masks(2):
        out = F.dropout(h, 0.5, training=True, inplace=True)
    assert out is h
    assert torch.equal(out, torch_b.dropout_layer(x.detach(), 0.5, seed=2, offset=0))
    out.sum().backward()
    assert torch.equal(x.grad, torch_b.dropout_layer(torch.ones(4, 6), 0.5, seed=2, offset=0))


@pytest.mark.parametrize("mask", ["causal", "bool", "additive"])
def test_p8_torch_sdpa_attention_dropout_is_one_site(torch_b, mask):
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4, generator=g) for _ in range(3))
    scores = q @ k.transpose(-1, -2) / 2.0
    kwargs = {}
    if mask == "causal":
        kwargs["is_causal"] = True
        scores = scores.masked_fill(~torch.ones(5, 5, dtype=torch.bool).tril(), float("-inf"))
    elif mask == "bool":
        m = torch.rand(5, 5, generator=g) > 0.3
        m.fill_diagonal_(True)
        kwargs["attn_mask"] = m
        scores = scores.masked_fill(~m, float("-inf"))
    else:
        m = torch.randn(2, 1, 5, 5, generator=g)
        kwargs["attn_mask"] = m
        scores = scores + m
    with torch_b.portable_masks(3) as ctx:
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.2, **kwargs)
        plain = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, **kwargs)
    assert [(s.j, s.shape) for s in ctx.sites] == [(0, (2, 3, 5, 5))]  # dropout_p 0: no site
    probs = torch_b.dropout_layer(torch.softmax(scores, -1), 0.2, seed=3, offset=0)
    torch.testing.assert_close(out, probs @ v, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(plain, torch.softmax(scores, -1) @ v, rtol=1e-5, atol=1e-6)


def _course_step(module, backend: str, lr: float = 0.5):
    from dropout_ref.porting.user_model import from_user_model

    net, loss, trainer = module.course_model(lr)
    convert = _converters(backend)

    def train_step(model, X, y, lr_):
        assert lr_ == lr  # the course's trainer holds its own lr
        return module.train_batch(model, loss, trainer, *convert(X, y))

    return net, from_user_model(net, train_step, backend=backend)


def _converters(backend: str):
    if backend == "torch":
        import torch

        return lambda X, y: (torch.from_numpy(X), torch.from_numpy(y))
    if backend == "tensorflow":
        import tensorflow as tf

        return lambda X, y: (tf.constant(X), tf.constant(y))
    from dropout_ref.mxnet.framework import mx

    make = mx.np.array if mx.util.is_np_array() else mx.nd.array
    return lambda X, y: (make(X), make(y))


def _assert_same_step(step, reference, seed: int = 7, weights=None) -> None:
    weights = weights or _probe_weights()
    X, y = _batch()
    loss, new = step({k: v.copy() for k, v in weights.items()}, X, y, 0.5, seed)
    ref_loss, ref_new = reference(weights, X, y, 0.5, seed)
    assert loss_difference(loss, ref_loss) <= 1e-5, (loss, ref_loss)
    diffs = weight_differences(new, ref_new)
    assert max(diffs.values()) <= 1e-5, diffs
    # The masks matter: another seed gives another loss (numpy reference: cheap).
    other, _ = backend_step_function("numpy", COURSE)(weights, X, y, 0.5, seed + 1)
    assert loss_difference(other, ref_loss) > 1e-5


def test_m6_torch_course_concise_step_equals_our_mlp(torch_b):
    from tests.course_concise import torch_concise

    _, step = _course_step(torch_concise, "torch")
    _assert_same_step(step, backend_step_function("torch", COURSE))


def test_m6_tensorflow_course_concise_step_equals_our_mlp():
    _backend("tensorflow")
    from tests.course_concise import tensorflow_concise

    net, step = _course_step(tensorflow_concise, "tensorflow")
    net.build((None, 784))
    _assert_same_step(step, backend_step_function("tensorflow", COURSE))


def _synthetic(n: int = 96):
    rng = np.random.default_rng(3)
    images = rng.random((n, 784), dtype=np.float32)
    labels = rng.integers(0, 10, n).astype(np.int64)
    return SimpleNamespace(train_images=images, train_labels=labels, num_classes=10, name="rand")


def test_m6_port_check_accepts_unmodified_torch_model_and_names_swapped_rates(torch_b):
    from torch import nn

    from dropout_ref.porting.port_check import check_port
    from dropout_ref.porting.user_model import from_user_model

    def course_net(p1, p2):
        return nn.Sequential(
            nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Dropout(p1),
            nn.Linear(256, 256), nn.ReLU(), nn.Dropout(p2), nn.Linear(256, 10),
        )

    # The model itself is accepted: check_port drives it inside portable_masks.
    good = check_port(course_net(0.2, 0.5), dataset=_synthetic(), steps=2, batch_size=32)
    assert good.ok, good.summary()
    bad = check_port(from_user_model(course_net(0.5, 0.2)), dataset=_synthetic(), steps=2,
                     batch_size=32)
    assert not bad.ok
    assert (bad.first_divergence.step, bad.first_divergence.clause) == (0, "M1")
    # A third dropout, on the logits: site 2 draws at offset 2 * 2**40; named M4.
    logits_dropout = nn.Sequential(*course_net(0.2, 0.5), nn.Dropout(0.5))
    bad = check_port(logits_dropout, dataset=_synthetic(), steps=2, batch_size=32)
    assert (bad.first_divergence.step, bad.first_divergence.clause) == (0, "M4")


# --- Hugging Face GPT-2 ------------------------------------------------------------------------


def _hf_gpt2(impl: str):
    import torch

    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(
        vocab_size=64, n_positions=16, n_embd=32, n_layer=2, n_head=4,
        resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1, attn_implementation=impl,
        bos_token_id=0, eos_token_id=0,
    )
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config).float()
    assert model.config._attn_implementation == impl
    return model


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_x4_hf_gpt2_train_logits_and_grads_equal_our_gpt(torch_b, impl):
    import torch

    from dropout_ref.models.gpt_config import GPTConfig
    from dropout_ref.numpy import GPT as NUMPY_GPT

    hf = _hf_gpt2(impl).train()
    weights = {k: v.detach().numpy().copy() for k, v in hf.state_dict().items()}
    config = GPTConfig(vocab_size=64, block_size=16, n_layer=2, n_head=4, n_embd=32,
                       dropout="gpt2-hf")
    ours = torch_b.GPT(config, weights=weights).train()
    idx = torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(1))
    with torch_b.portable_masks(5) as ctx:
        hf_logits = hf(idx).logits
    kinds = [s.source.rsplit(".", 1)[-1] for s in ctx.sites]
    attn = "dropout" if impl == "eager" else "scaled_dot_product_attention"
    assert kinds == ["dropout", attn, "dropout", "dropout", attn, "dropout", "dropout"]
    assert ctx.sites[1].shape == (2, 4, 10, 10)
    our_logits = ours(idx, mask_seed=5)
    numpy_logits = NUMPY_GPT(config, weights=weights)(idx.numpy(), training=True, mask_seed=5)
    scale = float(our_logits.detach().abs().max())
    assert float((hf_logits - our_logits).detach().abs().max()) <= 1e-5 * scale
    assert np.abs(hf_logits.detach().numpy() - numpy_logits).max() <= 1e-5 * scale
    if impl == "sdpa":  # our other backends' GPTs, once (tensorflow's is slow to import)
        try:
            tf_gpt = _backend("tensorflow").GPT(config, weights=weights)
        except pytest.skip.Exception:
            tf_gpt = None
        if tf_gpt is not None:
            tf_logits = np.asarray(tf_gpt(idx.numpy(), training=True, mask_seed=5))
            assert np.abs(hf_logits.detach().numpy() - tf_logits).max() <= 1e-5 * scale
    # The masks matter: eval logits differ from the train logits.
    hf.eval()
    with torch.no_grad():
        assert float((hf(idx).logits - hf_logits).abs().max()) > 1e-3 * scale
    (hf_logits * torch.linspace(-1, 1, 64)).sum().backward()
    (our_logits * torch.linspace(-1, 1, 64)).sum().backward()
    theirs, mine = dict(hf.named_parameters()), dict(ours.named_parameters())
    assert set(mine) <= set(theirs)
    for name, param in mine.items():
        g, ref = theirs[name].grad, param.grad
        assert float((g - ref).abs().max()) <= 1e-4 * max(float(ref.abs().max()), 1e-30), name


# --- TensorFlow and Keras ----------------------------------------------------------------------


@pytest.fixture
def tf_b():
    return _backend("tensorflow")


def test_p8_tensorflow_sites_keras_and_tf_nn(tf_b):
    import tensorflow as tf

    x = tf.random.stateless_uniform((4, 6, 3), seed=(1, 2))
    drop, zero = tf.keras.layers.Dropout(0.3), tf.keras.layers.Dropout(0.0)
    spatial = tf.keras.layers.SpatialDropout1D(0.4)
    with tf_b.portable_masks(4) as ctx:
        a = drop(x, training=True)
        b = zero(x, training=True)
        assert drop(x, training=False) is x or np.array_equal(drop(x, training=False), x)
        c = tf.nn.dropout(x, 0.25, noise_shape=[4, 1, 3])
        d = spatial(x, training=True)
        e = tf.keras.random.dropout(x, 0.5)
    assert [s.j for s in ctx.sites] == [0, 1, 2, 3, 4]
    layer = tf_b.dropout_layer
    np.testing.assert_array_equal(a, layer(x, 0.3, seed=4, offset=0))
    np.testing.assert_array_equal(b, x)
    shared = [4, 1, 3]
    np.testing.assert_array_equal(c, layer(x, 0.25, seed=4, offset=2 * 2**40, noise_shape=shared))
    np.testing.assert_array_equal(d, layer(x, 0.4, seed=4, offset=3 * 2**40, noise_shape=shared))
    np.testing.assert_array_equal(e, layer(x, 0.5, seed=4, offset=4 * 2**40))


def test_p8_p9_tensorflow_restores_serves_graphs_refuses_alpha(tf_b):
    import keras
    import tensorflow as tf

    originals = (tf.nn.dropout, keras.layers.Dropout.call)
    x = tf.ones((8, 8))
    with pytest.raises(ValueError):
        with tf_b.portable_masks(2):
            raise ValueError("boom")
    assert (tf.nn.dropout, keras.layers.Dropout.call) == originals

    @tf.function
    def graph(t):
        return tf.nn.dropout(t, 0.5)

    with tf_b.portable_masks(2):
        traced = graph(x)  # P9: a tf.function traced inside the context draws site 0
        with pytest.raises(NotImplementedError, match="AlphaDropout"):
            keras.layers.AlphaDropout(0.2)(x, training=True)
    assert (tf.nn.dropout, keras.layers.Dropout.call) == originals
    np.testing.assert_array_equal(traced, tf_b.dropout_layer(x, 0.5, seed=2, offset=0))


# --- MXNet -------------------------------------------------------------------------------------


@pytest.fixture
def mx_b():
    return _backend("mxnet")


def test_p8_mxnet_sites_npx_nd_gluon(mx_b):
    from dropout_ref.mxnet.framework import autograd, gluon, mx

    x = mx.np.array(np.random.default_rng(0).random((4, 6), dtype=np.float32))
    xn = x.as_nd_ndarray()
    zero = gluon.nn.Dropout(0.0)
    with mx_b.portable_masks(8) as ctx:
        assert np.array_equal(mx.npx.dropout(x, p=0.5).asnumpy(), x.asnumpy())  # predict mode
        with autograd.record():
            a = mx.npx.dropout(x, p=0.5)
            b = mx.nd.Dropout(xn, p=0.3, axes=(1,))
            c = zero(xn)
            d = gluon.nn.Dropout(0.4)(xn)
    assert [s.j for s in ctx.sites] == [0, 1, 2, 3]
    layer = mx_b.dropout_layer
    np.testing.assert_array_equal(a.asnumpy(), layer(x, 0.5, seed=8, offset=0).asnumpy())
    np.testing.assert_array_equal(
        b.asnumpy(), layer(x, 0.3, seed=8, offset=2**40, noise_shape=(4, 1)).asnumpy()
    )
    np.testing.assert_array_equal(c.asnumpy(), x.asnumpy())
    np.testing.assert_array_equal(d.asnumpy(), layer(x, 0.4, seed=8, offset=3 * 2**40).asnumpy())


def test_p8_mxnet_restores_and_refuses_hybridized(mx_b):
    from dropout_ref.mxnet.framework import autograd, gluon, mx

    originals = (mx.npx.dropout, mx.nd.Dropout, gluon.nn.Dropout.hybrid_forward)
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Dropout(0.5))
    net.hybridize()
    with mx_b.portable_masks(1):
        with pytest.raises(RuntimeError, match="hybridize"):
            with autograd.record():
                net(mx.nd.ones((2, 3)))
    assert (mx.npx.dropout, mx.nd.Dropout, gluon.nn.Dropout.hybrid_forward) == originals


@pytest.mark.parametrize("numpy_semantics", [False, True], ids=["nd", "set_np"])
def test_m6_mxnet_course_concise_step_equals_our_mlp(mx_b, numpy_semantics):
    import contextlib

    from dropout_ref.mxnet.framework import mx
    from tests.course_concise import mxnet_concise

    # The course runs under npx.set_np(); scoped here so other tests keep MXNet's default.
    scope = (
        mx.util.np_array(True) if numpy_semantics else contextlib.nullcontext()
    )
    with mx.util.np_shape(numpy_semantics), scope:
        net, step = _course_step(mxnet_concise, "mxnet")
        zeros = mx.np.zeros if numpy_semantics else mx.nd.zeros
        net(zeros((1, 784)))  # Gluon's deferred init: shapes known
        _assert_same_step(step, backend_step_function("mxnet", COURSE))


# --- JAX / Flax --------------------------------------------------------------------------------


@pytest.fixture
def jax_b():
    return _backend("jax")


def _nnx_course_mlp(p1: float = 0.2, p2: float = 0.5):
    from flax import nnx

    class Net(nnx.Module):
        """The course MLP in Flax NNX's idiom, with Flax's own Dropout layers."""

        def __init__(self, rngs):
            self.lin1 = nnx.Linear(784, 256, rngs=rngs)
            self.drop1 = nnx.Dropout(p1, rngs=rngs)
            self.lin2 = nnx.Linear(256, 256, rngs=rngs)
            self.drop2 = nnx.Dropout(p2, rngs=rngs)
            self.lin3 = nnx.Linear(256, 10, rngs=rngs)

        def __call__(self, x):
            x = self.drop1(nnx.relu(self.lin1(x.reshape(len(x), -1))))
            x = self.drop2(nnx.relu(self.lin2(x)))
            return self.lin3(x)

    return Net(nnx.Rngs(0))


def test_p8_jax_nnx_and_linen_sites(jax_b):
    import jax
    import jax.numpy as jnp
    from flax import linen, nnx

    x = jnp.asarray(np.random.default_rng(0).random((4, 6, 3), dtype=np.float32))
    a_layer = nnx.Dropout(0.3, rngs=nnx.Rngs(0))
    b_layer = nnx.Dropout(0.0, broadcast_dims=(1,), rngs=nnx.Rngs(0))
    c_layer = nnx.Dropout(0.4, broadcast_dims=(1,), rngs=nnx.Rngs(0))
    linen_layer = linen.Dropout(0.5, deterministic=False)
    originals = (nnx.Dropout.__call__, linen.Dropout.__call__)
    with jax_b.portable_masks(6) as ctx:
        a = a_layer(x, deterministic=False)
        b = b_layer(x, deterministic=False)
        assert a_layer(x, deterministic=True) is x
        c = c_layer(x, deterministic=False)
        d = linen_layer.apply({}, x)
        with pytest.raises(RuntimeError, match="vmap"):  # P9: jit is served, vmap refused
            jax.vmap(lambda t: a_layer(t, deterministic=False))(x)
    assert [s.j for s in ctx.sites] == [0, 1, 2, 3]
    layer = jax_b.dropout_layer
    np.testing.assert_array_equal(a, layer(x, 0.3, seed=6, offset=0))
    np.testing.assert_array_equal(b, x)
    np.testing.assert_array_equal(c, layer(x, 0.4, seed=6, offset=2 * 2**40, noise_shape=(4, 1, 3)))
    np.testing.assert_array_equal(d, layer(x, 0.5, seed=6, offset=3 * 2**40))
    assert (nnx.Dropout.__call__, linen.Dropout.__call__) == originals


def test_m6_jax_nnx_course_step_equals_our_mlp(jax_b):
    from dropout_ref.porting.user_model import from_user_model

    step = from_user_model(_nnx_course_mlp())
    # Against the numpy oracle (our jax MLP agrees with it, M6; compiling its step here
    # would double this test's time).
    _assert_same_step(step, backend_step_function("numpy", COURSE))


USER_MODULE = """
from torch import nn


def build():
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Dropout({p1}),
        nn.Linear(256, 256), nn.ReLU(), nn.Dropout({p2}), nn.Linear(256, 10),
    )
"""


@pytest.mark.parametrize(("rates", "status"), [((0.2, 0.5), 0), ((0.5, 0.2), 1)])
def test_m6_compare_cli_user_model(torch_b, tmp_path, capsys, rates, status):
    import json

    from dropout_ref.cli import main as cli

    path = tmp_path / "my_port.py"
    path.write_text(USER_MODULE.format(p1=rates[0], p2=rates[1]))
    code = cli.main([
        "compare", "--user-model", f"{path}:build", "--steps", "2", "--dataset", "digits",
        "--out", str(tmp_path / "out"), "--no-progress", "--format", "json",
    ])
    document = json.loads(capsys.readouterr().out)
    assert code == status
    assert document["meta"]["backends"] == ["numpy", "user-model"]
    summary = document["summary"]["user-model"]
    if status == 0:
        assert summary["first_step_loss_diff"] <= 1e-5 and summary["first_step_weight_diff"] <= 1e-5
    else:
        assert any("user-model" in v for v in document["violations"])


@pytest.mark.parametrize(
    ("target", "needle"),
    [("nocolon", "module:function"), ("no_such_module_xyz:build", "no_such_module_xyz"),
     ("json:no_such_function", "no_such_function")],
)
def test_compare_cli_bad_user_model_exits_2(target, needle, tmp_path, capsys):
    from dropout_ref.cli import main as cli

    code = cli.main(["compare", "--user-model", target, "--out", str(tmp_path), "--no-progress"])
    assert code == 2
    assert needle in capsys.readouterr().err


def test_compare_cli_user_model_is_for_the_mlp(tmp_path, capsys):
    from dropout_ref.cli import main as cli

    code = cli.main(["compare", "--model", "gpt", "--user-model", "json:loads",
                     "--out", str(tmp_path), "--no-progress"])
    assert code == 2
    assert "portable_masks" in capsys.readouterr().err


# --- threads (module-attribute patches) ----------------------------------------------------------


def test_p8_threads_each_their_own_context_or_native(tf_b):
    import tensorflow as tf

    x = tf.ones((64, 64))
    original = tf.nn.dropout
    barrier = threading.Barrier(2, timeout=60)
    results: dict[str, object] = {}

    def worker(name: str, seed: int | None):
        try:
            if seed is None:
                barrier.wait()  # the main thread's context is open now
                results[name] = (active(), tf.nn.dropout(x, 0.5))
                barrier.wait()
                return
            with tf_b.portable_masks(seed) as ctx:
                barrier.wait()
                results[name] = (ctx.sites, tf.nn.dropout(x, 0.5))
                barrier.wait()
        except BaseException as exc:  # surfaced by the asserts below
            results[name] = exc

    for other_seed in (None, 2):
        thread = threading.Thread(target=worker, args=("other", other_seed))
        thread.start()
        with tf_b.portable_masks(1) as ctx:
            barrier.wait()
            mine = tf.nn.dropout(x, 0.5)
            barrier.wait()
        thread.join()
        assert not isinstance(results["other"], BaseException), results["other"]
        first, theirs = results["other"]
        assert [s.j for s in ctx.sites] == [0]
        np.testing.assert_array_equal(mine, tf_b.dropout_layer(x, 0.5, seed=1, offset=0))
        if other_seed is None:
            # No context there: TensorFlow's own generator, equal to the portable mask
            # with probability 2**-4096 (the false-alarm probability of this check).
            assert first is None
            assert not np.array_equal(theirs, tf_b.dropout_layer(x, 0.5, seed=1, offset=0))
        else:
            assert [s.j for s in first] == [0]
            np.testing.assert_array_equal(theirs, tf_b.dropout_layer(x, 0.5, seed=2, offset=0))
    assert tf.nn.dropout is original  # the last context out restored it
