"""``portable_masks`` inside ``jax.jit`` / ``nnx.jit`` (SPEC P9).

Two ways a context meets a trace:

- entered INSIDE the traced function, ``seed`` may be a traced integer
  (``int32``/``uint32`` read as its 32 bits, the two-word ``uint32[2]`` form of
  :func:`dropout_ref.jax.runtime.seed_words` for any 64-bit seed, or
  ``int64``/``uint64`` with ``jax_enable_x64``): the sites are numbered at trace
  time from 0, the seed is an argument of the program, so one program serves
  every seed;
- entered EAGERLY around calls of a compiled step: the seed and the count live
  in a ``jax.Ref`` of this thread (``uint32[3]``: seed low and high words,
  count). A site traced inside the context reads the ref and writes the count
  back, both in program order, so the program numbers its sites when it runs:
  the k-th call continues where the (k-1)-th stopped, and a later context (it
  only rewrites the ref) reuses the program with its own seed. Eager sites
  read and advance the same ref, so eager and compiled steps share one
  numbering.

The jit cache key: every context sets a ``jax.make_user_context`` value,
``("dropout_ref.portable_masks", mode, thread)``. A function traced outside any
context (native Flax masks) is traced again when called inside one, and a
function traced inside one is traced again outside (so it drops natively
there, as Flax would); contexts of one thread share one program per mode.

A site under ``jax.vmap`` is refused: one site would serve every batch member,
where the eager loop numbers each member's dropout. A site reading the run-time
state under ``jax.checkpoint`` is refused: its recomputation would renumber it.
The count is a ``uint32``: past ``2**24`` sites the offsets wrap modulo
``2**64`` as ``j * 2**40`` does (an eager site there raises instead; nothing
checks inside a program).
"""

from __future__ import annotations

import threading
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax._src import core as jax_core
from jax._src.interpreters.batching import BatchTracer

from dropout_ref.core.philox import MASK32
from dropout_ref.core.sites import MAX_SITES, SiteCounter, validate_context_seed

__all__ = ["COMPILED", "JaxCompiledSites", "JaxRunTimeSites", "refuse_vmap"]

#: Part of every jit cache key: which kind of context (if any) a trace was made in.
_CACHE_KEY = jax.make_user_context(None)

#: ``site_offset(j)`` is ``j << 40``: its low word is 0 and its high word ``j << 8``.
_HIGH_WORD_SHIFT = 40 - 32


def refuse_vmap(inputs: Any, source: str) -> None:
    """Refuse a site under ``jax.vmap`` (one number would serve every batch member; P9)."""
    if isinstance(inputs, BatchTracer):
        raise RuntimeError(
            f"{source} under jax.vmap inside dropout_ref.jax.portable_masks: one site would "
            "serve every member of the batch, where an eager loop numbers each member's "
            "dropout. Loop over the batch, or call dropout_layer with per-member offsets "
            "(SPEC P9)"
        )


class JaxRunTimeSites:
    """The run-time seed and count of one thread, in a ``jax.Ref`` that programs capture."""

    def __init__(self) -> None:
        self.ref = jax.new_ref(jnp.zeros((3,), jnp.uint32))

    def start(self, seed: int) -> None:
        """Set the seed words and restart the count at 0."""
        self.ref[...] = jnp.asarray([seed & MASK32, seed >> 32, 0], jnp.uint32)

    def _host(self) -> np.ndarray:
        # Reading the ref waits for every program dispatched before (they write it).
        return np.asarray(self.ref[...])

    def count(self) -> int:
        """Return the count: every site numbered so far, compiled ones included."""
        return int(self._host()[2])

    def take(self) -> int:
        """Return the count for an eager site and advance it."""
        state = self._host()
        j = int(state[2])
        if j >= MAX_SITES - 1:
            raise ValueError(f"portable_masks numbered {j} sites, the most it can number")
        self.ref[...] = jnp.asarray([state[0], state[1], j + 1], jnp.uint32)
        return j

    def traced(self, X: Any) -> bool:
        """Whether ``X`` is traced by ``jit`` (``grad`` alone keeps concrete values)."""
        return isinstance(X, jax.core.Tracer) and not jax_core.is_concrete(X)

    def draw(self) -> tuple[jax.Array, jax.Array]:
        """Read seed and count at run time, advance the count; return seed and offset words."""
        _refuse_remat()
        state = self.ref[...]
        self.ref[...] = state + jnp.asarray([0, 0, 1], jnp.uint32)
        offset = jnp.stack([jnp.uint32(0), state[2] << _HIGH_WORD_SHIFT])
        return state[:2], offset


