"""SPEC S1-S3 on the course GPT: per-call ``rates=`` at every site (X2, X4) and schedules.

Per backend, a forward (and a gradient) with ``rates=`` equals the model built with those
rates, bit for bit (every backend is deterministic here: CPU, portable masks), and the
train-mode logits under a per-call rate agree with the NumPy oracle's (X4's 1e-5). A
site whose configured rate is 0 takes a per-call rate under its own number. The compiled
steps (JAX's ``nnx.jit`` step, a ``tf.function`` around the Keras GPT) serve every rate
and seed with one program (the frameworks' own counters), and ``dropout-ref train
--model gpt --dropout-schedule`` records each step's rates in metrics.json.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from dropout_ref.models.gpt_config import GPTConfig, call_rates

TINY = {"vocab_size": 13, "block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 8}
#: Per-call rates, float32-exact (the schedules' loop rounds to float32 for every backend).
RATES = {"embd": 0.25, "attn": 0.5, "resid": 0.125}
BACKENDS = ["numpy", "torch", "tensorflow", "jax", "mxnet"]
TRAINABLE = ["torch", "tensorflow", "jax", "mxnet"]
IMPORT = {"numpy": "numpy", "torch": "torch", "tensorflow": "tensorflow", "jax": "flax",
          "mxnet": "dropout_ref.mxnet"}  # its framework module makes mxnet importable


def batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(16)
    idx = rng.integers(0, TINY["vocab_size"], (2, TINY["block_size"]))
    return idx, np.roll(idx, -1, axis=1)


def gpt_module(backend: str):
    pytest.importorskip(IMPORT[backend])
    import importlib

    return importlib.import_module(f"dropout_ref.models.{backend}.gpt")


def runtime(backend: str, rates: dict[str, float]) -> dict[str, object]:
    """The rates as the backend's 0-d runtime tensors (Python floats where it has none)."""
    if backend == "torch":
        import torch

        return {site: torch.tensor(r) for site, r in rates.items()}
    if backend == "tensorflow":
        import tensorflow as tf

        return {site: tf.constant(r, tf.float32) for site, r in rates.items()}
    if backend == "jax":
        import jax.numpy as jnp

        return {site: jnp.float32(r) for site, r in rates.items()}
    return dict(rates)


def train_logits(backend: str, model, idx: np.ndarray, seed: int, rates=None) -> np.ndarray:
    """Train-mode logits with portable masks, in each framework's idiom (X3)."""
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


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("backend", BACKENDS)
def test_s3_x4_per_call_rates_equal_the_built_model_and_the_numpy_oracle(backend):
    module = gpt_module(backend)
    from dropout_ref.models.numpy import gpt as numpy_gpt

    idx, _ = batch()
    # transformer-2017 has attn 0: the per-call rate must reach that site (j = 1 + 3l) too.
    base = GPTConfig(**TINY, dropout="transformer-2017")
    model = module.GPT(base, rng=0)
    built = module.GPT(base.with_dropout(RATES), rng=0)
    want = train_logits(backend, built, idx, 7)
    assert same_bits(train_logits(backend, model, idx, 7, RATES), want)
    assert same_bits(train_logits(backend, model, idx, 7, runtime(backend, RATES)), want)
    # A partial dict overrides only the sites it names.
    partial = {"attn": 0.5}
    built_partial = module.GPT(base.with_dropout({**base.rates, **partial}), rng=0)
    assert same_bits(train_logits(backend, model, idx, 7, partial),
                     train_logits(backend, built_partial, idx, 7))
    # X4 under a per-call rate: the same masks as the oracle's, logits to 1e-5 relative.
    oracle = numpy_gpt.GPT(base, rng=0)(idx, training=True, mask_seed=7, rates=RATES)
    got = train_logits(backend, model, idx, 7, RATES)
    assert np.abs(got - oracle).max() <= 1e-5 * np.abs(oracle).max()
    # The per-call rates changed the output (the masks are not the config's).
    assert not np.allclose(got, train_logits(backend, model, idx, 7), atol=1e-3)


