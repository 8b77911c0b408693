"""The course GPT in every backend that has one (SPEC X1-X5), through its neutral pieces.

Models are run through ``dropout_ref.forward_numpy`` so the same test holds for
every backend's idiom; a backend whose framework is missing (or that has no GPT
yet) is skipped with the reason.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import pickle

import numpy as np
import pytest

import dropout_ref
from dropout_ref.core.registry import get_backend, known_backends
from dropout_ref.models.gpt_config import (
    INIT_STD,
    LM_HEAD_KEY,
    PRESETS,
    SITE_STRIDE,
    GPTConfig,
    dropout_sites,
    init_weights,
    site_offset,
    validate_weights,
    weight_shapes,
)
from dropout_ref.porting.gpt_compare import has_gpt, run_gpt_comparison, training_module

TINY = {"vocab_size": 23, "block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 16}
GPT_BACKENDS = [name for name in known_backends() if has_gpt(name)]
#: Backends whose GPT's modules call ``dropout_layer`` by that module-level name.
SITE_PROBED = ("numpy", "torch", "tensorflow")


def config(dropout="bert", **changes) -> GPTConfig:
    return GPTConfig(**{**TINY, **changes}, dropout=dropout)


def random_weights(cfg: GPTConfig, seed: int = 1, std: float = 0.3) -> dict[str, np.ndarray]:
    """Weights far from the init (LayerNorms and biases non-trivial), so errors show."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in weight_shapes(cfg).items():
        centre = 1.0 if ".ln_" in name and name.endswith(".weight") else 0.0
        weights[name] = (centre + rng.normal(0, std, size=shape)).astype(np.float32)
    return weights


def tokens(cfg: GPTConfig, batch: int = 3, seed: int = 0, length: int | None = None):
    length = cfg.block_size if length is None else length
    return np.random.default_rng(seed).integers(0, cfg.vocab_size, size=(batch, length))


def adapter(name: str):
    try:
        return get_backend(name).module
    except ImportError as exc:
        pytest.skip(str(exc))


@pytest.fixture(params=GPT_BACKENDS)
def gpt_backend(request):
    """The adapter of each backend that has a GPT; skipped where its framework is missing."""
    return adapter(request.param)


def build(backend, cfg: GPTConfig, weights=None):
    return backend.GPT(cfg, weights=weights)


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """``max|a - b| / max|b|``: the error in units of the output's scale."""
    return float(np.abs(a - b).max() / np.abs(b).max())


# --- X1 / X2: the config ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error", "needle"),
    [
        ({"vocab_size": 0}, ValueError, "vocab_size"),
        ({"block_size": 2.0}, TypeError, "block_size"),
        ({"n_layer": True}, TypeError, "n_layer"),
        ({"n_head": 3}, ValueError, "n_head"),
        ({"n_embd": -16}, ValueError, "n_embd"),
        ({"bias": 1}, TypeError, "bias"),
        ({"dropout": "gpt3"}, ValueError, "nanogpt-char"),
        ({"dropout": {"attention": 0.1}}, ValueError, "'attention'"),
        ({"dropout": {"attn": 1.5}}, ValueError, "dropout['attn']"),
        ({"dropout": -0.1}, ValueError, "dropout"),
        ({"dropout": None}, TypeError, "dropout"),
    ],
)
def test_x1_x2_config_refuses_bad_arguments_naming_them(changes, error, needle):
    with pytest.raises(error) as info:
        GPTConfig(**{**TINY, "dropout": "bert", **changes})
    assert needle in str(info.value)


def test_x2_unknown_preset_and_site_list_the_known_ones():
    with pytest.raises(ValueError) as preset:
        config("bart")
    assert "'bart'" in str(preset.value)
    assert all(name in str(preset.value) for name in PRESETS)
    with pytest.raises(ValueError) as site:
        config({"mlp": 0.1})
    assert all(name in str(site.value) for name in ("'mlp'", "embd", "attn", "resid"))


