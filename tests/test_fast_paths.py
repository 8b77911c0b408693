"""The default-mode fast paths (and torch's compiled portable mask) keep every SPEC clause.

The torch fast path draws float32 uniforms chunk by chunk into a 1-byte mask
and writes the scaled select into the one output buffer; with autograd on it
runs the same forward inside a custom ``autograd.Function``. TensorFlow and
MXNet select against a zero. These tests pin what must not change.
"""

from __future__ import annotations

import numpy as np
import pytest

from dropout_ref.conformance.stats import DEFAULT_ALPHA, binomial_count_interval
from dropout_ref.core.thresholds import inverse_keep_scale, word_threshold

torch = pytest.importorskip("torch")

from dropout_ref.torch import BACKEND  # noqa: E402
from dropout_ref.torch import dropout_layer as torch_dropout  # noqa: E402
from dropout_ref.torch.fast.eager import UNIFORM_CHUNK  # noqa: E402

torch_ops = BACKEND.ops

#: Crosses several uniform chunks and ends in a partial one.
CHUNKED_SIZE = 3 * UNIFORM_CHUNK + 123


def special_values(n: int, seed: int = 0) -> np.ndarray:
    """Nonzero values with NaN, +-inf and negatives, so ``out == 0`` means dropped."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n).astype(np.float32)
    x[x == 0] = 1.0
    x[::7] = np.nan
    x[1::7] = np.inf
    x[2::7] = -np.inf
    return x


def test_d6_d11_nan_inf_dropped_are_positive_zero_every_backend(backend):
    """D6 in each backend's fast path: dropped elements are +0.0 even for NaN/inf; D11: X kept."""
    host = special_values(4099)
    X = backend.arrays.from_numpy(host)
    out = backend.arrays.to_numpy(backend.dropout_layer(X, 0.5))
    dropped = out == 0
    assert 0 < dropped.sum() < out.size
    assert not np.signbit(out[dropped]).any()
    kept = ~dropped
    expected = host[kept] * np.float32(2.0)
    np.testing.assert_array_equal(out[kept], expected)  # NaN == NaN for assert_array_equal
    np.testing.assert_array_equal(backend.arrays.to_numpy(X), host)


@pytest.mark.parametrize("shape", [(CHUNKED_SIZE,), (3, UNIFORM_CHUNK + 5), (), (0, 4)])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_d7_torch_fast_path_keeps_shape_dtype_device(shape, dtype):
    X = torch.ones(shape, dtype=getattr(torch, dtype))
    out = torch_dropout(X, 0.3)
    assert out.shape == X.shape and out.dtype == X.dtype and out.device == X.device
    assert set(torch.unique(out.float()).tolist()) <= {0.0, X.new_tensor(1 / 0.7).float().item()}


def test_d7_torch_fast_path_non_contiguous_input():
    X = torch.arange(1.0, 1.0 + 64 * 48).reshape(64, 48).t()
    torch.manual_seed(3)
    out = torch_dropout(X, 0.5)
    torch.manual_seed(3)
    ref = torch_dropout(X.contiguous(), 0.5)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_d4_torch_chunked_mask_keep_rate():
    """D4: keep rate of the chunked draw, false-alarm probability DEFAULT_ALPHA per check."""
    torch.manual_seed(11)
    n = 64 * UNIFORM_CHUNK + 77
    keep = torch_ops.global_keep_mask(torch.empty(n), 0.3)
    interval = binomial_count_interval(n, 0.7, DEFAULT_ALPHA)
    assert int(keep.sum()) in interval
    tail = keep[-77 - UNIFORM_CHUNK:]  # the last full chunk and the partial one
    assert int(tail.sum()) in binomial_count_interval(tail.numel(), 0.7, DEFAULT_ALPHA)


