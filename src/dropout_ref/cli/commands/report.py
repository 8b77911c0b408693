"""``dropout-ref report``: the conformance matrix of every backend and native dropout.

Each backend runs in its own process (``python -m dropout_ref.conformance.worker``)
so that a framework that is missing, crashes, or crashes another on import
(TensorFlow before torch has been reported to) shows as such in its row while
the rest of the report still runs.

Cells: ``pass``; ``FAIL``; ``n/a`` (the framework cannot express the check);
``deviation`` (a native op's failure documented in ``docs/deviations/<name>.md``);
``FIXED?`` (a documented deviation that no longer shows).

Exit status: 1 when one of OUR backends fails a clause or its process crashes
or times out; 0 otherwise. Natives never change the exit status: their
undocumented failures and vanished deviations are shown in the matrix, and
``tests/test_natives.py`` is the gate that fails on them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # rich is imported where it draws, to keep `dropout-ref --help` quick
    from rich.console import Console
    from rich.progress import Progress


from dropout_ref.conformance.model_checks import MODEL_CLAUSES, MODEL_TITLES
from dropout_ref.conformance.natives.keras import KERAS_BACKENDS
from dropout_ref.conformance.registry import CHECKS, CLAUSES
from dropout_ref.conformance.site_checks import SITE_CLAUSES, SITE_TITLES
from dropout_ref.conformance.stats import DEFAULT_ALPHA
from dropout_ref.core.registry import BACKENDS, backend_info
from dropout_ref.course.training import NoProgress

#: Backends whose arrays can be placed on another device than the CPU (``--device``).
DEVICE_BACKENDS = ("torch",)

#: Cell texts.
PASS, FAIL, NA, DEVIATION, FIXED = "pass", "FAIL", "n/a", "deviation", "FIXED?"
_STYLE = {PASS: "green", FAIL: "bold red", NA: "dim", DEVIATION: "yellow", FIXED: "bold magenta"}


@dataclass
class BackendRun:
    """What one backend's worker process produced."""

    backend: str
    status: str = "pending"  # pending, ok, missing, crashed, timed out
    detail: str = ""
    implementations: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def _seed(text: str) -> int:
    """Parse ``--seed``: an integer every backend's generator accepts (checked before any run)."""
    from dropout_ref.conformance.runner import MAX_SEED

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed must be an integer, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"--seed must be in [0, {MAX_SEED}], got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options: which backends, output format, seed, false-alarm level."""
    parser.add_argument(
        "--backend",
        action="append",
        choices=list(BACKENDS),
        help="check only this backend (repeatable; default: all)",
    )
    parser.add_argument("--format", choices=["table", "markdown", "json"], default="table")
    parser.add_argument(
        "--seed", type=_seed, default=0, help="seed of inputs and generators (0 to 4294966)"
    )
    parser.add_argument(
        "--alpha",
        type=float,
        default=DEFAULT_ALPHA,
        help="false-alarm probability of each implementation's run (Bonferroni-split "
        "over its random tests); default %(default)g",
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="backends checked at once (default %(default)s)"
    )
    parser.add_argument(
        "--timeout", type=float, default=240.0, help="seconds allowed per backend"
    )
    parser.add_argument(
        "--device",
        default=None,
        help="where the inputs (and the MLP) live, e.g. cuda or cuda:1 (SPEC G2); default the "
        f"CPU. A device other than cpu checks {', '.join(DEVICE_BACKENDS)} only (unless "
        "--backend is given)",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        metavar="JSON",
        help="run nothing: merge the --format json reports of several environments "
        "(e.g. the numpy-2 one and the MXNet one) into one matrix",
    )


def _cell(kind: str, status: str, clause: str, expected: dict[str, str]) -> str:
    if status == "n/a":
        return NA
    if kind == "native" and clause in expected:
        return DEVIATION if status == "fail" else FIXED
    return PASS if status == "pass" else FAIL


