"""``dropout_ref.mxnet.portable_masks(seed)``: MXNet's own dropouts draw portable masks (SPEC P8).

While a context is open in some thread, these attributes are replaced
(process-wide; in a thread without a context each replacement calls the
original, so other threads keep native dropout):

- ``mx.npx.dropout`` (and ``mx.ndarray.numpy_extension.dropout``, Gluon's
  ``F.npx.dropout``) and ``mx.nd.Dropout`` (Gluon's ``F.Dropout`` outside
  ``npx.set_np()``): a site when they drop, i.e. in ``mode='always'`` or while
  ``autograd.is_training()`` (inside ``autograd.record()``), as MXNet decides;
  ``axes`` (the axes that share one decision) become SPEC D12's noise shape;
- ``gluon.nn.Dropout.hybrid_forward``: so that a rate-0 layer takes its number
  in training too (Gluon skips the dropout op at rate 0).

A hybridized block (``net.hybridize()``) runs a cached symbolic graph that no
Python patch reaches: its Dropout is refused with ``RuntimeError`` when the graph
is built inside the context (call ``net.hybridize(False)``, or build it outside
and know that it then draws native masks).
"""

from __future__ import annotations

from typing import Any

from dropout_ref.core.doors import Door
from dropout_ref.core.sites import AttributePatch, PatchSet, PortableMasks, active
from dropout_ref.mxnet import dropout_layer
from dropout_ref.mxnet.framework import autograd, gluon, mx

__all__ = ["DOORS", "portable_masks"]

#: Every door of MXNet's dropouts and what the context does with it (SPEC P8).
DOORS: tuple[Door, ...] = (
    Door("mx.npx.dropout", "site", "autograd.is_training() or mode='always'; axes -> noise"),
    Door("mx.nd.Dropout", "site", "as mx.npx.dropout (Gluon's F.Dropout outside set_np)"),
    Door("mxnet.gluon.nn.Dropout", "site", "training, rate 0 included"),
    Door("mxnet.gluon.HybridBlock.hybridize", "refused", "a cached graph no patch reaches"),
)

_NULL = getattr(mx.base, "_Null", None)


def _given(value: Any, default: Any) -> Any:
    return default if value is None or value is _NULL else value


def _noise_shape(shape: tuple[int, ...], axes: Any) -> tuple[int, ...] | None:
    axes = _given(axes, ())
    if isinstance(axes, int):
        axes = (axes,)
    if not axes:
        return None
    shared = {a % len(shape) for a in axes}
    return tuple(1 if i in shared else int(s) for i, s in enumerate(shape))


def _portable(counter: Any, x: Any, rate: float, source: str, axes: Any) -> Any:
    """Our dropout on ``x``; a legacy ``mx.nd`` array goes through as an ``mx.np`` view.

    (dropout_ref.mxnet's noise-shape path broadcasts with ``mx.np`` operators,
    which refuse legacy arrays; the views share memory and autograd history.)
    """
    legacy = not isinstance(x, mx.np.ndarray)
    data = x.as_np_ndarray() if legacy else x
    result = counter.apply(
        dropout_layer, data, rate, source=source, noise_shape=_noise_shape(tuple(x.shape), axes)
    )
    return result.as_nd_ndarray() if legacy else result


def _refuse_symbol(data: Any, source: str) -> None:
    if isinstance(data, mx.sym.Symbol):
        raise RuntimeError(
            f"{source} in a hybridized (symbolic) graph inside dropout_ref.mxnet.portable_masks: "
            "the cached graph would draw native masks. Call net.hybridize(False) (SPEC P8)"
        )


def _op_dropout(original, source: str):
    def dropout(data=None, p=_NULL, mode=_NULL, axes=_NULL, cudnn_off=_NULL, out=None,
                name=None, **kwargs):
        counter = active()
        if counter is None:
            return original(data=data, p=p, mode=mode, axes=axes, cudnn_off=cudnn_off, out=out,
                            name=name, **kwargs)
        _refuse_symbol(data, source)
        mode_value = _given(mode, "training")
        if mode_value != "always" and not autograd.is_training():
            return original(data=data, p=p, mode=mode, axes=axes, cudnn_off=cudnn_off, out=out,
                            name=name, **kwargs)
        result = _portable(counter, data, float(_given(p, 0.5)), source, axes)
        if out is not None:
            out[:] = result
            return out
        return result

    dropout.__wrapped__ = original
    return dropout


def _gluon_hybrid_forward(original):
    def hybrid_forward(self, F, x):
        counter = active()
        if counter is None:
            return original(self, F, x)
        _refuse_symbol(x, "gluon.nn.Dropout")
        if not autograd.is_training():
            return original(self, F, x)
        return _portable(counter, x, float(self._rate), "gluon.nn.Dropout", self._axes)

    hybrid_forward.__wrapped__ = original
    return hybrid_forward


def _patches() -> list[AttributePatch]:
    nd_npx = mx.ndarray.numpy_extension
    return [
        AttributePatch(mx.npx, "dropout", _op_dropout(mx.npx.dropout, "mx.npx.dropout")),
        AttributePatch(nd_npx, "dropout", _op_dropout(nd_npx.dropout, "mx.npx.dropout")),
        AttributePatch(mx.nd, "Dropout", _op_dropout(mx.nd.Dropout, "mx.nd.Dropout")),
        AttributePatch(
            gluon.nn.Dropout, "hybrid_forward",
            _gluon_hybrid_forward(gluon.nn.Dropout.hybrid_forward),
        ),
    ]


_PATCHES = PatchSet(_patches)


def portable_masks(seed: int) -> PortableMasks:
    """Make MXNet's dropouts (``npx.dropout``, ``nd.Dropout``, Gluon ``nn.Dropout``) portable.

    Inside ``with portable_masks(seed):`` the j-th dropout that MXNet performs
    in training mode in this thread (``autograd.is_training()``, or
    ``mode='always'``) is ``dropout_layer(T, p, seed=seed, offset=j * 2**40)``
    on that call's array (SPEC P8; details in the module docstring).

    Parameters
    ----------
    seed : int
        The Philox key, an integer in ``[0, 2**64)``.

    Returns
    -------
    dropout_ref.core.sites.PortableMasks
        The context manager; ``ctx.sites`` lists the numbered sites.

    Raises
    ------
    TypeError, ValueError
        If ``seed`` is not an integer in ``[0, 2**64)``.
    RuntimeError
        On entry, if this thread already holds a ``portable_masks`` context; inside,
        for a Dropout in a hybridized graph.

    """
    return PortableMasks(seed, "mxnet", patches=_PATCHES)
