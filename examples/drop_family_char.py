"""What the Transformer-era dropout family does in a small character LM (SPEC V3, S3, S4).

Six runs of the torch GPT on the same small slice of CPython's documentation
(``pydoc_data.topics``, offline) with the same init, batches and budget, that
differ only in their dropout:

``none``        no dropout
``constant``    0.1 at every X2 site (embeddings, attention probabilities, residuals)
``early``       0.1 at every X2 site for the first quarter of the steps, then 0 (S3's
                ``early``, Liu et al. 2023)
``drop_path``   DropPath only, ``linspace(0, 0.1, n_layer)`` per block (V3)
``drop_head``   DropHead 0.1 only, on the per-head attention output (V3)
``on_plateau``  0.1 at every X2 site, raised by 0.05 (up to 0.5) after each validation
                evaluation without improvement (S4's ``on_plateau``, ``patience=1``)

Each reports the best and the final validation bits per character (eval mode,
the same fixed validation batches for every run) and the final
validation-minus-training gap. ``--noise-seeds`` adds runs of the ``none`` and
``constant`` configs with other seeds (other init, batches and masks): the
spread between seeds of one config is the noise level the differences between
configs are to be read against.

    OMP_NUM_THREADS=1 python examples/drop_family_char.py   # docs/drop-family.md (~15 min)
    python examples/drop_family_char.py --quick              # seconds: to see it run

Writes ``drop_family_char.json`` (every evaluation of every run) and
``drop_family_char.png`` into ``--out`` (default ``runs/drop_family_char``).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

#: The overfitting regime of examples/gpt_char.py (2 blocks of width 64 on 10 000
#: characters, AdamW lr 2e-3), with half its budget: 600 steps of 16 x 64 characters.
FULL = {
    "steps": 600,
    "eval_interval": 50,
    "eval_batches": 8,
    "batch_size": 16,
    "block_size": 64,
    "n_layer": 2,
    "n_head": 4,
    "n_embd": 64,
    "lr": 2e-3,
    "train_tokens": 10_000,
}
#: Seconds: a tiny model and a few steps (what the test runs).
QUICK = {**FULL, "steps": 4, "eval_interval": 2, "eval_batches": 1, "batch_size": 4,
         "block_size": 16, "n_embd": 16, "train_tokens": 2_000}  # fmt: skip
#: The rate of every run.
RATE = 0.1
#: The runs, in the table's order.
RUNS = ("none", "constant", "early", "drop_path", "drop_head", "on_plateau")


def run_settings(name: str, steps: int) -> tuple[dict[str, Any], Any]:
    """Return ``(GPTTrainConfig fields, schedule or None)`` of run ``name``."""
    from dropout_ref import schedules

    if name == "none":
        return {"dropout": 0.0}, None
    if name == "constant":
        return {"dropout": RATE}, None
    if name == "early":
        return {"dropout": RATE}, schedules.early(RATE, max(1, steps // 4), "constant")
    if name == "drop_path":
        return {"dropout": 0.0, "drop_path": RATE}, None
    if name == "drop_head":
        return {"dropout": 0.0, "drop_head": RATE}, None
    if name == "on_plateau":
        return {"dropout": RATE}, schedules.on_plateau(RATE, step=0.05, patience=1, max=0.5)
    raise ValueError(f"run must be one of {RUNS}, got {name!r}")


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Best and final validation bits per character and the final gap of one run."""
    best = min(rows, key=lambda r: r["val_bpc"])
    last = rows[-1]
    return {
        "best_val_bpc": best["val_bpc"],
        "best_step": best["step"],
        "final_val_bpc": last["val_bpc"],
        "final_train_bpc": last["train_bpc"],
        "gap": last["val_bpc"] - last["train_bpc"],
    }


