"""``dropout_ref.torch.portable_masks(seed)``: torch's own dropouts draw portable masks (SPEC P8).

The door is :class:`torch.overrides.TorchFunctionMode`, pushed on this thread's
mode stack while the context is open. It sees every call of

- ``torch.nn.functional.dropout`` (what ``nn.Dropout`` calls) and ``torch.dropout``
  / ``torch.dropout_``: with ``training=True`` a site, element-wise;
- ``dropout1d`` / ``dropout2d`` / ``dropout3d`` and ``torch.feature_dropout``: a site
  whose mask is shared over the spatial axes (noise shape ``(N, C, 1, ...)``, SPEC D12);
- ``scaled_dot_product_attention`` with ``dropout_p > 0``: computed as
  ``softmax(q @ k^T * scale + mask)`` (``is_causal``, boolean or additive
  ``attn_mask``, ``enable_gqa`` applied first), our dropout on the probabilities
  (one site of shape ``(..., heads, Tq, Tk)``) and the product with ``v``. SDPA has
  no training flag: ``dropout_p == 0`` is no site (P8's exception);
- ``multi_head_attention_forward`` (``nn.MultiheadAttention``, ``nn.Transformer``
  and its encoder/decoder layers) with ``training=True``, rate 0 included (P8: it has
  a training flag): recomputed step for step, one site on the ``(B, heads, L, S)``
  probabilities;
- the recurrent kernels ``torch.lstm`` / ``gru`` / ``rnn_tanh`` / ``rnn_relu`` with
  ``num_layers > 1`` in training (``nn.LSTM/GRU/RNN(dropout=p)``, rate 0 included):
  run layer by layer with torch's own kernel, one site per non-final layer output
  (see :mod:`dropout_ref.torch.intercept_layers` for these three);

and refuses, with ``NotImplementedError`` in training mode, the dropouts that are
not inverted Bernoulli dropout or whose mask is torch's own: ``alpha_dropout``,
``feature_alpha_dropout`` (and ``torch.*`` forms) and ``torch.native_dropout``.

timm's ``drop_path``/``DropPath`` and torchvision's ``stochastic_depth``/``StochasticDepth``
are sites too, where those packages are imported (:mod:`dropout_ref.torch.intercept_drop_path`).

Keras 3 on its torch backend (``KERAS_BACKEND=torch``) joins this context: the doors
of :mod:`dropout_ref.doors.keras3` (process-wide attribute patches while a context is
open, as TensorFlow's).

Eval-mode calls (``training=False``) run torch's own function and take no number.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from dropout_ref.core.doors import Door, refused_door
from dropout_ref.core.sites import PatchSet, PortableMasks, SiteCounter, active
from dropout_ref.doors.keras3 import keras3_doors, keras3_patches
from dropout_ref.torch import dropout_layer
from dropout_ref.torch.intercept_drop_path import (
    STOCHASTIC_DEPTH_DOORS,
    stochastic_depth_patches,
)
from dropout_ref.torch.intercept_layers import (
    attention,
    compiled_site_error,
    multi_head_attention,
    recurrent_stack,
)

__all__ = ["DOORS", "portable_masks"]

#: Every door of torch's dropouts and what the context does with it (SPEC P8).
DOORS: tuple[Door, ...] = (
    Door("torch.nn.functional.dropout", "site", "nn.Dropout too; training=True; element-wise"),
    Door("torch.dropout", "site", "and torch.dropout_; train=True; element-wise"),
    Door("torch.nn.functional.dropout1d/2d/3d", "site", "nn.Dropout1d/2d/3d; noise (N, C, 1, ...)"),
    Door("torch.feature_dropout", "site", "and torch.feature_dropout_; noise (N, C, 1, ...)"),
    Door(
        "torch.nn.functional.scaled_dot_product_attention", "site",
        "dropout_p > 0 only (no training flag); the (..., heads, Tq, Tk) probabilities",
    ),
    Door("torch.nn.functional.alpha_dropout", "refused", "not inverted Bernoulli dropout"),
    Door("torch.nn.functional.feature_alpha_dropout", "refused", "not inverted Bernoulli dropout"),
    Door("torch.alpha_dropout", "refused", "and the feature and in-place forms"),
    Door("torch.native_dropout", "refused", "an internal op: its mask is torch's own"),
    Door(
        "torch.nn.functional.multi_head_attention_forward", "site",
        "nn.MultiheadAttention, nn.Transformer*: training=True (rate 0 too); the (B, heads, L, S)"
        " probabilities",
    ),
    Door(
        "torch.lstm / gru / rnn_tanh / rnn_relu", "site",
        "nn.LSTM/GRU/RNN, num_layers > 1, training (rate 0 too): one site per non-final layer's"
        " output, (L, N, D*H) sequence first or the packed data",
    ),
    *STOCHASTIC_DEPTH_DOORS,
    *keras3_doors("torch"),
)

Handler = Callable[[SiteCounter, Any, tuple, dict], Any]


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _finish(input: torch.Tensor, out: torch.Tensor, inplace: bool) -> torch.Tensor:
    """``inplace=True`` (``nn.Dropout(inplace=True)``): write the result into the input."""
    return input.copy_(out) if inplace else out


def _functional_dropout(counter: SiteCounter, func, args, kwargs):
    """``F.dropout(input, p=0.5, training=True, inplace=False)``."""
    input = _arg(args, kwargs, 0, "input", None)
    p = _arg(args, kwargs, 1, "p", 0.5)
    training = _arg(args, kwargs, 2, "training", True)
    inplace = _arg(args, kwargs, 3, "inplace", False)
    if not training:
        return func(*args, **kwargs)
    out = counter.apply(dropout_layer, input, p, source="torch.nn.functional.dropout")
    return _finish(input, out, inplace)


def _torch_dropout(inplace: bool, feature: bool) -> Handler:
    """``torch.dropout(input, p, train)`` and its in-place / feature forms."""

    def handler(counter: SiteCounter, func, args, kwargs):
        input = _arg(args, kwargs, 0, "input", None)
        p = _arg(args, kwargs, 1, "p", None)
        train = _arg(args, kwargs, 2, "train", None)
        if not train:
            return func(*args, **kwargs)
        noise = _feature_noise(input, batched=True) if feature else None
        out = counter.apply(
            dropout_layer, input, p, source=f"torch.{func.__name__}", noise_shape=noise
        )
        return _finish(input, out, inplace)

    return handler


def _feature_noise(input: torch.Tensor, *, batched: bool) -> tuple[int, ...]:
    """Noise shape of channel dropout: ``(N, C, 1, ...)``, or ``(C, 1, ...)`` unbatched."""
    shape = tuple(input.shape)
    keep = 2 if batched else 1
    if len(shape) < keep:
        raise ValueError(
            f"channel dropout needs an input with at least {keep} dimensions, got shape {shape}"
        )
    return shape[:keep] + (1,) * (len(shape) - keep)


def _channel_dropout(unbatched_ndim: int | None) -> Handler:
    """``F.dropout1d/2d/3d(input, p=0.5, training=True, inplace=False)``.

    As torch: 1d and 3d accept an unbatched input (one dimension fewer);
    ``dropout2d`` treats every input as batched (a 3-D one as ``(N, C, L)``).
    """

    def handler(counter: SiteCounter, func, args, kwargs):
        input = _arg(args, kwargs, 0, "input", None)
        p = _arg(args, kwargs, 1, "p", 0.5)
        training = _arg(args, kwargs, 2, "training", True)
        inplace = _arg(args, kwargs, 3, "inplace", False)
        if not training:
            return func(*args, **kwargs)
        # Let torch check the rank (and warn) exactly as it does, at no cost: eval mode.
        func(input, p, False, False)
        batched = unbatched_ndim is None or input.dim() != unbatched_ndim
        noise = _feature_noise(input, batched=batched)
        out = counter.apply(
            dropout_layer, input, p, source=f"torch.nn.functional.{func.__name__}",
            noise_shape=noise,
        )
        return _finish(input, out, inplace)

    return handler


def _sdpa(counter: SiteCounter, func, args, kwargs):
    """``scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale, ...)``."""
    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
    defaults = (None, None, None, None, 0.0, False, None, False)
    q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa = (
        _arg(args, kwargs, i, n, d) for i, (n, d) in enumerate(zip(names, defaults, strict=True))
    )
    if not dropout_p > 0:
        return func(*args, **kwargs)
    if enable_gqa and q.size(-3) != k.size(-3):
        k = k.repeat_interleave(q.size(-3) // k.size(-3), -3)
        v = v.repeat_interleave(q.size(-3) // v.size(-3), -3)
    return attention(
        counter, q, k, v, attn_mask, dropout_p, is_causal, scale,
        "torch.nn.functional.scaled_dot_product_attention",
    )


def _refuse(what: str, is_training: Callable[[tuple, dict], bool]) -> Handler:
    def handler(counter: SiteCounter, func, args, kwargs):
        if is_training(args, kwargs):
            raise refused_door(
                what, "dropout_ref.torch.portable_masks",
                "it is not inverted Bernoulli dropout, or its mask is torch's own",
            )
        return func(*args, **kwargs)

    return handler


def _flag(index: int, name: str, default: Any = True) -> Callable[[tuple, dict], bool]:
    return lambda args, kwargs: bool(_arg(args, kwargs, index, name, default))


def _handlers() -> dict[Any, Handler]:
    handlers: dict[Any, Handler] = {
        F.dropout: _functional_dropout,
        torch.dropout: _torch_dropout(inplace=False, feature=False),
        torch.dropout_: _torch_dropout(inplace=True, feature=False),
        torch.feature_dropout: _torch_dropout(inplace=False, feature=True),
        torch.feature_dropout_: _torch_dropout(inplace=True, feature=True),
        F.dropout1d: _channel_dropout(unbatched_ndim=2),
        F.dropout2d: _channel_dropout(unbatched_ndim=None),
        F.dropout3d: _channel_dropout(unbatched_ndim=4),
        F.scaled_dot_product_attention: _sdpa,
        F.alpha_dropout: _refuse("torch.nn.functional.alpha_dropout", _flag(2, "training", False)),
        F.feature_alpha_dropout: _refuse(
            "torch.nn.functional.feature_alpha_dropout", _flag(2, "training", False)
        ),
        torch.alpha_dropout: _refuse("torch.alpha_dropout", _flag(2, "train")),
        torch.alpha_dropout_: _refuse("torch.alpha_dropout_", _flag(2, "train")),
        torch.feature_alpha_dropout: _refuse("torch.feature_alpha_dropout", _flag(2, "train")),
        torch.feature_alpha_dropout_: _refuse("torch.feature_alpha_dropout_", _flag(2, "train")),
        torch.native_dropout: _refuse("torch.native_dropout", _flag(2, "train")),
        F.multi_head_attention_forward: multi_head_attention,
    }
    for kernel in (torch.lstm, torch.gru, torch.rnn_tanh, torch.rnn_relu):
        handlers[kernel] = recurrent_stack
    return handlers


_HANDLERS = _handlers()


class _PortableDropoutMode(TorchFunctionMode):
    """Routes torch's dropouts of this thread to the context's counter."""

    def __init__(self, counter: SiteCounter) -> None:
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        handler = _HANDLERS.get(func)
        if handler is None or active() is None:
            # Not a dropout, or the context is suspended (core.sites.suspended: our own
            # dropout, Keras' shape inference): torch's own function (this mode is off).
            return func(*args, **(kwargs or {}))
        if torch.compiler.is_compiling():
            raise compiled_site_error(getattr(func, "__name__", str(func)))
        return handler(self.counter, func, args, kwargs or {})


#: Attribute patches (the mode sees only torch functions): Keras 3's doors when Keras runs on
#: torch, and timm's and torchvision's stochastic depth where they are imported.
_PATCHES = PatchSet(
    lambda: [*keras3_patches("torch", dropout_layer), *stochastic_depth_patches()]
)


def portable_masks(seed: int) -> PortableMasks:
    """Make torch's own dropouts draw portable masks, numbered in call order (SPEC P8).

    Inside ``with portable_masks(seed):`` the j-th dropout that torch performs
    in training mode in this thread (``nn.Dropout``, ``F.dropout``, channel
    dropouts, the attention dropout of ``scaled_dot_product_attention`` and of
    ``nn.MultiheadAttention`` / ``nn.Transformer*``, the inter-layer dropout of
    ``nn.LSTM`` / ``GRU`` / ``RNN``) is
    ``dropout_layer(T, p, seed=seed, offset=j * 2**40)`` on that call's tensor; a
    training-mode stochastic depth of timm or torchvision is
    ``drop_path(T, p, seed=seed, offset=j * 2**40, mode=...)``.

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
        On entry, if this thread already holds a ``portable_masks`` context.

    Notes
    -----
    Other threads are not affected (torch's mode stack is per thread).
    ``torch.compile``'d models work (dynamo guards on the mode stack and runs
    the mode's dropouts outside its graph, whether the model was compiled before
    or inside the context). Not intercepted: TorchScript, and dropouts written
    by hand from ``torch.rand`` (they are not torch's dropout). The refused ones
    are listed in the module docstring.

    """
    holder: dict[str, _PortableDropoutMode] = {}

    def enter(counter: SiteCounter) -> None:
        mode = _PortableDropoutMode(counter)
        mode.__enter__()
        holder["mode"] = mode

    def exit(counter: SiteCounter) -> None:
        mode = holder.pop("mode", None)
        if mode is not None:
            mode.__exit__(None, None, None)

    return PortableMasks(seed, "torch", patches=_PATCHES, enter=enter, exit=exit)
