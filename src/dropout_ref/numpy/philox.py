"""Philox4x32-10 for the numpy backend: the core's NumPy oracle under the adapters' names.

Every adapter offers ``keep_mask(x, threshold, seed, offset)``,
``philox4x32_10(counter_words, key_words)`` and ``INT_OPS`` in its ``philox``
module, so the known-answer and agreement tests treat all backends alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dropout_ref.core.blocks import BlockArrays
from dropout_ref.core.philox import NUMPY_OPS, numpy_keep_mask
from dropout_ref.core.philox import numpy_philox4x32_10 as philox4x32_10

INT_OPS = NUMPY_OPS


class NumpyBlockArrays(BlockArrays):
    """:class:`~dropout_ref.core.blocks.BlockArrays` on NumPy: ``uint64`` words, as the oracle's."""

    int_ops = NUMPY_OPS

    def index(self, values: np.ndarray) -> np.ndarray:
        """Return ``values`` as ``uint64`` (NumPy would mix int64 and uint64 into float64)."""
        return np.asarray(values).astype(np.uint64)

    def reshape(self, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Return ``a.reshape(shape)``."""
        return np.asarray(a).reshape(shape)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        """Return ``a`` where ``cond`` else ``b``."""
        return np.where(cond, a, b)


def keep_mask(x: np.ndarray, threshold: int, seed: int, offset: int) -> Any:
    """Return the portable keep mask of ``x`` (SPEC P), a bool array of its shape."""
    return numpy_keep_mask(x.shape, threshold, seed, offset)


__all__ = ["INT_OPS", "NumpyBlockArrays", "keep_mask", "philox4x32_10"]
