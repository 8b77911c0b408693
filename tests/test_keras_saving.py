"""The Keras MLP saves and loads through Keras' own door (register_keras_serializable, M1, M5)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dropout_ref.core.registry import get_backend
from dropout_ref.models.mlp_spec import MLPSpec, init_weights


@pytest.fixture(scope="module")
def tf_backend():
    try:
        return get_backend("tensorflow").module
    except ImportError as exc:
        pytest.skip(str(exc))


@pytest.mark.one_environment
def test_m5_keras_mlp_save_then_load_model_keeps_sizes_rates_and_weights(tf_backend, tmp_path):
    import keras

    spec = MLPSpec(12, 7, 5, 3, 0.1, 0.3)
    weights = init_weights(spec, 4)
    weights["b1"] += 0.25  # non-zero biases travel too
    model = tf_backend.MLP(12, 3, 7, 5, dropout1=0.1, dropout2=0.3, weights=weights)
    path = tmp_path / "m.keras"
    model.save(str(path))
    loaded = keras.models.load_model(str(path))
    assert type(loaded) is tf_backend.MLP
    assert loaded.spec == spec and (loaded.dropout1, loaded.dropout2) == (0.1, 0.3)
    for name, value in model.get_weights().items():
        np.testing.assert_array_equal(loaded.get_weights()[name], value)
    X = np.random.default_rng(0).uniform(size=(4, 12)).astype(np.float32)
    np.testing.assert_array_equal(loaded(X, training=False).numpy(), model(X).numpy())
    # The loaded model trains like any other (portable masks: the same step as the original).
    from dropout_ref.course.tensorflow.training import sgd_step

    labels = np.array([0, 1, 2, 0])
    assert sgd_step(loaded, X, labels, 0.5, mask_seed=3) == sgd_step(model, X, labels, 0.5, 3)


@pytest.mark.one_environment
def test_m5_keras_mlp_loads_in_a_fresh_process(tf_backend, tmp_path):
    """Importing the class (``from dropout_ref.tensorflow import MLP``) registers it."""
    model = tf_backend.MLP(6, 2, 4, 3, dropout1=0.25, dropout2=0.75, rng=0)
    path = tmp_path / "m.keras"
    model.save(str(path))
    code = (
        "import sys, keras\n"
        "from dropout_ref.tensorflow import MLP  # noqa: F401  (registers the class)\n"
        "m = keras.models.load_model(sys.argv[1])\n"
        "print(type(m).__name__, m.spec.num_inputs, m.dropout1, m.dropout2)\n"
        "print(float(m.get_weights()['W2'].sum()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.split("\n")
    assert lines[0] == "MLP 6 0.25 0.75"
    assert float(lines[1]) == pytest.approx(float(model.get_weights()["W2"].sum()), rel=1e-6)
