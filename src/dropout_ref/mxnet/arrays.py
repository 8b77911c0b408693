"""MXNet side of the array bridge (see :class:`dropout_ref.core.contract.ArrayBridge`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dropout_ref.core.contract import ArrayBridge
from dropout_ref.mxnet.framework import autograd, mnp, mx, numpy_shapes


class MxnetArrays(ArrayBridge):
    """Array bridge for the mxnet backend (``mxnet.numpy`` arrays on the CPU)."""

    name = "mxnet"
    # MXNet 1.9.1 has no bfloat16 in its numpy interface (docs/deviations/mxnet.md).
    float_dtypes = ("float16", "float32", "float64")

    @numpy_shapes
    def from_numpy(self, array: np.ndarray, dtype: str | None = None) -> Any:
        """Return an ``mxnet.numpy`` array holding ``array``."""
        array = np.array(array, dtype=dtype, copy=True)
        return mnp.array(array, dtype=array.dtype)

    @numpy_shapes
    def to_numpy(self, x: Any) -> np.ndarray:
        """Return ``x`` as NumPy."""
        return x.asnumpy()

    def dtype_name(self, x: Any) -> str:
        """Return the NumPy name of ``x``'s dtype."""
        return np.dtype(x.dtype).name

    def device_name(self, x: Any) -> str:
        """Return the context of ``x``."""
        return str(x.ctx)

    def seed_global(self, seed: int) -> None:
        """Seed MXNet's global generator (``mx.random.seed``)."""
        mx.random.seed(seed)

    @numpy_shapes
    def value_and_grad(
        self, fn: Callable[[Any], Any], x: Any, cotangent: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``fn(x)`` and the gradient of ``sum(fn(x) * cotangent)``, recorded by autograd."""
        leaf = x.copy()
        leaf.attach_grad()
        with autograd.record():
            out = fn(leaf)
            loss = (out * mnp.array(cotangent, dtype=out.dtype)).sum()
        loss.backward()
        return self.to_numpy(out), self.to_numpy(leaf.grad)
