"""Keras 3's dropouts draw portable masks on every backend (SPEC P8), written once.

Keras picks its backend at import (``KERAS_BACKEND``); its tensors are then the
backend's, so its doors join that framework's context:
``dropout_ref.tensorflow.portable_masks`` for ``tensorflow``,
``dropout_ref.jax.portable_masks`` for ``jax``, ``dropout_ref.torch.portable_masks``
for ``torch``. :func:`keras3_patches` returns the patches only when Keras is
imported when the context is entered (a Keras model exists only then; importing
Keras from a torch or JAX context would import its default backend) and
``keras.backend.backend()`` is the context's backend (Keras on another backend is
not that framework's business).

Doors (class attributes and one module attribute, replaced while a context is open):

- ``Dropout.call``: a training-mode call is a site, rate 0 included (Keras itself
  skips the random op at rate 0; P8 numbers by structure). ``MultiHeadAttention`` and
  ``GroupedQueryAttention`` drop their attention scores through an inner ``Dropout``
  layer, so their score dropout is this door (a ``(B, heads, Tq, Tk)`` site).
- ``MultiHeadAttention._compute_attention`` / ``GroupedQueryAttention._compute_attention``
  and ``Attention._apply_scores``: at ``dropout=0`` Keras never calls its dropout (MHA
  and GQA take the fused ``dot_product_attention`` path); in training the attention
  still takes its number, a rate-0 site (identity) of the scores' shape, as a torch
  model's ``F.dropout(attn, p=0.0, training=True)`` does (P8: numbered by structure).
- ``BaseSpatialDropout.call`` (``SpatialDropout1D/2D/3D``): the noise shape Keras
  computes, ``(N, 1, C)``, ``(N, 1, 1, C)`` or ``(N, C, 1, 1)``, ...
- the backend's ``random.dropout`` (``keras.src.backend.<backend>.random``): what
  ``keras.random.dropout``, the ``Attention`` layer (score dropout) and the recurrent
  cells call. ``LSTMCell``/``GRUCell``/``SimpleRNNCell`` draw their ``dropout`` and
  ``recurrent_dropout`` masks once per sequence, before the time loop (``RNN.call``
  pre-populates them, then every backend's loop, and the fused ``backend.lstm`` /
  ``backend.gru`` paths (cuDNN on TF, ``jax.experimental.rnn``, torch's kernels) only
  multiply by them): one site per mask drawn, of shape ``(batch, features)``. An
  ``LSTMCell`` with ``recurrent_dropout > 0`` uses ``implementation=1`` and draws 4
  masks per kind (one per gate), ``GRUCell`` 3: 4 (or 3) sites each. A cell whose rate
  is 0 draws no mask and takes no number (how many masks it would draw depends on the
  other rate, through ``implementation``; the same on every backend). ``RNN.call`` draws those masks
  in eval mode too (and never uses them there); inside the context an eval-mode
  ``RNN.call`` draws none: the door returns its input (Keras' ones) unnumbered.
- refused in training (``NotImplementedError`` naming the door): ``AlphaDropout`` (SELU
  dropout: not inverted Bernoulli dropout) and ``GaussianDropout`` (multiplicative
  Gaussian noise). ``GaussianNoise`` is additive noise, not a dropout, and is left alone.
- KerasCV (where ``keras_cv`` is imported when the context is entered; SPEC V1):
  ``keras_cv.layers.DropPath.call`` in training is a site, ``drop_path(x, rate,
  mode="row")``: ``dropout_layer`` with noise shape ``(N, 1, ..., 1)``, rate 0 included;
  ``keras_cv.layers.StochasticDepth`` is refused in training (one Bernoulli for the whole
  batch from TensorFlow's ``random_bernoulli`` whatever the backend, and not inverted: it
  scales the residual by the survival probability at test time).

Eval-mode calls run Keras' own code and take no number; Keras' symbolic shape
inference (``KerasTensor`` inputs, ``SymbolicScope``) passes through unnumbered.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Any

from dropout_ref.core.doors import Door, refused_door
from dropout_ref.core.sites import AttributePatch, active, suspended

__all__ = ["KERAS3_BACKENDS", "keras3_doors", "keras3_patches"]

#: The Keras 3 backends whose tensors are those of a ``dropout_ref`` backend of the same name.
KERAS3_BACKENDS = ("tensorflow", "jax", "torch")

_DOORS = (
    ("keras.layers.Dropout", "site", "training, rate 0 included; noise_shape kept; MHA/GQA scores"),
    ("keras.layers.SpatialDropout1D/2D/3D", "site", "Keras' noise shape, e.g. (N, 1, C)"),
    (
        "keras.random.dropout", "site",
        "backend random.dropout: Attention scores, RNN cells' masks (one site per mask)",
    ),
    ("keras.layers.AlphaDropout", "refused", "SELU dropout: not inverted Bernoulli dropout"),
    ("keras.layers.GaussianDropout", "refused", "multiplicative Gaussian noise"),
    (
        "keras_cv.layers.DropPath", "site",
        "needs keras_cv imported at entry; training: drop_path(x, rate, mode='row'),"
        " noise (N, 1, ...)",
    ),
    (
        "keras_cv.layers.StochasticDepth", "refused",
        "needs keras_cv imported at entry; one Bernoulli for the batch, not inverted (scaled by"
        " the survival probability at test time), TensorFlow's generator on every backend",
    ),
)


#: Set while an eval-mode ``RNN.call`` runs in this thread: its masks are never used.
_EVAL_RNN: ContextVar[bool] = ContextVar("dropout_ref_keras3_eval_rnn", default=False)


def keras3_doors(backend: str) -> tuple[Door, ...]:
    """Return the Keras 3 doors of ``backend``'s context (one entry per door, SPEC P8).

    Raises
    ------
    ValueError
        If ``backend`` is not one of :data:`KERAS3_BACKENDS`.

    """
    _check_backend(backend)
    return tuple(
        Door(name, handling, f"KERAS_BACKEND={backend}: {detail}")  # type: ignore[arg-type]
        for name, handling, detail in _DOORS
    )


def _check_backend(backend: str) -> None:
    if backend not in KERAS3_BACKENDS:
        raise ValueError(
            f"backend must be one of {KERAS3_BACKENDS} (a Keras 3 backend that is also a "
            f"dropout_ref backend), got {backend!r}"
        )


def _symbolic(inputs: Any) -> bool:
    """Whether Keras is only inferring shapes (nothing is dropped: no number)."""
    from keras import KerasTensor
    from keras.src.backend.common.symbolic_scope import in_symbolic_scope

    return isinstance(inputs, KerasTensor) or in_symbolic_scope()


def _concrete_noise(inputs: Any, noise_shape: Sequence[Any] | None) -> list[Any] | None:
    """Keras' ``noise_shape`` with ``None`` read from the input (as Keras' backends do)."""
    if noise_shape is None:
        return None
    shape = tuple(inputs.shape)
    if len(noise_shape) != len(shape):
        raise ValueError(
            f"noise_shape must have the rank of the input ({len(shape)}), got "
            f"noise_shape={tuple(noise_shape)!r} for an input of shape {shape}"
        )
    return [shape[i] if d is None else d for i, d in enumerate(noise_shape)]


def _unnumbered(original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Keras' own code, with the context off: shape inference drops nothing real.

    On the torch backend it runs on ``meta`` tensors and reaches ``F.dropout``, which
    torch's ``TorchFunctionMode`` would otherwise number.
    """
    with suspended():
        return original(*args, **kwargs)


