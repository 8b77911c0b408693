"""SPEC P8 for Keras 3 on its three backends: one model, the same masks, the same training run.

Every mask here is Philox with a fixed seed and offset: the checks are deterministic
(false-alarm probability 0); the "masks matter" checks compare two fixed seeds.

Keras picks its backend once per process (``KERAS_BACKEND``), so the checks run in a
subprocess per backend: this file is also the worker (``python test_doors_keras.py
<job>[,<job>...] <backend> <dir>``), which writes its results to files that the tests read.
One subprocess per backend runs every job in turn (``train,values,raise``: ``raise`` patches
the generators to raise, so it comes last), so Keras and the framework load once per backend.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BACKENDS = ("tensorflow", "jax", "torch")
SEED = 11
STEPS = 3
#: The Keras backends whose default training step is compiled (SPEC P9: tf.function, jax.jit).
COMPILED_BACKENDS = ("tensorflow", "jax")
VOCAB, SEQ, BATCH, EMBED, CLASSES = 20, 6, 4, 8, 3


# --- the worker (runs in a subprocess with KERAS_BACKEND set) ----------------------------------


def _model():
    import keras
    from keras import layers

    tokens = keras.Input((SEQ,), dtype="int32")
    h = layers.Embedding(VOCAB, EMBED)(tokens)
    h = layers.Dropout(0.2)(h)
    h = layers.MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.3)(h, h)
    h = layers.SpatialDropout1D(0.25)(h)
    h = layers.Dropout(0.0)(h)  # rate 0 in training: a site all the same (P8)
    h = layers.MultiHeadAttention(num_heads=2, key_dim=4)(h, h)  # dropout=0: a rate-0 site
    h = layers.LSTM(6, dropout=0.1, recurrent_dropout=0.2)(h)
    return keras.Model(tokens, layers.Dense(CLASSES)(h))


def _data():
    rng = np.random.default_rng(5)
    return (rng.integers(0, VOCAB, (BATCH, SEQ)).astype("int32"),
            rng.integers(0, CLASSES, (BATCH,)).astype("int32"))


def _context(backend: str):
    return importlib.import_module(f"dropout_ref.{backend}").portable_masks


def _site_rows(sites) -> list[list]:
    return [[s.j, list(s.shape), s.rate, None if s.noise_shape is None else list(s.noise_shape)]
            for s in sites]


def _train(backend: str, out: Path) -> None:
    """Three SGD steps inside portable_masks(SEED), eager, from the weights in ``out``."""
    import keras

    model = _model()
    weights_file = out / "initial.npz"
    if not weights_file.exists():  # the first backend draws the weights (shapes: Keras')
        rng = np.random.default_rng(0)
        drawn = [rng.normal(0, 0.3, w.shape).astype("float32") for w in model.get_weights()]
        np.savez(weights_file, *drawn)
    with np.load(weights_file) as f:
        model.set_weights([f[f"arr_{i}"] for i in range(len(f.files))])
    initial = model.get_weights()
    _compile(model, eager=True)
    x, y = _data()
    portable_masks = _context(backend)
    with portable_masks(SEED) as ctx:
        losses = [float(model.train_on_batch(x, y)) for _ in range(STEPS)]
    compiled = _compiled_runs(backend, initial, x, y) if backend in COMPILED_BACKENDS else {}
    train_sites = _site_rows(ctx.sites)
    sources = [s.source for s in ctx.sites]
    with portable_masks(SEED) as ctx:
        model(x, training=False)
        model.predict_on_batch(x)
    eval_count = ctx.count
    outputs = []
    for seed in (SEED, SEED + 1):  # another seed draws other masks: the masks matter
        with portable_masks(seed):
            outputs.append(np.asarray(keras.ops.convert_to_numpy(model(x, training=True))))
    np.savez(
        out / f"{backend}.npz", *model.get_weights(), losses=np.asarray(losses),
        sites=json.dumps(train_sites), sources=json.dumps(sources), eval_count=eval_count,
        out_seed=outputs[0], out_other=outputs[1], **compiled,
    )


def _compile(model, *, eager: bool) -> None:
    import keras

    options = {"run_eagerly": True, "jit_compile": False} if eager else {}  # else Keras' defaults
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), **options,
    )


def _compiled_runs(backend: str, initial: list, x: np.ndarray, y: np.ndarray) -> dict:
    """SPEC P9: Keras' default compiled step, inside one context entered eagerly.

    ``train_on_batch`` three times, and ``fit`` over the same three batches (one epoch, no
    shuffling): each must equal the eager steps, batch k dropping what eager step k drops.
    """
    portable_masks = _context(backend)
    runs = {}
    for how in ("train_on_batch", "fit"):
        model = _model()
        model.set_weights(initial)
        _compile(model, eager=False)
        with portable_masks(SEED) as ctx:
            if how == "fit":
                model.fit(np.concatenate([x] * STEPS), np.concatenate([y] * STEPS),
                          batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
            else:
                for _ in range(STEPS):
                    model.train_on_batch(x, y)
        runs[f"compiled_{how}_count"] = ctx.count
        for i, w in enumerate(model.get_weights()):
            runs[f"compiled_{how}_{i}"] = w
    return runs


def _raising_rngs(backend: str) -> list[tuple[object, str]]:
    """The owners and names of the framework's and Keras' own random draws on ``backend``."""
    from keras.src.random.seed_generator import SeedGenerator

    owners: list[tuple[object, str]] = [(SeedGenerator, "next")]
    if backend == "tensorflow":
        import tensorflow as tf

        owners += [(tf.random, "stateless_uniform"), (tf.random, "uniform"),
                   (tf.random, "stateless_binomial")]
    elif backend == "jax":
        import jax

        owners += [(jax.random, "bernoulli"), (jax.random, "uniform"), (jax.random, "bits")]
    else:
        import torch

        owners += [(torch, "bernoulli"), (torch, "rand"), (torch, "rand_like"),
                   (torch.nn.functional, "dropout")]
    return owners


class _NativeDrawError(RuntimeError):
    pass


def _install_raisers(backend: str) -> None:
    for owner, name in _raising_rngs(backend):
        def raiser(*args, _name=name, **kwargs):
            raise _NativeDrawError(f"native random draw {_name}")

        setattr(owner, name, raiser)


def _doors() -> dict:
    """Each Keras 3 door as (call, expected rate, expected noise shape or None) on one input."""
    import keras
    from keras import layers

    x = np.random.default_rng(3).random((2, 5, 4)).astype("float32")
    seq = keras.ops.convert_to_tensor(x)
    img = keras.ops.convert_to_tensor(np.ones((2, 3, 3, 4), "float32"))
    vol = keras.ops.convert_to_tensor(np.ones((2, 2, 2, 2, 4), "float32"))
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=2, dropout=0.4)
    gqa = layers.GroupQueryAttention(head_dim=2, num_query_heads=2, num_key_value_heads=1,
                                       dropout=0.4)
    attention = layers.Attention(dropout=0.4)
    mha0 = layers.MultiHeadAttention(num_heads=2, key_dim=2, dropout=0.0)
    gqa0 = layers.GroupQueryAttention(head_dim=2, num_query_heads=2, num_key_value_heads=1)
    attention0 = layers.Attention()
    rnns = {name: cls(3, dropout=0.3, recurrent_dropout=0.2)
            for name, cls in (("LSTM", layers.LSTM), ("GRU", layers.GRU),
                              ("SimpleRNN", layers.SimpleRNN))}
    doors = {
        "Dropout": lambda: layers.Dropout(0.3)(seq, training=True),
        "Dropout rate 0": lambda: layers.Dropout(0.0)(seq, training=True),
        "SpatialDropout1D": lambda: layers.SpatialDropout1D(0.3)(seq, training=True),
        "SpatialDropout2D": lambda: layers.SpatialDropout2D(0.3)(img, training=True),
        "SpatialDropout3D": lambda: layers.SpatialDropout3D(0.3)(vol, training=True),
        "MultiHeadAttention": lambda: mha(seq, seq, training=True),
        "GroupedQueryAttention": lambda: gqa(seq, seq, training=True),
        "Attention": lambda: attention([seq, seq], training=True),
        "keras.random.dropout": lambda: keras.random.dropout(seq, 0.3),
        # rate 0 in training: Keras skips the dropout; the attention takes its number.
        "MultiHeadAttention rate 0": lambda: mha0(seq, seq, training=True),
        "GroupedQueryAttention rate 0": lambda: gqa0(seq, seq, training=True),
        "Attention rate 0": lambda: attention0([seq, seq], training=True),
    }
    for name, rnn in rnns.items():
        doors[name] = lambda rnn=rnn: rnn(seq, training=True)
    return doors


def _refused() -> dict:
    import keras
    from keras import layers

    seq = keras.ops.convert_to_tensor(np.ones((2, 5, 4), "float32"))
    return {
        "AlphaDropout": lambda: layers.AlphaDropout(0.3)(seq, training=True),
        "GaussianDropout": lambda: layers.GaussianDropout(0.3)(seq, training=True),
    }


def _patched_attributes() -> list:
    """The Keras attributes the context replaces, as Keras defines them."""
    import keras
    from keras.src.layers.rnn.rnn import RNN

    random = sys.modules[f"keras.src.backend.{keras.backend.backend()}.random"]
    return [keras.layers.Dropout.call, RNN.call, random.dropout,
            keras.layers.MultiHeadAttention._compute_attention]


def _raise_check(backend: str, out: Path) -> None:
    """Every door with the native generators raising: inside it runs, outside it raises."""
    doors, refused = _doors(), _refused()
    # Build the layers (their weights) before the generators raise.
    for call in doors.values():
        call()
    _install_raisers(backend)
    portable_masks = _context(backend)
    before = _patched_attributes()
    try:  # leaving the context restores Keras, also after an exception (P8)
        with portable_masks(SEED):
            assert _patched_attributes() != before
            raise KeyError("boom")
    except KeyError:
        pass
    report: dict[str, dict] = {}
    for name, call in doors.items():
        with portable_masks(SEED) as ctx:
            call()
        outside = "ran"
        try:
            call()
        except _NativeDrawError:
            outside = "native draw"
        report[name] = {"sites": _site_rows(ctx.sites), "sources": [s.source for s in ctx.sites],
                        "outside": outside}
    for name, call in refused.items():
        with portable_masks(SEED):
            try:
                call()
                inside = "ran"
            except NotImplementedError as error:
                inside = str(error)
        try:
            call()
            outside = "ran"
        except _NativeDrawError:
            outside = "native draw"
        report[name] = {"inside": inside, "outside": outside}
    report["restored"] = {"same": _patched_attributes() == before}
    (out / f"raise_{backend}.json").write_text(json.dumps(report))


def _single_sites(backend: str, out: Path) -> None:
    """Values: each simple door's output is dropout_layer at its site (P8)."""
    import keras

    layer = importlib.import_module(f"dropout_ref.{backend}").dropout_layer
    x = keras.ops.convert_to_tensor(np.random.default_rng(3).random((2, 5, 4)).astype("float32"))
    with _context(backend)(SEED):
        got = [keras.layers.Dropout(0.3)(x, training=True),
               keras.layers.SpatialDropout1D(0.3)(x, training=True),
               keras.random.dropout(x, 0.5, noise_shape=(None, 1, 4))]
    want = [layer(x, 0.3, seed=SEED, offset=0),
            layer(x, 0.3, seed=SEED, offset=2**40, noise_shape=[2, 1, 4]),
            layer(x, 0.5, seed=SEED, offset=2 * 2**40, noise_shape=[2, 1, 4])]
    np.savez(out / f"values_{backend}.npz",
             got=np.stack([keras.ops.convert_to_numpy(g) for g in got]),
             want=np.stack([keras.ops.convert_to_numpy(w) for w in want]))


