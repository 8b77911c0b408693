"""Run the benchmark: one subprocess per backend, then ratios across cases."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from dropout_ref.bench.cases.common import (
    BASELINE,
    MLP_NATIVE,
    MLP_OURS,
    NATIVE,
    NATIVE_EAGER,
    NATIVE_FWD_BWD,
    OURS,
    OURS_FWD_BWD,
    OURS_PORTABLE,
    OURS_PORTABLE_EAGER,
    OURS_PORTABLE_FUSED,
    OURS_PORTABLE_FWD_BWD,
    RESULT_PREFIX,
)
from dropout_ref.bench.gpt_step import GPT_NATIVE, GPT_OURS, GPT_PORTABLE

#: Backends benchmarked by default: those with a native dropout to compare with, and
#: numpy (its seed= mode on the compiled CPU kernel against ``X * 2.0``).
DEFAULT_BACKENDS = ("numpy", "torch", "tensorflow", "mxnet", "jax")
#: Backends with bench cases on a device other than the CPU (``--device cuda``).
DEVICE_BACKENDS = ("torch",)

#: (name, numerator case, denominator case) of every ratio in the report.
RATIOS = (
    ("ours/native", OURS, NATIVE),
    ("ours/baseline", OURS, BASELINE),
    ("portable/baseline", OURS_PORTABLE, BASELINE),
    ("portable/native", OURS_PORTABLE, NATIVE),
    ("portable/native eager", OURS_PORTABLE_EAGER, NATIVE_EAGER),
    ("fwd_bwd ours/native", OURS_FWD_BWD, NATIVE_FWD_BWD),
    ("fwd_bwd portable/native", OURS_PORTABLE_FWD_BWD, NATIVE_FWD_BWD),
    ("portable_fused/baseline", OURS_PORTABLE_FUSED, BASELINE),
    ("mlp_epoch ours/native", MLP_OURS, MLP_NATIVE),
    ("gpt_step ours/native", GPT_OURS, GPT_NATIVE),
    ("gpt_step portable/native", GPT_PORTABLE, GPT_NATIVE),
)


@dataclass
class BenchConfig:
    """What to benchmark; see ``dropout-ref bench --help``."""

    backends: Sequence[str] = DEFAULT_BACKENDS
    log2_sizes: Sequence[int] = (16, 20, 24)
    dtypes: Sequence[str] = ("float32", "float16")
    repeats: int = 5
    rate: float = 0.5
    memory: bool = True
    fused: bool = True
    mlp_epoch: bool = False
    gpt_step: bool = False
    mlp_repeats: int = 2
    #: Where the arrays live: "cpu", or e.g. "cuda" (backends in DEVICE_BACKENDS only).
    device: str = "cpu"
    timeout_s: float = 600.0
    extra_env: dict[str, str] = field(default_factory=dict)

    def worker_config(self, backend: str) -> dict[str, Any]:
        """Return the JSON-able config one worker needs."""
        config = asdict(self)
        del config["backends"], config["timeout_s"], config["extra_env"]
        return {**config, "backend": backend, "log2_sizes": list(self.log2_sizes),
                "dtypes": list(self.dtypes)}


def run_backend(backend: str, config: BenchConfig) -> dict[str, Any]:
    """Benchmark one backend in a fresh interpreter and return its result dict."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **config.extra_env}
    command = [sys.executable, "-m", "dropout_ref.bench.worker",
               json.dumps(config.worker_config(backend))]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=config.timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"backend": backend, "error": f"timed out after {config.timeout_s:.0f} s",
                "rows": []}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
    return {"backend": backend, "rows": [],
            "error": f"worker exited with status {done.returncode}: " + " | ".join(tail)}


#: Cases measured in a fresh process where the framework pools memory.
FRESH_MEMORY_CASES = ("ours", "native")


def fresh_memory(backend: str, case: str, log2_size: int, dtype: str,
                 config: BenchConfig) -> float | None:
    """Peak extra bytes per element of one first call in a fresh process (pooling frameworks)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **config.extra_env}
    command = [sys.executable, "-m", "dropout_ref.bench.fresh_memory", backend, case,
               str(log2_size), dtype]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env,
                              timeout=config.timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return None
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    return None


def add_fresh_memory(result: dict[str, Any], config: BenchConfig) -> None:
    """Fill in extra memory at the largest size, float32, for a backend whose allocator pools."""
    if not config.memory or not str(result.get("memory_method", "")).endswith("fresh process"):
        return
    log2_size = max(config.log2_sizes)
    for row in result["rows"]:
        if (row.get("log2_size") == log2_size and row.get("dtype") == "float32"
                and row.get("case") in FRESH_MEMORY_CASES and row.get("status") == "ok"):
            row["peak_extra_bytes_per_element"] = fresh_memory(
                result["backend"], row["case"], log2_size, "float32", config)


def ratio_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the ratios of min times between cases of the same (size, dtype) point."""
    by_point: dict[tuple, dict[str, float]] = {}
    for row in result.get("rows", []):
        if row.get("status") == "ok":
            point = (row["log2_size"], row["dtype"])
            by_point.setdefault(point, {})[row["case"]] = row["min_ms"]
    ratios = []
    for (log2_size, dtype), times in by_point.items():
        for name, top, bottom in RATIOS:
            if top in times and bottom in times and times[bottom] > 0:
                ratios.append({"backend": result["backend"], "log2_size": log2_size,
                               "dtype": dtype, "ratio": name,
                               "value": times[top] / times[bottom]})
    return ratios


def machine_info() -> dict[str, Any]:
    """Return what a reader needs to compare runs: CPU, cores, load, Python."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "load_average_1_5_15": load}


def run_benchmark(
    config: BenchConfig, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Benchmark every backend of ``config`` one after the other.

    Parameters
    ----------
    config : BenchConfig
        What to run.
    progress : callable, optional
        Called with each backend's name before it starts.

    Returns
    -------
    dict
        ``{"machine", "config", "backends": [...], "ratios": [...], "seconds"}``;
        the JSON written by ``dropout-ref bench --format json``.
    """
    started = time.perf_counter()
    machine = machine_info()
    results = []
    for backend in config.backends:
        if progress is not None:
            progress(backend)
        result = run_backend(backend, config)
        add_fresh_memory(result, config)
        results.append(result)
    ratios = [ratio for result in results for ratio in ratio_rows(result)]
    return {
        "machine": machine,
        "load_average_after": machine_info()["load_average_1_5_15"],
        "config": {k: v for k, v in asdict(config).items() if k != "extra_env"},
        "backends": results,
        "ratios": ratios,
        "seconds": time.perf_counter() - started,
    }
