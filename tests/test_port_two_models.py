"""A port check for any two models (SPEC P8): the pair runner, its site tables, its CLI.

Every run here is deterministic (portable masks, fixed seeds): no false alarms to
bound. The pass/fail thresholds are the runner's defaults (1e-5 relative for the
loss, 1e-4 for the weights; see dropout_ref.porting.pair), which an honest port
meets by two orders of magnitude (float32 rounding, ~1e-7) and a dropped unit
that the other model keeps misses by two (~1e-3).
"""

from __future__ import annotations

import importlib
import json
import math

import numpy as np
import pytest

from dropout_ref.core.sites import Site
from dropout_ref.porting.pair import PairConfig, PortModel, run_pair
from dropout_ref.porting.site_tables import first_site_difference
from tests.port_pair_models import (
    keras_port,
    nnx_port,
    token_batches,
    torch_port,
    torch_step,
    torch_transformer,
)

torch = pytest.importorskip("torch")

STEPS = 3


def _sites(run):
    return run.records[0].sites_a, run.records[0].sites_b


# --- the site tables ---------------------------------------------------------------------------


def test_p8_site_rules_door_names_and_equivalent_forms_are_not_differences():
    a = [Site(0, "torch.nn.functional.dropout", (4, 6, 8), 0.1),
         Site(1, "torch.nn.functional.dropout1d", (4, 6, 8), 0.2, (4, 6, 1))]
    b = [Site(0, "keras.layers.Dropout", (None, 6, 8), float(np.float32(0.1)), (4, 6, 8)),
         Site(1, "keras.layers.SpatialDropout1D", (4, 6, 8), 0.2, (None, None, 1))]
    assert first_site_difference(a, b) is None


@pytest.mark.parametrize(
    ("change", "kinds"),
    [
        ({"rate": 0.3}, ("rate",)),
        ({"shape": (4, 6, 9)}, ("shape",)),
        ({"noise_shape": (1, 6, 8)}, ("noise_shape",)),
    ],
)
def test_p8_site_rules_name_what_differs(change, kinds):
    base = dict(j=1, source="x", shape=(4, 6, 8), rate=0.2, noise_shape=None)
    a = [Site(0, "x", (4, 8), 0.1), Site(**base)]
    b = [Site(0, "y", (4, 8), 0.1), Site(**{**base, **change})]
    found = first_site_difference(a, b, ("A", "B"))
    assert (found.j, found.kinds) == (1, kinds)
    assert "site 1" in found.message


# --- torch vs torch ----------------------------------------------------------------------------


def test_p8_two_equal_torch_models_pass():
    # B starts from other random weights: the runner must copy A's into it.
    a, b = torch_port("A"), torch_port("B", seed=7)
    state = torch.random.get_rng_state()
    run = run_pair(a, b, PairConfig(steps=STEPS), batches=token_batches(0))
    assert torch.equal(torch.random.get_rng_state(), state), "torch drew a native mask"
    assert run.ok, run.violations()
    assert run.first_divergent_step is None and run.site_difference is None
    sites_a, sites_b = _sites(run)
    assert len(sites_a) == len(sites_b) > 0
    assert [r.loss_a for r in run.records] == [r.loss_b for r in run.records]


def test_p8_changed_rate_names_the_site_and_the_rate():
    run = run_pair(torch_port("A"), torch_port("B", attn=0.3), PairConfig(steps=STEPS),
                   batches=token_batches(1))
    sites_a, _ = _sites(run)
    attention = next(s.j for s in sites_a if len(s.shape) == 4)
    step, found = run.site_difference
    assert (step, found.j, found.kinds) == (0, attention, ("rate",))
    assert not run.ok
    assert any(v.startswith("P8: the site tables differ") and "rate 0.2 vs 0.3" in v
               for v in run.violations())


