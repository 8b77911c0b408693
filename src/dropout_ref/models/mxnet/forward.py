"""MXNet piece of :func:`dropout_ref.forward_numpy`: ``autograd.record()`` is training (M2, X3)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dropout_ref.mxnet.framework import autograd, mnp, mx


@mx.util.use_np
def forward_numpy(
    model: Any, inputs: Any, *, training: bool, mask_seed: int | None = None
) -> np.ndarray:
    """Return the output of ``model`` inside ``autograd.record()`` (training) or outside, as NumPy.

    Integer inputs (a GPT's token ids) become int32, everything else (an MLP's
    images) float32. Nothing is differentiated: the recording only switches
    ``autograd.is_training()`` on, which is where MXNet's dropout applies.
    """
    array = np.asarray(inputs)
    if array.dtype.kind in "iu":
        X = mnp.array(array, dtype="int32")
    else:
        X = mnp.array(array.astype(np.float32), dtype="float32")
    if training:
        # Gluon 1.x Block.__call__ takes positional arguments only.
        with autograd.record(train_mode=True):
            out = model(X, mask_seed)
    else:
        out = model(X, mask_seed)
    return out.asnumpy()
