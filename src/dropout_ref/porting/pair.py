"""Run any two models side by side, step by step, with the same dropout masks (SPEC P8).

A port of a model from one framework to another (or a refactoring within one) is
right in training mode when, from the same weights and batches, both models drop
the same units and so compute the same losses and updates. Inside
``dropout_ref.<backend>.portable_masks(seed)`` the j-th training-mode dropout of
either framework draws the mask of offset ``j * 2**40`` (P8); :func:`run_pair`
runs each model's unmodified training step inside its framework's context with
the same seed, measures the differences, and keeps both site tables (``ctx.sites``)
so that a model whose dropouts do not line up is named site by site
(:mod:`dropout_ref.porting.site_tables`).

Seeds
    Step ``k`` (0-based) of run ``seed`` uses ``mask_seed_for_step(seed, k) =
    seed * 2**32 + k``, the rule of ``dropout-ref compare``.

Weights
    Both models start from A's weights: B's are A's, through the two models'
    name maps (:class:`PortModel`, :mod:`dropout_ref.porting.pair_weights`). After
    each step both are read back and compared over the shared names, per tensor
    ``max|w_B - w_A| / max(max|w_A|, TINY)`` (the normwise measure of
    :mod:`dropout_ref.porting.compare`: float32 rounding of a product is bounded
    relative to its terms, so an element-wise relative error would be dominated
    by weights near zero); the largest absolute difference is reported beside it.

Tolerances (:data:`LOSS_TOLERANCE`, :data:`WEIGHT_TOLERANCE`)
    The loss ``|L_B - L_A| / max(|L_A|, TINY)`` must stay within ``1e-5``: a mean
    loss in float32 computed in another order (other matmul blocking, another
    reduction tree) differs by a few dozen ulps (float32's ulp is ``1.2e-7``), not
    by the ``1e-3`` or more of a dropped unit that the other model keeps. The
    weights within ``1e-4``: an update passes through the backward pass (more
    operations, softmax and layer-norm gradients with cancellation), its rounding
    error relative to the tensor's scale is about ten times the loss's, while a
    mask difference changes gradients by O(1) relative amounts. Both are
    arguments; a long run, whose rounding differences grow step by step, may need
    wider ones.
"""

from __future__ import annotations

import math
import numbers
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dropout_ref.core.sites import Site
from dropout_ref.porting.compare import TINY, mask_seed_for_step
from dropout_ref.porting.pair_weights import (
    GetWeights,
    NameMap,
    SetWeights,
    default_get_weights,
    default_set_weights,
    from_shared,
    to_shared,
    weight_differences,
)
from dropout_ref.porting.site_tables import SiteDifference, first_site_difference

__all__ = [
    "LOSS_TOLERANCE",
    "WEIGHT_TOLERANCE",
    "PairConfig",
    "PairRun",
    "PairStep",
    "PortModel",
    "detect_port_backend",
    "run_pair",
]

#: Default largest relative loss difference (see the module docstring).
LOSS_TOLERANCE = 1e-5

#: Default largest normwise relative weight difference (see the module docstring).
WEIGHT_TOLERANCE = 1e-4

#: The backends with a ``portable_masks`` context.
BACKENDS = ("torch", "tensorflow", "jax", "mxnet")

Step = Callable[[Any, Any, float], Any]