_JOBS = {"train": _train, "raise": _raise_check, "values": _single_sites}


# --- the tests ----------------------------------------------------------------------------------


#: Every job, in the order one process runs them (``raise`` leaves the generators raising).
ALL_JOBS = ("train", "values", "raise")


def _run(jobs: tuple[str, ...], backend: str, out: Path) -> None:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, __file__, ",".join(jobs), backend, str(out)], env=env,
        capture_output=True, text=True, timeout=900,
    )
    if done.returncode != 0:
        raise AssertionError(
            f"{','.join(jobs)} on KERAS_BACKEND={backend} failed:\n{done.stderr[-4000:]}"
        )


def _available(backend: str) -> bool:
    module = {"tensorflow": "tensorflow", "jax": "flax", "torch": "torch"}[backend]
    return importlib.util.find_spec("keras") is not None and (
        importlib.util.find_spec(module) is not None
    )


def _require(backend: str) -> None:
    pytest.importorskip("keras")
    pytest.importorskip({"tensorflow": "tensorflow", "jax": "flax", "torch": "torch"}[backend])


@pytest.fixture(scope="module")
def keras_runs(tmp_path_factory) -> Path:
    """Every job on every Keras backend installed here, one subprocess per backend."""
    out = tmp_path_factory.mktemp("keras3")
    for backend in BACKENDS:  # tensorflow first: its train job draws the shared weights
        if _available(backend):
            _run(ALL_JOBS, backend, out)
    return out


