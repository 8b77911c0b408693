"""Benchmark cases for the numpy backend (see :mod:`dropout_ref.bench`).

NumPy has no dropout of its own, so there is no native case: the target is
the ``seed=`` mode on the compiled CPU kernel against ``X * 2.0``
(``fused/X*2``), with the exact pure-NumPy path (``portable``) beside it.
"""

from __future__ import annotations

import numpy as np

from dropout_ref.bench.cases.common import (
    BASELINE,
    OURS,
    OURS_PORTABLE,
    OURS_PORTABLE_FUSED,
    BenchCase,
    CaseSet,
)
from dropout_ref.core.layer import make_dropout_layer
from dropout_ref.core.philox import numpy_keep_mask
from dropout_ref.kernels import cpu as cpu_kernel
from dropout_ref.numpy import dropout_layer
from dropout_ref.numpy.ops import NumpyOps

SEED = 20240611
#: NumPy frees to the system allocator: VmHWM measures every call.
MEMORY_POOLED = False
#: The seed= mode runs on the compiled kernel (first-use cost reported by the worker).
CPU_KERNEL = True
#: Above this size the op-by-op NumPy Philox takes seconds per call.
EXACT_PORTABLE_MAX_SIZE = 1 << 20


class ExactNumpyOps(NumpyOps):
    """The numpy backend without the compiled kernel: the readable oracle, op by op."""

    def fused_portable_dropout(self, *args: object) -> None:
        """Return ``None``: never fused."""
        return None

    def portable_keep_mask(
        self, X: np.ndarray, threshold: int, seed: int, offset: int
    ) -> np.ndarray:
        """Return the pure-NumPy generator's mask."""
        return numpy_keep_mask(X.shape, threshold, seed, offset)


exact_dropout_layer = make_dropout_layer(ExactNumpyOps())


def framework_version() -> str:
    """Return ``np.__version__``."""
    return np.__version__


def thread_count() -> int:
    """Return numba's thread count (the kernel's parallelism; NumPy's ufuncs use one)."""
    import os

    return int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count() or 1))


def make_cases(size: int, dtype: str, *, fused: bool, rate: float) -> CaseSet:
    """Return the cases of one (size, dtype) point."""
    X = np.random.default_rng(0).standard_normal(size).astype(dtype)
    nbytes = size * np.dtype(dtype).itemsize
    exact_skip = None
    if size > EXACT_PORTABLE_MAX_SIZE:
        exact_skip = "op-by-op NumPy Philox takes seconds at this size"
    cases = [
        BenchCase(BASELINE, lambda: X * 2.0, output_bytes=nbytes, note="X * 2.0"),
        BenchCase(OURS, lambda: dropout_layer(X, rate), output_bytes=nbytes,
                  note="dropout_layer(X, p): np.random uniforms"),
        BenchCase(OURS_PORTABLE, lambda: exact_dropout_layer(X, rate, seed=SEED),
                  output_bytes=nbytes, skip=exact_skip,
                  note="dropout_layer(X, p, seed=s), exact NumPy path"),
    ]
    if fused:
        ok, why = cpu_kernel.probe(dtype)
        cases.append(BenchCase(
            OURS_PORTABLE_FUSED, lambda: dropout_layer(X, rate, seed=SEED), output_bytes=nbytes,
            skip=None if ok else why,
            note="dropout_layer(X, p, seed=s), compiled CPU kernel (numba)"))
    return CaseSet(cases)
