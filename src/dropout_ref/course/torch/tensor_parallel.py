"""The torch GPT under tensor parallelism with DTensor (issue 15, item 8; SPEC P7, X4).

:func:`parallelize_gpt` applies ``torch.distributed.tensor.parallel.parallelize_module``
to every block, Megatron-style: the fused qkv projection (``attn.c_attn``) and
the MLP's first layer (``mlp.c_fc``) column-wise, both output projections
(``attn.c_proj``, ``mlp.c_proj``) row-wise. Embeddings, LayerNorms and the
tied head stay replicated.

Dropout needs nothing of its own: every site calls ``dropout_layer`` with the
model's ``mask_seed``, and ``dropout_layer`` takes a DTensor and computes the
mask of each rank's block from the elements' global indices (SPEC P7). So
the masks, the loss and the gradients are those of the single-process model,
for every world size and layout: unlike Megatron-LM's per-rank RNG streams
(``model_parallel_cuda_manual_seed``), whose masks change with the layout.

The GPT's linear layers are GPT-2's ``Conv1D`` (weight ``(in, out)``), which
torch's ``ColwiseParallel``/``RowwiseParallel`` do not know (they take
``nn.Linear`` and ``nn.Embedding``): :class:`Conv1DColwiseParallel` and
:class:`Conv1DRowwiseParallel` are those styles with the weight's axes swapped.
The attention's qkv output is left a DTensor (``use_local_output=False``) so
that the model's own head split works on the global shape; the forward pass
and backward pass then run under ``implicit_replication`` (:func:`tp_forward`,
:func:`tp_backward`), which lets the causal mask, a plain tensor, meet DTensors.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import Replicate, Shard, distribute_module, distribute_tensor
from torch.distributed.tensor.experimental import implicit_replication
from torch.distributed.tensor.parallel import (
    ColwiseParallel,
    RowwiseParallel,
    parallelize_module,
)

# The adapter first: it imports the model module (importing the model first is circular).
from dropout_ref import torch as _adapter  # noqa: F401
from dropout_ref.models.torch.gpt import GPT, Conv1D


def _distribute(style: Any, module: nn.Module, mesh: DeviceMesh, partition: Any) -> nn.Module:
    return distribute_module(
        module,
        mesh,
        partition,
        partial(style._prepare_input_fn, style.input_layouts, style.desired_input_layouts),
        partial(style._prepare_output_fn, style.output_layouts, style.use_local_output),
    )


def _shard_parameters(
    module: nn.Module, mesh: DeviceMesh, weight: Any, bias: Any, src_data_rank: Any
) -> None:
    """Replace ``module``'s weight and bias by DTensors with the given placements."""
    for pname, param in list(module.named_parameters()):
        placement = weight if pname == "weight" else bias
        module.register_parameter(
            pname,
            nn.Parameter(
                distribute_tensor(param, mesh, [placement], src_data_rank=src_data_rank),
                requires_grad=param.requires_grad,
            ),
        )


class Conv1DColwiseParallel(ColwiseParallel):
    """``ColwiseParallel`` for GPT-2's ``Conv1D``: weight ``(in, out)`` split on ``out`` (dim 1)."""

    def _partition_conv1d(self, name: str, module: nn.Module, mesh: DeviceMesh) -> None:
        _shard_parameters(module, mesh, Shard(1), Shard(0), self.src_data_rank)

    def _apply(self, module: nn.Module, device_mesh: DeviceMesh) -> nn.Module:
        if not isinstance(module, Conv1D):
            return super()._apply(module, device_mesh)
        return _distribute(self, module, device_mesh, self._partition_conv1d)


class Conv1DRowwiseParallel(RowwiseParallel):
    """``RowwiseParallel`` for ``Conv1D``: weight split on ``in`` (dim 0), bias replicated."""

    def _partition_conv1d(self, name: str, module: nn.Module, mesh: DeviceMesh) -> None:
        _shard_parameters(module, mesh, Shard(0), Replicate(), self.src_data_rank)

    def _apply(self, module: nn.Module, device_mesh: DeviceMesh) -> nn.Module:
        if not isinstance(module, Conv1D):
            return super()._apply(module, device_mesh)
        # The input of a row-wise layer is split on its last axis, as for nn.Linear.
        self.desired_input_layouts = (Shard(-1),)
        return _distribute(self, module, device_mesh, self._partition_conv1d)


def tensor_parallel_plan(n_layer: int) -> dict[str, Any]:
    """Return the ``parallelize_module`` plan of a GPT of ``n_layer`` blocks."""
    plan: dict[str, Any] = {}
    for layer in range(n_layer):
        h = f"transformer.h.{layer}"
        # qkv stays a DTensor: the model splits q, k, v and the heads on the global shape.
        plan[f"{h}.attn.c_attn"] = Conv1DColwiseParallel(use_local_output=False)
        plan[f"{h}.attn.c_proj"] = Conv1DRowwiseParallel()
        plan[f"{h}.mlp.c_fc"] = Conv1DColwiseParallel()
        plan[f"{h}.mlp.c_proj"] = Conv1DRowwiseParallel()
    return plan


def parallelize_gpt(model: GPT, mesh: DeviceMesh) -> GPT:
    """Shard ``model``'s blocks over the 1-D ``mesh`` in place (module docstring); return it.

    Raises
    ------
    TypeError
        If ``model`` is not the torch GPT.
    ValueError
        If ``mesh`` is not 1-D.

    """
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a dropout_ref.torch.GPT, got {type(model).__name__}")
    if mesh.ndim != 1:
        raise ValueError(f"mesh must be 1-D (tensor parallel only), got {mesh.ndim}-D")
    return parallelize_module(model, mesh, tensor_parallel_plan(model.config.n_layer))


def tp_forward(model: GPT, idx: torch.Tensor, mask_seed: int | None = None) -> torch.Tensor:
    """Run a :func:`parallelize_gpt` model: plain tensors meet DTensors as replicated."""
    with implicit_replication():
        logits = model(idx, mask_seed=mask_seed)
    # The head is the replicated embedding: the logits are a plain (or replicated) tensor.
    return logits.full_tensor() if hasattr(logits, "full_tensor") else logits


def tp_backward(loss: torch.Tensor) -> None:
    """Backpropagate through a :func:`tp_forward` graph (its backward meets the mask too)."""
    with implicit_replication():
        loss.backward()


def full_gradients(model: nn.Module) -> dict[str, torch.Tensor]:
    """Return every parameter's gradient as a full (unsharded) tensor, by name."""
    return {
        name: (p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad)
        for name, p in model.named_parameters()
        if p.grad is not None
    }