def test_p8_extra_dropout_names_the_count():
    run = run_pair(torch_port("A"), torch_port("B", extra=True), PairConfig(steps=STEPS),
                   batches=token_batches(2))
    sites_a, sites_b = _sites(run)
    _, found = run.site_difference
    assert len(sites_b) == len(sites_a) + 1
    assert found.kinds[0] == "count" and found.j == len(sites_a)
    assert f"A has {len(sites_a)} sites, B has {len(sites_b)}" in found.message


def test_p8_dropout1d_names_the_noise_shape():
    run = run_pair(torch_port("A"), torch_port("B", resid_dropout="Dropout1d"),
                   PairConfig(steps=STEPS), batches=token_batches(3))
    _, sites_b = _sites(run)
    channel = next(s for s in sites_b if s.source.endswith("dropout1d"))
    _, found = run.site_difference
    assert (found.j, found.kinds) == (channel.j, ("noise_shape",))
    assert str(channel.noise_shape).replace(",)", ")") in found.message


def test_p8_a_late_update_difference_is_reported_at_its_step():
    calls = []

    def late_step(model, batch, lr):  # from its third step on, B's update is 1% larger
        calls.append(1)
        return torch_step(model, batch, lr * (1.01 if len(calls) >= 3 else 1.0))

    b = PortModel(torch_transformer(), late_step, label="B")
    run = run_pair(torch_port("A"), b, PairConfig(steps=4), batches=token_batches(6))
    assert run.first_divergent_step == 2 and run.site_difference is None
    assert run.records[2].loss_diff == 0.0  # the loss is the one before the update
    assert any("weights first differ at step 2" in v for v in run.violations())


def test_p8_weights_that_do_not_map_are_named():
    def renamed(name):
        return "proj.weight" if name == "fc.weight" else name

    a = torch_port("A")
    b = PortModel(torch_transformer(), torch_step, name_map=renamed, label="B")
    with pytest.raises(ValueError, match=r"two weights map to 'proj\.weight'"):
        run_pair(a, b, PairConfig(steps=1), batches=token_batches(0))
    with pytest.raises(ValueError, match="batches"):
        run_pair(a, torch_port("B"), PairConfig(steps=1))


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"steps": 0}, "steps"), ({"seed": -1}, "seed"), ({"lr": math.nan}, "lr"),
     ({"loss_tolerance": -1.0}, "loss_tolerance")],
)
def test_p8_bad_config_names_the_argument(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        PairConfig(**kwargs)


def test_p8_port_model_needs_a_step_and_a_framework():
    with pytest.raises(TypeError, match="step must be callable"):
        PortModel(torch_transformer(), step=3)
    with pytest.raises(ValueError, match="cannot tell the framework of list"):
        PortModel([], torch_step)
    with pytest.raises(ValueError, match="backend must be one of"):
        PortModel(torch_transformer(), torch_step, backend="paddle")


# --- across frameworks ---------------------------------------------------------------------------


def _native_draw(*args, **kwargs):
    raise AssertionError("a framework drew its own dropout mask inside portable_masks (P8)")



@pytest.mark.slow
def test_p8_torch_transformer_vs_its_keras3_port_passes(monkeypatch):
    pytest.importorskip("keras")
    pytest.importorskip("tensorflow")
    a, b = torch_port(), keras_port()
    # No native mask anywhere: Keras' seed stream raises, torch's generator stays put.
    monkeypatch.setattr("keras.src.backend.tensorflow.random.draw_seed", _native_draw)
    torch_state = torch.random.get_rng_state()
    run = run_pair(a, b, PairConfig(steps=STEPS), batches=token_batches(4))
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert run.ok, run.violations()
    assert (run.backend_a, run.backend_b) == ("torch", "tensorflow")
    sites_a, sites_b = _sites(run)
    assert len(sites_a) == len(sites_b) > 0
    assert {s.source for s in sites_b} == {"keras.layers.Dropout"}


@pytest.mark.slow
def test_p8_torch_transformer_vs_its_flax_nnx_port_passes(monkeypatch):
    pytest.importorskip("flax")
    a, b = torch_port(), nnx_port()
    monkeypatch.setattr("jax.random.bernoulli", _native_draw)  # nnx.Dropout's native mask
    torch_state = torch.random.get_rng_state()
    run = run_pair(a, b, PairConfig(steps=STEPS), batches=token_batches(5))
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert run.ok, run.violations()
    assert run.backend_b == "jax"
    sites_a, sites_b = _sites(run)
    assert len(sites_a) == len(sites_b) > 0


def _torch_mlp() -> PortModel:
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Dropout(0.5), nn.Linear(12, 3))

    def step(model, batch, lr):
        X, y = batch
        model.train()
        model.zero_grad()
        loss = nn.functional.cross_entropy(model(torch.from_numpy(X)), torch.from_numpy(y))
        loss.backward()
        with torch.no_grad():
            for param in model.parameters():
                param -= lr * param.grad
        return loss.item()

    return PortModel(net, step, label="torch")