def _row(event: dict[str, Any], clauses: list[str]) -> dict[str, Any]:
    report = event["report"]
    kind, expected = event["kind"], event["expected"]
    cells = {
        c: _cell(kind, report["results"][c]["status"], c, expected)
        for c in clauses
        if c in report["results"]
    }
    return {
        "implementation": report["implementation"],
        "backend": report["backend"],
        "kind": kind,
        "cells": cells,
        "messages": {c: r["message"] for c, r in report["results"].items()},
        "expected_deviations": expected,
        "alpha": report["alpha"],
        "alpha_per_test": report["alpha_per_test"],
    }


def worker_command(backend: str, args: argparse.Namespace, clauses: list[str]) -> list[str]:
    """Return the command line of one backend's worker process."""
    device = getattr(args, "device", None)
    return [
        sys.executable, "-m", "dropout_ref.conformance.worker", "--backend", backend,
        "--seed", str(args.seed), "--alpha", repr(args.alpha), "--clauses", *clauses,
        *(["--device", device] if device else []),
    ]  # fmt: skip


def _run_backend(
    run: BackendRun, args: argparse.Namespace, clauses: list[str], progress: Progress
) -> None:
    """Run one worker process, feeding the progress bar; fill ``run``."""
    task = progress.add_task(f"{run.backend}: importing", total=None)
    command = worker_command(run.backend, args, clauses)
    # One thread per framework: the workers share the cores with each other.
    threads = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                                "TF_NUM_INTEROP_THREADS", "MXNET_CPU_WORKER_NTHREADS")}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore", **threads)
    if run.backend in KERAS_BACKENDS:  # Keras' natives are audited on each framework's worker
        env["KERAS_BACKEND"] = run.backend
    start = time.perf_counter()
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    timer = threading.Timer(args.timeout, proc.kill)
    timer.start()
    stderr_lines: list[str] = []
    drain = threading.Thread(target=lambda: stderr_lines.extend(proc.stderr), daemon=True)
    drain.start()
    done = False
    assert proc.stdout is not None
    for line in proc.stdout:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a framework's own chatter on stdout
        kind = event.get("event")
        if kind == "start":
            run.implementations = event["implementations"]
            n_mlp = sum(name.endswith(".MLP") for name in run.implementations)
            n_gpt = sum(name.endswith(".GPT") for name in run.implementations)
            d_clauses = sum(c in CLAUSES for c in clauses)
            total = (
                (len(run.implementations) - n_mlp - n_gpt) * d_clauses
                + n_mlp * sum(c in MODEL_CLAUSES for c in clauses)
                + n_gpt * sum(c in SITE_CLAUSES for c in clauses)
            )
            progress.update(
                task, description=f"{run.backend}: checking", total=total, completed=0
            )
        elif kind == "clause":
            progress.update(
                task, advance=1, description=f"{run.backend}: {event['implementation']}"
            )
        elif kind == "report":
            run.rows.append(_row(event, clauses))
        elif kind == "done":
            done = True
        elif kind == "unusable":
            run.status, run.detail = "unusable", event["message"]
    proc.wait()
    timer.cancel()
    drain.join(timeout=5)
    run.seconds = time.perf_counter() - start
    if run.status == "unusable":
        pass
    elif done and proc.returncode == 0:
        run.status = "ok"
    elif proc.returncode in (-9, 137) and run.seconds >= args.timeout:
        run.status, run.detail = "timed out", f"after {args.timeout:g} s"
    else:
        tail = [ln.strip() for ln in stderr_lines if ln.strip()][-1:] or ["no output"]
        run.status, run.detail = "crashed", f"exit status {proc.returncode}: {tail[0][:200]}"
    progress.update(task, description=f"{run.backend}: {run.status}", total=1, completed=1)


