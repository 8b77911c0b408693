"""Array API side of the array bridge (see :class:`dropout_ref.core.contract.ArrayBridge`).

The bridge makes its arrays in one namespace: ``array_api_strict`` where it is
installed (the strictest reading of the standard), else NumPy's through
array-api-compat. :meth:`ArrayApiArrays.with_namespace` gives a bridge on any
other namespace (NumPy 2, torch via compat, ...), for the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dropout_ref.array_api.namespaces import (
    device_of,
    dtype_name,
    namespace_float_dtypes,
    namespace_of,
)
from dropout_ref.array_api.philox import default_namespace
from dropout_ref.core.contract import ArrayBridge, NotApplicable


def to_host(x: Any) -> np.ndarray:
    """Return ``x`` as a NumPy array, through DLPack where the array supports it.

    DLPack is the standard's interchange protocol; ``np.asarray`` is the fallback
    for arrays without it (0-d NumPy scalars of old NumPy versions).
    """
    try:
        return np.from_dlpack(x)
    except (AttributeError, TypeError, BufferError, RuntimeError):
        return np.asarray(x)


class ArrayApiArrays(ArrayBridge):
    """Array bridge for the array_api backend, on one namespace.

    Parameters
    ----------
    xp : namespace, optional
        The Array API namespace new arrays are made in (default
        :func:`dropout_ref.array_api.philox.default_namespace`).
    """

    name = "array_api"

    def __init__(self, xp: Any = None) -> None:
        self.xp = default_namespace() if xp is None else xp

    def with_namespace(self, xp: Any) -> ArrayApiArrays:
        """Return a bridge whose arrays are made in ``xp``."""
        return ArrayApiArrays(xp)

    @property
    def float_dtypes(self) -> tuple[str, ...]:
        """The SPEC dtypes the namespace has (array_api_strict: float32 and float64 only)."""
        return namespace_float_dtypes(self.xp)

    def from_numpy(self, array: np.ndarray, dtype: str | None = None) -> Any:
        """Return a new array of the namespace holding ``array`` (cast to ``dtype`` if given).

        bfloat16, which NumPy lacks, is cast in the namespace from float32.
        """
        if dtype == "bfloat16":
            return self.xp.astype(self.from_numpy(array, "float32"), self.xp.bfloat16)
        return self.xp.asarray(np.array(array, dtype=dtype, copy=True))

    def to_numpy(self, x: Any) -> np.ndarray:
        """Return ``x`` as a NumPy array (bfloat16, which NumPy lacks, widened to float32)."""
        if dtype_name(x) == "bfloat16":
            xp = namespace_of(x)
            x = xp.astype(x, xp.float32)
        return np.array(to_host(x), copy=True)

    def dtype_name(self, x: Any) -> str:
        """Return the canonical dtype name."""
        return dtype_name(x)

    def device_name(self, x: Any) -> str:
        """Return the device holding ``x`` (``array_api_compat.device``), as text."""
        return str(device_of(x))

    def seed_global(self, seed: int) -> None:
        """Seed the generator of the default mode: NumPy's global one (``np.random.seed``, D9)."""
        np.random.seed(seed)

    def value_and_grad(
        self, fn: Callable[[Any], Any], x: Any, cotangent: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raise ``NotApplicable``: the Array API standard has no automatic differentiation."""
        raise NotApplicable(
            "the Array API standard has no automatic differentiation (use the torch or jax "
            "backend for gradients)"
        )
