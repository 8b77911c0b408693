"""Device plumbing of the tooling (SPEC G2) and the GPU check, tested on the CPU side.

``check_dropout``/``check_model(device=)``, ``dropout-ref report --device``,
``dropout-ref bench --device`` and ``benchmarks/gpu_check.sh``: a device that is
absent gives one clear line and exit status 2, never a traceback; the GPU cases and
their report are well formed (run here on the CPU with the wall clock).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from dropout_ref.bench.report import markdown_report
from dropout_ref.cli import main as cli
from dropout_ref.conformance import check_dropout, check_model

torch = pytest.importorskip("torch")

from dropout_ref.torch import dropout_layer  # noqa: E402

ROOT = pathlib.Path(__file__).parents[1]
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")


@NO_GPU
def test_g2_check_dropout_on_an_absent_device_is_a_clear_value_error():
    with pytest.raises(ValueError, match="no CUDA device on this machine"):
        check_dropout(dropout_layer, "torch", clauses=["D7"], device="cuda")
    with pytest.raises(ValueError, match="no CUDA device"):
        check_model(backend="torch", device="cuda:0")


def test_g2_device_names_that_torch_does_not_know_or_numpy_cannot_use():
    with pytest.raises(ValueError, match="device must be a torch device"):
        check_dropout(dropout_layer, "torch", clauses=["D7"], device="gpu please")
    from dropout_ref.numpy import dropout_layer as numpy_dropout

    with pytest.raises(ValueError, match="numpy backend is checked on the CPU only"):
        check_dropout(numpy_dropout, "numpy", clauses=["D7"], device="cuda")


def test_g2_check_dropout_and_model_on_an_explicit_cpu_device():
    """device="cpu" runs the kit as before: the D7 check sees the output on X's device."""
    report = check_dropout(dropout_layer, "torch", clauses=["D2", "D6", "D7"], device="cpu")
    assert report.ok, report.failures
    assert check_model(backend="torch", device="cpu").ok


@NO_GPU
@pytest.mark.parametrize("command", [
    ["report", "--device", "cuda"],
    ["bench", "--device", "cuda", "--sizes", "10"],
])
def test_g2_cli_device_without_a_gpu_exits_2_with_one_line(command, capsys):
    assert cli.main(command) == 2
    err = capsys.readouterr().err
    assert "no CUDA device on this machine" in err and "Traceback" not in err


def test_bench_device_other_than_cpu_is_torch_only(capsys):
    assert cli.main(["bench", "--device", "cuda", "--backend", "mxnet"]) == 2
    assert "only torch has cases" in capsys.readouterr().err


def test_g3_device_cases_measure_saved_bytes_and_time_forward_backward():
    """The GPU case set, run on the CPU: every case runs; autograd saves at most the native
    op's byte per element (G3): on the CPU the seed= mode's mask is drawn op by op at this
    size, so its byte is saved rather than drawn again (on CUDA Triton draws it and the
    backward recomputes it: nothing saved), and the default mode saves its 1-byte mask."""
    from dropout_ref.bench.cases.torch import device_cases
    from dropout_ref.bench.timing import time_interleaved

    cases = device_cases(4096, "float32", rate=0.5, device="cpu").cases
    names = {case.name for case in cases}
    assert {"baseline", "native", "ours", "ours_portable", "native_fwd_bwd", "ours_fwd_bwd",
            "ours_portable_fwd_bwd"} == names
    extra = {case.name: case.extra for case in cases}
    assert extra["ours_portable"]["saved_bytes_per_element"] == 1.0
    assert extra["ours"]["saved_bytes_per_element"] == 1.0
    assert extra["native"]["saved_bytes_per_element"] >= 1.0
    timings = time_interleaved(cases, 2)
    assert all(t.min_ms > 0 for t in timings.values())


def test_markdown_report_ratios_and_bytes():
    """The GPU report (markdown, no rich): ratios use the minima; bytes are shown per case."""
    rows = [
        {"log2_size": 24, "dtype": "float32", "case": case, "status": "ok", "min_ms": ms,
         "median_ms": ms * 1.1, **extra}
        for case, ms, extra in [
            ("baseline", 0.05, {}), ("native", 0.1, {"saved_bytes_per_element": 1.0}),
            ("ours", 0.08, {"saved_bytes_per_element": 0.0}), ("ours_portable", 0.09, {}),
            ("native_fwd_bwd", 0.2, {}), ("ours_fwd_bwd", 0.15, {}),
        ]
    ]
    results = {
        "config": {"device": "cuda", "repeats": 20},
        "machine": {"cpu_count": 16, "load_average_1_5_15": [0.1, 0.1, 0.1]},
        "load_average_after": [0.2, 0.1, 0.1], "seconds": 12.0,
        "backends": [{"backend": "torch", "framework_version": "2.11", "device_name": "H200",
                      "rows": rows}],
    }
    text = markdown_report(results)
    assert "### torch 2.11 on H200" in text
    header, _, line = text.splitlines()[2:5]
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in line.split("|")],
                     strict=True))
    assert cells["ours/native"] == "0.80"
    assert cells["seed=/X*2"] == "1.80"
    assert cells["f+b ours/native"] == "0.75"
    assert cells["saved B/el ours"] == "0.00" and cells["saved B/el native"] == "1.00"
    assert "CUDA events" in text


@pytest.mark.one_environment
@pytest.mark.slow
@NO_GPU
def test_gpu_check_script_without_a_gpu_reports_every_step_and_fails(tmp_path):
    """benchmarks/gpu_check.sh on a machine without a GPU: every step runs and says why it
    failed (no traceback from our commands), outputs land in $OUT, exit status 1."""
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable,
               PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 1
    summary = (tmp_path / "summary.txt").read_text()
    for step in ("environment", "masks", "report", "bench"):
        assert f"FAIL  {step}" in summary
    assert "no CUDA device" in (tmp_path / "bench.txt").read_text()
    assert "Traceback" not in (tmp_path / "report.txt").read_text()
    assert "Traceback" not in (tmp_path / "bench.txt").read_text()


def test_seed_mode_device_cases_values_equal_the_oracle_mask():
    """The seed= case the GPU bench times is the portable mask (P2), here on the CPU."""
    from dropout_ref.bench.cases.torch import SEED, device_cases
    from dropout_ref.core.philox import numpy_keep_mask
    from dropout_ref.core.thresholds import word_threshold

    case = next(c for c in device_cases(1000, "float32", rate=0.3, device="cpu").cases
                if c.name == "ours_portable")
    out = case.run()
    np.testing.assert_array_equal(out.numpy() != 0,
                                  numpy_keep_mask((1000,), word_threshold(0.3), SEED, 0))


@pytest.mark.one_environment
@NO_GPU
def test_bench_and_report_commands_run_without_rich(monkeypatch, capsys):
    """A bare GPU machine may lack rich: the CLI imports only the command it runs, and the
    bench and report print markdown without it (benchmarks/gpu_check.sh relies on this)."""
    import importlib.util

    monkeypatch.setitem(sys.modules, "rich", None)  # "import rich" now raises ImportError
    for name in [m for m in sys.modules if m.startswith(("rich.", "dropout_ref.cli.commands."))]:
        monkeypatch.delitem(sys.modules, name)
    assert importlib.util.find_spec("rich") is None
    assert cli.main(["bench", "--device", "cuda", "--sizes", "10"]) == 2
    assert cli.main(["report", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
