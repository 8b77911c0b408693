"""Train the course MLP in every backend, step by step, and compare with numpy (SPEC M6).

Every backend starts from the same neutral weights, sees the same batches
and draws the same portable dropout masks (SPEC P), so whatever differs
between their runs is floating-point rounding, which this module measures
against the numpy oracle after every step.

Seeds
    The initial weights are ``mlp_spec.init_weights(spec, seed)`` (the
    default init of ``MLP(rng=seed)``). The batches are consecutive epochs of
    ``data.minibatches(..., shuffle=True, rng=numpy.random.default_rng([seed, 1]))``
    (the shuffling of ``dropout-ref train``), cut after ``steps`` batches.
    Step ``k`` (0-based) draws its masks with ``mask_seed = seed * 2**32 + k``
    (:func:`mask_seed_for_step`): distinct for every (seed, step) pair with
    ``seed, k < 2**32``, and a valid 64-bit Philox key (P3).

Differences (:func:`loss_difference`, :func:`weight_difference`)
    loss: ``|L_b - L_ref| / max(|L_ref|, TINY)``.
    weights: ``max over tensors t of max|w_b[t] - w_ref[t]| / max(max|w_ref[t]|, TINY)``.

    Elementwise relative errors of weights are meaningless: a float32 dot
    product's rounding error is bounded relative to the magnitudes of its
    terms, not to its (possibly cancelling, near-zero) result, and tiny
    weights would dominate. Scaling each tensor by its largest magnitude
    measures the error in units of that tensor's scale, the usual normwise
    bound for matrix products. ``TINY`` (the smallest normal float32) only
    keeps an all-zero tensor from dividing by zero.

Tolerances (SPEC M6, :data:`ONE_STEP_TOLERANCE`, :data:`CURVE_TOLERANCE`)
    After the first step both differences must be at most ``1e-5``; at every
    step the loss difference must be at most ``1e-4``. The weight difference
    after later steps is reported but has no bound in the SPEC.

Divergence
    A step whose loss or updated weights hold NaN or inf (say ``--lr 1e30``)
    is an M6 violation of that backend (quantity :data:`DIVERGED`), reported
    like any other; the run stops after that step, since no backend accepts
    non-finite weights as input.

Backends are driven through the step-function contract of
:mod:`dropout_ref.porting.port_check` (:func:`backend_step_function`), the same one
a user's port is checked with.
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dropout_ref.models.backends import MLP_MODULE
from dropout_ref.models.mlp_spec import WEIGHT_NAMES, MLPSpec, init_weights, validate_weights

#: Reference backend: every difference is measured against it.
REFERENCE = "numpy"

#: SPEC M6: largest relative loss and weight difference after one step.
ONE_STEP_TOLERANCE = 1e-5

#: SPEC M6: largest relative loss difference at any step of a run.
CURVE_TOLERANCE = 1e-4

#: Floor of the denominators of relative differences (smallest normal float32).
TINY = float(np.finfo(np.float32).tiny)

#: Mask seeds are ``seed * MASK_SEED_STRIDE + step``.
MASK_SEED_STRIDE = 2**32


class StepFunction(Protocol):
    """One SGD step of the course MLP, framework-neutral (see :mod:`.port_check`)."""

    def __call__(
        self,
        weights: dict[str, np.ndarray],
        images: np.ndarray,
        labels: np.ndarray,
        lr: float,
        mask_seed: int,
    ) -> tuple[float, dict[str, np.ndarray]]:
        """Return the batch loss before the update and the updated weights."""
        ...


def _non_negative_int(value: Any, name: str, below: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a non-negative integer, got {value!r}")
    if value < 0 or (below is not None and value >= below):
        limit = f" below {below}" if below is not None else ""
        raise ValueError(f"{name} must be a non-negative integer{limit}, got {value!r}")
    return int(value)


def mask_seed_for_step(seed: int, step: int) -> int:
    """Return the portable-mask seed of step ``step`` (0-based) of run ``seed``.

    ``seed * 2**32 + step``: injective over ``0 <= seed, step < 2**32`` and
    always a valid 64-bit Philox key.

    Raises
    ------
    TypeError, ValueError
        If ``seed`` or ``step`` is not an integer in ``[0, 2**32)``.

    """
    seed = _non_negative_int(seed, "seed", MASK_SEED_STRIDE)
    step = _non_negative_int(step, "step", MASK_SEED_STRIDE)
    return seed * MASK_SEED_STRIDE + step


def batch_sequence(
    images: np.ndarray, labels: np.ndarray, batch_size: int, steps: int, seed: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``steps`` batches: shuffled epochs as ``dropout-ref train`` draws them, repeated.

    The permutation of epoch ``e`` comes from ``default_rng([seed, 1])``, so
    the sequence depends only on the data, ``batch_size``, and ``seed``. An
    epoch's last batch may be shorter.
    """
    from dropout_ref.course.data import minibatches

    steps = _non_negative_int(steps, "steps")
    if len(images) == 0:
        # minibatches yields nothing for an empty set, so the loop below would never end.
        raise ValueError("images must hold at least one sample")
    rng = np.random.default_rng([seed, 1])
    done = 0
    while done < steps:
        for batch in minibatches(images, labels, batch_size, shuffle=True, rng=rng):
            yield batch
            done += 1
            if done == steps:
                return


