"""Training step of the Gluon GPT (the contract of :mod:`dropout_ref.porting.gpt_compare`).

One step: the mean token cross-entropy of the logits computed inside
``autograd.record()`` (dropout at every site, portable with ``mask_seed``),
``backward()``, and one step of the framework's own SGD (a ``gluon.Trainer``
with ``"sgd"``, no momentum, no weight decay).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dropout_ref.course.mxnet.training import log_softmax
from dropout_ref.models.gpt_config import validate_batch
from dropout_ref.models.mxnet.gpt import GPT
from dropout_ref.mxnet.framework import autograd, gluon, mnp, mx, npx
from dropout_ref.porting.gpt_compare import DEFAULT_LR, validate_lr


# use_np: the optimizer records at creation whether it may update np-mode parameters.
@mx.util.use_np
def gpt_optimizer(model: GPT, lr: float = DEFAULT_LR) -> gluon.Trainer:
    """Return a ``gluon.Trainer`` of plain SGD with learning rate ``lr`` over the GPT's weights."""
    params = {param.name: param for param in model.weight_params().values()}
    return gluon.Trainer(
        params, "sgd", {"learning_rate": validate_lr(lr), "momentum": 0.0, "wd": 0.0}
    )


@mx.util.use_np
def _recorded_loss(
    model: GPT, idx: Any, targets: Any, mask_seed: int | None, rates: Any = None
) -> Any:
    idx, targets = validate_batch(idx, targets, model.config)
    x = mnp.array(idx, dtype="int32")
    y = mnp.array(targets, dtype="int32")
    with autograd.record(train_mode=True):
        # Gluon 1.x Block.__call__ takes positional arguments only.
        logits = model(x, mask_seed, rates)
        loss = -npx.pick(log_softmax(logits), y, axis=-1).mean()
    loss.backward()
    return loss


def gpt_loss_and_gradients(
    model: GPT, idx: Any, targets: Any, *, mask_seed: int | None = None, rates: Any = None
) -> tuple[float, dict[str, np.ndarray]]:
    """Return the train-mode loss and its gradient per weight (HF names), without a step.

    ``rates``: this call's rates of some or all sites (a schedule's, SPEC S3).
    """
    loss = _recorded_loss(model, idx, targets, mask_seed, rates)
    grads = {name: p.grad().asnumpy().copy() for name, p in model.weight_params().items()}
    return float(loss.item()), grads


@mx.util.use_np
def gpt_train_step(
    model: GPT,
    optimizer: gluon.Trainer,
    idx: Any,
    targets: Any,
    *,
    mask_seed: int | None = None,
    rates: Any = None,
) -> float:
    """Take one optimizer step on the mean token cross-entropy; return the loss before it.

    Parameters
    ----------
    model : dropout_ref.mxnet.GPT
        Updated in place.
    optimizer : mxnet.gluon.Trainer
        From :func:`gpt_optimizer` (or any Trainer over the model's weights).
    idx, targets : array of int, shape (B, T)
        Token ids and the ids to predict at each position.
    mask_seed : int, optional
        Portable masks of this step (SPEC X4); ``None`` uses MXNet's generator.
    rates : dict of str to float, optional
        This step's rates of some or all sites (``RATE_NAMES``: X2's and V3's;
        a schedule's, SPEC S3) instead of the config's; the model is not rebuilt.

    """
    loss = _recorded_loss(model, idx, targets, mask_seed, rates)
    # step(1): the loss is already a mean, so no further rescaling of the gradients.
    optimizer.step(1)
    return float(loss.item())
