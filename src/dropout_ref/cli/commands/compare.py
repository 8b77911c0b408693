"""``dropout-ref compare``: train the MLP in every backend and compare with numpy (SPEC M6).

``--user-model A --user-model B`` runs any two models of yours side by side instead
(SPEC P8, :mod:`dropout_ref.porting.pair`): each factory returns a
``dropout_ref.porting.pair.PortModel``; both start from A's weights, each training step
runs inside its framework's ``portable_masks(seed * 2**32 + step)``, and the report
names the first step whose loss or weights differ and the first dropout site whose
count, shape, rate or noise shape differs.

``--model gpt`` trains the GPT instead (SPEC X4, :mod:`dropout_ref.porting.gpt_compare`):
the same SGD steps from the same weights and batches in every installed backend with a
GPT training step, numpy checking the forward pass, differences from the first one.

Exit status: 0 when every backend is within SPEC M6's tolerances (two models: when
they agree, P8), 1 when one is not, 2 for bad arguments, missing backends or data errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dropout_ref.course.training import DATASET_DEFAULTS, progress_bar
from dropout_ref.models.backends import MLP_MODULE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dropout-ref compare``."""
    parser.add_argument(
        "--model",
        choices=("mlp", "gpt"),
        default="mlp",
        help="the course MLP (default) or the GPT (tiny, dropout 0.1 at every site, "
        "synthetic token batches)",
    )
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=MLP_MODULE.backends,
        help="backends to compare (default: every installed one with the course MLP); numpy, "
        "the reference, always runs",
    )
    parser.add_argument(
        "--steps", type=int, help=f"SGD steps (default {DEFAULT_STEPS}; two models: "
        f"{PAIR_DEFAULT_STEPS})"
    )
    parser.add_argument(
        "--dataset",
        default="digits",
        choices=tuple(DATASET_DEFAULTS),
        help="digits (offline, the default) or fashion-mnist (downloaded once and cached)",
    )
    parser.add_argument(
        "--batch-size", type=int, help="minibatch size (MLP 256, GPT 16 sequences)"
    )
    parser.add_argument(
        "--lr", type=float, help="SGD learning rate (MLP 0.5, GPT 0.1, two models: 0.1, "
        "passed to your steps)"
    )
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
    parser.add_argument(
        "--user-model",
        metavar="MODULE:FUNCTION",
        action="append",
        help="also compare your own, unmodified model: FUNCTION (in MODULE or path/to/file.py) "
        "returns a torch/Keras/Gluon/Flax NNX model of the MLP (or a "
        "dropout_ref.porting.user_model.UserModel, or a step function); its training step runs "
        "inside portable_masks(mask_seed) (SPEC P8). Without --backends only numpy runs beside "
        "it. Given twice (A, then B): any two models, each FUNCTION returning a "
        "dropout_ref.porting.pair.PortModel; B starts from A's weights and both are compared "
        "step by step, site by site",
    )
    parser.add_argument(
        "--loss-tolerance", type=float,
        help="two models: largest relative loss difference (default 1e-5)",
    )
    parser.add_argument(
        "--weight-tolerance", type=float,
        help="two models: largest relative weight difference (default 1e-4)",
    )
    parser.add_argument(
        "--eager",
        action="store_true",
        help="run torch's steps eagerly (default: compiled where the framework compiles a step: "
        "torch.compile, tf.function, jax.jit; seeds and rates enter as runtime values, SPEC S2)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


#: Name of a ``--user-model`` in the comparison's tables and files.
USER = "user-model"

#: Default ``--steps`` of the MLP and GPT comparisons, and of two models.
DEFAULT_STEPS = 100
PAIR_DEFAULT_STEPS = 10


def _fail(message: str) -> int:
    print(f"dropout-ref compare: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """Compare, write ``compare.json``, ``compare.csv``, ``loss_curves.png``; 1 past M6."""
    from rich.console import Console

    from dropout_ref.cli.commands.output_paths import OutputPathError, prepare_output_dir
    from dropout_ref.core.registry import available_backends, get_backend
    from dropout_ref.course.data import DataError, load_dataset
    from dropout_ref.porting.compare import (
        REFERENCE,
        CompareConfig,
        run_comparison,
        write_comparison,
    )

    user_models = args.user_model or []
    if len(user_models) > 2:
        return _fail(
            f"--user-model is given {len(user_models)} times ({', '.join(user_models)}): once "
            "(your MLP vs ours) or twice (model A vs model B)"
        )
    if len(user_models) == 2:
        return _run_pair(args, user_models)
    args.user_model = user_models[0] if user_models else None
    if args.steps is None:
        args.steps = DEFAULT_STEPS
    for option in ("loss_tolerance", "weight_tolerance"):
        if getattr(args, option) is not None:
            return _fail(f"--{option.replace('_', '-')} is for two --user-model models")
    if args.model == "gpt":
        if args.user_model:
            return _fail(
                "--user-model brings a model of the course MLP; for a GPT (e.g. Hugging "
                "Face's) use dropout_ref.torch.portable_masks in Python (docs/port-check.md)"
            )
        return _run_gpt(args)
    try:
        config = CompareConfig(
            steps=args.steps,
            lr=0.5 if args.lr is None else args.lr,
            batch_size=256 if args.batch_size is None else args.batch_size,
            seed=args.seed,
            compiled=not args.eager,
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
    elif args.user_model:
        names = [REFERENCE]
    else:
        names = [name for name in available_backends() if MLP_MODULE.covers(name)]
    overrides = {}
    if args.user_model:
        from dropout_ref.porting.user_model import load_user_model

        try:
            overrides[USER] = load_user_model(args.user_model)
        except (ImportError, AttributeError, TypeError, ValueError) as exc:
            return _fail(f"--user-model {args.user_model}: {exc}")
        names.append(USER)
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
            names, dataset, config, step_functions=overrides,
            on_step=lambda record: bar.advance(task),
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

    from dropout_ref.porting.compare import CURVE_TOLERANCE, ONE_STEP_TOLERANCE

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
        "ms/step (median)",
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


def _run_gpt(args: argparse.Namespace) -> int:
    """``--model gpt``: compare, write ``gpt_compare.json``; exit 1 past the tolerances."""
    from rich.console import Console
    from rich.table import Table

    from dropout_ref.cli.commands.output_paths import OutputPathError, prepare_output_dir
    from dropout_ref.core.registry import available_backends, get_backend
    from dropout_ref.course.training import atomic_write_bytes
    from dropout_ref.porting.gpt_compare import (
        CURVE_TOLERANCE,
        DEFAULT_LR,
        ONE_STEP_TOLERANCE,
        run_gpt_comparison,
    )

    if args.backends:
        names = list(dict.fromkeys(["numpy", *args.backends]))
        for name in names:
            try:
                get_backend(name)
            except ImportError as exc:
                return _fail(str(exc))
    else:
        names = list(available_backends())
    # The trained backends first: the first of them is the reference.
    names.sort(key=lambda name: name == "numpy")
    lr = DEFAULT_LR if args.lr is None else args.lr
    batch_size = 16 if args.batch_size is None else args.batch_size
    out = args.out or Path("runs") / f"compare-gpt-seed{args.seed}"
    try:
        prepare_output_dir(out)
    except OutputPathError as exc:
        return _fail(str(exc))
    console = Console(stderr=args.format == "json")
    start = time.perf_counter()
    try:
        with progress_bar(not args.no_progress, console) as bar:
            task = bar.add_task(f"GPT {', '.join(names)}: step", total=args.steps)
            comparison = run_gpt_comparison(
                names,
                steps=args.steps,
                lr=lr,
                batch_size=batch_size,
                seed=args.seed,
                compiled=not args.eager,
                on_step=lambda k: bar.advance(task),
            )
    except (TypeError, ValueError) as exc:
        return _fail(str(exc))
    seconds = time.perf_counter() - start
    document = comparison.to_json()
    try:
        path = atomic_write_bytes(
            out / "gpt_compare.json", (json.dumps(document, indent=2) + "\n").encode()
        )
    except OSError as exc:
        return _fail(f"cannot write {out / 'gpt_compare.json'}: {exc}")
    violations = comparison.violations()
    if args.format == "json":
        for key in ("losses", "loss_diffs", "weight_diffs"):
            document.pop(key)
        document["seconds_total"] = seconds
        document["files"] = {"json": str(path)}
        print(json.dumps(document, indent=2))
    else:
        table = Table(
            title=(
                f"GPT: {args.steps} SGD steps, lr {lr}, batch {batch_size}, seed {args.seed}, "
                f"dropout 0.1 at every site: relative differences from "
                f"{comparison.reference} ({seconds:.1f} s)"
            )
        )
        for column in (
            "backend",
            f"step 0 loss (<= {ONE_STEP_TOLERANCE:g})",
            f"step 0 weights (<= {ONE_STEP_TOLERANCE:g})",
            f"max loss (<= {CURVE_TOLERANCE:g})",
            "max weights",
        ):
            table.add_column(column, justify="right")
        for name, row in comparison.summary().items():
            oracle = "first_step_weight_diff" not in row
            table.add_row(
                f"{name} (forward)" if oracle else name,
                f"{row['first_step_loss_diff']:.2e}",
                "-" if oracle else f"{row['first_step_weight_diff']:.2e}",
                f"{row['max_loss_diff']:.2e}",
                "-" if oracle else f"{row['max_weight_diff']:.2e}",
            )
        console.print(table)
        if comparison.skipped:
            console.print(f"no GPT in: {', '.join(comparison.skipped)}")
        for violation in violations:
            console.print(f"[red]{violation}[/red]")
        verdict = "[green]PASS[/green]" if not violations else "[red]FAIL[/red]"
        console.print(f"SPEC X4: {verdict}; wrote {path}")
    return 0 if not violations else 1


def _run_pair(args: argparse.Namespace, targets: list[str]) -> int:
    """Two ``--user-model``: run both, write the report; 1 when they differ (SPEC P8)."""
    from rich.console import Console

    from dropout_ref.cli.commands.output_paths import OutputPathError, prepare_output_dir
    from dropout_ref.porting.pair import (
        LOSS_TOLERANCE,
        WEIGHT_TOLERANCE,
        PairConfig,
        load_port_model,
        run_pair,
    )
    from dropout_ref.porting.pair_report import pair_json, site_table, steps_table, write_pair

    if args.backends:
        return _fail("--backends is not used with two --user-model models (their own steps run)")
    if args.model != "mlp":
        return _fail(f"--model {args.model} is not used with two --user-model models")
    # The two factories bring their models, steps and batches: these options would be ignored.
    for option, given in (("--batch-size", args.batch_size is not None),
                          ("--data-dir", args.data_dir is not None), ("--eager", args.eager)):
        if given:
            return _fail(f"{option} is not used with two --user-model models (your factories "
                         "give the batches and steps)")
    try:
        config = PairConfig(
            steps=PAIR_DEFAULT_STEPS if args.steps is None else args.steps,
            seed=args.seed,
            lr=0.1 if args.lr is None else args.lr,
            loss_tolerance=(
                LOSS_TOLERANCE if args.loss_tolerance is None else args.loss_tolerance
            ),
            weight_tolerance=(
                WEIGHT_TOLERANCE if args.weight_tolerance is None else args.weight_tolerance
            ),
        )
    except (TypeError, ValueError) as exc:
        option = str(exc).split(" ")[0].replace("_", "-")
        return _fail(f"--{option}: {exc}")
    ports = []
    for target in targets:
        try:
            ports.append(load_port_model(target))
        except (ImportError, AttributeError, TypeError, ValueError) as exc:
            return _fail(f"--user-model {target}: {exc}")
    out = args.out or Path("runs") / f"compare-pair-seed{config.seed}"
    try:
        prepare_output_dir(out)
    except OutputPathError as exc:
        return _fail(str(exc))
    console = Console(stderr=args.format == "json")
    with progress_bar(not args.no_progress, console) as bar:
        task = bar.add_task("A, B: step", total=config.steps)
        try:
            run = run_pair(*ports, config, on_step=lambda record: bar.advance(task))
        except ValueError as exc:
            return _fail(f"--user-model {targets[0]} --user-model {targets[1]}: {exc}")
    paths = write_pair(run, out)
    if args.format == "json":
        document = pair_json(run)
        document["files"] = {key: str(path) for key, path in paths.items()}
        print(json.dumps(document, indent=2))
    else:
        console.print(steps_table(run))
        if run.records:
            console.print(site_table(run))
        for line in run.warnings():
            console.print(f"[yellow]{line}[/yellow]")
        for line in run.violations():
            console.print(f"[red]{line}[/red]")
        verdict = "[green]PASS[/green]" if run.ok else "[red]FAIL[/red]"
        console.print(f"SPEC P8: {verdict}; wrote {', '.join(str(p) for p in paths.values())}")
    return 0 if run.ok else 1
