"""Training the course MLP: step interface, loop, metrics files, CLI (SPEC T1, T3, M6)."""

# ruff: noqa: N811 - X, H1, H2 are the course's names; MLP classes keep theirs

from __future__ import annotations

import csv
import importlib
import inspect
import json
from types import SimpleNamespace

import numpy as np
import pytest

from dropout_ref.cli import main as cli
from dropout_ref.course.data import DataError, load_dataset
from dropout_ref.course.training import (
    DATASET_DEFAULTS,
    METRIC_FIELDS,
    TrainConfig,
    plot_curves,
    train,
    write_metrics,
)
from dropout_ref.models.mlp_spec import WEIGHT_NAMES, MLPSpec

SMALL = {"num_inputs": 12, "num_outputs": 3, "num_hiddens1": 16, "num_hiddens2": 8}


@pytest.fixture
def backend(course_backend):
    """Every backend the course covers (``MLP_MODULE.backends``), not every adapter."""
    return course_backend


def steps_of(backend):
    return importlib.import_module(f"dropout_ref.course.{backend.ops.name}.training")


def small_problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 1, size=(20, 12)).astype(np.float32)
    labels = rng.integers(0, 3, size=20)
    weights = {
        name: rng.normal(0, 0.3, size=shape).astype(np.float32)
        for name, shape in MLPSpec(**SMALL).weight_shapes().items()
    }
    return images, labels, weights


@pytest.fixture(scope="module")
def tiny_digits():
    """A 300/120 slice of the offline digits set: trains in about a second per backend."""
    data = load_dataset("digits", download=False)
    return SimpleNamespace(
        train_images=data.train_images[:300],
        train_labels=data.train_labels[:300],
        test_images=data.test_images[:120],
        test_labels=data.test_labels[:120],
        num_inputs=data.num_inputs,
        num_classes=data.num_classes,
    )


# --- T1: the course's hyper-parameters are the defaults ------------------------------------


def test_t1_course_hyper_parameters_are_the_defaults(backend):
    config = TrainConfig()
    assert (config.epochs, config.lr, config.batch_size) == (10, 0.5, 256)
    assert DATASET_DEFAULTS["fashion-mnist"] == {"epochs": 10, "lr": 0.5, "batch_size": 256}
    assert DATASET_DEFAULTS["digits"]["lr"] == 0.5
    params = inspect.signature(backend.MLP).parameters
    assert (params["dropout1"].default, params["dropout2"].default) == (0.2, 0.5)
    step_params = list(inspect.signature(steps_of(backend).sgd_step).parameters)
    assert step_params == ["model", "images", "labels", "lr", "mask_seed", "rates"]


