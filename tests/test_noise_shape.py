"""SPEC D12: structured dropout, ``dropout_layer(X, p, noise_shape=...)``, in every backend.

Random checks run at a false-alarm probability of ``ALPHA`` each, with bounds
from :mod:`dropout_ref.conformance.stats` and fixed seeds.
"""

from __future__ import annotations

import numpy as np
import pytest

from dropout_ref.conformance.stats import binomial_count_interval
from dropout_ref.core.contract import DropoutOps
from dropout_ref.core.philox import numpy_keep_mask
from dropout_ref.core.thresholds import word_threshold
from tests.helpers import scaled_reference, ulp_distance

ALPHA = 1e-6
SHAPE = (4, 3, 5, 6)


def values(shape, seed=0):
    """Non-zero values, so an output 0 means "dropped"."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def call(backend, x, rate, dtype="float32", **kwargs):
    X = backend.arrays.from_numpy(x, dtype)
    return backend.arrays.to_numpy(backend.dropout_layer(X, rate, **kwargs))


def assert_grouped(keep, noise_shape):
    """Every element of a group has the decision of the group's first element."""
    index = tuple(slice(0, 1) if n == 1 else slice(None) for n in noise_shape)
    first = np.broadcast_to(keep[index], keep.shape)
    assert (keep == first).all()


NOISE_SHAPES = [
    (None, None, 1, 1),  # channel dropout, Dropout2d
    (4, 1, 5, 1),
    (1, 3, 1, 6),
    (1, 1, 1, 1),  # one decision for the whole array
    (None, 3, 5, 1),
]


@pytest.mark.parametrize("noise_shape", NOISE_SHAPES)
def test_d12_default_mode_one_decision_per_group(backend, noise_shape):
    """D12: with seed=None the decision is shared along the axes where noise_shape is 1."""
    x = values(SHAPE)
    y = call(backend, x, 0.5, noise_shape=noise_shape)
    assert_grouped(y != 0, [1 if n == 1 else 0 for n in noise_shape])


@pytest.mark.parametrize("noise_shape", NOISE_SHAPES)
@pytest.mark.parametrize("offset", [0, 3, 2**32 - 5])
def test_d12_portable_counters_index_noise_elements_row_major(backend, noise_shape, offset):
    """D12 + P2/P3: the mask is numpy_keep_mask(noise shape) broadcast, in every backend."""
    x = values(SHAPE)
    y = call(backend, x, 0.4, seed=99, offset=offset, noise_shape=noise_shape)
    noise = tuple(s if n is None else n for n, s in zip(noise_shape, SHAPE, strict=True))
    expected = numpy_keep_mask(noise, word_threshold(0.4), 99, offset)
    np.testing.assert_array_equal(y != 0, np.broadcast_to(expected, SHAPE))
    kept = y != 0
    ref = scaled_reference(x, 0.4, "float32")
    assert (ulp_distance(y[kept], ref[kept], "float32") <= 1.0).all()  # D5 per element


def test_d12_full_noise_shape_is_elementwise_bit_for_bit(backend):
    """D12: a noise shape equal to X's shape is exactly element-wise dropout."""
    x = values(SHAPE)
    plain = call(backend, x, 0.3, seed=5, offset=7)
    for noise in [(None,) * 4, SHAPE, (4, None, 5, None)]:
        np.testing.assert_array_equal(
            call(backend, x, 0.3, seed=5, offset=7, noise_shape=noise), plain
        )


BAD_NOISE_SHAPES = [
    ((4, 3, 5), ValueError, "one entry per axis"),
    ((4, 3, 5, 6, 1), ValueError, "one entry per axis"),
    ((4, 2, 5, 6), ValueError, r"noise_shape\[1\].*axis 1.*got 2"),
    ((4, 3, 0, 6), ValueError, r"noise_shape\[2\].*got 0"),
    ((4, 3, 5, -1), ValueError, r"noise_shape\[3\].*got -1"),
    ((4, 3, 1.0, 6), TypeError, r"noise_shape\[2\].*1\.0"),
    ((True, 3, 5, 6), TypeError, r"noise_shape\[0\].*True"),
    ("abcd", TypeError, "noise_shape"),
    (4, TypeError, "noise_shape"),
]


