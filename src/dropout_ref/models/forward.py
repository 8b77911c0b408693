"""``dropout_ref.forward_numpy``: one forward pass of any of our models, as NumPy (SPEC X4, M2).

Tools (comparisons, conformance checks) run a model of any backend through
this one entry: it finds the backend from the model's class and calls
``dropout_ref.models.<backend>.forward.forward_numpy``, which puts the model
in its framework's train or eval idiom (M2, X3), runs it on ``inputs``
converted to the framework's arrays, and returns the output as a NumPy array.
A backend adds itself by providing that module (declared by
:data:`dropout_ref.course.backends.FORWARD_MODULE`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dropout_ref.core.registry import known_backends
from dropout_ref.models.backends import FORWARD_MODULE


def backend_of(model: Any) -> str:
    """Return the backend whose ``MLP``/``GPT`` ``model`` is (or subclasses).

    Raises
    ------
    TypeError
        If no class in ``model``'s MRO comes from a ``dropout_ref`` backend.

    """
    backends = set(known_backends())
    for cls in type(model).__mro__:
        parts = cls.__module__.split(".")
        if parts[0] != "dropout_ref":
            continue
        # dropout_ref.<backend>.mlp or dropout_ref.models.<backend>.gpt
        for part in parts[1:3]:
            if part in backends:
                return part
    raise TypeError(
        f"model must be a dropout_ref model (MLP or GPT of a backend), got "
        f"{type(model).__module__}.{type(model).__qualname__}"
    )


def forward_numpy(
    model: Any, inputs: Any, *, training: bool, mask_seed: int | None = None
) -> np.ndarray:
    """Run ``model`` on ``inputs`` in train or eval mode and return the output as NumPy.

    Parameters
    ----------
    model : MLP or GPT of any backend
        Left in the train/eval mode it had (torch) after the call.
    inputs : array_like
        Images for the MLP, integer token ids ``(B, T)`` for the GPT.
    training : bool
        Dropout on (the framework's training idiom) or off.
    mask_seed : int, optional
        Portable masks (SPEC P, X4); ``None`` draws from the framework's generator.

    Returns
    -------
    numpy.ndarray
        The model's output (logits).

    Raises
    ------
    TypeError
        If ``model`` is not one of ours or ``training`` is not a bool.

    """
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"training must be True or False, got {training!r}")
    backend = backend_of(model)
    module = FORWARD_MODULE.load(backend)
    return module.forward_numpy(model, inputs, training=bool(training), mask_seed=mask_seed)
