"""MXNet's own dropouts under their calling convention, for the native audit.

Both drop only while recording in train mode (``autograd.record(train_mode=True)``);
``gluon.nn.Dropout`` also needs NumPy array semantics (the course's
``npx.set_np()``), set here for the call only. ``EXPECTED_DEVIATIONS`` lists,
per native, the SPEC clauses it breaks on this machine with one line of
evidence each (the long form is ``docs/deviations/mxnet.md``).
"""



from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dropout_ref.mxnet.framework import autograd, mx, npx


def npx_dropout(X: Any, p: Any) -> Any:
    """``npx.dropout(X, p=p)`` inside ``autograd.record(train_mode=True)``."""
    with mx.util.np_shape(True), mx.util.np_array(True), autograd.record(train_mode=True):
        return npx.dropout(X, p=p)


def gluon_dropout(X: Any, p: Any) -> Any:
    """``gluon.nn.Dropout(p)(X)`` inside ``autograd.record(train_mode=True)``."""
    from mxnet import gluon

    layer = gluon.nn.Dropout(p)
    with mx.util.np_shape(True), mx.util.np_array(True), autograd.record(train_mode=True):
        return layer(X)


NATIVES: dict[str, Callable[[Any, Any], Any]] = {
    "mxnet.npx.dropout": npx_dropout,
    "mxnet.gluon.nn.Dropout": gluon_dropout,
}

_COMMON = {
    "D1": "bad rates raise MXNetError (not ValueError/TypeError); p=nan and p='0.5' are "
    "accepted",
    "D3": "p=1 divides by 1-p=0: NaN everywhere, in the output and the gradient",
    "D5": "1/(1-p) is computed in float32 even for float64 X: 175 ulp off at p=0.999 in "
    "float32, 1e8 ulp in float64",
    "D6": "dropped elements are X*0: NaN where X is NaN/inf, -0.0 where X is negative; NaN "
    "everywhere at p=1-1e-8 in float32",
    "D7": "integer X raises MXNetError, not TypeError",
    "D8": "p=1 gives a NaN gradient",
}

EXPECTED_DEVIATIONS: dict[str, dict[str, str]] = {
    "mxnet.npx.dropout": dict(_COMMON),
    "mxnet.gluon.nn.Dropout": {
        **_COMMON,
        "D1": "rate=-0.1 and rate=nan are accepted; others raise MXNetError or a TypeError "
        "without the value",
    },
}


# -- structured natives (SPEC D12): axes= shares one decision along the listed axes ----------


def npx_dropout_axes(X: Any, p: Any) -> Any:
    """``npx.dropout(X, p=p, axes=(1,))`` on an ``(N, T, C)`` X, recording in train mode."""
    with mx.util.np_shape(True), mx.util.np_array(True), autograd.record(train_mode=True):
        return npx.dropout(X, p=p, axes=(1,))


def gluon_dropout_axes(X: Any, p: Any) -> Any:
    """``gluon.nn.Dropout(p, axes=(1,))(X)`` on an ``(N, T, C)`` X, recording in train mode."""
    from mxnet import gluon

    layer = gluon.nn.Dropout(p, axes=(1,))
    with mx.util.np_shape(True), mx.util.np_array(True), autograd.record(train_mode=True):
        return layer(X)


#: name -> (fn, noise_shape of the kit's structured variant): 1 marks the shared axes.
STRUCTURED: dict[str, tuple[Callable[[Any, Any], Any], tuple[int | None, ...]]] = {
    "mxnet.npx.dropout(axes=)": (npx_dropout_axes, (None, 1, None)),
    "mxnet.gluon.nn.Dropout(axes=)": (gluon_dropout_axes, (None, 1, None)),
}

# Structured natives (SPEC D12): one decision per group holds (D12 passes); the
# element-wise kernel's deviations carry over.
EXPECTED_DEVIATIONS["mxnet.npx.dropout(axes=)"] = dict(EXPECTED_DEVIATIONS["mxnet.npx.dropout"])
EXPECTED_DEVIATIONS["mxnet.gluon.nn.Dropout(axes=)"] = dict(
    EXPECTED_DEVIATIONS["mxnet.gluon.nn.Dropout"]
)