def loss_difference(loss: float, reference: float) -> float:
    """Return ``|loss - reference| / max(|reference|, TINY)`` (inf if either is not finite)."""
    if not (math.isfinite(loss) and math.isfinite(reference)):
        return math.inf
    return abs(loss - reference) / max(abs(reference), TINY)


def weight_differences(
    weights: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]
) -> dict[str, float]:
    """Return ``max|w - w_ref| / max(max|w_ref|, TINY)`` per tensor, computed in float64."""
    result = {}
    for name in WEIGHT_NAMES:
        ref = np.asarray(reference[name], dtype=np.float64)
        diff = np.abs(np.asarray(weights[name], dtype=np.float64) - ref)
        worst = float(diff.max()) if diff.size else 0.0
        scale = float(np.abs(ref).max()) if ref.size else 0.0
        result[name] = worst / max(scale, TINY) if math.isfinite(worst) else math.inf
    return result


def weight_difference(
    weights: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]
) -> float:
    """Return the largest of :func:`weight_differences` (see the module docstring)."""
    return max(weight_differences(weights, reference).values())


def from_model(
    model: Any,
    sgd_step: Callable[[Any, np.ndarray, np.ndarray, float, int], float],
    *,
    get_weights: Callable[[Any], dict[str, np.ndarray]] | None = None,
    set_weights: Callable[[Any, dict[str, np.ndarray]], None] | None = None,
) -> StepFunction:
    """Wrap a framework model and its training step as a step function (see the module doc).

    Parameters
    ----------
    model : object
        Your model, reused (its weights are overwritten) at every call.
    sgd_step : callable
        ``sgd_step(model, images, labels, lr, mask_seed) -> float``: one SGD
        step in place, returning the loss before the update.
    get_weights : callable, optional
        ``get_weights(model) -> dict`` in the neutral layout; default
        ``model.get_weights()``.
    set_weights : callable, optional
        ``set_weights(model, weights)`` from the neutral layout; default
        ``model.set_weights(weights)``.

    Returns
    -------
    StepFunction

    """
    if not callable(sgd_step):
        raise TypeError(f"sgd_step must be callable, got {type(sgd_step).__name__}")
    read = get_weights or (lambda m: m.get_weights())
    write = set_weights or (lambda m, w: m.set_weights(w))

    def step(
        weights: dict[str, np.ndarray],
        images: np.ndarray,
        labels: np.ndarray,
        lr: float,
        mask_seed: int,
    ) -> tuple[float, dict[str, np.ndarray]]:
        write(model, weights)
        loss = sgd_step(model, images, labels, lr, mask_seed)
        return float(loss), read(model)

    step.__name__ = getattr(sgd_step, "__name__", "step")
    return step


