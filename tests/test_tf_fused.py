"""TensorFlow's fused default mode (one XLA kernel for large eager inputs) keeps the D clauses.

``TensorflowOps.fused_global_dropout`` draws a Philox key from TensorFlow's
global generator and runs stateless float32 uniforms, the keep rule and the
select in one ``jit_compile`` function. It normally starts at
``FUSE_MIN_SIZE`` elements; the tests lower that bound so small tensors take
the fused path (``fused_path`` fixture) and check it is the path taken.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from dropout_ref.conformance.stats import DEFAULT_ALPHA, binomial_count_interval
from dropout_ref.core.numerics import ulp_distance
from dropout_ref.core.thresholds import inverse_keep_scale, word_threshold

tf = pytest.importorskip("tensorflow")

from dropout_ref.tensorflow import dropout_layer  # noqa: E402

tf_ops = importlib.import_module("dropout_ref.tensorflow.ops")
tf_fast = importlib.import_module("dropout_ref.tensorflow.fast")

N = 4099


@pytest.fixture
def fused_path(monkeypatch):
    """Route every eager call with at least 2 elements through the fused kernel."""
    monkeypatch.setattr(tf_fast, "FUSE_MIN_SIZE", 2)
    calls = []
    original = tf_fast._fused_dropout

    def spy(*args):
        calls.append(args[0].shape)
        return original(*args)

    monkeypatch.setattr(tf_fast, "_fused_dropout", spy)
    return calls


def special_values(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n).astype(np.float32)
    x[x == 0] = 1.0
    x[::7], x[1::7], x[2::7] = np.nan, np.inf, -np.inf
    return x


def test_fused_path_is_taken_only_eagerly_and_from_the_size_bound(monkeypatch):
    """The XLA kernel serves large eager inputs; small ones and graphs use the op-by-op path."""
    assert tf_fast.FUSE_MIN_SIZE == 1 << 20
    ops = tf_ops.TensorflowOps()
    assert ops.fused_global_dropout(tf.ones([16]), 0.5, 2.0) is None
    monkeypatch.setattr(tf_fast, "FUSE_MIN_SIZE", 2)
    assert ops.fused_global_dropout(tf.ones([16]), 0.5, 2.0) is not None
    seen = []
    tf.function(lambda x: seen.append(ops.fused_global_dropout(x, 0.5, 2.0)) or x)(tf.ones([16]))
    assert seen == [None]


def test_d4_fused_keep_rate(fused_path):
    """D4: keep rate 1 - p; false-alarm probability DEFAULT_ALPHA."""
    tf.random.set_seed(3)
    n = 200_003
    out = dropout_layer(tf.ones([n]), 0.3).numpy()
    assert fused_path
    assert int((out != 0).sum()) in binomial_count_interval(n, 0.7, DEFAULT_ALPHA)


def test_d4_fused_uses_the_exact_word_threshold(fused_path, monkeypatch):
    """D4: the kernel keeps w >= ceil(p * 2**32), i.e. u = w / 2**32 >= p exactly."""
    seen = []
    original = tf_fast._fused_dropout

    def spy(X, key, threshold, scale, *counters):
        seen.append((threshold.dtype, int(threshold.numpy()), key.numpy().tolist()))
        return original(X, key, threshold, scale, *counters)

    monkeypatch.setattr(tf_fast, "_fused_dropout", spy)
    dropout_layer(tf.ones([8], tf.float16), 0.1)
    (dtype, threshold, key), = seen
    assert dtype == tf.int64 and threshold == word_threshold(0.1)
    assert all(0 <= k < 2**32 for k in key)


def test_p3_fused_words_are_the_philox_words_of_the_drawn_key(monkeypatch):
    """The fused kernel's mask is the portable mask of the drawn key (seed = k0 + k1 * 2**32)."""
    from dropout_ref.core.philox import numpy_keep_mask

    X = tf.ones([5000])
    key = tf.constant([0x12345678, 0x9ABCDEF0], tf.int64)
    threshold = word_threshold(0.4)
    scale = tf.constant(1 / 0.6, tf.float64)
    out = tf_fast._fused_dropout(X, key, tf.constant(threshold, tf.int64), scale)
    expected = numpy_keep_mask((5000,), threshold, 0x9ABCDEF0 * 2**32 + 0x12345678, 0)
    np.testing.assert_array_equal(out.numpy() != 0, expected)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_d5_d6_d7_d11_fused(fused_path, dtype):
    """D5 within 1 ulp of X / (1 - p); D6 +0.0 for NaN/inf; D7 shape/dtype; D11 X unchanged."""
    host = special_values(N).reshape(1, N)
    X = tf.constant(host, dtype=dtype)
    before = X.numpy().astype(np.float64)
    out = dropout_layer(X, 0.3)
    assert fused_path and out.shape == X.shape and out.dtype == X.dtype
    values = out.numpy().astype(np.float64)
    dropped = values == 0
    assert 0 < dropped.sum() < N
    assert not np.signbit(values[dropped]).any()
    kept = ~dropped & np.isfinite(before)
    name = "float32" if dtype == "bfloat16" else dtype
    if dtype != "bfloat16":
        assert ulp_distance(values[kept], before[kept] / 0.7, name).max() <= 1
    np.testing.assert_array_equal(X.numpy().astype(np.float64), before)