@pytest.mark.parametrize("backend", TRAINABLE)
def test_s3_loss_and_gradients_with_rates_equal_the_built_model(backend):
    gpt_module(backend)
    import importlib

    training = importlib.import_module(f"dropout_ref.course.{backend}.gpt_training")
    module = importlib.import_module(f"dropout_ref.models.{backend}.gpt")
    idx, targets = batch()
    base = GPTConfig(**TINY, dropout=0.1)
    loss, grads = training.gpt_loss_and_gradients(
        module.GPT(base, rng=0), idx, targets, mask_seed=3, rates=RATES
    )
    want_loss, want = training.gpt_loss_and_gradients(
        module.GPT(base.with_dropout(RATES), rng=0), idx, targets, mask_seed=3
    )
    assert loss == want_loss
    for name, grad in want.items():
        assert same_bits(grads[name], grad), name


def test_s3_call_rates_refuses_unknown_sites_and_non_dicts():
    base = GPTConfig(**TINY, dropout=0.1)
    assert call_rates(base, None) == base.rates
    assert call_rates(base, {"resid": 0.5}) == {"embd": 0.1, "attn": 0.1, "resid": 0.5}
    with pytest.raises(ValueError, match="unknown site 'mlp'"):
        call_rates(base, {"mlp": 0.5})
    with pytest.raises(TypeError, match="rates must be a dict per site"):
        call_rates(base, 0.5)
    from dropout_ref.models.numpy.gpt import GPT

    with pytest.raises(ValueError, match="dropout"):  # D1 on the Python float of a site
        GPT(base, rng=0)(batch()[0], training=True, mask_seed=1, rates={"embd": 1.5})


def test_s1_s2_jax_gpt_step_is_one_program_for_every_seed_and_rate():
    pytest.importorskip("flax")
    import jax.numpy as jnp

    from dropout_ref.course.jax import gpt_training as training
    from dropout_ref.models.jax.gpt import GPT

    idx, targets = batch()
    # A config of its own: its graph is not in the jit cache yet.
    base = GPTConfig(**{**TINY, "n_embd": 12}, dropout=0.1)
    compiled, reference = GPT(base, rng=0), GPT(base, rng=0)
    opt, ref_opt = training.gpt_optimizer(compiled), training.gpt_optimizer(reference)
    reference.train()
    seeded = training._compiled_seeded_step.jitted_fn
    before = seeded._cache_size()
    steps = [(5, RATES), (6, {"attn": 0.0}), (2**32 - 1, {"embd": 1.0, "resid": 0.75}),
             (9, {"embd": 0.0, "attn": 0.3, "resid": 0.0})]
    for seed, rates in steps:
        loss = training.gpt_train_step(compiled, opt, idx, targets, mask_seed=seed, rates=rates)
        # The op-by-op step with Python floats: the same masks and arithmetic.
        eager = training._step(reference, ref_opt, jnp.asarray(idx), jnp.asarray(targets), seed,
                               {site: float(np.float32(r)) for site, r in rates.items()})
        assert loss == pytest.approx(float(eager), rel=1e-6), seed
    assert seeded._cache_size() - before == 1
    for name, value in compiled.get_weights().items():
        np.testing.assert_allclose(value, reference.get_weights()[name], rtol=1e-5, atol=1e-7)
    # The unseeded step (keys from nnx.Rngs): one program for every rate too.
    unseeded = training._compiled_step.jitted_fn
    before = unseeded._cache_size()
    for rates in ({"attn": 0.2}, RATES, {"embd": 0.9}):
        assert np.isfinite(training.gpt_train_step(compiled, opt, idx, targets, rates=rates))
    assert unseeded._cache_size() - before == 1


def test_s1_s2_tf_gpt_in_tf_function_traces_once_for_every_seed_and_rate():
    tf = pytest.importorskip("tensorflow")
    from dropout_ref.models.tensorflow.gpt import GPT

    idx, _ = batch()
    base = GPTConfig(**TINY, dropout=0.1)
    model = GPT(base, rng=0)

    @tf.function
    def logits(idx, seed, rates):
        return model(idx, training=True, mask_seed=seed, rates=rates)

    for seed, scale in ((1, 1.0), (2**40 + 3, 0.5), (17, 0.0)):
        rates = {site: r * scale for site, r in RATES.items()}
        got = logits(tf.constant(idx), tf.constant(seed, tf.int64), runtime("tensorflow", rates))
        want = model(tf.constant(idx), training=True, mask_seed=seed, rates=rates)
        assert same_bits(got.numpy(), want.numpy()), seed
    assert logits.experimental_get_tracing_count() == 1


