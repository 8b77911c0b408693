"""MXNet's float32 default mode with one reused uniform buffer keeps the D clauses.

``MxnetOps.fused_global_dropout`` (autograd not recording, float32 X) must
give, for the same ``mx.random.seed``, exactly what the general path gives
(``global_keep_mask`` + ``select_scaled``, which the D-clause suite checks):
same uniforms, same keep rule, same product, +0.0 for dropped NaN/inf.
That path runs where the compiled kernel is unavailable (tests/test_mxnet_kernel.py
covers the kernel).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("dropout_ref.mxnet")  # restores np.bool before mxnet loads

from dropout_ref.core.thresholds import inverse_keep_scale
from dropout_ref.mxnet import BACKEND, dropout_layer
from dropout_ref.mxnet.framework import autograd, mnp, mx

mx_ops = BACKEND.ops


@pytest.fixture(autouse=True)
def _without_compiled_kernel(monkeypatch):
    """These tests pin the in-MXNet path, which runs where the compiled kernel does not."""
    from dropout_ref.mxnet import fast as kernel

    monkeypatch.setattr(kernel, "eligible", lambda X: False)


def special_values(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n).astype(np.float32)
    x[x == 0] = 1.0
    x[::7], x[1::7], x[2::7] = np.nan, np.inf, -np.inf
    return x


def general_path(X, p):
    keep = mx_ops.global_keep_mask(X, p)
    return mx_ops.select_scaled(X, keep, inverse_keep_scale(p))


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("shape", [(4099,), (3, 5, 7)])
def test_d4_d5_d6_fused_equals_the_general_path(p, shape):
    """D4-D6: same seed, bit-identical output to the general path; dropped are +0.0; D11."""
    host = special_values(int(np.prod(shape))).reshape(shape)
    X = mnp.array(host, dtype="float32")
    mx.random.seed(42)
    fused = mx_ops.fused_global_dropout(X, p, inverse_keep_scale(p))
    mx.random.seed(42)
    general = general_path(X, p)
    assert fused is not None and isinstance(fused, mnp.ndarray)
    a, b = fused.asnumpy(), general.asnumpy()
    assert a.shape == shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.signbit(a[a == 0]).any()
    np.testing.assert_array_equal(X.asnumpy(), host)


def test_fused_path_only_for_float32_without_recording():
    """Other dtypes and recorded calls (D8) take the general path; legacy NDArrays come back."""
    x16 = mnp.ones((8,), dtype="float16")
    assert mx_ops.fused_global_dropout(x16, 0.5, 2.0) is None
    x = mnp.ones((8,), dtype="float32")
    x.attach_grad()
    with autograd.record():
        assert mx_ops.fused_global_dropout(x, 0.5, 2.0) is None
    legacy = mx_ops.fused_global_dropout(mx.nd.ones((8,)), 0.5, 2.0)
    assert isinstance(legacy, mx.nd.NDArray) and not isinstance(legacy, mnp.ndarray)


@pytest.mark.parametrize("shape", [(), (0,), (0, 3)])
def test_d7_fused_zero_d_and_empty(shape):
    """D7: 0-d and empty float32 arrays keep their shape through the fused path."""
    with mx.util.np_shape(True):  # outside it MXNet cannot even build these arrays
        X = mnp.ones(shape, dtype="float32")
    out = dropout_layer(X, 0.5)
    assert out.shape == shape and out.dtype == np.float32