def _own_noise(layer: Any, inputs: Any) -> Any:
    """Return ``Dropout``'s noise shape: the one it was built with (``None``: element-wise)."""
    return layer.noise_shape


def _spatial_noise(layer: Any, inputs: Any) -> Any:
    """Return the spatial dropouts' noise shape: one decision per (sample, channel)."""
    return layer._get_noise_shape(inputs)


def _per_sample_noise(layer: Any, inputs: Any) -> list[int | None]:
    """Return KerasCV ``DropPath``'s noise shape: one decision per sample (SPEC V1)."""
    return [None, *[1] * (len(inputs.shape) - 1)]


class _KerasDoors:
    """The replacements of one context, bound to its backend's ``dropout_layer``."""

    def __init__(self, backend: str, dropout_layer: Callable[..., Any]) -> None:
        self.backend = backend
        self.dropout_layer = dropout_layer
        self.context = f"dropout_ref.{backend}.portable_masks"

    def _site(self, inputs: Any, rate: Any, source: str, noise_shape: Any) -> Any:
        from keras import ops

        x = ops.convert_to_tensor(inputs)
        return active().apply(  # type: ignore[union-attr]
            self.dropout_layer, x, rate, source=source,
            noise_shape=_concrete_noise(x, noise_shape),
        )

    def layer_call(
        self, original: Callable[..., Any], source: str, noise: Callable[[Any, Any], Any]
    ):
        """Return a dropout layer's ``call(inputs, training)``: a site of ``noise(layer, inputs)``.

        Keras' ``__call__`` passes the resolved ``training``; a falsy one is eval mode.
        """

        def call(layer, inputs, training=False):
            if active() is None:
                return original(layer, inputs, training=training)
            if _symbolic(inputs):
                return _unnumbered(original, layer, inputs, training=training)
            if not training:
                return inputs
            return self._site(inputs, layer.rate, source, noise(layer, inputs))

        call.__wrapped__ = original
        return call

    def refuse(self, original: Callable[..., Any], source: str):
        context = self.context

        def call(layer, inputs, training=False):
            if active() is not None and training and layer.rate > 0 and not _symbolic(inputs):
                raise refused_door(source, context, "it is not inverted Bernoulli dropout")
            return original(layer, inputs, training=training)

        call.__wrapped__ = original
        return call

    def random_dropout(self, original: Callable[..., Any]):
        def dropout(inputs, rate, noise_shape=None, seed=None):
            if active() is None:
                return original(inputs, rate, noise_shape=noise_shape, seed=seed)
            if _symbolic(inputs):
                return _unnumbered(original, inputs, rate, noise_shape=noise_shape, seed=seed)
            if _EVAL_RNN.get():
                return inputs  # an eval-mode RNN's unused mask: nothing to draw or number
            return self._site(inputs, rate, "keras.random.dropout", noise_shape)

        dropout.__wrapped__ = original
        return dropout

    def attention_rate0(self, original: Callable[..., Any], rate: str, source: str):
        """``_compute_attention`` of MHA/GQA: at rate 0 in training, a rate-0 site (P8)."""
        signature = inspect.signature(original)

        def compute(layer, *args, **kwargs):
            result = original(layer, *args, **kwargs)
            if active() is None or getattr(layer, rate) != 0:
                return result
            bound = signature.bind(layer, *args, **kwargs)
            query, key = bound.arguments["query"], bound.arguments["key"]
            if not bound.arguments.get("training") or _symbolic(query):
                return result
            scores = result[1]
            if scores is None:  # the fused path: the (B, heads, Tq, Tk) shape it skipped
                from keras import ops

                q, k = tuple(query.shape), tuple(key.shape)
                scores = ops.zeros((q[0], q[-2], *q[1:-2], *k[1:-2]), dtype=query.dtype)
            self._site(scores, 0.0, source, None)  # identity at rate 0: only its number
            return result

        compute.__wrapped__ = original
        return compute

    def apply_scores_rate0(self, original: Callable[..., Any]):
        """``Attention._apply_scores``: at ``dropout=0`` in training, a rate-0 site (P8)."""

        def apply_scores(layer, scores, value, scores_mask=None, training=False):
            out, weights = original(layer, scores, value, scores_mask=scores_mask,
                                    training=training)
            if active() is not None and training and layer.dropout == 0 and not _symbolic(
                scores
            ):
                self._site(weights, 0.0, f"keras.layers.{type(layer).__name__}", None)
            return out, weights

        apply_scores.__wrapped__ = original
        return apply_scores

    def rnn_call(self, original: Callable[..., Any]):
        def call(layer, sequences, initial_state=None, mask=None, training=False):
            if active() is None or training:
                return original(
                    layer, sequences, initial_state=initial_state, mask=mask, training=training
                )
            token = _EVAL_RNN.set(True)
            try:
                return original(
                    layer, sequences, initial_state=initial_state, mask=mask, training=training
                )
            finally:
                _EVAL_RNN.reset(token)

        call.__wrapped__ = original
        return call


