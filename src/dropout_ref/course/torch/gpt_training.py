"""Training step of the torch GPT (the contract of :mod:`dropout_ref.porting.gpt_compare`).

One step: ``model.train()``, mean token cross-entropy of the train-mode logits
(dropout at every site, portable with ``mask_seed``), backward, and one step of
the framework's own SGD (``torch.optim.SGD``, no momentum, no weight decay);
see :mod:`dropout_ref.porting.gpt_compare` for why SGD and not AdamW.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dropout_ref.course.torch.training import runtime_values
from dropout_ref.models.gpt_config import runtime_call_rates, validate_batch
from dropout_ref.models.torch.gpt import GPT
from dropout_ref.porting.gpt_compare import DEFAULT_LR, validate_lr


def gpt_optimizer(model: GPT, lr: float = DEFAULT_LR) -> torch.optim.SGD:
    """Return plain SGD with learning rate ``lr`` over the model's parameters."""
    return torch.optim.SGD(model.parameters(), lr=validate_lr(lr))


def _train_loss(
    model: GPT, idx: Any, targets: Any, mask_seed: int | None, rates: Any
) -> torch.Tensor:
    idx, targets = validate_batch(idx, targets, model.config)
    device = model.transformer["wte"].weight.device
    model.train()
    logits = model(torch.as_tensor(idx, device=device), mask_seed=mask_seed, rates=rates)
    y = torch.as_tensor(targets, device=device)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def gpt_loss_and_gradients(
    model: GPT, idx: Any, targets: Any, *, mask_seed: int | None = None, rates: Any = None
) -> tuple[float, dict[str, np.ndarray]]:
    """Return the train-mode loss and its gradient per weight (HF names), without a step.

    ``rates``: this call's rates of some or all sites (a schedule's, SPEC S3).
    """
    model.zero_grad(set_to_none=True)
    loss = _train_loss(model, idx, targets, mask_seed, rates)
    loss.backward()
    grads = {
        name: param.grad.detach().cpu().numpy().copy() for name, param in model.named_parameters()
    }
    model.zero_grad(set_to_none=True)
    return float(loss.item()), grads


def gpt_train_step(
    model: GPT,
    optimizer: torch.optim.Optimizer,
    idx: Any,
    targets: Any,
    *,
    mask_seed: int | None = None,
    rates: Any = None,
) -> float:
    """Take one optimizer step on the mean token cross-entropy; return the loss before it.

    Parameters
    ----------
    model : dropout_ref.torch.GPT
        Updated in place; left in ``train()`` mode.
    optimizer : torch.optim.Optimizer
        From :func:`gpt_optimizer` (or any optimizer over ``model.parameters()``).
    idx, targets : array of int, shape (B, T)
        Token ids and the ids to predict at each position.
    mask_seed : int, optional
        Portable masks of this step (SPEC X4); ``None`` uses torch's generator.
    rates : dict of str to float, optional
        This step's rates of some or all sites (``RATE_NAMES``: X2's and V3's;
        a schedule's, SPEC S3) instead of the config's; the model is not rebuilt.

    """
    optimizer.zero_grad(set_to_none=True)
    loss = _train_loss(model, idx, targets, mask_seed, rates)
    loss.backward()
    optimizer.step()
    return float(loss.item())


#: The compiler of :func:`compiled_gpt_train_step` (``torch.compile``'s ``backend``).
COMPILE_BACKEND = "inductor"

#: One compiled forward-and-loss per model (see :func:`compiled_gpt_train_step`).
_COMPILED_LOSSES: weakref.WeakKeyDictionary[GPT, Callable[..., torch.Tensor]] = (
    weakref.WeakKeyDictionary()
)


def _compiled_loss(model: GPT) -> Callable[..., torch.Tensor]:
    loss = _COMPILED_LOSSES.get(model)
    if loss is None:
        model_ref = weakref.ref(model)

        def token_loss(idx: torch.Tensor, y: torch.Tensor, seed: torch.Tensor, rates: Any):
            logits = model_ref()(idx, mask_seed=seed, rates=rates)
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

        loss = _COMPILED_LOSSES[model] = torch.compile(
            token_loss, fullgraph=True, backend=COMPILE_BACKEND
        )
    return loss


def compiled_gpt_train_step(
    model: GPT,
    optimizer: torch.optim.Optimizer,
    idx: Any,
    targets: Any,
    *,
    mask_seed: int | None = None,
    rates: Any = None,
) -> float:
    """:func:`gpt_train_step` with forward and loss compiled (SPEC S1, S2, X4).

    The forward pass and the loss are one ``torch.compile(fullgraph=True)`` graph
    per model (AOTAutograd compiles its backward); the optimizer's step runs as
    usual. The seed enters as an ``int64`` tensor holding its 64 bits and a
    schedule's rates as float64 tensors, so no seed or rate recompiles it.
    ``dropout-ref compare --model gpt`` takes this step for torch (``--eager``:
    :func:`gpt_train_step`). Inductor builds the graph once per process, in
    about half a minute on two CPU cores. Without ``mask_seed`` (torch's own
    generator) the step is the eager one.
    """
    if mask_seed is None:
        return gpt_train_step(model, optimizer, idx, targets, rates=rates)
    idx, targets = validate_batch(idx, targets, model.config)
    device = model.transformer["wte"].weight.device
    seed, _ = runtime_values(mask_seed, None, device)
    # The given rates as float64 tensors (DropPath's one per block): no recompilation.
    rates = runtime_call_rates(
        model.config, rates, lambda r: torch.tensor(r, dtype=torch.float64, device=device)
    )
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = _compiled_loss(model)(
        torch.as_tensor(idx, device=device),
        torch.as_tensor(targets, device=device),
        seed,
        rates,
    )
    loss.backward()
    optimizer.step()
    return float(loss.item())
