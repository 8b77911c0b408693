"""The numba kernels behind :mod:`dropout_ref.kernels.cpu` (imported only by it, lazily).

All integer work is in ``uint64`` with every constant typed ``uint64``: numba
types a mix of ``uint64`` and ``int64`` as ``float64``, which would silently
lose bits. A Philox word is below ``2**32``, so ``word * multiplier`` is an
exact 64-bit product whose high and low halves are ``mulhi`` and ``mullo``.
``parallel=True`` splits the block loop over numba's threads; ``fastmath`` is
off so products, NaN and infinities follow IEEE exactly as NumPy's do.
"""

from __future__ import annotations

import os

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from dropout_ref.core.philox import M0 as _M0
from dropout_ref.core.philox import M1 as _M1
from dropout_ref.core.philox import ROUNDS
from dropout_ref.core.philox import W0 as _W0
from dropout_ref.core.philox import W1 as _W1

numba_version = numba.__version__

# numba's default threading layer here is OpenMP, a second OpenMP runtime beside
# MXNet's (and torch's): after each of their ops their threads spin, and numba's
# wait for a core (5.8 ms instead of 0.55 ms for 2^16 elements interleaved with
# npx.dropout on 2 cores, docs/cpu-kernel.md). The workqueue layer has no spinning
# pool. It must not be entered from two threads at once, so cpu_kernel serialises
# its launches. A user's own NUMBA_THREADING_LAYER wins; so does a layer already
# started before this import.
if "NUMBA_THREADING_LAYER" not in os.environ and numba.config.THREADING_LAYER == "default":
    numba.config.THREADING_LAYER = "workqueue"


def set_threads(threads: int) -> None:
    """Let the calling thread's next parallel launches use at most ``threads`` threads."""
    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))


M0 = np.uint64(_M0)
M1 = np.uint64(_M1)
W0 = np.uint64(_W0)
W1 = np.uint64(_W1)
MASK32 = np.uint64(0xFFFFFFFF)
SHIFT32 = np.uint64(32)
ZERO = np.uint64(0)


@intrinsic
def _widen(typingctx: object, v: types.Type) -> object:
    """Return ``v`` in its compute dtype: float16 bits (``uint16``) widened to float32 exactly."""
    if v == types.uint16:

        def codegen_half(context, builder, sig, args):
            return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

        return types.float32(v), codegen_half
    if isinstance(v, types.Float):
        return v(v), lambda context, builder, sig, args: args[0]
    return None


@intrinsic
def _narrow(typingctx: object, v: types.Type, arr: types.Type) -> object:
    """Return ``v`` rounded once (nearest, ties to even) into ``arr``'s element type."""
    dtype = arr.dtype
    if dtype == types.uint16 and v == types.float32:

        def codegen_half(context, builder, sig, args):
            half = builder.fptrunc(args[0], ir.HalfType())
            return builder.bitcast(half, ir.IntType(16))

        return types.uint16(v, arr), codegen_half
    if dtype == v:
        return v(v, arr), lambda context, builder, sig, args: args[0]
    return None


@njit(inline="always")
def _philox_block(c0, c1, k0, k1):
    """Philox4x32-10 of the counter ``(c0, c1, 0, 0)`` under the key ``(k0, k1)``."""
    c2 = ZERO
    c3 = ZERO
    for _ in range(ROUNDS):
        p0 = c0 * M0
        p1 = c2 * M1
        n0 = (p1 >> SHIFT32) ^ c1 ^ k0
        n2 = (p0 >> SHIFT32) ^ c3 ^ k1
        c1 = p1 & MASK32
        c3 = p0 & MASK32
        c0 = n0
        c2 = n2
        k0 = (k0 + W0) & MASK32
        k1 = (k1 + W1) & MASK32
    return c0, c1, c2, c3


@intrinsic
def _zero(typingctx: object, arr: types.Type) -> object:
    """Return +0.0 (all bits clear) in ``arr``'s element type."""
    dtype = arr.dtype

    def codegen(context, builder, sig, args):
        return context.get_constant(dtype, 0)

    return dtype(arr), codegen


#: Blocks per parallel chunk: the words of a chunk (16 KiB as uint32) stay in the L1 cache.
CHUNK_BLOCKS = 1024


@njit(inline="always")
def _chunk_words(words, j0, j1, first_block, k0, k1):
    """Write the four words of blocks ``j0 .. j1 - 1`` into ``words``, block after block."""
    for j in range(j0, j1):
        b = first_block + np.uint64(j)
        w0, w1, w2, w3 = _philox_block(b & MASK32, b >> SHIFT32, k0, k1)
        k = (j - j0) * 4
        words[k] = w0
        words[k + 1] = w1
        words[k + 2] = w2
        words[k + 3] = w3


