"""MXNet primitives for dropout, on ``mxnet.numpy`` arrays (the course's ``npx.set_np()`` idiom).

Legacy ``mx.nd.NDArray`` inputs are accepted too and come back as such.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dropout_ref.core.contract import DropoutOps
from dropout_ref.core.thresholds import float32_threshold, scale_compute_dtype, word_threshold
from dropout_ref.mxnet import fast
from dropout_ref.mxnet.framework import autograd, mnp, mx, numpy_shapes
from dropout_ref.mxnet.philox import MxnetBlockArrays, keep_mask


def as_np_array(X: Any) -> Any:
    """View a legacy ``mx.nd.NDArray`` as an ``mxnet.numpy`` array (no copy)."""
    return X if isinstance(X, mnp.ndarray) else X.as_np_ndarray()


class MxnetOps(DropoutOps):
    """Dropout primitives on MXNet arrays (the contract's ``DropoutOps``)."""

    name = "mxnet"
    conversion_hint = "X = X.astype('float32')"

    def check_array(self, X: Any) -> None:
        """Refuse anything but an MXNet array."""
        if not isinstance(X, mx.nd.NDArray):
            raise TypeError(
                f"X must be an mxnet.numpy.ndarray on the mxnet backend, got {type(X).__name__}; "
                "use mxnet.np.array(X, dtype='float32')"
            )

    def dtype_name(self, X: Any) -> str:
        """Return the NumPy name of ``X``'s dtype."""
        return np.dtype(X.dtype).name

    def size(self, X: Any) -> int:
        """Return ``X.size``."""
        return int(X.size)

    @numpy_shapes
    def constant_mask(self, X: Any, keep: bool) -> Any:
        """Return a bool array of ``X``'s shape on ``X``'s context, all ``keep``."""
        fill = mnp.ones if keep else mnp.zeros
        return fill(X.shape, dtype=bool, ctx=X.ctx)

    @numpy_shapes
    def global_keep_mask(self, X: Any, dropout: float) -> Any:
        """Draw float32 uniforms from MXNet's global generator (``mx.random.seed``)."""
        u = mnp.random.uniform(0.0, 1.0, size=X.shape, dtype="float32", ctx=X.ctx)
        return u >= float32_threshold(dropout)

    @numpy_shapes
    def fused_global_dropout(self, X: Any, dropout: float, scale: float) -> Any:
        """Default-mode dropout in one compiled pass on CPU contexts, else the in-place path below.

        On the compiled kernel (:mod:`dropout_ref.mxnet.fast`): a 64-bit Philox key
        drawn from MXNet's global generator per call (``mx.random.seed`` reproduces
        it, D9), keep iff ``w >= ceil(p * 2**32)`` (exactly ``w / 2**32 >= p``, D4),
        every dtype, recorded or not (D8). Otherwise see :meth:`_inplace_global_dropout`.
        """
        if fast.eligible(X):
            out = self._kernel_dropout(X, word_threshold(dropout), fast.global_key(X), 0, scale)
            if out is not None:
                return out
        return self._inplace_global_dropout(X, dropout, scale)

    @numpy_shapes
    def fused_portable_dropout(
        self, X: Any, threshold: int, seed: int, offset: int, scale: float
    ) -> Any:
        """``seed=`` dropout in one compiled pass on CPU contexts, or ``None`` (op-by-op path).

        Bit for bit :meth:`portable_keep_mask` + :meth:`select_scaled` (P2); recorded
        calls differentiate (D8).
        """
        return self._kernel_dropout(X, threshold, seed, offset, scale)

    def _kernel_dropout(
        self, X: Any, threshold: int, seed: int, offset: int, scale: float
    ) -> Any:
        """One pass of the compiled kernel, or ``None`` where it does not apply.

        While autograd records, the kernel writes only the keep mask and the
        select is MXNet's own differentiable :meth:`select_scaled` (D8).
        """
        if autograd.is_recording():
            keep = fast.mask_bytes(X, threshold, seed, offset)
            return None if keep is None else self.select_scaled(X, keep, scale)
        return fast.dropout(X, threshold, seed, offset, scale)

    def _inplace_global_dropout(self, X: Any, dropout: float, scale: float) -> Any:
        """Float32 default-mode dropout with one uniform buffer reused in place, or ``None``.

        Used when autograd is not recording and ``X`` is a non-empty float32
        array of at least one axis (other dtypes, 0-d and empty arrays, and
        recorded calls take :meth:`global_keep_mask` + :meth:`select_scaled`).
        The same uniforms and keep rule as :meth:`global_keep_mask`, but the
        legacy comparison writes 1.0/0.0 into the uniform buffer itself, and
        that buffer is both the condition and the +0.0 branch of the legacy
        ``where``, which writes into the product: one temporary (4 B/el)
        instead of the uniforms, a bool mask, a float condition and a zeros
        array, and two full passes less (docs/benchmark.md).
        """
        # 0-d and empty arrays gain nothing here; the general path handles them (D7).
        if autograd.is_recording() or self.dtype_name(X) != "float32" or X.size == 0 or X.ndim == 0:
            return None
        x = as_np_array(X)
        u = mnp.random.uniform(0.0, 1.0, size=x.shape, dtype="float32", ctx=x.ctx).as_nd_ndarray()
        # float32_threshold(p) is a float32, so the scalar's path into the kernel
        # (MXNet 1.9.1 narrows scalars) keeps it exact: keep iff u >= p (D4).
        mx.nd._internal._greater_equal_scalar(u, scalar=float32_threshold(dropout), out=u)
        factor = mnp.array(scale, dtype="float32", ctx=x.ctx)
        out = (x * factor).as_nd_ndarray()
        # u is 1.0 (keep) or +0.0 (drop): the select gives +0.0 even for NaN/inf X (D6).
        mx.nd.where(u, out, u, out=out)
        return out.as_np_ndarray() if isinstance(X, mnp.ndarray) else out

    @numpy_shapes
    def portable_keep_mask(self, X: Any, threshold: int, seed: int, offset: int) -> Any:
        """Return the Philox keep mask (SPEC P)."""
        keep = fast.keep_mask(X, threshold, seed, offset)
        return keep if keep is not None else keep_mask(X, threshold, seed, offset)

    def block_arrays(self, X: Any) -> Any:
        """Index data and reshape on ``X``'s context for block masks (SPEC P7)."""
        return MxnetBlockArrays(X.ctx)

    @numpy_shapes
    def select_scaled(self, X: Any, keep: Any, scale: float) -> Any:
        """Return ``where(keep, X * scale, +0.0)`` in ``X``'s dtype, of ``X``'s array type.

        ``keep`` may have a noise shape that broadcasts to ``X``'s (D12).
        """
        x = as_np_array(X)
        compute = scale_compute_dtype(self.dtype_name(x))
        # float64: a 0-d array, not a Python float. MXNet 1.9.1 passes scalars to its
        # kernels with too little precision for float64 (products up to 2 ulp off); the
        # float32 kernels get the scalar exactly, and the scalar op is 2x faster.
        # Of X's rank (all ones), not 0-d: a 0-d array in the autograd graph breaks the
        # user's backward() outside NumPy shape semantics (MXNet reads () as "unknown").
        factor = (
            mnp.full((1,) * x.ndim, scale, dtype=compute, ctx=x.ctx)
            if compute == "float64"
            else scale
        )
        scaled = (x.astype(compute, copy=False) * factor).astype(x.dtype, copy=False)
        # An array, never a scalar 0: MXNet 1.9.1's np.where(cond, x, 0.0) sends the
        # gradient to the unselected elements (docs/deviations/mxnet.md). The legacy
        # where kernel (condition in the data's dtype) differentiates correctly and is 3x
        # faster than mxnet.numpy's, recording or not (1.4 vs 0.44 ms at 256 x 256).
        # The condition (1.0 / +0.0) is itself the +0.0 branch: no zeros array, one pass
        # less; it needs no gradient, so the unselected elements' gradient goes nowhere.
        cond = keep.astype(scaled.dtype, copy=False)
        if tuple(cond.shape) != tuple(x.shape):
            # A noise-shaped mask (D12): the legacy where needs X's shape.
            cond = mnp.broadcast_to(cond, x.shape)
        cond = cond.as_nd_ndarray()
        out = mx.nd.where(cond, scaled.as_nd_ndarray(), cond).as_np_ndarray()
        return out if isinstance(X, mnp.ndarray) else out.as_nd_ndarray()
