"""One SGD step and prediction for the torch MLP.

The step interface of :mod:`dropout_ref.course.training` (also used by ``dropout-ref compare``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dropout_ref.core.runtime import checked_rates
from dropout_ref.core.validation import int64_bits, validate_seed
from dropout_ref.models.torch.mlp import MLP


def _device(model: MLP) -> torch.device:
    return model.W1.device


def sgd_step(
    model: MLP,
    images: np.ndarray,
    labels: np.ndarray,
    lr: float,
    mask_seed: int | None = None,
    rates: Any = None,
) -> float:
    """Take one SGD step on the batch's mean softmax cross-entropy in ``train()`` mode.

    Parameters
    ----------
    model : dropout_ref.torch.MLP
        Updated in place; left in ``train()`` mode.
    images : numpy.ndarray
        float32 batch, trailing dimensions holding ``num_inputs`` elements.
    labels : numpy.ndarray
        Integer labels of shape ``(n,)``.
    lr : float
        Learning rate.
    mask_seed : int, optional
        Portable-mask seed of this step (SPEC P); ``None`` uses torch's generator.
    rates : pair of float, optional
        This step's rates of the two hidden dropouts (a schedule's, SPEC S3);
        ``None``: the model's own. (Eager: plain Python numbers; see
        :func:`compiled_sgd_step` for the same step compiled, with runtime values.)

    Returns
    -------
    float
        The batch loss before the update.

    """
    device = _device(model)
    X = torch.as_tensor(np.asarray(images, dtype=np.float32), device=device)
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64), device=device)
    model.train()
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(X, mask_seed=mask_seed, rates=rates), y)
    loss.backward()
    with torch.no_grad():
        for param in model.parameters():
            param -= lr * param.grad
    return float(loss.item())


def make_compiled_sgd_step(
    model: MLP, constant_seed: int | None = None, constant_rates: Any = None
) -> Callable[..., torch.Tensor]:
    """Return an SGD step of ``model`` whose forward and backward run compiled (SPEC G1, S1, S2).

    ``step(X, y, lr, seed, rates)``: ``X``/``y`` tensors on the model's device,
    ``lr`` a float, ``seed`` ``None`` or a 0-d ``int64`` tensor, ``rates`` ``None`` or
    two 0-d float tensors. The forward pass and the loss are one
    ``torch.compile(fullgraph=True)`` graph (AOTAutograd compiles its backward);
    tensor seeds and rates are graph inputs, so a new value every step recompiles
    nothing. With ``constant_seed``/``constant_rates`` (Python numbers) the graph
    bakes those in instead and ignores ``seed``/``rates`` (the benchmark's
    constant step). Returns the loss (a 0-d tensor, before the update).
    """
    if constant_seed is None and constant_rates is None:

        def forward_loss(X: torch.Tensor, y: torch.Tensor, seed: Any, rates: Any) -> torch.Tensor:
            return F.cross_entropy(model(X, mask_seed=seed, rates=rates), y)

    else:
        # A code object of its own: Dynamo caches per code object, and would make a
        # Python int that differs from the first call's a dynamic SymInt.
        def forward_loss(X: torch.Tensor, y: torch.Tensor, seed: Any, rates: Any) -> torch.Tensor:
            return F.cross_entropy(
                model(X, mask_seed=constant_seed, rates=constant_rates), y
            )

    compiled = torch.compile(forward_loss, fullgraph=True)

    def step(X: torch.Tensor, y: torch.Tensor, lr: float, seed: Any, rates: Any) -> torch.Tensor:
        model.train()
        model.zero_grad(set_to_none=True)
        loss = compiled(X, y, seed, rates)
        loss.backward()
        with torch.no_grad():
            for param in model.parameters():
                param -= lr * param.grad
        return loss.detach()

    return step


def runtime_values(mask_seed: Any, rates: Any, device: torch.device) -> tuple[Any, Any]:
    """Return a step's seed and rates as the runtime values of a compiled step (SPEC S1, S2).

    The seed, checked as D1 checks it, becomes the ``int64`` 0-d tensor holding
    its 64 bits; each rate (a pair, or a dict per GPT site), checked, a float64
    0-d tensor; ``None`` stays ``None``.
    """
    seed = torch.tensor(
        int64_bits(validate_seed(mask_seed, "mask_seed")), dtype=torch.int64, device=device
    )
    return seed, checked_rates(
        rates, lambda r: torch.tensor(r, dtype=torch.float64, device=device)
    )


#: One compiled step per model (see :func:`compiled_sgd_step`).
_COMPILED_STEPS: weakref.WeakKeyDictionary[MLP, Callable[..., torch.Tensor]] = (
    weakref.WeakKeyDictionary()
)


def compiled_sgd_step(
    model: MLP,
    images: np.ndarray,
    labels: np.ndarray,
    lr: float,
    mask_seed: int | None = None,
    rates: Any = None,
) -> float:
    """:func:`sgd_step` compiled: the same step, bit for bit in its masks (SPEC S1, S2, M6).

    The step of :func:`make_compiled_sgd_step`, built once per model. The seed
    enters as an ``int64`` tensor holding its 64 bits and the rates as float64
    tensors, so every seed and every schedule's rate runs one Dynamo graph.
    ``dropout-ref compare`` takes this step for torch. Without ``mask_seed``
    the step is the eager :func:`sgd_step` (torch's generator under Dynamo is
    a graph break).
    """
    if mask_seed is None:
        return sgd_step(model, images, labels, lr, None, rates)
    step = _COMPILED_STEPS.get(model)
    if step is None:
        step = _COMPILED_STEPS[model] = make_compiled_sgd_step(model)
    device = _device(model)
    X = torch.as_tensor(np.asarray(images, dtype=np.float32), device=device)
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64), device=device)
    seed, rates = runtime_values(mask_seed, rates, device)
    return float(step(X, y, float(lr), seed, rates).item())


def predict(model: MLP, images: np.ndarray) -> np.ndarray:
    """Return the ``eval()``-mode logits of ``images`` as float32 NumPy."""
    model.eval()
    with torch.no_grad():
        X = torch.as_tensor(np.asarray(images, dtype=np.float32), device=_device(model))
        return model(X).cpu().numpy()
