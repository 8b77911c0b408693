"""Benchmark cases for the torch backend (see :mod:`dropout_ref.bench`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dropout_ref.bench.cases import (
    BASELINE,
    NATIVE,
    OURS,
    OURS_PORTABLE,
    OURS_PORTABLE_FUSED,
    BenchCase,
    CaseSet,
)
from dropout_ref.bench.mlp_epoch import epoch_cases
from dropout_ref.thresholds import inverse_keep_scale, word_threshold
from dropout_ref.torch import dropout_layer, fused, ops

SEED = 20240611
#: Above this size the op-by-op Philox takes seconds per call (~3 s at 2**20 on 2 cores).
UNFUSED_PORTABLE_MAX_SIZE = 1 << 16


def framework_version() -> str:
    """Return ``torch.__version__``."""
    return torch.__version__


def thread_count() -> int:
    """Return torch's intra-op thread count."""
    return torch.get_num_threads()


def fused_portable(X: torch.Tensor, rate: float) -> torch.Tensor:
    """Portable dropout with the compiled keep mask, whatever the size."""
    keep = fused.fused_keep_mask(X, word_threshold(rate), SEED, 0)
    return ops.select_scaled(X, keep, inverse_keep_scale(rate))


def make_cases(size: int, dtype: str, *, fused: bool, rate: float) -> CaseSet:
    """Return the cases of one (size, dtype) point on the CPU."""
    X = torch.randn(size, generator=torch.Generator().manual_seed(0)).to(getattr(torch, dtype))
    nbytes = X.numel() * X.element_size()
    portable_skip = None
    if size > UNFUSED_PORTABLE_MAX_SIZE:
        portable_skip = "op-by-op Philox takes ~3 s at 2^20; see the fused case"
    cases = [
        BenchCase(BASELINE, lambda: X * 2.0, output_bytes=nbytes, note="X * 2.0"),
        BenchCase(NATIVE, lambda: F.dropout(X, rate, training=True), output_bytes=nbytes,
                  note="torch.nn.functional.dropout(training=True)"),
        BenchCase(OURS, lambda: dropout_layer(X, rate), output_bytes=nbytes,
                  note="dropout_layer(X, p)"),
        BenchCase(OURS_PORTABLE, lambda: dropout_layer(X, rate, seed=SEED),
                  output_bytes=nbytes, skip=portable_skip,
                  note="dropout_layer(X, p, seed=s), op by op"),
    ]
    if fused:
        cases.append(BenchCase(OURS_PORTABLE_FUSED, lambda: fused_portable(X, rate),
                               output_bytes=nbytes, compiled=True,
                               note="keep mask by torch.compile (one kernel, any seed)"))
    return CaseSet(cases)


def native_dropout_layer(X: torch.Tensor, dropout: float, *, seed=None, offset=0) -> torch.Tensor:
    """``dropout_layer``'s signature over ``torch.nn.functional.dropout`` (training mode)."""
    return F.dropout(X, dropout, training=True)


def mlp_epoch_cases() -> CaseSet:
    """One epoch of the course MLP with our dropout_layer and with the native dropout."""
    return epoch_cases("torch", native_dropout_layer, "F.dropout")
