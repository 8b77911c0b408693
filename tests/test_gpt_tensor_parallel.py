"""The torch GPT under DTensor tensor parallelism = the single-process model (issue 15, item 8).

World sizes 1, 2 and 4, gloo on CPU (the harness of test_distributed_torch.py).
Each rank builds the same GPT twice from the same weights: one plain, one with
``parallelize_gpt`` (column-wise qkv and c_fc, row-wise c_proj). With the same
``mask_seed``, the train-mode logits, loss and every gradient agree to float32
rounding (the row-wise layers sum partial products in another order): the
masks follow the global index (SPEC P7, X4), whatever the layout.
"""

from __future__ import annotations

import importlib
import socket

import pytest

torch = pytest.importorskip("torch")

# torch alone (gloo process groups): once per CI, in the numpy-2 environment.
pytestmark = pytest.mark.one_environment
if not torch.distributed.is_available():  # pragma: no cover - all Linux wheels have it
    pytest.skip("torch.distributed is not built in", allow_module_level=True)

MASK_SEED = 2**33 + 5


def _worker(rank: int, world: int, port: int) -> None:
    import torch.nn.functional as F
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor

    from dropout_ref import torch as _adapter  # noqa: F401  (before the model module)
    from dropout_ref.course.torch.tensor_parallel import (
        full_gradients,
        parallelize_gpt,
        tp_backward,
        tp_forward,
    )
    from dropout_ref.models.gpt_config import GPTConfig
    from dropout_ref.torch import GPT
    from dropout_ref.torch.distributed import gloo_process_group

    gpt_module = importlib.import_module("dropout_ref.models.torch.gpt")
    with gloo_process_group(rank, world, port):
        config = GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=4, n_embd=16,
                           dropout=0.3)
        g = torch.Generator().manual_seed(1)
        idx = torch.randint(0, 13, (3, 8), generator=g)
        targets = torch.randint(0, 13, (3, 8), generator=g)

        def loss_of(logits):
            return F.cross_entropy(logits.reshape(-1, 13), targets.reshape(-1))

        reference = GPT(config, rng=0).train()
        ref_logits = reference(idx, mask_seed=MASK_SEED)
        ref_loss = loss_of(ref_logits)
        ref_loss.backward()
        with torch.no_grad():
            other_seed = loss_of(reference(idx, mask_seed=MASK_SEED + 1))
        assert abs(float(other_seed) - float(ref_loss)) > 1e-4, "dropout had no effect"

        mesh = init_device_mesh("cpu", (world,))
        model = parallelize_gpt(GPT(config, rng=0), mesh).train()
        seen: list[type] = []
        original = gpt_module.dropout_layer

        def recording(X, *args, **kwargs):
            seen.append(type(X))
            return original(X, *args, **kwargs)

        gpt_module.dropout_layer = recording
        try:
            logits = tp_forward(model, idx, mask_seed=MASK_SEED)
        finally:
            gpt_module.dropout_layer = original
        loss = loss_of(logits)
        tp_backward(loss)
        what = f"world {world}, rank {rank}"
        # The attention probabilities are DTensors: their masks come from global indices.
        assert DTensor in seen, f"{what}: no site saw a DTensor ({seen})"
        torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-6, msg=what)
        torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=1e-6, msg=what)
        grads = full_gradients(model)
        for name, param in reference.named_parameters():
            torch.testing.assert_close(
                grads[name], param.grad, rtol=1e-4, atol=1e-6, msg=f"{what}: {name}"
            )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("world", [1, 2, 4])
def test_p7_x4_tensor_parallel_gpt_equals_single_process(world):
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(world, _free_port()), nprocs=world, join=True)


def test_parallelize_gpt_refuses_other_models_and_meshes():
    from dropout_ref.course.torch.tensor_parallel import parallelize_gpt

    with pytest.raises(TypeError, match=r"dropout_ref\.torch\.GPT"):
        parallelize_gpt(torch.nn.Linear(2, 2), None)
