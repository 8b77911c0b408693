"""TensorFlow's own dropouts under their calling convention, for the native audit (issue 3).

``NATIVES`` maps a name to ``fn(X, p)``; ``EXPECTED_DEVIATIONS`` lists, per
native, the SPEC clauses it breaks on this machine with one line of evidence
each (the long form is ``backends/tensorflow/DEVIATIONS.md``).
"""



from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf


def nn_dropout(X: Any, p: Any) -> Any:
    """``tf.nn.dropout(X, rate=p)``: always drops (no training flag)."""
    return tf.nn.dropout(X, rate=p)


def keras_dropout(X: Any, p: Any) -> Any:
    """``keras.layers.Dropout(p)(X, training=True)``: Keras layers default to inference."""
    return keras.layers.Dropout(p)(X, training=True)


NATIVES: dict[str, Callable[[Any, Any], Any]] = {
    "tf.nn.dropout": nn_dropout,
    "keras.layers.Dropout": keras_dropout,
}

EXPECTED_DEVIATIONS: dict[str, dict[str, str]] = {
    "tf.nn.dropout": {
        "D1": "rate=nan is accepted (a NaN rate fails no comparison)",
        "D3": "rate=1 raises ValueError (rate must be in [0, 1))",
        "D4": "the uniform is drawn in X's dtype: keep rate at p=0.001 is -61 sigma off in "
        "float16 and -434 sigma in bfloat16 at 4.2e6 elements",
        "D7": "integer X raises ValueError, not TypeError",
        "D10": "with the biased 16-bit uniform, p=0.999 in bfloat16 drops every element: "
        "mean of out/X is 0",
    },
    "keras.layers.Dropout": {
        "D1": "rate=True is accepted; a str rate raises a TypeError without the value",
        "D2": "the layer casts X to its dtype policy (float32 by default): float16/float64 "
        "X come back as float32",
        "D3": "float16/float64 X come back as float32 (dtype policy)",
        "D5": "float64 X is computed in float32 (dtype policy): kept values 1e8 ulp off",
        "D7": "output dtype is the layer's policy (float32), not X's",
        "D8": "float64 gradients pass through float32 (dtype policy)",
        "D9": "tf.random.set_seed does not reproduce the mask: the layer's SeedGenerator is "
        "seeded from Python's random module (keras.utils.set_random_seed)",
    },
}
# Structured natives (SPEC D12, the kit's noise_shape variant): one decision per group
# holds (D12 passes); each keeps the deviations of the element-wise op it is built on.
EXPECTED_DEVIATIONS["tf.nn.dropout(noise_shape=)"] = dict(EXPECTED_DEVIATIONS["tf.nn.dropout"])
for _name in (
    "keras.layers.Dropout(noise_shape=)",
    "keras.layers.SpatialDropout1D",
    "keras.layers.SpatialDropout2D",
):
    EXPECTED_DEVIATIONS[_name] = dict(EXPECTED_DEVIATIONS["keras.layers.Dropout"])


# -- structured natives (SPEC D12): one decision shared along the time / spatial axes --------


def nn_dropout_noise_shape(X: Any, p: Any) -> Any:
    """``tf.nn.dropout(X, rate=p, noise_shape=[N, 1, C])`` on an ``(N, T, C)`` X."""
    shape = tf.shape(X)
    return tf.nn.dropout(X, rate=p, noise_shape=[shape[0], 1, shape[2]])


def keras_dropout_noise_shape(X: Any, p: Any) -> Any:
    """``keras.layers.Dropout(p, noise_shape=(None, 1, None))(X, training=True)``."""
    return keras.layers.Dropout(p, noise_shape=(None, 1, None))(X, training=True)


def keras_spatial_dropout_1d(X: Any, p: Any) -> Any:
    """``keras.layers.SpatialDropout1D(p)(X, training=True)`` on an ``(N, T, C)`` X."""
    return keras.layers.SpatialDropout1D(p)(X, training=True)


def keras_spatial_dropout_2d(X: Any, p: Any) -> Any:
    """``keras.layers.SpatialDropout2D(p)(X, training=True)`` on an ``(N, H, W, C)`` X."""
    return keras.layers.SpatialDropout2D(p)(X, training=True)


#: name -> (fn, noise_shape of the kit's structured variant): 1 marks the shared axes.
STRUCTURED: dict[str, tuple[Callable[[Any, Any], Any], tuple[int | None, ...]]] = {
    "tf.nn.dropout(noise_shape=)": (nn_dropout_noise_shape, (None, 1, None)),
    "keras.layers.Dropout(noise_shape=)": (keras_dropout_noise_shape, (None, 1, None)),
    "keras.layers.SpatialDropout1D": (keras_spatial_dropout_1d, (None, 1, None)),
    "keras.layers.SpatialDropout2D": (keras_spatial_dropout_2d, (None, 1, 1, None)),
}
