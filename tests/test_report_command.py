"""``dropout-ref report``: matrix, formats, exit status, isolation of a crashing backend."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dropout_ref.cli.commands import report
from dropout_ref.cli.main import main


def test_report_json_for_numpy(capsys) -> None:
    """D1-D12, M2-M4 for numpy: every cell pass or n/a (D8; D12 element-wise), exit status 0."""
    status = main(["report", "--backend", "numpy", "--format", "json"])
    payload = json.loads(capsys.readouterr().out)
    assert status == 0 == payload["exit_status"]
    (numpy_run,) = payload["backends"]
    assert numpy_run["status"] == "ok"
    rows = {row["implementation"]: row for row in numpy_run["rows"]}
    cells = rows["dropout_ref.numpy.dropout_layer"]["cells"]
    assert cells["D8"] == "n/a"
    assert cells["D12"] == "n/a"  # element-wise: no groups to check
    assert {v for c, v in cells.items() if c not in ("D8", "D12")} == {"pass"}
    # D12: the structured row (channel dropout) passes D1-D12 per group.
    structured = rows["dropout_ref.numpy.dropout_layer(noise_shape)"]["cells"]
    assert {v for c, v in structured.items() if c != "D8"} == {"pass"}
    assert set(rows["dropout_ref.numpy.MLP"]["cells"].values()) == {"pass"}


def test_a_crashing_backend_shows_and_fails_while_the_rest_runs(monkeypatch, capsys) -> None:
    """One worker that dies is reported as crashed; the other backends still run; exit 1."""
    real = report.worker_command

    def crash_torch(backend, args, clauses):
        if backend == "torch":
            return [sys.executable, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"]
        return real(backend, args, clauses)

    monkeypatch.setattr(report, "worker_command", crash_torch)
    status = main(["report", "--backend", "numpy", "--backend", "torch", "--format", "markdown"])
    out = capsys.readouterr().out
    assert status == 1
    assert "torch (crashed)" in out and "exit status 3: boom" in out
    assert "`dropout_ref.numpy.dropout_layer` | ours | pass" in out


def _run(kind: str, cells: dict[str, str]) -> report.BackendRun:
    run = report.BackendRun("torch", status="ok")
    run.rows.append({"implementation": "x", "kind": kind, "cells": cells, "messages": {}})
    return run


@pytest.mark.parametrize(
    ("kind", "cells", "expected"),
    [
        ("ours", {"D1": "pass", "D8": "n/a"}, 0),
        ("ours", {"D1": "FAIL"}, 1),
        ("native", {"D1": "FAIL", "D3": "deviation", "D5": "FIXED?"}, 0),
    ],
)
def test_exit_status_fails_only_for_our_backends(kind, cells, expected) -> None:
    """Our failures fail the report; natives' (documented or not) never do."""
    assert report.exit_status([_run(kind, cells)]) == expected


def test_cells_classify_native_deviations() -> None:
    """A documented failure is a deviation; a documented pass is FIXED?; else pass/FAIL."""
    expected = {"D3": "evidence"}
    assert report._cell("native", "fail", "D3", expected) == report.DEVIATION
    assert report._cell("native", "pass", "D3", expected) == report.FIXED
    assert report._cell("native", "fail", "D6", expected) == report.FAIL
    assert report._cell("ours", "n/a", "D8", {}) == report.NA


def test_a_missing_framework_shows_its_install_command(monkeypatch, capsys) -> None:
    """E1 in the report: a backend whose framework is absent is listed, not run; exit 0."""
    real = report.importlib.util.find_spec
    monkeypatch.setattr(
        report.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "mxnet" else real(name, *a),
    )
    status = main(["report", "--backend", "mxnet", "--format", "markdown"])
    out = capsys.readouterr().out
    assert status == 0
    assert "mxnet (missing)" in out and "pip install" in out


def test_report_table_renders(capsys) -> None:
    """The default rich table prints every clause column and the row of our layer."""
    assert main(["report", "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "D11" in out and "M4" in out and "dropout_ref.numpy.dropout_layer" in out


def test_cli_help_does_not_import_scipy():
    """`dropout-ref --help` stays quick: scipy (~0.8 s) is imported only to compute a bound."""
    import os
    import subprocess
    import sys

    code = ("import sys, dropout_ref.cli.main; dropout_ref.cli.main.build_parser(); "
            "print('scipy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ), check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("seed", ["-1", "4294967296", "abc"])
def test_report_refuses_a_seed_no_backend_can_take(seed):
    done = subprocess.run(
        [sys.executable, "-m", "dropout_ref", "report", "--seed", seed],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "--seed" in done.stderr and "Traceback" not in done.stderr


def _payload(backends, numpy_version):
    return {
        "clauses": ["D1"],
        "seconds": 3.0,
        "exit_status": 0,
        "environment": {"python": "3.11", "numpy": numpy_version},
        "backends": backends,
    }


def _entry(name, status, cell="pass", kind="ours"):
    rows = []
    if status == "ok":
        rows = [{"implementation": f"dropout_ref.{name}.dropout_layer", "backend": name,
                 "kind": kind, "cells": {"D1": cell}, "messages": {"D1": "D1: x"},
                 "expected_deviations": {}, "alpha": 1e-6, "alpha_per_test": 1e-7}]  # fmt: skip
    return {"backend": name, "status": status, "detail": "", "seconds": 1.0, "rows": rows}


def test_report_merge_two_environments_into_one_matrix(tmp_path, capsys) -> None:
    """--merge: each backend once, from the environment where it ran; the exit status of all."""
    import json

    numpy2 = tmp_path / "numpy2.json"
    mxnet_env = tmp_path / "mxnet.json"
    numpy2.write_text(json.dumps(_payload(
        [_entry("numpy", "ok"), _entry("mxnet", "missing"), _entry("jax", "ok")], "2.4.6")))
    mxnet_env.write_text(json.dumps(_payload(
        [_entry("numpy", "ok"), _entry("mxnet", "ok"), _entry("jax", "missing")], "1.26.4")))
    status = main(["report", "--merge", str(numpy2), str(mxnet_env), "--format", "json"])
    merged = json.loads(capsys.readouterr().out)
    assert status == 0 and merged["exit_status"] == 0
    assert [(b["backend"], b["status"]) for b in merged["backends"]] == [
        ("numpy", "ok"), ("mxnet", "ok"), ("jax", "ok")
    ]
    assert [e["numpy"] for e in merged["environment"]] == ["2.4.6", "1.26.4"]
    # Markdown names the environments; a failing row of ours in either file fails the merge.
    assert main(["report", "--merge", str(numpy2), str(mxnet_env), "--format", "markdown"]) == 0
    text = capsys.readouterr().out
    assert "`dropout_ref.jax.dropout_layer`" in text and "`dropout_ref.mxnet.dropout_layer`" in text
    assert "numpy 1.26.4" in text and "(missing)" not in text
    mxnet_env.write_text(json.dumps(_payload([_entry("mxnet", "ok", cell="FAIL")], "1.26.4")))
    assert main(["report", "--merge", str(numpy2), str(mxnet_env), "--format", "markdown"]) == 1


def test_report_merge_refuses_a_file_that_is_no_report(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert main(["report", "--merge", str(bad)]) == 2
    assert "bad.json" in capsys.readouterr().err