def keras3_patches(backend: str, dropout_layer: Callable[..., Any]) -> list[AttributePatch]:
    """Return the patches of Keras 3's dropouts for ``backend``'s context (SPEC P8).

    Parameters
    ----------
    backend : {"tensorflow", "jax", "torch"}
        The context's backend; nothing is patched unless Keras runs on it.
    dropout_layer : callable
        That backend's ``dropout_layer`` (SPEC D), which every site calls through
        ``SiteCounter.apply``.

    Returns
    -------
    list of AttributePatch
        Empty when Keras 3 is not imported (by the time the context is entered) or
        runs on another backend.

    Raises
    ------
    ValueError
        If ``backend`` is not one of :data:`KERAS3_BACKENDS`.

    """
    _check_backend(backend)
    if "keras" not in sys.modules:
        # Not imported: no Keras model exists yet, and importing Keras here would import
        # its default backend (TensorFlow) into a torch or JAX program.
        return []
    try:
        import keras
        from keras.src.layers.attention.attention import Attention
        from keras.src.layers.attention.grouped_query_attention import GroupedQueryAttention
        from keras.src.layers.attention.multi_head_attention import MultiHeadAttention
        from keras.src.layers.regularization.alpha_dropout import AlphaDropout
        from keras.src.layers.regularization.dropout import Dropout
        from keras.src.layers.regularization.gaussian_dropout import GaussianDropout
        from keras.src.layers.regularization.spatial_dropout import BaseSpatialDropout
        from keras.src.layers.rnn.rnn import RNN
    except ImportError:  # no Keras 3
        return []
    if keras.backend.backend() != backend:
        return []  # its tensors are another framework's: that context patches it
    backend_random = sys.modules[f"keras.src.backend.{backend}.random"]
    doors = _KerasDoors(backend, dropout_layer)
    patch = AttributePatch
    return [
        patch(Dropout, "call", doors.layer_call(Dropout.call, "keras.layers.Dropout", _own_noise)),
        patch(
            BaseSpatialDropout, "call",
            doors.layer_call(
                BaseSpatialDropout.call, "keras.layers.SpatialDropout", _spatial_noise
            ),
        ),
        patch(AlphaDropout, "call", doors.refuse(AlphaDropout.call, "keras.layers.AlphaDropout")),
        patch(
            GaussianDropout, "call",
            doors.refuse(GaussianDropout.call, "keras.layers.GaussianDropout"),
        ),
        patch(backend_random, "dropout", doors.random_dropout(backend_random.dropout)),
        patch(RNN, "call", doors.rnn_call(RNN.call)),
        patch(
            MultiHeadAttention, "_compute_attention",
            doors.attention_rate0(
                MultiHeadAttention._compute_attention, "_dropout",
                "keras.layers.MultiHeadAttention",
            ),
        ),
        patch(
            GroupedQueryAttention, "_compute_attention",
            doors.attention_rate0(
                GroupedQueryAttention._compute_attention, "dropout",
                "keras.layers.GroupQueryAttention",
            ),
        ),
        patch(Attention, "_apply_scores", doors.apply_scores_rate0(Attention._apply_scores)),
        *_keras_cv_patches(doors),
    ]


def _keras_cv_patches(doors: _KerasDoors) -> list[AttributePatch]:
    """KerasCV's ``DropPath`` (a site) and ``StochasticDepth`` (refused), if imported now."""
    if "keras_cv" not in sys.modules:
        return []
    try:
        from keras_cv.layers import DropPath, StochasticDepth
    except ImportError:  # a KerasCV that does not load against this Keras
        return []
    return [
        AttributePatch(
            DropPath, "call",
            doors.layer_call(DropPath.call, "keras_cv.layers.DropPath", _per_sample_noise),
        ),
        AttributePatch(
            StochasticDepth, "call",
            doors.refuse(StochasticDepth.call, "keras_cv.layers.StochasticDepth"),
        ),
    ]