def _refuse_remat() -> None:
    """Refuse a run-time site under ``jax.checkpoint``: its recomputation would renumber it.

    The backward pass of a remat region runs the forward again, reading the ref
    again: the site would get the next number, the gradient another mask than
    the forward's (JAX allows ref effects in remat). The trace chain says
    whether a ``checkpoint`` is being traced.
    """
    trace = jax_core.trace_ctx.trace
    while trace is not None:
        info = getattr(getattr(trace, "frame", None), "debug_info", None)
        if str(getattr(info, "traced_for", "")).startswith("checkpoint"):
            raise RuntimeError(
                "a Dropout under jax.checkpoint (remat) inside dropout_ref.jax.portable_masks "
                "entered outside the traced function: the backward pass would recompute it "
                "with the next site number, so the gradient would use another mask. Keep the "
                "Dropout outside jax.checkpoint, or enter portable_masks(seed) inside the "
                "traced function (SPEC P9)"
            )
        trace = getattr(trace, "parent_trace", None)


class JaxCompiledSites:
    """:class:`dropout_ref.core.sites.CompiledSites` for JAX (see the module notes)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def traced_seed(self, seed: Any) -> Any:
        """Check a traced seed (integer dtype; 0-d, or ``uint32[2]`` words); ``None`` if not."""
        if not isinstance(seed, jax.Array):
            return None
        if not isinstance(seed, jax.core.Tracer) or jax_core.is_concrete(seed):
            return _concrete_seed(seed)
        if not jnp.issubdtype(seed.dtype, jnp.integer):
            raise TypeError(
                f"portable_masks seed must be an integer array, got a traced {seed.dtype} "
                f"array {seed.aval.str_short()} (SPEC P9)"
            )
        words = seed.shape == (2,) and seed.dtype == jnp.uint32
        if seed.shape != () and not words:
            raise TypeError(
                "portable_masks seed must be a 0-d integer array or uint32[2] words "
                f"(dropout_ref.jax.runtime.seed_words), got {seed.aval.str_short()} (SPEC P9)"
            )
        return seed

    def tracing(self) -> bool:
        """Whether the context is entered inside a trace (``jit``, ``grad``, ...)."""
        return not isinstance(jax_core.trace_ctx.trace, jax_core.EvalTrace)

    def open(self, counter: SiteCounter, in_trace: bool) -> JaxRunTimeSites | None:
        """Set the cache key; for an eager entry, this thread's ref with the context's seed."""
        mode = "inside-trace" if in_trace else "eager"
        key = _CACHE_KEY(("dropout_ref.portable_masks", mode, threading.get_ident()))
        key.__enter__()
        self._local.key = key
        if in_trace:
            return None
        runtime = getattr(self._local, "runtime", None)
        if runtime is None:
            runtime = self._local.runtime = JaxRunTimeSites()
        runtime.start(counter.seed)
        return runtime

    def close(self, counter: SiteCounter) -> None:
        """Restore the cache key and detach the run-time state."""
        counter.runtime = None
        key = getattr(self._local, "key", None)
        self._local.key = None
        if key is not None:
            key.__exit__(None, None, None)


def _concrete_seed(seed: jax.Array) -> int:
    """Return a concrete array seed as a checked Python int (``uint32[2]`` words joined)."""
    if seed.shape == (2,) and seed.dtype == jnp.uint32:
        low, high = (int(w) for w in np.asarray(seed))
        return low | high << 32
    if seed.shape != () or not jnp.issubdtype(seed.dtype, jnp.integer):
        raise TypeError(
            "portable_masks seed must be an integer in [0, 2**64), got an array of "
            f"dtype {seed.dtype} and shape {tuple(seed.shape)}"
        )
    return validate_context_seed(int(seed))


#: The one instance the JAX context uses.
COMPILED = JaxCompiledSites()
