"""The chapter ported onto the package: each examples/chapter_<framework>.py runs with --quick."""

from __future__ import annotations

import difflib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dropout_ref.core.registry import BACKENDS
from dropout_ref.models.backends import MLP_MODULE

ROOT = Path(__file__).resolve().parents[1]


def script(name: str) -> Path:
    return ROOT / "examples" / f"chapter_{name}.py"


#: The chapter trains the course MLP: one script per backend the course covers.
CHAPTER_BACKENDS = MLP_MODULE.backends


@pytest.mark.parametrize("name", CHAPTER_BACKENDS)
def test_chapter_example_runs_quick(name, tmp_path):
    if importlib.util.find_spec(BACKENDS[name].framework) is None:
        pytest.skip(f"{BACKENDS[name].framework} is not installed")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, str(script(name)), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for needle in ("dropout=0.0:", "dropout=0.5:", "dropout=1.0:", "epoch 2:"):
        assert needle in result.stdout, needle
    assert (tmp_path / "curves.png").exists()


@pytest.mark.parametrize("name", [name for name in CHAPTER_BACKENDS if name != "numpy"])
def test_chapter_examples_diff_only_in_framework_lines(name):
    """A reader can diff the scripts: besides the framework lines, they are the same."""
    numpy_lines = script("numpy").read_text().splitlines()
    other_lines = script(name).read_text().splitlines()
    changed = [
        line
        for line in difflib.unified_diff(numpy_lines, other_lines, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    # Docstring title, import, adapter import, BACKEND, toy input (mxnet: + set_np, + import).
    assert len(changed) <= 14, "\n".join(changed)
