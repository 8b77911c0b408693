"""Benchmark cases for the mxnet backend (see :mod:`dropout_ref.bench`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dropout_ref.bench.cases.common import (
    BASELINE,
    NATIVE,
    OURS,
    OURS_PORTABLE,
    OURS_PORTABLE_FUSED,
    BenchCase,
    CaseSet,
)
from dropout_ref.bench.mlp_epoch import epoch_cases
from dropout_ref.kernels import cpu as cpu_kernel
from dropout_ref.mxnet import dropout_layer
from dropout_ref.mxnet.framework import autograd, mnp, mx, npx

SEED = 20240611
#: The framework keeps freed buffers, so peak memory is measured on a first call
#: in a fresh process (:mod:`dropout_ref.bench.fresh_memory`).
MEMORY_POOLED = True
#: Above this size the op-by-op Philox takes many seconds per call.
UNFUSED_PORTABLE_MAX_SIZE = 1 << 16
#: Both modes run on the compiled CPU kernel (first-use cost reported by the worker).
CPU_KERNEL = True


def framework_version() -> str:
    """Return ``mx.__version__``."""
    return mx.__version__


def thread_count() -> int:
    """Return MXNet's OpenMP thread count (from the environment; 0 means the default)."""
    import os

    return int(os.environ.get("OMP_NUM_THREADS", "0"))


def sync(result: Any) -> None:
    """MXNet runs asynchronously: wait for the result."""
    result.wait_to_read()


def native_dropout(X: Any, rate: float) -> Any:
    """``npx.dropout`` in training mode (it is the identity otherwise)."""
    with autograd.train_mode():
        return npx.dropout(X, p=rate)


def op_by_op_portable(X: Any, rate: float) -> Any:
    """``seed=`` dropout without the compiled kernel: Philox in MXNet ops, then the select."""
    from dropout_ref.core.thresholds import inverse_keep_scale, word_threshold
    from dropout_ref.mxnet import BACKEND
    from dropout_ref.mxnet.philox import keep_mask

    with mx.util.np_shape(True):
        keep = keep_mask(X, word_threshold(rate), SEED, 0)
    return BACKEND.ops.select_scaled(X, keep, inverse_keep_scale(rate))


def make_cases(size: int, dtype: str, *, fused: bool, rate: float) -> CaseSet:
    """Return the cases of one (size, dtype) point (ours: the compiled CPU kernel)."""
    X = mnp.array(np.random.default_rng(0).standard_normal(size).astype(dtype), dtype=dtype)
    nbytes = size * np.dtype(dtype).itemsize
    portable_skip = None
    if size > UNFUSED_PORTABLE_MAX_SIZE:
        portable_skip = "op-by-op Philox takes many seconds at this size (no fusing compiler)"
    cases = [
        BenchCase(BASELINE, lambda: X * 2.0, sync=sync, output_bytes=nbytes, note="X * 2.0"),
        BenchCase(NATIVE, lambda: native_dropout(X, rate), sync=sync, output_bytes=nbytes,
                  note="npx.dropout in autograd.train_mode()"),
        BenchCase(OURS, lambda: dropout_layer(X, rate), sync=sync, output_bytes=nbytes,
                  note=f"dropout_layer(X, p): {cpu_kernel.status_line('MXNet ops')}"),
        BenchCase(OURS_PORTABLE, lambda: op_by_op_portable(X, rate), sync=sync,
                  output_bytes=nbytes, skip=portable_skip,
                  note="dropout_layer(X, p, seed=s) without the kernel: Philox op by op"),
    ]
    if fused:
        ok, why = cpu_kernel.probe(dtype)
        cases.append(BenchCase(
            OURS_PORTABLE_FUSED, lambda: dropout_layer(X, rate, seed=SEED), sync=sync,
            output_bytes=nbytes, skip=None if ok else why,
            note="dropout_layer(X, p, seed=s), compiled CPU kernel (numba)"))
    return CaseSet(cases)


def native_dropout_layer(X: Any, dropout: float, *, seed=None, offset=0) -> Any:
    """``dropout_layer``'s signature over ``npx.dropout`` (active inside autograd.record)."""
    return npx.dropout(X, p=dropout)


def mlp_epoch_cases() -> CaseSet:
    """One epoch of the course MLP with our dropout_layer and with the native dropout."""
    return epoch_cases("mxnet", native_dropout_layer, "npx.dropout")
