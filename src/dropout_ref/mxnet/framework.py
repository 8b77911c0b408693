"""Import MXNet 1.9.1 under a modern NumPy.

MXNet 1.9.1 reads ``numpy.bool`` at import time, an alias NumPy removed in
1.24. Restoring the alias it had (the builtin ``bool``) before the import
lets users keep their own code untouched; with NumPy < 1.24 nothing changes.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import numpy

F = TypeVar("F", bound=Callable[..., Any])


def _restore_numpy_bool_alias() -> None:
    if "bool" not in vars(numpy):
        numpy.bool = bool  # type: ignore[attr-defined]


_restore_numpy_bool_alias()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import mxnet as mx
    from mxnet import autograd, gluon, npx
    from mxnet import np as mnp


def numpy_shapes(func: F) -> F:
    """Run ``func`` with MXNet's NumPy shape semantics on, whatever the caller's global mode.

    Outside ``npx.set_np()`` MXNet 1.9.1 reads 0-d and zero-size shapes as
    "unknown" and fails in shape inference; the scoped switch leaves the
    user's own mode untouched.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with mx.util.np_shape(True):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


__all__ = ["autograd", "gluon", "mnp", "mx", "npx", "numpy_shapes"]