def _gluon_mlp() -> PortModel:
    from dropout_ref.mxnet.framework import autograd, gluon, mx

    net = gluon.nn.Sequential()
    net.add(gluon.nn.Dense(12, activation="relu", in_units=5), gluon.nn.Dropout(0.5),
            gluon.nn.Dense(3, in_units=12))
    net.initialize()

    def step(model, batch, lr):
        X, y = batch
        params = list(model.collect_params().values())
        with autograd.record():
            loss = gluon.loss.SoftmaxCrossEntropyLoss()(model(mx.nd.array(X)),
                                                        mx.nd.array(y)).mean()
        loss.backward()
        for param in params:
            param.set_data(param.data() - lr * param.grad())
        return float(loss.asnumpy())

    # Gluon's Dense holds (out, in) like torch's Linear: only the names differ, in order.
    torch_names = ["0.weight", "0.bias", "3.weight", "3.bias"]
    name_map = dict(zip(net.collect_params().keys(), torch_names, strict=True))
    return PortModel(net, step, name_map=name_map, label="gluon")


def test_p8_torch_mlp_vs_its_gluon_port_passes():
    from dropout_ref.core.registry import get_backend

    try:
        get_backend("mxnet")  # imports mxnet the way it works with numpy 1.26
    except ImportError as exc:
        pytest.skip(str(exc))
    rng = np.random.default_rng(6)
    batches = [(rng.normal(size=(16, 5)).astype(np.float32), rng.integers(0, 3, 16))
               for _ in range(STEPS)]
    run = run_pair(_torch_mlp(), _gluon_mlp(), PairConfig(steps=STEPS), batches=batches)
    assert run.ok, run.violations()
    assert run.backend_b == "mxnet" and len(_sites(run)[1]) == 1


# --- Hugging Face GPT-2 in three frameworks ------------------------------------------------------


HF_VOCAB = 40


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    directory = tmp_path_factory.mktemp("tiny-gpt2")
    config = transformers.GPT2Config(
        vocab_size=HF_VOCAB, n_positions=16, n_embd=16, n_layer=2, n_head=2,
        resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1,
    )
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(config).save_pretrained(directory)
    return directory


def _needs_hf_class(name: str) -> None:
    try:
        getattr(importlib.import_module("transformers"), name)
    except (ImportError, AttributeError) as exc:  # transformers 5 has no TF / Flax models
        pytest.skip(f"transformers.{name}: {exc}")


def _gpt2_batches(seed: int):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, HF_VOCAB, size=(2, 9)) for _ in range(STEPS)]


def _hf_torch(directory) -> PortModel:
    from transformers import GPT2LMHeadModel

    def step(model, batch, lr):
        ids = torch.from_numpy(batch)
        model.train()
        model.zero_grad(set_to_none=True)
        logits = model(ids[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, HF_VOCAB), ids[:, 1:].reshape(-1)
        )
        loss.backward()
        with torch.no_grad():
            for param in model.parameters():
                param -= lr * param.grad
        return loss.item()

    return PortModel(GPT2LMHeadModel.from_pretrained(directory), step, label="GPT2LMHeadModel")


