"""The course MLP in every backend (SPEC M1-M5)."""

# ruff: noqa: N811 - X, H1, H2 are the course's names; MLP classes keep theirs

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

from dropout_ref.conformance import stats
from dropout_ref.models.mlp_spec import (
    DROPOUT_OFFSETS,
    INIT_STD,
    WEIGHT_NAMES,
    MLPSpec,
    init_weights,
    validate_weights,
)
from tests.mlp_idioms import oracle_hidden, run_forward

SMALL = {"num_inputs": 12, "num_outputs": 3, "num_hiddens1": 7, "num_hiddens2": 5}


@pytest.fixture
def backend(course_backend):
    """Every backend the course covers (``MLP_MODULE.backends``), not every adapter."""
    return course_backend


def small_batch(seed: int = 0, n: int = 6) -> np.ndarray:
    """Inputs of shape (n, 3, 4): flattened to the 12 inputs of ``SMALL`` (M1)."""
    return np.random.default_rng(seed).uniform(0, 1, size=(n, 3, 4)).astype(np.float32)


def random_weights(spec: MLPSpec, seed: int = 1) -> dict[str, np.ndarray]:
    """Weights large enough for ReLUs to be active, with non-zero biases."""
    rng = np.random.default_rng(seed)
    return {
        name: rng.normal(0, 0.5, size=shape).astype(np.float32)
        for name, shape in spec.weight_shapes().items()
    }


def mlp_module(backend):
    return importlib.import_module(f"dropout_ref.models.{backend.ops.name}.mlp")


# --- M1: architecture, sizes and rates as constructor arguments -------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"num_inputs": 0}, ValueError, "num_inputs"),
        ({"num_hiddens1": -3}, ValueError, "num_hiddens1"),
        ({"num_hiddens2": 2.0}, TypeError, "num_hiddens2"),
        ({"num_outputs": True}, TypeError, "num_outputs"),
        ({"dropout1": 1.5}, ValueError, "dropout1"),
        ({"dropout2": float("nan")}, ValueError, "dropout2"),
        ({"dropout2": "0.5"}, TypeError, "dropout2"),
    ],
)
def test_m1_spec_refuses_bad_sizes_and_rates(kwargs, error, needle):
    with pytest.raises(error, match=needle):
        MLPSpec(**kwargs)


def test_m1_constructor_arguments_set_sizes_and_rates(backend):
    """M1: every size and both rates are constructor arguments; inputs are flattened."""
    model = backend.MLP(**SMALL, dropout1=0.1, dropout2=0.3, rng=0)
    assert (model.dropout1, model.dropout2) == (0.1, 0.3)
    shapes = {name: w.shape for name, w in model.get_weights().items()}
    assert shapes == {"W1": (12, 7), "b1": (7,), "W2": (7, 5), "b2": (5,), "W3": (5, 3), "b3": (3,)}
    for training in (False, True):
        out = run_forward(backend, model, small_batch(), training=training)
        assert out.shape == (6, 3) and out.dtype == np.float32


def test_m1_course_defaults(backend):
    """M1: by default the course's 784 -> 256 -> 256 -> 10 with rates 0.2 and 0.5."""
    model = backend.MLP(rng=0)
    assert (model.dropout1, model.dropout2) == (0.2, 0.5)
    assert model.spec == MLPSpec(784, 256, 256, 10, 0.2, 0.5)
    images = np.zeros((2, 1, 28, 28), np.float32)  # Fashion-MNIST's image shape
    assert run_forward(backend, model, images, training=False).shape == (2, 10)


def test_m1_bad_arguments_name_themselves(backend):
    with pytest.raises(ValueError, match="dropout2"):
        backend.MLP(**SMALL, dropout2=-0.1)
    model = backend.MLP(**SMALL, rng=0)
    with pytest.raises(ValueError, match="num_inputs=12"):
        run_forward(backend, model, np.zeros((2, 13), np.float32), training=False)


# --- M2: train/eval in each framework's idiom ---------------------------------------------


def test_m2_dropout_follows_the_framework_idiom(backend):
    """M2: dropout on only in training mode, switched the framework's own way."""
    backend.arrays.seed_global(0)
    spec = MLPSpec(**SMALL, dropout1=0.5, dropout2=0.5)
    model = backend.MLP(**SMALL, dropout1=0.5, dropout2=0.5, weights=random_weights(spec))
    X = small_batch(n=32)
    eval_out = run_forward(backend, model, X, training=False)
    train_out = run_forward(backend, model, X, training=True)
    # 32 * (7 + 5) hidden units at rate 0.5: every mask keeping everything has probability 2**-384.
    assert not np.allclose(train_out, eval_out)