def backend_step_function(name: str, spec: MLPSpec, *, compiled: bool = False) -> StepFunction:
    """Return backend ``name``'s ``MLP`` and ``sgd_step`` as a :class:`StepFunction`.

    With ``compiled``, the backend's ``compiled_sgd_step`` where it declares one
    (torch: ``torch.compile``; tensorflow's and jax's ``sgd_step`` are compiled
    already), so a comparison also checks the compiled program (SPEC S2).

    Raises
    ------
    ValueError, ImportError
        For an unknown backend (E2) or one whose framework is missing (E1).

    """
    from dropout_ref.course.training import step_functions

    steps = step_functions(name)  # E1 / E2 errors come from here
    model = MLP_MODULE.load(name).MLP(
        num_inputs=spec.num_inputs,
        num_outputs=spec.num_outputs,
        num_hiddens1=spec.num_hiddens1,
        num_hiddens2=spec.num_hiddens2,
        dropout1=spec.dropout1,
        dropout2=spec.dropout2,
        weights=init_weights(spec, 0),
    )
    sgd_step = steps.sgd_step
    if compiled and steps.compiled_sgd_step is not None:
        sgd_step = steps.compiled_sgd_step
    step = from_model(model, sgd_step)
    step.__name__ = step.__qualname__ = f"{name}_sgd_step"
    return step


@dataclass(frozen=True)
class CompareConfig:
    """What to compare and how (defaults: the course's lr and batch, SPEC T1).

    Parameters
    ----------
    steps : int
        Number of SGD steps.
    lr : float
        Learning rate.
    batch_size : int
        Minibatch size.
    seed : int
        In ``[0, 2**32)``: seeds the init, the batch order and the mask seeds.
    compiled : bool
        Run each backend's compiled step where it has one (torch's
        ``torch.compile`` step; tensorflow's and jax's steps are always compiled);
        ``False``: torch's eager step.

    """

    steps: int = 100
    lr: float = 0.5
    batch_size: int = 256
    seed: int = 0
    compiled: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        lr = self.lr
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (0 < lr < math.inf):
            raise ValueError(f"lr must be a positive finite number, got {lr!r}")
        _non_negative_int(self.seed, "seed", MASK_SEED_STRIDE)
        if not isinstance(self.compiled, bool):
            raise TypeError(f"compiled must be True or False, got {self.compiled!r}")


@dataclass
class StepRecord:
    """One step of every backend: losses and differences from the reference."""

    step: int
    mask_seed: int
    losses: dict[str, float]
    loss_diffs: dict[str, float]
    weight_diffs: dict[str, float]
    seconds: dict[str, float]
    #: Per backend: whether its updated weights are all finite.
    finite_weights: dict[str, bool] = field(default_factory=dict)

    def diverged(self) -> list[str]:
        """Return the backends whose loss or updated weights are NaN or inf at this step."""
        return [
            name
            for name in self.losses
            if not math.isfinite(self.losses[name]) or not self.finite_weights.get(name, True)
        ]


#: :attr:`Violation.quantity` of a backend whose loss or weights went NaN or inf.
DIVERGED = "diverged"


@dataclass
class Violation:
    """A tolerance exceeded: which backend, step, quantity, value and SPEC bound."""

    backend: str
    step: int
    quantity: str
    value: float
    tolerance: float

    def __str__(self) -> str:
        if self.quantity == DIVERGED:
            return (
                f"M6: {self.backend} diverged at step {self.step}: its loss or updated "
                "weights are NaN or inf (the comparison stops there)"
            )
        return (
            f"M6: {self.backend} {self.quantity} difference {self.value:.3g} at step "
            f"{self.step} exceeds {self.tolerance:g}"
        )