def _tf_gpt2_name(name: str) -> str:
    parts = name.removesuffix(":0").split("/")[1:]
    last = {"embeddings": "weight", "gamma": "weight", "beta": "bias"}.get(parts[-1], parts[-1])
    return ".".join([*parts[:-1], last]).replace("h_._", "h.")


def _hf_tf(directory) -> PortModel:
    import tensorflow as tf
    from transformers import TFGPT2LMHeadModel

    def step(model, batch, lr):
        ids = tf.constant(batch)
        with tf.GradientTape() as tape:
            logits = model(ids[:, :-1], training=True).logits
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=ids[:, 1:], logits=logits))
        variables = model.trainable_variables
        for var, grad in zip(variables, tape.gradient(loss, variables), strict=True):
            var.assign_sub(lr * tf.convert_to_tensor(grad))
        return float(loss)

    model = TFGPT2LMHeadModel.from_pretrained(directory, from_pt=True)
    return PortModel(model, step, name_map=_tf_gpt2_name, label="TFGPT2LMHeadModel")


def _flax_gpt2_name(name: str):
    head, _, last = name.rpartition(".")
    if last == "kernel":  # Flax's Conv1D holds (out, in), torch's (in, out)
        return f"{head}.weight", (1, 0)
    return f"{head}." + {"embedding": "weight", "scale": "weight"}.get(last, last)


def _hf_flax(directory) -> PortModel:
    import jax
    import jax.numpy as jnp
    from transformers import FlaxGPT2LMHeadModel

    def step(model, batch, lr):
        ids = jnp.asarray(batch)

        def loss_fn(params):
            logits = model(ids[:, :-1], params=params, dropout_rng=jax.random.PRNGKey(0),
                           train=True).logits
            logp = jax.nn.log_softmax(logits)
            return -jnp.take_along_axis(logp, ids[:, 1:, None], axis=-1).mean()

        loss, grads = jax.value_and_grad(loss_fn)(model.params)
        model.params = jax.tree.map(lambda p, g: p - lr * g, model.params, grads)
        return float(loss)

    model = FlaxGPT2LMHeadModel.from_pretrained(directory, from_pt=True)
    return PortModel(model, step, name_map=_flax_gpt2_name, label="FlaxGPT2LMHeadModel")


@pytest.mark.slow
def test_p8_hf_gpt2_torch_vs_tf_passes(gpt2_dir):
    pytest.importorskip("tf_keras")
    _needs_hf_class("TFGPT2LMHeadModel")
    run = run_pair(_hf_torch(gpt2_dir), _hf_tf(gpt2_dir), PairConfig(steps=STEPS),
                   batches=_gpt2_batches(0))
    assert run.ok, run.violations()
    sites_a, sites_b = _sites(run)
    assert len(sites_a) == len(sites_b) > 0


@pytest.mark.slow
def test_p8_hf_gpt2_torch_vs_flax_names_the_attention_noise_shape(gpt2_dir):
    pytest.importorskip("flax")
    _needs_hf_class("FlaxGPT2LMHeadModel")
    run = run_pair(_hf_torch(gpt2_dir), _hf_flax(gpt2_dir), PairConfig(steps=STEPS),
                   batches=_gpt2_batches(1))
    step, found = run.site_difference
    site = run.records[step].sites_a[found.j]
    assert len(site.shape) == 4, "the first difference is an attention-probability site"
    assert "noise_shape" in found.kinds
    assert not run.ok


# --- the CLI -------------------------------------------------------------------------------------

FACTORIES = """
import numpy as np
import torch
from torch import nn

from dropout_ref.porting.pair import PortModel


def _net(rate):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Dropout(rate), nn.Linear(12, 3))


def _step(model, batch, lr):
    X, y = batch
    model.train()
    model.zero_grad()
    loss = nn.functional.cross_entropy(model(torch.from_numpy(X)), torch.from_numpy(y))
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= lr * p.grad
    return loss.item()


def _batch(k):
    rng = np.random.default_rng(k)
    return rng.normal(size=(16, 5)).astype(np.float32), rng.integers(0, 3, 16)


def reference():
    return PortModel(_net(0.5), _step, batches=_batch)


def port():
    return PortModel(_net(0.5), _step)


def wrong_rate():
    return PortModel(_net(0.3), _step)


def not_a_port():
    return 42
"""