@pytest.mark.parametrize(("noise_shape", "error", "pattern"), BAD_NOISE_SHAPES)
def test_d12_bad_noise_shape_raises_naming_axis_and_value(backend, noise_shape, error, pattern):
    """D12: a noise shape that does not fit X is refused, naming the axis and the value."""
    X = backend.arrays.from_numpy(values(SHAPE), "float32")
    with pytest.raises(error, match=pattern):
        backend.dropout_layer(X, 0.5, noise_shape=noise_shape)
    with pytest.raises(error, match=pattern):  # also in the portable mode
        backend.dropout_layer(X, 0.5, seed=1, noise_shape=noise_shape)


def test_d12_p3_offset_bound_counts_noise_elements(backend):
    """D12 + P3: offset + number of noise-shape elements must fit 2**64, not X's count."""
    X = backend.arrays.from_numpy(values(SHAPE), "float32")
    noise = (4, 1, 1, 1)
    y = backend.arrays.to_numpy(
        backend.dropout_layer(X, 0.5, seed=1, offset=2**64 - 4, noise_shape=noise)
    )
    expected = numpy_keep_mask(noise, 2**31, 1, 2**64 - 4)
    np.testing.assert_array_equal(y != 0, np.broadcast_to(expected, SHAPE))
    with pytest.raises(ValueError, match="offset"):
        backend.dropout_layer(X, 0.5, seed=1, offset=2**64 - 3, noise_shape=noise)


@pytest.mark.parametrize("seed", [None, 3])
def test_d12_d2_d3_d6_d7_per_group(backend, seed):
    """D12 with D2 (p=0 identity), D3 (p=1 zeros), D6 (+0.0 under NaN/inf) and D7 (dtypes)."""
    x = np.tile(np.array([np.nan, np.inf, -np.inf, -2.0, 3.0, -0.0]), (4, 3, 1))  # (4, 3, 6)
    noise = (4, 1, 6)
    for dtype in backend.arrays.float_dtypes:
        X = backend.arrays.from_numpy(x, dtype)
        same = backend.arrays.to_numpy(backend.dropout_layer(X, 0.0, seed=seed, noise_shape=noise))
        np.testing.assert_array_equal(same, backend.arrays.to_numpy(X))
        for rate in (0.5, 1.0):
            out = backend.dropout_layer(X, rate, seed=seed, noise_shape=noise)
            assert backend.arrays.dtype_name(out) == dtype
            y = backend.arrays.to_numpy(out)
            assert y.shape == x.shape
            dropped = (y == 0) & ~np.signbit(y)
            assert_grouped(dropped, (0, 1, 0))
            # A NaN/inf element is either dropped (+0.0) or kept as itself.
            nan_kept = np.isnan(x) & np.isnan(y)
            inf_kept = np.isinf(x) & (y == x)
            finite = np.isfinite(x)
            assert (dropped | nan_kept | inf_kept | finite).all(), (dtype, rate)
            if rate == 1.0:
                assert dropped.all()


@pytest.mark.parametrize("seed", [None, 11])
def test_d12_d4_keep_rate_per_group(backend, seed):
    """D12 + D4: the groups' decisions are kept with probability 1 - p (exact binomial bound).

    False-alarm probability ALPHA per (backend, seed).
    """
    rate = 0.3
    shape = (256, 64, 8)
    noise = (256, 64, 1)
    backend.arrays.seed_global(2024)
    y = call(backend, np.ones(shape), rate, seed=seed, noise_shape=noise)
    keep = y != 0
    assert_grouped(keep, (0, 0, 1))
    groups = keep[:, :, 0]
    bound = binomial_count_interval(groups.size, 1 - rate, ALPHA)
    assert int(groups.sum()) in bound


