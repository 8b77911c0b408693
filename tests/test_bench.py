"""The benchmark runs and is well formed; the fast paths keep every SPEC clause.

Benchmarks are not timed tests: nothing here depends on how fast anything is.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from dropout_ref.bench.cases.common import BASELINE, NATIVE, OURS, OURS_PORTABLE
from dropout_ref.bench.memory import (
    memory_method_available,
)
from dropout_ref.bench.runner import DEFAULT_BACKENDS, BenchConfig, run_benchmark
from dropout_ref.cli import main as cli

INSTALLED = tuple(
    name for name in DEFAULT_BACKENDS if importlib.util.find_spec(name) is not None
)


@pytest.fixture(scope="module")
def tiny_results():
    """One tiny run of every installed backend: 2^10 elements, 2 repeats, no compiling.

    Memory is left out here (it starts a fresh process per case for TensorFlow
    and MXNet); :func:`test_peak_extra_bytes_sees_a_temporary` checks the method.
    """
    config = BenchConfig(backends=INSTALLED, log2_sizes=(10,), dtypes=("float32", "float16"),
                         repeats=2, fused=False, memory=False)
    return run_benchmark(config)


def test_bench_tiny_run_is_well_formed(tiny_results):
    assert {"machine", "config", "backends", "ratios", "seconds"} <= set(tiny_results)
    assert [r["backend"] for r in tiny_results["backends"]] == list(INSTALLED)
    for result in tiny_results["backends"]:
        assert "error" not in result, result.get("traceback", result.get("error"))
        assert result["memory_method"] is None
        cases = {(row["dtype"], row["case"]) for row in result["rows"]}
        expected = (BASELINE, OURS, OURS_PORTABLE)
        expected += () if result["backend"] == "numpy" else (NATIVE,)  # numpy has no dropout
        for dtype in ("float32", "float16"):
            assert {(dtype, c) for c in expected} <= cases
        for row in result["rows"]:
            assert row["status"] == "ok"
            assert row["repeats"] == 2
            assert 0 < row["min_ms"] <= row["median_ms"]


def test_bench_ratios_are_positive_and_complete(tiny_results):
    ratios = tiny_results["ratios"]
    for backend in INSTALLED:
        names = {r["ratio"] for r in ratios if r["backend"] == backend}
        assert {"ours/baseline", "portable/baseline"} <= names
        assert backend == "numpy" or "ours/native" in names
    assert all(r["value"] > 0 and np.isfinite(r["value"]) for r in ratios)


@pytest.mark.skipif("torch" not in INSTALLED, reason="torch is not installed")
def test_bench_cli_json(capsys):
    status = cli.main(["bench", "--backend", "torch", "--sizes", "8", "--dtypes", "float32",
                       "--repeats", "2", "--no-fused", "--format", "json"])
    assert status == 0
    results = json.loads(capsys.readouterr().out)
    assert results["config"]["log2_sizes"] == [8]
    (torch_result,) = results["backends"]
    assert {row["case"] for row in torch_result["rows"]} >= {OURS, NATIVE, BASELINE}


def test_bench_cli_rejects_bad_sizes():
    with pytest.raises(SystemExit):
        cli.main(["bench", "--sizes", "sixteen"])


def test_bench_report_prints_a_table(tiny_results, capsys):
    from rich.console import Console

    from dropout_ref.bench.report import print_report

    print_report(tiny_results, Console(width=200, force_terminal=False))
    out = capsys.readouterr().out
    assert "ours/native" in out and "2^10" in out


_PEAK_PROBE = """
import numpy as np
from dropout_ref.bench.memory import peak_extra_bytes, prefer_mmap_for_large_blocks
from dropout_ref.bench.cases.common import BenchCase

n = 1 << 22
prefer_mmap_for_large_blocks()
# np.add, not "*": NumPy would reuse the temporary of an operator expression.
with_temporary = BenchCase("t", lambda: np.add(np.ones(n), 2.0), output_bytes=8 * n)
without = BenchCase("o", lambda: np.full(n, 2.0), output_bytes=8 * n)
print(peak_extra_bytes(with_temporary) / n, peak_extra_bytes(without) / n)
"""


@pytest.mark.skipif(not memory_method_available(), reason="needs Linux /proc/self/clear_refs")
def test_peak_extra_bytes_sees_a_temporary():
    """The memory method reports a known temporary (8 B/element) and not the output.

    In a fresh interpreter, as the bench measures memory (bench.fresh_memory): in a test
    worker that ran other tests first, freed heap pages already resident hide the temporary.
    """
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_PROBE], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with_temporary, without = map(float, done.stdout.split())
    assert 7.0 <= with_temporary <= 9.0
    assert without <= 1.0


def test_bench_cli_refuses_a_backend_without_bench_cases(capsys):
    """A backend without bench cases: a usage error naming the ones that have them (E1).

    ``array_api`` is a real backend with no bench cases (it wraps other libraries), so
    the refusal happens at argument parsing and no benchmark runs.
    """
    with pytest.raises(SystemExit) as info:
        cli.main(["bench", "--backend", "array_api"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "bench has cases for numpy, torch" in err and "array_api" in err


def test_bench_worker_reports_a_missing_framework_with_e1_message(monkeypatch, capsys):
    """E1: a missing framework's row carries the install command, not a bare import error."""
    import sys

    from dropout_ref.bench import worker

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails, as if missing
    for module in [m for m in sys.modules if m.startswith("dropout_ref.torch")]:
        monkeypatch.delitem(sys.modules, module)
    worker.main([json.dumps({"backend": "torch"})])
    result = json.loads(capsys.readouterr().out.split(" ", 1)[1])
    assert "install it with" in result["error"]


def test_bench_output_unwritable_exits_2(tmp_path, capsys, monkeypatch):
    """--output into a directory that cannot be created: a message and exit 2, no traceback."""
    from dropout_ref.cli.commands import bench

    monkeypatch.setattr(bench, "run_benchmark", lambda config, progress: {"backends": []})
    monkeypatch.setattr(bench, "print_report", lambda results: None)
    blocker = tmp_path / "file"
    blocker.write_text("")
    status = cli.main(["bench", "--backend", "torch", "--output", str(blocker / "out.json")])
    assert status == 2
    assert "cannot write --output" in capsys.readouterr().err