@pytest.mark.parametrize(
    ("preset", "rates"),
    [
        ("transformer-2017", {"embd": 0.1, "attn": 0.0, "resid": 0.1}),
        ("bert", {"embd": 0.1, "attn": 0.1, "resid": 0.1}),
        ("gpt2-hf", {"embd": 0.1, "attn": 0.1, "resid": 0.1}),
        ("nanogpt", {"embd": 0.0, "attn": 0.0, "resid": 0.0}),
        ("nanogpt-char", {"embd": 0.2, "attn": 0.2, "resid": 0.2}),
    ],
)
def test_x2_presets_give_the_documented_rates(preset, rates):
    assert config(preset).rates == rates


def test_x2_one_rate_or_a_partial_dict():
    assert config(0.3).rates == {"embd": 0.3, "attn": 0.3, "resid": 0.3}
    partial = config({"attn": 0.25})
    assert partial.rates == {"embd": 0.0, "attn": 0.25, "resid": 0.0}  # missing sites: 0
    assert GPTConfig(**TINY).rates == dict(PRESETS["nanogpt"])  # the default preset


def test_x1_config_is_frozen_hashable_picklable_and_rebuilds_from_to_dict():
    source = {"resid": 0.2}
    cfg = config(source)
    source["resid"] = 0.9  # the caller's dict does not reach into the config
    assert cfg.rates["resid"] == 0.2
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    assert hash(cfg) == hash(GPTConfig(**cfg.to_dict()))
    with pytest.raises(AttributeError):
        cfg.n_layer = 3  # type: ignore[misc]
    assert cfg.with_dropout("nanogpt").rates == dict(PRESETS["nanogpt"])


