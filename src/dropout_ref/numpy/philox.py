"""Philox4x32-10 for the numpy backend: the core's NumPy oracle under the adapters' names.

Every adapter offers ``keep_mask(x, threshold, seed, offset)``,
``philox4x32_10(counter_words, key_words)`` and ``INT_OPS`` in its ``philox``
module, so the known-answer and agreement tests treat all backends alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dropout_ref.philox import NUMPY_OPS, numpy_keep_mask
from dropout_ref.philox import numpy_philox4x32_10 as philox4x32_10

INT_OPS = NUMPY_OPS


def keep_mask(x: np.ndarray, threshold: int, seed: int, offset: int) -> Any:
    """Return the portable keep mask of ``x`` (SPEC P), a bool array of its shape."""
    return numpy_keep_mask(x.shape, threshold, seed, offset)


__all__ = ["INT_OPS", "keep_mask", "philox4x32_10"]