@dataclass
class PortModel:
    """One model of a pair and how to drive it.

    Parameters
    ----------
    model : object
        The framework model (torch ``nn.Module``, Keras 3 or tf_keras model, Flax NNX
        module, Hugging Face model of any of these, Gluon block).
    step : callable
        ``step(model, batch, lr) -> loss``: one training step of your own code, in the
        framework's training mode, updating the model in place and returning the loss
        before the update (a float or a 0-d tensor). ``batch`` is what the pair's
        batches hold (NumPy arrays: convert them in ``step``).
    get_weights : callable, optional
        ``get_weights(model) -> dict[str, array]``; default: torch's
        ``named_parameters``, Keras' ``weights`` by path, an NNX module's ``nnx.Param``
        state or a Flax ``params`` tree, with ``.``-joined paths.
    set_weights : callable, optional
        ``set_weights(model, dict)`` with this model's own names; default: the inverse
        of the default ``get_weights``.
    backend : {"torch", "tensorflow", "jax", "mxnet"}, optional
        Which ``portable_masks`` the step runs in; by default from the model's type.
    name_map : mapping or callable, optional
        This model's weight name -> the shared name, or ``(shared name, axes)`` where
        ``numpy.transpose(w, axes)`` is the shared layout, or ``None`` to leave a
        weight out. Names a mapping does not list keep their own name.
    label : str, optional
        How reports call the model (default: its class and backend).
    batches : sequence or callable, optional
        The batches ``batches[k]`` (or ``batches(k)``) of step ``k``, when the pair's
        call does not give them (the CLI takes them from the first model).

    """

    model: Any
    step: Step
    get_weights: GetWeights | None = None
    set_weights: SetWeights | None = None
    backend: str | None = None
    name_map: NameMap | None = None
    label: str | None = None
    batches: Sequence[Any] | Callable[[int], Any] | None = None

    def __post_init__(self) -> None:
        if not callable(self.step):
            raise TypeError(f"PortModel step must be callable, got {type(self.step).__name__}")
        for name in ("get_weights", "set_weights"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise TypeError(f"PortModel {name} must be callable, got {type(value).__name__}")
        if self.backend is None:
            self.backend = detect_port_backend(self.model)
        if self.backend not in BACKENDS:
            raise ValueError(
                f"PortModel backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
                + ("" if self.backend is not None else
                   f" (cannot tell the framework of {type(self.model).__name__}: pass backend=)")
            )
        if self.label is None:
            self.label = f"{type(self.model).__name__} ({self.backend})"
        if self.get_weights is None:
            self.get_weights = default_get_weights(self.backend)
        if self.set_weights is None:
            self.set_weights = default_set_weights(self.backend)


def detect_port_backend(model: Any) -> str | None:
    """Return the backend of a framework model, ``None`` if none matches.

    The course's detection first (``torch.nn.Module``, ``keras.Model``, Gluon,
    Flax NNX), then the model's class hierarchy: a class defined in ``tf_keras`` or
    ``tensorflow`` (Hugging Face's ``TF*`` models) is TensorFlow's, one in ``flax``
    or Hugging Face's ``modeling_flax_utils`` is JAX's. Nothing is imported here.
    """
    from dropout_ref.porting.user_model import detect_backend

    found = detect_backend(model)
    if found is not None:
        return found
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(model, tf.Module):
        return "tensorflow"
    for cls in type(model).__mro__:
        module = cls.__module__ or ""
        root = module.split(".")[0]
        if root in ("tf_keras", "tensorflow", "keras") or module.startswith(
            "transformers.modeling_tf_"
        ):
            return "tensorflow"
        if root in ("flax", "jax") or module.startswith("transformers.modeling_flax_"):
            return "jax"
    return None


# --- the run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairConfig:
    """Steps, seed, learning rate and tolerances of a pair run.

    Parameters
    ----------
    steps : int
        Number of training steps (positive).
    seed : int
        In ``[0, 2**32)``: step ``k`` draws its masks with ``seed * 2**32 + k``.
    lr : float
        Passed to both steps.
    loss_tolerance, weight_tolerance : float
        Largest relative loss and weight differences (module docstring).

    """

    steps: int = 3
    seed: int = 0
    lr: float = 0.1
    loss_tolerance: float = LOSS_TOLERANCE
    weight_tolerance: float = WEIGHT_TOLERANCE

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, numbers.Integral) or (
            self.steps <= 0
        ):
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")
        mask_seed_for_step(self.seed, 0)  # seed in [0, 2**32), with a message naming it
        for name in ("lr", "loss_tolerance", "weight_tolerance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
                0 <= value < math.inf
            ):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


