"""One compiled, fused CPU kernel for the Philox mask and the select (SPEC P3, D4-D6), via numba.

Frameworks without a compiler of their own (NumPy, MXNet) run the portable
Philox op by op, one full array pass per integer operation. Here numba
compiles, once per dtype and cached on disk, a loop over Philox blocks that
draws the four words of a block, applies the keep rule and writes the four
selected outputs: one read of ``X`` and one write of the output.

It computes exactly what the readable NumPy oracle computes
(:func:`dropout_ref.core.philox.numpy_keep_mask` and
:meth:`dropout_ref.numpy.ops.NumpyOps.select_scaled`):

- layout v2: element ``g = offset + i`` reads word ``g % 4`` of the block at
  counter ``b = g // 4``, ``(c0, c1, c2, c3) = (b & 0xFFFFFFFF, b >> 32, 0, 0)``,
  key ``(seed & 0xFFFFFFFF, seed >> 32)``;
- keep iff ``w >= threshold`` (``threshold`` in ``[1, 2**32]``, ``2**32``
  drops everything);
- kept elements are ``X * scale`` computed in float32 for float16 ``X`` (the
  scale rounded to float32) and in ``X``'s dtype otherwise, rounded once into
  ``X``'s dtype; dropped elements are ``+0.0``.

numba has no float16 arrays on the CPU, so float16 data travels as its
``uint16`` bit pattern and is widened/narrowed with LLVM's own ``fpext`` /
``fptrunc`` (IEEE round to nearest even, as NumPy's cast). ``fastmath`` is
off: NaN, inf and signed zeros follow IEEE as in NumPy.

numba is imported lazily, on the first call, never at ``import dropout_ref``.
Where it is missing or a kernel fails to compile, :func:`available` says why
and the callers run the exact pure-NumPy path. ``DROPOUT_REF_CPU_KERNEL=0``
turns the kernel off. Compiled code is cached by numba (``cache=True``) in its
own place: the ``__pycache__`` beside this file where that is writable, else
numba's per-user cache directory, or ``NUMBA_CACHE_DIR`` when set.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from dropout_ref.core.philox import WORDS_PER_BLOCK, seed_key

#: Environment variable that turns the compiled kernel off when set to ``0``.
ENV_SWITCH = "DROPOUT_REF_CPU_KERNEL"
#: dtypes the kernel handles (bfloat16 is not a NumPy dtype).
KERNEL_DTYPES = ("float16", "float32", "float64")
#: Below this many elements the kernel runs on the calling thread: handing ~0.1 ms of
#: work to numba's pool cost up to several ms beside MXNet's spinning OpenMP threads
#: on a loaded 2-core machine (docs/cpu-kernel.md).
SERIAL_MAX_SIZE = 1 << 18

_lock = threading.Lock()
_launch_lock = threading.Lock()
_kernels: Any = None  # the compiled module namespace, once numba imported
_disabled_reason: str | None = None  # why the kernel is off (None: not known to be off)
_failed_signatures: dict[str, str] = {}  # per dtype / entry: compile failure message
_probed: dict[tuple[str, str], bool] = {}  # (entry, dtype) -> ran once
_NO_MASK = np.empty(0, dtype=np.uint8)


def _load() -> Any:
    """Import numba and define the kernels (once); return the namespace or ``None``."""
    global _kernels, _disabled_reason
    if _kernels is not None or _disabled_reason is not None:
        return _kernels
    with _lock:
        if _kernels is not None or _disabled_reason is not None:
            return _kernels
        if os.environ.get(ENV_SWITCH, "1").strip() == "0":
            _disabled_reason = f"turned off by {ENV_SWITCH}=0"
            return None
        try:
            from dropout_ref.kernels import numba_philox as _numba_kernels
        except Exception as exc:  # ImportError, or numba refusing this NumPy version
            _disabled_reason = f"numba unavailable ({type(exc).__name__}: {exc})"
            return None
        _kernels = _numba_kernels
        return _kernels


def available() -> tuple[bool, str]:
    """Say whether the compiled kernel can be used, and why not if not.

    Imports numba (not compiling anything).

    Returns
    -------
    tuple of (bool, str)
        ``(True, "numba <version>")`` or ``(False, reason)``.
    """
    kernels = _load()
    if kernels is None:
        return False, str(_disabled_reason)
    return True, f"numba {kernels.numba_version}"


def probe(dtype: str = "float32") -> tuple[bool, str]:
    """Run the fused kernel once on a tiny array (compiling or loading it from the cache).

    Returns
    -------
    tuple of (bool, str)
        ``(True, "compiled kernel (numba <version>)")``, or ``(False, reason)``
        when the exact NumPy path runs instead.
    """
    ok, why = available()
    if not ok:
        return False, why
    if not probe_entry("fused", dtype):
        return False, f"compile failed: {_failed_signatures.get(dtype, 'unknown')}"
    return True, f"compiled kernel ({why})"


def probe_entry(entry: str, dtype: str = "float32") -> bool:
    """Return whether kernel ``entry`` (``"fused"``, ``"mask"``, ``"masked"``) runs for ``dtype``.

    Compiles (or loads) it on a tiny array the first time; remembered afterwards,
    so a caller can choose its path before committing to it (e.g. before recording).
    """
    key = (entry, dtype)
    if key not in _probed:
        # Both the serial (small) and the parallel (large) variant.
        ran = True
        for size in (5, SERIAL_MAX_SIZE):
            x = np.ones(size, dtype=dtype)
            if entry == "fused":
                done = fused_dropout(x, 1 << 31, 0, 1, 2.0, mask_out=np.empty(size, np.uint8))
            elif entry == "mask":
                done = keep_mask((size,), 1 << 31, 0, 1)
            else:
                done = masked_scale(x, np.ones(size, dtype=bool), 2.0)
            ran = ran and done is not None
        _probed[key] = ran
    return _probed[key]


def status_line(fallback: str = "exact NumPy path") -> str:
    """Return a line for ``dropout-ref backends``: the compiled kernel, or ``fallback`` and why."""
    ok, why = probe()
    if ok:
        return why
    return f"{fallback} ({why})"


def supports(array: np.ndarray) -> bool:
    """Return whether the kernel handles ``array``'s dtype (native byte order, 16/32/64-bit)."""
    return array.dtype.name in KERNEL_DTYPES and array.dtype.isnative