def test_d12_d9_fresh_and_reseedable(backend):
    """D12 + D9: with seed=None each call draws fresh group decisions; reseeding repeats them."""
    x = np.ones((64, 32, 3))
    noise = (64, 32, 1)
    backend.arrays.seed_global(7)
    first = call(backend, x, 0.5, noise_shape=noise)
    second = call(backend, x, 0.5, noise_shape=noise)
    backend.arrays.seed_global(7)
    again = call(backend, x, 0.5, noise_shape=noise)
    np.testing.assert_array_equal(first, again)
    # Equal masks over 2048 groups at p = 0.5: probability 2**-2048 for a correct dropout.
    assert not np.array_equal(first != 0, second != 0)


@pytest.mark.parametrize("seed", [None, 21])
def test_d12_d8_gradient_uses_the_broadcast_mask(autodiff_backend, seed):
    """D12 + D8: gradient = broadcast keep * G / (1 - p); dropped elements get exactly 0."""
    b = autodiff_backend
    x = values((6, 4, 5), seed=1)
    cot = np.random.default_rng(2).normal(size=x.shape).astype(np.float32)
    X = b.arrays.from_numpy(x, "float32")
    out, grad = b.arrays.value_and_grad(
        lambda t: b.dropout_layer(t, 0.5, seed=seed, noise_shape=(6, 1, 5)), X, cot
    )
    keep = np.asarray(out) != 0
    assert_grouped(keep, (0, 1, 0))
    assert 0 < keep.sum() < keep.size
    np.testing.assert_array_equal(np.asarray(grad)[~keep], 0.0)
    np.testing.assert_allclose(np.asarray(grad)[keep], 2.0 * cot[keep], rtol=1e-6)


def test_d12_d11_x_not_modified(backend):
    """D12 + D11: X is unchanged (the mask template is a slice of X, never written)."""
    x = values(SHAPE)
    X = backend.arrays.from_numpy(x, "float32")
    before = backend.arrays.to_numpy(X).copy()
    backend.dropout_layer(X, 0.5, noise_shape=(4, 3, 1, 1))
    backend.dropout_layer(X, 0.5, seed=2, noise_shape=(4, 3, 1, 1))
    np.testing.assert_array_equal(backend.arrays.to_numpy(X), before)


def test_d12_fused_hooks_bypassed(backend, monkeypatch):
    """D12: a structured call never reaches a backend's fused whole-X kernel."""

    def refuse(*args, **kwargs):
        raise AssertionError("fused whole-X kernel called for a structured mask")

    # Every DropoutOps has the hook (the contract's default returns None): is it overridden?
    has_fused = type(backend.ops).fused_global_dropout is not DropoutOps.fused_global_dropout
    monkeypatch.setattr(type(backend.ops), "fused_global_dropout", refuse, raising=False)
    x = values((8, 16, 4))
    y = call(backend, x, 0.5, noise_shape=(8, 1, 4))
    assert_grouped(y != 0, (0, 1, 0))
    if has_fused:  # TensorFlow, MXNet: the element-wise call does use it (the patch bites)
        with pytest.raises(AssertionError, match="fused"):
            call(backend, x, 0.5)


def test_d12_tensorflow_inside_tf_function():
    """D12 in a traced graph (also with XLA): the shared axes come from the static shape."""
    tf = pytest.importorskip("tensorflow")
    from dropout_ref.tensorflow import dropout_layer

    x = tf.constant(values((4, 3, 5)), tf.float32)
    for jit in (False, True):
        fn = tf.function(
            lambda t: dropout_layer(t, 0.5, seed=4, noise_shape=(None, 1, None)), jit_compile=jit
        )
        y = fn(x).numpy()
        expected = numpy_keep_mask((4, 1, 5), 2**31, 4, 0)
        np.testing.assert_array_equal(y != 0, np.broadcast_to(expected, y.shape))


