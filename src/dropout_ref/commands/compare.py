"""``dropout-ref compare``: train the MLP in every backend and compare with numpy (SPEC M6).

Exit status: 0 when every backend is within SPEC M6's tolerances, 1 when one
is not, 2 for bad arguments, missing backends or data errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dropout_ref.registry import known_backends
from dropout_ref.training import DATASET_DEFAULTS, progress_bar


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dropout-ref compare``."""
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=known_backends(),
        help="backends to compare (default: every installed one); numpy, the reference, "
        "always runs",
    )
    parser.add_argument("--steps", type=int, default=100, help="SGD steps (default 100)")
    parser.add_argument(
        "--dataset",
        default="digits",
        choices=tuple(DATASET_DEFAULTS),
        help="digits (offline, the default) or fashion-mnist (downloaded once and cached)",
    )
    parser.add_argument("--batch-size", type=int, default=256, help="minibatch size (256)")
    parser.add_argument("--lr", type=float, default=0.5, help="SGD learning rate (0.5)")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="in [0, 2**32): seeds init, batch order and mask seeds (seed * 2**32 + step)",
    )
    parser.add_argument("--data-dir", type=Path, help="fashion-mnist: folder with the files")
    parser.add_argument(
        "--out", type=Path, help="output folder (default runs/compare-<dataset>-seed<seed>)"
    )
    parser.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="summary on stdout: a table, or the JSON summary (default table)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _fail(message: str) -> int:
    print(f"dropout-ref compare: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """Compare, write ``compare.json``, ``compare.csv``, ``loss_curves.png``; 1 past M6."""
    from rich.console import Console

    from dropout_ref.commands.output_paths import OutputPathError, prepare_output_dir
    from dropout_ref.compare import (
        REFERENCE,
        CompareConfig,
        run_comparison,
        write_comparison,
    )
    from dropout_ref.data import DataError, load_dataset
    from dropout_ref.registry import available_backends, get_backend

    try:
        config = CompareConfig(
            steps=args.steps, lr=args.lr, batch_size=args.batch_size, seed=args.seed
        )
    except (TypeError, ValueError) as exc:
        return _fail(str(exc))
    if args.backends:
        names = list(dict.fromkeys([REFERENCE, *args.backends]))
        for name in names:
            try:
                get_backend(name)
            except ImportError as exc:
                return _fail(str(exc))
    else:
        names = list(available_backends())
    try:
        kwargs = {"data_dir": args.data_dir} if args.data_dir is not None else {}
        dataset = load_dataset(args.dataset, **kwargs)
    except (DataError, ValueError) as exc:
        return _fail(str(exc))

    out = args.out or Path("runs") / f"compare-{args.dataset}-seed{config.seed}"
    try:
        prepare_output_dir(out)
    except OutputPathError as exc:
        return _fail(str(exc))
    console = Console(stderr=args.format == "json")
    start = time.perf_counter()
    with progress_bar(not args.no_progress, console) as bar:
        task = bar.add_task(f"{', '.join(names)}: step", total=config.steps)
        comparison = run_comparison(
            names, dataset, config, on_step=lambda record: bar.advance(task)
        )
    seconds = time.perf_counter() - start
    paths = write_comparison(comparison, out)
    violations = comparison.violations()

    if args.format == "json":
        document = comparison.to_json()
        document.pop("steps")
        document["seconds"] = seconds
        document["files"] = {key: str(path) for key, path in paths.items()}
        print(json.dumps(document, indent=2))
    else:
        console.print(_summary_table(comparison, seconds))
        for violation in violations[:10]:
            console.print(f"[red]{violation}[/red]")
        if len(violations) > 10:
            console.print(f"[red]... and {len(violations) - 10} more[/red]")
        verdict = "[green]PASS[/green]" if not violations else "[red]FAIL[/red]"
        console.print(f"SPEC M6: {verdict}; wrote {', '.join(str(p) for p in paths.values())}")
    return 0 if not violations else 1


def _summary_table(comparison, seconds: float):
    from rich.table import Table

    from dropout_ref.compare import CURVE_TOLERANCE, ONE_STEP_TOLERANCE

    config = comparison.config
    table = Table(
        title=(
            f"{config.steps} steps on {comparison.dataset}, lr {config.lr}, batch "
            f"{config.batch_size}, seed {config.seed}: relative differences from numpy "
            f"({seconds:.1f} s)"
        )
    )
    for column in (
        "backend",
        f"step 0 loss (<= {ONE_STEP_TOLERANCE:g})",
        f"step 0 weights (<= {ONE_STEP_TOLERANCE:g})",
        f"max loss (<= {CURVE_TOLERANCE:g})",
        "max weights",
        "ms/step",
    ):
        table.add_column(column, justify="right")
    for name, row in comparison.summary().items():
        table.add_row(
            name,
            f"{row['first_step_loss_diff']:.2e}",
            f"{row['first_step_weight_diff']:.2e}",
            f"{row['max_loss_diff']:.2e} (step {row['max_loss_diff_step']})",
            f"{row['max_weight_diff']:.2e}",
            f"{1000 * row['seconds_per_step']:.1f}",
        )
    return table