def test_x1_gptconfig_is_importable_without_a_framework():
    import subprocess
    import sys

    code = (
        "import sys, dropout_ref; c = dropout_ref.GPTConfig(11, 8, 1, 1, 4); "
        "heavy = {'torch', 'tensorflow', 'jax', 'mxnet', 'keras'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- X4: sites --------------------------------------------------------------------------------


def test_x4_site_numbering():
    sites = dropout_sites(2)
    assert [(s.index, s.name) for s in sites] == [
        (0, "embd"),
        (1, "attn"), (2, "resid"), (3, "resid"),
        (4, "attn"), (5, "resid"), (6, "resid"),
    ]
    assert site_offset(5) == 5 * 2**40 == 5 * SITE_STRIDE
    assert config().num_sites == 7
    with pytest.raises(ValueError, match="j must be"):
        site_offset(-1)


@pytest.mark.parametrize("name", SITE_PROBED)
def test_x4_every_site_calls_dropout_layer_with_its_offset(name, monkeypatch):
    """Record the calls each model makes: tensor shape, rate and offset, in forward order."""
    backend = adapter(name)
    cfg = config({"embd": 0.1, "attn": 0.2, "resid": 0.3})
    module = importlib.import_module(f"dropout_ref.models.{name}.gpt")
    calls = []
    real = module.dropout_layer

    def recording(X, dropout, *, seed=None, offset=0, **kwargs):
        calls.append((tuple(int(d) for d in X.shape), dropout, seed, offset))
        return real(X, dropout, seed=seed, offset=offset, **kwargs)

    monkeypatch.setattr(module, "dropout_layer", recording)
    model = build(backend, cfg)
    B, T = 2, 5
    dropout_ref.forward_numpy(model, tokens(cfg, B, length=T), training=True, mask_seed=9)
    d, nh = cfg.n_embd, cfg.n_head
    expected = [((B, T, d), 0.1, 9, 0)]
    for layer in range(cfg.n_layer):
        j = 1 + 3 * layer
        expected += [
            ((B, nh, T, T), 0.2, 9, j * 2**40),
            ((B, T, d), 0.3, 9, (j + 1) * 2**40),
            ((B, T, d), 0.3, 9, (j + 2) * 2**40),
        ]
    assert calls == expected
    calls.clear()
    dropout_ref.forward_numpy(model, tokens(cfg, B, length=T), training=False)
    assert calls == []  # eval: no site is called (X3)


# --- X5: weights ------------------------------------------------------------------------------


def test_x5_weight_names_follow_hugging_face():
    cfg = config(n_layer=1)
    shapes = weight_shapes(cfg)
    d, v = cfg.n_embd, cfg.vocab_size
    assert shapes == {
        "transformer.wte.weight": (v, d),
        "transformer.wpe.weight": (cfg.block_size, d),
        "transformer.h.0.ln_1.weight": (d,),
        "transformer.h.0.ln_1.bias": (d,),
        "transformer.h.0.attn.c_attn.weight": (d, 3 * d),
        "transformer.h.0.attn.c_attn.bias": (3 * d,),
        "transformer.h.0.attn.c_proj.weight": (d, d),
        "transformer.h.0.attn.c_proj.bias": (d,),
        "transformer.h.0.ln_2.weight": (d,),
        "transformer.h.0.ln_2.bias": (d,),
        "transformer.h.0.mlp.c_fc.weight": (d, 4 * d),
        "transformer.h.0.mlp.c_fc.bias": (4 * d,),
        "transformer.h.0.mlp.c_proj.weight": (4 * d, d),
        "transformer.h.0.mlp.c_proj.bias": (d,),
        "transformer.ln_f.weight": (d,),
        "transformer.ln_f.bias": (d,),
    }
    assert not any(name.endswith(".bias") for name in weight_shapes(config(bias=False)))


def test_x5_init_is_gpt2s():
    """Sample standard deviations within 6 standard errors: false alarm < 1e-8 per tensor."""
    cfg = GPTConfig(vocab_size=64, block_size=64, n_layer=2, n_head=4, n_embd=64)
    weights = init_weights(cfg, 0)
    assert all(w.dtype == np.float32 for w in weights.values())
    for name, w in weights.items():
        if name.endswith(".bias"):
            assert not w.any(), name
        elif ".ln_" in name:
            assert (w == 1).all(), name
        else:
            std = INIT_STD / math.sqrt(2 * cfg.n_layer) if "c_proj" in name else INIT_STD
            # The sample std of n normals has relative standard error ~ 1 / sqrt(2 n).
            assert abs(w.std() / std - 1) < 6 / math.sqrt(2 * w.size), name
            assert abs(w.mean()) < 6 * std / math.sqrt(w.size), name
    assert all(np.array_equal(weights[k], v) for k, v in init_weights(cfg, 0).items())


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda w: w.pop("transformer.h.1.mlp.c_fc.bias"), "transformer.h.1.mlp.c_fc.bias"),
        (lambda w: w.update({"transformer.h.2.ln_1.weight": w["transformer.ln_f.weight"]}),
         "transformer.h.2.ln_1.weight"),
        (lambda w: w.update({"transformer.wpe.weight": np.zeros((9, 16), np.float32)}),
         "transformer.wpe.weight"),
        (lambda w: w.update({"transformer.h.0.attn.c_attn.weight": np.zeros((48, 16),
                                                                            np.float32)}),
         "transformer.h.0.attn.c_attn.weight"),
        (lambda w: w.update({"transformer.ln_f.bias": np.zeros(16, np.int32)}),
         "transformer.ln_f.bias"),
        (lambda w: w.update({"transformer.ln_f.bias": [0.0] * 16}), "transformer.ln_f.bias"),
        (lambda w: w.update({LM_HEAD_KEY: w["transformer.wte.weight"] + 1}), LM_HEAD_KEY),
        (lambda w: w["transformer.h.0.ln_2.weight"].__setitem__(0, np.nan),
         "transformer.h.0.ln_2.weight"),
    ],
)
def test_x5_bad_weights_raise_naming_the_key(mutate, needle):
    cfg = config()
    weights = init_weights(cfg, 0)
    mutate(weights)
    with pytest.raises((ValueError, TypeError)) as info:
        validate_weights(cfg, weights)
    assert needle in str(info.value)


