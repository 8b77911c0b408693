"""The course MLP, framework-neutral: sizes, rates, weight layout and init (SPEC M1, M4, M5).

Every backend's ``MLP`` is built from an :class:`MLPSpec` and exchanges its
weights as a ``dict[str, numpy.ndarray]`` in the layout described here, so
one set of weights runs everywhere:

====  ===========================  ==========================
name  shape                        role
====  ===========================  ==========================
W1    (num_inputs, num_hiddens1)   ``H1 = relu(X @ W1 + b1)``
b1    (num_hiddens1,)
W2    (num_hiddens1, num_hiddens2) ``H2 = relu(H1 @ W2 + b2)``
b2    (num_hiddens2,)
W3    (num_hiddens2, num_outputs)  ``logits = H2 @ W3 + b3``
b3    (num_outputs,)
====  ===========================  ==========================

All arrays are float32, in the course's layout ``H = X @ W + b`` (not
PyTorch's transposed ``nn.Linear`` layout).

Portable masks: in training, hidden dropout layer ``k`` (0 or 1) calls
``dropout_layer(H_k, rate_k, seed=mask_seed, offset=DROPOUT_OFFSETS[k])``, so
for one ``mask_seed`` the two layers draw from disjoint Philox counter ranges
(a batch would need 2**40 hidden units to overlap), the same in every backend.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from dropout_ref.core.sites import SITE_STRIDE
from dropout_ref.core.validation import validate_rate

#: Names of the weights, in the order of the forward pass.
WEIGHT_NAMES: tuple[str, ...] = ("W1", "b1", "W2", "b2", "W3", "b3")

#: Philox counter offset of hidden dropout layer k (SPEC P4): layer k uses
#: ``offset=DROPOUT_OFFSETS[k]`` with the step's ``mask_seed``.
DROPOUT_OFFSETS: tuple[int, int] = (0, SITE_STRIDE)

#: Standard deviation of the default weight init (SPEC M5).
INIT_STD = 0.01

#: dtype of every weight.
WEIGHT_DTYPE = np.dtype(np.float32)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be a positive integer, got {value!r} ({type(value).__name__})"
        )
    if int(value) <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class MLPSpec:
    """Sizes and dropout rates of the course MLP (SPEC M1); validated on construction.

    Parameters
    ----------
    num_inputs : int
        Features after flattening (784 for 28x28 Fashion-MNIST images).
    num_hiddens1, num_hiddens2 : int
        Widths of the two hidden layers.
    num_outputs : int
        Number of classes (logits).
    dropout1, dropout2 : float
        Drop probabilities after the first and second hidden ReLU.

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive integer or a rate is not in ``[0, 1]``;
        the message names the argument.

    """

    num_inputs: int = 784
    num_hiddens1: int = 256
    num_hiddens2: int = 256
    num_outputs: int = 10
    dropout1: float = 0.2
    dropout2: float = 0.5

    def __post_init__(self) -> None:
        for name in ("num_inputs", "num_hiddens1", "num_hiddens2", "num_outputs"):
            object.__setattr__(self, name, _positive_int(getattr(self, name), name))
        for name in ("dropout1", "dropout2"):
            object.__setattr__(self, name, validate_rate(getattr(self, name), name))

    @property
    def rates(self) -> tuple[float, float]:
        """``(dropout1, dropout2)``, the rate of hidden dropout layer 0 and 1."""
        return (self.dropout1, self.dropout2)

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Return the shape of every weight, by name (see the module docstring)."""
        return {
            "W1": (self.num_inputs, self.num_hiddens1),
            "b1": (self.num_hiddens1,),
            "W2": (self.num_hiddens1, self.num_hiddens2),
            "b2": (self.num_hiddens2,),
            "W3": (self.num_hiddens2, self.num_outputs),
            "b3": (self.num_outputs,),
        }

    def with_rates(self, dropout1: float, dropout2: float) -> MLPSpec:
        """Return the same architecture with other dropout rates."""
        return MLPSpec(
            self.num_inputs,
            self.num_hiddens1,
            self.num_hiddens2,
            self.num_outputs,
            dropout1,
            dropout2,
        )


class SpecRates:
    """``dropout1``/``dropout2`` read from ``self.spec``: mixed into every backend's MLP."""

    spec: MLPSpec

    @property
    def dropout1(self) -> float:
        """Drop probability after the first hidden ReLU."""
        return self.spec.dropout1

    @property
    def dropout2(self) -> float:
        """Drop probability after the second hidden ReLU."""
        return self.spec.dropout2


