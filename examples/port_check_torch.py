"""Check your own PyTorch port of the dropout chapter against the reference, step by step.

A user's port, written the way the course writes it (``nn.Linear`` layers,
a dropout module), with one change that makes it checkable: its dropout
draws portable masks, ``dropout_layer(H, p, seed=mask_seed, offset=...)``,
so it drops exactly the units the reference drops. ``dropout_ref.porting.port_check``
then runs it next to the numpy reference and names the first step and SPEC
clause where it differs.

Run: ``python examples/port_check_torch.py`` (offline, a few seconds). It
checks the correct port and three deliberately wrong ones.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dropout_ref.models.mlp_spec import DROPOUT_OFFSETS
from dropout_ref.porting.port_check import check_port, from_model
from dropout_ref.torch import dropout_layer

#: The deliberately wrong ports this example can build.
MISTAKES = ("dropout_after_output", "scale_by_keep_probability", "native_dropout")


class PortableDropout(nn.Module):
    """Dropout with rate ``p`` whose masks come from the step's seed (SPEC P)."""

    def __init__(self, p: float, layer: int, mistake: str | None = None) -> None:
        super().__init__()
        self.p, self.layer, self.mistake = p, layer, mistake
        self.mask_seed: int | None = None

    def forward(self, H: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return H
        if self.mistake == "native_dropout":
            return F.dropout(H, self.p, training=True)  # torch's own generator
        # Layer k draws from counters starting at DROPOUT_OFFSETS[k]; a third layer gets 2 * 2**40.
        offset = DROPOUT_OFFSETS[self.layer] if self.layer < 2 else self.layer * 2**40
        if self.mistake == "scale_by_keep_probability":
            kept = dropout_layer(torch.ones_like(H), self.p, seed=self.mask_seed, offset=offset)
            return H * (kept != 0) * (1 - self.p)  # wrong: inverted dropout divides by 1 - p
        return dropout_layer(H, self.p, seed=self.mask_seed, offset=offset)


class Net(nn.Module):
    """The course's MLP: Linear 256, ReLU, dropout 0.2, Linear 256, ReLU, dropout 0.5, Linear."""

    def __init__(self, num_inputs: int, num_outputs: int, mistake: str | None = None) -> None:
        super().__init__()
        self.lin1 = nn.Linear(num_inputs, 256)
        self.lin2 = nn.Linear(256, 256)
        self.lin3 = nn.Linear(256, num_outputs)
        self.dropouts = nn.ModuleList(
            [PortableDropout(0.2, 0, mistake), PortableDropout(0.5, 1, mistake)]
        )
        if mistake == "dropout_after_output":
            self.dropouts.append(PortableDropout(0.5, 2))
        self.mistake = mistake

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        H1 = self.dropouts[0](torch.relu(self.lin1(X)))
        H2 = self.dropouts[1](torch.relu(self.lin2(H1)))
        out = self.lin3(H2)
        if self.mistake == "dropout_after_output":
            out = self.dropouts[2](out)  # wrong: no dropout on the logits (SPEC M4)
        return out


def sgd_step(net: Net, images, labels, lr: float, mask_seed: int) -> float:
    """One SGD step, as the course's training loop takes it."""
    for dropout in net.dropouts:
        dropout.mask_seed = mask_seed
    net.train()
    net.zero_grad()
    loss = F.cross_entropy(net(torch.from_numpy(images)), torch.from_numpy(labels))
    loss.backward()
    with torch.no_grad():
        for param in net.parameters():
            param -= lr * param.grad
    return loss.item()


def get_weights(net: Net) -> dict[str, np.ndarray]:
    """nn.Linear holds weight as (out, in); the neutral layout is (in, out)."""
    weights = {}
    for k, lin in enumerate((net.lin1, net.lin2, net.lin3), start=1):
        weights[f"W{k}"] = lin.weight.detach().numpy().T.copy()
        weights[f"b{k}"] = lin.bias.detach().numpy().copy()
    return weights


def set_weights(net: Net, weights: dict[str, np.ndarray]) -> None:
    with torch.no_grad():
        for k, lin in enumerate((net.lin1, net.lin2, net.lin3), start=1):
            lin.weight.copy_(torch.from_numpy(weights[f"W{k}"].T))
            lin.bias.copy_(torch.from_numpy(weights[f"b{k}"]))


def make_port(num_inputs: int = 64, num_outputs: int = 10, mistake: str | None = None):
    """The port as a step function for ``check_port`` (``mistake`` one of :data:`MISTAKES`)."""
    net = Net(num_inputs, num_outputs, mistake)
    step = from_model(net, sgd_step, get_weights=get_weights, set_weights=set_weights)
    step.__name__ = f"torch port ({mistake or 'correct'})"
    return step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="steps to check (default 10)")
    args = parser.parse_args(argv)

    torch.manual_seed(0)  # only the native_dropout port uses it
    correct = check_port(make_port(), steps=args.steps)
    print(correct.summary())
    for mistake in MISTAKES:
        report = check_port(make_port(mistake=mistake), steps=args.steps)
        print(report.summary())
    return 0 if correct.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
