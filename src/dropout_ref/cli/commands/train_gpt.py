"""``dropout-ref train --model gpt``: a character-level GPT on CPython's docs (issue 15, item 4).

Reached through ``dropout-ref train`` (:mod:`dropout_ref.cli.commands.train`),
which adds these options to its parser and hands ``--model gpt`` runs here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

#: Options only ``--model gpt`` takes: dest -> (flag, type, help). All default to None.
GPT_OPTIONS: dict[str, tuple[str, type, str]] = {
    "steps": ("--steps", int, "AdamW steps (default 2000; --quick 60)"),
    "eval_interval": ("--eval-interval", int, "steps between evaluations (default 200)"),
    "eval_batches": ("--eval-batches", int, "batches per split and evaluation (default 8)"),
    "block_size": ("--block-size", int, "context length in characters (default 64)"),
    "n_layer": ("--n-layer", int, "Transformer blocks (default 2)"),
    "n_head": ("--n-head", int, "attention heads (default 4)"),
    "n_embd": ("--n-embd", int, "embedding width (default 128)"),
    "weight_decay": ("--weight-decay", float, "AdamW weight decay on matrices (default 0.1)"),
    "drop_path": (
        "--drop-path",
        float,
        "DropPath rate r of the last block, linspace(0, r, n_layer) (SPEC V3; default 0)",
    ),
    "drop_head": ("--drop-head", float, "DropHead rate of every block (SPEC V3; default 0)"),
    "train_tokens": (
        "--train-tokens",
        int,
        "train on the first N characters of the training split only (the overfitting "
        "regime; default all)",
    ),
}


def dropout_value(text: str) -> Any:
    """Parse ``--dropout``: a number is one rate for every site, anything else a preset name."""
    try:
        return float(text)
    except ValueError:
        return text


def add_gpt_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--model gpt`` options to ``dropout-ref train``'s parser."""
    from dropout_ref.models.gpt_config import PRESETS

    group = parser.add_argument_group("--model gpt")
    group.add_argument(
        "--dropout",
        type=dropout_value,
        help=f"a preset ({', '.join(PRESETS)}) or one rate for every site (default 0.2)",
    )
    for dest, (flag, kind, text) in GPT_OPTIONS.items():
        group.add_argument(flag, dest=dest, type=kind, help=text)
    group.add_argument(
        "--masks",
        choices=("portable", "framework"),
        help="portable Philox masks, the same in every backend (default), or the "
        "framework's own generator (faster)",
    )
    group.add_argument(
        "--quick", action="store_true", help="a tiny model and 60 steps: seconds, offline"
    )


def mlp_misuse(args: argparse.Namespace) -> str | None:
    """Return the first GPT-only option given to an MLP run, as its flag, or None."""
    for dest, (flag, _, _) in GPT_OPTIONS.items():
        if getattr(args, dest, None) is not None:
            return flag
    if getattr(args, "dropout", None) is not None:
        return "--dropout"
    if getattr(args, "quick", False):
        return "--quick"
    if getattr(args, "masks", None) is not None:
        return "--masks"
    return None


def _fail(message: object) -> int:
    print(f"dropout-ref train: error: {message}", file=sys.stderr)
    return 2


def train_config(args: argparse.Namespace) -> Any:
    """Return the :class:`GPTTrainConfig` of the command line (ValueError/TypeError if bad)."""
    from dataclasses import replace

    from dropout_ref.course.gpt_training import GPTTrainConfig, quick

    config = GPTTrainConfig(seed=args.seed)
    if args.quick:
        config = quick(config)
    given = {dest: getattr(args, dest) for dest in GPT_OPTIONS if getattr(args, dest) is not None}
    shared = {"dropout": args.dropout, "lr": args.lr, "batch_size": args.batch_size}
    given.update({dest: value for dest, value in shared.items() if value is not None})
    if args.masks is not None:
        given["portable_masks"] = args.masks == "portable"
    return replace(config, **given)


def _per_name(text: str) -> dict[str, str] | None:
    """Split ``NAME=SPEC,NAME=SPEC`` into ``{NAME: SPEC}``; None for one plain spelling."""
    from dropout_ref.models.gpt_config import RATE_NAMES

    parts = text.split(",")
    named = [part.partition("=") for part in parts]
    if not any(sep and name in RATE_NAMES for name, sep, _ in named):
        return None
    out: dict[str, str] = {}
    for part, (name, sep, spec) in zip(parts, named, strict=True):
        if not sep or name not in RATE_NAMES or not spec or name in out:
            raise ValueError(
                f"--dropout-schedule {text!r}: {part!r} is not NAME=SCHEDULE with NAME one of "
                f"{', '.join(RATE_NAMES)} (each once)"
            )
        out[name] = spec
    return out


