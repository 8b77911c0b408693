"""The compiled CPU kernel equals the pure-NumPy oracle bit for bit (SPEC P2, P3, D4-D6).

The oracle is :func:`dropout_ref.core.philox.numpy_keep_mask` followed by
:meth:`dropout_ref.numpy.ops.NumpyOps.select_scaled`; the kernel must give the
same bytes for every dtype, shape, offset (not a multiple of 4, block counters
carrying into c1) and threshold (1, 2**31, 2**32 - 1, 2**32).
"""

from __future__ import annotations

import numpy as np
import pytest

from dropout_ref.core.philox import numpy_keep_mask
from dropout_ref.core.thresholds import inverse_keep_scale
from dropout_ref.kernels import cpu as cpu_kernel
from dropout_ref.numpy.ops import NumpyOps

pytest.importorskip("numba")
if not cpu_kernel.probe()[0]:  # pragma: no cover - reported by `dropout-ref backends`
    pytest.skip(f"compiled kernel unavailable: {cpu_kernel.probe()[1]}", allow_module_level=True)

ORACLE = NumpyOps()
DTYPES = ["float16", "float32", "float64"]
THRESHOLDS = [1, 2**31, 2**32 - 1, 2**32]
SHAPES = [(), (0,), (3, 0), (1,), (5,), (7, 9), (2, 3, 11), (4099,)]
# (seed, offset): offsets off the block grid, a block counter whose low word carries into c1
# within the call (2**32 - 1 blocks then 2**32), the top of the counter space.
SEEDS_OFFSETS = [
    (0, 0),
    (20240611, 3),
    (2**64 - 1, 5),
    (123456789, 4 * (2**32 - 1) - 2),
    (7, 4 * 2**32 + 1),
    (99, 2**64 - 4099),
]


