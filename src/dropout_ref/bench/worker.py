"""Benchmark one backend in this process: ``python -m dropout_ref.bench.worker CONFIG_JSON``.

The runner starts one worker per backend, so frameworks never share a
process (their import order has crashed interpreters before) and each one
gets a clean allocator. The worker prints one line, ``RESULT <json>``.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from typing import Any

from dropout_ref.bench.cases import BENCH_CASES
from dropout_ref.bench.cases.common import RESULT_PREFIX
from dropout_ref.bench.memory import (
    memory_method_available,
    peak_extra_bytes,
    prefer_mmap_for_large_blocks,
)
from dropout_ref.bench.timing import time_interleaved
from dropout_ref.core.registry import get_backend

#: Cases whose extra memory is measured (the targets are about these).
MEMORY_CASES = ("ours", "native", "baseline")


def bench_point(module: Any, config: dict[str, Any], log2_size: int, dtype: str) -> list[dict]:
    """Time (and measure) every case of one (size, dtype) point; return report rows."""
    size = 2**log2_size
    device = config.get("device", "cpu")
    if device == "cpu":
        case_set = module.make_cases(size, dtype, fused=config["fused"], rate=config["rate"])
    else:
        case_set = module.make_cases(size, dtype, fused=config["fused"], rate=config["rate"],
                                     device=device)
    rows = []
    if case_set is None:
        return [{"log2_size": log2_size, "size": size, "dtype": dtype, "case": "*",
                 "status": f"{dtype} not supported by this backend's native dropout or ours"}]
    timings = time_interleaved(case_set.cases, config["repeats"])
    for case in case_set.cases:
        row: dict[str, Any] = {
            "log2_size": log2_size, "size": size, "dtype": dtype, "case": case.name,
            "note": case.note,
        }
        if case.skip is not None:
            row["status"] = f"skipped: {case.skip}"
            rows.append(row)
            continue
        timing = timings[case.name]
        row.update(case.extra)
        row.update(
            status="ok",
            repeats=len(timing.times_ms),
            min_ms=timing.min_ms,
            median_ms=timing.median_ms,
            first_call_ms=timing.first_call_ms,
            compile_s=(
                max(0.0, timing.first_call_ms - timing.min_ms) / 1e3 if case.compiled else None
            ),
        )
        rows.append(row)
    if config["memory"] and not module.MEMORY_POOLED:
        for row, case in zip(rows, case_set.cases, strict=True):
            if case.name in MEMORY_CASES and row.get("status") == "ok":
                extra = peak_extra_bytes(case)
                row["peak_extra_bytes_per_element"] = None if extra is None else extra / size
    return rows


def run_worker(config: dict[str, Any]) -> dict[str, Any]:
    """Benchmark ``config["backend"]`` over every size and dtype; return the result dict."""
    name = config["backend"]
    started = time.perf_counter()
    # A missing framework raises here with the E1 message (the install command), not a
    # bare ModuleNotFoundError from the bench cases' imports.
    get_backend(name)
    module = BENCH_CASES.load(name)
    device = config.get("device", "cpu")
    if device != "cpu":
        check = module.check_device
        if check is None:
            raise DeviceUnavailable(f"the {name} backend has no bench cases for device={device!r}")
        try:
            check(device)
        except ValueError as exc:
            raise DeviceUnavailable(str(exc)) from None
    # Host memory (VmHWM) says nothing about a GPU run; the adapter reports device memory.
    memory = config["memory"] and memory_method_available() and device == "cpu"
    if memory:
        prefer_mmap_for_large_blocks()
    config = {**config, "memory": memory}
    rows: list[dict] = []
    for dtype in config["dtypes"]:
        for log2_size in config["log2_sizes"]:
            rows.extend(bench_point(module, config, log2_size, dtype))
    if config.get("mlp_epoch") and module.mlp_epoch_cases is not None:
        rows.extend(bench_mlp(module, config))
    if config.get("gpt_step") and device == "cpu":
        from dropout_ref.bench.gpt_step import gpt_rows

        rows.extend(gpt_rows(name, config["mlp_repeats"]))
    device_info = module.device_info
    extra: dict[str, Any] = {}
    if config["fused"] and module.CPU_KERNEL:
        from dropout_ref.bench.kernel_compile import compile_cost

        extra["kernel_compile"] = compile_cost(config["dtypes"])
    return {
        **extra,
        "backend": name,
        "framework_version": module.framework_version(),
        "threads": module.thread_count(),
        "memory_method": (
            None if not memory
            else "VmHWM, first call in a fresh process" if module.MEMORY_POOLED
            else "VmHWM"
        ),
        "device": device,
        "device_name": device_info(device) if device_info is not None else device,
        "rows": rows,
        "seconds": time.perf_counter() - started,
    }


class DeviceUnavailable(Exception):  # noqa: N818 - a verdict, like NotApplicable
    """The requested device does not exist here (reported as one line, not a traceback)."""


def bench_mlp(module: Any, config: dict[str, Any]) -> list[dict]:
    """Time one training epoch with our dropout and with the native dropout layer."""
    device = config.get("device", "cpu")
    case_set = module.mlp_epoch_cases() if device == "cpu" else module.mlp_epoch_cases(device)
    if case_set is None:
        return []
    timings = time_interleaved(case_set.cases, config["mlp_repeats"])
    return [
        {
            **case.extra,
            "case": case.name, "size": None, "log2_size": None, "dtype": "float32",
            "status": "ok", "note": case.note, "repeats": len(timings[case.name].times_ms),
            "min_ms": timings[case.name].min_ms, "median_ms": timings[case.name].median_ms,
            "first_call_ms": timings[case.name].first_call_ms, "compile_s": None,
        }
        for case in case_set.cases
    ]


def main(argv: list[str]) -> int:
    """Run the worker on the JSON config in ``argv[0]``; print ``RESULT <json>``."""
    config = json.loads(argv[0])
    try:
        result = run_worker(config)
    except DeviceUnavailable as exc:
        result = {"backend": config["backend"], "error": str(exc), "unusable": True, "rows": []}
    except Exception as exc:  # reported to the parent, which goes on
        result = {
            "backend": config["backend"],
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
            "rows": [],
        }
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
