"""JAX primitives for dropout (the contract's ``DropoutOps``).

JAX has no global generator: masks come from a ``jax.random`` key given by
the caller (``key=``, :meth:`JaxOps.keyed_keep_mask`) or from the portable
Philox counters (``seed=``). :meth:`JaxOps.global_keep_mask`, the
framework-global draw of the other backends, takes the next key of the array
bridge's key stream (:class:`dropout_ref.jax.keys.KeyStream`), which is what
the conformance kit and the shared tests seed with ``arrays.seed_global``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from dropout_ref.core.contract import DropoutOps
from dropout_ref.core.thresholds import scale_compute_dtype, word_threshold
from dropout_ref.jax import runtime
from dropout_ref.jax.keys import KEYS
from dropout_ref.jax.philox import JaxBlockArrays, fused_dropout, keep_mask


def dtype_name(X: Any) -> str:
    """Return the canonical dtype name of a JAX array (``"bfloat16"``, ``"float32"``, ...)."""
    return jnp.dtype(X.dtype).name


def is_key(key: Any) -> bool:
    """Whether ``key`` is one ``jax.random`` key: typed (``jax.random.key``) or ``uint32[2]``."""
    if not isinstance(key, jax.Array):
        return False
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key.shape == ()
    return key.dtype == jnp.uint32 and key.shape == (2,)


def check_key(key: Any, name: str = "key") -> None:
    """Raise ``TypeError`` naming ``key`` unless it is a single ``jax.random`` key."""
    if not is_key(key):
        shown = f"{type(key).__name__}"
        if isinstance(key, jax.Array):
            shown += f" of dtype {key.dtype} and shape {tuple(key.shape)}"
        raise TypeError(
            f"{name} must be one jax.random key (jax.random.key(0) or jax.random.PRNGKey(0)), "
            f"got {shown}; split a batch of keys with jax.vmap"
        )


def keyed_keep_mask(X: Any, dropout: float, key: Any) -> jax.Array:
    """Keep iff ``w >= ceil(p * 2**32)`` for 32-bit words ``w`` of ``jax.random.bits(key)`` (D4).

    ``u = w / 2**32`` is uniform on ``[0, 1)`` with 32 bits, and the integer
    comparison is exactly ``u >= p`` over the reals (the rule of the portable
    masks, with JAX's own generator). The same key gives the same mask.
    """
    threshold = word_threshold(dropout)
    if threshold > 0xFFFFFFFF:  # p within 2**-32 of 1: drops everything
        return jnp.zeros(X.shape, dtype=bool)
    words = jax.random.bits(key, X.shape, dtype=jnp.uint32)
    return words >= jnp.uint32(threshold)


class JaxOps(DropoutOps):
    """Dropout primitives on ``jax.Array`` (also tracers under ``jit``, ``grad``, ``vmap``)."""

    name = "jax"
    conversion_hint = "X = X.astype(jnp.float32)"

    def check_array(self, X: Any) -> None:
        """Refuse anything but a ``jax.Array`` (tracers are ``jax.Array`` s too)."""
        if not isinstance(X, jax.Array):
            raise TypeError(
                f"X must be a jax.Array on the jax backend, got {type(X).__name__}; "
                "use jnp.asarray(X, dtype=jnp.float32)"
            )

    def dtype_name(self, X: Any) -> str:
        """Return the canonical dtype name."""
        return dtype_name(X)

    def size(self, X: Any) -> int:
        """Return the element count; shapes are static in JAX, also under ``jit``."""
        return int(X.size)

    def constant_mask(self, X: Any, keep: bool) -> jax.Array:
        """Return a bool array of ``X``'s shape, all ``keep``."""
        return jnp.full(X.shape, keep, dtype=bool)

    def check_key(self, key: Any) -> None:
        """Refuse anything but one ``jax.random`` key (see :func:`check_key`)."""
        check_key(key)

    def keyed_keep_mask(self, X: Any, dropout: float, key: Any) -> jax.Array:
        """Return the keep mask drawn from ``key`` (D4, D9); see :func:`keyed_keep_mask`."""
        check_key(key)
        return keyed_keep_mask(X, dropout, key)

    def global_keep_mask(self, X: Any, dropout: float) -> jax.Array:
        """Draw with the next key of the bridge's seedable stream (JAX has no global generator)."""
        return keyed_keep_mask(X, dropout, KEYS.next())

    def portable_keep_mask(self, X: Any, threshold: int, seed: int, offset: int) -> jax.Array:
        """Return the Philox keep mask (SPEC P) in 32-bit ``jnp`` ops."""
        return keep_mask(X, threshold, seed, offset)

    def fused_portable_dropout(
        self, X: Any, threshold: int, seed: int, offset: int, scale: float
    ) -> jax.Array | None:
        """Portable mode on the whole of ``X`` as one jitted program (mask and select).

        Bit for bit :meth:`portable_keep_mask` and :meth:`select_scaled`; see
        :func:`dropout_ref.jax.philox.fused_dropout` (``None``: the generic path).
        """
        return fused_dropout(
            X, threshold, seed, offset, scale, scale_compute_dtype(dtype_name(X))
        )

    def is_runtime(self, value: Any) -> bool:
        """Return whether ``value`` is a tracer (SPEC S1, S2)."""
        return runtime.is_runtime(value)

    def runtime_dropout(
        self, X: Any, rate: Any, seed: Any, offset: Any, noise: Any, key: Any
    ) -> jax.Array:
        """Dropout with traced values (:mod:`dropout_ref.jax.runtime`)."""
        return runtime.runtime_dropout(X, rate, seed, offset, noise, key)

    def block_arrays(self, X: Any) -> Any:
        """Index data and reshape for block masks (SPEC P7)."""
        return JaxBlockArrays()

    def select_scaled(self, X: Any, keep: Any, scale: float) -> jax.Array:
        """Return ``where(keep, X * scale, +0.0)``, the product rounded once into ``X``'s dtype.

        A select, not a product with the mask, so dropped elements are ``+0.0``
        even where ``X`` is NaN or inf (D6), and their gradient is exactly 0 (D8).
        """
        compute = jnp.dtype(scale_compute_dtype(dtype_name(X)))
        scaled = (X.astype(compute) * jnp.asarray(scale, compute)).astype(X.dtype)
        return jnp.where(keep, scaled, jnp.zeros((), X.dtype))