def as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """Return ``rng`` if it is a Generator, else ``numpy.random.default_rng(rng)``.

    Raises
    ------
    TypeError
        If ``rng`` is neither ``None``, an integer nor a ``numpy.random.Generator``.

    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(
        f"rng must be None, an integer seed or a numpy.random.Generator, got {rng!r} "
        f"({type(rng).__name__})"
    )


def init_weights(
    spec: MLPSpec, rng: np.random.Generator | int | None = None
) -> dict[str, np.ndarray]:
    """Draw the default weights: N(0, 0.01²) matrices and zero biases, float32 (SPEC M5).

    Parameters
    ----------
    spec : MLPSpec
        The architecture.
    rng : numpy.random.Generator or int or None, optional
        Source of randomness; an integer seeds a new generator, ``None``
        takes fresh entropy.

    Returns
    -------
    dict of str to numpy.ndarray
        The weights, by the names of :data:`WEIGHT_NAMES`.

    """
    gen = as_generator(rng)
    weights = {}
    for name, shape in spec.weight_shapes().items():
        if name.startswith("W"):
            weights[name] = gen.normal(0.0, INIT_STD, size=shape).astype(WEIGHT_DTYPE)
        else:
            weights[name] = np.zeros(shape, dtype=WEIGHT_DTYPE)
    return weights


def checked_weight(
    name: str, value: np.ndarray, shape: tuple[int, ...], *, finite: bool = True
) -> np.ndarray:
    """Return a float32 copy of weight ``name`` after checking its dtype, shape and values.

    Shared by every model's weight check (the MLP's here, the GPT's in
    :mod:`dropout_ref.models.gpt_config`).

    Raises
    ------
    TypeError
        If ``value`` is not of a floating dtype.
    ValueError
        If its shape is not ``shape``, or (with ``finite``) it holds NaN or inf.
    """
    if value.dtype.kind != "f":
        raise TypeError(
            f"weights[{name!r}] must have a floating dtype (float32 expected), got {value.dtype}"
        )
    if value.shape != shape:
        raise ValueError(f"weights[{name!r}] must have shape {shape}, got {value.shape}")
    if finite and not np.all(np.isfinite(value)):
        raise ValueError(f"weights[{name!r}] holds NaN or inf")
    return np.ascontiguousarray(value, dtype=WEIGHT_DTYPE).copy()


def validate_weights(
    weights: Any, spec: MLPSpec, *, finite: bool = True
) -> dict[str, np.ndarray]:
    """Check a weight dict against ``spec`` and return float32 copies (SPEC M5).

    Parameters
    ----------
    weights : mapping of str to numpy.ndarray
        Exactly the names of :data:`WEIGHT_NAMES`, each of the shape
        :meth:`MLPSpec.weight_shapes` gives, of a floating dtype.
    spec : MLPSpec
        The architecture the weights must fit.
    finite : bool, optional
        Whether NaN and inf are refused (default). ``False`` checks names, shapes and
        dtypes only: for the output of a training step, where divergence is a result
        to report, not bad input.

    Returns
    -------
    dict of str to numpy.ndarray
        C-contiguous float32 copies, in :data:`WEIGHT_NAMES` order.

    Raises
    ------
    TypeError
        If ``weights`` is not a mapping, or a value is not a floating-point
        NumPy array (the message names the key).
    ValueError
        If names are missing or unexpected, a shape is wrong, or (when ``finite``)
        a value holds NaN or inf (the message names the key).

    """
    if not isinstance(weights, Mapping):
        raise TypeError(
            f"weights must be a dict of str to numpy.ndarray, got {type(weights).__name__}"
        )
    expected = spec.weight_shapes()
    missing = [name for name in expected if name not in weights]
    extra = sorted(str(name) for name in weights if name not in expected)
    if missing or extra:
        raise ValueError(
            f"weights must have exactly the keys {list(expected)}; "
            f"missing {missing}, unexpected {extra}"
        )
    checked = {}
    for name, shape in expected.items():
        value = weights[name]
        if not isinstance(value, np.ndarray):
            raise TypeError(
                f"weights[{name!r}] must be a numpy.ndarray, got {type(value).__name__}; "
                "convert framework tensors with the backend's get_weights()"
            )
        checked[name] = checked_weight(name, value, shape, finite=finite)
    return checked


def resolve_weights(
    spec: MLPSpec, weights: Any = None, rng: np.random.Generator | int | None = None
) -> dict[str, np.ndarray]:
    """Return validated ``weights``, or the default init drawn from ``rng`` when ``None``.

    The constructors of every backend's ``MLP`` go through here.
    """
    if weights is None:
        return init_weights(spec, rng)
    return validate_weights(weights, spec)


def flat_input_shape(shape: Any, num_inputs: int) -> tuple[int, int]:
    """Return ``(batch, num_inputs)``, the shape inputs of ``shape`` flatten to (SPEC M1).

    Like the course's ``X.reshape(-1, num_inputs)``, but refusing shapes that
    do not split into whole rows with a message naming ``X``.

    Raises
    ------
    ValueError
        If the number of elements is not a multiple of ``num_inputs``.

    """
    dims = tuple(int(d) for d in shape)
    # math.prod on Python ints (np.prod would become a traced tensor under torch.compile).
    size = math.prod(dims)
    if len(dims) == 0 or size % num_inputs != 0:
        raise ValueError(
            f"X of shape {dims} cannot be flattened to rows of num_inputs={num_inputs} "
            "features; pass a batch whose trailing dimensions hold num_inputs elements"
        )
    return (size // num_inputs, num_inputs)