def gpt_schedule(text: str | None, config: Any) -> dict[str, Any] | None:
    """Return ``--dropout-schedule`` as a schedule per GPT site (SPEC S3, S4, V3), or None.

    As for the MLP, the early and late kinds take each site's rate from the run's
    ``--dropout`` (a preset's zero-rate site stays at 0) unless ``:P`` is appended.
    One spelling drives X2's sites (``embd``, ``attn``, ``resid``). A list
    ``NAME=SCHEDULE,NAME=SCHEDULE`` drives the sites it names, among them
    ``drop_path`` (the rate ``r`` of ``linspace(0, r, n_layer)``) and ``drop_head``
    (their early/late kinds take ``--drop-path``/``--drop-head``); an X2 site it
    leaves out keeps its ``--dropout`` rate, DropPath and DropHead keep theirs.
    """
    if not text:
        return None
    from dropout_ref import schedules

    model = config.model_config(2)
    rates: dict[str, Any] = dict(model.rates)
    named = _per_name(text)
    if named is None:
        per_site = {site: schedules.parse(text, p=rate) for site, rate in rates.items()}
        if any(hasattr(s, "state_dict") for s in per_site.values()):
            # A stateful schedule (S4's on_plateau) is one object for every site: one
            # loss curve, one rate, one state in the checkpoint.
            shared = schedules.parse(text, p=None)
            return dict.fromkeys(per_site, shared)
        return per_site
    rates.update(drop_path=model.drop_path, drop_head=model.drop_head)
    if isinstance(rates["drop_path"], tuple):
        raise ValueError("--dropout-schedule drop_path=... needs one --drop-path rate")
    per_name: dict[str, Any] = {site: rates[site] for site in model.rates}
    for name, spec in named.items():
        per_name[name] = schedules.parse(spec, p=rates[name])
    return per_name


def run(args: argparse.Namespace) -> int:
    """Train, write ``metrics.json``/``.csv``, ``curves.png`` and the checkpoint."""
    from rich.console import Console
    from rich.table import Table

    from dropout_ref.cli.commands.output_paths import OutputPathError, prepare_output_dir
    from dropout_ref.course.checkpoint import save_checkpoint
    from dropout_ref.course.data.text import load_char_dataset
    from dropout_ref.course.gpt_training import (
        GPT_METRIC_FIELDS,
        TRAINABLE,
        bits,
        schedule_sites,
        train_gpt,
        trainer_modules,
    )
    from dropout_ref.course.training import plot_curves, write_metrics
    if args.backend not in TRAINABLE:
        return _fail(
            f"--backend {args.backend}: the GPT trains in {', '.join(TRAINABLE)} "
            "(numpy's GPT is the forward oracle, without gradients)"
        )
    if args.epochs is not None or args.data_dir is not None:
        return _fail("--epochs and --data-dir are for --model mlp; the GPT takes --steps")
    try:
        config = train_config(args)
        schedule = gpt_schedule(args.dropout_schedule, config)
    except (TypeError, ValueError) as exc:
        return _fail(exc)
    try:
        trainer_modules(args.backend)
    except (ImportError, ValueError) as exc:
        return _fail(exc)
    out = args.out or Path("runs") / f"train-gpt-{args.backend}"
    try:
        prepare_output_dir(out)
    except OutputPathError as exc:
        return _fail(exc)

    data = load_char_dataset()
    meta = {
        "model": "gpt",
        "backend": args.backend,
        "train": config.to_dict(),
        "data": {k: v for k, v in data.meta().items() if k != "chars"},
    }
    if schedule is not None:
        meta["dropout_schedule"] = args.dropout_schedule
    done: list[dict[str, float]] = []

    def save(row: dict[str, float], model: Any) -> None:
        # Rewritten at every evaluation, atomically: an interrupted run leaves valid files.
        done.append(row)
        write_metrics(done, out, meta, fields=GPT_METRIC_FIELDS, rows="evals")
        extra = {"chars": data.vocab.chars, "step": int(row["step"]), "backend": args.backend}
        if schedule is not None:
            from dropout_ref.schedules import feed_evaluation, schedule_states

            # SPEC S4: on_plateau hears each evaluation's validation loss (the next
            # steps read its new rate) and its state goes with the checkpoint.
            feed_evaluation(schedule, row["val_loss"])
            extra["dropout_schedule_state"] = schedule_states(schedule)
        save_checkpoint(out, model.config, model.get_weights(), extra)

    _, rows = train_gpt(
        args.backend,
        data,
        config,
        progress=not args.no_progress,
        on_eval=save,
        schedule=schedule,
    )
    title = f"{args.backend} GPT, dropout {config.dropout}"
    if schedule is not None:
        title += f", schedule {args.dropout_schedule}"
    plot_curves(
        rows,
        out / "curves.png",
        title=title,
        x="step",
        series=(("train_bpc", "-"), ("val_bpc", "g-.")),
        rate_sites=schedule_sites(schedule),
    )
    table = Table(title=f"{title}: bits per character (eval mode)")
    for column in ("step", "train", "val", "train mode (dropout on)", "seconds"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            str(row["step"]),
            f"{row['train_bpc']:.4f}",
            f"{row['val_bpc']:.4f}",
            f"{bits(row['step_loss']):.4f}",
            f"{row['seconds']:.1f}",
        )
    Console().print(table)
    print(
        f"wrote {out / 'metrics.json'}, {out / 'metrics.csv'}, {out / 'curves.png'}, "
        f"checkpoint {out / 'weights.npz'} + {out / 'config.json'}"
    )
    return 0