@pytest.fixture(scope="module")
def trained(keras_runs) -> dict[str, dict]:
    out = keras_runs
    for backend in BACKENDS:
        _require(backend)
    results = {}
    for backend in BACKENDS:
        with np.load(out / f"{backend}.npz") as f:
            n = sum(1 for k in f.files if k.startswith("arr_"))
            results[backend] = {
                "weights": [f[f"arr_{i}"] for i in range(n)], "losses": f["losses"],
                "sites": json.loads(str(f["sites"])), "sources": json.loads(str(f["sources"])),
                "eval_count": int(f["eval_count"]), "out_seed": f["out_seed"],
                "out_other": f["out_other"],
                "compiled": {
                    how: ([f[f"compiled_{how}_{i}"] for i in range(n)],
                          int(f[f"compiled_{how}_count"]))
                    for how in ("train_on_batch", "fit") if f"compiled_{how}_0" in f.files
                },
            }
    with np.load(out / "initial.npz") as f:
        results["initial"] = {"weights": [f[f"arr_{i}"] for i in range(len(f.files))]}
    return results


@pytest.mark.one_environment
def test_p8_keras3_three_backends_train_to_the_same_weights(trained):
    """P8: one Keras model, 3 eager SGD steps in each backend's context, the same weights."""
    ref = trained["tensorflow"]
    moved = max(float(np.abs(a - b).max())
                for a, b in zip(ref["weights"], trained["initial"]["weights"], strict=True))
    assert moved > 1e-3, "the steps must change the weights for the comparison to mean anything"
    for backend in ("jax", "torch"):
        got = trained[backend]
        assert len(got["weights"]) == len(ref["weights"])
        for i, (a, b) in enumerate(zip(ref["weights"], got["weights"], strict=True)):
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-5, err_msg=f"{backend} weight {i}")
        np.testing.assert_allclose(got["losses"], ref["losses"], rtol=1e-5, atol=0)


