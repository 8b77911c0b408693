"""The port checker: a correct port passes, each known mistake is named at step 0 (SPEC M6)."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from dropout_ref.models.mlp_spec import MLPSpec
from dropout_ref.porting.port_check import check_port, from_backend, from_model

ROOT = Path(__file__).resolve().parents[1]
SPEC = MLPSpec(num_inputs=64, num_outputs=10)


def load_example():
    pytest.importorskip("torch")
    path = ROOT / "examples" / "port_check_torch.py"
    spec = importlib.util.spec_from_file_location("port_check_torch_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the torch ports of the example -----------------------------------------------------------


def test_m6_correct_torch_port_passes():
    example = load_example()
    report = check_port(example.make_port(), steps=4)
    assert report.ok and report.first_divergence is None
    assert len(report.checks) == 4
    assert all(c.loss_diff <= 1e-5 and c.weight_diff <= 1e-5 for c in report.checks)
    assert "PASS" in report.summary()


@pytest.mark.parametrize(
    ("mistake", "clause", "needle"),
    [
        ("dropout_after_output", "M4", "after the output layer"),
        ("scale_by_keep_probability", "D5", "multiplied by (1 - p)"),
        ("native_dropout", "P1", "do not come from mask_seed"),
    ],
)
def test_wrong_torch_ports_caught_at_step_0(mistake, clause, needle):
    example = load_example()
    import torch

    torch.manual_seed(0)
    report = check_port(example.make_port(mistake=mistake), steps=4)
    assert not report.ok
    divergence = report.first_divergence
    assert (divergence.step, divergence.clause) == (0, clause), str(divergence)
    assert needle in divergence.message
    assert f"SPEC {clause}" in report.summary() and "FAIL" in report.summary()


# --- known mistakes injected into the numpy backend --------------------------------------------


def numpy_port_with_dropout(change):
    """The numpy backend's step, its dropout_layer replaced by ``change(real)`` during the call."""
    step = from_backend("numpy", SPEC)
    mlp = importlib.import_module("dropout_ref.models.numpy.mlp")
    real = mlp.dropout_layer

    def port(weights, images, labels, lr, mask_seed):
        mlp.dropout_layer = change(real)
        try:
            return step(weights, images, labels, lr, mask_seed)
        finally:
            mlp.dropout_layer = real

    return port


SWAP = {0.2: 0.5, 0.5: 0.2}
MISTAKES = {
    "same_offset": (lambda f: lambda X, p, seed, offset: f(X, p, seed=seed, offset=0), "P4"),
    "swapped_rates": (lambda f: lambda X, p, seed, offset: f(X, SWAP[p], seed=seed, offset=offset),
                      "M1"),
    "keep_as_rate": (lambda f: lambda X, p, seed, offset: f(X, 1 - p, seed=seed, offset=offset),
                     "D4"),
    "no_dropout": (lambda f: lambda X, p, seed, offset: X, "M4"),
    "no_scale": (
        lambda f: lambda X, p, seed, offset: f(X, p, seed=seed, offset=offset) * np.float32(1 - p),
        "D5",
    ),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_known_mask_mistakes_name_their_clause(mistake):
    """P4 offsets, M1 rates, D4 keep rule, M4 no dropout, D5 no rescaling: each at step 0."""
    change, clause = MISTAKES[mistake]
    report = check_port(numpy_port_with_dropout(change), steps=3)
    divergence = report.first_divergence
    assert divergence is not None and (divergence.step, divergence.clause) == (0, clause), (
        str(divergence)
    )


def scaled_update(factor, loss_factor=1.0):
    """The numpy step with its update multiplied by ``factor`` and its loss by ``loss_factor``."""
    step = from_backend("numpy", SPEC)

    def port(weights, images, labels, lr, mask_seed):
        loss, new = step(weights, images, labels, lr, mask_seed)
        new = {k: weights[k] + np.float32(factor) * (new[k] - weights[k]) for k in new}
        return loss * loss_factor, new

    return port


@pytest.mark.parametrize(
    ("port", "needle"),
    [
        (scaled_update(2.0), "2 times the reference's"),
        (scaled_update(-1.0), "UP the gradient"),
        (scaled_update(0.0), "not updated"),
        (scaled_update(1.0, loss_factor=256.0), "SUM over the batch"),
    ],
)
def test_m6_update_and_loss_mistakes(port, needle):
    report = check_port(port, steps=3)
    divergence = report.first_divergence
    assert divergence is not None and (divergence.step, divergence.clause) == (0, "M6")
    assert needle in divergence.message, divergence.message


def test_m6_late_divergence_is_reported_at_its_step():
    """A port that goes wrong only from step 2 on passes steps 0 and 1 (teacher forcing)."""
    good, bad = from_backend("numpy", SPEC), scaled_update(1.5)
    calls = {"n": 0}

    def port(*args):
        calls["n"] += 1
        return (good if calls["n"] <= 2 else bad)(*args)

    report = check_port(port, steps=4)
    assert [c.ok for c in report.checks] == [True, True, False]
    assert report.first_divergence.step == 2
    assert "1.5 times" in report.first_divergence.message


def test_from_model_wraps_a_model_with_get_and_set_weights():
    from dropout_ref.course.numpy.training import sgd_step
    from dropout_ref.numpy import MLP

    model = MLP(64, 10, rng=0)
    report = check_port(from_model(model, sgd_step), steps=2)
    assert report.ok
    with pytest.raises(TypeError, match="sgd_step"):
        from_model(model, "not callable")


def test_contract_violations_are_clear_errors():
    def returns_loss_only(weights, images, labels, lr, mask_seed):
        return 2.3

    def drops_a_key(weights, images, labels, lr, mask_seed):
        weights.pop("b3")
        return 2.3, weights

    with pytest.raises(TypeError, match=r"must return \(loss, new_weights\)"):
        check_port(returns_loss_only, steps=1)
    with pytest.raises(ValueError, match=r"new_weights.*b3"):
        check_port(drops_a_key, steps=1)
    with pytest.raises(TypeError, match="step_fn"):
        check_port(None)
    with pytest.raises(ValueError, match="steps"):
        check_port(returns_loss_only, steps=0)
