"""TensorFlow's own dropouts under their calling convention, for the native audit.

``NATIVES`` maps a name to ``fn(X, p)``; ``EXPECTED_DEVIATIONS`` lists, per
native, the SPEC clauses it breaks on this machine with one line of evidence
each (the long form is ``docs/deviations/tensorflow.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from dropout_ref.conformance.natives.keras import (
    STRUCTURED_KERAS_NAMES,
    keras_attention_natives,
    keras_natives,
    keras_structured_natives,
)
from dropout_ref.conformance.natives.stochastic_depth import (
    KERAS_CV_DEVIATIONS,
    KERAS_CV_DROP_PATH,
    keras_cv_natives,
)


def nn_dropout(X: Any, p: Any) -> Any:
    """``tf.nn.dropout(X, rate=p)``: always drops (no training flag)."""
    return tf.nn.dropout(X, rate=p)


NATIVES: dict[str, Callable[[Any, Any], Any]] = {"tf.nn.dropout": nn_dropout}

#: Every documented deviation (docs/deviations/tensorflow.md), Keras 3's on TensorFlow too.
DOCUMENTED_DEVIATIONS: dict[str, dict[str, str]] = {
    "tf.nn.dropout": {
        "D1": "rate=nan is accepted (a NaN rate fails no comparison)",
        "D3": "rate=1 raises ValueError (rate must be in [0, 1))",
        "D4": "the uniform is drawn in X's dtype: keep rate at p=0.001 is -61 sigma off in "
        "float16 and -434 sigma in bfloat16 at 4.2e6 elements",
        "D7": "integer X raises ValueError, not TypeError",
        "D10": "with the biased 16-bit uniform, p=0.999 in bfloat16 drops every element: "
        "mean of out/X is 0",
    },
    "keras.layers.Dropout (tensorflow)": {
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
    "keras.random.dropout (tensorflow)": {
        "D1": "rate=nan and rate=True are accepted",
        "D4": "the uniform is drawn in X's dtype: keep rate at p=0.001 is -60 sigma off in "
        "float16 at 4.2e6 elements",
        "D7": "integer X raises ValueError, not TypeError",
        "D9": "tf.random.set_seed does not reproduce the mask: Keras' global SeedGenerator "
        "(keras.utils.set_random_seed)",
        "D10": "with the biased 16-bit uniform, p=0.999 in bfloat16 drops every element: "
        "mean of out/X is 0",
    },
}

# Structured natives (SPEC D12, the kit's noise_shape variant): one decision per group
# holds (D12 passes); each keeps the deviations of the element-wise op it is built on.
DOCUMENTED_DEVIATIONS["tf.nn.dropout(noise_shape=)"] = dict(DOCUMENTED_DEVIATIONS["tf.nn.dropout"])
for _name in STRUCTURED_KERAS_NAMES:
    DOCUMENTED_DEVIATIONS[f"{_name} (tensorflow)"] = dict(
        DOCUMENTED_DEVIATIONS["keras.layers.Dropout (tensorflow)"]
    )


def nn_dropout_noise_shape(X: Any, p: Any) -> Any:
    """``tf.nn.dropout(X, rate=p, noise_shape=[N, 1, C])`` on an ``(N, T, C)`` X."""
    shape = tf.shape(X)
    return tf.nn.dropout(X, rate=p, noise_shape=[shape[0], 1, shape[2]])


#: name -> (fn, noise_shape of the kit's structured variant): 1 marks the shared axes.
STRUCTURED: dict[str, tuple[Callable[[Any, Any], Any], tuple[int | None, ...]]] = {
    "tf.nn.dropout(noise_shape=)": (nn_dropout_noise_shape, (None, 1, None)),
}

# Keras 3 on TensorFlow (KERAS_BACKEND=tensorflow, Keras' default; the report's tensorflow
# worker sets it): present only where Keras runs on TensorFlow in this process.
NATIVES.update(keras_natives("tensorflow"))
STRUCTURED.update(keras_structured_natives("tensorflow"))
# KerasCV's DropPath (SPEC V1), a Keras 3 layer: present only where keras_cv imports and Keras
# runs on tensorflow here; documented whatever is installed.
STRUCTURED.update(keras_cv_natives("tensorflow"))
DOCUMENTED_DEVIATIONS[f"{KERAS_CV_DROP_PATH} (tensorflow)"] = KERAS_CV_DEVIATIONS["tensorflow"]
#: Attention kernels audited through the identity trick (dropout_ref.conformance.attention.audit).
#: No deviation: Keras' attention on TensorFlow passes D3-D10.
ATTENTION: dict[str, Callable[[], Any]] = keras_attention_natives("tensorflow")
# Keras' attention is documented (no deviation) whatever backend Keras runs on here.
DOCUMENTED_DEVIATIONS["keras.layers.MultiHeadAttention(dropout=) (tensorflow)"] = {}
for _name in ATTENTION:
    DOCUMENTED_DEVIATIONS.setdefault(_name, {})
EXPECTED_DEVIATIONS = {
    name: DOCUMENTED_DEVIATIONS[name] for name in [*NATIVES, *STRUCTURED, *ATTENTION]
}
