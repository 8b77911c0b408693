"""Check the compiled scale of every float32 rate in [0, 1) against the eager one (SPEC S1).

Runs :func:`dropout_ref.core.runtime.runtime_rate` in NumPy (IEEE float32 or float64
arithmetic, the same steps the compiled programs run) for all 1 065 353 216 float32 rates
and compares its scale with the eager path's: ``RN64(1 / (1 - r))`` (float64 work, torch
and TensorFlow) or ``RN32(RN64(1 / (1 - r)))`` (float32 work, JAX without x64). For
``r >= 2**-30`` NumPy's ``1.0 / (1.0 - r)`` in float64 is exactly ``RN64`` (``1 - r`` is
exact and IEEE division is correctly rounded); below, the float32 scale is 1.0.

Usage: ``python benchmarks/runtime_scale_sweep.py float32|float64`` (minutes on one core).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dropout_ref.core.runtime import runtime_rate


class NumpyMath:
    """RateMath in NumPy."""

    def cast(self, x, dtype):  # noqa: D102
        return np.asarray(x).astype(dtype)

    def ceil(self, x):  # noqa: D102
        return np.ceil(x)

    def where(self, cond, a, b):  # noqa: D102
        return np.where(cond, a, b)

    def zeros_like(self, x):  # noqa: D102
        return np.zeros_like(x)

    def nextafter(self, x, up):  # noqa: D102
        return np.nextafter(x, np.where(up, np.inf, -np.inf).astype(x.dtype))

    def barrier(self, x):  # noqa: D102
        return x


def main(work: str) -> int:
    """Print the number of float32 rates whose scale differs from the eager one."""
    ns, bad, start_time = NumpyMath(), 0, time.time()
    top = int(np.float32(1.0).view(np.uint32))
    step = 1 << 23
    with np.errstate(all="ignore"):
        for start in range(0, top, step):
            r32 = np.arange(start, min(start + step, top), dtype=np.uint32).view(np.float32)
            got = runtime_rate(r32, work, ns).scale
            r64 = r32.astype(np.float64)
            want = 1.0 / (1.0 - r64)
            tiny = r64 < 2.0**-30
            if work == "float32":
                got, want = got.astype(np.float32), want.astype(np.float32)
                want[tiny] = 1.0
            else:  # float64 scale of a rate below 2**-30: 1 - r is not exact in float64
                got, want, r32 = got[~tiny], want[~tiny], r32[~tiny]
            diff = got != want
            if diff.any():
                bad += int(diff.sum())
                print("mismatch", r32[diff][:5], flush=True)
    print(f"{work}: float32 rates checked: {top}, mismatches: {bad}, "
          f"seconds: {time.time() - start_time:.0f}", flush=True)
    return bad


if __name__ == "__main__":
    sys.exit(1 if main(sys.argv[1] if len(sys.argv) > 1 else "float32") else 0)
