"""Benchmark cases for the mxnet backend (see :mod:`dropout_ref.bench`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dropout_ref.bench.cases import (
    BASELINE,
    NATIVE,
    OURS,
    OURS_PORTABLE,
    BenchCase,
    CaseSet,
)
from dropout_ref.bench.mlp_epoch import epoch_cases
from dropout_ref.mxnet import dropout_layer
from dropout_ref.mxnet.framework import autograd, mnp, mx, npx

SEED = 20240611
#: The framework keeps freed buffers, so peak memory is measured on a first call
#: in a fresh process (:mod:`dropout_ref.bench.fresh_memory`).
MEMORY_POOLED = True
#: Above this size the op-by-op Philox takes many seconds per call.
UNFUSED_PORTABLE_MAX_SIZE = 1 << 16


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


def make_cases(size: int, dtype: str, *, fused: bool, rate: float) -> CaseSet:
    """Return the cases of one (size, dtype) point (MXNet has no fused compiler here)."""
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
                  note="dropout_layer(X, p)"),
        BenchCase(OURS_PORTABLE, lambda: dropout_layer(X, rate, seed=SEED), sync=sync,
                  output_bytes=nbytes, skip=portable_skip,
                  note="dropout_layer(X, p, seed=s), op by op"),
    ]
    return CaseSet(cases)


def native_dropout_layer(X: Any, dropout: float, *, seed=None, offset=0) -> Any:
    """``dropout_layer``'s signature over ``npx.dropout`` (active inside autograd.record)."""
    return npx.dropout(X, p=dropout)


def mlp_epoch_cases() -> CaseSet:
    """One epoch of the course MLP with our dropout_layer and with the native dropout."""
    return epoch_cases("mxnet", native_dropout_layer, "npx.dropout")
