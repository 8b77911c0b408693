"""SPEC D1-D11 for every backend's ``dropout_layer``, through the ArrayBridge of each adapter.

Random checks use bounds from :mod:`dropout_ref.conformance.stats` at a false-alarm
probability of ``ALPHA`` per check, with fixed seeds, so a correct backend
fails one of them with probability at most ``ALPHA`` (and, seeds being fixed,
the suite is deterministic in CI).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dropout_ref.conformance.stats import (
    binomial_count_interval,
    correlation_bound,
    normal_quantile,
)
from dropout_ref.core.philox import numpy_words
from tests.helpers import scaled_reference, ulp_distance

ALPHA = 1e-6
RATES = (0.001, 0.1, 0.3, 0.5, 0.9, 0.999)


def run(backend, X_np, dropout, dtype="float32", **kwargs):
    """Call ``dropout_layer`` on ``X_np`` converted to ``dtype``; return (input, output) arrays."""
    X = backend.arrays.from_numpy(X_np, dtype)
    return X, backend.dropout_layer(X, dropout, **kwargs)


# ---------------------------------------------------------------- D1 rate validation

BAD_RATES = [
    (-0.1, ValueError, "-0.1"),
    (1.5, ValueError, "1.5"),
    (float("nan"), ValueError, "nan"),
    (float("inf"), ValueError, "inf"),
    (-float("inf"), ValueError, "-inf"),
    (True, TypeError, "True"),
    (np.bool_(False), TypeError, "False"),
    ("0.5", TypeError, "'0.5'"),
    (None, TypeError, "None"),
    (0.5j, TypeError, "0.5j"),
    (np.array([0.1, 0.2]), TypeError, "(2,)"),
    ([0.5], TypeError, "[0.5]"),
]


@pytest.mark.parametrize(("rate", "error", "shown"), BAD_RATES, ids=[repr(r[0]) for r in BAD_RATES])
def test_d1_bad_rate_raises_naming_argument_and_value(backend, rate, error, shown):
    X = backend.arrays.from_numpy(np.ones((2, 3)), "float32")
    with pytest.raises(error) as info:
        backend.dropout_layer(X, rate)
    assert "dropout" in str(info.value)
    assert shown in str(info.value)


def test_d1_multi_element_backend_tensor_refused(backend):
    X = backend.arrays.from_numpy(np.ones((2, 3)), "float32")
    rate = backend.arrays.from_numpy(np.array([0.1, 0.2]), "float32")
    with pytest.raises(TypeError, match=r"dropout .*shape \(2,\)"):
        backend.dropout_layer(X, rate)


@pytest.mark.parametrize("rate", [0.5, np.float32(0.5), np.float64(0.5), 1, np.int64(0)])
def test_d1_python_and_numpy_scalars_accepted(backend, rate):
    X = backend.arrays.from_numpy(np.ones(10), "float32")
    out = backend.dropout_layer(X, rate)
    assert backend.arrays.to_numpy(out).shape == (10,)


def test_d1_one_element_backend_tensor_accepted(backend):
    X = backend.arrays.from_numpy(np.ones(10), "float32")
    rate = backend.arrays.from_numpy(np.array(1.0), "float32")
    assert np.all(backend.arrays.to_numpy(backend.dropout_layer(X, rate)) == 0.0)


def test_d1_holds_under_python_O():
    """The check is no ``assert``: ``python -O`` still raises, on every installed backend."""
    code = (
        "import numpy as np, dropout_ref\n"
        "from dropout_ref.core.contract import kit_dropout_layer\n"
        "for name in dropout_ref.available_backends():\n"
        "    b = dropout_ref.get_backend(name)\n"
        "    X = b.arrays.from_numpy(np.ones(4), 'float32')\n"
        "    try:\n"
        "        kit_dropout_layer(b)(X, 1.5)  # JAX: with a key from the bridge's stream\n"
        "    except ValueError as e:\n"
        "        assert '1.5' in str(e)\n"
        "        print(name, 'raised')\n"
        "    else:\n"
        "        raise SystemExit(name + ' accepted 1.5 under -O')\n"
    )
    done = subprocess.run(
        [sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "numpy raised" in done.stdout


# ---------------------------------------------------------------- D2, D3


@pytest.mark.parametrize("zero", [0, 0.0, np.float32(0.0)])
def test_d2_zero_rate_returns_x_unchanged(backend, zero):
    X_np = np.array([[1.5, -2.0, np.nan], [np.inf, -0.0, 3.0]])
    X, out = run(backend, X_np, zero)
    assert backend.arrays.dtype_name(out) == "float32"
    values = backend.arrays.to_numpy(out)
    np.testing.assert_array_equal(values, backend.arrays.to_numpy(X))
    np.testing.assert_array_equal(np.signbit(values), np.signbit(X_np))  # -0.0 stays -0.0


def test_d3_all_dropped_gives_zeros_without_nan(backend):
    X_np = np.array([[np.nan, np.inf, -np.inf], [1.0, -0.0, -5.0]])
    for dtype in backend.arrays.float_dtypes:
        _, out = run(backend, X_np, 1.0, dtype)
        values = backend.arrays.to_numpy(out)
        assert backend.arrays.dtype_name(out) == dtype
        assert values.shape == X_np.shape
        assert np.all(values == 0.0) and not np.any(np.signbit(values)), (dtype, values)


def test_d3_no_runtime_warning(backend):
    with np.errstate(all="raise"):
        _, out = run(backend, np.array([np.nan, np.inf, 1.0]), 1)
    assert np.all(backend.arrays.to_numpy(out) == 0.0)


# ---------------------------------------------------------------- D4 keep rule


@pytest.mark.parametrize("rate", [0.3, 0.001, 0.999])
def test_d4_keep_rate_within_binomial_bounds(backend, rate):
    """10**6 elements: the keep count lies in the exact binomial interval (alpha 1e-6)."""
    n = 10**6
    backend.arrays.seed_global(20261121)
    _, out = run(backend, np.ones(n), rate)
    kept = int(np.count_nonzero(backend.arrays.to_numpy(out)))
    interval = binomial_count_interval(n, 1.0 - rate, ALPHA)
    assert kept in interval, f"kept {kept} of {n} at p={rate}, expected {interval}"


def test_d4_keep_rate_in_half_precision(backend):
    """Uniforms are drawn in float32 even for 16-bit X: no bias at extreme rates."""
    n = 2 * 10**6
    for dtype in set(backend.arrays.float_dtypes) & {"float16", "bfloat16"}:
        for rate in (0.001, 0.3, 0.999):
            backend.arrays.seed_global(7)
            _, out = run(backend, np.ones(n), rate, dtype)
            kept = int(np.count_nonzero(backend.arrays.to_numpy(out)))
            interval = binomial_count_interval(n, 1.0 - rate, ALPHA)
            assert kept in interval, f"{dtype} p={rate}: kept {kept}, expected {interval}"


def test_d4_keep_iff_uniform_at_least_rate(backend):
    """White box: the mask is exactly ``u >= p`` for the uniforms the framework draws."""
    from dropout_ref.core.thresholds import float32_threshold

    shape, rate = (400, 250), 0.3
    backend.arrays.seed_global(11)
    _, out = run(backend, np.ones(shape), rate)
    backend.arrays.seed_global(11)
    uniforms = draw_global_uniforms(backend, shape)
    # NumPy's float64 uniforms, JAX's and the compiled kernels' 32-bit words w / 2**32
    # compare with p itself.
    exact = backend.ops.name in ("numpy", "array_api", "jax") or uniforms.dtype == np.float64
    threshold = rate if exact else float32_threshold(rate)
    np.testing.assert_array_equal(backend.arrays.to_numpy(out) != 0, uniforms >= threshold)
    assert np.array_equal(uniforms >= threshold, uniforms.astype(np.float64) >= rate)


def draw_global_uniforms(backend, shape):
    """Draw the uniforms ``global_keep_mask`` draws, from the same generator and state."""
    name = backend.ops.name
    if name in ("numpy", "array_api"):  # array_api: the standard has no generator, NumPy's
        return np.random.random_sample(shape)
    if name == "torch":
        import torch

        return torch.rand(shape, dtype=torch.float32).numpy()
    if name == "tensorflow":
        import tensorflow as tf

        return tf.random.uniform(shape, dtype=tf.float32).numpy()
    if name == "jax":
        import jax

        words = jax.random.bits(backend.arrays.keys.next(), shape, dtype="uint32")
        return np.asarray(words, dtype=np.float64) / 2.0**32
    from dropout_ref.mxnet import fast as kernel
    from dropout_ref.mxnet.framework import mnp

    x = mnp.ones(shape, dtype="float32")
    if kernel.eligible(x):  # the compiled kernel: Philox words under a key drawn per call
        return numpy_words(shape, kernel.global_key(x), 0) / 2.0**32
    return mnp.random.uniform(0.0, 1.0, size=shape, dtype="float32").asnumpy()


def test_d4_elements_independent(backend):
    """Neighbouring elements, and rows of a batch, have uncorrelated keep indicators."""
    rows, cols, rate = 2, 500_000, 0.5
    backend.arrays.seed_global(3)
    _, out = run(backend, np.ones((rows, cols)), rate)
    keep = (backend.arrays.to_numpy(out) != 0).astype(np.float64)
    # Two checks at ALPHA each.
    bound = correlation_bound(cols - 1, ALPHA)
    neighbours = np.corrcoef(keep[0, :-1], keep[0, 1:])[0, 1]
    assert abs(neighbours) <= bound, f"neighbour correlation {neighbours:.5f} > {bound:.5f}"
    across_batch = np.corrcoef(keep[0], keep[1])[0, 1]
    assert abs(across_batch) <= correlation_bound(cols, ALPHA), f"rows correlate: {across_batch}"


# ---------------------------------------------------------------- D5, D6 values


@pytest.mark.parametrize("rate", RATES)
def test_d5_kept_within_one_ulp_of_scaled(backend, rate):
    rng = np.random.default_rng(5)
    X_np = rng.normal(0.0, 100.0, size=4096)
    for dtype in backend.arrays.float_dtypes:
        X, out = run(backend, X_np, rate, dtype)
        x_values = backend.arrays.to_numpy(X).astype(np.float64)
        values = backend.arrays.to_numpy(out).astype(np.float64)
        kept = values != 0
        reference = scaled_reference(x_values[kept], rate, dtype)
        finite = np.isfinite(reference)
        distance = ulp_distance(values[kept][finite], reference[finite], dtype)
        assert distance.size == 0 or distance.max() <= 1.0, (dtype, rate, distance.max())
        np.testing.assert_array_equal(values[kept][~finite], reference[~finite])


SUBNORMAL = {"float16": 3e-8, "bfloat16": 1e-39, "float32": 1e-40, "float64": 1e-310}


def test_d5_subnormal_inputs(backend):
    """Kept subnormals are scaled like any other value, except on TensorFlow and JAX.

    TensorFlow (and XLA's CPU backend, under JAX) runs its kernels with
    flush-to-zero/denormals-are-zero, so its casts and
    products turn float32/bfloat16/float64 subnormals into signed zeros: a documented
    deviation of our tensorflow backend (docs/deviations/tensorflow.md). This test
    pins both behaviours, so a change in either shows up.
    """
    for dtype in backend.arrays.float_dtypes:
        X_np = np.full(4000, -SUBNORMAL[dtype])
        backend.arrays.seed_global(2)
        X, out = run(backend, X_np, 0.5, dtype)
        values = backend.arrays.to_numpy(out).astype(np.float64)
        flushed = backend.ops.name in ("tensorflow", "jax") and dtype != "float16"
        if flushed:
            assert np.all(values == 0.0), dtype
            continue
        x_values = backend.arrays.to_numpy(X).astype(np.float64)
        kept = values != 0
        assert 0 < kept.sum() < kept.size, dtype
        reference = scaled_reference(x_values[kept], 0.5, dtype)
        assert ulp_distance(values[kept], reference, dtype).max() <= 1.0, dtype
        assert not np.any(np.signbit(values[~kept])), dtype


def test_d6_dropped_are_positive_zero_even_for_nan_and_inf(backend):
    X_np = np.tile(np.array([np.nan, np.inf, -np.inf, -3.0, -0.0, 2.0]), 2000)
    for dtype in backend.arrays.float_dtypes:
        backend.arrays.seed_global(1)
        _, out = run(backend, X_np, 0.5, dtype)
        values = backend.arrays.to_numpy(out)
        dropped = (X_np != 0) & (values == 0)
        assert dropped.sum() > 0
        assert not np.any(np.signbit(values[dropped])), dtype
        # NaN must not leak: NaN only where X was NaN and the element was kept.
        assert np.all(np.isnan(values) <= np.isnan(X_np)), dtype
        # 2000 NaN inputs at p=0.5: all kept or all dropped has probability 2**-1999.
        kept_nan = np.isnan(values).sum()
        assert 0 < kept_nan < np.isnan(X_np).sum(), "NaN elements should be dropped about half"


# ---------------------------------------------------------------- D7 shape, dtype, device


@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (1,), (7, 5), (2, 3, 4, 5)])
def test_d7_shape_dtype_device_kept(backend, shape):
    for dtype in backend.arrays.float_dtypes:
        for rate in (0.0, 0.4, 1.0):
            X, out = run(backend, np.ones(shape), rate, dtype)
            assert backend.arrays.dtype_name(out) == dtype
            assert backend.arrays.to_numpy(out).shape == shape
            assert backend.arrays.device_name(out) == backend.arrays.device_name(X)


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "bool"])
def test_d7_integer_and_bool_inputs_refused_with_conversion_hint(backend, dtype):
    X = backend.arrays.from_numpy(np.ones(4), dtype)
    if backend.arrays.dtype_name(X) != dtype:
        pytest.skip(f"{backend.ops.name} holds no {dtype} here (JAX without jax_enable_x64)")
    with pytest.raises(TypeError) as info:
        backend.dropout_layer(X, 0.5)
    message = str(info.value)
    assert dtype in message and "convert" in message and backend.ops.conversion_hint in message


def test_d7_foreign_array_type_refused(backend):
    wrong = [1.0, 2.0] if backend.ops.name != "numpy" else object()
    with pytest.raises(TypeError, match="X must be"):
        backend.dropout_layer(wrong, 0.5)


# ---------------------------------------------------------------- D8 gradient


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.5, 0.999, 1.0])
def test_d8_gradient_uses_forward_mask(autodiff_backend, rate):
    backend = autodiff_backend
    rng = np.random.default_rng(8)
    X_np = rng.uniform(1.0, 2.0, size=(64, 33))  # nonzero: out != 0 marks kept elements
    cotangent = rng.normal(size=X_np.shape)
    for dtype in backend.arrays.float_dtypes:
        X = backend.arrays.from_numpy(X_np, dtype)
        out, grad = backend.arrays.value_and_grad(
            lambda x: backend.dropout_layer(x, rate), X, cotangent
        )
        keep = out != 0
        assert np.all(grad[~keep] == 0.0) and not np.any(np.signbit(grad[~keep])), dtype
        g = backend.arrays.to_numpy(backend.arrays.from_numpy(cotangent, dtype)).astype(np.float64)
        if rate < 1.0:
            reference = scaled_reference(g[keep], rate, dtype)
            distance = ulp_distance(grad[keep], reference, dtype)
            assert distance.size == 0 or distance.max() <= 1.0, (dtype, rate, distance.max())


def test_d8_gradient_zero_where_x_is_nan(autodiff_backend):
    backend = autodiff_backend
    X_np = np.tile([np.nan, np.inf, 1.0], 100)
    X = backend.arrays.from_numpy(X_np, "float32")
    out, grad = backend.arrays.value_and_grad(
        lambda x: backend.dropout_layer(x, 0.5), X, np.ones(X_np.shape)
    )
    dropped = (out == 0) & (X_np != 0)
    assert dropped.any()
    assert np.all(grad[dropped] == 0.0)
    assert np.all(grad[~dropped] == 2.0)


# ---------------------------------------------------------------- D9 fresh masks, seeding


def test_d9_fresh_masks_and_reproducible_under_framework_seed(backend):
    X_np = np.ones(20_000)
    backend.arrays.seed_global(1234)
    first = backend.arrays.to_numpy(run(backend, X_np, 0.5)[1])
    second = backend.arrays.to_numpy(run(backend, X_np, 0.5)[1])
    # Two independent masks agree everywhere with probability 2**-20000.
    assert not np.array_equal(first, second)
    backend.arrays.seed_global(1234)
    again = backend.arrays.to_numpy(run(backend, X_np, 0.5)[1])
    np.testing.assert_array_equal(first, again)


# ---------------------------------------------------------------- D10 expectation


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.9])
def test_d10_mean_of_output_is_input(backend, rate):
    """z-test of sum(out) against sum(X): Var = s**2 p (1-p) sum(X**2), alpha 1e-6."""
    rng = np.random.default_rng(10)
    X_np = rng.uniform(0.5, 1.5, size=10**6)
    backend.arrays.seed_global(99)
    X, out = run(backend, X_np, rate, "float64")
    x_values = backend.arrays.to_numpy(X).astype(np.float64)
    total = backend.arrays.to_numpy(out).astype(np.float64).sum()
    scale = 1.0 / (1.0 - rate)
    sd = scale * np.sqrt(rate * (1.0 - rate) * np.sum(x_values**2))
    z = (total - x_values.sum()) / sd
    assert abs(z) <= normal_quantile(ALPHA), f"z = {z:.2f}"


# ---------------------------------------------------------------- D11 purity


@pytest.mark.parametrize("rate", [0.0, 0.5, 1.0])
def test_d11_input_not_modified(backend, rate):
    X_np = np.array([[1.0, np.nan, -2.0], [np.inf, 4.0, 5.0]])
    for dtype in backend.arrays.float_dtypes:
        X = backend.arrays.from_numpy(X_np, dtype)
        before = backend.arrays.to_numpy(X).copy()
        backend.dropout_layer(X, rate)
        np.testing.assert_array_equal(backend.arrays.to_numpy(X), before)


# ---------------------------------------------------------------- properties (hypothesis)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=9),
    rate=st.floats(0.0, 1.0),
    dtype_index=st.integers(0, 3),
    data=st.data(),
)
def test_d5_d6_d7_property_every_element_dropped_or_scaled(backend, shape, rate, dtype_index, data):
    dtype = backend.arrays.float_dtypes[dtype_index % len(backend.arrays.float_dtypes)]
    # Subnormals have their own test (TensorFlow flushes them: test_d5_subnormal_inputs).
    normal_or_zero = st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False).filter(
        lambda v: v == 0.0 or abs(v) >= 2.0**-100
    )
    X_np = data.draw(hnp.arrays(np.float64, shape, elements=normal_or_zero))
    X, out = run(backend, X_np, rate, dtype)
    x_values = backend.arrays.to_numpy(X).astype(np.float64)
    values = backend.arrays.to_numpy(out).astype(np.float64)
    assert values.shape == shape and backend.arrays.dtype_name(out) == dtype
    if rate == 0.0:
        np.testing.assert_array_equal(values, x_values)
        return
    dropped = values == 0
    assert not np.any(np.signbit(values[dropped & (x_values != 0)]))
    if rate < 1.0:
        kept = ~dropped
        reference = scaled_reference(x_values[kept], rate, dtype)
        finite = np.isfinite(reference)
        distance = ulp_distance(values[kept][finite], reference[finite], dtype)
        assert distance.size == 0 or distance.max() <= 1.0


def test_d8_mxnet_backward_outside_numpy_shape_semantics():
    """D8 on MXNet as users call it: backward() outside npx.set_np() / np_shape, every dtype.

    The bridge's value_and_grad runs inside NumPy shape semantics, which hid a 0-d constant
    in the float64 graph that made a plain backward() fail.
    """
    try:
        backend = __import__("dropout_ref").get_backend("mxnet")
    except ImportError as exc:
        pytest.skip(str(exc))
    from dropout_ref.mxnet.framework import autograd, mnp, mx

    assert not mx.util.is_np_shape()
    for dtype in backend.arrays.float_dtypes:
        x = mnp.array(np.linspace(1.0, 2.0, 1000), dtype=dtype)
        x.attach_grad()
        for kwargs in ({}, {"seed": 3}):
            with autograd.record():
                out = backend.dropout_layer(x, 0.25, **kwargs)
            out.backward()
            grad = x.grad.asnumpy().astype(np.float64)
            kept = out.asnumpy() != 0
            np.testing.assert_allclose(grad[kept], 1 / 0.75, rtol=1e-3)
            assert np.all(grad[~kept] == 0.0)


def test_d9_key_only_where_the_backend_draws_from_keys():
    """The core's key= (JAX's D9) is a TypeError on a backend with a global generator."""
    from dropout_ref.core.layer import apply_dropout
    from dropout_ref.numpy import BACKEND

    with pytest.raises(TypeError, match="key= is not supported by the numpy backend"):
        apply_dropout(BACKEND.ops, np.ones(4), 0.5, key=object())
