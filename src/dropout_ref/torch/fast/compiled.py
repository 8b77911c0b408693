"""Fused portable keep mask: the Philox generator compiled into one kernel by ``torch.compile``.

The generator itself is :mod:`dropout_ref.core.philox`; this module only changes
how it is *run*. Op by op, Philox4x32-10 makes ~150 passes over ``int64``
arrays (seconds at 2**24 elements on a CPU); compiled, it is one pass.

The key words, the counter offset and the threshold enter as 0-d tensors,
not Python ints, so one compiled kernel (with a dynamic size) serves every
seed: the compile cost is paid once per process, not per training step.
The result is checked bit for bit against the NumPy oracle in the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from dropout_ref.core.philox import MASK32, block_span, philox4x32_10_keyed, seed_key
from dropout_ref.torch.philox import TORCH_OPS, keep_mask

#: Element count from which ``dropout_layer(..., seed=...)`` uses the compiled
#: kernel. Measured on a 2-core CPU (docs/benchmark.md): unfused, 2**20 elements
#: take ~3 s and 2**22 ~13 s per call; the one-off compile takes ~10-60 s
#: (less with inductor's on-disk cache). From 2**22 the compile is repaid
#: within a few calls.
FUSE_MIN_SIZE = 1 << 22


def _block_keep_mask(
    n_blocks: int,
    low: torch.Tensor,
    high: torch.Tensor,
    k0: torch.Tensor,
    k1: torch.Tensor,
    threshold: torch.Tensor,
) -> torch.Tensor:
    # Only the block count enters (as a dynamic size), not X: one kernel
    # serves every shape and every dtype of X.
    index = torch.arange(n_blocks, dtype=torch.int64, device=low.device)
    words = philox4x32_10_keyed(TORCH_OPS, (index + low, high, 0, 0), k0, k1)
    # 1 where word >= threshold, else 0, as uint8: the sign of word - threshold
    # (both below 2**33, no overflow; >> is arithmetic). Inductor's CPU code for a
    # bool-valued compare stores ~4x slower than for uint8 (docs/benchmark.md);
    # the caller views the bytes as bool without a copy. Four mask bytes per
    # block, in word order (layout v2): row-major (n_blocks, 4) is element order.
    keep = [(((w - threshold) >> 63) + 1).to(torch.uint8) for w in words]
    return torch.stack(keep, dim=-1)


#: Inductor options. The element count is a dynamic size whose hint is the
#: first call's count; inductor decides OpenMP parallelism from that hint, so a
#: small first call (a test, a warm-up) gave a serial kernel for every later
#: 2**24-element call. ``cpp.dynamic_threads`` always emits the parallel loop
#: and leaves serial vs parallel to the OpenMP runtime at run time.
_COMPILE_OPTIONS = {"cpp.dynamic_threads": True}

_compiled: Any = None
#: Compiled kernels switched off in this process ("mask", "select") and why, e.g. no C++
#: compiler: each falls back to its exact unfused path, independently of the other.
disabled: dict[str, str] = {}


def try_compiled(kind: str, kernel: Callable[..., torch.Tensor], *args: Any) -> torch.Tensor | None:
    """Run a compiled kernel; return ``None`` (and switch ``kind`` off) if it cannot run here.

    Memory errors propagate: the unfused fallback needs more memory, not less.
    """
    if kind in disabled:
        return None
    try:
        return kernel(*args)
    except (torch.OutOfMemoryError, MemoryError):
        raise
    except Exception as exc:  # e.g. no C++ compiler, a lowering failure: stay exact, unfused
        disabled[kind] = f"{type(exc).__name__}: {exc}"
        return None


def _scalar(value: int, device: torch.device) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.int64, device=device)


def _kernel_args(
    first_block: int, seed: int, threshold: int, device: torch.device
) -> tuple[torch.Tensor, ...]:
    """Return the compiled kernels' data: block counter (low, high), key (k0, k1), threshold.

    0-d tensors, not Python ints, so one compilation serves every seed and offset.
    """
    k0, k1 = seed_key(seed)
    values = (first_block & MASK32, first_block >> 32, k0, k1, threshold)
    return tuple(_scalar(value, device) for value in values)


def fusable(x: torch.Tensor, offset: int) -> bool:
    """Whether the compiled kernel computes this mask: no block counter carries into c1."""
    first_block, _, n_blocks = block_span(offset, x.numel())
    return (first_block & MASK32) + n_blocks <= 2**32


def chosen_for(x: torch.Tensor, offset: int) -> bool:
    """Whether eager calls take the compiled kernel for ``x``: large enough and fusable."""
    return x.numel() >= FUSE_MIN_SIZE and fusable(x, offset)


def fused_keep_mask(x: torch.Tensor, threshold: int, seed: int, offset: int) -> torch.Tensor:
    """Return the portable keep mask of ``x`` (SPEC P), computed by one compiled kernel.

    Parameters
    ----------
    x : torch.Tensor
        Only its shape and device are used.
    threshold : int
        ``ceil(p * 2**32)``; an element is kept iff its word ``w >= threshold``.
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int
        Counter of element 0; :func:`fusable` must hold.

    Returns
    -------
    torch.Tensor
        Bool tensor of ``x``'s shape on ``x``'s device, equal bit for bit to
        :func:`dropout_ref.torch.philox.keep_mask`.

    """
    global _compiled
    if not fusable(x, offset):
        raise ValueError(
            f"fused_keep_mask: block counters carry into the upper word "
            f"(offset={offset}, {x.numel()} elements); use dropout_ref.torch.philox.keep_mask"
        )
    first_block, lane, n_blocks = block_span(offset, x.numel())
    args = _kernel_args(first_block, seed, threshold, x.device)
    if _compiled is None:
        _compiled = torch.compile(
            _block_keep_mask, dynamic=True, fullgraph=True, options=_COMPILE_OPTIONS
        )
    blocks = _compiled(n_blocks, *args)
    # A contiguous slice of the flat bytes: a view, no copy.
    flat = blocks.reshape(-1)[lane : lane + x.numel()]
    return flat.view(torch.bool).reshape(x.shape)


def _where_scaled(x: torch.Tensor, keep_bytes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    # The product in scale's dtype (float32 for 16-bit X, as ATen's opmath does),
    # rounded once into X's dtype; a select, so NaN/inf X still give +0.0 (D5, D6).
    product = (x.to(scale.dtype) * scale).to(x.dtype)
    # The mask's bytes widened to int32 and tested: inductor's vector code for a
    # bool (or uint8) condition loaded directly ran 2x slower (57 vs 31 ms at 2**24).
    keep = keep_bytes.to(torch.int32) != 0
    return torch.where(keep, product, torch.zeros((), dtype=x.dtype, device=x.device))


_compiled_select: Any = None
#: Dynamo's recompile limit while *our* select runs (the user's global setting stays).
#: Each dtype and each input rank (Dynamo guards the flat view's base) is one cache
#: entry; the default 8 would be reached by a process meeting four dtypes and a few
#: ranks, after which ``fullgraph=True`` raises and the fast path is switched off.
SELECT_RECOMPILE_LIMIT = 64


def fused_select_scaled(x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
    """Return ``where(keep, x * scale, +0.0)`` computed by one compiled kernel (no autograd).

    The same values as :func:`dropout_ref.torch.ops.scaled_select_no_grad`
    (scale rounded into float32, or float64 for float64 ``x``; one rounding
    into ``x``'s dtype), in one pass: ATen's ``where``/``masked_fill`` after the
    product cost ~35 ms more at 2**24 float32 on a 2-core CPU (docs/benchmark.md).
    Inputs go in flat (sizes are dynamic), so shapes do not multiply the compiles.
    """
    global _compiled_select
    if _compiled_select is None:
        _compiled_select = torch.compile(
            _where_scaled, dynamic=True, fullgraph=True, options=_COMPILE_OPTIONS
        )
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    scale_tensor = torch.tensor(scale, dtype=compute, device=x.device)
    with torch._dynamo.config.patch(recompile_limit=SELECT_RECOMPILE_LIMIT):
        flat = _compiled_select(
            x.reshape(-1), keep.reshape(-1).view(torch.uint8), scale_tensor
        )
    return flat.view(x.shape)


def _block_dropout(
    x4: torch.Tensor,
    low: torch.Tensor,
    high: torch.Tensor,
    k0: torch.Tensor,
    k1: torch.Tensor,
    threshold: torch.Tensor,
    scale: torch.Tensor,
) -> torch.Tensor:
    # x4 is (n_blocks, 4): row b holds the four elements that read block b's four words
    # (layout v2), so one Philox block per row serves four outputs. Inductor computes
    # the block once per row and stores the four selects of that row (one kernel, one pass).
    index = torch.arange(x4.shape[0], dtype=torch.int64, device=x4.device)
    words = philox4x32_10_keyed(TORCH_OPS, (index + low, high, 0, 0), k0, k1)
    zero = torch.zeros((), dtype=x4.dtype, device=x4.device)
    outs = [
        # The product in scale's dtype, rounded once into X's dtype; a select (D5, D6).
        torch.where(w >= threshold, (x4[:, k].to(scale.dtype) * scale).to(x4.dtype), zero)
        for k, w in enumerate(words)
    ]
    return torch.stack(outs, dim=1)


_compiled_dropout: Any = None


def fused_philox_dropout(
    x: torch.Tensor, threshold: int, seed: int, offset: int, scale: float
) -> torch.Tensor:
    """Return the portable dropout of ``x`` (mask and select) with one compiled pass over ``x``.

    The same values bit for bit as :func:`dropout_ref.torch.philox.keep_mask`
    followed by the select. The elements before the first block boundary and
    after the last (at most 3 each, when ``offset`` or the size is not a
    multiple of 4) go the op-by-op way; :func:`fusable` must hold.
    """
    global _compiled_dropout
    if not fusable(x, offset):
        raise ValueError(
            f"fused_philox_dropout: block counters carry into the upper word "
            f"(offset={offset}, {x.numel()} elements)"
        )
    if _compiled_dropout is None:
        _compiled_dropout = torch.compile(
            _block_dropout, dynamic=True, fullgraph=True, options=_COMPILE_OPTIONS
        )
    flat = x.reshape(-1)
    n = flat.numel()
    head = min((-offset) % 4, n)
    rows = (n - head) // 4
    body_end = head + 4 * rows
    device = x.device
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    first_block = (offset + head) // 4
    args = (
        *_kernel_args(first_block, seed, threshold, device),
        torch.tensor(scale, dtype=compute, device=device),
    )
    with torch._dynamo.config.patch(recompile_limit=SELECT_RECOMPILE_LIMIT):
        body = _compiled_dropout(flat[head:body_end].view(rows, 4), *args).view(-1)
    if head == 0 and body_end == n:
        return body.view(x.shape)

    def edge(start: int, stop: int) -> torch.Tensor:
        part = flat[start:stop]
        keep = keep_mask(part, threshold, seed, offset + start)
        product = (part.to(compute) * scale).to(x.dtype)
        return torch.where(keep, product, torch.zeros((), dtype=x.dtype, device=device))

    return torch.cat([edge(0, head), body, edge(body_end, n)]).view(x.shape)
