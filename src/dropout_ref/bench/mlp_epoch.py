"""One training epoch of the course MLP, for comparing our dropout with the native layer.

The data are synthetic with Fashion-MNIST's shapes (the benchmark must run
offline and fast); what is compared is the time of the same SGD steps with
two dropout functions, not accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest import mock

import numpy as np

from dropout_ref.bench.cases.common import MLP_NATIVE, MLP_OURS, BenchCase, CaseSet
from dropout_ref.course.backends import TRAINING_MODULE
from dropout_ref.models.backends import MLP_MODULE

#: Examples per benchmark epoch: 40 batches of the course's 256 (a full
#: Fashion-MNIST epoch has 235; fewer keep ``dropout-ref bench`` short).
EPOCH_EXAMPLES = 40 * 256
BATCH_SIZE = 256
LEARNING_RATE = 0.5
INIT_SEED = 0


def synthetic_epoch(
    examples: int = EPOCH_EXAMPLES, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images, labels)``: float32 ``(examples, 28, 28)`` in [0, 1) and int64 labels."""
    rng = np.random.default_rng(seed)
    images = rng.random((examples, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, size=examples, dtype=np.int64)
    return images, labels


def run_epoch(
    sgd_step: Callable[..., float], model: Any, images: np.ndarray, labels: np.ndarray
) -> float:
    """Take one SGD step per batch of ``BATCH_SIZE``; return the last loss."""
    loss = float("nan")
    for start in range(0, len(images), BATCH_SIZE):
        stop = start + BATCH_SIZE
        loss = sgd_step(model, images[start:stop], labels[start:stop], LEARNING_RATE)
    return loss


def epoch_cases(
    backend: str,
    native_dropout_layer: Callable[..., Any],
    native_name: str,
    ours_note: str = "",
    place: Callable[[Any], Any] | None = None,
) -> CaseSet:
    """One epoch of the backend's MLP with our ``dropout_layer`` and with its native dropout.

    The native run patches the MLP module's ``dropout_layer`` with
    ``native_dropout_layer`` (same signature), so both epochs take the very same
    steps but for the dropout. Called inside the backend's own benchmark process,
    so importing the adapter here is lazy.

    Parameters
    ----------
    backend : str
        Backend name, e.g. ``"torch"``.
    native_dropout_layer : callable
        ``(X, dropout, *, seed=None, offset=0)`` over the framework's own dropout.
    native_name : str
        The native op's name, for the table.
    ours_note : str, optional
        Extra words on our case (e.g. how the step is compiled).
    place : callable, optional
        Moves a new model to the benchmark's device (``model -> model``); the
        steps then copy each batch there.
    """
    mlp_module = MLP_MODULE.load(backend)
    sgd_step = TRAINING_MODULE.load(backend).sgd_step
    images, labels = synthetic_epoch()
    ours, native = mlp_module.MLP(rng=INIT_SEED), mlp_module.MLP(rng=INIT_SEED)
    if place is not None:
        ours, native = place(ours), place(native)

    def native_epoch() -> float:
        # A tf.function step is traced on its first call, under this patch.
        with mock.patch.object(mlp_module, "dropout_layer", native_dropout_layer):
            return run_epoch(sgd_step, native, images, labels)

    note = "MLP with dropout_layer" + (f" ({ours_note})" if ours_note else "")
    return CaseSet([
        BenchCase(MLP_OURS, lambda: run_epoch(sgd_step, ours, images, labels), note=note),
        BenchCase(MLP_NATIVE, native_epoch, note=f"same MLP, {native_name}"),
    ])