@njit(inline="always")
def _fused_chunk(c, x, out, mask, k0, k1, first_block, lane, threshold, scale):
    """Chunk ``c`` of :func:`fused_select`: draw its words, then select its elements."""
    n = x.size
    n_blocks = (lane + n + 3) // 4
    j0 = c * CHUNK_BLOCKS
    j1 = min(j0 + CHUNK_BLOCKS, n_blocks)
    words = np.empty(CHUNK_BLOCKS * 4, dtype=np.uint32)
    _chunk_words(words, j0, j1, first_block, k0, k1)
    # Element i reads word (lane + i) - 4 * j0 of this chunk.
    i0 = max(j0 * 4 - lane, 0)
    i1 = min(j1 * 4 - lane, n)
    shift = j0 * 4 - lane
    zero = _zero(out)
    if mask.size == 0:
        for i in range(i0, i1):
            v = _narrow(_widen(x[i]) * scale, out)
            out[i] = v if np.uint64(words[i - shift]) >= threshold else zero
    else:
        for i in range(i0, i1):
            keep = np.uint64(words[i - shift]) >= threshold
            mask[i] = keep
            v = _narrow(_widen(x[i]) * scale, out)
            out[i] = v if keep else zero


@njit(inline="always")
def _mask_chunk(c, out, k0, k1, first_block, lane, threshold):
    """Chunk ``c`` of :func:`keep_mask`."""
    n = out.size
    n_blocks = (lane + n + 3) // 4
    j0 = c * CHUNK_BLOCKS
    j1 = min(j0 + CHUNK_BLOCKS, n_blocks)
    words = np.empty(CHUNK_BLOCKS * 4, dtype=np.uint32)
    _chunk_words(words, j0, j1, first_block, k0, k1)
    i0 = max(j0 * 4 - lane, 0)
    i1 = min(j1 * 4 - lane, n)
    shift = j0 * 4 - lane
    for i in range(i0, i1):
        out[i] = np.uint64(words[i - shift]) >= threshold


@njit(inline="always")
def _chunk_count(n, lane):
    return ((lane + n + 3) // 4 + CHUNK_BLOCKS - 1) // CHUNK_BLOCKS


@njit(parallel=True, cache=True, fastmath=False)
def fused_select(x, out, mask, k0, k1, first_block, lane, threshold, scale):
    """``out[i] = x[i] * scale`` if the Philox word of element ``offset + i`` is kept, else +0.0.

    ``x``/``out`` are flat (float16 as ``uint16`` bits); ``mask`` (``uint8``) is
    either empty or of ``x``'s size, and then receives the keep mask in the same
    pass. ``first_block = offset // 4``, ``lane = offset % 4``; all integer
    arguments are ``uint64`` except ``lane``. Each chunk first draws its words
    (a vectorisable loop over blocks), then selects (a vectorisable, branch-free
    loop over elements); chunks run on numba's threads.
    """
    for c in prange(_chunk_count(x.size, lane)):
        _fused_chunk(c, x, out, mask, k0, k1, first_block, lane, threshold, scale)


@njit(cache=True, fastmath=False)
def fused_select_serial(x, out, mask, k0, k1, first_block, lane, threshold, scale):
    """:func:`fused_select` on the calling thread (small arrays: no hand-off to a pool)."""
    for c in range(_chunk_count(x.size, lane)):
        _fused_chunk(c, x, out, mask, k0, k1, first_block, lane, threshold, scale)


@njit(parallel=True, cache=True, fastmath=False)
def keep_mask(out, k0, k1, first_block, lane, threshold):
    """``out[i] = 1`` if the Philox word of element ``offset + i`` is ``>= threshold``, else 0."""
    for c in prange(_chunk_count(out.size, lane)):
        _mask_chunk(c, out, k0, k1, first_block, lane, threshold)


@njit(cache=True, fastmath=False)
def keep_mask_serial(out, k0, k1, first_block, lane, threshold):
    """:func:`keep_mask` on the calling thread (small arrays: no hand-off to a pool)."""
    for c in range(_chunk_count(out.size, lane)):
        _mask_chunk(c, out, k0, k1, first_block, lane, threshold)


@njit(parallel=True, cache=True, fastmath=False)
def masked_select(g, mask, out, scale):
    """``out[i] = g[i] * scale`` (rounded into ``out``'s dtype) where ``mask[i]``, else +0.0."""
    for i in prange(g.size):
        if mask[i]:
            out[i] = _narrow(_widen(g[i]) * scale, out)
        else:
            out[i] = 0