def test_d9_fused_follows_set_seed_and_draws_fresh_masks(fused_path):
    """D9: tf.random.set_seed reproduces the run; consecutive calls get different masks."""
    X = tf.ones([N])
    tf.random.set_seed(5)
    a = dropout_layer(X, 0.5).numpy()
    b = dropout_layer(X, 0.5).numpy()
    tf.random.set_seed(5)
    a2 = dropout_layer(X, 0.5).numpy()
    b2 = dropout_layer(X, 0.5).numpy()
    assert len(fused_path) == 4
    np.testing.assert_array_equal(a, a2)
    np.testing.assert_array_equal(b, b2)
    assert not np.array_equal(a, b)


def test_d8_fused_gradient(fused_path):
    """D8 with NaN cotangents: gradient keep * G / (1 - p), dropped elements exactly 0."""
    X = tf.Variable(tf.random.normal([N]))
    G = np.random.default_rng(1).standard_normal(N).astype(np.float32)
    G[::5] = np.nan
    with tf.GradientTape() as tape:
        out = dropout_layer(X, 0.25)
        loss = tf.reduce_sum(out * G)
    grad = tape.gradient(loss, X).numpy()
    assert fused_path
    keep = out.numpy() != 0
    np.testing.assert_array_equal(grad[~keep], 0.0)
    np.testing.assert_array_equal(grad[keep], G[keep] * np.float32(inverse_keep_scale(0.25)))


@pytest.mark.parametrize("offset", [0, 1, 2, 3, 4 * 2**20 + 7])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_p2_fused_portable_is_bit_identical_to_numpy(monkeypatch, offset, dtype):
    """P2: eager seed= calls on the two XLA programs equal the NumPy oracle bit for bit."""
    from dropout_ref.numpy import dropout_layer as numpy_dropout_layer

    monkeypatch.setattr(tf_fast, "FUSE_MIN_SIZE", 2)
    calls = []
    original = tf_fast._fused_dropout
    monkeypatch.setattr(tf_fast, "_fused_dropout", lambda *a: calls.append(a[4:]) or original(*a))
    x = special_values(4099)
    X = tf.cast(tf.constant(x), dtype)
    got = dropout_layer(X, 0.3, seed=2**40 + 9, offset=offset)
    assert calls == [divmod(offset, 4)] and got.dtype == X.dtype
    reference = dropout_layer(tf.constant(x), 0.3, seed=2**40 + 9, offset=offset)  # float32
    expected = numpy_dropout_layer(x, 0.3, seed=2**40 + 9, offset=offset)
    np.testing.assert_array_equal(reference.numpy(), expected)
    np.testing.assert_array_equal(
        np.asarray(tf.cast(got, tf.float32)) != 0, expected != 0
    )


def test_p3_fused_portable_refuses_carrying_block_counters(monkeypatch):
    """Block counters reaching 2**32 (c1 != 0) go the exact op-by-op way, not the programs."""
    monkeypatch.setattr(tf_fast, "FUSE_MIN_SIZE", 2)
    ops = tf_ops.TensorflowOps()
    X = tf.ones([64])
    assert ops.fused_portable_dropout(X, 2**31, 1, 4 * (2**32 - 8), 2.0) is None
    assert ops.fused_portable_dropout(X, 2**31, 1, 4 * (2**32 - 16), 2.0) is not None