@pytest.mark.one_environment
@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
def test_p9_keras3_compiled_fit_and_train_on_batch_equal_the_eager_steps(trained, backend):
    """P9: Keras' default compiled step (tf.function / jax.jit) inside one eagerly entered
    context numbers its sites at run time: 3 compiled train_on_batch calls, and fit over the
    same 3 batches, end at the eager run's weights (fresh masks every batch: the same sites)."""
    eager = trained[backend]
    per_step = len(eager["sites"]) // STEPS
    assert set(eager["compiled"]) == {"train_on_batch", "fit"}
    for how, (weights, count) in eager["compiled"].items():
        assert count == STEPS * per_step, how
        for i, (a, b) in enumerate(zip(eager["weights"], weights, strict=True)):
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-5, err_msg=f"{backend} {how} {i}")


@pytest.mark.one_environment
def test_p8_keras3_three_backends_number_the_same_sites(trained):
    """P8: the site tables (j, shape, rate, noise shape) are equal across the backends."""
    ref = trained["tensorflow"]["sites"]
    per_step = len(ref) // STEPS
    # Dropout, MHA scores, SpatialDropout1D, Dropout(0), MHA(dropout=0) scores,
    # 4 input + 4 recurrent LSTM masks.
    assert per_step == 13 and len(ref) == STEPS * per_step
    assert [row[0] for row in ref] == list(range(len(ref)))
    step = ref[:per_step]
    assert step[1][1] == [BATCH, 2, SEQ, SEQ] and step[1][2] == pytest.approx(0.3)
    assert step[2][3] == [BATCH, 1, EMBED] and step[3][2] == 0.0
    assert step[4][1:3] == [[BATCH, 2, SEQ, SEQ], 0.0]
    assert [row[1] for row in step[5:]] == [[BATCH, EMBED]] * 4 + [[BATCH, 6]] * 4
    for backend in ("jax", "torch"):
        assert trained[backend]["sites"] == ref, backend
        assert trained[backend]["sources"] == trained["tensorflow"]["sources"], backend


@pytest.mark.one_environment
def test_p8_keras3_eval_mode_takes_no_number_and_masks_matter(trained):
    """P8: eval-mode calls (also the LSTM's unused pre-drawn masks) number nothing."""
    for backend in BACKENDS:
        assert trained[backend]["eval_count"] == 0, backend
        a, b = trained[backend]["out_seed"], trained[backend]["out_other"]
        assert float(np.abs(a - b).max()) > 1e-3, backend  # another seed: other masks
    for backend in ("jax", "torch"):
        np.testing.assert_allclose(trained[backend]["out_seed"], trained["tensorflow"]["out_seed"],
                                   rtol=0, atol=1e-5)


