"""Per-op times of MXNet's dropout building blocks at 2**24 float32 (why ours/native > 1 there).

Run: ``PYTHONPATH=src python benchmarks/mxnet_op_profile.py``. Each op waits for
its result, best of 4; compare the uniform draw and the where kernels with
``npx.dropout`` as a whole.
"""

from __future__ import annotations

import time

import numpy as np

from dropout_ref.core.thresholds import float32_threshold
from dropout_ref.mxnet.framework import autograd, mnp, mx, npx

N = 2**24


def best_ms(fn, repeats: int = 4) -> float:
    """Best wall time of ``fn`` in ms, waiting for its result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn().wait_to_read()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def main() -> None:
    """Print one line per op."""
    X = mnp.array(np.random.default_rng(0).standard_normal(N).astype("float32"))
    threshold = float32_threshold(0.5)
    u = mnp.random.uniform(0.0, 1.0, size=X.shape, dtype="float32")
    keep = u >= threshold
    scaled = X * 2.0
    zeros = mnp.zeros_like(scaled)
    cond = keep.astype("float32")

    def native():
        with autograd.train_mode():
            return npx.dropout(X, p=0.5)

    ops = {
        "npx.dropout (native, whole op)": native,
        "mnp.random.uniform float32": lambda: mnp.random.uniform(
            0.0, 1.0, size=X.shape, dtype="float32"
        ),
        "u >= threshold": lambda: u >= threshold,
        "X * scale": lambda: X * 2.0,
        "zeros_like": lambda: mnp.zeros_like(scaled),
        "mnp.where (bool cond)": lambda: mnp.where(keep, scaled, zeros),
        "keep.astype(float32)": lambda: keep.astype("float32"),
        "mx.nd.where (float cond)": lambda: mx.nd.where(
            cond.as_nd_ndarray(), scaled.as_nd_ndarray(), zeros.as_nd_ndarray()
        ),
        "X * 2.0 (baseline)": lambda: X * 2.0,
    }
    for name, fn in ops.items():
        print(f"{name:34s} {best_ms(fn):8.1f} ms")
    print("MXNet build features:", mx.runtime.Features())


if __name__ == "__main__":
    main()
