"""The compiled numba kernel on CPU tensors' own memory (SPEC P3, P5 as amended).

:mod:`dropout_ref.kernels.cpu` draws the Philox words, applies the keep rule and
selects in one pass over ``X``. Here it runs on torch's memory, not a copy: the
kernel reads a NumPy view of a contiguous CPU tensor's storage and writes one of
the output's, allocated by torch (``torch.empty``). A non-contiguous ``X`` is made
contiguous first (the output is contiguous anyway). The views are made from the
tensors' data pointers (``__array_interface__``), not ``Tensor.numpy()``: no tensor
is converted to host data (SPEC P5; its test refuses ``numpy``/``__array__``), and
each view keeps its tensor alive.

The kernel runs inside the ``dropout_ref::philox_dropout`` custom operator
(:mod:`dropout_ref.torch.fast.custom_ops`: its fake gives the output's shape,
its autograd recomputes the mask from the counters), so ``torch.compile``
(``fullgraph=True``) and ``torch.export`` see one opaque node and never trace
NumPy. It uses at most ``torch.get_num_threads()`` threads, as an ATen kernel would.

float16, float32 and float64 go through the fused kernel; bfloat16, not a NumPy
dtype, gets the kernel's 1-byte mask and torch's select. Where numba is missing
or ``DROPOUT_REF_CPU_KERNEL=0``, :func:`applies` is false and the callers run
the torch paths they ran before.
"""

from __future__ import annotations

import numpy as np
import torch

from dropout_ref.kernels import cpu

#: dtypes the fused kernel reads and writes in place, and their NumPy dtypes.
NUMPY_DTYPES = {
    torch.float16: np.dtype(np.float16),
    torch.float32: np.dtype(np.float32),
    torch.float64: np.dtype(np.float64),
    torch.bool: np.dtype(np.bool_),
}
FUSED_DTYPES = (torch.float16, torch.float32, torch.float64)


class _Storage:
    """``__array_interface__`` of a contiguous CPU tensor's memory; holds the tensor."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor
        self.__array_interface__ = {
            "version": 3,
            "shape": tuple(tensor.shape),
            "typestr": NUMPY_DTYPES[tensor.dtype].str,
            "data": (tensor.data_ptr(), False),  # writable
            "strides": None,  # C-contiguous
        }


def host_view(tensor: torch.Tensor) -> np.ndarray:
    """Return a writable NumPy view of a contiguous CPU tensor's memory (no copy).

    The view's ``base`` keeps ``tensor`` alive. An empty tensor, whose data pointer
    may be null, gets an empty array of its shape (there is nothing to share).
    """
    if tensor.numel() == 0:
        return np.empty(tuple(tensor.shape), dtype=NUMPY_DTYPES[tensor.dtype])
    return np.asarray(_Storage(tensor))


def applies(x: torch.Tensor) -> bool:
    """Return whether the kernel can compute the mask of ``x``: a plain CPU tensor, numba there.

    Not under a ``torch.func`` transform: its tensors (and those made while it is
    active) are wrappers without storage that NumPy could view; the torch paths run.
    """
    return (
        x.device.type == "cpu"
        and not torch._C._are_functorch_transforms_active()
        and cpu.available()[0]
    )


def _contiguous_view(x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` as a contiguous tensor without autograd history (no copy when contiguous)."""
    return x.detach().contiguous()


def dropout(
    x: torch.Tensor, threshold: int, seed: int, offset: int, scale: float
) -> torch.Tensor | None:
    """Return the portable dropout of the whole of ``x`` in one kernel pass, or ``None``.

    ``None`` where the kernel cannot run this call (bfloat16, a compile failure):
    the caller takes another exact path (for bfloat16, :func:`keep_mask` and torch's select).

    Parameters
    ----------
    x : torch.Tensor
        CPU tensor of a floating dtype, any layout.
    threshold : int
        ``ceil(p * 2**32)`` in ``[1, 2**32]``.
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int
        Counter of element 0.
    scale : float
        ``1 / (1 - p)``.

    Returns
    -------
    torch.Tensor or None
        A new contiguous tensor of ``x``'s shape and dtype.
    """
    if x.dtype not in FUSED_DTYPES:  # bfloat16: the caller selects with keep_mask's mask
        return None
    source = _contiguous_view(x)
    out = torch.empty(source.shape, dtype=source.dtype)
    done = cpu.fused_dropout(
        host_view(source), threshold, seed, offset, scale, out=host_view(out),
        threads=torch.get_num_threads(),
    )
    return None if done is None else out


def fused_applies(x: torch.Tensor) -> bool:
    """Return whether :func:`dropout` and :func:`dropout_with_mask` serve ``x`` (its dtype too)."""
    return x.dtype in FUSED_DTYPES and applies(x)


def dropout_with_mask(
    x: torch.Tensor, threshold: int, seed: int, offset: int, scale: float
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Return :func:`dropout`'s output and its bool keep mask, written in the same pass.

    For eager autograd: the mask is saved for the backward (one select), as native
    dropout saves its own. ``None`` where the kernel cannot run this call.
    """
    if x.dtype not in FUSED_DTYPES:
        return None
    source = _contiguous_view(x)
    out = torch.empty(source.shape, dtype=source.dtype)
    keep = torch.empty(source.shape, dtype=torch.bool)
    done = cpu.fused_dropout(
        host_view(source), threshold, seed, offset, scale, out=host_view(out),
        mask_out=host_view(keep), threads=torch.get_num_threads(),
    )
    return None if done is None else (out, keep)


def keep_mask(x: torch.Tensor, threshold: int, seed: int, offset: int) -> torch.Tensor | None:
    """Return the portable keep mask of ``x`` (a bool tensor of its shape), or ``None``."""
    keep = torch.empty(x.shape, dtype=torch.bool)
    done = cpu.keep_mask(
        tuple(x.shape), threshold, seed, offset, out=host_view(keep),
        threads=torch.get_num_threads(),
    )
    return None if done is None else keep
