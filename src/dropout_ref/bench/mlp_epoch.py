"""One training epoch of the course MLP, for comparing our dropout with the native layer.

The data are synthetic with Fashion-MNIST's shapes (the benchmark must run
offline and fast); what is compared is the time of the same SGD steps with
two dropout functions, not accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

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
