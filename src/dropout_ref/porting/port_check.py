"""Check a port of the course's dropout MLP against the reference, step by step (SPEC M6).

The contract: a *step function*
--------------------------------
::

    step(weights, images, labels, lr, mask_seed) -> (loss, new_weights)

``weights``
    ``dict[str, numpy.ndarray]`` in the neutral layout of
    :mod:`dropout_ref.models.mlp_spec` (``W1 (inputs, 256)``, ``b1 (256,)``, ``W2``,
    ``b2``, ``W3``, ``b3``; float32; ``H = X @ W + b``). Load them into your
    model; the dict is a copy, modifying it is harmless.
``images``, ``labels``
    float32 ``(n, num_inputs)`` and int64 ``(n,)`` NumPy arrays: one batch.
``lr``
    The SGD learning rate (0.5).
``mask_seed``
    The step's portable-mask seed: your two dropout layers must draw their
    masks with ``dropout_layer(H_k, p_k, seed=mask_seed, offset=DROPOUT_OFFSETS[k])``
    (``from dropout_ref.<backend> import dropout_layer``; offsets ``0`` and
    ``2**40``), the only way two frameworks can drop the same units (SPEC P2).
the result
    ``loss``: the batch's mean softmax cross-entropy *before* the update
    (a float); ``new_weights``: the weights after one SGD step, same layout.

An unmodified model (the course's ``nn.Sequential`` with ``nn.Dropout``, a Keras
``Sequential``, a Gluon or Flax NNX model) needs no portable dropout of its own:
pass it to :func:`check_port` directly, or wrap it with :func:`from_user_model`
(your own training step, weight converters); its training step then runs inside
``dropout_ref.<backend>.portable_masks(mask_seed)``, which gives the framework's
j-th training-mode dropout the masks of offset ``j * 2**40`` (SPEC P8), those of
the reference's hidden layers.

Wrap a framework model with :func:`from_model` (give it your
``sgd_step(model, images, labels, lr, mask_seed) -> float`` and, where your
model's parameters are not in the neutral layout, ``get_weights`` /
``set_weights`` converters); :func:`from_backend` gives dropout_ref's own
backends in the same form.

How the check works
-------------------
:func:`check_port` feeds your step and the reference backend's step (numpy by
default) the same weights, batch and mask seed, for ``steps`` steps of the
batch sequence of ``dropout-ref compare`` (:mod:`dropout_ref.porting.compare`: init
``init_weights(spec, seed)``, shuffled batches, ``mask_seed = seed * 2**32 + step``).
Each step starts from the *reference's* weights, so every step is the
one-step test of SPEC M6 and an error cannot hide behind earlier ones: the
loss must agree within ``1e-5`` relative and the updated weights within
``1e-5`` (largest ``max|Δw| / max|w|`` over the tensors; see
:mod:`dropout_ref.porting.compare` for why that measure).

At the first step that fails, a diagnosis runs your step on *probe weights*
(larger than the init, so that every layer matters to the loss) and names the
most specific clause it can prove:

1. P1/P2: the same call twice gives two losses: masks come from a global
   generator (native dropout), not from ``mask_seed``.
2. M6: the loss is the *sum* over the batch (n times the mean).
3. M4: with ``W3 = 0`` and ``b3 = c`` the logits must be ``c`` whatever the
   hidden layers do; a different loss means something acts after the output
   layer (dropout applied to the logits).
4. D5, D4, P4, M1, M4: the loss equals the reference's with one known mistake:
   kept units scaled by ``1 - p`` or not rescaled (D5), the keep probability
   passed as the drop rate (D4), both layers at offset 0 (P4), the two rates
   swapped (M1), no dropout in training (M4).
5. M6: the loss agrees but the update does not: the update is ``c`` times the
   reference's (``c = 0``: no update; ``-1``: ascent; ``n``: summed loss or
   lr times n), or the gradients of named tensors differ.
6. M6: otherwise, the loss differs and none of the above explains it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dropout_ref.models.mlp_spec import DROPOUT_OFFSETS, WEIGHT_NAMES, MLPSpec, init_weights
from dropout_ref.models.mlp_spec import validate_weights as _validate_weights
from dropout_ref.porting.compare import (
    ONE_STEP_TOLERANCE,
    REFERENCE,
    StepFunction,
    backend_step_function,
    batch_sequence,
    from_model,
    loss_difference,
    mask_seed_for_step,
    weight_differences,
)

__all__ = [
    "Divergence",
    "PortReport",
    "StepCheck",
    "check_port",
    "from_backend",
    "from_model",
    "from_user_model",
]


@dataclass(frozen=True)
class Divergence:
    """Where a port first differs from the reference, and why.

    Attributes
    ----------
    step : int
        0-based step of the batch sequence.
    clause : str
        The SPEC clause the diagnosis points at (``"M4"``, ``"D5"``, ``"M6"``, ...).
    message : str
        What differs and what to fix.

    """

    step: int
    clause: str
    message: str

    def __str__(self) -> str:
        return f"step {self.step}: SPEC {self.clause}: {self.message}"


@dataclass(frozen=True)
class StepCheck:
    """One checked step: the port's and the reference's loss and their differences."""

    step: int
    mask_seed: int
    loss: float
    reference_loss: float
    loss_diff: float
    weight_diffs: dict[str, float]

    @property
    def weight_diff(self) -> float:
        """The largest per-tensor weight difference."""
        return max(self.weight_diffs.values())

    @property
    def ok(self) -> bool:
        """Whether this step is within SPEC M6's one-step tolerance."""
        return self.loss_diff <= ONE_STEP_TOLERANCE and self.weight_diff <= ONE_STEP_TOLERANCE