@pytest.mark.one_environment
def test_s1_s2_tf_gpt_train_step_is_one_graph_equal_to_the_eager_step():
    """S1, S2: the seeded Keras GPT step (forward, gradients, SGD; a graph-mode tf.function)
    traces once for every seed and rate, and its losses and weights follow the eager step's."""
    tf = pytest.importorskip("tensorflow")
    from dropout_ref.course.tensorflow import gpt_training
    from dropout_ref.models.tensorflow.gpt import GPT

    idx, targets = batch()
    config = GPTConfig(**TINY, dropout=0.1)
    compiled, eager = GPT(config, rng=0), GPT(config, rng=0)
    optimizers = {id(m): gpt_training.gpt_optimizer(m, lr=0.5) for m in (compiled, eager)}
    for seed, scale in ((1, 1.0), (2**40 + 3, 0.5), (2**64 - 1, 0.0), (17, None)):
        rates = None if scale is None else {site: r * scale for site, r in RATES.items()}
        loss = gpt_training.gpt_train_step(compiled, optimizers[id(compiled)], idx, targets,
                                           mask_seed=seed, rates=rates)
        want, grads, variables = gpt_training._loss_and_grads(eager, idx, targets, seed, rates)
        optimizers[id(eager)].apply_gradients(zip(grads, variables, strict=True))
        assert loss == pytest.approx(float(want), rel=1e-5), seed
    step = gpt_training._compiled_step(compiled, optimizers[id(compiled)])
    assert step.experimental_get_tracing_count() == 2  # rates: a dict of tensors, None
    for name, value in compiled.get_weights().items():
        np.testing.assert_allclose(value, eager.get_weights()[name], rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match=r"rates\['attn'\]"):
        gpt_training.gpt_train_step(compiled, optimizers[id(compiled)], idx, targets,
                                    mask_seed=1, rates={"attn": 1.5})
    assert isinstance(loss, float) and tf.executing_eagerly()
    # A second optimizer gets a program of its own (steps are cached per optimizer object).
    fresh = gpt_training.gpt_optimizer(compiled, lr=0.5)
    assert np.isfinite(gpt_training.gpt_train_step(compiled, fresh, idx, targets, mask_seed=5))
    assert gpt_training._compiled_step(compiled, fresh) is not step


@pytest.mark.one_environment
def test_s1_s2_torch_compiled_gpt_train_step_is_one_graph_equal_to_the_eager_step(monkeypatch):
    """S1, S2: compiled_gpt_train_step (what compare --model gpt runs for torch) compiles one
    Dynamo graph for every seed and rate; losses and weights follow the eager step."""
    torch = pytest.importorskip("torch")
    from torch._dynamo.utils import counters

    from dropout_ref.course.torch import gpt_training
    from dropout_ref.models.torch.gpt import GPT

    # aot_eager: Dynamo and AOTAutograd as in the real step, without Inductor's C++ build
    # (the compare command's test runs the Inductor step).
    monkeypatch.setattr(gpt_training, "COMPILE_BACKEND", "aot_eager")
    idx, targets = batch()
    config = GPTConfig(**TINY, dropout=0.1)
    compiled, eager = GPT(config, rng=0), GPT(config, rng=0)
    optimizers = {id(m): gpt_training.gpt_optimizer(m, lr=0.5) for m in (compiled, eager)}
    before = counters["stats"]["unique_graphs"]
    for seed, scale in ((1, 1.0), (2**40 + 3, 0.5), (2**64 - 1, 0.0)):
        rates = {site: r * scale for site, r in RATES.items()}
        loss = gpt_training.compiled_gpt_train_step(
            compiled, optimizers[id(compiled)], idx, targets, mask_seed=seed, rates=rates
        )
        want = gpt_training.gpt_train_step(
            eager, optimizers[id(eager)], idx, targets, mask_seed=seed, rates=rates
        )
        assert loss == pytest.approx(want, rel=1e-6), seed
    assert counters["stats"]["unique_graphs"] - before == 1
    with torch.no_grad():
        for (name, p), q in zip(compiled.named_parameters(), eager.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7, msg=name)
    with pytest.raises(ValueError, match=r"rates\['resid'\]"):
        gpt_training.compiled_gpt_train_step(compiled, optimizers[id(compiled)], idx, targets,
                                             mask_seed=1, rates={"resid": -0.5})