def test_m2_framework_specific_switches(backend):
    """M2: the idioms beyond run_forward: numpy's flag is required, torch's mode is sticky,
    Keras' training=None means inference, MXNet's record(train_mode=False) means inference."""
    spec = MLPSpec(**SMALL, dropout1=0.5, dropout2=0.5)
    model = backend.MLP(**SMALL, dropout1=0.5, dropout2=0.5, weights=random_weights(spec))
    X = small_batch(n=32)
    reference = run_forward(backend, model, X, training=False)
    name = backend.ops.name
    if name == "numpy":
        with pytest.raises(TypeError):
            model.forward(X)
        with pytest.raises(TypeError, match="training"):
            model.forward(X, training=1)
    elif name == "torch":
        import torch

        model.eval()
        with torch.no_grad():
            np.testing.assert_array_equal(model(torch.from_numpy(X)).numpy(), reference)
        model.train()
        assert model.training
        with torch.no_grad():
            assert not np.allclose(model(torch.from_numpy(X)).numpy(), reference)
    elif name == "tensorflow":
        import tensorflow as tf

        np.testing.assert_array_equal(model(tf.constant(X)).numpy(), reference)
    elif name == "jax":
        from flax import nnx

        # A fresh NNX model is in training mode (Dropout.deterministic=False), like torch.
        fresh = backend.MLP(**SMALL, dropout1=0.5, dropout2=0.5, weights=random_weights(spec))
        assert not fresh.dropout_1.deterministic
        assert not np.allclose(np.asarray(fresh(X)), reference)
        model.train()  # run_forward left it in eval mode
        assert not np.allclose(np.asarray(model(X)), reference)
        model.eval()
        assert model.dropout_1.deterministic and model.dropout_2.deterministic
        np.testing.assert_array_equal(np.asarray(model(X)), reference)
        # Keys come from the model's nnx.Rngs stream: each training call draws fresh masks.
        model.train()
        assert isinstance(model.dropout_1.rngs, nnx.Rngs)
        assert not np.array_equal(np.asarray(model(X)), np.asarray(model(X)))
    elif name == "mxnet":
        from dropout_ref.mxnet.framework import autograd, mnp

        with autograd.record(train_mode=False):
            out = model(mnp.array(X))
        np.testing.assert_array_equal(out.asnumpy(), reference)
        with autograd.train_mode():  # training without recording: still is_training()
            out = model(mnp.array(X))
        assert not np.allclose(out.asnumpy(), reference)


# --- M3: eval is deterministic and equals the rates-0 network ------------------------------


def test_m3_eval_deterministic_and_equal_to_rates_zero(backend):
    spec = MLPSpec(**SMALL)
    weights = random_weights(spec)
    X = small_batch(n=16)
    model = backend.MLP(**SMALL, dropout1=0.2, dropout2=0.5, weights=weights)
    plain = backend.MLP(**SMALL, dropout1=0.0, dropout2=0.0, weights=weights)
    first = run_forward(backend, model, X, training=False)
    backend.arrays.seed_global(123)  # the global generator must not matter in eval
    np.testing.assert_array_equal(run_forward(backend, model, X, training=False), first)
    np.testing.assert_array_equal(run_forward(backend, plain, X, training=False), first)
    # Rates 0 make training mode the same network too (D2: dropout 0 is the identity).
    np.testing.assert_array_equal(run_forward(backend, plain, X, training=True), first)
    _, H2 = oracle_hidden(weights, X)
    np.testing.assert_allclose(first, H2 @ weights["W3"] + weights["b3"], rtol=1e-5, atol=1e-5)


# --- M4: dropout after each hidden ReLU and nowhere else -----------------------------------


class Recorder:
    """Stands in for a backend's dropout_layer and records each call."""

    def __init__(self, backend, result: str) -> None:
        self.arrays = backend.arrays
        self.result = result
        self.calls: list[dict] = []

    def __call__(self, X, dropout, *, seed=None, offset=0, key=None):
        self.calls.append(
            {"X": self.arrays.to_numpy(X), "rate": dropout, "seed": seed, "offset": offset}
        )
        return X if self.result == "identity" else X * 0.0


def test_m4_dropout_only_after_the_hidden_relus(backend, monkeypatch):
    spec = MLPSpec(**SMALL, dropout1=0.25, dropout2=0.75)
    weights = random_weights(spec)
    X = small_batch(n=8)
    model = backend.MLP(**SMALL, dropout1=0.25, dropout2=0.75, weights=weights)
    expected = run_forward(backend, model, X, training=False)

    recorder = Recorder(backend, "identity")
    monkeypatch.setattr(mlp_module(backend), "dropout_layer", recorder)
    run_forward(backend, model, X, training=False)
    assert recorder.calls == []  # never in eval (M2, M3)

    out = run_forward(backend, model, X, training=True, mask_seed=5)
    H1, H2 = oracle_hidden(weights, X)
    assert [c["X"].shape for c in recorder.calls] == [(8, 7), (8, 5)]
    assert [c["rate"] for c in recorder.calls] == [0.25, 0.75]
    assert [(c["seed"], c["offset"]) for c in recorder.calls] == [(5, 0), (5, 2**40)]
    assert list(DROPOUT_OFFSETS) == [0, 2**40]
    # The inputs are the hidden activations after ReLU ...
    np.testing.assert_allclose(recorder.calls[0]["X"], H1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(recorder.calls[1]["X"], H2, rtol=1e-5, atol=1e-5)
    assert H1.min() == 0 and H1.max() > 0  # ReLU active and clipping: a real test
    # ... and with an identity dropout the network is exactly the eval network: nothing else.
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)

    # Dropping everything leaves the output layer's bias alone: no dropout on the logits.
    monkeypatch.setattr(mlp_module(backend), "dropout_layer", Recorder(backend, "zeros"))
    out = run_forward(backend, model, X, training=True)
    np.testing.assert_allclose(out, np.broadcast_to(weights["b3"], out.shape), rtol=1e-6)


