"""The GPT on JAX (Flax NNX) and MXNet (Gluon), and the model conformance rows (SPEC X2-X5, M2).

Each test runs for the backends installed here (JAX in the numpy-2 environment,
MXNet in the MXNet one) and skips the others. Every JAX test uses the kit's GPT
shapes (:data:`dropout_ref.conformance.model_probes.GPT_SIZES`, batch 8): JAX
compiles each op once per shape, so sharing them keeps the file quick.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from dropout_ref.conformance.model_probes import (
    GPT_BATCH,
    GPT_RATES,
    GPT_SIZES,
    check_gpt,
    mlp_probe,
)
from dropout_ref.conformance.site_checks import SITE_CLAUSES, check_sites
from dropout_ref.core.registry import get_backend
from dropout_ref.models.gpt_config import GPTConfig, init_weights

CONFIG = GPTConfig(**GPT_SIZES, dropout=dict(GPT_RATES))
#: SPEC X5 / X4 tolerances.
EVAL_ATOL = 1e-5
TRAIN_RTOL = 1e-5
GRAD_RTOL = 1e-4


@pytest.fixture(params=["jax", "mxnet"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each of this file's backends; skipped where its framework does not import."""
    try:
        get_backend(request.param)
    except ImportError as exc:
        pytest.skip(str(exc))
    return request.param


def gpt_class(backend: str):
    return get_backend(backend).module.GPT


def loud_weights(config: GPTConfig = CONFIG, seed: int = 3) -> dict[str, np.ndarray]:
    """GPT-2's init scaled up (logits of order 1) with non-zero biases and LayerNorm gains."""
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


def tokens(seed: int = 0, config: GPTConfig = CONFIG) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, config.vocab_size, size=(GPT_BATCH, config.block_size))


def forward(model, idx, *, training: bool, mask_seed: int | None = None) -> np.ndarray:
    from dropout_ref import forward_numpy

    return forward_numpy(model, idx, training=training, mask_seed=mask_seed)


def oracle(weights, idx, *, training: bool = False, mask_seed: int | None = None, config=CONFIG):
    from dropout_ref.numpy import GPT

    return GPT(config, weights)(idx, training=training, mask_seed=mask_seed)


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# --- X5: weights in Hugging Face's names; eval logits ------------------------------------


def test_x5_eval_logits_equal_numpy_oracle(backend):
    weights, idx = loud_weights(), tokens()
    model = gpt_class(backend)(CONFIG, weights)
    out = forward(model, idx, training=False)
    ref = oracle(weights, idx)
    assert out.shape == (GPT_BATCH, CONFIG.block_size, CONFIG.vocab_size)
    assert out.dtype == np.float32
    assert np.abs(ref).max() > 1.0  # loud enough that 1e-5 is a real bound
    assert np.max(np.abs(out - ref)) <= EVAL_ATOL


