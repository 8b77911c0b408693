"""Portable masks: ``dropout_layer(X, p, seed=s, offset=o)`` in every backend (SPEC P1, P2, P4-P6).

The generator itself and its known answers (P3) are in ``test_philox.py``.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dropout_ref.conformance.stats import (
    DEFAULT_ALPHA,
    binomial_count_interval,
    chi_square_bound,
    correlation_bound,
)
from dropout_ref.core.philox import numpy_keep_mask, numpy_words
from dropout_ref.core.registry import get_backend
from dropout_ref.core.thresholds import word_threshold
from dropout_ref.numpy import dropout_layer as numpy_dropout_layer

COUNTERS = 2**64


def array_scope(backend):
    """NumPy shape semantics for MXNet, whose legacy semantics reject 0-d and empty arrays.

    The dropout adapter itself still needs ``npx.set_np()`` for those shapes (reported
    separately); the portable mask does not (see ``test_p2_mxnet_mask_without_np_shape``).
    """
    if backend.ops.name == "mxnet":
        from dropout_ref.mxnet.framework import mx

        return mx.util.np_shape(True)
    return contextlib.nullcontext()


def input_array(shape, dtype="float32"):
    """Values in [0.5, 2): never 0, so a 0 in the output means "dropped"."""
    return np.random.default_rng(12345).uniform(0.5, 2.0, size=shape).astype(dtype)


def run_both(backend, shape, rate, seed, offset, dtype="float32"):
    """Return (backend output, numpy oracle output) as NumPy arrays."""
    x = input_array(shape, dtype)
    with array_scope(backend):
        xb = backend.arrays.from_numpy(x, dtype)
        got = backend.arrays.to_numpy(backend.dropout_layer(xb, rate, seed=seed, offset=offset))
    return got, numpy_dropout_layer(x, rate, seed=seed, offset=offset)


def assert_agrees_with_oracle(got, expected):
    """P2: the same keep mask bit for bit, kept values within 1 ulp (D5) of the oracle's."""
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got == 0, expected == 0)
    expected = expected.astype(got.dtype)
    ulp = np.spacing(np.abs(expected))
    assert (np.abs(got.astype(np.float64) - expected.astype(np.float64)) <= ulp).all()


# -- P1 -------------------------------------------------------------------------------------------


def test_p1_same_call_same_result(backend):
    """P1: the same (X, p, seed, offset) gives the same output, twice over."""
    x = backend.arrays.from_numpy(input_array((40, 25)))
    first = backend.arrays.to_numpy(backend.dropout_layer(x, 0.3, seed=5, offset=7))
    second = backend.arrays.to_numpy(backend.dropout_layer(x, 0.3, seed=5, offset=7))
    np.testing.assert_array_equal(first, second)


def test_p1_mask_depends_only_on_shape_rate_seed_offset(backend):
    """P1: other values of X (same shape) get the same keep positions."""
    a = backend.arrays.from_numpy(input_array((40, 25)))
    b = backend.arrays.from_numpy(input_array((40, 25)) + 3.0)
    keep_a = backend.arrays.to_numpy(backend.dropout_layer(a, 0.3, seed=5)) != 0
    keep_b = backend.arrays.to_numpy(backend.dropout_layer(b, 0.3, seed=5)) != 0
    np.testing.assert_array_equal(keep_a, keep_b)


def test_p1_touches_no_global_rng(backend):
    """P1: a portable call between seeding and drawing leaves the global draw unchanged.

    The next draw is 1000 fair coins, so a generator that consumed the global
    stream would be caught with probability 1 - 2**-1000.
    """
    x = backend.arrays.from_numpy(input_array((1000,)))
    backend.arrays.seed_global(123)
    expected = backend.arrays.to_numpy(backend.ops.global_keep_mask(x, 0.5))
    backend.arrays.seed_global(123)
    backend.dropout_layer(x, 0.5, seed=9, offset=3)
    got = backend.arrays.to_numpy(backend.ops.global_keep_mask(x, 0.5))
    np.testing.assert_array_equal(got, expected)


def test_p1_numpy_and_torch_generator_states_unchanged():
    """P1: the global generator states of NumPy (and torch, if installed) are untouched."""
    state = np.random.get_state()
    numpy_dropout_layer(input_array((100,)), 0.5, seed=1)
    after = np.random.get_state()
    assert all(np.array_equal(a, b) for a, b in zip(state, after, strict=True))
    torch = pytest.importorskip("torch")
    from dropout_ref.torch import dropout_layer

    torch_state = torch.get_rng_state()
    dropout_layer(torch.ones(100), 0.5, seed=1)
    assert torch.equal(torch.get_rng_state(), torch_state)


