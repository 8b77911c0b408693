"""One SGD step and prediction for the Gluon MLP.

The step interface of :mod:`dropout_ref.course.training` (also used by ``dropout-ref compare``).
"""



from __future__ import annotations

import numpy as np

from dropout_ref.models.mxnet.mlp import MLP
from dropout_ref.mxnet.framework import autograd, mnp, mx, npx


def log_softmax(logits):
    """Return ``logits - logsumexp(logits)`` along the last axis, accurate to float32 rounding.

    Not ``npx.log_softmax``: in MXNet 1.9.1 (CPU) it is several float32 ulps
    off (``[[1000, 0, -1000]]`` gives ``1.43e-6`` where the answer is exactly
    0; about 7e-7 relative on logits near 0), and its gradient carries that
    error into the bias gradients, amplified by the cancellation in
    ``sum(softmax - onehot)``: 2e-6 relative after one step, enough for the
    trajectories of a 100-step run to part (docs/compare.md has the numbers).
    The max is a constant shift (its gradient cancels exactly in theory), so
    it is detached rather than differentiated.
    """
    shifted = logits - logits.max(axis=-1, keepdims=True).detach()
    return shifted - mnp.log(mnp.exp(shifted).sum(axis=-1, keepdims=True))


# use_np: numpy semantics (0-d loss) for this call only, not process-wide like npx.set_np().
@mx.util.use_np
def sgd_step(
    model: MLP,
    images: np.ndarray,
    labels: np.ndarray,
    lr: float,
    mask_seed: int | None = None,
    rates: tuple[float, float] | None = None,
) -> float:
    """Take one SGD step on the batch's mean softmax cross-entropy under ``autograd.record()``.

    Parameters
    ----------
    model : dropout_ref.mxnet.MLP
        Updated in place.
    images : numpy.ndarray
        float32 batch, trailing dimensions holding ``num_inputs`` elements.
    labels : numpy.ndarray
        Integer labels of shape ``(n,)``.
    lr : float
        Learning rate.
    mask_seed : int, optional
        Portable-mask seed of this step (SPEC P); ``None`` uses MXNet's generator.
    rates : pair of float, optional
        This step's rates of the two hidden dropouts (a schedule's, SPEC S3);
        ``None``: the model's own.

    Returns
    -------
    float
        The batch loss before the update.

    """
    X = mnp.array(np.asarray(images, dtype=np.float32), dtype="float32")
    y = mnp.array(np.asarray(labels, dtype=np.int64), dtype="int64")
    with autograd.record(train_mode=True):
        # Gluon 1.x Block.__call__ takes positional arguments only.
        logits = model(X, mask_seed, rates)
        log_probs = log_softmax(logits)
        loss = -npx.pick(log_probs, y, axis=-1).mean()
    loss.backward()
    for param in model.weight_params().values():
        param.set_data(param.data() - lr * param.grad())
    return float(loss.item())


@mx.util.use_np
def predict(model: MLP, images: np.ndarray) -> np.ndarray:
    """Return the logits of ``images`` outside ``autograd.record()`` (no dropout) as NumPy."""
    return model(mnp.array(np.asarray(images, dtype=np.float32), dtype="float32")).asnumpy()
