"""``dropout_ref.tensorflow.portable_masks(seed)``: TensorFlow's and Keras' dropouts, portable.

SPEC P8. While a context is open in some thread, these attributes are replaced
(process-wide; in a thread without a context each replacement calls the
original, so other threads keep native dropout):

- ``tf.nn.dropout``, ``tf.nn.experimental.stateless_dropout`` and
  ``general_dropout`` (always a site: they have no training flag; the latter's
  ``uniform_sampler`` is never called), ``tf.compat.v1.nn.dropout`` (``keep_prob`` or
  ``rate``), and the same functions reached through the module objects
  ``tf.compat.v1.nn`` and ``tf.compat.v2.nn`` (distinct objects: Keras 2 reaches
  TensorFlow through ``tensorflow.compat.v2``); ``noise_shape`` becomes SPEC D12's
  ``noise_shape``; their ``seed`` is ignored (the context's seed and site decide);
- Keras 3 on the TensorFlow backend: the doors of :mod:`dropout_ref.doors.keras3`
  (``Dropout``, ``SpatialDropout1D/2D/3D``, attention scores, ``keras.random.dropout``,
  the recurrent cells' masks; ``AlphaDropout``/``GaussianDropout`` refused);
- Keras 2 (``tf_keras``, what Hugging Face's TF models use): the doors of
  :mod:`dropout_ref.doors.tf_keras` (its ``Dropout`` family, every path of its
  ``RandomGenerator.dropout``; ``AlphaDropout``/``GaussianDropout`` refused).

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

from typing import Any

import tensorflow as tf

from dropout_ref.core.doors import Door
from dropout_ref.core.sites import AttributePatch, PatchSet, PortableMasks, active
from dropout_ref.doors.keras3 import keras3_doors, keras3_patches
from dropout_ref.doors.tf_keras import TF_KERAS_DOORS, tf_keras_patches
from dropout_ref.tensorflow import dropout_layer
from dropout_ref.tensorflow.compiled_sites import COMPILED

__all__ = ["DOORS", "portable_masks"]

#: Every door of TensorFlow's and Keras' dropouts and what the context does with it (SPEC P8).
DOORS: tuple[Door, ...] = (
    Door("tf.nn.dropout", "site", "always (no training flag); noise_shape kept; seed ignored"),
    Door("tf.nn.experimental.stateless_dropout", "site", "always; noise_shape kept; seed ignored"),
    Door("tf.nn.experimental.general_dropout", "site", "always; uniform_sampler not called"),
    Door("tf.compat.v1.nn.dropout", "site", "keep_prob or rate; noise_shape kept"),
    Door("tf.compat.v1.nn.experimental.*_dropout", "site", "as tf.nn.experimental's"),
    Door("tf.compat.v2.nn.dropout", "site", "and its experimental.*: tf_keras' module objects"),
    *keras3_doors("tensorflow"),
    *TF_KERAS_DOORS,
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


def _tf_general_dropout(original):
    def general_dropout(x, rate, uniform_sampler, noise_shape=None, name=None):
        counter = active()
        if counter is None:
            return original(
                x, rate, uniform_sampler, noise_shape=noise_shape, name=name
            )
        _eager_only("tf.nn.experimental.general_dropout")
        x = tf.convert_to_tensor(x)
        return counter.apply(
            dropout_layer, x, rate, source="tf.nn.experimental.general_dropout",
            noise_shape=_noise_shape(noise_shape),
        )

    general_dropout.__wrapped__ = original
    return general_dropout


#: The module objects through which TensorFlow's dropouts are reached: ``tf.nn`` and the
#: compat aliases, which are distinct module objects (``tf_keras`` imports
#: ``tensorflow.compat.v2`` as ``tf``), so each needs its own patch.
def _nn_modules() -> list[tuple[Any, bool]]:
    return [(tf.nn, False), (tf.compat.v2.nn, False), (tf.compat.v1.nn, True)]


def _patches() -> list[AttributePatch]:
    patches = []
    for nn, v1 in _nn_modules():
        dropout = _tf_v1_dropout(nn.dropout) if v1 else _tf_dropout(nn.dropout)
        experimental = nn.experimental
        patches += [
            AttributePatch(nn, "dropout", dropout),
            AttributePatch(
                experimental, "stateless_dropout",
                _tf_stateless_dropout(experimental.stateless_dropout),
            ),
            AttributePatch(
                experimental, "general_dropout", _tf_general_dropout(experimental.general_dropout)
            ),
        ]
    return patches + keras3_patches("tensorflow", dropout_layer) + tf_keras_patches(dropout_layer)


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
