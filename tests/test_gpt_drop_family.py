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


@pytest.mark.one_environment
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


# --- SPEC S1, S3, V3: runtime rates of DropPath and DropHead ---------------------------------

#: The family off in the config: the call's rates= must reach V3's sites.
PLAIN = GPTConfig(**SIZES, dropout="bert")
#: Float32-exact rates (JAX's runtime rates are float32): drop_path 0.5 gives 0, 0.25, 0.5.
CALL = {"drop_path": 0.5, "drop_head": 0.375}
BUILT = GPTConfig(**SIZES, dropout="bert", drop_path=0.5, drop_head=0.375)


def train_logits(backend, model, idx, seed, rates=None):
    """Train-mode logits with portable masks and this call's ``rates=``, in each idiom (X3)."""
    if backend == "numpy":
        return model(idx, training=True, mask_seed=seed, rates=rates)
    if backend == "torch":
        import torch

        model.train()
        with torch.no_grad():
            return model(torch.as_tensor(idx), mask_seed=seed, rates=rates).numpy()
    if backend == "tensorflow":
        import tensorflow as tf

        return model(tf.constant(idx), training=True, mask_seed=seed, rates=rates).numpy()
    if backend == "jax":
        model.train()
        return np.asarray(model(idx, mask_seed=seed, rates=rates))
    from dropout_ref.mxnet.framework import autograd, mnp

    with autograd.record(train_mode=True):
        return model(mnp.array(idx, dtype="int32"), seed, rates).asnumpy()


def runtime_scalar(backend, value):
    """``value`` as the backend's 0-d runtime rate (S1); MXNet runs eagerly: a float."""
    if backend == "torch":
        import torch

        return torch.tensor(value)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.constant(value, tf.float32)
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.float32(value)
    return value


def same_bits(a, b) -> bool:
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.fixture(params=["numpy", "torch", "tensorflow", "jax", "mxnet"])
def any_backend(request):
    """Each backend with a GPT, the numpy oracle included."""
    try:
        get_backend(request.param)
    except ImportError as exc:
        pytest.skip(str(exc))
    return request.param


def test_s1_s3_v3_call_rates_of_the_family_equal_the_built_model(any_backend):
    """S1, S3, V3: rates={"drop_path", "drop_head"} equal the model built with them, bit for bit.

    As Python floats, as 0-d runtime tensors (drop_path one scalar r: block l at
    r * linspace(0, 1, L)[l]; or one tensor per block), and per-block lists; the model
    is not rebuilt. The masks are the oracle's (X4's 1e-5).
    """
    backend = any_backend
    module = get_backend(backend).module
    weights, idx = loud_weights(), tokens(4)
    model = module.GPT(PLAIN, weights)
    want = train_logits(backend, module.GPT(BUILT, weights), idx, SEED)
    assert same_bits(train_logits(backend, model, idx, SEED, CALL), want)
    per_block = [runtime_scalar(backend, r) for r in BUILT.drop_path_rates]
    head = runtime_scalar(backend, CALL["drop_head"])
    # (Keras refuses a call argument mixing tensors and floats: the float list goes alone.)
    scalar = runtime_scalar(backend, CALL["drop_path"])
    floats = list(BUILT.drop_path_rates)
    for path, rate in ((scalar, head), (per_block, head), (floats, CALL["drop_head"])):
        rates = {"drop_path": path, "drop_head": rate}
        assert same_bits(train_logits(backend, model, idx, SEED, rates), want)
    # One name at a time: the other keeps the config's rate (here 0: off).
    only_head = module.GPT(GPTConfig(**SIZES, dropout="bert", drop_head=0.375), weights)
    assert same_bits(
        train_logits(backend, model, idx, SEED, {"drop_head": head}),
        train_logits(backend, only_head, idx, SEED),
    )
    # The rates acted (not the plain model's logits), and the masks are the oracle's.
    from dropout_ref.numpy import GPT as ORACLE

    oracle = ORACLE(BUILT, weights)(idx, training=True, mask_seed=SEED)
    assert relative(want, oracle) < TRAIN_RTOL
    assert relative(train_logits(backend, model, idx, SEED), want) > 1e-3
    # The call's rates also override a config that has the family on: rate 0 turns it off.
    on = module.GPT(BUILT, weights)
    off = {"drop_path": 0.0, "drop_head": 0.0}
    assert same_bits(
        train_logits(backend, on, idx, SEED, off), train_logits(backend, model, idx, SEED)
    )