# ---------------------------------------------------------------- the kit's structured variant


def test_d12_kit_structured_variant_passes_ours(backend):
    """D1-D12 through check_dropout(..., noise_shape=): our structured dropout conforms."""
    from dropout_ref.conformance import check_dropout

    def fn(X, p):
        return backend.dropout_layer(X, p, noise_shape=(None, 1, None))

    report = check_dropout(fn, backend=backend.ops.name, noise_shape=(None, 1, None))
    assert report.ok, report.summary()
    assert report.status("D12") == "pass"


def test_d12_kit_catches_an_unshared_mask():
    """D12 fails (and only D12) for an element-wise dropout claimed to be structured."""
    from dropout_ref.conformance import check_dropout
    from dropout_ref.numpy import dropout_layer

    report = check_dropout(dropout_layer, backend="numpy", noise_shape=(None, None, 1))
    assert report.failures == ["D12"], report.summary()
    assert "group" in report.results["D12"].message


def test_d12_kit_catches_a_group_scaled_unevenly():
    """D12 fails for a dropout that shares decisions but scales part of a group wrongly."""
    from dropout_ref.conformance import check_dropout
    from dropout_ref.numpy import dropout_layer

    def uneven(X, p):
        out = dropout_layer(X, p, noise_shape=(X.shape[0], 1, X.shape[2]))
        if out is X or out.ndim != 3 or out.shape[1] < 2:
            return out
        out = out.copy()
        out[:, 1:] *= np.float32(1.001).astype(out.dtype)
        return out

    report = check_dropout(uneven, backend="numpy", clauses=["D12"], noise_shape=(None, 1, None))
    assert report.failures == ["D12"], report.summary()
    assert "scaled" in report.results["D12"].message


def test_d12_kit_is_na_for_elementwise_runs():
    from dropout_ref.conformance import check_dropout
    from dropout_ref.numpy import dropout_layer

    assert check_dropout(dropout_layer, clauses=["D12"]).status("D12") == "n/a"


@pytest.mark.parametrize(
    ("noise_shape", "error"), [((None, 2), ValueError), ((1, 1), ValueError), ("ab", TypeError)]
)
def test_d12_kit_noise_shape_validated(noise_shape, error):
    from dropout_ref.conformance import check_dropout
    from dropout_ref.numpy import dropout_layer

    with pytest.raises(error, match="noise_shape"):
        check_dropout(dropout_layer, noise_shape=noise_shape)


def test_d12_tensorflow_unknown_batch_axis_in_a_graph():
    """D12 in a graph whose batch axis is unknown until run time (a Keras model's input)."""
    tf = pytest.importorskip("tensorflow")
    from dropout_ref.tensorflow import dropout_layer

    spec = tf.TensorSpec([None, 3, 5], tf.float32)
    fn = tf.function(
        lambda t: dropout_layer(t, 0.5, seed=4, noise_shape=(None, 1, None)), input_signature=[spec]
    )
    x = tf.constant(values((4, 3, 5)), tf.float32)
    y = fn(x).numpy()
    expected = numpy_keep_mask((4, 1, 5), 2**31, 4, 0)
    np.testing.assert_array_equal(y != 0, np.broadcast_to(expected, y.shape))
    default = tf.function(
        lambda t: dropout_layer(t, 0.5, noise_shape=(None, 1, None)), input_signature=[spec]
    )
    z = default(x).numpy()
    assert_grouped(z != 0, (0, 1, 0))
    with pytest.raises(ValueError, match=r"noise_shape\[0\].*unknown"):
        tf.function(lambda t: dropout_layer(t, 0.5, noise_shape=(4, 1, 5)), input_signature=[spec])(
            x
        )
