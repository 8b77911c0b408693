"""PyTorch's own dropouts under their calling convention, for the native audit.

``NATIVES`` maps a name to ``fn(X, p)``; ``EXPECTED_DEVIATIONS`` lists, per
native, the SPEC clauses it breaks on this machine with one line of evidence
each (the long form is ``docs/deviations/torch.md``; a test keeps the two
in agreement and fails when a deviation disappears).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from dropout_ref.conformance.attention.torch import attention_natives
from dropout_ref.conformance.natives.keras import keras_attention_natives, keras_natives
from dropout_ref.conformance.natives.stochastic_depth import (
    KERAS_CV_DEVIATIONS,
    KERAS_CV_DROP_PATH,
    TIMM_NAMES,
    TORCHVISION_NAMES,
    keras_cv_natives,
    stochastic_depth_natives,
)


def functional_dropout(X: torch.Tensor, p: Any) -> torch.Tensor:
    """``torch.nn.functional.dropout(X, p, training=True)`` (training is its default)."""
    return nn.functional.dropout(X, p, training=True)


def module_dropout(X: torch.Tensor, p: Any) -> torch.Tensor:
    """``torch.nn.Dropout(p)`` in train mode (a fresh module is in train mode)."""
    layer = nn.Dropout(p)
    layer.train()
    return layer(X)


NATIVES: dict[str, Callable[[Any, Any], Any]] = {
    "torch.nn.functional.dropout": functional_dropout,
    "torch.nn.Dropout": module_dropout,
}

_COMMON = {
    "D1": "accepts dropout=True; NaN raises RuntimeError; str/None raise a TypeError "
    "without the value",
    "D3": "p=1 multiplies by a zero mask: NaN where X is NaN/inf, -0.0 where X is negative",
    "D6": "dropped elements are X*0: NaN where X is NaN/inf, -0.0 where X is negative",
    "D7": "integer X raises RuntimeError, not TypeError",
}

EXPECTED_DEVIATIONS: dict[str, dict[str, str]] = {
    "torch.nn.functional.dropout": dict(_COMMON),
    "torch.nn.Dropout": {
        **_COMMON,
        "D1": "nn.Dropout(nan) and nn.Dropout(True) are accepted; str/None raise a TypeError "
        "without the value",
    },
    # Structured natives (SPEC D12, the kit's noise_shape variant): one decision per
    # channel holds (D12 passes); the element-wise kernel's deviations carry over.
    **{
        name: {
            **_COMMON,
            "D1": f"{name.rsplit('.', 1)[1]}(True) is accepted; (nan) constructs and raises "
            "RuntimeError at call time; str/None raise a TypeError without the value",
        }
        for name in ("torch.nn.Dropout1d", "torch.nn.Dropout2d", "torch.nn.Dropout3d")
    },
    "torch.nn.functional.dropout2d": dict(_COMMON),
}


# -- structured natives (SPEC D12): one decision per channel ----------------------------------


def _module(cls: type[nn.Module]) -> Callable[[torch.Tensor, Any], torch.Tensor]:
    def run(X: torch.Tensor, p: Any) -> torch.Tensor:
        layer = cls(p)
        layer.train()
        return layer(X)

    run.__doc__ = f"``torch.nn.{cls.__name__}(p)`` in train mode."
    return run


def functional_dropout2d(X: torch.Tensor, p: Any) -> torch.Tensor:
    """``torch.nn.functional.dropout2d(X, p, training=True)``."""
    return nn.functional.dropout2d(X, p, training=True)


#: name -> (fn, noise_shape of the kit's structured variant): 1 marks the shared axes.
STRUCTURED: dict[str, tuple[Callable[[Any, Any], Any], tuple[int | None, ...]]] = {
    "torch.nn.Dropout1d": (_module(nn.Dropout1d), (None, None, 1)),
    "torch.nn.Dropout2d": (_module(nn.Dropout2d), (None, None, 1, 1)),
    "torch.nn.Dropout3d": (_module(nn.Dropout3d), (None, None, 1, 1, 1)),
    "torch.nn.functional.dropout2d": (functional_dropout2d, (None, None, 1, 1)),
}

# Keras 3 on torch (KERAS_BACKEND=torch; the report's torch worker sets it): present only
# where Keras runs on torch in this process. All rows are in docs/deviations/torch.md.
_KERAS_D1 = "rate=True is accepted; rate='0.5' raises a TypeError without the value"
DOCUMENTED_DEVIATIONS: dict[str, dict[str, str]] = {
    **EXPECTED_DEVIATIONS,
    "keras.layers.Dropout (torch)": {
        "D1": _KERAS_D1 + "; a 2-element tensor raises RuntimeError",
        "D2": "the layer casts X to its dtype policy: float16/bfloat16/float64 X come back "
        "as float32",
        "D3": "float16/bfloat16/float64 X come back as float32 zeros (dtype policy)",
        "D5": "float64 X is computed in float32 (dtype policy): kept values 1e8 ulp off",
        "D6": "dropped elements are X*0 (torch's dropout): -0.0 where X is negative",
        "D7": "output dtype is the layer's policy (float32), not X's",
        "D8": "float64 gradients pass through float32 (dtype policy)",
    },
    "keras.random.dropout (torch)": {
        "D1": _KERAS_D1 + "; rate=nan raises RuntimeError",
        "D6": "dropped elements are X*0 (torch's dropout): -0.0 where X is negative",
        "D7": "integer X raises RuntimeError, not TypeError",
    },
}
NATIVES.update(keras_natives("torch"))

# Stochastic depth of timm and torchvision (SPEC V1; the kit's DropPath view, one decision
# per sample): present only where the package imports here (the optional vision
# environment). Documented whatever is installed; the long form is docs/deviations/torch.md.
STRUCTURED.update(stochastic_depth_natives())
_SD_COMMON = {
    "D3": "p=1 multiplies by a zero mask: NaN where X is NaN/inf, -0.0 where X is negative",
    "D6": "dropped samples are X*0: NaN where X is NaN/inf, -0.0 where X is negative",
    "D7": "integer X raises RuntimeError, not TypeError",
}
for _name in TIMM_NAMES:
    DOCUMENTED_DEVIATIONS[_name] = {
        **_SD_COMMON,
        "D1": "p outside [0, 1] and nan raise bernoulli_'s RuntimeError naming 1-p; True is "
        "accepted; str/None raise a TypeError without the value",
    }
for _name in TORCHVISION_NAMES:
    DOCUMENTED_DEVIATIONS[_name] = {
        **_SD_COMMON,
        "D1": "nan raises bernoulli_'s RuntimeError; True is accepted; str/None raise a "
        "TypeError without the value",
    }

# KerasCV's DropPath (SPEC V1), a Keras 3 layer: present only where keras_cv imports and Keras
# runs on torch here; documented whatever is installed.
STRUCTURED.update(keras_cv_natives("torch"))
DOCUMENTED_DEVIATIONS[f"{KERAS_CV_DROP_PATH} (torch)"] = KERAS_CV_DEVIATIONS["torch"]

#: Attention kernels audited through the identity trick (dropout_ref.conformance.attention.audit):
#: name -> probe factory. No deviation: SDPA's math kernel and Keras' attention on torch pass
#: D3-D10; the CPU flash kernel refuses dropout_p > 0 (its cells are n/a, with torch's reason).
ATTENTION: dict[str, Callable[[], Any]] = {
    **attention_natives(),
    **keras_attention_natives("torch"),
}
# Keras' attention is documented (no deviation) whatever backend Keras runs on here.
DOCUMENTED_DEVIATIONS["keras.layers.MultiHeadAttention(dropout=) (torch)"] = {}
for _name in ATTENTION:
    DOCUMENTED_DEVIATIONS.setdefault(_name, {})
EXPECTED_DEVIATIONS = {
    name: DOCUMENTED_DEVIATIONS[name] for name in [*NATIVES, *STRUCTURED, *ATTENTION]
}
