"""The README's Python examples run as written (those that need no network or user objects)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
#: Blocks that cannot run here: a download, or placeholders for the user's own objects.
NOT_RUNNABLE = ('load_dataset("fashion-mnist")', "from_model(net,")


def python_blocks() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    return [b for b in blocks if not any(marker in b for marker in NOT_RUNNABLE)]


@pytest.mark.parametrize("code", python_blocks(), ids=lambda c: c.strip().splitlines()[0][:40])
def test_readme_example_runs(code):
    for module in re.findall(r"dropout_ref\.(torch|tensorflow|mxnet|jax)", code):
        try:
            __import__("dropout_ref").get_backend(module)
        except ImportError as exc:
            pytest.skip(str(exc))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_readme_names_the_two_commands_ci_runs():
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    setup = "python -m pip install -r backends/all/requirements.txt"
    test_command = f'{setup} -e ".[test]" && python -m pytest'
    assert test_command in text and test_command in ci
    assert f"{setup} -e . && dropout-ref report" in text


def test_readme_names_the_numpy_2_environment_command_ci_runs():
    """The second environment (numpy 2: jax, flax, keras; no mxnet) is tested by CI too."""
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    test_command = (
        'python -m pip install -r backends/jax/requirements.txt -e ".[test]" && python -m pytest'
    )
    assert test_command in text and test_command in ci
    assert "nox -s matrix" in text
