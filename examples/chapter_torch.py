"""The dropout chapter of the course (D2L "Dropout"), ported onto dropout_ref, in PyTorch.

The four ``chapter_<framework>.py`` scripts share their structure and names, so
``diff examples/chapter_numpy.py examples/chapter_torch.py`` shows only what
differs between frameworks. Run with ``--quick`` for an offline run in seconds.
"""



from __future__ import annotations

import argparse
from pathlib import Path

import torch

from dropout_ref.course.data import load_dataset
from dropout_ref.course.training import DATASET_DEFAULTS, TrainConfig, plot_curves, train
from dropout_ref.torch import MLP, dropout_layer

BACKEND = "torch"


def toy_input():
    """The course's ``X``: 0..15 as a 2x8 float32 array."""
    return torch.arange(16, dtype=torch.float32).reshape((2, 8))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits, 2 epochs, offline")
    parser.add_argument("--dataset", default="fashion-mnist", choices=tuple(DATASET_DEFAULTS))
    parser.add_argument("--out", type=Path, help="folder for curves.png")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)

    # 1. dropout_layer: drop nothing, half, everything.
    X = toy_input()
    print(X)
    for dropout in (0.0, 0.5, 1.0):
        print(f"dropout={dropout}:")
        print(dropout_layer(X, dropout))

    # 2. The model: two hidden layers of 256, dropout 0.2 then 0.5 after their ReLUs.
    dataset = "digits" if args.quick else args.dataset
    data = load_dataset(dataset)
    dropout1, dropout2 = 0.2, 0.5
    net = MLP(
        num_inputs=data.num_inputs,
        num_outputs=data.num_classes,
        num_hiddens1=256,
        num_hiddens2=256,
        dropout1=dropout1,
        dropout2=dropout2,
        rng=0,
    )

    # 3. Training: the package's loop (minibatch SGD on softmax cross-entropy).
    defaults = DATASET_DEFAULTS[dataset]
    config = TrainConfig(
        epochs=2 if args.quick else int(defaults["epochs"]),
        lr=float(defaults["lr"]),
        # --quick: batch 16 lets two epochs climb off the plateau of the 0.01 init.
        batch_size=16 if args.quick else int(defaults["batch_size"]),
        seed=0,
    )
    results = train(BACKEND, net, data, config, progress=not args.quick)
    for row in results:
        print(
            f"epoch {row['epoch']}: loss {row['train_loss']:.3f}, "
            f"train acc {row['train_acc']:.3f}, test acc {row['test_acc']:.3f}"
        )
    if args.out is not None:
        print("plot:", plot_curves(results, args.out / "curves.png", title=f"{BACKEND}"))
    return results


if __name__ == "__main__":
    main()
