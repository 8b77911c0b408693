"""examples/gpt_char.py --quick runs offline and writes its figure and figures (issue 15)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_gpt_char_example_quick(tmp_path):
    pytest.importorskip("torch")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "gpt_char.py"), "--quick", "--out",
         str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    document = json.loads((tmp_path / "gpt_char.json").read_text())
    assert set(document["runs"]) == {"0.0", "0.2"}
    for rows in document["runs"].values():
        assert [row["step"] for row in rows] == [0, 20, 40]
        assert rows[-1]["val_bpc"] < rows[0]["val_bpc"]  # it learns
    assert (tmp_path / "gpt_char.png").read_bytes()[:4] == b"\x89PNG"
    assert "best val bpc" in done.stdout
