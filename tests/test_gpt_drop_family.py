"""SPEC V3: DropPath and DropHead in the GPT of every backend.

The numpy GPT is the oracle: with ``mask_seed`` every backend's train-mode logits
equal it to 1e-5 relative in float32 (as X4). The site numbers are checked by
recording the offsets every site is called with.
"""

from __future__ import annotations

import numpy as np
import pytest

from dropout_ref.core.registry import get_backend
from dropout_ref.core.sites import site_offset
from dropout_ref.models.gpt_config import GPTConfig, family_sites, init_weights, weight_shapes

SIZES = {"vocab_size": 29, "block_size": 8, "n_layer": 3, "n_head": 4, "n_embd": 16}
CONFIG = GPTConfig(**SIZES, dropout="bert", drop_path=0.5, drop_head=0.4)
TRAIN_RTOL = 1e-5
SEED = 12345


def loud_weights(config: GPTConfig = CONFIG, seed: int = 3) -> dict[str, np.ndarray]:
    """GPT-2's init scaled up (logits of order 1), with non-zero biases."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, value in init_weights(config, rng).items():
        if name.endswith(".bias"):
            value = rng.normal(0, 0.05, value.shape)
        elif ".ln_" in name:
            value = 1 + rng.normal(0, 0.1, value.shape)
        else:
            value = value * 5
        out[name] = np.asarray(value, np.float32)
    return out


def tokens(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, SIZES["vocab_size"], size=(6, 8))


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def forward(model, idx, *, training, mask_seed=None):
    from dropout_ref import forward_numpy

    return forward_numpy(model, idx, training=training, mask_seed=mask_seed)


@pytest.fixture(params=["torch", "tensorflow", "jax", "mxnet"])
def backend(request):
    """Each backend with a GPT; skipped where its framework does not import."""
    try:
        get_backend(request.param)
    except ImportError as exc:
        pytest.skip(str(exc))
    return request.param


def test_v3_train_logits_equal_the_numpy_oracle(backend):
    """V3 + X4: with mask_seed, train-mode logits equal the numpy GPT's to 1e-5."""
    from dropout_ref.numpy import GPT as ORACLE

    weights, idx = loud_weights(), tokens()
    want = ORACLE(CONFIG, weights)(idx, training=True, mask_seed=SEED)
    model = get_backend(backend).module.GPT(CONFIG, weights)
    got = forward(model, idx, training=True, mask_seed=SEED)
    assert relative(got, want) < TRAIN_RTOL
    # The V3 sites act: the same model without them gives other train logits.
    plain = ORACLE(GPTConfig(**SIZES, dropout="bert"), weights)
    assert relative(plain(idx, training=True, mask_seed=SEED), want) > 1e-3


def test_v3_eval_is_deterministic_and_ignores_the_family(backend):
    """X3 with V3 on: eval logits equal the model with every rate 0."""
    weights, idx = loud_weights(), tokens(1)
    off = GPTConfig(**SIZES, dropout=0.0)
    model = get_backend(backend).module.GPT(CONFIG, weights)
    reference = get_backend(backend).module.GPT(off, weights)
    np.testing.assert_allclose(
        forward(model, idx, training=False), forward(reference, idx, training=False),
        rtol=0, atol=0,
    )  # fmt: skip


def _record(monkeypatch, module, names):
    calls = []
    for name in names:
        original = getattr(module, name)

        def recorder(x, p, *, _name=name, _original=original, **kwargs):
            calls.append((_name, kwargs.get("offset"), p))
            return _original(x, p, **kwargs)

        monkeypatch.setattr(module, name, recorder)
    return calls