# --- M5: init and the neutral weight dict --------------------------------------------------


def test_m5_default_init_statistics(backend):
    """M5: weights N(0, 0.01²), biases zero, float32.

    Per weight matrix, two checks at false-alarm probability ``alpha`` each: the
    sample mean within ``z * sigma / sqrt(n)`` of 0 and the sample variance within
    ``z * sqrt(2 / (n - 1))`` relative of sigma² (normal approximations, exact
    enough for n >= 2560). Seeded, so the run is reproducible.
    """
    alpha = stats.DEFAULT_ALPHA
    z = stats.normal_quantile(alpha)
    model = backend.MLP(rng=2024)
    weights = model.get_weights()
    assert list(weights) == list(WEIGHT_NAMES)
    for name, value in weights.items():
        assert value.dtype == np.float32, name
        if name.startswith("b"):
            assert not value.any(), name
            continue
        sample = value.astype(np.float64).ravel()
        n = sample.size
        assert abs(sample.mean()) <= z * INIT_STD / math.sqrt(n), name
        ratio = sample.var(ddof=1) / INIT_STD**2
        assert abs(ratio - 1) <= z * math.sqrt(2 / (n - 1)), (name, ratio)
    # The same seed gives the same weights in every backend.
    reference = init_weights(MLPSpec(), 2024)
    for name in WEIGHT_NAMES:
        np.testing.assert_array_equal(weights[name], reference[name])


def test_m5_weights_from_numpy_run_everywhere(backend):
    """M5: weights exported by the numpy MLP load into every backend and give its logits."""
    from dropout_ref.numpy import MLP as NumpyMLP

    source = NumpyMLP(**SMALL, weights=random_weights(MLPSpec(**SMALL), seed=3))
    exported = source.get_weights()
    X = small_batch(n=10)
    expected = source.forward(X, training=False)

    loaded = backend.MLP(**SMALL, weights=exported)
    np.testing.assert_allclose(
        run_forward(backend, loaded, X, training=False), expected, rtol=1e-5, atol=1e-6
    )
    target = backend.MLP(**SMALL, rng=0)
    target.set_weights(exported)
    round_trip = target.get_weights()
    assert list(round_trip) == list(WEIGHT_NAMES)
    for name in WEIGHT_NAMES:
        assert round_trip[name].dtype == np.float32
        np.testing.assert_array_equal(round_trip[name], exported[name])
    # get_weights returns copies: changing them does not change the model.
    round_trip["W1"][:] = 0
    assert target.get_weights()["W1"].any()


@pytest.mark.parametrize(
    ("change", "error", "needle"),
    [
        (lambda w: w.pop("b2"), ValueError, "b2"),
        (lambda w: w.update(W4=np.zeros(1, np.float32)), ValueError, "W4"),
        (lambda w: w.update(W2=np.zeros((5, 7), np.float32)), ValueError, "W2"),
        (lambda w: w.update(b1=np.zeros(7, np.int64)), TypeError, "b1"),
        (lambda w: w.update(W3=[[0.0] * 3] * 5), TypeError, "W3"),
        (lambda w: w.update(b3=np.full(3, np.nan, np.float32)), ValueError, "b3"),
    ],
)
def test_m5_loaded_weights_are_validated(backend, change, error, needle):
    weights = init_weights(MLPSpec(**SMALL), 0)
    change(weights)
    with pytest.raises(error, match=needle):
        backend.MLP(**SMALL, weights=weights)
    model = backend.MLP(**SMALL, rng=0)
    before = model.get_weights()
    with pytest.raises(error, match=needle):
        model.set_weights(weights)
    for name in WEIGHT_NAMES:  # a refused dict changes nothing
        np.testing.assert_array_equal(model.get_weights()[name], before[name])


def test_m5_validate_weights_casts_float64_to_float32():
    spec = MLPSpec(**SMALL)
    weights = {k: v.astype(np.float64) for k, v in init_weights(spec, 0).items()}
    checked = validate_weights(weights, spec)
    assert all(v.dtype == np.float32 for v in checked.values())
    with pytest.raises(TypeError, match="weights must be a dict"):
        validate_weights([1, 2], spec)
