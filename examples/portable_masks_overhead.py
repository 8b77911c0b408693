"""Overhead of ``dropout_ref.torch.portable_masks`` on a training step of the course MLP.

Two copies of the course network (784-256-256-10, batch 256, plain SGD): one with
``nn.Dropout`` layers, stepped inside ``portable_masks(seed)`` (the framework's
dropout intercepted, SPEC P8); one whose dropout modules call
``dropout_layer(H, p, seed=seed, offset=j * 2**40)`` directly. Both draw the same
masks; the steps are interleaved and the medians compared (target: <= 1.10).

Run: ``python examples/portable_masks_overhead.py [--steps 300]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dropout_ref.torch import dropout_layer, portable_masks


class DirectDropout(nn.Module):
    """Dropout module calling our ``dropout_layer`` with the step's seed (site ``j``)."""

    def __init__(self, p: float, j: int) -> None:
        super().__init__()
        self.p, self.j, self.seed = p, j, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        return dropout_layer(x, self.p, seed=self.seed, offset=self.j * 2**40)


def course_net(direct: bool) -> nn.Sequential:
    """The course MLP; ``direct`` swaps nn.Dropout for :class:`DirectDropout`."""
    first = DirectDropout(0.2, 0) if direct else nn.Dropout(0.2)
    second = DirectDropout(0.5, 1) if direct else nn.Dropout(0.5)
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), first,
                         nn.Linear(256, 256), nn.ReLU(), second, nn.Linear(256, 10))


def sgd_step(net: nn.Module, X: torch.Tensor, y: torch.Tensor, lr: float = 0.5) -> float:
    """One plain SGD step on the mean softmax cross-entropy, in train() mode."""
    net.train()
    net.zero_grad(set_to_none=True)
    loss = F.cross_entropy(net(X), y)
    loss.backward()
    with torch.no_grad():
        for param in net.parameters():
            param -= lr * param.grad
    return loss.item()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="timed steps of each (300)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    X = torch.from_numpy(rng.random((256, 784), dtype=np.float32))
    y = torch.from_numpy(rng.integers(0, 10, 256))
    direct, intercepted = course_net(True), course_net(False)

    def step_direct(seed: int) -> float:
        for module in direct:
            if isinstance(module, DirectDropout):
                module.seed = seed
        return sgd_step(direct, X, y)

    def step_context(seed: int) -> float:
        with portable_masks(seed):
            return sgd_step(intercepted, X, y)

    # Same weights, same masks: the first steps agree (and warm both up).
    for seed in range(10):
        a, b = step_direct(seed), step_context(seed)
        if abs(a - b) > 1e-5 * abs(a):
            raise SystemExit(f"the two networks differ at step {seed}: {a} vs {b}")
    times: dict[str, list[float]] = {"direct": [], "context": []}
    for seed in range(args.steps):
        for name, step in (("direct", step_direct), ("context", step_context)):
            start = time.perf_counter()
            step(seed)
            times[name].append(time.perf_counter() - start)
    med = {name: float(np.median(values)) for name, values in times.items()}
    print(f"torch {torch.__version__}, course MLP 784-256-256-10, batch 256, "
          f"{args.threads} thread(s), {args.steps} interleaved steps each")
    print(f"median step: dropout_layer called directly {1e3 * med['direct']:.2f} ms, "
          f"nn.Dropout inside portable_masks {1e3 * med['context']:.2f} ms, "
          f"ratio {med['context'] / med['direct']:.3f} (target <= 1.10)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
