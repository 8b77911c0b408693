"""Adam for the MXNet GPT (see dropout_ref.course.gpt_training).

MXNet 1.9.1's optimizer registry has no AdamW (``adam``, ``adamax``, ``nadam``):
its ``wd`` is an L2 term added to the gradient, not AdamW's decoupled decay. The
GPT therefore trains with Adam and that L2 term on the matrices only (``wd_mult``
0 for biases and LayerNorm weights), the closest MXNet offers; the other
backends' runs are AdamW.
"""

from __future__ import annotations

from typing import Any

import mxnet as mx
from mxnet import gluon


def gpt_adamw(
    model: Any, *, lr: float, weight_decay: float, betas: tuple[float, float]
) -> gluon.Trainer:
    """Return a ``gluon.Trainer`` of Adam with L2 weight decay on the matrices only."""
    params = {param.name: param for param in model.weight_params().values()}
    for param in params.values():
        if len(param.shape) < 2:
            param.wd_mult = 0.0
    adam = mx.optimizer.Adam(learning_rate=lr, beta1=betas[0], beta2=betas[1], wd=weight_decay)
    # The GPT's weights are mx.np arrays; MXNet's Adam updates them in place all the same.
    adam.allow_np_array = True
    return gluon.Trainer(params, adam)
