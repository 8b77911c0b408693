"""NumPy primitives for dropout: the oracle every other backend is compared with."""

from __future__ import annotations

from typing import Any

import numpy as np

from dropout_ref.core.contract import DropoutOps
from dropout_ref.core.thresholds import scale_compute_dtype


class NumpyOps(DropoutOps):
    """Dropout primitives on ``numpy.ndarray`` (the contract's ``DropoutOps``)."""

    name = "numpy"
    conversion_hint = "X = X.astype(np.float32)"

    def check_array(self, X: Any) -> None:
        """Refuse anything but a NumPy array."""
        if not isinstance(X, np.ndarray):
            raise TypeError(
                f"X must be a numpy.ndarray on the numpy backend, got {type(X).__name__}; "
                "use np.asarray(X, dtype=np.float32)"
            )

    def dtype_name(self, X: np.ndarray) -> str:
        """Return ``X.dtype.name``."""
        return X.dtype.name

    def size(self, X: np.ndarray) -> int:
        """Return ``X.size``."""
        return int(X.size)

    def constant_mask(self, X: np.ndarray, keep: bool) -> np.ndarray:
        """Return a bool array of ``X``'s shape, all ``keep``."""
        return np.full(X.shape, keep, dtype=bool)

    def global_keep_mask(self, X: np.ndarray, dropout: float) -> np.ndarray:
        """Draw float64 uniforms from ``np.random`` (seeded by ``np.random.seed``) and compare."""
        return np.random.random_sample(X.shape) >= dropout

    def portable_keep_mask(self, X: np.ndarray, threshold: int, seed: int, offset: int) -> Any:
        """Return the Philox keep mask (SPEC P): the compiled kernel's, else the NumPy oracle's."""
        from dropout_ref.core.philox import numpy_keep_mask
        from dropout_ref.kernels import cpu as cpu_kernel

        keep = cpu_kernel.keep_mask(X.shape, threshold, seed, offset)
        return keep if keep is not None else numpy_keep_mask(X.shape, threshold, seed, offset)

    def fused_portable_dropout(
        self, X: np.ndarray, threshold: int, seed: int, offset: int, scale: float
    ) -> np.ndarray | None:
        """Return ``seed=`` dropout from the compiled kernel in one pass, or ``None``.

        Bit for bit :meth:`portable_keep_mask` + :meth:`select_scaled` with the
        pure-NumPy generator (:mod:`dropout_ref.kernels.cpu`); ``None`` where numba
        is missing or fails to compile, or the dtype is not one it handles, and
        the exact NumPy path runs.
        """
        from dropout_ref.kernels import cpu as cpu_kernel

        return cpu_kernel.fused_dropout(X, threshold, seed, offset, scale)

    def block_arrays(self, X: np.ndarray) -> Any:
        """Index data and reshape for block masks (SPEC P7)."""
        from dropout_ref.numpy.philox import NumpyBlockArrays

        return NumpyBlockArrays()

    def select_scaled(self, X: np.ndarray, keep: np.ndarray, scale: float) -> np.ndarray:
        """Return ``where(keep, X * scale, +0.0)`` in ``X``'s dtype."""
        compute = np.dtype(scale_compute_dtype(X.dtype.name))
        with np.errstate(over="ignore", invalid="ignore"):
            product = X.astype(compute, copy=False) * compute.type(scale)
            scaled = product.astype(X.dtype, copy=False)
        return np.where(keep, scaled, X.dtype.type(0))
