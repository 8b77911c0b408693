"""Profile of the compiled CPU kernel's parts (docs/cpu-kernel.md, docs/benchmark.md).

Usage: ``PYTHONPATH=src python benchmarks/cpu_kernel_profile.py [--mxnet]``. Prints the
best of ``REPEATS`` calls in ms for the numpy ``seed=`` path at 2^24 float32 split into
its parts, and with ``--mxnet`` one recorded dropout at the course MLP's 256 x 256.
"""

from __future__ import annotations

import sys
import time

import numpy as np

REPEATS = 7


def best_ms(fn, repeats: int = REPEATS) -> float:
    """Return the fastest of ``repeats`` calls of ``fn`` after one warm-up, in ms."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def numpy_parts() -> None:
    """Print the numpy seed= path at 2^24 float32, part by part."""
    import numba

    from dropout_ref.kernels import cpu as cpu_kernel
    from dropout_ref.numpy import dropout_layer

    X = np.random.default_rng(0).standard_normal(1 << 24).astype(np.float32)
    out = np.empty_like(X)
    mask = np.empty(X.shape, dtype=bool)
    rows = {
        "X * 2.0 (new output)": lambda: X * 2.0,
        "np.multiply(X, 2, out=) (no page faults)": lambda: np.multiply(X, np.float32(2), out=out),
        "np.empty + fill (page faults of a new output)": lambda: np.empty_like(X).fill(1.0),
        "dropout_layer(X, 0.5, seed=s)": lambda: dropout_layer(X, 0.5, seed=1),
        "fused kernel into a reused output": lambda: cpu_kernel.fused_dropout(
            X, 1 << 31, 1, 0, 2.0, out=out),
        "Philox + compare only (mask kernel, 1 B/el)": lambda: cpu_kernel.keep_mask(
            X.shape, 1 << 31, 1, 0, out=mask),
    }
    for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        numba.set_num_threads(threads)
        for name, fn in rows.items():
            print(f"numpy 2^24 float32, {threads} numba thread(s): {name}: {best_ms(fn):.1f} ms")


def mxnet_parts() -> None:
    """Print one recorded MXNet dropout at 256 x 256, part by part."""
    from dropout_ref.mxnet import dropout_layer
    from dropout_ref.mxnet import fast as kernel
    from dropout_ref.mxnet.framework import autograd, mnp, npx
    from dropout_ref.mxnet.ops import MxnetOps

    X = mnp.array(np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32))
    X.attach_grad()
    ops = MxnetOps()

    def recorded(fn):
        def run():
            with autograd.record():
                out = fn()
            out.wait_to_read()
        return run

    keep = kernel._mask(X, 1 << 31, 1, 0)
    rows = {
        "npx.dropout (recorded)": recorded(lambda: npx.dropout(X, p=0.5)),
        "dropout_layer (recorded)": recorded(lambda: dropout_layer(X, 0.5)),
        "key draw (randint + asnumpy)": lambda: kernel.global_key(X),
        "mask kernel into an MXNet uint8 array": lambda: kernel._mask(X, 1 << 31, 1, 0),
        "select_scaled (recorded)": recorded(lambda: ops.select_scaled(X, keep, 2.0)),
    }
    for name, fn in rows.items():
        print(f"mxnet 256x256 float32: {name}: {best_ms(fn, 50):.3f} ms")


if __name__ == "__main__":
    numpy_parts()
    if "--mxnet" in sys.argv:
        mxnet_parts()