def test_d9_torch_chunked_mask_follows_manual_seed():
    X = torch.randn(CHUNKED_SIZE)
    torch.manual_seed(5)
    a = torch_dropout(X, 0.5)
    torch.manual_seed(5)
    b = torch_dropout(X, 0.5)
    c = torch_dropout(X, 0.5)
    assert torch.equal(a, b) and not torch.equal(b, c)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_d8_torch_grad_and_no_grad_paths_give_the_same_values(dtype):
    X = torch.from_numpy(special_values(CHUNKED_SIZE)).to(getattr(torch, dtype))
    torch.manual_seed(7)
    plain = torch_dropout(X, 0.4)
    torch.manual_seed(7)
    with torch.no_grad():
        no_grad = torch_dropout(X.clone().requires_grad_(True), 0.4)
    torch.manual_seed(7)
    leaf = X.clone().requires_grad_(True)
    graded = torch_dropout(leaf, 0.4)
    assert graded.requires_grad and not plain.requires_grad
    for other in (no_grad, graded.detach()):
        np.testing.assert_array_equal(other.float().numpy(), plain.float().numpy())
    assert torch.equal(leaf.detach().nan_to_num(), X.nan_to_num())  # D11


def test_d8_torch_gradient_is_keep_times_g_over_1_minus_p():
    """D8 with NaN cotangents: dropped elements get exactly 0, kept ones G / (1 - p)."""
    X = torch.randn(CHUNKED_SIZE, requires_grad=True)
    out = torch_dropout(X, 0.25)
    G = torch.randn(CHUNKED_SIZE)
    G[::5] = float("nan")
    (grad,) = torch.autograd.grad((out * G).sum(), X, create_graph=True)
    keep = out.detach() != 0
    np.testing.assert_array_equal(grad[~keep].detach().numpy(), 0.0)
    np.testing.assert_array_equal(
        grad[keep].detach().numpy(), (G[keep] * np.float32(inverse_keep_scale(0.25))).numpy()
    )


def test_d8_torch_double_backward():
    """The backward is made of differentiable ops: d2 sum(out**2) / dX2 = 2 keep / (1 - p)**2."""
    X = torch.randn(CHUNKED_SIZE, dtype=torch.float64, requires_grad=True)
    out = torch_dropout(X, 0.5)
    (grad,) = torch.autograd.grad((out**2).sum(), X, create_graph=True)
    (second,) = torch.autograd.grad(grad.sum(), X)
    keep = (out != 0).double()
    torch.testing.assert_close(second, 2 * keep * 4.0)


def test_d5_torch_float16_rounds_once():
    """D5 for float16: the kept value is the float32 product rounded once to float16."""
    X = torch.randn(CHUNKED_SIZE).half()
    out = torch_dropout(X, 0.3)
    keep = out != 0
    expected = (X.float() * np.float32(inverse_keep_scale(0.3))).half()
    assert torch.equal(out[keep], expected[keep])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("shape", "seed", "offset"),
    [((1000, 3), 2**63 + 5, 17), ((77,), 12345, 2**32 + 3), ((4, 5, 6), 0, 2**33 + 5)],
)
def test_p2_torch_fused_mask_is_bit_identical_to_numpy(shape, seed, offset):
    """P2/P3: the torch.compile'd keep mask equals the NumPy oracle bit for bit (compiles once)."""
    from dropout_ref.core.philox import numpy_keep_mask
    from dropout_ref.torch.fast import compiled as fused

    threshold = word_threshold(0.37)
    mask = fused.fused_keep_mask(torch.empty(shape), threshold, seed, offset)
    assert not fused.disabled
    np.testing.assert_array_equal(mask.numpy(), numpy_keep_mask(shape, threshold, seed, offset))


@pytest.mark.slow
@pytest.mark.parametrize("size", [1, 15, 17, 33, 4099])
@pytest.mark.parametrize("threshold", [1, 2**31, 2**32 - 1, 2**32])
def test_p2_d4_torch_fused_mask_tails_and_extreme_thresholds(size, threshold):
    """P2/D4: the uint8-viewed-as-bool mask (sign of w - t) equals w >= t at odd sizes
    (vector tails) and at t = 1 (keep all but w = 0) and t = 2**32 (drop all)."""
    from dropout_ref.core.philox import numpy_keep_mask
    from dropout_ref.torch.fast import compiled as fused

    mask = fused.fused_keep_mask(torch.empty(size), threshold, 99, 5)
    assert mask.dtype == torch.bool and set(mask.view(torch.uint8).tolist()) <= {0, 1}
    np.testing.assert_array_equal(mask.numpy(), numpy_keep_mask((size,), threshold, 99, 5))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("size", [1, 17, 4099])