# -- P2 -------------------------------------------------------------------------------------------

EDGE_SHAPES = [(), (0,), (2, 0, 3), (1,), (3, 5, 7)]


@pytest.mark.parametrize("shape", EDGE_SHAPES)
@pytest.mark.parametrize("seed", [0, 2**64 - 1])
def test_p2_edge_cases_bit_identical(backend, shape, seed):
    """P2: 0-d, empty and odd shapes; extreme seeds; offsets at 0, across 2**32 and at the end."""
    size = int(np.prod(shape, dtype=np.int64))
    for offset in (0, 2**32 - 50, COUNTERS - size):
        for rate in (2**-33, 0.5, 0.999, 1 - 2**-40):
            assert_agrees_with_oracle(*run_both(backend, shape, rate, seed, offset))


SHAPES = st.one_of(
    st.sampled_from([*EDGE_SHAPES, (33, 17), (1000,), (4, 4, 4, 4)]),
    st.lists(st.integers(0, 9), max_size=3).map(tuple),
)
RATES = st.sampled_from([1e-9, 2**-32, 0.2, 0.5, 0.999, 1 - 2**-40]) | st.floats(
    0.0, 1.0, exclude_min=True, exclude_max=True
)
SEEDS = st.sampled_from([0, 1, 2**32 - 1, 2**32, 2**64 - 1]) | st.integers(0, 2**64 - 1)
OFFSETS = st.sampled_from([0, 2**32 - 7, 2**32, 2**40, 2**63, COUNTERS]) | st.integers(0, 2**64)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(shape=SHAPES, rate=RATES, seed=SEEDS, offset=OFFSETS)
def test_p2_bit_identical_across_backends(backend, shape, rate, seed, offset):
    """P2: same keep mask as the numpy oracle, bit for bit, and outputs within 1 ulp."""
    offset = min(offset, COUNTERS - int(np.prod(shape, dtype=np.int64)))
    assert_agrees_with_oracle(*run_both(backend, shape, rate, seed, offset))


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_p2_other_dtypes_same_mask(backend, dtype):
    """P2: the mask does not depend on X's dtype; outputs within 1 ulp in that dtype."""
    if dtype not in backend.arrays.float_dtypes:
        pytest.skip(f"{backend.ops.name} has no {dtype}")
    got, expected = run_both(backend, (31, 9), 0.37, 2024, 2**32 - 100, dtype)
    assert_agrees_with_oracle(got, expected)
    keep = numpy_keep_mask((31, 9), word_threshold(0.37), 2024, 2**32 - 100)
    np.testing.assert_array_equal(got != 0, keep)


def test_p2_keep_masks_bit_identical_large(backend):
    """P2: the raw keep masks agree on 2**16 elements whose counters cross 2**32."""
    x = backend.arrays.from_numpy(np.zeros((256, 256), np.float32))
    threshold = word_threshold(0.5)
    for seed, offset in [(7, 2**32 - 2**15), (2**64 - 1, 2**48)]:
        got = backend.arrays.to_numpy(backend.ops.portable_keep_mask(x, threshold, seed, offset))
        np.testing.assert_array_equal(got, numpy_keep_mask((256, 256), threshold, seed, offset))


def require_backend(name: str):
    """Import an adapter through the registry (mxnet needs its np.bool fix first), or skip."""
    try:
        return get_backend(name)
    except ImportError as exc:
        pytest.skip(str(exc))


def test_p2_mxnet_mask_without_np_shape():
    """P2: MXNet's mask works for 0-d and empty arrays without ``npx.set_np()``."""
    require_backend("mxnet")
    from dropout_ref.mxnet.framework import mnp, mx
    from dropout_ref.mxnet.philox import keep_mask

    assert not mx.util.is_np_shape()
    for shape in [(), (0,), (2, 0, 3), (4, 5)]:
        with mx.util.np_shape(True):
            x = mnp.zeros(shape)
        got = keep_mask(x, 2**31, 11, 2**32 - 3)
        assert got.shape == shape
        with mx.util.np_shape(True):
            expected = numpy_keep_mask(shape, 2**31, 11, 2**32 - 3)
            np.testing.assert_array_equal(got.asnumpy(), expected)


