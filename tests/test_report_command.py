"""``dropout-ref report``: matrix, formats, exit status, isolation of a crashing backend."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dropout_ref.cli import main
from dropout_ref.commands import report


def test_report_json_for_numpy(capsys) -> None:
    """D1-D11, M2-M4 for numpy: every cell pass or n/a (D8), exit status 0."""
    status = main(["report", "--backend", "numpy", "--format", "json"])
    payload = json.loads(capsys.readouterr().out)
    assert status == 0 == payload["exit_status"]
    (numpy_run,) = payload["backends"]
    assert numpy_run["status"] == "ok"
    rows = {row["implementation"]: row for row in numpy_run["rows"]}
    cells = rows["dropout_ref.numpy.dropout_layer"]["cells"]
    assert cells["D8"] == "n/a"
    assert {v for c, v in cells.items() if c != "D8"} == {"pass"}
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

    code = ("import sys, dropout_ref.cli; dropout_ref.cli.build_parser(); "
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