def train_one(name: str, seed: int, sizes: dict[str, Any], data: Any) -> dict[str, Any]:
    """Train run ``name`` with ``seed``; return its rows, summary and wall time."""
    from dropout_ref.course.gpt_training import GPTTrainConfig, train_gpt
    from dropout_ref.schedules import feed_evaluation

    fields, schedule = run_settings(name, sizes["steps"])
    # The framework's own masks: the runs compare dropout kinds, not backends, and run faster.
    config = replace(GPTTrainConfig(seed=seed, portable_masks=False, **sizes), **fields)

    def on_eval(row: dict[str, Any], _model: Any) -> None:
        if schedule is not None:
            feed_evaluation(schedule, row["val_loss"])  # S4: on_plateau hears each evaluation

    start = time.perf_counter()
    _, rows = train_gpt("torch", data, config, progress=False, on_eval=on_eval,
                        schedule=schedule)  # fmt: skip
    return {"seed": seed, "config": config.to_dict(), "rows": rows,
            "summary": summary(rows), "seconds": time.perf_counter() - start}  # fmt: skip


def plot(runs: dict[str, dict[str, Any]], sizes: dict[str, Any], path: Path) -> None:
    """Validation (solid) and training (dotted) bits per character of the seed-0 runs."""
    from dropout_ref.course.png import figure_png, new_figure
    from dropout_ref.course.training import atomic_write_bytes

    figure = new_figure(figsize=(6.4, 4.0), dpi=120)
    axes = figure.add_subplot()
    colors = ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown")
    for name, color in zip(RUNS, colors, strict=True):
        rows = runs[name]["rows"]
        steps = [row["step"] for row in rows]
        axes.plot(steps, [r["val_bpc"] for r in rows], "-", color=color, label=name)
        axes.plot(steps, [r["train_bpc"] for r in rows], ":", color=color)
    axes.set_xlabel("step")
    axes.set_ylabel("bits per character (eval mode)")
    axes.set_title(
        f"torch GPT {sizes['n_layer']}x{sizes['n_embd']}, {sizes['train_tokens']} training "
        "characters: validation (solid), training (dotted)", fontsize=8)  # fmt: skip
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7, ncol=2)
    atomic_write_bytes(path, figure_png(figure))


def main(argv: list[str] | None = None) -> None:
    """Run the experiment; print the table; write the JSON and the PNG."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run of seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise-seeds", type=int, nargs="*", default=[],
                        help="extra seeds of the none and constant runs (noise level)")
    parser.add_argument("--out", type=Path, default=Path("runs/drop_family_char"))
    args = parser.parse_args(argv)

    import torch

    from dropout_ref.course.data.text import load_char_dataset
    from dropout_ref.course.training import atomic_write_bytes

    # A model this small runs fastest on one thread (more only contend on a shared machine).
    torch.set_num_threads(1)
    data = load_char_dataset()
    sizes = QUICK if args.quick else FULL
    runs = {name: train_one(name, args.seed, sizes, data) for name in RUNS}
    noise = {
        f"{name}/seed{seed}": train_one(name, seed, sizes, data)
        for seed in args.noise_seeds
        for name in ("none", "constant")
    }
    args.out.mkdir(parents=True, exist_ok=True)
    plot(runs, sizes, args.out / "drop_family_char.png")
    document = {"sizes": sizes, "rate": RATE, "runs": runs, "noise_runs": noise}
    atomic_write_bytes(
        args.out / "drop_family_char.json", json.dumps(document, indent=1).encode()
    )

    print(f"{'run':>18} {'best val':>9} {'at step':>8} {'final val':>10} "
          f"{'final train':>12} {'gap':>7} {'seconds':>8}")  # fmt: skip
    for name, run in {**runs, **{k: v for k, v in noise.items()}}.items():
        s = run["summary"]
        label = name if "/" in name else f"{name}/seed{args.seed}"
        print(f"{label:>18} {s['best_val_bpc']:>9.4f} {s['best_step']:>8} "
              f"{s['final_val_bpc']:>10.4f} {s['final_train_bpc']:>12.4f} {s['gap']:>7.3f} "
              f"{run['seconds']:>8.1f}")  # fmt: skip
    print(f"wrote {args.out / 'drop_family_char.png'} and {args.out / 'drop_family_char.json'}")


if __name__ == "__main__":
    main()
