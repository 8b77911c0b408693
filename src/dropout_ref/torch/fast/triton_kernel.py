"""One-pass dropout on CUDA tensors: a Triton kernel (SPEC G2, G3; P3 layout v2).

One program handles ``BLOCK`` consecutive Philox blocks, i.e. ``4 * BLOCK``
consecutive element slots: it computes each block once with ``tl.philox``
(the Philox4x32-10 of ``tl.randint4x``) at the counter ``(c & 0xFFFFFFFF,
c >> 32, 0, 0)``, spreads the four output words over four consecutive
elements (layout v2: element ``g`` reads word ``g % 4`` of block ``g // 4``),
loads ``X``, applies the keep rule ``w >= threshold`` as a 64-bit compare
(so ``threshold == 2**32`` drops every element), scales in float32 (float64
for float64 ``X``, :func:`dropout_ref.core.thresholds.scale_compute_dtype`) and
stores the select ``keep ? X * scale : +0.0`` -- a select, so NaN/inf ``X``
still give ``+0.0`` where dropped (D6). One read of ``X``, one write of the
output, nothing else per element.

Backward is the same kernel applied to the incoming gradient with the same
key and counters (``where(keep, G * scale, 0)``, D8): the mask is recomputed,
so nothing per element is saved for backward (see
:mod:`dropout_ref.torch.fast.custom_ops`).

The key comes either as a Python int (``seed=`` mode) or from a 1-element
``int64`` tensor on the device (default mode: drawn from torch's generator of
``X``'s device by the caller, so no host round trip and no synchronisation).

Triton is imported lazily: without it (or without a GPU) :func:`available`
is false and the callers keep the exact torch-ops paths. Under
``TRITON_INTERPRET=1`` the kernel runs on CPU tensors (the tests use this to
check it bit for bit on a machine without a GPU; see :func:`interpret_on_cpu`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import struct
from collections.abc import Iterator
from typing import Any

import torch

from dropout_ref.core.philox import COUNTER_SPACE, MASK32, block_span

#: Philox blocks per program (4 elements each). Untuned: 1024 blocks = 4096
#: elements per program, 8 warps.
BLOCK = 1024
NUM_WARPS = 8
#: The kernel computes block counters as ``first_block + i`` in signed 64-bit:
#: counters from here on take the exact torch-ops path instead.
MAX_FIRST_BLOCK = 2**62

_cpu_interpretation = False


@functools.cache
def _triton() -> Any:
    """Return the ``triton`` module, or ``None`` if it cannot be imported."""
    try:
        import triton
        import triton.language
    except Exception:  # ImportError, or a broken install (e.g. no CUDA driver libraries)
        return None
    return triton


#: Set ``DROPOUT_REF_NO_TRITON=1`` to keep CUDA tensors on the exact torch-ops paths
#: (e.g. to compare the two on a GPU); read at import.
DISABLED = os.environ.get("DROPOUT_REF_NO_TRITON", "0") not in ("", "0")


def unavailable_reason() -> str | None:
    """Return why the Triton kernel cannot run here, or ``None`` if it can."""
    if DISABLED:
        return "switched off by DROPOUT_REF_NO_TRITON=1"
    if _triton() is None:
        return "triton is not installed"
    return None


# Dynamo evaluates this at trace time and keeps the answer as a constant (under
# torch.compile it would otherwise trace the lazy import behind functools.cache).
@torch.compiler.assume_constant_result
def kernel_available() -> bool:
    """Return whether the kernel can run in this process (Triton imports, not switched off)."""
    return not DISABLED and _triton() is not None


def interpreting() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@contextlib.contextmanager
def interpret_on_cpu() -> Iterator[None]:
    """Route CPU tensors through the kernel while ``TRITON_INTERPRET=1`` (tests only)."""
    global _cpu_interpretation
    if not interpreting():
        raise RuntimeError("interpret_on_cpu needs TRITON_INTERPRET=1 set before importing triton")
    previous, _cpu_interpretation = _cpu_interpretation, True
    try:
        yield
    finally:
        _cpu_interpretation = previous


def applies(x: torch.Tensor, first_block: int = 0) -> bool:
    """Return whether :func:`dropout` runs for ``x``.

    It does for a float CUDA tensor (or a CPU one under :func:`interpret_on_cpu`)
    where Triton imports and the counters are in range.
    """
    if x.device.type == "cuda":
        pass
    elif not (_cpu_interpretation and x.device.type == "cpu"):
        return False
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        return False
    return first_block < MAX_FIRST_BLOCK and kernel_available()


def _float_bits(value: float, double: bool) -> int:
    """Return the IEEE bits of ``value`` rounded to float32 (or float64), as a signed int."""
    if double:
        return struct.unpack("<q", struct.pack("<d", value))[0]
    return struct.unpack("<i", struct.pack("<f", value))[0]


@functools.cache
def _kernel() -> Any:
    """Compile-on-first-use: define the ``@triton.jit`` kernel (needs triton)."""
    import triton
    import triton.language as tl

    @triton.jit
    def dropout_kernel(
        x_ptr,
        out_ptr,
        key_ptr,
        seed,
        first_block,
        lane,
        n,
        threshold,
        scale_bits,
        KEY_IN_MEMORY: tl.constexpr,
        COMPUTE_F64: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        pid = tl.program_id(0).to(tl.int64)
        rel = pid * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
        # Scalars equal to 1 may arrive as constexprs: only mix them with tensors.
        counter = rel + first_block
        c0 = (counter & 0xFFFFFFFF).to(tl.uint32)
        c1 = (counter >> 32).to(tl.uint32)
        zero = c0 * 0
        if KEY_IN_MEMORY:
            key = tl.load(key_ptr)
        else:
            key = seed
        w0, w1, w2, w3 = tl.philox(key, c0, c1, zero, zero)
        # Word k of block b goes to slot 4 * b + k: join(join(w0, w2), join(w1, w3))
        # has shape (BLOCK, 2, 2) with [b, j, i] = word 2 * j + i, row-major = slot order.
        words = tl.reshape(tl.join(tl.join(w0, w2), tl.join(w1, w3)), (4 * BLOCK,))
        slot = pid * (4 * BLOCK) + tl.arange(0, 4 * BLOCK).to(tl.int64)
        index = slot - lane
        inside = (index >= 0) & (index < n)
        x = tl.load(x_ptr + index, mask=inside, other=0.0)
        # Unsigned word vs a threshold in [0, 2**32]: compare in 64 bits.
        keep = words.to(tl.int64) >= threshold
        if COMPUTE_F64:
            scale = scale_bits.to(tl.int64).to(tl.float64, bitcast=True)
            product = x.to(tl.float64) * scale
        else:
            scale = scale_bits.to(tl.int32).to(tl.float32, bitcast=True)
            product = x.to(tl.float32) * scale
        if x.dtype == tl.bfloat16:
            # float32 -> bfloat16 rounded to nearest even in integers: the same on the GPU
            # and in the interpreter (whose own cast truncates). Finite and inf products only
            # need this; a NaN product stays a NaN (its payload is in the upper half).
            bits = product.to(tl.uint32, bitcast=True)
            bits = bits + 0x7FFF + ((bits >> 16) & 1)
            rounded = (bits >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)
        else:
            rounded = product.to(x.dtype)
        out = tl.where(keep, rounded, 0.0)
        tl.store(out_ptr + index, out.to(x.dtype), mask=inside)

    return dropout_kernel


def dropout(
    x: torch.Tensor,
    threshold: int,
    scale: float,
    *,
    seed: int | None = None,
    key: torch.Tensor | None = None,
    offset: int = 0,
) -> torch.Tensor:
    """Return ``where(w >= threshold, x * scale, +0.0)`` in one pass (one kernel launch).

    Parameters
    ----------
    x : torch.Tensor
        Float input on a CUDA device (any layout; a non-contiguous one is copied).
    threshold : int
        ``ceil(p * 2**32)`` in ``[0, 2**32]``.
    scale : float
        ``1 / (1 - p)``; rounded to float32 (float64 for float64 ``x``) once.
    seed : int, optional
        Philox seed in ``[0, 2**64)`` (portable mode); exactly one of ``seed``, ``key``.
    key : torch.Tensor, optional
        1-element ``int64`` tensor on ``x``'s device holding a seed in ``[0, 2**63)``
        (default mode: drawn from the device's generator without a host round trip).
    offset : int, optional
        Counter of element 0 (P4).

    Returns
    -------
    torch.Tensor
        A new contiguous tensor of ``x``'s shape and dtype.

    """
    if (seed is None) == (key is None):
        raise TypeError("triton_kernel.dropout: give exactly one of seed= and key=")
    if not 0 <= offset < COUNTER_SPACE:
        raise ValueError(f"offset must be in [0, 2**64), got {offset!r}")
    first_block, lane, n_blocks = block_span(offset, x.numel())
    if first_block >= MAX_FIRST_BLOCK:
        raise ValueError(f"offset={offset} is beyond the kernel's counters (first block >= 2**62)")
    src = x.contiguous()
    out = torch.empty_like(src, memory_format=torch.contiguous_format)
    n = src.numel()
    if n == 0:
        return out
    double = x.dtype == torch.float64
    grid = (-(-n_blocks // BLOCK),)
    in_memory = key is not None
    _kernel()[grid](
        src,
        out,
        key if in_memory else src,
        0 if in_memory else int(seed) & (2**64 - 1),
        first_block,
        lane,
        n,
        threshold,
        _float_bits(scale, double),
        KEY_IN_MEMORY=in_memory,
        COMPUTE_F64=double,
        BLOCK=BLOCK,
        num_warps=NUM_WARPS,
    )
    return out


def words(n_blocks: int, seed: int, first_block: int = 0, device: str = "cuda") -> torch.Tensor:
    """Return ``tl.randint4x(seed, c)`` for ``c`` in ``first_block .. + n_blocks`` as ``(n, 4)``.

    Triton's own entry point, kept separate from :func:`dropout` so the tests
    can use it as an independent oracle of P3 (counters below ``2**32``).
    """
    if first_block + n_blocks > MASK32 + 1:
        raise ValueError("words: tl.randint4x is an oracle only for counters below 2**32")
    out = torch.empty((n_blocks, 4), dtype=torch.int64, device=device)
    block = 128
    _randint4x_kernel()[(-(-n_blocks // block),)](out, seed, first_block, n_blocks, BLOCK=block)
    return out


@functools.cache
def _randint4x_kernel() -> Any:
    import triton
    import triton.language as tl

    @triton.jit
    def randint4x_kernel(out_ptr, seed, first_block, n, BLOCK: tl.constexpr):
        i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        inside = i < n
        counter = (first_block + i).to(tl.uint32)
        w0, w1, w2, w3 = tl.randint4x(seed, counter)
        tl.store(out_ptr + 4 * i, w0.to(tl.uint32).to(tl.int64), mask=inside)
        tl.store(out_ptr + 4 * i + 1, w1.to(tl.uint32).to(tl.int64), mask=inside)
        tl.store(out_ptr + 4 * i + 2, w2.to(tl.uint32).to(tl.int64), mask=inside)
        tl.store(out_ptr + 4 * i + 3, w3.to(tl.uint32).to(tl.int64), mask=inside)

    return randint4x_kernel