@pytest.mark.parametrize(
    "rates, error, words",
    [
        ({"drop_path": [0.1, 0.2]}, ValueError, r"rates\['drop_path'\] needs one rate per block"),
        ({"drop_path": "0.1"}, TypeError, r"rates\['drop_path'\] must be a rate"),
        ({"drop_path": 1.5}, ValueError, r"rates\['drop_path'\]"),
        ({"drop_path": [0.1, 0.2, -0.5]}, ValueError, r"rates\['drop_path'\]\[2\]"),
        ({"drop_heads": 0.1}, ValueError, "unknown site 'drop_heads'"),
    ],
)
def test_s1_v3_bad_call_rates_are_named(rates, error, words):
    """D1 for V3's per-call rates: the name of the rate and the value, before any work."""
    from dropout_ref.models.gpt_config import forward_rates

    with pytest.raises(error, match=words):
        forward_rates(PLAIN, rates)


def test_s1_v3_runtime_call_rates_checks_on_the_host():
    """S1: a compiled step's rates are checked before they become tensors, named."""
    from dropout_ref.models.gpt_config import runtime_call_rates

    assert runtime_call_rates(PLAIN, None, float) is None
    got = runtime_call_rates(PLAIN, {"attn": 0.5, "drop_path": 0.5}, lambda r: ("t", r))
    # X2's sites all become runtime values (the config's bert 0.1 where not given); V3's
    # only when given.
    assert got == {
        "embd": ("t", 0.1), "attn": ("t", 0.5), "resid": ("t", 0.1),
        "drop_path": tuple(("t", r) for r in (0.0, 0.25, 0.5)),
    }  # fmt: skip
    with pytest.raises(ValueError, match=r"rates\['drop_head'\]"):
        runtime_call_rates(PLAIN, {"drop_head": 1.5}, float)
    with pytest.raises(ValueError, match=r"rates\['drop_path'\]\[1\]"):
        runtime_call_rates(PLAIN, {"drop_path": [0.0, float("nan"), 0.1]}, float)


#: Per-step family rates of the compiled-step tests (float32-exact), the last turning them off.
STEP_RATES = [
    {"drop_path": 0.5, "drop_head": 0.375},
    {"drop_path": 0.25, "drop_head": 0.125},
    {"drop_path": 0.0, "drop_head": 0.0},
]


@pytest.mark.one_environment
def test_s1_s3_v3_torch_compiled_step_one_graph_for_every_family_rate(monkeypatch):
    """S1, S3: compiled_gpt_train_step takes V3's rates at run time: one Dynamo graph, and
    the losses of the eager step of the model built with each step's rates."""
    pytest.importorskip("torch")
    from torch._dynamo.utils import counters

    from dropout_ref.course.torch import gpt_training
    from dropout_ref.torch import GPT

    # aot_eager: Dynamo and AOTAutograd decide recompilations; no Inductor C++ build.
    monkeypatch.setattr(gpt_training, "COMPILE_BACKEND", "aot_eager")
    weights, idx = loud_weights(), tokens(5)
    targets = np.roll(idx, -1, axis=1)
    compiled = GPT(PLAIN, weights)
    opt = gpt_training.gpt_optimizer(compiled, lr=0.05)
    before = counters["stats"]["unique_graphs"]
    for step, rates in enumerate(STEP_RATES):
        eager = GPT(GPTConfig(**SIZES, dropout="bert", **rates), compiled.get_weights())
        want = gpt_training.gpt_train_step(
            eager, gpt_training.gpt_optimizer(eager, lr=0.05), idx, targets, mask_seed=step
        )
        got = gpt_training.compiled_gpt_train_step(
            compiled, opt, idx, targets, mask_seed=step, rates=rates
        )
        assert got == pytest.approx(want, rel=1e-6), step
        np.testing.assert_allclose(
            compiled.get_weights()["transformer.h.2.mlp.c_fc.weight"],
            eager.get_weights()["transformer.h.2.mlp.c_fc.weight"], rtol=1e-5, atol=1e-7,
        )  # fmt: skip
    assert counters["stats"]["unique_graphs"] - before == 1


