"""The numpy backend's ``seed=`` mode on the compiled kernel: the oracle's values, D1-D11.

The fast path (:mod:`dropout_ref.kernels.cpu`) must give exactly what the
pure-NumPy generator gives (the exact path, taken when the kernel is off), and
the conformance kit must pass on it.
"""

from __future__ import annotations

import numpy as np
import pytest

from dropout_ref.conformance import assert_conforms
from dropout_ref.core.philox import numpy_keep_mask
from dropout_ref.core.thresholds import inverse_keep_scale, word_threshold
from dropout_ref.kernels import cpu as cpu_kernel
from dropout_ref.numpy import BACKEND, dropout_layer

numpy_ops = BACKEND.ops

if not cpu_kernel.probe()[0]:  # pragma: no cover - reported by `dropout-ref backends`
    pytest.skip(f"compiled kernel unavailable: {cpu_kernel.probe()[1]}", allow_module_level=True)


@pytest.fixture
def kernel_calls(monkeypatch):
    """Count the fused kernel's successful calls, so a silent fallback cannot pass."""
    calls = []
    real = cpu_kernel.fused_dropout

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(cpu_kernel, "fused_dropout", spy)
    return calls


def exact_path(X, p, seed, offset):
    keep = numpy_keep_mask(X.shape, word_threshold(p), seed, offset)
    return numpy_ops.select_scaled(X, keep, inverse_keep_scale(p))


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("shape", [(), (0,), (1,), (5,), (3, 7), (2, 5, 9)])
@pytest.mark.parametrize(("seed", "offset"), [(1, 0), (2**40 + 3, 7), (5, 4 * 2**32 - 6)])
@pytest.mark.parametrize("p", [1e-9, 0.3, 0.5, 0.999])
def test_p2_seeded_layer_equals_exact_path(dtype, shape, seed, offset, p, kernel_calls):
    X = np.asarray(np.random.default_rng(1).standard_normal(shape) * 10, dtype=dtype)
    out = dropout_layer(X, p, seed=seed, offset=offset)
    expected = exact_path(X, p, seed, offset)
    assert out.shape == X.shape and out.dtype == X.dtype
    assert out.tobytes() == expected.tobytes()
    assert kernel_calls and all(kernel_calls)


def test_p2_fallback_when_kernel_off_gives_the_same(monkeypatch):
    X = np.random.default_rng(2).standard_normal((33, 5)).astype(np.float32)
    fast = dropout_layer(X, 0.4, seed=9, offset=3)
    monkeypatch.setattr(cpu_kernel, "fused_dropout", lambda *a, **k: None)
    monkeypatch.setattr(cpu_kernel, "keep_mask", lambda *a, **k: None)
    assert dropout_layer(X, 0.4, seed=9, offset=3).tobytes() == fast.tobytes()


def test_p4_shards_concatenate_to_the_unsplit_mask(kernel_calls):
    X = np.random.default_rng(3).standard_normal(1001).astype(np.float32)
    whole = dropout_layer(X, 0.5, seed=77, offset=2**33 + 1)
    parts = [dropout_layer(X[a:b], 0.5, seed=77, offset=2**33 + 1 + a)
             for a, b in [(0, 3), (3, 500), (500, 1001)]]
    assert np.concatenate(parts).tobytes() == whole.tobytes()


def seeded_dropout(X, p):
    """seed= mode, the seed drawn from np.random: fresh per call, np.random.seed reproduces."""
    return dropout_layer(X, p, seed=int(np.random.randint(0, 2**63, dtype=np.int64)))


def test_d1_d11_conformance_kit_passes_on_the_kernel_path(kernel_calls):
    """D1-D11 on the fused seed= path, every dtype the kit tries (0-d and empty included)."""
    report = assert_conforms(seeded_dropout, backend="numpy")
    assert report.ok
    assert sum(kernel_calls) > 10
