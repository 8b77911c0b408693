"""Check a port of a PyTorch model to Keras 3 or Flax NNX in training mode (SPEC P8).

Both models are plain framework code with the framework's own dropout layers. The
port check (:func:`dropout_ref.porting.pair.run_pair`) copies the torch model's
weights into the port, runs each framework's training step inside its
``portable_masks(seed * 2**32 + step)``, so both drop the same units, and compares
the losses, the weights and the two tables of dropout sites. The faithful port
passes; a port with its second dropout at another rate is named at that site.

Run: ``python examples/port_two_models.py [--framework keras|flax] [--out DIR]``
(offline, some seconds; ``--out`` also writes compare.json, compare.csv and the
curves PNG).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from rich.console import Console
from torch import nn

from dropout_ref.porting.pair import PairConfig, PortModel, run_pair
from dropout_ref.porting.pair_report import site_table, steps_table, write_pair

INPUTS, HIDDEN, CLASSES = 10, 32, 4


def torch_model() -> nn.Module:
    """The original: two hidden layers, each followed by ReLU and dropout."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(INPUTS, HIDDEN), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(HIDDEN, CLASSES),
    )


def torch_step(model: nn.Module, batch, lr: float) -> float:
    """One SGD step on the mean cross-entropy, in training mode."""
    X, y = batch
    model.train()
    model.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(torch.from_numpy(X)), torch.from_numpy(y))
    loss.backward()
    with torch.no_grad():
        for param in model.parameters():
            param -= lr * param.grad
    return loss.item()


def keras_port(second_rate: float) -> PortModel:
    """The Keras 3 port (TensorFlow backend): Dense kernels are torch's weights transposed."""
    import keras
    import tensorflow as tf

    model = keras.Sequential([
        keras.Input((INPUTS,)),
        keras.layers.Dense(HIDDEN, activation="relu", name="l0"), keras.layers.Dropout(0.2),
        keras.layers.Dense(HIDDEN, activation="relu", name="l3"),
        keras.layers.Dropout(second_rate),
        keras.layers.Dense(CLASSES, name="l6"),
    ])

    def step(model, batch, lr):
        X, y = batch
        with tf.GradientTape() as tape:
            logits = model(tf.constant(X), training=True)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            )
        for var, grad in zip(model.trainable_variables,
                             tape.gradient(loss, model.trainable_variables), strict=True):
            var.assign_sub(lr * grad)
        return float(loss)

    def name_map(path: str):  # "sequential/l3/kernel" -> ("3.weight", transposed)
        layer, weight = path.split("/")[-2:]
        if weight == "kernel":
            return f"{layer[1:]}.weight", (1, 0)
        return f"{layer[1:]}.bias"

    return PortModel(model, step, name_map=name_map, label=f"keras (rate {second_rate})")


def flax_port(second_rate: float) -> PortModel:
    """The Flax NNX port: ``nnx.Linear`` kernels are torch's weights transposed."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.l0 = nnx.Linear(INPUTS, HIDDEN, rngs=rngs)
            self.d0 = nnx.Dropout(0.2, rngs=rngs)
            self.l3 = nnx.Linear(HIDDEN, HIDDEN, rngs=rngs)
            self.d1 = nnx.Dropout(second_rate, rngs=rngs)
            self.l6 = nnx.Linear(HIDDEN, CLASSES, rngs=rngs)

        def __call__(self, x):
            x = self.d0(nnx.relu(self.l0(x)))
            return self.l6(self.d1(nnx.relu(self.l3(x))))

    def step(model, batch, lr):
        X, y = batch
        model.train()

        def loss_fn(m):
            logp = jax.nn.log_softmax(m(jnp.asarray(X)))
            return -jnp.take_along_axis(logp, jnp.asarray(y)[:, None], axis=-1).mean()

        # Eager, not nnx.jit: a trace would bake one step's seed into the compiled step.
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        params = nnx.state(model, nnx.Param)
        nnx.update(model, jax.tree.map(lambda p, g: p - lr * g, params, grads))
        return float(loss)

    def name_map(path: str):  # "l3.kernel" -> ("3.weight", transposed)
        layer, weight = path.split(".")
        if weight == "kernel":
            return f"{layer[1:]}.weight", (1, 0)
        return f"{layer[1:]}.bias"

    return PortModel(MLP(nnx.Rngs(0)), step, name_map=name_map,
                     label=f"flax nnx (rate {second_rate})")


def batches(k: int):
    """Step ``k``'s batch: 64 random inputs and labels (the same for both models)."""
    rng = np.random.default_rng([1, k])
    return rng.normal(size=(64, INPUTS)).astype(np.float32), rng.integers(0, CLASSES, 64)


def main(argv: list[str] | None = None) -> int:
    """Check the faithful port and a wrong one; return 0 when both verdicts are as expected."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=("keras", "flax"), default="keras")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", help="also write the report files of the wrong port here")
    args = parser.parse_args(argv)
    port = keras_port if args.framework == "keras" else flax_port
    console = Console()
    verdicts = []
    for rate in (0.5, 0.3):
        original = PortModel(torch_model(), torch_step, label="torch")
        run = run_pair(original, port(rate), PairConfig(steps=args.steps), batches=batches)
        console.print(steps_table(run))
        console.print(site_table(run))
        for line in run.violations():
            console.print(f"[red]{line}[/red]")
        console.print(f"SPEC P8: {'PASS' if run.ok else 'FAIL'}\n")
        verdicts.append(run.ok)
        if args.out and not run.ok:
            write_pair(run, args.out)
    return 0 if verdicts == [True, False] else 1


if __name__ == "__main__":
    raise SystemExit(main())