@pytest.mark.parametrize(
    "kwargs", [{"epochs": 0}, {"batch_size": -1}, {"lr": 0.0}, {"lr": float("inf")}, {"seed": -1},
     {"seed": 2**32}]
)
def test_t1_config_refuses_bad_values(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        TrainConfig(**kwargs)


# --- the step interface: one SGD step agrees with the numpy oracle --------------------------


def numpy_reference_step(images, labels, weights, rates, masks=None):
    """One SGD step (lr 0.5) of the numpy MLP, optionally with fixed dropout masks."""
    from dropout_ref.course.numpy.training import sgd_step
    from dropout_ref.numpy import MLP

    model = MLP(**SMALL, dropout1=rates[0], dropout2=rates[1], weights=weights)
    loss = sgd_step(model, images, labels, 0.5)
    return loss, model.get_weights()


def test_sgd_step_without_dropout_matches_numpy(backend):
    """Rates 0: the step is deterministic; each framework's autodiff checks numpy's backward."""
    images, labels, weights = small_problem()
    expected_loss, expected = numpy_reference_step(images, labels, weights, (0.0, 0.0))
    model = backend.MLP(**SMALL, dropout1=0.0, dropout2=0.0, weights=weights)
    loss = steps_of(backend).sgd_step(model, images, labels, 0.5)
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    updated = model.get_weights()
    for name in WEIGHT_NAMES:
        assert not np.array_equal(updated[name], weights[name]), name  # the step moved it
        np.testing.assert_allclose(updated[name], expected[name], rtol=1e-5, atol=1e-6)


class FixedMasks:
    """A dropout_layer that applies given keep masks, one per hidden layer, in any backend."""

    def __init__(self, backend, masks, rates):
        self.arrays, self.masks, self.rates, self.calls = backend.arrays, masks, rates, 0

    def __call__(self, X, dropout, *, seed=None, offset=0, key=None):
        k = self.calls
        self.calls += 1
        factor = (self.masks[k] / (1 - self.rates[k])).astype(np.float32)
        return X * self.arrays.from_numpy(factor)


def test_sgd_step_with_fixed_masks_matches_numpy(backend, monkeypatch):
    """Same masks everywhere: numpy's backward through dropout agrees with autodiff (D8)."""
    images, labels, weights = small_problem(1)
    rates = (0.25, 0.5)
    rng = np.random.default_rng(7)
    masks = [rng.random((20, 16)) >= rates[0], rng.random((20, 8)) >= rates[1]]

    numpy_mlp = importlib.import_module("dropout_ref.models.numpy.mlp")
    fixed = FixedMasks(importlib.import_module("dropout_ref").get_backend("numpy"), masks, rates)
    monkeypatch.setattr(numpy_mlp, "dropout_layer", fixed)
    expected_loss, expected = numpy_reference_step(images, labels, weights, rates)
    monkeypatch.undo()

    monkeypatch.setattr(
        importlib.import_module(f"dropout_ref.models.{backend.ops.name}.mlp"),
        "dropout_layer",
        FixedMasks(backend, masks, rates),
    )
    model = backend.MLP(**SMALL, dropout1=rates[0], dropout2=rates[1], weights=weights)
    loss = steps_of(backend).sgd_step(model, images, labels, 0.5)
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    for name, value in model.get_weights().items():
        np.testing.assert_allclose(value, expected[name], rtol=1e-5, atol=1e-6)


def test_m6_one_step_with_portable_masks_agrees_across_backends(backend):
    """M6 (one step): the same mask_seed gives the same loss and weights as numpy (1e-5 rel)."""
    from dropout_ref.course.numpy.training import sgd_step
    from dropout_ref.numpy import MLP as NumpyMLP

    images, labels, weights = small_problem(2)
    reference = NumpyMLP(**SMALL, weights=weights)
    expected_loss = sgd_step(reference, images, labels, 0.5, mask_seed=11)
    model = backend.MLP(**SMALL, weights=weights)
    loss = steps_of(backend).sgd_step(model, images, labels, 0.5, mask_seed=11)
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    for name, value in model.get_weights().items():
        np.testing.assert_allclose(value, reference.get_weights()[name], rtol=1e-5, atol=1e-6)
    # A different seed draws other masks, hence another loss.
    other = backend.MLP(**SMALL, weights=weights)
    assert steps_of(backend).sgd_step(other, images, labels, 0.5, mask_seed=12) != loss


# --- the loop: smoke test, reproducibility, deterministic eval ------------------------------


def test_t3_training_smoke_and_reproducible(backend, tiny_digits):
    """T3: per-epoch metrics; the loss falls; same seed, same run; eval is deterministic."""
    # The 0.01 init leaves the loss on a plateau near ln 10 for ~100 steps: 150 steps here.
    config = TrainConfig(epochs=5, batch_size=10, seed=5)

    def run():
        model = backend.MLP(tiny_digits.num_inputs, tiny_digits.num_classes, rng=config.seed)
        return model, train(backend.ops.name, model, tiny_digits, config, progress=False)

    model, results = run()
    assert [row["epoch"] for row in results] == [1, 2, 3, 4, 5]
    assert all(set(row) == set(METRIC_FIELDS) for row in results)
    assert results[-1]["train_loss"] < 2.1 < results[0]["train_loss"]  # ln 10 = 2.30
    assert results[-1]["test_acc"] > 0.2  # chance is 0.1
    assert all(0 <= row[key] <= 1 for row in results for key in ("train_acc", "test_acc"))
    predict = steps_of(backend).predict
    first = predict(model, tiny_digits.test_images)
    np.testing.assert_array_equal(predict(model, tiny_digits.test_images), first)

    _, again = run()
    for row, other in zip(results, again, strict=True):
        for key in ("train_loss", "train_acc", "test_acc"):
            assert row[key] == pytest.approx(other[key], rel=1e-6), key


# --- T3: metrics files and plot --------------------------------------------------------------

ROWS = [
    {"epoch": 1, "train_loss": 1.5, "train_acc": 0.5, "test_acc": 0.45, "seconds": 0.1},
    {"epoch": 2, "train_loss": 0.9, "train_acc": 0.7, "test_acc": 0.65, "seconds": 0.1},
]


def test_t3_metrics_files(tmp_path):
    json_path, csv_path = write_metrics(ROWS, tmp_path / "out", {"backend": "numpy"})
    document = json.loads(json_path.read_text())
    assert document == {"meta": {"backend": "numpy"}, "epochs": ROWS}
    with csv_path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["test_acc"]) for r in rows] == [0.45, 0.65]
    assert list(rows[0]) == list(METRIC_FIELDS)
    png = plot_curves(ROWS, tmp_path / "out" / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_t3_metrics_writing_is_atomic(tmp_path, monkeypatch):
    """T3: a failed write leaves the previous files whole and no temporary file behind."""
    write_metrics(ROWS[:1], tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    with pytest.raises(TypeError):  # not JSON serialisable: fails before any file is touched
        write_metrics([*ROWS, {**ROWS[0], "epoch": object()}], tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("dropout_ref.course.training.os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_metrics(ROWS, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


# --- the CLI ----------------------------------------------------------------------------------


def test_t3_cli_train_end_to_end(backend, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--backend", backend.ops.name, "--dataset", "digits", "--epochs", "1"]
    status = cli.main([*argv, "--out", str(out), "--no-progress", "--seed", "3"])
    assert status == 0
    document = json.loads((out / "metrics.json").read_text())
    assert document["meta"]["backend"] == backend.ops.name
    assert document["meta"]["batch_size"] == DATASET_DEFAULTS["digits"]["batch_size"]
    assert [row["epoch"] for row in document["epochs"]] == [1]
    assert (out / "metrics.csv").read_text().startswith(",".join(METRIC_FIELDS))
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "metrics.json" in capsys.readouterr().out


def test_cli_train_data_error_exits_2_without_traceback(tmp_path, monkeypatch, capsys):
    def offline(name, **kwargs):
        raise DataError("cannot download Fashion-MNIST: no network; try --dataset digits")

    monkeypatch.setattr("dropout_ref.course.data.load_dataset", offline)
    status = cli.main(["train", "--backend", "numpy", "--out", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2
    assert "no network; try --dataset digits" in err and "Traceback" not in err
    assert not (tmp_path / "metrics.json").exists()


def test_cli_train_digits_with_data_dir_exits_2(tmp_path, capsys):
    """E3: --data-dir with the digits data set is a usage error, not a traceback."""
    status = cli.main(["train", "--backend", "numpy", "--dataset", "digits", "--data-dir",
                       str(tmp_path), "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2
    assert "fashion-mnist only" in err and "Traceback" not in err


def test_cli_train_bad_hyper_parameter_exits_2(tmp_path, capsys):
    status = cli.main(["train", "--backend", "numpy", "--dataset", "digits", "--epochs", "0",
                       "--out", str(tmp_path)])
    assert status == 2
    assert "epochs" in capsys.readouterr().err


def test_t3_tensorflow_compiled_step_does_not_keep_models_alive():
    """A model trained with the compiled (unseeded) step is freed once the user drops it."""
    import gc
    import weakref

    from dropout_ref.core.registry import get_backend

    try:
        backend = get_backend("tensorflow")
    except ImportError as exc:
        pytest.skip(str(exc))
    from dropout_ref.course.tensorflow import training

    model = backend.module.MLP(num_inputs=8, num_hiddens1=4, num_hiddens2=4, num_outputs=3, rng=0)
    training.sgd_step(model, np.ones((2, 8), np.float32), np.array([0, 1]), 0.5)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_t3_atomic_writes_follow_the_umask(tmp_path, umask_022):
    """T3: metrics files get the mode open() would give (0644 under umask 022), not 0600."""
    from dropout_ref.course.training import atomic_write_bytes

    path = atomic_write_bytes(tmp_path / "metrics.json", b"{}")
    assert path.stat().st_mode & 0o777 == 0o644


def test_t3_plot_leaves_the_callers_matplotlib_backend(tmp_path):
    """T3: drawing the curves does not switch the caller's matplotlib backend to Agg."""
    import matplotlib

    from dropout_ref.course.training import plot_curves

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        plot_curves([{"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "test_acc": 0.5}],
                    tmp_path / "curves.png")
        assert matplotlib.get_backend() == "svg"
        assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    finally:
        matplotlib.use(before)