def _serial(size: int, threads: int | None) -> bool:
    """Whether a call runs on the calling thread: small, or a caller allowing one thread."""
    return size < SERIAL_MAX_SIZE or threads == 1


def _call(entry: str, dtype: str, fn: Any, *args: Any, threads: int | None = None) -> bool:
    """Run ``fn(*args)``; on a first-call compile failure record it and return ``False``.

    ``threads`` caps numba's threads for a parallel entry (a framework's own
    thread setting, e.g. ``torch.get_num_threads()``); ``None`` leaves numba's.
    """
    key = f"{entry}:{dtype}"
    if key in _failed_signatures:
        return False
    try:
        with _launch_lock:  # numba's workqueue layer takes one launch at a time
            if threads is not None:
                _kernels.set_threads(threads)
            fn(*args)
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:
        # A typing/lowering error (or numba's NotImplementedError) on the first call of a
        # signature: that dtype falls back to the exact path for the rest of the process.
        _failed_signatures[key] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        _failed_signatures.setdefault(dtype, _failed_signatures[key])
        return False
    return True


def _check_out(out: np.ndarray, shape: tuple, dtype: Any, name: str) -> None:
    """Refuse an output the kernel could not write in place (a reshape would copy it)."""
    itemsize_ok = out.itemsize == 1 if dtype is None else out.dtype == dtype
    if not (out.flags.c_contiguous and out.flags.writeable and itemsize_ok
            and out.size == int(np.prod(shape))):
        raise ValueError(
            f"{name} must be a writable C-contiguous array of {int(np.prod(shape))} elements "
            f"of {'1 byte' if dtype is None else np.dtype(dtype).name}, got "
            f"{out.dtype.name} of shape {out.shape}"
        )


def _kernel_view(flat: np.ndarray) -> np.ndarray:
    """float16 travels as its bit pattern (numba has no float16 arrays on the CPU)."""
    return flat.view(np.uint16) if flat.dtype == np.float16 else flat


def _compute_scale(dtype: np.dtype, scale: float) -> Any:
    """Return the scale in the compute dtype: float64 for float64 X, else float32."""
    return np.float64(scale) if dtype == np.float64 else np.float32(scale)


def _key_and_blocks(seed: int, offset: int) -> tuple[np.uint64, np.uint64, np.uint64, np.int64]:
    k0, k1 = seed_key(seed)
    first_block, lane = divmod(offset, WORDS_PER_BLOCK)
    return np.uint64(k0), np.uint64(k1), np.uint64(first_block), np.int64(lane)


