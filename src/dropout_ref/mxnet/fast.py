"""MXNet on the compiled CPU kernel (:mod:`dropout_ref.kernels.cpu`), zero copy through DLPack.

MXNet 1.9.1 has no compiler that fuses the draw, the keep rule and the select,
so on CPU contexts the numba kernel works on the arrays' own memory:

- ``X`` is read through ``X.to_dlpack_for_read()`` (which waits for pending
  writes to ``X``) and ``np.from_dlpack``: no copy, unlike ``asnumpy()``.
- The output is an MXNet array from MXNet's own pool (``empty``), exported with
  ``to_dlpack_for_write()`` (which waits for pending readers). NumPy 1.26 marks
  DLPack imports read-only, so the kernel writes through a writable view of the
  same pointer (``__array_interface__``), kept alive with the DLPack import.
- NumPy 1.26 cannot import MXNet's DLPack ``bool`` (it fails inside
  ``from_dlpack``), so the 1-byte mask is a ``uint8`` array.

Default mode draws a 64-bit key from MXNet's global generator per call
(``mnp.random.randint``; ``mx.random.seed`` reproduces it, D9) and uses the
Philox words at counters ``0 .. size - 1``: keep iff ``w >= ceil(p * 2**32)``,
i.e. exactly ``u = w / 2**32 >= p`` (D4). ``seed=`` mode uses the seed and
offset (P1-P4). Under ``autograd.record()`` the kernel writes the 1-byte mask
and MXNet's own differentiable select does the rest (D8).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dropout_ref.kernels import cpu as cpu_kernel
from dropout_ref.mxnet.framework import autograd, mnp, mx

#: DLPack device type of host memory (``kDLCPU``).
_DLPACK_CPU = (1, 0)


class _Capsule:
    """Hands MXNet's DLPack capsule to ``np.from_dlpack`` (which wants ``__dlpack__``)."""

    def __init__(self, capsule: Any) -> None:
        self._capsule = capsule

    def __dlpack__(self, stream: Any = None, **kwargs: Any) -> Any:
        return self._capsule

    def __dlpack_device__(self) -> tuple[int, int]:
        return _DLPACK_CPU


class _WritableView:
    """A writable ``__array_interface__`` over a read-only DLPack import, which it keeps alive."""

    def __init__(self, imported: np.ndarray) -> None:
        self._imported = imported
        self.__array_interface__ = {
            "data": (imported.ctypes.data, False),
            "shape": imported.shape,
            "typestr": imported.dtype.str,
            "version": 3,
        }


def read_view(x: Any) -> np.ndarray:
    """Return a read-only NumPy view of ``x``'s memory (no copy; waits for writers of ``x``)."""
    return np.from_dlpack(_Capsule(x.to_dlpack_for_read()))


def write_view(x: Any) -> np.ndarray:
    """Return a writable NumPy view of ``x``'s memory (no copy; waits for users of ``x``)."""
    return np.asarray(_WritableView(np.from_dlpack(_Capsule(x.to_dlpack_for_write()))))


def eligible(X: Any) -> bool:
    """Whether ``X`` can take the kernel: a CPU context, a kernel dtype, the kernel available."""
    if X.ctx.device_type != "cpu" or np.dtype(X.dtype).name not in cpu_kernel.KERNEL_DTYPES:
        return False
    return cpu_kernel.available()[0]


def _empty_like(X: Any, dtype: Any = None) -> Any:
    """Return a new array of ``X``'s shape and array type from MXNet's pool, uninitialised."""
    dtype = X.dtype if dtype is None else dtype
    if isinstance(X, mnp.ndarray):
        return mnp.empty(X.shape, dtype=dtype, ctx=X.ctx)
    return mx.nd.empty(X.shape, dtype=dtype, ctx=X.ctx)


def global_key(X: Any) -> int:
    """Draw a 64-bit Philox key from MXNet's global generator on ``X``'s context (D9)."""
    words = mnp.random.randint(0, 2**32, size=(2,), dtype="int64", ctx=X.ctx).asnumpy()
    return int(words[0]) | (int(words[1]) << 32)


def _forward(
    X: Any, threshold: int, seed: int, offset: int, scale: float, keep: Any = None
) -> Any:
    """Run the fused kernel from ``X``'s memory into a new MXNet array, or return ``None``.

    ``keep`` (a ``uint8`` MXNet array of ``X``'s shape), if given, receives the mask.
    """
    out = _empty_like(X)
    if X.size == 0:
        return out
    done = cpu_kernel.fused_dropout(
        read_view(X), threshold, seed, offset, scale, out=write_view(out),
        mask_out=None if keep is None else write_view(keep),
    )
    return None if done is None else out


def _mask(X: Any, threshold: int, seed: int, offset: int) -> Any:
    """Return the 1-byte (``uint8``) keep mask of ``X`` as an MXNet array, or ``None``."""
    keep = _empty_like(X, dtype="uint8")
    if X.size == 0:
        return keep
    done = cpu_kernel.keep_mask(tuple(X.shape), threshold, seed, offset, out=write_view(keep))
    return None if done is None else keep


def dropout(X: Any, threshold: int, seed: int, offset: int, scale: float) -> Any:
    """Dropout of a CPU MXNet array in one pass of the kernel: ``X``'s array type, or ``None``.

    Only while not recording autograd: recording, the kernel writes only the
    1-byte mask (:func:`mask_bytes`) and the select stays MXNet's own
    differentiable one (D8: the gradient is ``where(keep, G * scale, 0)`` with
    that mask). An ``mx.autograd.Function`` around the kernel computed the same
    values and gradients but made MXNet 1.9.1 hang now and then in
    ``MXNotifyShutdown`` at interpreter exit (``WaitForAll`` on an op that never
    ran; docs/cpu-kernel.md), so it is not used.
    """
    if not eligible(X) or autograd.is_recording():
        return None
    return _forward(X, threshold, seed, offset, scale)


def mask_bytes(X: Any, threshold: int, seed: int, offset: int) -> Any:
    """Return the portable keep mask of ``X`` as 1-byte integers (from the kernel), or ``None``."""
    if not eligible(X):
        return None
    return _mask(X, threshold, seed, offset)


def keep_mask(X: Any, threshold: int, seed: int, offset: int) -> Any:
    """Return the portable keep mask of ``X`` (bool, from the kernel), or ``None``."""
    if not eligible(X):
        return None
    keep = _mask(X, threshold, seed, offset)
    return None if keep is None else keep.astype("bool")
