"""``dropout-ref train``: the course MLP (SPEC T1-T3) or GPT (``--model gpt``) in one backend."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dropout_ref.cli.commands.output_paths import OutputPathError, prepare_output_dir
from dropout_ref.cli.commands.train_gpt import add_gpt_arguments, mlp_misuse
from dropout_ref.course.training import DATASET_DEFAULTS
from dropout_ref.models.backends import MLP_MODULE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dropout-ref train``."""
    # The backends the course has an MLP for (its declaration), not every adapter.
    parser.add_argument("--backend", required=True, choices=MLP_MODULE.backends)
    parser.add_argument(
        "--model",
        default="mlp",
        choices=("mlp", "gpt"),
        help="the course MLP (default) or the character-level GPT (cli.commands.train_gpt)",
    )
    parser.add_argument(
        "--dataset",
        default="fashion-mnist",
        choices=tuple(DATASET_DEFAULTS),
        help="fashion-mnist (the course's, downloaded once and cached) or digits "
        "(scikit-learn's bundled 8x8 digits, offline)",
    )
    defaults = ", ".join(
        f"{name}: {d['epochs']} epochs, lr {d['lr']}, batch {d['batch_size']}"
        for name, d in DATASET_DEFAULTS.items()
    )
    parser.add_argument("--epochs", type=int, help=f"default per data set ({defaults})")
    parser.add_argument("--lr", type=float, help="learning rate (MLP: SGD, 0.5; GPT: AdamW, 1e-3)")
    parser.add_argument(
        "--batch-size", type=int, help="minibatch size (default per data set; GPT: 32)"
    )
    parser.add_argument(
        "--out", type=Path, help="output folder (default runs/train-<backend>-<dataset>, "
        "GPT: runs/train-gpt-<backend>)"
    )
    parser.add_argument("--data-dir", type=Path, help="folder holding or caching the data files")
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds init, shuffling and dropout (default 0)"
    )
    parser.add_argument(
        "--dropout-schedule",
        metavar="SPEC",
        help="dropout rate per training step (SPEC S3): constant:P, early:constant:STEPS, "
        "early:linear:STEPS, late:START (each dropout site, the MLP's hidden dropouts or "
        "the GPT's embd/attn/resid, from its own rate; append :P to set it); or SPEC S4's "
        "linear:P0:P1:START:END, exponential:P0:GAMMA[:FLOOR], "
        "triangular:LOW:HIGH:CYCLES:TOTAL, v_shaped:P_START:P_END:WARMUP:TOTAL, "
        "on_plateau:P0:factor=F|step=S[:patience=N][:min=X][:max=X][:mode=min|max] (fed "
        "the GPT's validation loss or the MLP's test error after each evaluation; its state "
        "is saved in the GPT checkpoint), the same rates at every site; the rates go to "
        "metrics.json and the plot",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_gpt_arguments(parser)


def _fail(message: str) -> int:
    print(f"dropout-ref train: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """Load the data, train, write ``metrics.json``, ``metrics.csv`` and ``curves.png``."""
    if args.model == "gpt":
        from dropout_ref.cli.commands.train_gpt import run as run_gpt

        return run_gpt(args)
    misused = mlp_misuse(args)
    if misused is not None:
        return _fail(f"{misused} is an option of --model gpt")
    from rich.console import Console
    from rich.table import Table

    from dropout_ref.core.registry import get_backend
    from dropout_ref.course.data import DataError, load_dataset
    from dropout_ref.course.training import (
        TrainConfig,
        plot_curves,
        train,
        write_metrics,
    )

    defaults = DATASET_DEFAULTS[args.dataset]
    try:
        config = TrainConfig(
            epochs=args.epochs if args.epochs is not None else int(defaults["epochs"]),
            lr=args.lr if args.lr is not None else float(defaults["lr"]),
            batch_size=(
                args.batch_size if args.batch_size is not None else int(defaults["batch_size"])
            ),
            seed=args.seed,
        )
    except ValueError as exc:
        return _fail(str(exc))
    try:
        get_backend(args.backend)
    except ImportError as exc:
        return _fail(str(exc))
    try:
        dataset = load_dataset(args.dataset, data_dir=args.data_dir)
    except (DataError, ValueError) as exc:
        return _fail(str(exc))

    out = args.out or Path("runs") / f"train-{args.backend}-{args.dataset}"
    try:
        prepare_output_dir(out)
    except OutputPathError as exc:
        return _fail(str(exc))
    meta = {
        "backend": args.backend,
        "dataset": args.dataset,
        "epochs": config.epochs,
        "lr": config.lr,
        "batch_size": config.batch_size,
        "seed": config.seed,
    }
    model = MLP_MODULE.load(args.backend).MLP(
        num_inputs=dataset.num_inputs, num_outputs=dataset.num_classes, rng=config.seed
    )
    meta.update(dropout1=model.dropout1, dropout2=model.dropout2)
    schedule = None
    if args.dropout_schedule:
        from dropout_ref import schedules

        try:
            schedule = {
                "dropout1": schedules.parse(args.dropout_schedule, p=model.dropout1),
                "dropout2": schedules.parse(args.dropout_schedule, p=model.dropout2),
            }
            if hasattr(schedule["dropout1"], "state_dict"):
                # One stateful schedule (S4's on_plateau) drives both sites.
                schedule = dict.fromkeys(schedule, schedule["dropout1"])
        except (TypeError, ValueError) as exc:
            return _fail(str(exc))
        meta["dropout_schedule"] = args.dropout_schedule
    done: list[dict[str, float]] = []

    def save(row: dict[str, float]) -> None:
        # Rewritten every epoch, atomically: an interrupted run leaves valid files.
        if schedule is not None:
            from dropout_ref.schedules import feed_evaluation

            # SPEC S4: the MLP's evaluation is test accuracy, so on_plateau hears the
            # test error (1 - accuracy, lower is better) after each epoch.
            feed_evaluation(schedule, 1.0 - row["test_acc"])
        done.append(row)
        write_metrics(done, out, meta)

    results = train(
        args.backend,
        model,
        dataset,
        config,
        progress=not args.no_progress,
        on_epoch=save,
        schedule=schedule,
    )
    plot_curves(results, out / "curves.png", title=f"{args.backend} on {args.dataset}")

    table = Table(title=f"{args.backend} on {args.dataset}")
    for column in ("epoch", "train loss", "train acc", "test acc", "seconds"):
        table.add_column(column, justify="right")
    for row in results:
        table.add_row(
            str(row["epoch"]),
            f"{row['train_loss']:.4f}",
            f"{row['train_acc']:.4f}",
            f"{row['test_acc']:.4f}",
            f"{row['seconds']:.3f}",
        )
    Console().print(table)
    print(f"wrote {out / 'metrics.json'}, {out / 'metrics.csv'}, {out / 'curves.png'}")
    return 0