def values(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    """Values with NaN, +-inf, -0.0 and negatives, so every select case is exercised."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 100).astype(dtype)
    flat = x.reshape(-1)
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0], dtype=dtype)
    flat[: min(flat.size, 5)] = specials[: min(flat.size, 5)]
    return x


def oracle(X: np.ndarray, threshold: int, seed: int, offset: int, scale: float) -> np.ndarray:
    return ORACLE.select_scaled(X, numpy_keep_mask(X.shape, threshold, seed, offset), scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("seed", "offset"), SEEDS_OFFSETS)
def test_p3_d5_fused_equals_oracle_bit_for_bit(dtype, shape, seed, offset):
    size = int(np.prod(shape))
    if offset + size > 2**64:
        pytest.skip("offset + size beyond the counter space")
    X = values(shape, dtype)
    for threshold in THRESHOLDS:
        p = threshold / 2**32
        scale = inverse_keep_scale(min(p, 0.999))
        out = cpu_kernel.fused_dropout(X, threshold, seed, offset, scale)
        expected = oracle(X, threshold, seed, offset, scale)
        assert out.shape == X.shape and out.dtype == X.dtype
        assert out.tobytes() == expected.tobytes(), (dtype, shape, seed, offset, threshold)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("seed", "offset"), [(5, 4 * (2**32 - 100) + 3), (2**64 - 1, 2)])
def test_p3_parallel_variant_equals_oracle(dtype, seed, offset):
    """From SERIAL_MAX_SIZE elements the threaded kernels run: same bytes, chunk edges too."""
    shape = (cpu_kernel.SERIAL_MAX_SIZE + 4099,)
    X = values(shape, dtype, seed=4)
    for threshold in (2**31, 2**32 - 1):
        expected = oracle(X, threshold, seed, offset, 1 / 0.7)
        assert cpu_kernel.fused_dropout(X, threshold, seed, offset, 1 / 0.7).tobytes() == (
            expected.tobytes())
        mask = cpu_kernel.keep_mask(shape, threshold, seed, offset)
        np.testing.assert_array_equal(mask, numpy_keep_mask(shape, threshold, seed, offset))


@pytest.mark.parametrize(("seed", "offset"), SEEDS_OFFSETS)
@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_p3_mask_entry_equals_oracle(seed, offset, threshold):
    shape = (3, 37) if offset + 111 <= 2**64 else (1,)
    mask = cpu_kernel.keep_mask(shape, threshold, seed, offset)
    assert mask.dtype == np.bool_ and mask.itemsize == 1
    np.testing.assert_array_equal(mask, numpy_keep_mask(shape, threshold, seed, offset))


SCALES = [2.0, 1 / 0.7, inverse_keep_scale(0.999), inverse_keep_scale(1e-3)]


@pytest.mark.parametrize("scale", SCALES)
def test_d5_float16_every_bit_pattern(scale):
    """float16 goes through LLVM's fpext/fptrunc; all 65536 inputs match NumPy's float32 product."""
    X = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    keep = np.ones(X.shape, dtype=bool)
    out = cpu_kernel.fused_dropout(X, 1, 0, 0, scale)  # threshold 1 keeps all but w == 0
    kept = numpy_keep_mask(X.shape, 1, 0, 0)
    expected = ORACLE.select_scaled(X, kept, scale)
    assert out.view(np.uint16).tobytes() == expected.view(np.uint16).tobytes()
    grad = cpu_kernel.masked_scale(X, keep, scale)
    assert grad.tobytes() == ORACLE.select_scaled(X, keep, scale).tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_d8_masked_scale_is_the_forward_select(dtype):
    X = values((257,), dtype, seed=3)
    keep = numpy_keep_mask(X.shape, 2**31, 5, 1)
    scale = inverse_keep_scale(0.3)
    out = cpu_kernel.masked_scale(X, keep, scale)
    assert out.tobytes() == ORACLE.select_scaled(X, keep, scale).tobytes()


def test_d11_input_untouched_and_non_contiguous_input():
    X = values((64, 48), "float32").T  # F-ordered view: read in row-major order of the view
    before = X.copy()
    out = cpu_kernel.fused_dropout(X, 2**31, 11, 6, 2.0)
    np.testing.assert_array_equal(X, before)
    assert out.tobytes() == oracle(np.ascontiguousarray(X), 2**31, 11, 6, 2.0).tobytes()


def test_unsupported_dtypes_take_the_exact_path():
    """Byte-swapped or other dtypes: None, so the caller runs the exact NumPy path."""
    swapped = np.ones(8, dtype=">f4")
    assert not cpu_kernel.supports(swapped)
    assert cpu_kernel.fused_dropout(swapped, 2**31, 1, 0, 2.0) is None
    assert cpu_kernel.fused_dropout(np.ones(8, dtype=np.longdouble), 2**31, 1, 0, 2.0) is None


def test_disabled_kernel_reports_why(monkeypatch):
    monkeypatch.setattr(cpu_kernel, "_kernels", None)
    monkeypatch.setattr(cpu_kernel, "_disabled_reason", "numba unavailable (ImportError: test)")
    assert cpu_kernel.fused_dropout(np.ones(4, np.float32), 2**31, 1, 0, 2.0) is None
    assert cpu_kernel.keep_mask((4,), 2**31, 1, 0) is None
    assert cpu_kernel.status_line() == "exact NumPy path (numba unavailable (ImportError: test))"


def test_backends_command_says_which_path_is_active(monkeypatch, capsys):
    from dropout_ref.cli.commands import backends
    from dropout_ref.core.registry import BACKENDS

    monkeypatch.setattr(backends, "BACKENDS", {"numpy": BACKENDS["numpy"]})
    monkeypatch.setenv("COLUMNS", "200")
    assert backends.run(None) == 0
    assert "seed=: compiled kernel (numba " in capsys.readouterr().out
    monkeypatch.setattr(cpu_kernel, "_kernels", None)
    monkeypatch.setattr(cpu_kernel, "_disabled_reason", "numba unavailable (x)")
    backends.run(None)
    assert "seed=: exact NumPy path (numba unavailable (x))" in capsys.readouterr().out


def test_compile_failure_is_recorded_and_falls_back(monkeypatch):
    class Broken:
        numba_version = "0"

        @staticmethod
        def fused_select(*args):
            raise NotImplementedError("float16")

        fused_select_serial = fused_select

    monkeypatch.setattr(cpu_kernel, "_kernels", Broken)
    monkeypatch.setattr(cpu_kernel, "_failed_signatures", {})
    monkeypatch.setattr(cpu_kernel, "_probed", {})
    assert cpu_kernel.fused_dropout(np.ones(4, np.float16), 2**31, 1, 0, 2.0) is None
    ok, why = cpu_kernel.probe("float16")
    assert not ok and "NotImplementedError: float16" in why


def test_switch_turns_kernel_off(monkeypatch):
    monkeypatch.setenv(cpu_kernel.ENV_SWITCH, "0")
    monkeypatch.setattr(cpu_kernel, "_kernels", None)
    monkeypatch.setattr(cpu_kernel, "_disabled_reason", None)
    assert cpu_kernel.available() == (False, f"turned off by {cpu_kernel.ENV_SWITCH}=0")


def test_import_dropout_ref_does_not_import_numba():
    import subprocess
    import sys

    code = ("import sys, dropout_ref, dropout_ref.kernels.cpu, dropout_ref.numpy; "
            "print('numba' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


def test_concurrent_calls_from_threads_are_serialised():
    """Python threads calling at once neither crash numba's workqueue layer nor mix results."""
    from concurrent.futures import ThreadPoolExecutor

    X = values((cpu_kernel.SERIAL_MAX_SIZE + 5,), "float32")  # the threaded variant
    expected = oracle(X, 2**31, 4, 1, 2.0).tobytes()
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: cpu_kernel.fused_dropout(X, 2**31, 4, 1, 2.0), range(16)))
    assert all(out.tobytes() == expected for out in outs)


@pytest.mark.slow
def test_bench_compile_cost_reports_cold_and_cached_first_use():
    """The benchmark's first-use measurement runs and reports both numbers (not timed here)."""
    from dropout_ref.bench.kernel_compile import compile_cost
    from dropout_ref.bench.report import kernel_compile_line

    cost = compile_cost(["float32"])
    assert cost["ok"] and cost["signatures"] == 2
    assert cost["cold_s"] > 0 and cost["cached_s"] > 0
    line = kernel_compile_line({"backend": "numpy", "kernel_compile": cost})
    assert "with an empty cache" in line and "from numba's disk cache" in line
    failed = kernel_compile_line({"backend": "numpy", "kernel_compile": {"ok": False, "why": "x"}})
    assert failed == "numpy: compiled CPU kernel unavailable (x)"


def test_out_arrays_that_would_be_copied_are_refused():
    X = values((6, 4), "float32")
    with pytest.raises(ValueError, match="out must be a writable C-contiguous"):
        cpu_kernel.fused_dropout(X, 2**31, 1, 0, 2.0, out=np.empty((4, 6), np.float32).T)
    with pytest.raises(ValueError, match="mask_out must be"):
        cpu_kernel.fused_dropout(X, 2**31, 1, 0, 2.0, mask_out=np.empty(24, np.float32))
    with pytest.raises(ValueError, match="out must be"):
        cpu_kernel.keep_mask((6, 4), 2**31, 1, 0, out=np.empty((4, 6), bool).T)
