"""JAX side of the array bridge (see :class:`dropout_ref.core.contract.ArrayBridge`).

JAX has no global generator (D9 as amended for JAX). The bridge keeps a
:class:`dropout_ref.jax.keys.KeyStream` instead: ``seed_global(s)`` restarts it at
``jax.random.key(s)`` and each :meth:`~dropout_ref.jax.keys.KeyStream.next` splits off a fresh key.
The conformance kit and the shared tests, written against the other
backends' ``dropout_layer(X, p)`` convention, draw their keys from it
(:data:`dropout_ref.jax.kit_dropout_layer`); users pass ``key=`` themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dropout_ref.core.contract import ArrayBridge
from dropout_ref.jax.keys import KEYS
from dropout_ref.jax.ops import dtype_name


class JaxArrays(ArrayBridge):
    """Array bridge for the jax backend."""

    name = "jax"

    def __init__(self) -> None:
        #: The kit's seedable stand-in for a global generator (D9), shared with the ops.
        self.keys = KEYS

    @property
    def float_dtypes(self) -> tuple[str, ...]:
        """float16, bfloat16, float32, and float64 where ``jax_enable_x64`` is on."""
        base = ("float16", "bfloat16", "float32")
        return (*base, "float64") if jax.config.jax_enable_x64 else base

    def from_numpy(self, array: np.ndarray, dtype: str | None = None) -> jax.Array:
        """Return a JAX array holding ``array`` (cast to ``dtype`` if given)."""
        host = np.array(array, copy=True)
        return jnp.asarray(host, dtype=jnp.dtype(dtype) if dtype else None)

    def to_numpy(self, x: Any) -> np.ndarray:
        """Return ``x`` as NumPy (bfloat16 widened to float32)."""
        if jnp.dtype(x.dtype) == jnp.bfloat16:
            x = x.astype(jnp.float32)
        return np.array(x)

    def dtype_name(self, x: Any) -> str:
        """Return the canonical dtype name."""
        return dtype_name(x)

    def device_name(self, x: Any) -> str:
        """Return the device(s) holding ``x``."""
        return ",".join(sorted(str(d) for d in x.devices()))

    def seed_global(self, seed: int) -> None:
        """Restart the bridge's key stream (JAX has no global generator to seed; D9)."""
        self.keys.seed(seed)

    def value_and_grad(
        self, fn: Callable[[Any], Any], x: Any, cotangent: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``fn(x)`` and the gradient of ``sum(fn(x) * cotangent)`` by ``jax.vjp``."""
        out, vjp = jax.vjp(fn, x)
        (grad,) = vjp(jnp.asarray(cotangent, dtype=out.dtype))
        return self.to_numpy(out), self.to_numpy(grad)