@dataclass
class Comparison:
    """The result of :func:`run_comparison`."""

    backends: list[str]
    config: CompareConfig
    dataset: str
    records: list[StepRecord] = field(default_factory=list)

    @property
    def others(self) -> list[str]:
        """The compared backends other than the reference."""
        return [name for name in self.backends if name != REFERENCE]

    def violations(self) -> list[Violation]:
        """Every tolerance of SPEC M6 exceeded, in step order (empty when the run passes)."""
        found = []
        for record in self.records:
            for name in self.others:
                loss, weights = record.loss_diffs[name], record.weight_diffs[name]
                if record.step == 0:
                    if not loss <= ONE_STEP_TOLERANCE:
                        found.append(Violation(name, 0, "loss", loss, ONE_STEP_TOLERANCE))
                    if not weights <= ONE_STEP_TOLERANCE:
                        found.append(Violation(name, 0, "weight", weights, ONE_STEP_TOLERANCE))
                if not loss <= CURVE_TOLERANCE:
                    found.append(Violation(name, record.step, "loss", loss, CURVE_TOLERANCE))
            for name in record.diverged():
                found.append(Violation(name, record.step, DIVERGED, math.inf, 0.0))
        return found

    @property
    def ok(self) -> bool:
        """Whether every backend is within SPEC M6's tolerances."""
        return not self.violations()

    def summary(self) -> dict[str, dict[str, float]]:
        """Per backend: one-step and largest loss and weight differences, mean seconds per step."""
        result = {}
        for name in self.others:
            first = self.records[0]
            result[name] = {
                "first_step_loss_diff": first.loss_diffs[name],
                "first_step_weight_diff": first.weight_diffs[name],
                "max_loss_diff": max(r.loss_diffs[name] for r in self.records),
                "max_loss_diff_step": max(self.records, key=lambda r: r.loss_diffs[name]).step,
                "max_weight_diff": max(r.weight_diffs[name] for r in self.records),
                # The median: a compiled step's first call includes its compilation.
                "seconds_per_step": float(np.median([r.seconds[name] for r in self.records])),
            }
        return result

    def meta(self) -> dict[str, Any]:
        """Return the settings, seeds and tolerances, for the JSON file."""
        return {
            "dataset": self.dataset,
            "backends": self.backends,
            "reference": REFERENCE,
            "steps": self.config.steps,
            "lr": self.config.lr,
            "batch_size": self.config.batch_size,
            "seed": self.config.seed,
            "compiled": self.config.compiled,
            "mask_seed": "seed * 2**32 + step",
            "one_step_tolerance": ONE_STEP_TOLERANCE,
            "curve_tolerance": CURVE_TOLERANCE,
            "loss_diff": "|L - L_ref| / max(|L_ref|, tiny)",
            "weight_diff": "max over tensors of max|w - w_ref| / max(max|w_ref|, tiny)",
        }

    def to_json(self) -> dict[str, Any]:
        """Everything as one JSON-ready document."""
        return {
            "meta": self.meta(),
            "ok": self.ok,
            "violations": [str(v) for v in self.violations()],
            "summary": self.summary(),
            "steps": [
                {
                    "step": r.step,
                    "mask_seed": r.mask_seed,
                    "loss": r.losses,
                    "loss_diff": r.loss_diffs,
                    "weight_diff": r.weight_diffs,
                }
                for r in self.records
            ],
        }


def run_comparison(
    backends: Sequence[str],
    dataset: Any,
    config: CompareConfig = CompareConfig(),
    *,
    spec: MLPSpec | None = None,
    step_functions: Mapping[str, StepFunction] | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
) -> Comparison:
    """Train every backend from the same weights on the same batches and masks; compare.

    Parameters
    ----------
    backends : sequence of str
        Backends to compare; the reference (numpy) is added first when absent.
    dataset : dropout_ref.course.data.Dataset
        Supplies ``train_images``, ``train_labels``, ``num_inputs``, ``num_classes``.
    config : CompareConfig, optional
        Steps, lr, batch size, seed.
    spec : MLPSpec, optional
        The architecture; by default the course's hidden sizes and rates with
        the data set's input and output sizes.
    step_functions : mapping of str to StepFunction, optional
        Replaces the step of the named backends (tests inject faulty ones).
    on_step : callable, optional
        Called with each :class:`StepRecord` as soon as it is known.

    Returns
    -------
    Comparison

    """
    import time

    names = [REFERENCE, *[b for b in dict.fromkeys(backends) if b != REFERENCE]]
    if spec is None:
        spec = MLPSpec(num_inputs=dataset.num_inputs, num_outputs=dataset.num_classes)
    overrides = dict(step_functions or {})
    steps = {
        name: overrides[name]
        if name in overrides
        else backend_step_function(name, spec, compiled=config.compiled)
        for name in names
    }
    initial = init_weights(spec, config.seed)
    weights = {name: {k: v.copy() for k, v in initial.items()} for name in names}
    result = Comparison(names, config, getattr(dataset, "name", "?"))
    batches = batch_sequence(
        dataset.train_images, dataset.train_labels, config.batch_size, config.steps, config.seed
    )
    for k, (images, labels) in enumerate(batches):
        mask_seed = mask_seed_for_step(config.seed, k)
        losses, seconds = {}, {}
        for name in names:
            start = time.perf_counter()
            loss, updated = steps[name](weights[name], images, labels, config.lr, mask_seed)
            seconds[name] = time.perf_counter() - start
            losses[name] = float(loss)
            # A diverged step (NaN/inf) is a result, reported as an M6 violation below.
            weights[name] = validate_weights(updated, spec, finite=False)
        reference = weights[REFERENCE]
        record = StepRecord(
            step=k,
            mask_seed=mask_seed,
            losses=losses,
            loss_diffs={n: loss_difference(losses[n], losses[REFERENCE]) for n in names},
            weight_diffs={n: weight_difference(weights[n], reference) for n in names},
            seconds=seconds,
            finite_weights={
                n: all(bool(np.isfinite(w).all()) for w in weights[n].values()) for n in names
            },
        )
        result.records.append(record)
        if on_step is not None:
            on_step(record)
        if record.diverged():
            # set_weights refuses non-finite weights: the next step cannot run.
            break
    return result