@pytest.mark.one_environment
def test_s1_s3_v3_torch_compile_forward_equals_the_built_model_bit_for_bit():
    """S1: under torch.compile(fullgraph=True), tensor rates of V3's sites give the built
    model's train logits bit for bit, one graph for every value."""
    torch = pytest.importorskip("torch")
    from torch._dynamo.utils import counters

    from dropout_ref.torch import GPT

    weights, idx = loud_weights(), tokens(6)
    model = GPT(PLAIN, weights).train()
    torch._dynamo.reset()
    logits = torch.compile(
        lambda i, s, r: model(i, mask_seed=s, rates=r), fullgraph=True, backend="aot_eager"
    )
    before = counters["stats"]["unique_graphs"]
    for rates in STEP_RATES:
        built = GPT(GPTConfig(**SIZES, dropout="bert", **rates), weights).train()
        tensors = {name: torch.tensor(r, dtype=torch.float64) for name, r in rates.items()}
        with torch.no_grad():
            got = logits(torch.as_tensor(idx), torch.tensor(SEED), tensors)
            assert torch.equal(got, built(torch.as_tensor(idx), mask_seed=SEED)), rates
    assert counters["stats"]["unique_graphs"] - before == 1


@pytest.mark.one_environment
def test_s1_s3_v3_tf_function_traces_once_for_every_family_rate():
    """S1: the Keras GPT in tf.function (XLA) with V3's rates as tensors: one trace, the
    built model's logits; the (graph-mode) train step retraces for no value either."""
    tf = pytest.importorskip("tensorflow")
    from dropout_ref.course.tensorflow import gpt_training
    from dropout_ref.tensorflow import GPT

    weights, idx = loud_weights(), tokens(7)
    model = GPT(PLAIN, weights)

    @tf.function(jit_compile=True)
    def logits(idx, seed, rates):
        return model(idx, training=True, mask_seed=seed, rates=rates)

    for rates in STEP_RATES:
        built = GPT(GPTConfig(**SIZES, dropout="bert", **rates), weights)
        tensors = {name: tf.constant(r, tf.float64) for name, r in rates.items()}
        got = logits(tf.constant(idx), tf.constant(SEED, tf.int64), tensors).numpy()
        want = built(tf.constant(idx), training=True, mask_seed=SEED).numpy()
        # XLA fuses the float32 arithmetic its own way: the masks are the same (X4's bound).
        assert relative(got, want) < TRAIN_RTOL, rates
    assert logits.experimental_get_tracing_count() == 1
    opt = gpt_training.gpt_optimizer(model, lr=0.05)
    targets = np.roll(idx, -1, axis=1)
    for step, rates in enumerate(STEP_RATES):
        assert np.isfinite(
            gpt_training.gpt_train_step(model, opt, idx, targets, mask_seed=step, rates=rates)
        )
    assert gpt_training._compiled_step(model, opt).experimental_get_tracing_count() == 1


def test_s1_s3_v3_jax_step_one_program_for_every_family_rate():
    """S1: the nnx.jit GPT step with V3's rates traced (float32): one program, and the
    losses of the op-by-op step of the model built with each step's rates."""
    pytest.importorskip("flax")
    import jax.numpy as jnp

    from dropout_ref.course.jax import gpt_training as training
    from dropout_ref.jax import GPT

    idx = tokens(8)
    targets = np.roll(idx, -1, axis=1)
    # A config of its own (n_embd 20): its program is not in the jit cache yet.
    sizes = {**SIZES, "n_embd": 20}
    compiled = GPT(GPTConfig(**sizes, dropout="bert"), rng=0)
    opt = training.gpt_optimizer(compiled, lr=0.05)
    seeded = training._compiled_seeded_step.jitted_fn
    before = seeded._cache_size()
    for step, rates in enumerate(STEP_RATES):
        built = GPT(GPTConfig(**sizes, dropout="bert", **rates), compiled.get_weights())
        built.train()
        want = training._step(
            built, training.gpt_optimizer(built, lr=0.05), jnp.asarray(idx),
            jnp.asarray(targets), step, None,
        )  # fmt: skip
        got = training.gpt_train_step(compiled, opt, idx, targets, mask_seed=step, rates=rates)
        assert got == pytest.approx(float(want), rel=1e-6), step
    assert seeded._cache_size() - before == 1