def collect(args: argparse.Namespace, clauses: list[str]) -> list[BackendRun]:
    """Run every selected backend (``args.jobs`` at a time) behind a progress bar."""
    device = getattr(args, "device", None)
    default = list(DEVICE_BACKENDS) if device not in (None, "cpu") else list(BACKENDS)
    names = args.backend or default
    runs = [BackendRun(name) for name in names]
    pending = []
    for run in runs:
        info = backend_info(run.backend)
        if importlib.util.find_spec(info.framework) is None:
            run.status, run.detail = "missing", f"not installed; install with: {info.install}"
        else:
            pending.append(run)
    # Slowest to import first, so the two slots stay busy.
    pending.sort(key=lambda r: r.backend != "tensorflow")
    slots = threading.Semaphore(max(1, args.jobs))
    with _progress_bar() as progress:

        def work(run: BackendRun) -> None:
            with slots:
                _run_backend(run, args, clauses, progress)

        threads = [threading.Thread(target=work, args=(run,)) for run in pending]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return runs


def _progress_bar() -> Any:
    try:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    except ImportError:
        return NoProgress()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def exit_status(runs: list[BackendRun]) -> int:
    """1 when one of our backends fails a clause or its worker crashed; else 0."""
    for run in runs:
        if run.status in ("crashed", "timed out"):
            return 1
        for row in run.rows:
            if row["kind"] == "ours" and FAIL in row["cells"].values():
                return 1
    return 0


def _rows(runs: list[BackendRun]) -> list[tuple[str, str, dict[str, str]]]:
    """Return (implementation, note, cells) per row, plus one per missing/crashed backend."""
    rows = []
    for run in runs:
        for row in run.rows:
            rows.append((row["implementation"], row["kind"], row["cells"]))
        if run.status != "ok":
            rows.append((f"{run.backend} ({run.status})", run.detail, {}))
    return rows


def _title(clause: str) -> str:
    if clause in CHECKS:
        return CHECKS[clause].title
    return MODEL_TITLES[clause] if clause in MODEL_TITLES else SITE_TITLES[clause]


def render_markdown(runs: list[BackendRun], clauses: list[str], seconds: float) -> str:
    """Return the matrix as a GitHub-flavoured markdown table with a legend."""
    lines = [
        "| implementation | kind | " + " | ".join(clauses) + " |",
        "|---|---|" + "---|" * len(clauses),
    ]
    for name, note, cells in _rows(runs):
        if cells:
            body = " | ".join(cells.get(c, "-") for c in clauses)
        else:
            body = f"{note} |" + " |" * (len(clauses) - 1)
            note = ""
        lines.append(f"| `{name}` | {note} | {body} |")
    lines.append("")
    lines.append(
        "Clauses: " + "; ".join(f"{c} {_title(c)}" for c in clauses) + ". "
        "`deviation`: a native op's documented deviation (docs/deviations/<name>.md); "
        "`n/a`: the framework cannot express the check. "
        f"Run time {seconds:.0f} s."
    )
    return "\n".join(lines)