@pytest.mark.one_environment
def test_s1_s2_torch_compiled_gpt_is_one_graph_for_every_seed_and_rate():
    torch = pytest.importorskip("torch")
    from torch._dynamo.utils import counters

    from dropout_ref.models.torch.gpt import GPT

    idx = torch.as_tensor(batch()[0])
    model = GPT(GPTConfig(**TINY, dropout=0.1), rng=0).train()
    torch._dynamo.reset()
    # aot_eager: Dynamo decides what recompiles, whatever the backend; Inductor's C++
    # build of this graph takes minutes on a shared CPU (bench --compiled measures it).
    logits = torch.compile(lambda i, s, r: model(i, mask_seed=s, rates=r), fullgraph=True,
                           backend="aot_eager")
    before = counters["stats"]["unique_graphs"]
    for seed, scale in ((1, 1.0), (2**40 + 3, 0.5), (17, 0.0)):
        rates = runtime("torch", {site: r * scale for site, r in RATES.items()})
        with torch.no_grad():
            got = logits(idx, torch.tensor(seed), rates)
            assert torch.equal(got, model(idx, mask_seed=seed, rates=rates)), seed
    assert counters["stats"]["unique_graphs"] - before == 1


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_s3_train_gpt_dropout_schedule_records_each_steps_rates(backend, tmp_path, capsys):
    pytest.importorskip(IMPORT[backend])
    from dropout_ref.cli.main import main

    out = tmp_path / "run"
    code = main([
        "train", "--model", "gpt", "--backend", backend, "--no-progress", "--out", str(out),
        "--dropout", "transformer-2017", "--dropout-schedule", "early:linear:3",
        "--steps", "4", "--eval-interval", "2", "--eval-batches", "1", "--batch-size", "2",
        "--block-size", "8", "--n-layer", "1", "--n-head", "1", "--n-embd", "8",
    ])
    assert code == 0, capsys.readouterr().err
    document = json.loads((out / "metrics.json").read_text())
    assert document["meta"]["dropout_schedule"] == "early:linear:3"
    rows = document["evals"]
    assert [len(row["dropout_rates"]) for row in rows] == [0, 2, 2]
    got = [rates for row in rows for rates in row["dropout_rates"]]
    # S3's early linear: linspace(p, 0, until) then 0, each site from its own rate (attn 0).
    ramp = [float(np.float32(v)) for v in np.linspace(0.1, 0.0, 3)] + [0.0]
    assert got == [[r, 0.0, r] for r in ramp]
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_s3_train_gpt_takes_a_schedule_per_site():
    pytest.importorskip("torch")
    from dropout_ref import schedules
    from dropout_ref.course.data.text import load_char_dataset
    from dropout_ref.course.gpt_training import GPTTrainConfig, train_gpt

    config = GPTTrainConfig(steps=3, eval_interval=3, eval_batches=1, batch_size=2,
                            block_size=8, n_layer=1, n_head=1, n_embd=8)
    schedule = {"embd": schedules.late(0.3, 1), "attn": lambda step: 0.1 * step,
                "resid": 0.05}
    _, rows = train_gpt("torch", load_char_dataset(), config, progress=False,
                        schedule=schedule)
    f32 = lambda v: float(np.float32(v))  # noqa: E731
    assert rows[-1]["dropout_rates"] == [[0.0, 0.0, f32(0.05)], [f32(0.3), f32(0.1), f32(0.05)],
                                         [f32(0.3), f32(0.2), f32(0.05)]]
    with pytest.raises(ValueError, match="missing"):
        train_gpt("torch", load_char_dataset(), config, progress=False,
                  schedule={"embd": 0.1})