# -- P4 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("base", [0, 2**32 - 40])
def test_p4_shard_invariance(backend, base):
    """P4: chunks along axis 0, each with offset = base + elements before it, rebuild the mask."""
    x = input_array((11, 5, 3))
    whole = backend.arrays.to_numpy(
        backend.dropout_layer(backend.arrays.from_numpy(x), 0.4, seed=77, offset=base)
    )
    pieces, start = [], 0
    for stop in (2, 3, 3, 9, 11):  # includes an empty chunk
        chunk = x[start:stop]
        with array_scope(backend):
            out = backend.dropout_layer(
                backend.arrays.from_numpy(chunk), 0.4, seed=77, offset=base + start * 15
            )
            pieces.append(backend.arrays.to_numpy(out))
        start = stop
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    assert 0 < np.count_nonzero(whole) < whole.size


# -- P5 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cpu", "meta", "cuda"])
def test_p5_torch_mask_on_x_device(device):
    """P5: the torch mask is built by torch ops on X's device; "meta" tensors have no data,
    so any host round trip (``.cpu()``, ``.numpy()``, ``.item()``) would fail there."""
    torch = pytest.importorskip("torch")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from dropout_ref.torch.philox import keep_mask

    x = torch.zeros((6, 7), device=device)
    keep = keep_mask(x, 2**31, 5, 2**32 - 10)
    assert keep.device == x.device
    assert keep.dtype == torch.bool and keep.shape == x.shape
    if device != "meta":
        expected = numpy_keep_mask((6, 7), 2**31, 5, 2**32 - 10)
        np.testing.assert_array_equal(keep.cpu().numpy(), expected)


def test_p5_torch_no_host_conversion(monkeypatch):
    """P5: dropout_layer with a seed never converts a tensor to host data."""
    torch = pytest.importorskip("torch")
    from dropout_ref.torch import dropout_layer

    x = torch.ones((5, 4))

    def refuse(*args, **kwargs):
        raise AssertionError("host round trip in the portable mask")

    for name in ("cpu", "numpy", "item", "tolist", "__array__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    out = dropout_layer(x, 0.5, seed=1, offset=2)
    monkeypatch.undo()
    assert out.device == x.device
    np.testing.assert_array_equal(out.numpy() == 0, ~numpy_keep_mask((5, 4), 2**31, 1, 2))


def test_p5_tensorflow_graph_mode_no_python_ops():
    """P5: in tf.function with an unknown shape the whole mask is graph ops, no py_function."""
    tf = pytest.importorskip("tensorflow")
    from dropout_ref.tensorflow import dropout_layer

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
    def layer(x):
        return dropout_layer(x, 0.25, seed=2**40 + 3, offset=2**32 - 17)

    x = input_array((9, 13))
    got = layer(tf.constant(x)).numpy()
    assert_agrees_with_oracle(got, numpy_dropout_layer(x, 0.25, seed=2**40 + 3, offset=2**32 - 17))
    graph = layer.get_concrete_function().graph
    op_types = {op.type for op in graph.get_operations()}
    assert not op_types & {"PyFunc", "PyFuncStateless", "EagerPyFunc"}
    assert "Mul" in op_types and "BitwiseXor" in op_types  # the generator runs in the graph


def test_p5_tensorflow_mask_on_x_device():
    """P5: eager TensorFlow places the mask on X's device."""
    tf = pytest.importorskip("tensorflow")
    from dropout_ref.tensorflow.philox import keep_mask

    for device in ["/CPU:0"] + [d.name for d in tf.config.list_logical_devices("GPU")]:
        with tf.device(device):
            x = tf.zeros((3, 4))
        keep = keep_mask(x, 2**31, 1, 0)
        assert keep.device == x.device
        np.testing.assert_array_equal(keep.numpy(), numpy_keep_mask((3, 4), 2**31, 1, 0))


def test_p4_tensorflow_dynamic_shape_counter_overflow_raises():
    """P4: with a shape known only at run time, counters past 2**64 raise instead of wrapping."""
    tf = pytest.importorskip("tensorflow")
    from dropout_ref.tensorflow import dropout_layer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def layer(x):
        return dropout_layer(x, 0.5, seed=1, offset=COUNTERS - 4)

    assert layer(tf.ones(4)).shape == (4,)
    with pytest.raises(tf.errors.InvalidArgumentError, match="2\\*\\*64"):
        layer(tf.ones(5))


def test_p5_mxnet_mask_on_x_context(monkeypatch):
    """P5 (beyond the SPEC's torch/tf): MXNet builds the mask on X's context, no ``asnumpy``."""
    require_backend("mxnet")
    from dropout_ref.mxnet.framework import mnp
    from dropout_ref.mxnet.philox import keep_mask

    x = mnp.zeros((3, 4))

    def refuse(*args, **kwargs):
        raise AssertionError("host round trip in the portable mask")

    monkeypatch.setattr(mnp.ndarray, "asnumpy", refuse)
    keep = keep_mask(x, 2**31, 1, 0)
    monkeypatch.undo()
    assert keep.ctx == x.ctx
    np.testing.assert_array_equal(keep.asnumpy(), numpy_keep_mask((3, 4), 2**31, 1, 0))


# -- P6 -------------------------------------------------------------------------------------------
# The statistics are computed on the numpy oracle: P2 makes every backend's mask the same bits.
# Each check fails a correct generator with probability DEFAULT_ALPHA (1e-6); the whole P6
# block (12 checks) with probability at most 1.2e-5.

N = 2**20
SEED = 20240601


def keep_fraction(rate):
    """Exact P(keep) of one element: (2**32 - threshold) / 2**32."""
    return (2**32 - word_threshold(rate)) / 2**32


def correlation(a, b):
    return float(np.corrcoef(a.astype(np.float64), b.astype(np.float64))[0, 1])


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.9])
def test_p6_keep_rate(rate):
    """P6: the number of kept elements is Binomial(N, 1 - p); two-sided, false alarm 1e-6."""
    keep = numpy_keep_mask((N,), word_threshold(rate), SEED, 0)
    interval = binomial_count_interval(N, keep_fraction(rate), DEFAULT_ALPHA)
    assert int(keep.sum()) in interval, f"{keep.sum()} kept, expected {interval}"