@pytest.fixture
def factories(tmp_path):
    path = tmp_path / "my_models.py"
    path.write_text(FACTORIES)
    return path


def _compare(*args):
    from dropout_ref.cli import main as cli

    return cli.main(["compare", *args, "--no-progress"])


@pytest.mark.parametrize(("second", "status"), [("port", 0), ("wrong_rate", 1)])
def test_p8_cli_two_user_models(factories, tmp_path, capsys, second, status):
    out = tmp_path / "out"
    code = _compare("--user-model", f"{factories}:reference", "--user-model",
                    f"{factories}:{second}", "--steps", "2", "--seed", "3", "--out", str(out),
                    "--format", "json")
    assert code == status
    document = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "compare.json").read_text())
    assert saved["ok"] is document["ok"] is (status == 0)
    assert [s["mask_seed"] for s in saved["steps"]] == [3 * 2**32, 3 * 2**32 + 1]
    assert len((out / "compare.csv").read_text().splitlines()) == 1 + 2
    assert (out / "loss_curves.png").read_bytes().startswith(b"\x89PNG")
    if status:
        assert saved["site_difference"]["kinds"] == ["rate"]
        assert all(v.startswith("P8:") for v in saved["violations"])


def test_p8_cli_table_output(factories, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one line per verdict: rich wraps at the width
    code = _compare("--user-model", f"{factories}:reference", "--user-model",
                    f"{factories}:wrong_rate", "--steps", "1", "--out", str(tmp_path / "o"))
    text = capsys.readouterr().out
    assert code == 1
    assert "SPEC P8: FAIL" in text and "rate 0.5 vs 0.3" in text


@pytest.mark.parametrize(
    ("second", "extra", "needle"),
    [
        ("{path}:missing", (), "has no function 'missing'"),
        ("nofile.py:port", (), "no file 'nofile.py'"),
        ("{path}:not_a_port", (), "PortModel"),
        ("no_separator", (), "module:function"),
        ("{path}:port", ("--steps", "0"), "--steps"),
        ("{path}:port", ("--user-model", "{path}:port"), "3 times"),
        ("{path}:port", ("--loss-tolerance", "-1"), "--loss-tolerance"),
        ("{path}:port", ("--batch-size", "8"), "--batch-size"),
        ("{path}:port", ("--backends", "torch"), "--backends"),
    ],
)
def test_p8_cli_bad_input_exits_2_naming_it(factories, tmp_path, capsys, second, extra, needle):
    second = second.format(path=factories)
    extra = [e.format(path=factories) for e in extra]
    code = _compare("--user-model", f"{factories}:reference", "--user-model", second, *extra,
                    "--out", str(tmp_path / "o"))
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and err.count("\n") == 1


@pytest.mark.slow
def test_p8_example_passes_the_port_and_names_the_wrong_rate(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("flax")
    example = Path(__file__).resolve().parents[1] / "examples" / "port_two_models.py"
    done = subprocess.run(
        [sys.executable, str(example), "--framework", "flax", "--steps", "2",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "300"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SPEC P8: PASS" in done.stdout and "rate 0.5 vs 0.3" in done.stdout
    assert json.loads((tmp_path / "compare.json").read_text())["site_difference"]["j"] == 1


def test_p8_one_user_model_returning_a_port_model_is_told_to_give_a_second():
    from dropout_ref.porting.user_model import resolve_user_model

    lone = PortModel(object(), lambda model, batch, lr: 0.0, backend="torch")
    with pytest.raises(TypeError, match=r"got PortModel: .* give a second --user-model"):
        resolve_user_model(lone)
