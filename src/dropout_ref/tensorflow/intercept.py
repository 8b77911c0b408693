"""``dropout_ref.tensorflow.portable_masks(seed)``: TensorFlow's and Keras' dropouts, portable.

SPEC P8. While a context is open in some thread, these attributes are replaced
(process-wide; in a thread without a context each replacement calls the
original, so other threads keep native dropout):

- ``tf.nn.dropout`` and ``tf.nn.experimental.stateless_dropout`` (always a site:
  they have no training flag), ``tf.compat.v1.nn.dropout`` (``keep_prob`` or
  ``rate``); ``noise_shape`` becomes SPEC D12's ``noise_shape``; their ``seed``
  is ignored (the context's seed and site decide the mask);
- Keras 3 (``tf.keras`` / ``keras``) on the TensorFlow backend: ``Dropout.call``
  and the spatial dropouts' ``call`` (``SpatialDropout1D/2D/3D``: the noise shape
  Keras computes, ``(N, 1, C)`` etc.), so that a training-mode call with rate 0
  takes its number too (Keras itself skips the random op at rate 0), and the
  backend's ``random.dropout`` (``keras.random.dropout``, the ``Attention`` layer,
  the recurrent cells' dropout masks);
- refused in training with ``NotImplementedError``: ``AlphaDropout`` and
  ``GaussianDropout`` (not inverted Bernoulli dropout).

Inside ``tf.function`` (with or without ``jit_compile``; Keras' compiled ``fit``
and ``train_on_batch``) the context works both ways (SPEC P9,
:mod:`dropout_ref.tensorflow.compiled_sites`): entered inside the traced
function (the seed may be a symbolic ``int64``), or entered eagerly around a
compiled step, whose sites then read the context's run-time seed and count.
A TF1 graph (``tf.compat.v1`` graph mode, no ``tf.function``) is refused with
``RuntimeError``. Keras' symbolic shape inference (building a model on
``KerasTensor``s) passes through and takes no number.
"""

from __future__ import annotations

import sys
from typing import Any

import tensorflow as tf

from dropout_ref.core.doors import Door
from dropout_ref.core.sites import AttributePatch, PatchSet, PortableMasks, active
from dropout_ref.tensorflow import dropout_layer
from dropout_ref.tensorflow.compiled_sites import COMPILED

__all__ = ["DOORS", "portable_masks"]

#: Every door of TensorFlow's and Keras' dropouts and what the context does with it (SPEC P8).
DOORS: tuple[Door, ...] = (
    Door("tf.nn.dropout", "site", "always (no training flag); noise_shape kept; seed ignored"),
    Door("tf.nn.experimental.stateless_dropout", "site", "always; noise_shape kept; seed ignored"),
    Door("tf.compat.v1.nn.dropout", "site", "keep_prob or rate; noise_shape kept"),
    Door("keras.layers.Dropout", "site", "training, rate 0 included; noise_shape kept"),
    Door("keras.layers.SpatialDropout1D/2D/3D", "site", "Keras' noise shape, e.g. (N, 1, C)"),
    Door("keras.random.dropout", "site", "attention and recurrent cells' masks too"),
    Door("keras.layers.AlphaDropout", "refused", "not inverted Bernoulli dropout"),
    Door("keras.layers.GaussianDropout", "refused", "multiplicative Gaussian noise"),
)


def _eager_only(source: str) -> None:
    """Refuse a TF1 graph; eager calls and ``tf.function`` traces are sites (SPEC P9).

    (The name predates P9; every door calls it before numbering a site.)
    """
    if not tf.executing_eagerly() and not tf.inside_function():
        raise RuntimeError(
            f"{source} inside dropout_ref.tensorflow.portable_masks in a TF1 graph "
            "(tf.compat.v1 graph mode): only eager code and tf.function traces are numbered "
            "(SPEC P9)"
        )


def _noise_shape(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (tf.Tensor, tf.Variable)):
        static = tf.get_static_value(value)
        if static is None:  # a shape known when the graph runs only
            raise ValueError(
                f"noise_shape must be known when the graph is traced, got {value!r} (SPEC P9)"
            )
        return [int(v) for v in static.tolist()]
    return list(value)


def _tf_dropout(original):
    def dropout(x, rate=None, noise_shape=None, seed=None, name=None, **kwargs):
        counter = active()
        if counter is None:
            return original(x, rate=rate, noise_shape=noise_shape, seed=seed, name=name, **kwargs)
        _eager_only("tf.nn.dropout")
        x = tf.convert_to_tensor(x)
        return counter.apply(
            dropout_layer, x, rate, source="tf.nn.dropout", noise_shape=_noise_shape(noise_shape)
        )

    dropout.__wrapped__ = original
    return dropout


def _tf_stateless_dropout(original):
    def stateless_dropout(x, rate, seed, rng_alg=None, noise_shape=None, name=None):
        counter = active()
        if counter is None:
            return original(
                x, rate, seed, rng_alg=rng_alg, noise_shape=noise_shape, name=name
            )
        _eager_only("tf.nn.experimental.stateless_dropout")
        x = tf.convert_to_tensor(x)
        return counter.apply(
            dropout_layer, x, rate, source="tf.nn.experimental.stateless_dropout",
            noise_shape=_noise_shape(noise_shape),
        )

    stateless_dropout.__wrapped__ = original
    return stateless_dropout


