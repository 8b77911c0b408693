"""Train/eval forward passes of a Gluon block in MXNet's idiom (M2).

Training is ``autograd.record()`` (``autograd.is_training()`` is true inside);
evaluation is a plain call outside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dropout_ref.mxnet.framework import autograd, mnp, mx


@mx.util.use_np
def train_forward(model: Any, images: np.ndarray) -> np.ndarray:
    """Return the logits computed inside ``autograd.record()``."""
    X = mnp.array(np.asarray(images, np.float32), dtype="float32")
    with autograd.record():
        out = model(X)
    return out.asnumpy()


@mx.util.use_np
def eval_forward(model: Any, images: np.ndarray) -> np.ndarray:
    """Return the logits of a plain call, outside ``autograd.record()``."""
    X = mnp.array(np.asarray(images, np.float32), dtype="float32")
    return model(X).asnumpy()