@dataclass
class PairStep:
    """One step of both models: losses, differences, site tables."""

    step: int
    mask_seed: int
    loss_a: float
    loss_b: float
    loss_diff: float
    weight_diff: float
    weight_abs_diff: float
    worst_weight: str | None
    sites_a: list[Site]
    sites_b: list[Site]
    site_difference: SiteDifference | None
    seconds_a: float
    seconds_b: float

    def finite(self) -> bool:
        """Whether both losses and the weight difference are finite."""
        return all(math.isfinite(v) for v in (self.loss_a, self.loss_b, self.weight_diff))


@dataclass
class PairRun:
    """The result of :func:`run_pair`."""

    label_a: str
    label_b: str
    backend_a: str
    backend_b: str
    config: PairConfig
    records: list[PairStep] = field(default_factory=list)

    def diverges(self, record: PairStep) -> bool:
        """Whether a step is past a tolerance (or not finite)."""
        return not (
            record.loss_diff <= self.config.loss_tolerance
            and record.weight_diff <= self.config.weight_tolerance
        )

    @property
    def first_divergent_step(self) -> int | None:
        """The first step past a tolerance, ``None`` if none."""
        return next((r.step for r in self.records if self.diverges(r)), None)

    @property
    def site_difference(self) -> tuple[int, SiteDifference] | None:
        """The first step whose site tables differ and its first differing site."""
        for record in self.records:
            if record.site_difference is not None:
                return record.step, record.site_difference
        return None

    def violations(self) -> list[str]:
        """One line per failure, citing P8 (empty when the two models agree)."""
        found = []
        sites = self.site_difference
        if sites is not None:
            step, difference = sites
            found.append(
                f"P8: the site tables differ at step {step}, {difference.message}: the two "
                f"models do not drop the same units ({', '.join(difference.kinds)})"
            )
        k = self.first_divergent_step
        if k is not None:
            r = self.records[k]
            cfg = self.config
            if not r.finite():
                found.append(f"P8: step {k}: a loss or a weight is NaN or inf")
            if not r.loss_diff <= cfg.loss_tolerance:
                found.append(
                    f"P8: the losses first differ at step {k}: relative difference "
                    f"{r.loss_diff:.3g} > {cfg.loss_tolerance:g} ({r.loss_a!r} vs {r.loss_b!r})"
                )
            if not r.weight_diff <= cfg.weight_tolerance:
                found.append(
                    f"P8: the weights first differ at step {k}: relative difference "
                    f"{r.weight_diff:.3g} > {cfg.weight_tolerance:g} in {r.worst_weight!r}"
                )
        return found

    def warnings(self) -> list[str]:
        """Things that make a pass weaker than it looks."""
        if self.records and not any(r.sites_a or r.sites_b for r in self.records):
            return [
                "P8: neither model numbered a dropout site: their steps ran without "
                "training-mode dropout (eval mode? rates of a model without dropout?)"
            ]
        return []

    @property
    def ok(self) -> bool:
        """Whether the two models agree at every step (P8)."""
        return not self.violations()


def _batch(batches: Any, k: int) -> Any:
    if callable(batches):
        return batches(k)
    try:
        return batches[k]
    except IndexError:
        raise ValueError(f"batches has {len(batches)} batches, step {k} needs one more") from None


def _portable_masks(backend: str) -> Callable[[int], Any]:
    from dropout_ref.core.registry import get_backend

    return get_backend(backend).module.portable_masks


def _run_step(port: PortModel, mask_seed: int, batch: Any, lr: float) -> tuple[float, list, float]:
    start = time.perf_counter()
    with _portable_masks(port.backend)(mask_seed) as ctx:
        loss = port.step(port.model, batch, lr)
    seconds = time.perf_counter() - start
    try:
        value = float(np.asarray(loss))
    except (TypeError, ValueError):
        raise TypeError(
            f"the step of {port.label} must return the loss (a float or a 0-d tensor), "
            f"got {type(loss).__name__}"
        ) from None
    return value, list(ctx.sites), seconds


