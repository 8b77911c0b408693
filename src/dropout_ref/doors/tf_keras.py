"""Keras 2 (``tf_keras``) draws portable masks in TensorFlow's context (SPEC P8).

Hugging Face's TensorFlow models (``TFGPT2LMHeadModel``, ``TFBertModel``, ...) are
``tf_keras`` models. ``tf_keras`` reaches TensorFlow through ``tensorflow.compat.v2``,
whose ``nn`` is a module object distinct from ``tf.nn`` (the TensorFlow context patches
those too), and draws every dropout mask through ``backend.RandomGenerator.dropout``,
which has three paths (legacy stateful ``tf.nn.dropout``, stateless
``stateless_dropout``, stateful ``general_dropout`` with the generator's
``uniform_sampler``). Doors, replaced while ``dropout_ref.tensorflow.portable_masks``
is open:

- ``tf_keras.layers.Dropout.call``, which ``SpatialDropout1D/2D/3D`` inherit: in
  training mode (``training``, else ``backend.learning_phase()``, as ``tf_keras``
  resolves it) a site, rate 0 included (``tf_keras`` returns ``tf.identity`` at rate 0
  before looking at the flag); the noise shape is the layer's ``_get_noise_shape``;
- ``tf_keras.backend.RandomGenerator.dropout``: every path above, hence also the
  recurrent cells' masks (``DropoutRNNCellMixin``: one site per mask drawn) and the
  dense attention layers' score dropout;
- refused in training: ``AlphaDropout`` and ``GaussianDropout``.

The doors are installed when ``tf_keras`` is imported by the time the context is
entered (``transformers`` imports it with its TF models). Calls inside ``tf_keras``'
scratch graphs (functional-model shape inference) pass
through unnumbered. This module imports no framework at import time.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from dropout_ref.core.doors import Door, refused_door
from dropout_ref.core.sites import AttributePatch, active

__all__ = ["TF_KERAS_DOORS", "tf_keras_patches"]

_CONTEXT = "dropout_ref.tensorflow.portable_masks"

#: The Keras 2 doors, entries of the TensorFlow context's door table (SPEC P8).
TF_KERAS_DOORS: tuple[Door, ...] = (
    Door("tf_keras.layers.Dropout", "site", "training or learning_phase; rate 0 included"),
    Door("tf_keras.layers.SpatialDropout1D/2D/3D", "site", "the layer's noise shape"),
    Door(
        "tf_keras.backend.RandomGenerator.dropout", "site",
        "stateless, stateful (general_dropout) and legacy paths; RNN cells' masks",
    ),
    Door("tf_keras.layers.AlphaDropout", "refused", "SELU dropout: not inverted Bernoulli"),
    Door("tf_keras.layers.GaussianDropout", "refused", "multiplicative Gaussian noise"),
)


def _scratch(inputs: Any) -> bool:
    """Whether ``tf_keras`` is inferring a functional model's shapes in a scratch graph."""
    graph = getattr(inputs, "graph", None)
    return graph is not None and str(getattr(graph, "name", "")).endswith("_scratch_graph")


def _static_noise(inputs: Any, noise_shape: Any) -> list[Any] | None:
    """``tf_keras``' noise shape (a tensor built from ``tf.shape``) as static dimensions."""
    import tensorflow as tf

    if noise_shape is None:
        return None
    value = tf.get_static_value(noise_shape)
    if value is not None:
        return [int(v) for v in value]
    dims = list(noise_shape)
    shape = inputs.shape
    out = []
    for i, d in enumerate(dims):
        static = tf.get_static_value(d)
        out.append(shape[i] if static is None else int(static))
    return out


def _site(dropout_layer: Callable[..., Any], inputs: Any, rate: Any, noise: Any, source: str):
    import tensorflow as tf

    x = tf.convert_to_tensor(inputs)
    return active().apply(  # type: ignore[union-attr]
        dropout_layer, x, rate, source=source, noise_shape=_static_noise(x, noise)
    )


def _dropout_call(original: Callable[..., Any], dropout_layer: Callable[..., Any]):
    def call(layer, inputs, training=None):
        if active() is None or _scratch(inputs):
            return original(layer, inputs, training=training)
        import tensorflow as tf
        from tf_keras.src import backend
        from tf_keras.src.utils import control_flow_util

        if training is None:
            training = backend.learning_phase()
        source = f"tf_keras.layers.{type(layer).__name__}"

        def dropped():
            noise = layer._get_noise_shape(inputs)
            return _site(dropout_layer, inputs, layer.rate, noise, source)

        # smart_cond decides on a Python or constant flag without a graph branch.
        return control_flow_util.smart_cond(training, dropped, lambda: tf.identity(inputs))

    call.__wrapped__ = original
    return call


def _generator_dropout(original: Callable[..., Any], dropout_layer: Callable[..., Any]):
    def dropout(generator, inputs, rate, noise_shape=None):
        if active() is None or _scratch(inputs):
            return original(generator, inputs, rate, noise_shape=noise_shape)
        return _site(
            dropout_layer, inputs, rate, noise_shape, "tf_keras.backend.RandomGenerator.dropout"
        )

    dropout.__wrapped__ = original
    return dropout


def _refuse(original: Callable[..., Any], source: str):
    def call(layer, inputs, training=None):
        if active() is not None and not _scratch(inputs) and 0 < layer.rate < 1:
            from tf_keras.src import backend
            from tf_keras.src.utils import control_flow_util

            flag = backend.learning_phase() if training is None else training
            flag = control_flow_util.constant_value(flag)
            if flag is None or flag:  # a symbolic flag may be training: refuse
                raise refused_door(source, _CONTEXT, "it is not inverted Bernoulli dropout")
        return original(layer, inputs, training=training)

    call.__wrapped__ = original
    return call


def tf_keras_patches(dropout_layer: Callable[..., Any]) -> list[AttributePatch]:
    """Return the patches of Keras 2's dropouts for TensorFlow's context (SPEC P8).

    Parameters
    ----------
    dropout_layer : callable
        ``dropout_ref.tensorflow.dropout_layer`` (SPEC D), called through
        ``SiteCounter.apply`` at every site.

    Returns
    -------
    list of AttributePatch
        Empty when ``tf_keras`` is not imported when the context is entered.

    """
    if "tf_keras" not in sys.modules:
        return []  # no tf_keras model exists yet; importing it here would cost seconds
    try:
        from tf_keras.src.backend import RandomGenerator
        from tf_keras.src.layers.regularization.alpha_dropout import AlphaDropout
        from tf_keras.src.layers.regularization.dropout import Dropout
        from tf_keras.src.layers.regularization.gaussian_dropout import GaussianDropout
    except ImportError:  # no Keras 2
        return []
    patch = AttributePatch
    return [
        patch(Dropout, "call", _dropout_call(Dropout.call, dropout_layer)),
        patch(
            RandomGenerator, "dropout",
            _generator_dropout(RandomGenerator.dropout, dropout_layer),
        ),
        patch(AlphaDropout, "call", _refuse(AlphaDropout.call, "tf_keras.layers.AlphaDropout")),
        patch(
            GaussianDropout, "call",
            _refuse(GaussianDropout.call, "tf_keras.layers.GaussianDropout"),
        ),
    ]