@pytest.mark.parametrize("rate", [0.2, 0.5])
@pytest.mark.parametrize("offset", [0, 2**32 - N // 2])
def test_p6_serial_correlation(rate, offset):
    """P6: neighbours' keep indicators are uncorrelated: |r| <= z / sqrt(N - 1), false alarm 1e-6.

    One offset makes half of the counters carry into the upper counter word.
    """
    keep = numpy_keep_mask((N,), word_threshold(rate), SEED, offset)
    r = correlation(keep[:-1], keep[1:])
    assert abs(r) <= correlation_bound(N - 1, DEFAULT_ALPHA), r


@pytest.mark.parametrize("seed_step", [1, 2**32])
def test_p6_consecutive_seeds_uncorrelated(seed_step):
    """P6: masks of seeds s and s + step (low/high key word) are uncorrelated; false alarm 1e-6."""
    threshold = word_threshold(0.5)
    a = numpy_keep_mask((N,), threshold, SEED, 0)
    b = numpy_keep_mask((N,), threshold, SEED + seed_step, 0)
    r = correlation(a, b)
    assert abs(r) <= correlation_bound(N, DEFAULT_ALPHA), r


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_p6_neighbour_pairs_chi_square(rate):
    """P6: the 2x2 table of disjoint neighbour pairs (2i, 2i+1) fits the product of the
    marginals; chi-square with 3 degrees of freedom (probabilities known), false alarm 1e-6."""
    keep = numpy_keep_mask((N,), word_threshold(rate), SEED + 1, 0).reshape(-1, 2)
    q = keep_fraction(rate)
    observed = np.bincount(keep[:, 0] * 2 + keep[:, 1], minlength=4)
    marginal = np.array([1 - q, q])
    expected = len(keep) * np.outer(marginal, marginal).ravel()
    stat = float(((observed - expected) ** 2 / expected).sum())
    assert stat <= chi_square_bound(3, DEFAULT_ALPHA), stat


def test_p6_word_top_byte_uniform():
    """P6: the top 8 bits of the words are uniform: chi-square, 255 dof, false alarm 1e-6."""
    top = (numpy_words((N,), SEED + 2, 2**40) >> np.uint64(24)).astype(np.int64)
    observed = np.bincount(top, minlength=256)
    expected = N / 256
    stat = float(((observed - expected) ** 2 / expected).sum())
    assert stat <= chi_square_bound(255, DEFAULT_ALPHA), stat