def _tf_v1_dropout(original):
    def dropout(x, keep_prob=None, noise_shape=None, seed=None, name=None, rate=None):
        counter = active()
        if counter is None:
            return original(
                x, keep_prob=keep_prob, noise_shape=noise_shape, seed=seed, name=name, rate=rate
            )
        _eager_only("tf.compat.v1.nn.dropout")
        if rate is None:
            if keep_prob is None:
                raise ValueError("tf.compat.v1.nn.dropout needs keep_prob or rate, got neither")
            rate = 1 - float(keep_prob)
        x = tf.convert_to_tensor(x)
        return counter.apply(
            dropout_layer, x, rate, source="tf.compat.v1.nn.dropout",
            noise_shape=_noise_shape(noise_shape),
        )

    dropout.__wrapped__ = original
    return dropout


# --- Keras 3 -----------------------------------------------------------------------------------


def _symbolic(inputs: Any) -> bool:
    """Whether Keras is only inferring shapes (no number: nothing is dropped)."""
    from keras import KerasTensor
    from keras.src.backend.common.symbolic_scope import in_symbolic_scope

    return isinstance(inputs, KerasTensor) or in_symbolic_scope()


def _keras_layer_call(original, source: str, spatial: bool):
    def call(self, inputs, training=False):
        counter = active()
        if counter is None or _symbolic(inputs):
            return original(self, inputs, training=training)
        if not training:
            return inputs
        _eager_only(source)
        noise = self._get_noise_shape(inputs) if spatial else self.noise_shape
        return counter.apply(
            dropout_layer, tf.convert_to_tensor(inputs), self.rate, source=source,
            noise_shape=_noise_shape(noise),
        )

    call.__wrapped__ = original
    return call


def _keras_refuse(original, source: str):
    def call(self, inputs, training=False):
        counter = active()
        if counter is not None and training and self.rate > 0 and not _symbolic(inputs):
            raise NotImplementedError(
                f"{source} in training mode inside dropout_ref.tensorflow.portable_masks: it "
                "is not inverted Bernoulli dropout, so the context cannot give it portable "
                "masks, and refuses to let it draw native ones (SPEC P8; docs/port-check.md)"
            )
        return original(self, inputs, training=training)

    call.__wrapped__ = original
    return call


def _keras_backend_dropout(original):
    def dropout(inputs, rate, noise_shape=None, seed=None):
        counter = active()
        if counter is None or _symbolic(inputs):
            return original(inputs, rate, noise_shape=noise_shape, seed=seed)
        _eager_only("keras.random.dropout")
        return counter.apply(
            dropout_layer, tf.convert_to_tensor(inputs), rate, source="keras.random.dropout",
            noise_shape=_noise_shape(noise_shape),
        )

    dropout.__wrapped__ = original
    return dropout


def _keras_patches() -> list[AttributePatch]:
    """Keras 3 on the TensorFlow backend, if Keras is importable (tf.keras is Keras 3)."""
    try:
        import keras
        from keras.src.layers.regularization.alpha_dropout import AlphaDropout
        from keras.src.layers.regularization.dropout import Dropout
        from keras.src.layers.regularization.gaussian_dropout import GaussianDropout
        from keras.src.layers.regularization.spatial_dropout import BaseSpatialDropout
    except ImportError:  # no Keras 3: tf.nn is all there is
        return []
    if keras.backend.backend() != "tensorflow":
        return []  # its tensors are not TensorFlow's; see docs/port-check.md
    backend_random = sys.modules["keras.src.backend.tensorflow.random"]
    patch = AttributePatch
    return [
        patch(Dropout, "call", _keras_layer_call(Dropout.call, "keras.layers.Dropout", False)),
        patch(
            BaseSpatialDropout, "call",
            _keras_layer_call(BaseSpatialDropout.call, "keras.layers.SpatialDropout", True),
        ),
        patch(AlphaDropout, "call", _keras_refuse(AlphaDropout.call, "keras.layers.AlphaDropout")),
        patch(
            GaussianDropout, "call",
            _keras_refuse(GaussianDropout.call, "keras.layers.GaussianDropout"),
        ),
        patch(backend_random, "dropout", _keras_backend_dropout(backend_random.dropout)),
    ]


def _patches() -> list[AttributePatch]:
    patches = [
        AttributePatch(tf.nn, "dropout", _tf_dropout(tf.nn.dropout)),
        AttributePatch(
            tf.nn.experimental, "stateless_dropout",
            _tf_stateless_dropout(tf.nn.experimental.stateless_dropout),
        ),
        AttributePatch(tf.compat.v1.nn, "dropout", _tf_v1_dropout(tf.compat.v1.nn.dropout)),
    ]
    return patches + _keras_patches()


_PATCHES = PatchSet(_patches)


def portable_masks(seed: int) -> PortableMasks:
    """Make TensorFlow's and Keras' dropouts draw portable masks, numbered in call order.

    Inside ``with portable_masks(seed):`` the j-th dropout that TensorFlow or
    Keras performs in training mode in this thread is
    ``dropout_layer(T, p, seed=seed, offset=j * 2**40)`` on that call's tensor
    (SPEC P8; what is patched is listed in the module docstring).

    Parameters
    ----------
    seed : int or tf.Tensor
        The Philox key, an integer in ``[0, 2**64)``; inside a ``tf.function`` also a
        symbolic 0-d ``int64`` (or ``int32``) tensor (SPEC P9).

    Returns
    -------
    dropout_ref.core.sites.PortableMasks
        The context manager; ``ctx.sites`` lists the numbered sites (compiled ones once
        per trace, see :class:`dropout_ref.core.sites.Site`).

    Raises
    ------
    TypeError, ValueError
        If ``seed`` is not an integer in ``[0, 2**64)`` or a symbolic integer tensor.
    RuntimeError
        On entry, if this thread already holds a ``portable_masks`` context; inside,
        for a dropout in a TF1 graph.

    """
    return PortableMasks(seed, "tensorflow", patches=_PATCHES, compiled=COMPILED)