def test_s3_v3_cli_dict_schedule_drives_drop_path_and_drop_head(tmp_path, capsys):
    """S3 through the CLI: --dropout-schedule NAME=SCHEDULE,... drives DropPath/DropHead and
    metrics.json records each step's rates (embd, attn, resid, drop_path, drop_head)."""
    pytest.importorskip("torch")
    import json

    from dropout_ref.cli.main import main

    out = tmp_path / "run"
    code = main([
        "train", "--model", "gpt", "--backend", "torch", "--no-progress", "--out", str(out),
        "--dropout", "0.1", "--drop-path", "0.2", "--drop-head", "0.1",
        "--dropout-schedule", "drop_path=early:constant:2,drop_head=late:1:0.3",
        "--steps", "3", "--eval-interval", "3", "--eval-batches", "1", "--batch-size", "2",
        "--block-size", "8", "--n-layer", "2", "--n-head", "2", "--n-embd", "8",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    rows = json.loads((out / "metrics.json").read_text())["evals"]
    f32 = lambda v: float(np.float32(v))  # noqa: E731
    base = [f32(0.1)] * 3
    assert rows[-1]["dropout_rates"] == [
        [*base, f32(0.2), 0.0], [*base, f32(0.2), f32(0.3)], [*base, 0.0, f32(0.3)]
    ]
    assert main([
        "train", "--model", "gpt", "--backend", "torch", "--no-progress",
        "--out", str(tmp_path / "bad"), "--dropout-schedule", "drop_path=early:2,bogus=1",
    ]) == 2  # fmt: skip
    assert "bogus=1" in capsys.readouterr().err


def test_drop_family_char_example_runs_with_tiny_settings(tmp_path):
    """examples/drop_family_char.py --quick: six runs (S3 early, S4 on_plateau, V3 DropPath and
    DropHead), their JSON, table and figure, so the experiment of docs/drop-family.md cannot rot."""
    pytest.importorskip("torch")
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(root / "examples" / "drop_family_char.py"), "--quick",
         "--noise-seeds", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    document = json.loads((tmp_path / "drop_family_char.json").read_text())
    runs = document["runs"]
    assert list(runs) == ["none", "constant", "early", "drop_path", "drop_head", "on_plateau"]
    assert set(document["noise_runs"]) == {"none/seed1", "constant/seed1"}
    for run in [*runs.values(), *document["noise_runs"].values()]:
        rows = run["rows"]
        assert [row["step"] for row in rows] == [0, 2, 4]
        best = min(row["val_bpc"] for row in rows)
        assert run["summary"]["best_val_bpc"] == best
        assert run["summary"]["gap"] == rows[-1]["val_bpc"] - rows[-1]["train_bpc"]
    assert runs["drop_path"]["config"]["drop_path"] == 0.1
    assert runs["drop_head"]["config"]["drop_head"] == 0.1
    f32 = float(np.float32(0.1))
    # S3 early over 4 steps: 0.1 for the first quarter (one step), then 0, at every X2 site.
    early = [rates for row in runs["early"]["rows"] for rates in row["dropout_rates"]]
    assert early == [[f32] * 3, [0.0] * 3, [0.0] * 3, [0.0] * 3]
    # S4 on_plateau heard each evaluation: every step's rate is 0.1 + 0.05 k, k >= 0.
    plateau = [r[0] for row in runs["on_plateau"]["rows"] for r in row["dropout_rates"]]
    assert len(plateau) == 4 and all(r >= f32 for r in plateau)
    # Seed 0 and seed 1 of one config differ (other init and batches): the noise runs ran.
    assert runs["none"]["rows"][-1] != document["noise_runs"]["none/seed1"]["rows"][-1]
    assert (tmp_path / "drop_family_char.png").read_bytes()[:4] == b"\x89PNG"
    assert "best val" in done.stdout and "on_plateau/seed0" in done.stdout