def test_v3_sites_come_after_x4_in_forward_order(monkeypatch):
    """V3: X4's sites keep their numbers; the family's are 1 + 3L + 3l + (0, 1, 2)."""
    import dropout_ref.models.numpy.gpt as numpy_gpt

    calls = _record(monkeypatch, numpy_gpt, ("dropout_layer", "drop_head", "drop_path"))
    numpy_gpt.GPT(CONFIG, loud_weights())(tokens(), training=True, mask_seed=SEED)
    x4 = [offset // site_offset(1) for name, offset, _ in calls if name == "dropout_layer"]
    assert x4 == list(range(1 + 3 * CONFIG.n_layer))
    family = [
        (name, offset // site_offset(1), p) for name, offset, p in calls if name != "dropout_layer"
    ]
    expected = []
    for layer in range(CONFIG.n_layer):
        head, path_attn, path_mlp = family_sites(CONFIG, layer)
        rate = float(np.linspace(0, 0.5, CONFIG.n_layer)[layer])
        expected += [("drop_head", head, 0.4)]
        # linspace's first block has rate 0: its DropPath calls are skipped (identity, D2).
        expected += [("drop_path", path_attn, rate), ("drop_path", path_mlp, rate)] if rate else []
    assert family == expected
    assert min(j for _, j, _ in family) >= 1 + 3 * CONFIG.n_layer
    # Forward order: a block's DropHead, then its two DropPaths, block after block.
    assert [j for _, j, _ in family] == sorted(j for _, j, _ in family)


def test_v3_per_block_list_and_timm_rule():
    """V3: a scalar r gives linspace(0, r, n_layer); a list gives its entries."""
    assert CONFIG.drop_path_rates == tuple(np.linspace(0, 0.5, 3).tolist())
    listed = GPTConfig(**SIZES, drop_path=[0.1, 0.0, 0.3])
    assert listed.drop_path_rates == (0.1, 0.0, 0.3)
    assert GPTConfig(**listed.to_dict()) == listed
    assert GPTConfig(**CONFIG.to_dict()) == CONFIG


def test_v3_defaults_off_and_weights_unchanged():
    """V3: both default to off; the HF weight names and shapes do not change."""
    plain = GPTConfig(**SIZES)
    assert plain.drop_path == 0.0 and plain.drop_head == 0.0
    assert set(plain.drop_path_rates) == {0.0}
    assert "drop_path" not in plain.to_dict() and "drop_head" not in plain.to_dict()
    assert weight_shapes(plain) == weight_shapes(CONFIG)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"drop_path": 1.5}, ValueError, "drop_path must satisfy"),
        ({"drop_path": [0.1, 0.2]}, ValueError, "n_layer=3, got 2"),
        ({"drop_path": "0.1"}, TypeError, "drop_path must be a rate"),
        ({"drop_path": [0.1, 0.2, -1]}, ValueError, r"drop_path\[2\]"),
        ({"drop_head": True}, TypeError, "drop_head"),
        ({"drop_head": float("nan")}, ValueError, "drop_head"),
    ],
)
def test_v3_bad_config_is_named(kwargs, error, words):
    """V3: a bad drop_path/drop_head raises naming the field and the value."""
    with pytest.raises(error, match=words):
        GPTConfig(**SIZES, **kwargs)


def test_v3_torch_gradient_flows_through_the_family():
    """V3 in training: the loss's gradient reaches every block through DropPath/DropHead."""
    torch = pytest.importorskip("torch")
    from dropout_ref.torch import GPT

    model = GPT(CONFIG, loud_weights())
    model.train()
    logits = model(torch.as_tensor(tokens()), mask_seed=SEED)
    logits.square().mean().backward()
    for layer in range(CONFIG.n_layer):
        grad = model.transformer["h"][layer].mlp.c_fc.weight.grad
        assert grad is not None and torch.isfinite(grad).all()


def test_v3_jax_jit_one_trace_for_every_seed():
    """V3 + S2 under nnx.jit: a traced mask_seed, one trace, the oracle's logits per seed."""
    pytest.importorskip("jax")
    import jax.numpy as jnp
    from flax import nnx

    from dropout_ref.jax import GPT
    from dropout_ref.numpy import GPT as ORACLE

    weights, idx = loud_weights(), tokens(2)
    model = GPT(CONFIG, weights)
    model.train()
    traces = []

    @nnx.jit
    def step(model, idx, seed):
        traces.append(1)  # runs at trace time only
        return model(idx, mask_seed=seed)

    for seed in (SEED, SEED + 1):
        got = np.asarray(step(model, jnp.asarray(idx), jnp.uint32(seed)))
        want = ORACLE(CONFIG, weights)(idx, training=True, mask_seed=seed)
        assert relative(got, want) < TRAIN_RTOL
    assert len(traces) == 1


def test_v3_torch_compile_one_graph_for_every_seed():
    """V3 + S2 under torch.compile(fullgraph=True): one compilation, the oracle's logits."""
    torch = pytest.importorskip("torch")
    from dropout_ref.numpy import GPT as ORACLE
    from dropout_ref.torch import GPT

    weights, idx = loud_weights(), tokens(2)
    model = GPT(CONFIG, weights)
    model.train()
    compiles = []

    def counting_backend(gm, example_inputs):
        compiles.append(gm)
        return gm.forward

    torch._dynamo.reset()
    step = torch.compile(
        lambda i, s: model(i, mask_seed=s), backend=counting_backend, fullgraph=True
    )
    for seed in (SEED, SEED + 1):
        got = step(torch.as_tensor(idx), torch.tensor(seed)).detach().numpy()
        want = ORACLE(CONFIG, weights)(idx, training=True, mask_seed=seed)
        assert relative(got, want) < TRAIN_RTOL
    assert len(compiles) == 1


def test_v3_framework_generator_reproducible_and_fresh(backend):
    """D9 for V3 sites (mask_seed=None): the framework's seeding repeats a run; draws differ."""
    weights, idx = loud_weights(), tokens(3)
    module = get_backend(backend).module

    def run_twice(seed):
        get_backend(backend).arrays.seed_global(seed)  # JAX: the kit's key stream
        model = module.GPT(CONFIG, weights)
        return [forward(model, idx, training=True) for _ in range(2)]

    first, second = run_twice(4)
    again, _ = run_twice(4)
    np.testing.assert_array_equal(first, again)
    # Two training calls draw fresh masks: equal logits would need every site's mask equal.
    assert not np.array_equal(first, second)