@pytest.mark.one_environment
@pytest.mark.parametrize("backend", BACKENDS)
def test_p8_keras3_doors_never_draw_native_masks(backend, keras_runs):
    """P8: with Keras' and the framework's generators raising, every door runs in the context.

    The same calls outside the context reach the raising generators (the test can fail).
    """
    _require(backend)
    report = json.loads((keras_runs / f"raise_{backend}.json").read_text())
    masks = {"LSTM": 8, "GRU": 6, "SimpleRNN": 2}  # LSTM 4 + 4, GRU 3 + 3, SimpleRNN 1 + 1
    assert report.pop("restored") == {"same": True}, backend
    for name, row in report.items():
        if name in ("AlphaDropout", "GaussianDropout"):
            assert f"keras.layers.{name}" in row["inside"], (backend, name, row)
            assert row["outside"] == "native draw", (backend, name, row)
            continue
        assert len(row["sites"]) == masks.get(name, 1), (backend, name, row)
        assert row["outside"] == ("ran" if name.endswith("rate 0") else "native draw"), (
            backend, name, row)
    assert report["MultiHeadAttention"]["sites"][0][1] == [2, 2, 5, 5]
    for name in ("MultiHeadAttention", "GroupedQueryAttention", "Attention"):
        [site] = report[f"{name} rate 0"]["sites"]
        assert site[1:3] == [[2, 2, 5, 5] if "Attention" != name else [2, 5, 5], 0.0], name
    assert report["Attention"]["sources"] == ["keras.random.dropout"]
    assert report["SpatialDropout2D"]["sites"][0][3] == [2, 1, 1, 4]
    assert report["SpatialDropout3D"]["sites"][0][3] == [2, 1, 1, 1, 4]


@pytest.mark.one_environment
@pytest.mark.parametrize("backend", BACKENDS)
def test_p8_keras3_door_values_are_dropout_layer_at_the_site(backend, keras_runs):
    """P8: the j-th Keras dropout is dropout_layer(T, p, seed, j * 2**40) with its noise shape."""
    _require(backend)
    with np.load(keras_runs / f"values_{backend}.npz") as f:
        np.testing.assert_array_equal(f["got"], f["want"])
        assert (f["got"] == 0).any() and (f["got"] != 0).any()


def test_p8_keras3_door_tables_have_one_entry_per_backend():
    """P8: each Keras 3 door is an entry of the tensorflow, jax and torch door tables."""
    from dropout_ref.doors.keras3 import keras3_doors

    for backend in BACKENDS:
        _require(backend)
        table = importlib.import_module(f"dropout_ref.{backend}.intercept").DOORS
        for door in keras3_doors(backend):
            assert door in table, (backend, door)
    with pytest.raises(ValueError, match=r"backend must be one of.*'mxnet'"):
        keras3_doors("mxnet")


if __name__ == "__main__":
    jobs, backend_name, directory = sys.argv[1:4]
    for job in jobs.split(","):
        _JOBS[job](backend_name, Path(directory))


# --- Keras 2 (tf_keras) in TensorFlow's context, in this process ------------------------------


def _tf_keras_raisers(monkeypatch) -> None:
    """Make TensorFlow's own random draws behind every tf_keras dropout path raise."""
    import tensorflow as tf
    from tensorflow.python.ops import random_ops, stateless_random_ops

    def raiser(*args, **kwargs):
        raise _NativeDrawError("native TensorFlow random draw")

    monkeypatch.setattr(random_ops, "random_uniform", raiser)
    monkeypatch.setattr(stateless_random_ops, "stateless_random_uniform", raiser)
    monkeypatch.setattr(tf.random.Generator, "uniform", raiser)
    from tf_keras.src.backend import RandomGenerator

    # tf_keras' own draws (AlphaDropout's uniform, GaussianDropout's normal noise).
    monkeypatch.setattr(RandomGenerator, "random_uniform", raiser)
    monkeypatch.setattr(RandomGenerator, "random_normal", raiser)


