"""Peak extra memory of ONE case in a fresh process: ``python -m dropout_ref.bench.fresh_memory``.

TensorFlow and MXNet keep freed buffers for reuse, so after the first call
of a size the resident set no longer grows and :mod:`dropout_ref.bench.memory`
reads 0. Here the case runs once at a tiny size (libraries and kernels
load), then once at the measured size, first of any large call in the
process. Usage: ``python -m dropout_ref.bench.fresh_memory BACKEND CASE LOG2_SIZE DTYPE``;
prints ``RESULT <bytes per element or null>``.
"""

from __future__ import annotations

import json
import sys

from dropout_ref.bench.cases import BENCH_CASES
from dropout_ref.bench.cases.common import RESULT_PREFIX
from dropout_ref.bench.memory import (
    memory_method_available,
    peak_extra_bytes,
    prefer_mmap_for_large_blocks,
)

WARMUP_SIZE = 1 << 10


def measure(backend: str, case_name: str, log2_size: int, dtype: str) -> float | None:
    """Return the peak extra bytes per element of one first call of ``case_name``."""
    module = BENCH_CASES.load(backend)
    if not memory_method_available():
        return None
    prefer_mmap_for_large_blocks()

    def case_of(size: int):
        case_set = module.make_cases(size, dtype, fused=False, rate=0.5)
        return next(case for case in case_set.cases if case.name == case_name)

    warm = case_of(WARMUP_SIZE)
    warm.sync(warm.run())
    size = 2**log2_size
    extra = peak_extra_bytes(case_of(size))
    return None if extra is None else extra / size


if __name__ == "__main__":
    backend, case_name, log2_size, dtype = sys.argv[1:5]
    value = measure(backend, case_name, int(log2_size), dtype)
    sys.stdout.write(RESULT_PREFIX + json.dumps(value) + "\n")