@dataclass
class PortReport:
    """The result of :func:`check_port`; ``str(report)`` is a readable summary."""

    name: str
    reference: str
    steps_requested: int
    checks: list[StepCheck] = field(default_factory=list)
    first_divergence: Divergence | None = None

    @property
    def ok(self) -> bool:
        """Whether every requested step agreed with the reference."""
        return self.first_divergence is None and len(self.checks) == self.steps_requested

    def summary(self) -> str:
        """Return a few lines: verdict, largest differences, the divergence if any."""
        lines = [
            f"port check of {self.name} against {self.reference}: "
            f"{'PASS' if self.ok else 'FAIL'} ({len(self.checks)} of {self.steps_requested} "
            "steps checked)"
        ]
        if self.checks:
            worst_loss = max(c.loss_diff for c in self.checks)
            worst_weights = max(c.weight_diff for c in self.checks)
            lines.append(
                f"  largest relative differences: loss {worst_loss:.2e}, weights "
                f"{worst_weights:.2e} (SPEC M6 one-step tolerance {ONE_STEP_TOLERANCE:g})"
            )
        if self.first_divergence is not None:
            lines.append(f"  first divergence: {self.first_divergence}")
        return "\n".join(lines)

    __str__ = summary


# --- adapters ---------------------------------------------------------------------------------


def from_backend(name: str, spec: MLPSpec | None = None) -> StepFunction:
    """Return dropout_ref backend ``name``'s MLP and ``sgd_step`` as a step function."""
    return backend_step_function(name, spec or MLPSpec())


def from_user_model(model: Any, train_step: Any = None, **kwargs: Any) -> StepFunction:
    """Drive an unmodified model inside ``portable_masks`` (see ``course.user_model``)."""
    from dropout_ref.porting.user_model import from_user_model as build

    return build(model, train_step, **kwargs)


# --- the check ------------------------------------------------------------------------------


def _call(step_fn: StepFunction, weights, images, labels, lr, mask_seed, spec: MLPSpec):
    """Call a step function on copies; check what it returns against the contract."""
    result = step_fn(
        {k: v.copy() for k, v in weights.items()}, images.copy(), labels.copy(), lr, mask_seed
    )
    if not (isinstance(result, tuple) and len(result) == 2):
        raise TypeError(
            "the step function must return (loss, new_weights), got "
            f"{type(result).__name__}; see dropout_ref.porting.port_check for the contract"
        )
    loss, new_weights = result
    if isinstance(loss, bool) or not isinstance(loss, (numbers.Real, np.ndarray)):
        raise TypeError(f"the step function's loss must be a float, got {type(loss).__name__}")
    try:
        checked = _validate_weights(new_weights, spec)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"the step function's new_weights: {exc}") from exc
    return float(loss), checked


