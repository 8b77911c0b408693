"""NumPy side of the array bridge (see :class:`dropout_ref.core.contract.ArrayBridge`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dropout_ref.core.contract import ArrayBridge, NotApplicable


class NumpyArrays(ArrayBridge):
    """Array bridge for the NumPy backend."""

    name = "numpy"
    float_dtypes = ("float16", "float32", "float64")

    def from_numpy(self, array: np.ndarray, dtype: str | None = None) -> np.ndarray:
        """Return a copy of ``array``, cast to ``dtype`` if given."""
        return np.array(array, dtype=dtype, copy=True)

    def to_numpy(self, x: Any) -> np.ndarray:
        """Return ``x`` as a NumPy array."""
        return np.asarray(x)

    def dtype_name(self, x: np.ndarray) -> str:
        """Return ``x.dtype.name``."""
        return np.asarray(x).dtype.name

    def device_name(self, x: Any) -> str:
        """NumPy arrays live in host memory."""
        return "cpu"

    def seed_global(self, seed: int) -> None:
        """Seed NumPy's legacy global generator (``np.random.seed``)."""
        np.random.seed(seed)

    def value_and_grad(
        self, fn: Callable[[Any], Any], x: Any, cotangent: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """NumPy has no automatic differentiation."""
        raise NotApplicable("numpy has no automatic differentiation")