def _tf_keras_doors() -> dict:
    """Each tf_keras / compat door as a call on one input, with the sites it should number."""
    import tensorflow as tf
    import tf_keras
    from tf_keras.src.backend import RandomGenerator

    x = tf.constant(np.random.default_rng(3).random((2, 5, 4)).astype("float32"))
    lstm = tf_keras.layers.LSTM(3, dropout=0.3, recurrent_dropout=0.2)
    gru = tf_keras.layers.GRU(3, dropout=0.3, recurrent_dropout=0.2)
    lstm(x), gru(x)  # build their weights before the generators raise
    generators = {t: RandomGenerator(seed=1, rng_type=t)
                  for t in ("stateless", "stateful", "legacy_stateful")}

    def sampler(shape, dtype):
        raise _NativeDrawError("general_dropout's uniform_sampler was called")

    doors = {
        "Dropout": (lambda: tf_keras.layers.Dropout(0.3)(x, training=True), 1),
        "Dropout rate 0": (lambda: tf_keras.layers.Dropout(0.0)(x, training=True), 1),
        "Dropout eval": (lambda: tf_keras.layers.Dropout(0.3)(x, training=False), 0),
        "SpatialDropout1D": (lambda: tf_keras.layers.SpatialDropout1D(0.3)(x, training=True), 1),
        "LSTM": (lambda: lstm(x, training=True), 8),  # implementation 1: 4 + 4 masks
        "GRU": (lambda: gru(x, training=True), 6),  # 3 + 3 masks
        "tf.compat.v2.nn.dropout": (lambda: tf.compat.v2.nn.dropout(x, 0.3), 1),
        "tf.compat.v1.nn.dropout": (lambda: tf.compat.v1.nn.dropout(x, keep_prob=0.7), 1),
        "general_dropout": (
            lambda: tf.compat.v2.nn.experimental.general_dropout(x, 0.3, sampler), 1),
    }
    for rng_type, generator in generators.items():
        doors[f"RandomGenerator {rng_type}"] = (
            lambda g=generator: g.dropout(x, 0.3), 1)
    return doors


def test_p8_tf_keras_doors_never_draw_native_masks(monkeypatch):
    """P8: tf_keras' Dropout family, RNN masks, every RandomGenerator path, compat modules.

    With TensorFlow's random draws raising, each door runs inside the context and numbers
    its sites; outside, the same call raises (the raisers are reached: the test can fail).
    """
    pytest.importorskip("tf_keras")
    import tf_keras

    from dropout_ref import tensorflow as tf_backend

    doors = _tf_keras_doors()
    _tf_keras_raisers(monkeypatch)
    for name, (call, sites) in doors.items():
        with tf_backend.portable_masks(SEED) as ctx:
            call()
        assert ctx.count == sites, (name, ctx.sites)
        if sites and name != "Dropout rate 0":
            with pytest.raises(_NativeDrawError):
                call()
    x = np.ones((2, 5, 4), "float32")
    for refused in (tf_keras.layers.AlphaDropout, tf_keras.layers.GaussianDropout):
        with tf_backend.portable_masks(SEED):
            with pytest.raises(NotImplementedError, match=f"tf_keras.layers.{refused.__name__}"):
                refused(0.3)(x, training=True)
        with pytest.raises(_NativeDrawError):
            refused(0.3)(x, training=True)


def test_p8_tf_keras_values_and_noise_shapes_are_dropout_layer_at_the_site():
    """P8: the j-th tf_keras dropout is dropout_layer(T, p, seed, j * 2**40), noise shape kept."""
    pytest.importorskip("tf_keras")
    import tensorflow as tf
    import tf_keras

    from dropout_ref import tensorflow as tf_backend

    x = tf.constant(np.random.default_rng(3).random((2, 5, 4)).astype("float32"))
    with tf_backend.portable_masks(SEED) as ctx:
        got = [tf_keras.layers.Dropout(0.3)(x, training=True),
               tf_keras.layers.SpatialDropout1D(0.3)(x, training=True),
               tf_keras.layers.Dropout(0.5, noise_shape=(None, 1, 4))(x, training=True)]
    layer = tf_backend.dropout_layer
    want = [layer(x, 0.3, seed=SEED, offset=0),
            layer(x, 0.3, seed=SEED, offset=2**40, noise_shape=[2, 1, 4]),
            layer(x, 0.5, seed=SEED, offset=2 * 2**40, noise_shape=[2, 1, 4])]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g.numpy(), w.numpy())
    assert [s.noise_shape for s in ctx.sites] == [None, (2, 1, 4), (2, 1, 4)]
