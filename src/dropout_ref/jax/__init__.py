"""JAX backend (``from dropout_ref.jax import dropout_layer``).

``dropout_layer(X, dropout, *, key=None, seed=None, offset=0)``: JAX has no
global generator, so a mask comes from a ``jax.random`` key (``key=``) or
from the portable Philox counters (``seed=``, SPEC P); with neither it
raises ``TypeError`` (D9 as amended for JAX). The algorithm is the core's
:func:`dropout_ref.core.layer.apply_dropout`.
"""

from __future__ import annotations

from typing import Any

from dropout_ref.core.contract import Backend
from dropout_ref.core.drop_family import make_drop_family
from dropout_ref.core.exports import exported_names, lazy_exports
from dropout_ref.core.layer import apply_dropout
from dropout_ref.jax.arrays import JaxArrays
from dropout_ref.jax.keys import KEYS
from dropout_ref.jax.ops import JaxOps

_OPS = JaxOps()


def dropout_layer(
    X: Any,
    dropout: Any,
    *,
    key: Any = None,
    seed: int | None = None,
    offset: int = 0,
    noise_shape: Any = None,
    global_shape: Any = None,
    block_start: Any = None,
) -> Any:
    """Inverted dropout on a ``jax.Array`` (SPEC D, P).

    Each element is kept with probability ``1 - dropout`` and scaled by
    ``1 / (1 - dropout)``; dropped elements are exactly ``+0.0``. Works under
    ``jax.jit`` (``dropout``, ``seed`` and ``offset`` static Python numbers, or
    traced 0-d arrays: one program for every value, SPEC S1/S2), ``jax.grad``
    (the gradient uses the forward's mask) and ``jax.vmap`` (a batch of keys gives a
    batch of masks).

    Parameters
    ----------
    X : jax.Array
        Floating-point input (float16, bfloat16, float32, and float64 where
        ``jax_enable_x64`` is on); never modified.
    dropout : float
        Probability of dropping an element, ``0 <= dropout <= 1``.
    key : jax.Array, optional
        A ``jax.random`` key (``jax.random.key(0)`` or the legacy
        ``jax.random.PRNGKey(0)``): the mask is ``jax.random.bits(key) >=
        ceil(dropout * 2**32)``. The same key gives the same mask; split the
        key for a fresh one.
    seed : int, optional
        Instead of ``key``: the portable Philox4x32-10 mask for a seed in
        ``[0, 2**64)``, the same bit for bit in every backend.
    offset : int, optional
        Counter of the first element for the portable mask; give a shard the
        number of elements before it to reproduce the unsplit mask.
    noise_shape : sequence of int or None, optional
        Structured dropout (SPEC D12): one decision per element of this shape
        (entries 1 or ``X``'s size, ``None`` meaning ``X``'s size), broadcast to ``X``.
    global_shape, block_start : sequence of int, optional
        Block invariance (SPEC P7, with ``seed``): ``X`` is that block of a
        global array and gets that block of the global mask.

    Returns
    -------
    jax.Array
        Same shape, dtype and device as ``X``.

    Raises
    ------
    TypeError
        If neither ``key`` nor ``seed`` is given (JAX has no global
        generator), both are, ``key`` is not a key, ``X`` is not a floating
        ``jax.Array`` or an argument has the wrong type.
    ValueError
        If ``dropout`` is outside ``[0, 1]`` or NaN, or ``seed``/``offset``
        are out of range.

    """
    if key is None and seed is None:
        raise TypeError(
            "dropout_layer on the jax backend needs key= (a jax.random key, e.g. "
            "jax.random.key(0)) or seed= (an integer, the portable mask): JAX has no "
            "global random generator"
        )
    return apply_dropout(
        _OPS,
        X,
        dropout,
        seed=seed,
        offset=offset,
        noise_shape=noise_shape,
        global_shape=global_shape,
        block_start=block_start,
        key=key,
    )


def kit_dropout_layer(
    X: Any, dropout: Any, *, seed: int | None = None, offset: int = 0, **kwargs: Any
) -> Any:
    """``dropout_layer`` in the other backends' convention, keys from :data:`KEYS` (D9).

    With ``seed=None`` the key is the next of :data:`dropout_ref.jax.keys.KEYS`,
    which ``BACKEND.arrays.seed_global`` restarts: the conformance kit and the
    shared tests check JAX through the ``key=`` path with it.
    """
    if seed is None:
        return dropout_layer(X, dropout, key=KEYS.next(), offset=offset, **kwargs)
    return dropout_layer(X, dropout, seed=seed, offset=offset, **kwargs)


BACKEND = Backend("jax", _OPS, JaxArrays(), dropout_layer, kit_dropout_layer)
# DropPath and DropHead (SPEC V1, V2): structured dropout_layer calls (key= or seed=).
drop_path, drop_head = make_drop_family(_OPS, dropout_layer)

# The course's models and portable_masks resolve on first use (no import circle).
__getattr__ = lazy_exports(__name__)

__all__ = [
    "BACKEND",
    "dropout_layer",
    "drop_path",
    "drop_head",
    "kit_dropout_layer",
    *exported_names("jax"),
]
