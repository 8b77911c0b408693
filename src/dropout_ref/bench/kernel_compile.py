"""First-call cost of the compiled CPU kernel, cold and from numba's disk cache.

Two fresh interpreters share one empty ``NUMBA_CACHE_DIR``: the first
compiles every entry the backend uses and writes the cache, the second loads
it. Their difference is the compile cost a machine pays once (users' calls
cache in numba's own place: ``__pycache__`` beside
``dropout_ref/_numba_kernels.py`` where writable, else numba's per-user cache
directory, or ``NUMBA_CACHE_DIR`` when set).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

_CHILD = """
import json, sys, time
started = time.perf_counter()
from dropout_ref.kernels import cpu as cpu_kernel

ok = all(cpu_kernel.probe_entry("fused", dtype) for dtype in sys.argv[1:])
ok = cpu_kernel.probe_entry("mask") and ok
print(json.dumps({"seconds": time.perf_counter() - started, "ok": ok,
                  "why": cpu_kernel.available()[1]}))
"""


def _child(cache_dir: str, dtypes: Sequence[str]) -> dict[str, Any]:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    done = subprocess.run([sys.executable, "-c", _CHILD, *dtypes], capture_output=True,
                          text=True, env=env, timeout=600, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        return {"seconds": None, "ok": False, "why": " ".join(tail)}
    return json.loads(done.stdout.strip().splitlines()[-1])


def compile_cost(dtypes: Sequence[str]) -> dict[str, Any]:
    """Return the seconds to first use of the fused entry per dtype and the mask, cold and cached.

    Returns
    -------
    dict
        ``cold_s`` (empty cache: numba import + compile + cache write),
        ``cached_s`` (a second fresh process: numba import + cache load),
        ``signatures`` (number of compiled entries), ``ok`` and ``why``.
    """
    with tempfile.TemporaryDirectory(prefix="dropout-ref-numba-") as cache_dir:
        cold = _child(cache_dir, dtypes)
        cached = _child(cache_dir, dtypes)
    return {"cold_s": cold["seconds"], "cached_s": cached["seconds"],
            "signatures": len(dtypes) + 1, "ok": bool(cold["ok"] and cached["ok"]),
            "why": cold["why"]}