def test_x5_tied_head_and_old_transformers_buffers_are_accepted():
    cfg = config()
    weights = init_weights(cfg, 0)
    extra = {
        LM_HEAD_KEY: weights["transformer.wte.weight"].copy(),
        "transformer.h.0.attn.bias": np.tril(np.ones((1, 1, 8, 8), np.float32)),
        "transformer.h.1.attn.masked_bias": np.array(-1e4, np.float32),
    }
    checked = validate_weights(cfg, {**weights, **extra})
    assert list(checked) == list(weight_shapes(cfg))  # neither head nor buffers come back


def test_x5_weights_round_trip_through_every_backend(gpt_backend):
    cfg = config()
    weights = random_weights(cfg)
    out = build(gpt_backend, cfg, weights).get_weights()
    assert list(out) == list(weight_shapes(cfg))
    for name, value in weights.items():
        assert out[name].dtype == np.float32
        np.testing.assert_array_equal(out[name], value, err_msg=name)


def test_x5_bad_weights_leave_the_model_unchanged(gpt_backend):
    cfg = config()
    model = build(gpt_backend, cfg, random_weights(cfg))
    before = model.get_weights()
    bad = random_weights(cfg, seed=2)
    bad["transformer.h.1.mlp.c_proj.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError, match=r"transformer\.h\.1\.mlp\.c_proj\.weight"):
        model.set_weights(bad)
    after = model.get_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    with pytest.raises(ValueError, match=r"transformer\.wte\.weight"):
        build(gpt_backend, cfg, {k: v for k, v in bad.items() if "wte" not in k})


def test_x5_bias_false_has_no_biases(gpt_backend):
    cfg = config(bias=False)
    model = build(gpt_backend, cfg, random_weights(cfg))
    assert list(model.get_weights()) == list(weight_shapes(cfg))
    logits = dropout_ref.forward_numpy(model, tokens(cfg), training=False)
    oracle = adapter("numpy").GPT(cfg, weights=random_weights(cfg))
    ref = dropout_ref.forward_numpy(oracle, tokens(cfg), training=False)
    assert rel_diff(logits, ref) <= 1e-5


# --- X3 / X4: train and eval in every backend ---------------------------------------------


def test_x3_eval_is_deterministic_and_equals_every_rate_zero(gpt_backend):
    cfg = config("nanogpt-char")
    weights = random_weights(cfg)
    idx = tokens(cfg)
    model = build(gpt_backend, cfg, weights)
    first = dropout_ref.forward_numpy(model, idx, training=False)
    np.testing.assert_array_equal(first, dropout_ref.forward_numpy(model, idx, training=False))
    zero = build(gpt_backend, cfg.with_dropout(0.0), weights)
    np.testing.assert_array_equal(first, dropout_ref.forward_numpy(zero, idx, training=False))
    # Rate 0 in training mode drops nothing (D2): only the attention kernel may differ.
    trained = dropout_ref.forward_numpy(zero, idx, training=True, mask_seed=3)
    assert rel_diff(trained, first) <= 1e-6
    assert first.shape == (3, cfg.block_size, cfg.vocab_size)
    assert first.dtype == np.float32


def test_x4_train_logits_agree_with_the_numpy_oracle(gpt_backend):
    cfg = config({"embd": 0.1, "attn": 0.2, "resid": 0.3})
    weights = random_weights(cfg)
    idx = tokens(cfg)
    oracle = adapter("numpy").GPT(cfg, weights=weights)
    model = build(gpt_backend, cfg, weights)
    ref = oracle(idx, training=True, mask_seed=2**40 + 7)
    got = dropout_ref.forward_numpy(model, idx, training=True, mask_seed=2**40 + 7)
    assert rel_diff(got, ref) <= 1e-5
    # The masks matter: another seed, or eval, gives other logits.
    other = dropout_ref.forward_numpy(model, idx, training=True, mask_seed=8)
    assert rel_diff(other, ref) > 1e-3
    assert rel_diff(oracle(idx, training=False), ref) > 1e-3


def test_x3_default_masks_follow_the_framework_seed(gpt_backend):
    cfg = config("bert")
    model = build(gpt_backend, cfg, random_weights(cfg))
    idx = tokens(cfg)
    runs = []
    for seed in (5, 5, 6):
        gpt_backend.BACKEND.arrays.seed_global(seed)
        runs.append(dropout_ref.forward_numpy(model, idx, training=True))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


@pytest.mark.parametrize(
    ("idx", "error", "needle"),
    [
        (np.zeros((2, 9), np.int64), ValueError, "block_size=8"),
        (np.full((2, 4), 23), ValueError, "vocab_size=23"),
        (np.full((2, 4), -1), ValueError, "-1"),
        (np.zeros((2, 4), np.float32), TypeError, "integer"),
        (np.zeros(4, np.int64), ValueError, "(batch, time)"),
    ],
)
def test_x1_bad_token_ids_raise_naming_idx(gpt_backend, idx, error, needle):
    model = build(gpt_backend, config())
    with pytest.raises(error) as info:
        dropout_ref.forward_numpy(model, idx, training=False)
    assert "idx" in str(info.value)
    assert needle in str(info.value)


# --- forward_numpy --------------------------------------------------------------------------


def test_forward_numpy_runs_the_mlp_of_every_backend(course_backend):
    from dropout_ref.models.mlp_spec import MLPSpec
    from dropout_ref.models.mlp_spec import init_weights as mlp_init

    spec = MLPSpec(num_inputs=12, num_hiddens1=7, num_hiddens2=5, num_outputs=3)
    weights = mlp_init(spec, 0)
    kwargs = {
        "num_inputs": 12, "num_hiddens1": 7, "num_hiddens2": 5, "num_outputs": 3,
        "weights": weights,
    }
    X = np.random.default_rng(0).uniform(size=(4, 12)).astype(np.float32)
    ref = dropout_ref.forward_numpy(
        adapter("numpy").MLP(**kwargs), X, training=True, mask_seed=1
    )
    model = course_backend.module.MLP(**kwargs)
    out = dropout_ref.forward_numpy(model, X, training=True, mask_seed=1)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_forward_numpy_refuses_foreign_models_and_bad_flags():
    with pytest.raises(TypeError, match="dropout_ref model"):
        dropout_ref.forward_numpy(object(), np.zeros((1, 1)), training=False)
    model = adapter("numpy").GPT(config())
    with pytest.raises(TypeError, match="training"):
        dropout_ref.forward_numpy(model, tokens(config()), training="yes")


# --- training steps (torch and tensorflow; others where they have one) -----------------------


def test_x4_gradients_agree_across_backends():
    """Gradients of the train-mode loss, same masks: within 1e-4 of the tensor's scale."""
    trained = [n for n in GPT_BACKENDS if training_module_or_none(n) is not None]
    if len(trained) < 2:
        pytest.skip(f"needs two backends with a GPT training step, found {trained}")
    cfg = config({"embd": 0.1, "attn": 0.2, "resid": 0.3})
    weights = random_weights(cfg, std=0.1)
    idx, targets = tokens(cfg, seed=1), tokens(cfg, seed=2)
    results = {}
    for name in trained:
        model = build(get_backend(name).module, cfg, weights)
        results[name] = training_module(name).gpt_loss_and_gradients(
            model, idx, targets, mask_seed=11
        )
    ref_loss, ref_grads = results[trained[0]]
    for name in trained[1:]:
        loss, grads = results[name]
        assert abs(loss - ref_loss) <= 1e-5 * abs(ref_loss), name
        assert list(grads) == list(ref_grads)
        for key, g in grads.items():
            scale = np.abs(ref_grads[key]).max()
            assert np.abs(g - ref_grads[key]).max() <= 1e-4 * scale, (name, key)


def training_module_or_none(name: str):
    try:
        get_backend(name)
    except ImportError:
        return None
    return training_module(name)


def installed_gpt_backends() -> list[str]:
    return [n for n in GPT_BACKENDS if training_module_or_none(n) is not None or n == "numpy"]


#: The comparison both X4 curve tests read: 100 steps of batch 4, seed 0 (the function's default).
COMPARISON_STEPS, SHORT_STEPS = 100, 3


@pytest.fixture(scope="module")
def gpt_comparison():
    """One 100-step comparison of every installed GPT backend, numpy's forward oracle included.

    The short test reads its first 3 steps, the slow test all 100. Step k's batch and mask
    seed come from the seed and k alone (``synthetic_batches``, ``mask_seed_for_step``), so the
    first 3 steps are exactly those of a 3-step run. Tracing TensorFlow's and JAX's steps and
    compiling torch's costs more than the 100 steps, so one run serves both tests (under
    pytest-xdist too: a test file is one unit, tests/conftest.py).
    """
    names = installed_gpt_backends()
    if len([n for n in names if n != "numpy"]) < 1:
        pytest.skip("no backend with a GPT training step is installed")
    return run_gpt_comparison(names, steps=COMPARISON_STEPS, batch_size=4)


def test_x4_short_comparison_passes(gpt_comparison):
    result = dataclasses.replace(
        gpt_comparison,
        steps=SHORT_STEPS,
        losses=gpt_comparison.losses[:SHORT_STEPS],
        loss_diffs=gpt_comparison.loss_diffs[:SHORT_STEPS],
        weight_diffs=gpt_comparison.weight_diffs[:SHORT_STEPS],
    )
    assert result.violations() == []
    assert len(result.losses) == 3
    assert all(math.isfinite(v) for step in result.losses for v in step.values())


@pytest.mark.slow
def test_x4_hundred_steps_loss_curves_agree_within_1e_3(gpt_comparison):
    result = gpt_comparison
    if len(result.trained) < 2:
        pytest.skip(f"needs two backends with a GPT training step, found {result.trained}")
    assert len(result.losses) == COMPARISON_STEPS
    assert result.violations() == []
    ref = result.reference
    assert result.losses[-1][ref] < result.losses[0][ref]  # it learns


def test_x5_keras_gpt_saves_and_loads(tmp_path):
    adapter("tensorflow")
    import keras
    import tensorflow as tf

    cfg = config({"attn": 0.1})
    model = get_backend("tensorflow").module.GPT(cfg, weights=random_weights(cfg))
    model.save(tmp_path / "gpt.keras")
    loaded = keras.models.load_model(tmp_path / "gpt.keras")
    assert loaded.config == cfg
    before, after = model.get_weights(), loaded.get_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    # Traced: the token-id check runs inside the graph and still names idx.
    traced = tf.function(lambda x: model(x, training=False))
    with pytest.raises(tf.errors.InvalidArgumentError, match="idx holds a token id"):
        traced(tf.constant(np.full((2, 4), cfg.vocab_size)))


def test_x4_compare_command_with_model_gpt(tmp_path, capsys):
    import json

    from dropout_ref.cli import main as cli

    names = [n for n in installed_gpt_backends() if n != "numpy"]
    if not names:
        pytest.skip("no backend with a GPT training step is installed")
    status = cli.main(
        ["compare", "--model", "gpt", "--backends", *names, "--steps", "2", "--batch-size", "2",
         "--no-progress", "--format", "json", "--out", str(tmp_path)]
    )
    document = json.loads(capsys.readouterr().out)
    assert status == 0, document["violations"]
    assert document["meta"]["model"] == "gpt"
    assert document["meta"]["forward_oracles"] == ["numpy"]
    assert set(document["summary"]) == {*names[1:], "numpy"}
    saved = json.loads((tmp_path / "gpt_compare.json").read_text())
    assert len(saved["losses"]) == 2
    assert cli.main(["compare", "--model", "gpt", "--steps", "0", "--out", str(tmp_path)]) == 2
