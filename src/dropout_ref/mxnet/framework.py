"""Import MXNet 1.9.1 under a modern NumPy.

MXNet 1.9.1 reads ``numpy.bool`` at import time, an alias NumPy removed in
1.24. Restoring the alias it had (the builtin ``bool``) before the import
lets users keep their own code untouched; with NumPy < 1.24 nothing changes.
"""

from __future__ import annotations

import warnings

import numpy


def _restore_numpy_bool_alias() -> None:
    if "bool" not in vars(numpy):
        numpy.bool = bool  # type: ignore[attr-defined]


_restore_numpy_bool_alias()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import mxnet as mx  # noqa: E402
    from mxnet import autograd, gluon, npx  # noqa: E402
    from mxnet import np as mnp  # noqa: E402

__all__ = ["autograd", "gluon", "mnp", "mx", "npx"]