def test_x5_gpt2lmheadmodel_state_dict_loads_as_is_and_gives_its_eval_logits(backend):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.GPT2Config(
        vocab_size=CONFIG.vocab_size, n_positions=CONFIG.block_size, n_embd=CONFIG.n_embd,
        n_layer=CONFIG.n_layer, n_head=CONFIG.n_head, activation_function="gelu_new",
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, attn_implementation="eager",
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(hf_config).float().eval()
    with torch.no_grad():  # louder than HF's init, so that 1e-5 is a real bound
        for name, param in hf.named_parameters():
            if name != "lm_head.weight":
                param.add_(torch.randn_like(param) * 0.1)
    state = hf.state_dict()
    assert "lm_head.weight" in state  # tied, and accepted as such
    idx = tokens(1)
    with torch.no_grad():
        ref = hf(torch.as_tensor(idx)).logits.numpy()
    out = forward(gpt_class(backend)(CONFIG, state), idx, training=False)
    assert np.abs(ref).max() > 0.5
    assert np.max(np.abs(out - ref)) <= EVAL_ATOL


def test_x5_get_weights_round_trip_and_bad_weights_change_nothing(backend):
    weights = loud_weights()
    model = gpt_class(backend)(CONFIG, weights)
    got = model.get_weights()
    assert list(got) == list(weights)  # state-dict order, lm_head left out (tied)
    for name, value in weights.items():
        assert got[name].dtype == np.float32 and np.array_equal(got[name], value), name
    other = loud_weights(seed=4)
    bad_shape = dict(other, **{"transformer.h.1.mlp.c_fc.weight": np.zeros((4, 4), np.float32)})
    missing = {k: v for k, v in other.items() if k != "transformer.ln_f.bias"}
    extra = dict(other, **{"transformer.h.0.attn.c_attn.kernel": np.zeros(3, np.float32)})
    for bad, needle in (
        (bad_shape, "transformer.h.1.mlp.c_fc.weight"),
        (missing, "transformer.ln_f.bias"),
        (extra, "transformer.h.0.attn.c_attn.kernel"),
    ):
        with pytest.raises(ValueError, match=needle.replace(".", r"\.")):
            model.set_weights(bad)
        with pytest.raises(ValueError, match=needle.replace(".", r"\.")):
            gpt_class(backend)(CONFIG, bad)
    after = model.get_weights()
    assert all(np.array_equal(after[k], weights[k]) for k in weights)  # nothing half-written
    model.set_weights(other)
    assert all(np.array_equal(model.get_weights()[k], other[k]) for k in other)


def test_x5_bad_token_ids_raise_naming_idx(backend):
    model = gpt_class(backend)(CONFIG, loud_weights())
    with pytest.raises(ValueError, match=r"idx.*vocab_size"):
        forward(model, np.full((2, 3), CONFIG.vocab_size), training=False)
    with pytest.raises(ValueError, match="block_size"):
        forward(model, np.zeros((2, CONFIG.block_size + 1), np.int64), training=False)
    with pytest.raises(TypeError, match="idx"):
        forward(model, np.zeros((2, 3), np.float32), training=False)
    with pytest.raises(TypeError, match="GPTConfig"):
        gpt_class(backend)({"vocab_size": 3})


# --- X4: portable sites; train-mode logits and gradients across backends ----------------


def test_x4_train_logits_with_mask_seed_equal_numpy_oracle(backend):
    weights, idx = loud_weights(), tokens(2)
    model = gpt_class(backend)(CONFIG, weights)
    for seed in (0, 2**40 + 5):
        out = forward(model, idx, training=True, mask_seed=seed)
        ref = oracle(weights, idx, training=True, mask_seed=seed)
        assert relative(out, ref) <= TRAIN_RTOL, seed
    other = forward(model, idx, training=True, mask_seed=1)
    assert relative(other, out) > 1e-2  # another seed, other masks


def test_x4_loss_and_gradients_equal_torch(backend):
    pytest.importorskip("torch")
    import importlib

    import dropout_ref.torch as dtorch

    torch_training = importlib.import_module("dropout_ref.course.torch.gpt_training")
    training = importlib.import_module(f"dropout_ref.course.{backend}.gpt_training")
    weights, idx, targets = loud_weights(), tokens(4), tokens(5)
    ref_loss, ref_grads = torch_training.gpt_loss_and_gradients(
        dtorch.GPT(CONFIG, weights), idx, targets, mask_seed=11
    )
    model = gpt_class(backend)(CONFIG, weights)
    loss, grads = training.gpt_loss_and_gradients(model, idx, targets, mask_seed=11)
    assert abs(loss - ref_loss) <= TRAIN_RTOL * abs(ref_loss)
    assert list(grads) == list(ref_grads)
    worst = {name: relative(grads[name], ref_grads[name]) for name in ref_grads}
    assert max(worst.values()) <= GRAD_RTOL, max(worst.items(), key=lambda kv: kv[1])
    # One SGD step of each framework's own optimizer from the same state.
    torch_model = dtorch.GPT(CONFIG, weights)
    torch_training.gpt_train_step(
        torch_model, torch_training.gpt_optimizer(torch_model, 0.1), idx, targets, mask_seed=11
    )
    step_loss = training.gpt_train_step(
        model, training.gpt_optimizer(model, 0.1), idx, targets, mask_seed=11
    )
    assert abs(step_loss - ref_loss) <= TRAIN_RTOL * abs(ref_loss)
    stepped, ref_stepped = model.get_weights(), torch_model.get_weights()
    assert max(relative(stepped[k], ref_stepped[k]) for k in ref_stepped) <= TRAIN_RTOL
    assert max(relative(stepped[k], weights[k]) for k in weights) > 1e-4  # it did step


# --- X3 / M2: each framework's train/eval idiom ----------------------------------------


def test_m2_jax_nnx_train_eval_and_rngs_keys():
    pytest.importorskip("flax")
    from flax import nnx

    from dropout_ref.jax import GPT

    weights, idx = loud_weights(), tokens(6)
    model = GPT(CONFIG, weights, rngs=nnx.Rngs(dropout=7))
    model.eval()
    first, second = np.asarray(model(idx)), np.asarray(model(idx))
    assert np.array_equal(first, second)
    np.testing.assert_allclose(first, oracle(weights, idx), atol=EVAL_ATOL, rtol=0)
    model.train()
    a, b = np.asarray(model(idx)), np.asarray(model(idx))
    assert relative(a, first) > 1e-2 and relative(b, a) > 1e-2  # fresh keys per call
    again = GPT(CONFIG, weights, rngs=nnx.Rngs(dropout=7))
    again.train()
    assert np.array_equal(np.asarray(again(idx)), a)  # same Rngs, same masks (D9)
    again.eval()
    assert np.array_equal(np.asarray(again(idx)), first)  # back to eval: no dropout


def test_m2_mxnet_dropout_only_while_autograd_is_training():
    pytest.importorskip("mxnet")
    from dropout_ref.mxnet import GPT
    from dropout_ref.mxnet.framework import autograd, mx

    weights, idx = loud_weights(), tokens(7)
    model = GPT(CONFIG, weights)
    plain = model(idx).asnumpy()
    np.testing.assert_allclose(plain, oracle(weights, idx), atol=EVAL_ATOL, rtol=0)
    with autograd.record(train_mode=False):  # recording for gradients, predict mode
        assert np.array_equal(model(idx).asnumpy(), plain)
    with autograd.record():
        recorded = model(idx).asnumpy()
    assert relative(recorded, plain) > 1e-2
    mx.random.seed(5)
    with autograd.train_mode():  # training without recording also drops
        first = model(idx).asnumpy()
    mx.random.seed(5)
    with autograd.train_mode():
        again = model(idx).asnumpy()
    assert np.array_equal(first, again)  # MXNet's seeding function makes it repeatable (D9)
    assert relative(first, plain) > 1e-2


# --- issue 15 item 7: model conformance through the site calls --------------------------


def test_x2_x3_x4_model_conformance_passes_the_gpt(backend):
    report = check_gpt(backend=backend, seed=0)
    assert report.ok, report.summary()
    assert list(report.results) == list(SITE_CLAUSES)
    x2 = report.results["X2"]
    assert x2.random_tests == 1 + 3 * CONFIG.n_layer
    assert x2.alpha == pytest.approx(report.alpha / x2.random_tests)


def test_site_checks_cover_the_mlp_too():
    # The same checks on the MLP's two sites; numpy only here (every environment, quick):
    # the MLP's own rows (M2-M4) cover it in every backend.
    report = check_sites(mlp_probe("numpy"), backend="numpy", name="numpy.MLP")
    assert report.ok, report.summary()
    assert report.results["X2"].random_tests == 2


def test_worker_emits_the_gpt_row(backend, capsys, monkeypatch):
    from dropout_ref.conformance import worker

    # In process, only the model rows: the worker would otherwise switch Keras' backend for
    # the rest of the session (dropout-ref report runs it in a process of its own).
    monkeypatch.setattr(worker, "use_keras_backend", lambda name: None)
    monkeypatch.setattr(worker, "implementations", lambda name: [])
    assert worker.main(["--backend", backend, "--clauses", *SITE_CLAUSES]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert f"dropout_ref.{backend}.GPT" in events[0]["implementations"]
    (row,) = [
        e["report"] for e in events
        if e["event"] == "report" and e["report"]["implementation"].endswith(".GPT")
    ]  # fmt: skip
    assert {c: r["status"] for c, r in row["results"].items()} == dict.fromkeys(
        SITE_CLAUSES, "pass"
    )


# --- the site checks fail broken models (numpy GPTs: every environment has them) ---------


def _numpy_gpt_mutants():
    from dropout_ref.numpy import GPT

    class EvalDrops(GPT):
        def __call__(self, idx, *, training=False, mask_seed=None):
            return super().__call__(idx, training=True, mask_seed=mask_seed)

    class NoisyTraining(GPT):
        def __call__(self, idx, *, training=False, mask_seed=None):
            out = super().__call__(idx, training=training, mask_seed=mask_seed)
            noise = np.float32(1e-3) * np.random.standard_normal(out.shape)
            return out + noise if training else out

    class ShiftedSeed(GPT):
        def __call__(self, idx, *, training=False, mask_seed=None):
            seed = None if mask_seed is None else mask_seed + 1
            return super().__call__(idx, training=training, mask_seed=seed)

    def attn_at_resid_rate(config, weights):
        return GPT(config.with_dropout({**config.rates, "attn": config.rates["resid"]}), weights)

    return {
        "attn at the resid rate": (attn_at_resid_rate, {"X2", "X4"}),
        "drops in eval": (EvalDrops, {"X3"}),
        "random besides the sites": (NoisyTraining, {"X3", "X4"}),
        "other mask seed": (ShiftedSeed, {"X4"}),
    }


@pytest.mark.parametrize("mutant", ["attn at the resid rate", "drops in eval",
                                    "random besides the sites", "other mask seed"])  # fmt: skip
def test_x2_x3_x4_site_checks_fail_broken_gpts(mutant):
    make_model, failing = _numpy_gpt_mutants()[mutant]
    report = check_gpt(make_model, backend="numpy", name=mutant)
    assert set(report.failures) == failing, report.summary()
