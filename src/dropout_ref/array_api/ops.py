"""Dropout primitives for any Array API standard namespace (the contract's ``DropoutOps``).

``X``'s namespace comes from ``array_api_compat.array_namespace(X)`` on every
call, so one adapter serves ``array_api_strict`` arrays, NumPy arrays and,
through array-api-compat, torch, CuPy, Dask or JAX arrays; every array this
backend makes lives in ``X``'s namespace and on ``X``'s device.

The standard has no random number generator. The default mode (``seed=None``)
therefore draws from NumPy's global generator on the host, seeded by
``np.random.seed`` like the numpy backend's, and moves the mask to ``X``'s
device with ``xp.asarray`` (docs/writing-a-backend.md, docs/deviations/array_api.md).
The portable mode (``seed=``) is computed in the namespace's own integer ops
(:mod:`dropout_ref.array_api.philox`), bit for bit the numpy backend's (P2).
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from dropout_ref.array_api.namespaces import device_of, dtype_name, namespace_of
from dropout_ref.array_api.philox import ArrayApiBlockArrays, keep_mask
from dropout_ref.core.contract import DropoutOps
from dropout_ref.core.thresholds import scale_compute_dtype


class ArrayApiOps(DropoutOps):
    """Dropout primitives on the arrays of any Array API namespace."""

    name = "array_api"
    conversion_hint = "X = xp.astype(X, xp.float32)  # xp = array_api_compat.array_namespace(X)"

    def check_array(self, X: Any) -> None:
        """Refuse anything that is not an array of an Array API namespace."""
        if not array_api_compat.is_array_api_obj(X):
            raise TypeError(
                f"X must be an array of an Array API namespace on the array_api backend "
                f"(array_api_strict, NumPy, or any array array_api_compat supports), got "
                f"{type(X).__name__}; use xp.asarray(X, dtype=xp.float32)"
            )

    def dtype_name(self, X: Any) -> str:
        """Return the canonical dtype name (see :func:`dtype_name`)."""
        return dtype_name(X)

    def size(self, X: Any) -> int | None:
        """Return the element count, or ``None`` where a dimension is unknown (lazy arrays)."""
        return array_api_compat.size(X)

    def constant_mask(self, X: Any, keep: bool) -> Any:
        """Return a bool array of ``X``'s shape, all ``keep``, on ``X``'s device."""
        xp = namespace_of(X)
        return xp.full(X.shape, keep, dtype=xp.bool, device=device_of(X))

    def global_keep_mask(self, X: Any, dropout: float) -> Any:
        """Draw float64 uniforms from ``np.random`` on the host, compare, move to ``X``'s device.

        The standard has no generator: NumPy's global one stands in (seeded by
        ``np.random.seed``, D9), so NumPy arrays get the numpy backend's mask for
        the same seed. float64 uniforms compare exactly with the float rate (D4).
        """
        keep = np.random.random_sample(tuple(X.shape)) >= dropout
        return namespace_of(X).asarray(keep, device=device_of(X))

    def portable_keep_mask(self, X: Any, threshold: int, seed: int, offset: int) -> Any:
        """Return the Philox keep mask (SPEC P) computed in ``X``'s namespace, on its device."""
        return keep_mask(X, threshold, seed, offset)

    def block_arrays(self, X: Any) -> Any:
        """Index data and reshape for block masks (SPEC P7), in ``X``'s namespace."""
        return ArrayApiBlockArrays(namespace_of(X), device_of(X))

    def select_scaled(self, X: Any, keep: Any, scale: float) -> Any:
        """Return ``where(keep, X * scale, +0.0)`` in ``X``'s dtype, the product rounded once.

        16-bit floats are multiplied in float32 (:func:`scale_compute_dtype`); the
        Python float ``scale`` takes the compute dtype, as the standard's scalar
        rule says. A select, not a product with the mask: dropped elements are
        ``+0.0`` even where ``X`` is NaN or inf (D6).
        """
        xp = namespace_of(X)
        compute = getattr(xp, scale_compute_dtype(dtype_name(X, xp)))
        # NumPy-backed namespaces warn on inf/NaN products and float16 overflow, which
        # are the values D5/D6 expect here, not errors.
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = xp.astype(xp.astype(X, compute) * scale, X.dtype)
        return xp.where(keep, scaled, xp.zeros((), dtype=X.dtype, device=device_of(X)))
