"""MXNet on the compiled CPU kernel, both modes, autograd included (SPEC D1-D11, P1-P4).

``seed=`` calls must equal the pure-NumPy oracle bit for bit; default-mode calls
are the Philox mask under a key drawn from MXNet's global generator
(``mx.random.seed`` reproduces them, D9); recorded calls differentiate to
``where(keep, G * scale, +0.0)`` with the forward's mask (D8). The kernel reads
and writes MXNet's memory in place (DLPack), never through ``asnumpy()``.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("dropout_ref.mxnet")  # restores np.bool before mxnet loads

from dropout_ref.conformance import assert_conforms
from dropout_ref.core.philox import numpy_keep_mask
from dropout_ref.core.thresholds import inverse_keep_scale, word_threshold
from dropout_ref.kernels import cpu as cpu_kernel
from dropout_ref.mxnet import BACKEND, dropout_layer
from dropout_ref.mxnet import fast as kernel
from dropout_ref.mxnet.framework import autograd, mnp, mx
from dropout_ref.numpy.ops import NumpyOps

mx_ops = BACKEND.ops

if not cpu_kernel.probe()[0]:  # pragma: no cover - reported by `dropout-ref backends`
    pytest.skip(f"compiled kernel unavailable: {cpu_kernel.probe()[1]}", allow_module_level=True)

ORACLE = NumpyOps()
DTYPES = ["float16", "float32", "float64"]


def host_values(shape, dtype, seed=0):
    x = np.asarray(np.random.default_rng(seed).standard_normal(shape) * 10, dtype=dtype)
    flat = x.reshape(-1)
    specials = np.array([np.nan, np.inf, -np.inf, -1.0], dtype=dtype)
    flat[: min(flat.size, 4)] = specials[: min(flat.size, 4)]
    return x


def to_mx(host, legacy=False):
    with mx.util.np_shape(True):
        x = mnp.array(host, dtype=host.dtype)
    return x.as_nd_ndarray() if legacy else x


def oracle(host, p, seed, offset):
    keep = numpy_keep_mask(host.shape, word_threshold(p), seed, offset)
    return ORACLE.select_scaled(host, keep, inverse_keep_scale(p)), keep


def drawn_key(seed):
    """The key the next default-mode call draws after ``mx.random.seed(seed)``."""
    mx.random.seed(seed)
    with mx.util.np_shape(True):
        return kernel.global_key(mnp.ones((1,)))


@pytest.fixture
def kernel_calls(monkeypatch):
    """Record the NumPy views the fused kernel receives (a silent fallback cannot pass)."""
    calls = []
    real = cpu_kernel.fused_dropout

    def spy(X, *args, **kwargs):
        out = real(X, *args, **kwargs)
        calls.append((X, kwargs.get("out"), out is not None))
        return out

    monkeypatch.setattr(cpu_kernel, "fused_dropout", spy)
    return calls


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0, 3), (1,), (7,), (5, 9), (2, 3, 11)])
@pytest.mark.parametrize(("seed", "offset"), [(3, 0), (2**63 + 5, 6), (9, 4 * 2**32 - 3)])
@pytest.mark.parametrize("p", [0.3, 0.5, 0.999])
def test_p2_seeded_equals_the_oracle(dtype, shape, seed, offset, p, kernel_calls):
    host = host_values(shape, dtype)
    out = dropout_layer(to_mx(host), p, seed=seed, offset=offset)
    expected, _ = oracle(host, p, seed, offset)
    assert isinstance(out, mnp.ndarray) and out.dtype == np.dtype(dtype)
    got = out.asnumpy()
    assert got.shape == shape and got.tobytes() == expected.tobytes()
    assert all(ok for _, _, ok in kernel_calls) and (kernel_calls or host.size == 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_d4_d9_default_mode_is_philox_under_a_key_from_the_global_generator(dtype):
    """D9: mx.random.seed reproduces a call, the next call differs; D4: w >= ceil(p 2**32)."""
    host = host_values((33, 17), dtype)
    X = to_mx(host)
    key = drawn_key(5)
    mx.random.seed(5)
    first = dropout_layer(X, 0.4).asnumpy()
    second = dropout_layer(X, 0.4).asnumpy()
    mx.random.seed(5)
    again = dropout_layer(X, 0.4).asnumpy()
    expected, _ = oracle(host, 0.4, key, 0)
    assert first.tobytes() == expected.tobytes() == again.tobytes()
    assert first.tobytes() != second.tobytes()


def test_zero_copy_the_kernel_reads_and_writes_mxnet_memory(kernel_calls):
    """The views handed to the kernel are MXNet's own buffers (DLPack), not asnumpy() copies."""
    X = to_mx(host_values((64, 32), "float32"))
    out = dropout_layer(X, 0.5, seed=1)
    (x_view, out_view, ok), = kernel_calls
    assert ok and x_view.ctypes.data == kernel.read_view(X).ctypes.data
    assert out_view.ctypes.data == kernel.read_view(out).ctypes.data
    view = kernel.write_view(out)
    view[...] = 7.0  # the writable view is the output's memory
    assert (out.asnumpy() == 7.0).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seeded", [True, False])