def _resolve_dataset(dataset: Any) -> Any:
    if isinstance(dataset, str):
        from dropout_ref.course.data import load_dataset

        return load_dataset(dataset)
    for attr in ("train_images", "train_labels"):
        if not hasattr(dataset, attr):
            raise TypeError(
                f"dataset must be a name ('digits', 'fashion-mnist') or a Dataset, got "
                f"{type(dataset).__name__} without {attr!r}"
            )
    return dataset


def check_port(
    step_fn: StepFunction,
    *,
    reference: str = REFERENCE,
    dataset: Any = "digits",
    steps: int = 10,
    lr: float = 0.5,
    batch_size: int = 256,
    seed: int = 0,
    spec: MLPSpec | None = None,
    name: str | None = None,
) -> PortReport:
    """Compare ``step_fn`` with the reference step by step; diagnose the first divergence.

    Parameters
    ----------
    step_fn : StepFunction or model
        Your step (the contract is in the module docstring), or an unmodified
        framework model of the course MLP (or a ``UserModel``), which
        :func:`from_user_model` drives inside ``portable_masks``.
    reference : str, optional
        The dropout_ref backend to compare with (numpy, the oracle, by default).
    dataset : str or dropout_ref.course.data.Dataset, optional
        Where the batches come from; ``"digits"`` works offline.
    steps : int, optional
        Number of steps to check.
    lr, batch_size, seed : optional
        Learning rate, batch size, and the seed of init, batches and mask seeds.
    spec : MLPSpec, optional
        The architecture; by default the course's hidden sizes and rates with
        the data set's input and output sizes.
    name : str, optional
        How the report calls the port (default: the function's name).

    Returns
    -------
    PortReport
        ``.ok``, ``.first_divergence`` (step, clause, message), ``.checks``, ``.summary()``.

    Raises
    ------
    TypeError, ValueError
        If ``step_fn`` is not callable or returns something outside the contract.

    """
    from dropout_ref.porting.user_model import UserModel, detect_backend, resolve_user_model

    if isinstance(step_fn, UserModel) or detect_backend(step_fn) is not None:
        step_fn = resolve_user_model(step_fn)
    if not callable(step_fn):
        raise TypeError(f"step_fn must be callable, got {type(step_fn).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    data = _resolve_dataset(dataset)
    if spec is None:
        spec = MLPSpec(
            num_inputs=int(data.train_images.shape[1]),
            num_outputs=int(
                getattr(data, "num_classes", None) or int(np.max(data.train_labels)) + 1
            ),
        )
    reference_fn = backend_step_function(reference, spec)
    report = PortReport(name or getattr(step_fn, "__name__", "step"), reference, steps)
    weights = init_weights(spec, seed)
    batches = batch_sequence(data.train_images, data.train_labels, batch_size, steps, seed)
    for k, (images, labels) in enumerate(batches):
        images = np.ascontiguousarray(images, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.int64)
        mask_seed = mask_seed_for_step(seed, k)
        loss, new_weights = _call(step_fn, weights, images, labels, lr, mask_seed, spec)
        ref_loss, ref_weights = _call(reference_fn, weights, images, labels, lr, mask_seed, spec)
        check = StepCheck(
            step=k,
            mask_seed=mask_seed,
            loss=loss,
            reference_loss=ref_loss,
            loss_diff=loss_difference(loss, ref_loss),
            weight_diffs=weight_differences(new_weights, ref_weights),
        )
        report.checks.append(check)
        if not check.ok:
            clause, message = _diagnose(
                step_fn, reference_fn, check, images, labels, lr, mask_seed, spec
            )
            report.first_divergence = Divergence(k, clause, message)
            break
        weights = ref_weights
    return report


# --- diagnosis ---------------------------------------------------------------------------------


def probe_weights(spec: MLPSpec, seed: int = 12345) -> dict[str, np.ndarray]:
    """Weights with O(1) activations (He-scaled, non-zero biases), so every layer moves the loss."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in spec.weight_shapes().items():
        fan_in = shape[0] if name.startswith("W") else 1
        std = math.sqrt(2.0 / fan_in) if name.startswith("W") else 0.1
        weights[name] = rng.normal(0.0, std, size=shape).astype(np.float32)
    return weights


def _cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    from dropout_ref.core.registry import get_backend

    get_backend("numpy")
    from dropout_ref.course.numpy.training import softmax_cross_entropy

    return softmax_cross_entropy(logits.astype(np.float32), labels)[0]


def _variant_loss(weights, images, labels, spec: MLPSpec, mask_seed: int, variant: str) -> float:
    """Return the reference forward pass's loss with one known mistake (float32, numpy)."""
    from dropout_ref.core.registry import get_backend

    dropout_layer = get_backend("numpy").dropout_layer
    rates = spec.rates[::-1] if variant == "swapped_rates" else spec.rates

    def drop(H: np.ndarray, k: int) -> np.ndarray:
        p = rates[k]
        offset = 0 if variant == "same_offset" else DROPOUT_OFFSETS[k]
        if variant == "no_dropout":
            return H
        if variant == "keep_as_rate":
            return dropout_layer(H, 1.0 - p, seed=mask_seed, offset=offset)
        kept = dropout_layer(np.ones_like(H), p, seed=mask_seed, offset=offset) != 0
        if variant == "scale_keep":
            return np.where(kept, H * np.float32(1.0 - p), np.float32(0))
        if variant == "no_scale":
            return np.where(kept, H, np.float32(0))
        return dropout_layer(H, p, seed=mask_seed, offset=offset)

    w = weights
    H1 = drop(np.maximum(images @ w["W1"] + w["b1"], np.float32(0)), 0)
    H2 = drop(np.maximum(H1 @ w["W2"] + w["b2"], np.float32(0)), 1)
    return _cross_entropy(H2 @ w["W3"] + w["b3"], labels)


#: Known mistakes: variant of :func:`_variant_loss` -> (clause, message).
KNOWN_MISTAKES: dict[str, tuple[str, str]] = {
    "scale_keep": (
        "D5",
        "kept units are multiplied by (1 - p); inverted dropout divides them by (1 - p)",
    ),
    "no_scale": ("D5", "kept units are not rescaled; inverted dropout divides them by (1 - p)"),
    "keep_as_rate": (
        "D4",
        "the keep probability 1 - p is passed as the rate; dropout_layer's rate is the "
        "probability of DROPPING a unit",
    ),
    "same_offset": (
        "P4",
        f"both dropout layers draw with offset 0; layer k must use offset=DROPOUT_OFFSETS[k] "
        f"= {DROPOUT_OFFSETS} (dropout_ref.models.mlp_spec), or the two masks are correlated",
    ),
    "swapped_rates": (
        "M1",
        "the rates are swapped: dropout 0.2 belongs after the first hidden ReLU, 0.5 after "
        "the second",
    ),
    "no_dropout": ("M4", "no dropout in training: apply dropout_layer after each hidden ReLU"),
}


def _close(a: float, b: float) -> bool:
    return loss_difference(a, b) <= ONE_STEP_TOLERANCE


def _diagnose(
    step_fn: StepFunction,
    reference_fn: StepFunction,
    check: StepCheck,
    images: np.ndarray,
    labels: np.ndarray,
    lr: float,
    mask_seed: int,
    spec: MLPSpec,
) -> tuple[str, str]:
    probe = probe_weights(spec)
    loss, new = _call(step_fn, probe, images, labels, lr, mask_seed, spec)
    again, _ = _call(step_fn, probe, images, labels, lr, mask_seed, spec)
    if not _close(loss, again):
        return (
            "P1",
            f"the same weights, batch and mask_seed gave two losses ({loss:.7g}, {again:.7g}): "
            "the masks do not come from mask_seed (native dropout or a global generator?). "
            "Draw them with dropout_layer(H_k, p_k, seed=mask_seed, "
            "offset=DROPOUT_OFFSETS[k]) so they match every backend (SPEC P1, P2)",
        )

    c = np.linspace(-2.0, 2.0, spec.num_outputs, dtype=np.float32)
    pinned = {**probe, "W3": np.zeros_like(probe["W3"]), "b3": c}
    pinned_loss, _ = _call(step_fn, pinned, images, labels, lr, mask_seed, spec)
    expected = _cross_entropy(np.broadcast_to(c, (len(labels), len(c))), labels)
    if not _close(pinned_loss, expected):
        if _close(pinned_loss, expected * len(labels)):
            return (
                "M6",
                f"the loss is the SUM over the batch ({pinned_loss:.6g} = {len(labels)} x "
                f"{expected:.6g}); SPEC M6 uses the mean softmax cross-entropy",
            )
        return (
            "M4",
            f"with W3 = 0 and b3 = c every logit row must be c, whatever the hidden layers "
            f"do, so the loss must be {expected:.7g}; yours is {pinned_loss:.7g}: something "
            "changes the logits after the output layer (dropout applied after the output "
            "layer?). Dropout belongs after each hidden ReLU and nowhere else",
        )

    ref_loss, ref_new = _call(reference_fn, probe, images, labels, lr, mask_seed, spec)
    if not _close(loss, ref_loss):
        for variant, (clause, message) in KNOWN_MISTAKES.items():
            if _close(loss, _variant_loss(probe, images, labels, spec, mask_seed, variant)):
                return clause, f"{message} (loss {loss:.7g}, reference {ref_loss:.7g})"
        return (
            "M6",
            f"the loss differs from the reference (relative {check.loss_diff:.2e} at this "
            f"step; {loss:.7g} vs {ref_loss:.7g} on probe weights) and no known mistake "
            "explains it: check the architecture (M1), the masks (P2: dropout_layer(H_k, "
            "p_k, seed=mask_seed, offset=DROPOUT_OFFSETS[k])) and the loss (mean softmax "
            "cross-entropy)",
        )
    return "M6", _update_message(probe, new, ref_new, len(labels), check)


def _update_message(probe, new, ref_new, batch: int, check: StepCheck) -> str:
    """Describe how the port's update differs from the reference's (loss already agrees)."""
    ours = {n: (new[n] - probe[n]).astype(np.float64).ravel() for n in WEIGHT_NAMES}
    theirs = {n: (ref_new[n] - probe[n]).astype(np.float64).ravel() for n in WEIGHT_NAMES}
    dot = sum(float(ours[n] @ theirs[n]) for n in WEIGHT_NAMES)
    norm = sum(float(theirs[n] @ theirs[n]) for n in WEIGHT_NAMES)
    factor = dot / norm if norm > 0 else math.nan
    residual = math.sqrt(
        sum(float(np.sum((ours[n] - factor * theirs[n]) ** 2)) for n in WEIGHT_NAMES) / norm
    ) if norm > 0 else math.inf
    prefix = (
        f"the loss agrees but the updated weights do not (relative {check.weight_diff:.2e} "
        "at this step): "
    )
    if residual < 1e-3:
        if abs(factor) < 1e-3:
            return prefix + "the weights are not updated (w - lr * grad)"
        if abs(factor + 1) < 1e-3:
            return prefix + "the weights move UP the gradient (w + lr * grad, not w - lr * grad)"
        if abs(factor - batch) < 1e-3 * batch:
            return prefix + (
                f"the update is {batch} (the batch size) times the reference's: the gradient "
                "of the summed loss, or lr multiplied by the batch size"
            )
        return prefix + f"the update is {factor:.6g} times the reference's (lr or loss scale?)"
    differing = [
        n for n in WEIGHT_NAMES
        if np.abs(ours[n] - theirs[n]).max() > ONE_STEP_TOLERANCE * max(np.abs(probe[n]).max(), 1)
    ]
    return prefix + (
        f"the updates of {', '.join(differing) or 'some tensors'} differ: check the gradient "
        "through dropout (D8: the forward pass's mask, scaled by 1/(1 - p)) and the SGD update "
        "w - lr * grad of every tensor"
    )
