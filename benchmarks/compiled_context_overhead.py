"""Cost of ``portable_masks`` around a compiled training step (SPEC P9), on this machine.

Usage: ``PYTHONPATH=src python benchmarks/compiled_context_overhead.py [--repeats N]
[--calls C] [--batch B] [--backends jax tensorflow]`` from the repository root.

The step is the course MLP's shape (784 -> 256 -> 256 -> 10, dropout 0.2 and 0.5 after
the hidden layers, batch 256 unless ``--batch``, SGD), written with the framework's own layers:

- ``jax``: Flax NNX (``nnx.Linear``, ``nnx.Dropout``), one ``nnx.jit`` step
  (``nnx.value_and_grad`` + an SGD update);
- ``tensorflow``: Keras 3 ``Sequential`` (``Dense``, ``Dropout``), its ``train_step`` in
  one ``tf.function`` (what Keras' compiled ``train_on_batch`` runs, without its data
  handling).

Three variants of the same step, each compiled once before timing:

- ``native``: called outside any context (the framework's own masks);
- ``constant``: ``portable_masks(seed)`` entered inside the traced function with a Python
  seed: portable masks whose seed and site numbers are constants of the program (the
  cost of the portable masks themselves, SPEC G3's business, not P9's);
- ``traced-seed``: the same with the seed an argument of the program (SPEC S2's
  run-time-seed kernels, which the ``run-time`` variant runs too);
- ``run-time``: the ``native`` step called inside one ``with portable_masks(seed):``
  entered eagerly: the program reads the seed and reads and advances the site count
  (SPEC P9's run-time state).

Each round times ``C`` calls of every variant, rotating their order; it prints the
best time per step of each (best of N rounds) and the ratios run-time / traced-seed
(the cost of P9's run-time state: reading the seed, reading and advancing the count)
and run-time / native (the whole cost of the context, portable masks included).
It is a wall-clock figure of this machine at this moment.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

BATCH, SIZES, RATES = 256, (784, 256, 256, 10), (0.2, 0.5)


def _batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, SIZES[0]), dtype=np.float32)
    return x, rng.integers(0, SIZES[-1], BATCH).astype(np.int32)


def _set_batch(n: int) -> None:
    global BATCH
    if n < 1:
        raise ValueError(f"--batch must be a positive integer, got {n}")
    BATCH = n


Step = tuple[dict[str, Callable[[], object]], Callable[[int], object]]


def jax_steps() -> Step:
    """Return (step, step with the context inside, the context factory) for Flax NNX."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from dropout_ref.jax import portable_masks
    from dropout_ref.jax.runtime import seed_words

    class Net(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.l1 = nnx.Linear(SIZES[0], SIZES[1], rngs=rngs)
            self.d1 = nnx.Dropout(RATES[0], rngs=rngs)
            self.l2 = nnx.Linear(SIZES[1], SIZES[2], rngs=rngs)
            self.d2 = nnx.Dropout(RATES[1], rngs=rngs)
            self.l3 = nnx.Linear(SIZES[2], SIZES[3], rngs=rngs)

        def __call__(self, x: jax.Array) -> jax.Array:
            h = self.d1(nnx.relu(self.l1(x)))
            return self.l3(self.d2(nnx.relu(self.l2(h))))

    def body(model: Net, x: jax.Array, y: jax.Array) -> jax.Array:
        def loss(m: Net) -> jax.Array:
            return optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()

        value, grads = nnx.value_and_grad(loss)(model)
        params = nnx.state(model, nnx.Param)
        nnx.update(model, jax.tree.map(lambda p, g: p - 0.1 * g, params, grads))
        return value

    def constant_body(model: Net, x: jax.Array, y: jax.Array) -> jax.Array:
        with portable_masks(5):
            return body(model, x, y)

    def seeded_body(model: Net, x: jax.Array, y: jax.Array, seed: jax.Array) -> jax.Array:
        with portable_masks(seed):
            return body(model, x, y)

    step, constant_step, seeded_step = nnx.jit(body), nnx.jit(constant_body), nnx.jit(seeded_body)
    seed = seed_words(5)

    model = Net(nnx.Rngs(0, dropout=1))
    model.train()
    x, y = (jnp.asarray(a) for a in _batch())

    def run() -> object:
        return step(model, x, y).block_until_ready()

    def run_constant() -> object:
        return constant_step(model, x, y).block_until_ready()

    def run_seeded() -> object:
        return seeded_step(model, x, y, seed).block_until_ready()

    return {"native": run, "constant": run_constant, "traced-seed": run_seeded}, portable_masks


def tensorflow_steps() -> Step:
    """Return (step, step with the context inside, the context factory) for Keras on TF."""
    import keras
    import tensorflow as tf

    from dropout_ref.tensorflow import portable_masks

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((SIZES[0],)),
        keras.layers.Dense(SIZES[1], activation="relu"),
        keras.layers.Dropout(RATES[0]),
        keras.layers.Dense(SIZES[2], activation="relu"),
        keras.layers.Dropout(RATES[1]),
        keras.layers.Dense(SIZES[3]),
    ])
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.build((None, SIZES[0]))
    model.optimizer.build(model.trainable_variables)
    x, y = (tf.constant(a) for a in _batch())

    @tf.function
    def step() -> object:
        return model.train_step((x, y))["loss"]

    @tf.function
    def constant_step() -> object:
        with portable_masks(5):
            return model.train_step((x, y))["loss"]

    @tf.function
    def seeded_step(seed: tf.Tensor) -> object:
        with portable_masks(seed):
            return model.train_step((x, y))["loss"]

    seed = tf.constant(5, tf.int64)
    runs = {
        "native": lambda: step().numpy(),
        "constant": lambda: constant_step().numpy(),
        "traced-seed": lambda: seeded_step(seed).numpy(),
    }
    return runs, portable_masks


BACKENDS = {"jax": jax_steps, "tensorflow": tensorflow_steps}


def _time(run: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - start) / calls


VARIANTS = ("native", "constant", "traced-seed", "run-time")


def measure(name: str, repeats: int, calls: int) -> dict[str, float]:
    """Return the best seconds per step of each variant over rounds in rotating order."""
    runs, portable_masks = BACKENDS[name]()
    for run in runs.values():
        run()  # traced outside any context
    with portable_masks(1):
        runs["native"]()  # traced again inside (the cache key carries the context)
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for r in range(repeats):
        shift = r % len(VARIANTS)
        for variant in VARIANTS[shift:] + VARIANTS[:shift]:
            if variant == "run-time":
                with portable_masks(r + 2):
                    times[variant].append(_time(runs["native"], calls))
            else:
                times[variant].append(_time(runs[variant], calls))
    return {v: min(t) for v, t in times.items()}


def main() -> None:
    """Print the per-step times of each variant and their ratios, per backend."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    args = parser.parse_args()
    _set_batch(args.batch)
    for name in args.backends:
        try:
            best = measure(name, args.repeats, args.calls)
        except ImportError as exc:
            print(f"{name}: skipped ({exc})")
            continue
        each = ", ".join(f"{v} {best[v] * 1e3:.3f} ms" for v in VARIANTS)
        print(
            f"{name}: {each}; run-time/traced-seed "
            f"{best['run-time'] / best['traced-seed']:.3f}, "
            f"run-time/native {best['run-time'] / best['native']:.3f} "
            f"(batch {BATCH}, best of {args.repeats} rounds of {args.calls} steps)"
        )


if __name__ == "__main__":
    main()