@pytest.mark.parametrize("legacy", [False, True])
def test_d8_gradient_uses_the_forward_mask(dtype, seeded, legacy):
    """D8: d sum(out * G) / dX = where(keep, G * scale, 0), keep = the forward's mask."""
    host = host_values((23, 7), dtype, seed=2)
    host[np.isnan(host) | np.isinf(host)] = 1.0  # finite X: keep is out != 0 exactly
    host[host == 0] = 1.0
    G = np.random.default_rng(3).standard_normal(host.shape).astype(dtype)
    X = to_mx(host, legacy=legacy)
    X.attach_grad()
    mx.random.seed(8)
    with mx.util.np_shape(not legacy), autograd.record():
        out = dropout_layer(X, 0.3, seed=4, offset=1) if seeded else dropout_layer(X, 0.3)
        loss = (out * to_mx(G, legacy=legacy)).sum()
    loss.backward()
    seed, offset = (4, 1) if seeded else (drawn_key(8), 0)
    expected, keep = oracle(host, 0.3, seed, offset)
    assert type(out) is type(X)
    assert out.asnumpy().tobytes() == expected.tobytes()
    grad = ORACLE.select_scaled(G, keep, inverse_keep_scale(0.3))
    assert X.grad.asnumpy().tobytes() == grad.tobytes()


def test_d8_gradient_outside_numpy_shape_semantics():
    """A legacy NDArray user without npx.set_np() gets a working backward (the MXNet quirk)."""
    X = mx.nd.array(np.ones((4, 5)))
    X.attach_grad()
    with autograd.record():
        out = dropout_layer(X, 0.5)
    out.backward()
    np.testing.assert_array_equal(X.grad.asnumpy(), out.asnumpy())  # ones: grad == out


def test_portable_keep_mask_is_bool_and_exact():
    x = mnp.ones((13, 3))
    keep = mx_ops.portable_keep_mask(x, 2**31, 7, 2**32 * 4 - 5)
    assert keep.dtype == np.bool_
    np.testing.assert_array_equal(keep.asnumpy(), numpy_keep_mask((13, 3), 2**31, 7, 2**32 * 4 - 5))


def test_other_contexts_and_kernel_off_take_the_existing_path(monkeypatch):
    assert not kernel.eligible(SimpleNamespace(ctx=SimpleNamespace(device_type="gpu"),
                                               dtype=np.float32))
    host = host_values((9, 4), "float32")
    fast = dropout_layer(to_mx(host), 0.5, seed=3).asnumpy()
    monkeypatch.setattr(kernel, "eligible", lambda X: False)
    assert dropout_layer(to_mx(host), 0.5, seed=3).asnumpy().tobytes() == fast.tobytes()


def test_d1_d11_conformance_kit_passes_on_the_kernel(kernel_calls):
    """D1-D11 (default mode, gradients included) run on the compiled kernel."""
    report = assert_conforms(dropout_layer, backend="mxnet")
    assert report.ok
    assert sum(ok for _, _, ok in kernel_calls) > 10
