"""Train the GPT in every backend, step by step, and measure how far they drift (SPEC X4).

``dropout-ref compare --model gpt`` runs this. Every backend starts from the
same weights (:func:`~dropout_ref.models.gpt_config.init_weights` of ``seed``),
sees the same batches and draws the same portable dropout masks at every site
(step ``k`` uses ``mask_seed = seed * 2**32 + k``, as the MLP's comparison), so
whatever differs between their runs is floating-point rounding.

Per-backend contract
    ``dropout_ref.course.<backend>.gpt_training`` provides
    ``gpt_optimizer(model, lr)``, ``gpt_train_step(model, optimizer, idx, targets,
    *, mask_seed=None, rates=None) -> float`` (the loss before the step) and
    ``gpt_loss_and_gradients(model, idx, targets, *, mask_seed=None, rates=None)``
    (``rates``: a dict of per-site rates for the call, SPEC S3). A backend
    without that module (numpy: no backward pass) takes part as the forward
    oracle only: at every step its train-mode loss, computed from the reference
    backend's weights with the same ``mask_seed``, is compared with the
    reference's loss.

Optimizer
    Plain SGD (no momentum, no weight decay), each framework's own
    (``torch.optim.SGD``, ``keras.optimizers.SGD``, ``optax.sgd``, Gluon's
    ``sgd``): one update rule, ``w - lr * g``, that every framework implements
    identically. AdamW is not used here because the frameworks' AdamW are
    different formulas (torch adds epsilon to ``sqrt(v_hat)``, Keras to
    ``sqrt(v)`` with a corrected step size), so their curves would differ by
    design, not by rounding.

Batches
    Synthetic, learnable and offline: row ``b`` of a batch is the arithmetic
    sequence ``(start_b + step_b * t) mod vocab_size`` for ``t = 0 .. block_size``
    with ``start_b``, ``step_b`` drawn from ``default_rng([seed, 2])``; ``idx`` is
    its first ``block_size`` tokens, ``targets`` the next ones.

Differences (reference: the first backend, torch when installed)
    loss: ``|L_b - L_ref| / max(|L_ref|, tiny)``; weights: max over tensors of
    ``max|w_b - w_ref| / max(max|w_ref|, tiny)`` (as the MLP's comparison).
    Tolerances: :data:`ONE_STEP_TOLERANCE` after the first step (loss and weights),
    :data:`CURVE_TOLERANCE` for the loss at every step (the issue's 1e-3).
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dropout_ref.course.backends import GPT_TRAINING_MODULE
from dropout_ref.models.backends import GPT_MODULE
from dropout_ref.models.gpt_config import GPTConfig, init_weights

#: Learning rate of :func:`gpt_optimizer` in every backend, and of the comparison.
DEFAULT_LR = 0.1

#: Largest relative loss and weight difference after the first step (SPEC X4, as M6).
ONE_STEP_TOLERANCE = 1e-5

#: Largest relative loss difference at any step (issue 15: 100 steps within 1e-3).
CURVE_TOLERANCE = 1e-3

#: Floor of the denominators of relative differences (smallest normal float32).
TINY = float(np.finfo(np.float32).tiny)

#: The architecture compared by default: tiny, with dropout at every site.
DEFAULT_CONFIG = GPTConfig(
    vocab_size=32, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout="gpt2-hf"
)


def validate_lr(lr: Any) -> float:
    """Return ``lr`` as a float; refuse anything but a positive finite real number."""
    if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, numbers.Real):
        raise TypeError(f"lr must be a positive finite number, got {lr!r}")
    if not (0 < float(lr) < math.inf):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    return float(lr)


def has_gpt(backend: str) -> bool:
    """Whether backend ``backend`` has a GPT (the course's ``GPT_MODULE`` declaration)."""
    return GPT_MODULE.covers(backend)


def training_module(backend: str) -> Any:
    """Return ``dropout_ref.course.<backend>.gpt_training``, or ``None`` where there is none."""
    return GPT_TRAINING_MODULE.load(backend) if GPT_TRAINING_MODULE.covers(backend) else None


def synthetic_batches(
    config: GPTConfig, batch_size: int, steps: int, seed: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``steps`` batches ``(idx, targets)`` of arithmetic sequences (module docstring)."""
    rng = np.random.default_rng([seed, 2])
    t = np.arange(config.block_size + 1)
    for _ in range(steps):
        start = rng.integers(0, config.vocab_size, size=(batch_size, 1))
        stride = rng.integers(1, 4, size=(batch_size, 1))
        rows = (start + stride * t) % config.vocab_size
        yield rows[:, :-1].astype(np.int64), rows[:, 1:].astype(np.int64)


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean token cross-entropy of float logits ``(B, T, V)``, computed in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(log_probs, targets[..., None], axis=-1)
    return float(-picked.mean())


def relative_difference(value: float, reference: float) -> float:
    """``|value - reference| / max(|reference|, TINY)``; inf if either is not finite."""
    if not (math.isfinite(value) and math.isfinite(reference)):
        return math.inf
    return abs(value - reference) / max(abs(reference), TINY)


def weight_difference(
    weights: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]
) -> float:
    """Max over tensors of ``max|w - w_ref| / max(max|w_ref|, TINY)``, in float64."""
    worst = 0.0
    for name, ref in reference.items():
        ref64 = np.asarray(ref, dtype=np.float64)
        diff = float(np.abs(np.asarray(weights[name], dtype=np.float64) - ref64).max())
        scale = max(float(np.abs(ref64).max()), TINY)
        worst = max(worst, diff / scale if math.isfinite(diff) else math.inf)
    return worst


@dataclass
class GPTComparison:
    """Per step and backend: losses and their differences from the reference."""

    reference: str
    trained: list[str]
    oracles: list[str]
    config: GPTConfig
    steps: int
    lr: float
    batch_size: int
    seed: int
    losses: list[dict[str, float]] = field(default_factory=list)
    loss_diffs: list[dict[str, float]] = field(default_factory=list)
    weight_diffs: list[dict[str, float]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    #: Backends asked for that have no GPT.
    skipped: list[str] = field(default_factory=list)
    #: Whether the compiled steps ran (torch.compile; TF's and JAX's seeded steps always are).
    compiled: bool = True

    def summary(self) -> dict[str, dict[str, float]]:
        """Per compared backend: step-0 and largest loss/weight differences."""
        result = {}
        for name in [*self.trained[1:], *self.oracles]:
            row = {
                "first_step_loss_diff": self.loss_diffs[0][name],
                "max_loss_diff": max(d[name] for d in self.loss_diffs),
            }
            if name in self.trained:
                row["first_step_weight_diff"] = self.weight_diffs[0][name]
                row["max_weight_diff"] = max(d[name] for d in self.weight_diffs)
            result[name] = row
        return result

    def violations(self) -> list[str]:
        """Every tolerance exceeded, as sentences (empty when the run passes)."""
        found = []
        for name, row in self.summary().items():
            checks = [("step-0 loss", row["first_step_loss_diff"], ONE_STEP_TOLERANCE)]
            checks.append(("loss", row["max_loss_diff"], CURVE_TOLERANCE))
            if "first_step_weight_diff" in row:
                checks.append(("step-0 weight", row["first_step_weight_diff"], ONE_STEP_TOLERANCE))
            for what, value, bound in checks:
                if not value <= bound:
                    found.append(
                        f"X4: {name} {what} difference {value:.3g} from {self.reference} "
                        f"exceeds {bound:g}"
                    )
        return found

    def to_json(self) -> dict[str, Any]:
        """Everything as one JSON-ready document."""
        return {
            "meta": {
                "model": "gpt",
                "config": self.config.to_dict(),
                "reference": self.reference,
                "trained": self.trained,
                "forward_oracles": self.oracles,
                "skipped_without_gpt": self.skipped,
                "optimizer": "SGD (each framework's own), no momentum, no weight decay",
                "steps": self.steps,
                "lr": self.lr,
                "batch_size": self.batch_size,
                "seed": self.seed,
                "compiled": self.compiled,
                "mask_seed": "seed * 2**32 + step",
                "one_step_tolerance": ONE_STEP_TOLERANCE,
                "curve_tolerance": CURVE_TOLERANCE,
            },
            "ok": not self.violations(),
            "violations": self.violations(),
            "summary": self.summary(),
            "seconds": self.seconds,
            "losses": self.losses,
            "loss_diffs": self.loss_diffs,
            "weight_diffs": self.weight_diffs,
        }


def run_gpt_comparison(
    backends: Sequence[str],
    *,
    config: GPTConfig = DEFAULT_CONFIG,
    steps: int = 100,
    lr: float = DEFAULT_LR,
    batch_size: int = 16,
    seed: int = 0,
    compiled: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> GPTComparison:
    """Train the GPT in every backend of ``backends`` with a training step; compare.

    Parameters
    ----------
    backends : sequence of str
        Installed backends; those with a ``gpt_training`` module train (the first
        is the reference), the others (numpy) check the forward pass. Backends
        without a GPT are left out (listed in :attr:`GPTComparison.skipped`).
    config : GPTConfig, optional
        The architecture and rates.
    steps, lr, batch_size, seed : optional
        Number of SGD steps, learning rate, sequences per batch, seed of the
        init, batches and masks (``seed`` in ``[0, 2**32)``).
    compiled : bool, optional
        Run each backend's compiled step where it declares one
        (``compiled_gpt_train_step``: torch's ``torch.compile`` step); the
        seeded TensorFlow and JAX steps are compiled either way.
    on_step : callable, optional
        Called with the step number after every step.

    Raises
    ------
    ValueError
        If fewer than two backends take part, or an argument is invalid.

    """
    from dropout_ref.core.registry import get_backend
    from dropout_ref.porting.compare import mask_seed_for_step

    lr = validate_lr(lr)
    if not isinstance(compiled, bool):
        raise TypeError(f"compiled must be True or False, got {compiled!r}")
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    mask_seed_for_step(seed, 0)  # refuses a seed outside [0, 2**32) before any work
    trained, oracles, steppers, models, optimizers = [], [], {}, {}, {}
    initial = init_weights(config, seed)
    skipped = []
    for name in dict.fromkeys(backends):
        if not has_gpt(name):
            skipped.append(name)
            continue
        module = training_module(name)
        get_backend(name)  # E1: a missing framework is named with its install command
        models[name] = GPT_MODULE.load(name).GPT(config, weights=initial)
        if module is None:
            oracles.append(name)
        else:
            trained.append(name)
            steppers[name] = module.gpt_train_step
            if compiled and module.compiled_gpt_train_step is not None:
                steppers[name] = module.compiled_gpt_train_step
            optimizers[name] = module.gpt_optimizer(models[name], lr)
    if not trained or len(trained) + len(oracles) < 2:
        raise ValueError(
            f"backends must name at least two backends, one with a GPT training step; "
            f"got {list(backends)}"
        )
    reference = trained[0]
    result = GPTComparison(reference, trained, oracles, config, steps, lr, batch_size, seed)
    result.skipped = skipped
    result.compiled = compiled
    result.seconds = dict.fromkeys([*trained, *oracles], 0.0)
    for k, (idx, targets) in enumerate(synthetic_batches(config, batch_size, steps, seed)):
        mask_seed = mask_seed_for_step(seed, k)
        losses = {}
        for name in oracles:
            start = time.perf_counter()
            oracle = models[name]
            oracle.set_weights(models[reference].get_weights())
            logits = oracle(idx, training=True, mask_seed=mask_seed)
            losses[name] = cross_entropy(logits, targets)
            result.seconds[name] += time.perf_counter() - start
        for name in trained:
            start = time.perf_counter()
            losses[name] = steppers[name](
                models[name], optimizers[name], idx, targets, mask_seed=mask_seed
            )
            result.seconds[name] += time.perf_counter() - start
        ref_weights = models[reference].get_weights()
        result.losses.append(losses)
        result.loss_diffs.append(
            {n: relative_difference(losses[n], losses[reference]) for n in losses}
        )
        result.weight_diffs.append(
            {n: weight_difference(models[n].get_weights(), ref_weights) for n in trained}
        )
        if on_step is not None:
            on_step(k)
    return result