def run_pair(
    a: PortModel,
    b: PortModel,
    config: PairConfig = PairConfig(),
    *,
    batches: Sequence[Any] | Callable[[int], Any] | None = None,
    on_step: Callable[[PairStep], None] | None = None,
) -> PairRun:
    """Train two models from A's weights on the same batches and masks; compare (SPEC P8).

    Parameters
    ----------
    a, b : PortModel
        The reference and the port (any two frameworks, or the same one).
    config : PairConfig, optional
        Steps, seed, lr and tolerances.
    batches : sequence or callable, optional
        ``batches[k]`` or ``batches(k)``: step ``k``'s batch, passed to both steps;
        default: ``a.batches``, else ``b.batches``.
    on_step : callable, optional
        Called with each :class:`PairStep` as soon as it is known.

    Returns
    -------
    PairRun

    Raises
    ------
    TypeError
        If ``a`` or ``b`` is not a :class:`PortModel`, or a step returns no loss.
    ValueError
        If no batches are given, or the weights of the two models do not map onto
        each other (naming the weight).

    """
    for name, port in (("a", a), ("b", b)):
        if not isinstance(port, PortModel):
            raise TypeError(f"{name} must be a PortModel, got {type(port).__name__}")
    batches = batches if batches is not None else (a.batches if a.batches is not None
                                                   else b.batches)
    if batches is None:
        raise ValueError("batches is None and neither model has batches: give batches=")
    label_a, label_b = a.label, b.label
    if label_a == label_b:
        label_a, label_b = f"A: {label_a}", f"B: {label_b}"
    own_b = dict(b.get_weights(b.model))
    shared_a = to_shared(a, a.get_weights(a.model))
    b.set_weights(b.model, from_shared(b, shared_a, own_b, label_a))
    compared = sorted(to_shared(b, own_b).keys() & shared_a.keys())
    result = PairRun(label_a, label_b, a.backend, b.backend, config)
    for k in range(config.steps):
        mask_seed = mask_seed_for_step(config.seed, k)
        batch = _batch(batches, k)
        loss_a, sites_a, seconds_a = _run_step(a, mask_seed, batch, config.lr)
        loss_b, sites_b, seconds_b = _run_step(b, mask_seed, batch, config.lr)
        wa = to_shared(a, a.get_weights(a.model))
        wb = to_shared(b, b.get_weights(b.model))
        relative, absolute, worst = weight_differences(
            {n: wa[n] for n in compared}, {n: wb[n] for n in compared}
        )
        loss_diff = (
            abs(loss_b - loss_a) / max(abs(loss_a), TINY)
            if math.isfinite(loss_a) and math.isfinite(loss_b) else math.inf
        )
        record = PairStep(
            step=k, mask_seed=mask_seed, loss_a=loss_a, loss_b=loss_b, loss_diff=loss_diff,
            weight_diff=relative, weight_abs_diff=absolute, worst_weight=worst,
            sites_a=sites_a, sites_b=sites_b,
            site_difference=first_site_difference(sites_a, sites_b, (label_a, label_b)),
            seconds_a=seconds_a, seconds_b=seconds_b,
        )
        result.records.append(record)
        if on_step is not None:
            on_step(record)
        if not record.finite():
            break
    return result


def as_port_model(obj: Any, argument: str = "model") -> PortModel:
    """Return ``obj`` if it is a :class:`PortModel`, else a clear ``TypeError``."""
    if isinstance(obj, PortModel):
        return obj
    raise TypeError(
        f"{argument} must give a dropout_ref.porting.pair.PortModel(model, step, ...), got "
        f"{type(obj).__name__}"
    )



def load_port_model(target: str, argument: str = "--user-model") -> PortModel:
    """Import ``module:factory`` or ``path/to/file.py:factory``, call it, return its PortModel.

    Raises
    ------
    ValueError, ImportError, AttributeError
        If ``target`` is malformed or cannot be imported (the message names ``argument``).
    TypeError
        If the factory does not return a :class:`PortModel`.

    """
    from dropout_ref.porting.user_model import import_factory

    factory = import_factory(target, argument)
    port = as_port_model(factory(), f"{argument} {target}")
    if port.label == f"{type(port.model).__name__} ({port.backend})":
        port.label = f"{target} ({port.backend})"
    return port
