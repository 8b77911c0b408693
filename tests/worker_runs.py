"""Run the conformance worker as ``dropout-ref report`` does: a subprocess per backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def worker_reports(backend: str, *arguments: str, env: dict[str, str] | None = None) -> dict:
    """Return the worker's ``report`` events, by implementation name.

    Parameters
    ----------
    backend : str
        ``--backend`` of ``python -m dropout_ref.conformance.worker``.
    *arguments : str
        Its other arguments (``--clauses ...``, ``--only ...``).
    env : dict, optional
        Variables added to this process's environment (``KERAS_BACKEND``).
    """
    done = subprocess.run(
        [sys.executable, "-m", "dropout_ref.conformance.worker", "--backend", backend, *arguments],
        capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    reports = {}
    for line in done.stdout.splitlines():
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("event") == "report":
            reports[event["report"]["implementation"]] = event
    return reports