def differences_csv(comparison: Comparison) -> bytes:
    """Return one CSV row per step and backend: loss, loss_diff, weight_diff."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["step", "mask_seed", "backend", "loss", "loss_diff", "weight_diff"])
    for r in comparison.records:
        for name in comparison.backends:
            writer.writerow(
                [
                    r.step,
                    r.mask_seed,
                    name,
                    repr(r.losses[name]),
                    repr(r.loss_diffs[name]),
                    repr(r.weight_diffs[name]),
                ]
            )
    return buffer.getvalue().encode()


def plot_comparison(comparison: Comparison, title: str = "") -> bytes:
    """Return a PNG: the loss curves of every backend, and their differences from numpy (log)."""
    from dropout_ref.course.png import figure_png, new_figure

    steps = [r.step for r in comparison.records]
    figure = new_figure(figsize=(8, 3.4), dpi=120)
    curves, diffs = figure.subplots(1, 2)
    styles = ("-", "--", "-.", ":")
    for i, name in enumerate(comparison.backends):
        curves.plot(
            steps, [r.losses[name] for r in comparison.records], styles[i % 4], color=f"C{i}",
            label=name,
        )
    curves.set_xlabel("step")
    curves.set_ylabel("training loss (dropout on)")
    curves.legend()
    curves.grid(True, alpha=0.3)
    markers = ("o", "s", "^", "v")
    for i, name in enumerate(comparison.others):
        # Equal losses (difference 0) have no place on a log axis: left out, not clamped.
        points = [(r.step, r.loss_diffs[name]) for r in comparison.records if r.loss_diffs[name]]
        diffs.semilogy(
            [s for s, _ in points], [d for _, d in points], markers[i % 4], ms=3,
            color=f"C{i + 1}", label=f"{name} loss",
        )
        values = [r.weight_diffs[name] for r in comparison.records]
        diffs.semilogy(steps, values, styles[i % 4], color=f"C{i + 1}", label=f"{name} weights")
    diffs.axhline(CURVE_TOLERANCE, color="r", lw=0.8, label="M6 curve tolerance")
    diffs.axhline(ONE_STEP_TOLERANCE, color="r", lw=0.8, ls="--", label="M6 one-step")
    diffs.set_xlabel("step")
    diffs.set_ylabel("relative difference from numpy")
    diffs.legend(fontsize=6)
    diffs.grid(True, alpha=0.3)
    if title:
        figure.suptitle(title, fontsize=9)
    return figure_png(figure)


def write_comparison(comparison: Comparison, out_dir: str | Path) -> dict[str, Path]:
    """Write ``compare.json``, ``compare.csv`` and ``loss_curves.png`` into ``out_dir``, atomically.

    All three are rendered in memory before any file is written.
    """
    from dropout_ref.course.training import atomic_write_bytes

    out = Path(out_dir)
    documents = {
        "json": ("compare.json", (json.dumps(comparison.to_json(), indent=2) + "\n").encode()),
        "csv": ("compare.csv", differences_csv(comparison)),
        "png": (
            "loss_curves.png",
            plot_comparison(comparison, f"{', '.join(comparison.backends)} on "
                            f"{comparison.dataset}, seed {comparison.config.seed}"),
        ),
    }
    return {key: atomic_write_bytes(out / name, data) for key, (name, data) in documents.items()}
