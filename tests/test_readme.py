"""The README's and the docs pages' Python examples run as written.

A ```python block is a runnable example; fragments that use the reader's own objects are
written as ```py blocks (rendered the same) and are not run, nor are blocks that download.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: Every page with examples: the README and the documentation site's pages.
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
#: Blocks that cannot run here: a download, or placeholders for the user's own objects.
NOT_RUNNABLE = ('load_dataset("fashion-mnist")', "from_model(net,")
#: A block needs the backend named here if it imports it or its framework.
NEEDS = re.compile(
    r"dropout_ref\.(torch|tensorflow|mxnet|jax|array_api)\b"
    r"|^(?:import|from) (torch|tensorflow|mxnet|jax)\b",
    flags=re.M,
)


def needed_backends(code: str) -> set[str]:
    """Return the backends a block imports (its own or its framework's name)."""
    return {match[1] or match[2] for match in NEEDS.finditer(code)}


def python_blocks() -> list:
    """Every runnable ```python block, with ``page:first line`` as its test id.

    A block that needs a framework and not MXNet is marked ``one_environment``
    (tests/conftest.py): the numpy-2 environment holds the same torch and TensorFlow,
    so it runs there; a NumPy-only or MXNet block runs in both environments.
    """
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for code in re.findall(r"```python\n(.*?)```", text, flags=re.S):
            if not any(marker in code for marker in NOT_RUNNABLE):
                name = page.relative_to(ROOT).as_posix()
                needs = needed_backends(code)
                marks = [pytest.mark.one_environment] if needs and "mxnet" not in needs else []
                test_id = f"{name}:{code.strip().splitlines()[0][:40]}"
                found.append(pytest.param(code, id=test_id, marks=marks))
    return found


#: Hugging Face's TensorFlow and Flax model classes (transformers 4.x only: 5.x is PyTorch only).
HF_CLASSES = re.compile(r"\b((?:TF|Flax)\w+(?:Model|LMHeadModel))\b")


def _skip_without_hf_classes(code: str) -> None:
    names = set(HF_CLASSES.findall(code))
    if not names:
        return
    transformers = pytest.importorskip("transformers")
    missing = sorted(name for name in names if not hasattr(transformers, name))
    if missing:
        pytest.skip(
            f"transformers {transformers.__version__} has no {', '.join(missing)} (TensorFlow "
            "and Flax models end with 4.57; the numpy-2 environment runs this example)"
        )


@pytest.mark.parametrize("code", python_blocks())
def test_readme_example_runs(code):
    for name in sorted(needed_backends(code)):
        try:
            __import__("dropout_ref").get_backend(name)
        except ImportError as exc:
            pytest.skip(str(exc))
    _skip_without_hf_classes(code)
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


def test_readme_names_the_triton_environment_command_ci_runs():
    """The Triton kernel's interpreter tests run in their own environment, in CI too."""
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    test_command = (
        'python -m pip install -r backends/triton/requirements.txt -e ".[test]" && '
        "TRITON_INTERPRET=1 python -m pytest tests/test_triton_kernel.py"
    )
    assert test_command in text and test_command in ci
