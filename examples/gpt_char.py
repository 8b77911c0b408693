"""The chapter's point on a Transformer: dropout against overfitting in a character GPT.

Two runs of the torch GPT on the same small slice of CPython's documentation
(``pydoc_data.topics``, offline), same init, same batches, same budget: one
with dropout 0.0, one with dropout 0.2 at every site (embeddings, attention
probabilities, residual branches). The training set is small enough that the
model overfits within the budget; the validation loss (bits per character,
eval mode, the same fixed batches for both) shows what dropout does about it.

    python examples/gpt_char.py            # the figure in docs/transformer.md (a few minutes)
    python examples/gpt_char.py --quick    # seconds: a tiny model, to see it run

Writes ``gpt_char.json`` (every evaluation of both runs) and ``gpt_char.png``
into ``--out`` (default ``runs/gpt_char``).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

#: The overfitting regime: 2 blocks of width 64 on 10 000 characters, 1200 steps of 16 x 64
#: (about 120 passes over the training text), AdamW at lr 2e-3.
FULL = {
    "steps": 1200,
    "eval_interval": 100,
    "eval_batches": 8,
    "batch_size": 16,
    "block_size": 64,
    "n_layer": 2,
    "n_head": 4,
    "n_embd": 64,
    "lr": 2e-3,
    "train_tokens": 10_000,
}
QUICK = {**FULL, "steps": 40, "eval_interval": 20, "eval_batches": 2, "n_embd": 32,
         "train_tokens": 5_000}
RATES = (0.0, 0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run of seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/gpt_char"))
    parser.add_argument("--backend", default="torch", help="torch (default), tensorflow, ...")
    args = parser.parse_args()

    import torch

    from dropout_ref.course.data.text import load_char_dataset
    from dropout_ref.course.gpt_training import GPTTrainConfig, train_gpt
    from dropout_ref.course.png import figure_png, new_figure
    from dropout_ref.course.training import atomic_write_bytes

    # A model this small runs fastest on one thread (more only contend on a shared machine).
    torch.set_num_threads(1)
    data = load_char_dataset()
    sizes = QUICK if args.quick else FULL
    # The framework's own masks: the runs compare rates, not backends, and are faster so.
    base = GPTTrainConfig(seed=args.seed, portable_masks=False, **sizes)
    runs = {}
    for rate in RATES:
        _, rows = train_gpt(args.backend, data, replace(base, dropout=rate), progress=True)
        runs[rate] = rows

    figure = new_figure(figsize=(5.5, 3.6), dpi=120)
    axes = figure.add_subplot()
    for rate, color in zip(RATES, ("tab:red", "tab:blue"), strict=True):
        steps = [row["step"] for row in runs[rate]]
        axes.plot(steps, [r["val_bpc"] for r in runs[rate]], "-", color=color,
                  label=f"validation, dropout {rate}")
        axes.plot(steps, [r["train_bpc"] for r in runs[rate]], ":", color=color,
                  label=f"training, dropout {rate}")
    axes.set_xlabel("step")
    axes.set_ylabel("bits per character (eval mode)")
    axes.set_title(
        f"{args.backend} GPT, {sizes['n_layer']}x{sizes['n_embd']}, "
        f"{sizes['train_tokens']} training characters", fontsize=9)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / "gpt_char.png", figure_png(figure))
    document = {"config": base.to_dict(), "runs": {str(rate): runs[rate] for rate in RATES}}
    atomic_write_bytes(args.out / "gpt_char.json", json.dumps(document, indent=1).encode())

    print(f"{'dropout':>8} {'best val bpc':>13} {'at step':>8} {'final val':>10} "
          f"{'final train':>12} {'gap':>6}")
    for rate in RATES:
        rows = runs[rate]
        best = min(rows, key=lambda r: r["val_bpc"])
        last = rows[-1]
        print(f"{rate:>8} {best['val_bpc']:>13.4f} {best['step']:>8} {last['val_bpc']:>10.4f} "
              f"{last['train_bpc']:>12.4f} {last['val_bpc'] - last['train_bpc']:>6.3f}")
    print(f"wrote {args.out / 'gpt_char.png'} and {args.out / 'gpt_char.json'}")


if __name__ == "__main__":
    main()