def test_d5_d6_torch_compiled_select_equals_the_aten_select(dtype, size):
    """D5/D6: the compiled no-grad select gives exactly the ATen path's values (one rounding of
    the product into X's dtype), +0.0 where dropped even for NaN/inf."""
    from dropout_ref.torch.fast import compiled as fused

    X = torch.from_numpy(special_values(size, seed=size)).to(getattr(torch, dtype))
    keep = torch.from_numpy(np.random.default_rng(size).random(size) >= 0.3)
    for scale in (inverse_keep_scale(0.3), inverse_keep_scale(0.1), 2.0):
        fast = fused.fused_select_scaled(X, keep, scale)
        slow = torch_ops_module().scaled_select_no_grad(X, keep, scale)
        assert fast.dtype == X.dtype and fast.shape == X.shape
        np.testing.assert_array_equal(fast.double().numpy(), slow.double().numpy())
        assert not torch.signbit(fast[~keep]).any()


def torch_ops_module():
    import importlib

    return importlib.import_module("dropout_ref.torch.fast.eager")


@pytest.mark.slow
def test_d8_torch_compiled_select_from_its_size_bound(monkeypatch):
    """The compiled select serves calls from its size bound, with autograd too (the custom
    operator's forward runs without autograd; its backward is the operator on the gradient)."""
    from dropout_ref.torch.fast import compiled as fused

    module = torch_ops_module()
    monkeypatch.setattr(module, "FUSED_SELECT_MIN_SIZE", 8)
    calls = []
    original = fused.fused_select_scaled
    monkeypatch.setattr(fused, "fused_select_scaled", lambda *a: calls.append(1) or original(*a))
    X = torch.randn(64)
    out = torch_dropout(X, 0.5)
    assert calls == [1] and torch.equal(out[out != 0], X[out != 0] * 2.0)
    leaf = X.clone().requires_grad_(True)
    graded = torch_dropout(leaf, 0.5)
    assert calls == [1, 1] and graded.requires_grad
    graded.backward(torch.ones_like(graded))
    assert calls == [1, 1, 1] and torch.equal(leaf.grad, torch.where(graded != 0, 2.0, 0.0))
    torch_dropout(torch.randn(4), 0.5)  # below the bound
    assert calls == [1, 1, 1]


def test_p4_torch_fused_refuses_a_carrying_offset():
    """The compiled mask keeps c1 constant: block counters crossing 2**32 go the exact way."""
    from dropout_ref.torch.fast import compiled as fused

    x = torch.empty(200)
    # Blocks 2**32 - 25 .. 2**32 + 24: c1 changes inside the call.
    assert not fused.fusable(x, 4 * (2**32 - 25))
    assert fused.fusable(x, 4 * (2**32 - 50))
    with pytest.raises(ValueError, match="offset"):
        fused.fused_keep_mask(x, 5, 1, 4 * (2**32 - 25))


@pytest.mark.slow
def test_d7_torch_compiled_select_survives_many_shapes_and_dtypes():
    """D7 in a long process: many ranks, sizes and every dtype never exhaust Dynamo's
    recompile limit (which would switch the fast path off for good)."""
    from dropout_ref.torch.fast import compiled as fused

    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        for shape in [(5,), (3, 7), (2, 3, 11), (64, 65), (1, 2, 3, 4, 5), (4099,), (9, 1)]:
            X = torch.ones(shape, dtype=dtype)
            keep = torch.ones(shape, dtype=torch.bool)
            out = fused.fused_select_scaled(X, keep, 2.0)
            assert out.shape == X.shape and out.dtype == dtype and bool((out == 2).all())
    assert not fused.disabled


def test_torch_compiled_kernels_fall_back_independently(monkeypatch):
    """A kernel that cannot run is switched off alone; memory errors are not swallowed."""
    from dropout_ref.torch.fast import compiled as fused

    monkeypatch.setattr(fused, "disabled", {})

    def broken(*args):
        raise RuntimeError("no C++ compiler")

    def out_of_memory(*args):
        raise torch.OutOfMemoryError("simulated")

    assert fused.try_compiled("select", broken) is None
    assert "select" in fused.disabled and "mask" not in fused.disabled
    assert fused.try_compiled("mask", lambda: torch.ones(2)) is not None
    with pytest.raises(torch.OutOfMemoryError):
        fused.try_compiled("mask", out_of_memory)
    assert "mask" not in fused.disabled