def fused_dropout(
    X: np.ndarray,
    threshold: int,
    seed: int,
    offset: int,
    scale: float,
    out: np.ndarray | None = None,
    mask_out: np.ndarray | None = None,
    threads: int | None = None,
) -> np.ndarray | None:
    """Return ``where(word >= threshold, X * scale, +0.0)``, or ``None`` (use the exact path).

    Parameters
    ----------
    X : numpy.ndarray
        float16, float32 or float64, any shape; read in row-major order.
    threshold : int
        ``ceil(p * 2**32)`` in ``[1, 2**32]``.
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int
        Counter of element 0 (``offset + X.size <= 2**64``).
    scale : float
        ``1 / (1 - p)`` as a float64; rounded to float32 for 16- and 32-bit ``X``.
    out : numpy.ndarray, optional
        Writable C-contiguous array of ``X``'s shape and dtype to write into.
    mask_out : numpy.ndarray, optional
        Writable C-contiguous 1-byte array (``uint8``/``bool``) of ``X``'s size that
        receives the keep mask in the same pass (for a backward pass).
    threads : int, optional
        At most this many threads (1: the calling thread only); default numba's.

    Returns
    -------
    numpy.ndarray or None
        The output (``out`` if given), or ``None`` when the kernel is unavailable
        for this call (the caller runs the exact path).
    """
    kernels = _load()
    if kernels is None or not supports(X):
        return None
    x = np.ascontiguousarray(X).reshape(-1)
    if out is None:
        out = np.empty(X.shape, dtype=X.dtype)
    _check_out(out, X.shape, X.dtype, "out")
    if mask_out is not None:
        _check_out(mask_out, X.shape, None, "mask_out")
    if x.size == 0:
        return out
    k0, k1, first_block, lane = _key_and_blocks(seed, offset)
    mask = _NO_MASK if mask_out is None else mask_out.reshape(-1).view(np.uint8)
    serial = _serial(x.size, threads)
    ok = _call(
        "fused_serial" if serial else "fused", X.dtype.name,
        kernels.fused_select_serial if serial else kernels.fused_select,
        _kernel_view(x), _kernel_view(out.reshape(-1)), mask, k0, k1, first_block, lane,
        np.uint64(threshold), _compute_scale(X.dtype, scale),
        threads=None if serial else threads,
    )
    return out if ok else None


def keep_mask(
    shape: tuple[int, ...],
    threshold: int,
    seed: int,
    offset: int,
    out: np.ndarray | None = None,
    threads: int | None = None,
) -> np.ndarray | None:
    """Return the portable keep mask of ``shape`` as a 1-byte bool array, or ``None``.

    The same mask as :func:`dropout_ref.core.philox.numpy_keep_mask`; ``out`` (bool or
    uint8, C-contiguous, ``shape``) is written when given; ``threads`` as in
    :func:`fused_dropout`.
    """
    kernels = _load()
    if kernels is None:
        return None
    if out is None:
        out = np.empty(shape, dtype=bool)
    _check_out(out, shape, None, "out")
    flat = out.reshape(-1).view(np.uint8)
    if flat.size == 0:
        return out
    k0, k1, first_block, lane = _key_and_blocks(seed, offset)
    serial = _serial(flat.size, threads)
    ok = _call("mask_serial" if serial else "mask", "uint8",
               kernels.keep_mask_serial if serial else kernels.keep_mask,
               flat, k0, k1, first_block, lane, np.uint64(threshold),
               threads=None if serial else threads)
    return out if ok else None


def masked_scale(
    G: np.ndarray, keep: np.ndarray, scale: float, out: np.ndarray | None = None
) -> np.ndarray | None:
    """Return ``where(keep, G * scale, +0.0)`` with the same rounding as the forward, or ``None``.

    The backward of dropout (D8) from the saved 1-byte mask.
    """
    kernels = _load()
    if kernels is None or not supports(G):
        return None
    g = np.ascontiguousarray(G).reshape(-1)
    mask = np.ascontiguousarray(keep).reshape(-1).view(np.uint8)
    if out is None:
        out = np.empty(G.shape, dtype=G.dtype)
    _check_out(out, G.shape, G.dtype, "out")
    if g.size == 0:
        return out
    ok = _call(
        "masked", G.dtype.name, kernels.masked_select,
        _kernel_view(g), mask, _kernel_view(out.reshape(-1)), _compute_scale(G.dtype, scale),
    )
    return out if ok else None


__all__ = [
    "ENV_SWITCH",
    "KERNEL_DTYPES",
    "available",
    "fused_dropout",
    "keep_mask",
    "masked_scale",
    "probe",
    "probe_entry",
    "status_line",
    "supports",
]