def render_table(
    console: Console, runs: list[BackendRun], clauses: list[str], seconds: float
) -> None:
    """Print the rich matrix, then the evidence of every FAIL / FIXED? cell."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"dropout_ref conformance ({seconds:.0f} s)")
    table.add_column("implementation", no_wrap=True)
    for clause in clauses:
        table.add_column(clause, justify="center")
    for name, note, cells in _rows(runs):
        if cells:
            table.add_row(
                name,
                *(Text(cells.get(c, "-"), style=_STYLE.get(cells.get(c, ""), "")) for c in clauses),
            )
        else:
            table.add_row(
                Text(name, style="bold red"),
                Text(note, style="red"),
                *[""] * (len(clauses) - 1),
            )
    console.print(table)
    for run in runs:
        for row in run.rows:
            for clause, cell in row["cells"].items():
                if cell in (FAIL, FIXED):
                    what = "documented deviation no longer shows" if cell == FIXED else "FAIL"
                    console.print(
                        f"[bold]{row['implementation']}[/] {clause} {what}: "
                        f"{row['messages'][clause]}",
                        highlight=False,
                    )


#: Preference when environments disagree about a backend: a run beats a crash beats absence.
_STATUS_RANK = {"ok": 0, "timed out": 1, "crashed": 2, "missing": 3, "pending": 4}


def environment() -> dict[str, str]:
    """Describe this interpreter for a JSON report: Python and NumPy versions."""
    import platform

    import numpy

    return {"python": platform.python_version(), "numpy": numpy.__version__}


def load_runs(paths: list[str]) -> tuple[list[BackendRun], list[dict[str, Any]], float]:
    """Read ``--format json`` reports and merge them: one run per backend, the best one.

    A backend run in several environments keeps its ``ok`` run (else its least bad
    status); a backend missing from one environment and run in another shows once, run.

    Returns
    -------
    runs : list of BackendRun
        In :data:`~dropout_ref.core.registry.BACKENDS` order, then unknown names.
    environments : list of dict
        Each file's ``environment`` (with its ``file``).
    seconds : float
        The longest run time among the files.

    Raises
    ------
    ValueError
        If a file is not a report written by ``dropout-ref report --format json``.

    """
    best: dict[str, BackendRun] = {}
    environments: list[dict[str, Any]] = []
    seconds = 0.0
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                payload = json.load(handle)
            backends = payload["backends"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"--merge: {path} is not a `dropout-ref report --format json` report ({exc})"
            ) from exc
        described = payload.get("environment") or {}
        for env in described if isinstance(described, list) else [described]:
            environments.append({**env, "file": env.get("file", str(path))})
        seconds = max(seconds, float(payload.get("seconds", 0.0)))
        for entry in backends:
            found = BackendRun(
                entry["backend"],
                status=entry["status"],
                detail=entry.get("detail", ""),
                rows=list(entry.get("rows", [])),
                seconds=float(entry.get("seconds", 0.0)),
            )
            current = best.get(found.backend)
            rank = _STATUS_RANK.get(found.status, 5)
            if current is None or rank < _STATUS_RANK.get(current.status, 5):
                best[found.backend] = found
    order = [name for name in BACKENDS if name in best]
    order += [name for name in best if name not in BACKENDS]
    return [best[name] for name in order], environments, seconds


def _describe_env(env: dict[str, Any]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in env.items() if k != "file")
    return f"{env.get('file', '?')} ({versions})" if versions else str(env.get("file", "?"))


def run(args: argparse.Namespace) -> int:
    """Run the kit over every selected backend and native op; print the matrix."""
    clauses = [*CLAUSES, *MODEL_CLAUSES, *SITE_CLAUSES]
    start = time.perf_counter()
    environments = [environment()]
    if args.merge:
        try:
            runs, environments, seconds = load_runs(args.merge)
        except ValueError as exc:
            print(f"dropout-ref report: {exc}", file=sys.stderr)
            return 2
        if args.backend:
            runs = [r for r in runs if r.backend in args.backend]
    else:
        runs = collect(args, clauses)
        seconds = time.perf_counter() - start
    unusable = [run for run in runs if run.status == "unusable"]
    if unusable:  # e.g. --device cuda on a machine without one: say so, check nothing
        for run in unusable:
            print(f"dropout-ref report: {run.backend}: {run.detail}", file=sys.stderr)
        return 2
    status = exit_status(runs)
    if args.format == "json":
        payload = {
            "clauses": clauses,
            "seconds": round(seconds, 2),
            "exit_status": status,
            "environment": environments[0] if len(environments) == 1 else environments,
            "backends": [
                {
                    "backend": r.backend,
                    "status": r.status,
                    "detail": r.detail,
                    "seconds": round(r.seconds, 2),
                    "rows": r.rows,
                }
                for r in runs
            ],
        }
        print(json.dumps(payload, indent=2))
    elif args.format == "markdown" or importlib.util.find_spec("rich") is None:
        print(render_markdown(runs, clauses, seconds))
        if args.merge:
            print("Merged from: " + "; ".join(_describe_env(e) for e in environments) + ".")
    else:
        from rich.console import Console

        console = Console()
        if not console.is_terminal:  # piped or captured: do not squeeze the matrix into 80 columns
            console = Console(width=max(console.width, 200))
        render_table(console, runs, clauses, seconds)
    return status
