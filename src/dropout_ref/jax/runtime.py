"""Traced rates, seeds and offsets under ``jax.jit``/``nnx.jit`` (SPEC S1, S2).

A rate, seed or offset that is a tracer has no Python value: the program
computes the threshold and the scale itself
(:func:`dropout_ref.core.runtime.runtime_rate`) and draws the Philox words
with the key and counters as data, so one compiled program serves every value
and the output equals the eager call with ``float(r)``/``int(seed)`` bit for bit.

Without ``jax_enable_x64`` the arithmetic runs in float32 and integers are
32-bit: seeds and offsets are ``int32``/``uint32`` arrays read as their 32
bits (``[0, 2**32)``; a negative ``int32`` ``v`` means ``v + 2**32``); with x64,
``int64``/``uint64`` reach ``[0, 2**64)`` and the rate arithmetic runs in
float64. Without x64 a traced seed or offset may also be a ``uint32`` array of
shape ``(2,)``, its low and high words (:func:`seed_words`), as ``jax.random``'s
raw keys are: every 64-bit seed then runs the same program. JAX has no run-time
check inside ``jit`` short of ``checkify`` (which
the caller would have to wrap the whole step in), so an invalid runtime rate
(NaN, < 0, > 1) makes the whole output NaN, and its mask is never drawn.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from dropout_ref.core.layer import mask_template
from dropout_ref.core.philox import MASK32, WORDS_PER_BLOCK, philox4x32_10_keyed
from dropout_ref.core.runtime import python_rate, runtime_rate
from dropout_ref.core.thresholds import scale_compute_dtype
from dropout_ref.jax.philox import JAX_OPS


class JaxMath:
    """:class:`dropout_ref.core.runtime.RateMath` for ``jnp`` arrays."""

    def cast(self, x: Any, dtype: str) -> jax.Array:
        """Return ``x`` as ``dtype``."""
        return jnp.asarray(x).astype(dtype)

    def ceil(self, x: Any) -> jax.Array:
        """Return ``jnp.ceil(x)``."""
        return jnp.ceil(x)

    def where(self, cond: Any, a: Any, b: Any) -> jax.Array:
        """Return ``jnp.where(cond, a, b)``."""
        return jnp.where(cond, a, b)

    def zeros_like(self, x: Any) -> jax.Array:
        """Return ``jnp.zeros_like(x)``."""
        return jnp.zeros_like(x)

    def nextafter(self, x: Any, up: Any) -> jax.Array:
        """Return the float next to ``x`` towards +inf where ``up``, else towards -inf."""
        return jnp.nextafter(x, jnp.where(up, jnp.inf, -jnp.inf).astype(x.dtype))

    def barrier(self, x: Any) -> jax.Array:
        """Return ``x`` behind ``jax.lax.optimization_barrier``."""
        return jax.lax.optimization_barrier(x)


MATH = JaxMath()


def x64() -> bool:
    """Whether 64-bit types are on (``jax_enable_x64``)."""
    return bool(jax.config.jax_enable_x64)


def is_runtime(value: Any) -> bool:
    """Return whether ``value`` is traced (known only when the compiled program runs)."""
    return isinstance(value, jax.core.Tracer)


def _scalar(value: Any, name: str, kind: str) -> jax.Array:
    """Check a 0-d array of ``kind`` ("float" or "int"); Python numbers become constants."""
    if value.shape != ():
        raise TypeError(f"{name} must be a 0-d array, got shape {tuple(value.shape)}")
    floating = jnp.issubdtype(value.dtype, jnp.floating)
    integer = jnp.issubdtype(value.dtype, jnp.integer)
    if (kind == "float" and not floating) or (kind == "int" and not integer):
        wanted = "a floating" if kind == "float" else "an integer"
        raise TypeError(f"{name} must be {wanted} 0-d array, got dtype {value.dtype}")
    return value


def seed_words(value: int) -> jax.Array:
    """Return a checked 64-bit seed or offset as ``uint32[2]``: its low and high words.

    Pass it as ``seed=``/``offset=`` of a call traced by ``jax.jit``: one
    program serves every value in ``[0, 2**64)`` without ``jax_enable_x64``.
    """
    return jnp.asarray([value & MASK32, value >> 32], jnp.uint32)


def _halves(value: Any, name: str) -> tuple[jax.Array, jax.Array]:
    """Return the low and high 32 bits of a checked Python int or a 0-d integer array.

    A ``uint32`` array of shape ``(2,)`` is read as the (low, high) words of
    :func:`seed_words`.
    """
    if isinstance(value, int):
        return jnp.uint32(value & MASK32), jnp.uint32(value >> 32)
    if getattr(value, "shape", None) == (2,):
        if value.dtype != jnp.uint32:
            raise TypeError(
                f"{name} as two 32-bit words must be a uint32 array, got dtype {value.dtype}"
            )
        return value[0], value[1]
    value = _scalar(value, name, "int")
    if jnp.dtype(value.dtype).itemsize <= 4:
        return value.astype(jnp.uint32), jnp.uint32(0)
    wide = value.astype(jnp.uint64)
    return (wide & MASK32).astype(jnp.uint32), (wide >> 32).astype(jnp.uint32)


def words(template: jax.Array, seed: Any, offset: Any) -> jax.Array:
    """Return the Philox word (P3, ``uint32``) of each element of ``template``, key as data."""
    k0, k1 = _halves(seed, "seed")
    lo, hi = _halves(offset, "offset")
    # Element i reads word (lane + i) % 4 of block offset // 4 + (lane + i) // 4, with
    # lane = offset % 4. Each element runs its own block's Philox and keeps one word:
    # four times the generator's arithmetic, but elementwise, so XLA fuses it into the
    # mask's consumers. One evaluation per block and four gathers is slower inside a
    # training step: XLA's CPU backend fuses the generator into each gather, running it
    # once per gathered element (measured, course MLP step with two sites, batch 256:
    # 3.42 ms elementwise against 3.76 ms with gathers; key mode 2.86 ms).
    g = jnp.arange(int(template.size), dtype=jnp.uint32) + (lo & (WORDS_PER_BLOCK - 1))
    low = (lo >> 2) | (hi << 30)  # block counter offset // 4 in 32-bit halves
    c0 = (g >> 2) + low  # wraps past 2**32 ...
    c1 = (hi >> 2) + (c0 < low).astype(jnp.uint32)  # ... and carries
    x = philox4x32_10_keyed(JAX_OPS, (c0, c1, 0, 0), k0, k1)
    word = g & (WORDS_PER_BLOCK - 1)
    out = jnp.where(word == 0, x[0], jnp.where(word == 1, x[1],
                    jnp.where(word == 2, x[2], x[3])))
    return out.reshape(template.shape)


def _materialized(keep: jax.Array) -> jax.Array:
    """Return ``keep`` through a bit-packed copy, so that XLA computes it once.

    The mask feeds the forward output and, under ``jax.grad``, the backward's
    ``where``. Left elementwise, XLA's CPU backend fuses the whole generator
    into both, running Philox twice. Packed to bits (``jnp.packbits``: a
    reduction, which XLA does not duplicate into its consumers) it is computed
    once and read back by both. Measured, the course MLP's seeded step (two
    sites, batch 256, 2 CPU cores): 3.0-3.1 ms packed against 3.4 ms unpacked;
    key mode (``jax.random.bits``) 2.85 ms.
    """
    packed = jnp.packbits(keep.reshape(-1), bitorder="little")
    flat = jnp.unpackbits(packed, count=keep.size, bitorder="little")
    return flat.astype(bool).reshape(keep.shape)


def runtime_dropout(X: jax.Array, rate: Any, seed: Any, offset: Any, noise: Any, key: Any) -> Any:
    """Dropout with a traced rate, seed or offset; see the module notes (SPEC S1, S2)."""
    template = mask_template(X, noise)
    compute = jnp.dtype(scale_compute_dtype(jnp.dtype(X.dtype).name))
    if isinstance(rate, float):
        threshold_int, scale64 = python_rate(rate)
        drop_all: Any = threshold_int > MASK32
        threshold: Any = jnp.uint32(0 if drop_all else threshold_int)
        scale = jnp.asarray(scale64, compute)
        invalid = None
    else:
        work = "float64" if x64() else "float32"
        terms = runtime_rate(_scalar(rate, "dropout", "float"), work, MATH)
        drop_all, invalid = terms.drop_all, terms.invalid
        threshold = terms.threshold.astype(jnp.uint32)
        scale = terms.scale.astype(compute)
    if seed is None:
        w = jax.random.bits(key, template.shape, dtype=jnp.uint32)
    else:
        w = words(template, seed, offset)
    keep = _materialized((w >= threshold) & ~jnp.asarray(drop_all))
    scaled = (X.astype(compute) * scale).astype(X.dtype)
    out = jnp.where(keep, scaled, jnp.zeros((), X.dtype))
    if invalid is not None:
        out = jnp.where(invalid, jnp.full((), jnp.nan, X.dtype), out)
    return out
