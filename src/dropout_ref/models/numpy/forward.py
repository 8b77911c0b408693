"""NumPy piece of :func:`dropout_ref.forward_numpy`: the explicit ``training`` flag (M2)."""

from __future__ import annotations

from typing import Any

import numpy as np


def forward_numpy(
    model: Any, inputs: Any, *, training: bool, mask_seed: int | None = None
) -> np.ndarray:
    """Return ``model(inputs, training=training, mask_seed=mask_seed)``."""
    return np.asarray(model(np.asarray(inputs), training=training, mask_seed=mask_seed))
