"""The torch GPT under tensor parallelism trains exactly as on one process (SPEC P7, X4).

Run with one command (CPU only, no GPU or cluster needed)::

    python examples/gpt_tensor_parallel.py            # 4 gloo processes on this machine
    python examples/gpt_tensor_parallel.py --world 2

Every process builds the same GPT (dropout 0.1 at every site, the BERT/GPT-2
preset) from the same weights, twice: once whole, once sharded Megatron-style
with ``parallelize_module`` (qkv and the MLP's first layer column-wise, both
output projections row-wise). Both take ``--steps`` SGD steps on the same
batches with the same ``mask_seed`` per step; the script prints, per step, the
two losses and the largest difference of the gathered weights. The attention
probabilities are DTensors there, and ``dropout_layer`` draws each rank's block
of them from the elements' global indices: the masks are the single-process
masks for every world size, so the runs agree to float32 rounding. (A per-rank
RNG, as Megatron-LM seeds it, would drop different elements for every layout.)
"""

from __future__ import annotations

import argparse
import socket

import torch

STEPS, LR, SEED = 5, 0.5, 2026


def worker(rank: int, world: int, port: int, steps: int) -> None:
    """Train the whole and the sharded GPT side by side; rank 0 prints the comparison."""
    import torch.nn.functional as F
    from torch.distributed.device_mesh import init_device_mesh

    from dropout_ref.course.torch.tensor_parallel import (
        parallelize_gpt,
        tp_backward,
        tp_forward,
    )
    from dropout_ref.models.gpt_config import GPTConfig
    from dropout_ref.torch import GPT
    from dropout_ref.torch.distributed import gloo_process_group

    with gloo_process_group(rank, world, port):
        config = GPTConfig(vocab_size=32, block_size=16, n_layer=2, n_head=4, n_embd=32,
                           dropout="gpt2-hf")
        whole = GPT(config, rng=0).train()
        sharded = parallelize_gpt(GPT(config, rng=0), init_device_mesh("cpu", (world,))).train()
        optimizers = [torch.optim.SGD(m.parameters(), lr=LR) for m in (whole, sharded)]
        batches = torch.Generator().manual_seed(SEED)
        for step in range(1, steps + 1):
            idx = torch.randint(0, 32, (4, 16), generator=batches)
            targets = torch.roll(idx, -1, dims=1)
            mask_seed = SEED * 2**32 + step
            losses = []
            for model, optimizer in zip((whole, sharded), optimizers, strict=True):
                optimizer.zero_grad()
                if model is whole:
                    logits = model(idx, mask_seed=mask_seed)
                else:
                    logits = tp_forward(model, idx, mask_seed=mask_seed)
                loss = F.cross_entropy(logits.reshape(-1, 32), targets.reshape(-1))
                loss.backward() if model is whole else tp_backward(loss)
                optimizer.step()
                losses.append(float(loss.detach()))
            diff = max(
                float((p.full_tensor() if hasattr(p, "full_tensor") else p).sub(q).abs().max())
                for p, q in zip(sharded.parameters(), whole.parameters(), strict=True)
            )
            if rank == 0:
                print(f"step {step}: loss whole {losses[0]:.6f}, tensor parallel x{world} "
                      f"{losses[1]:.6f}; largest weight difference {diff:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=int, default=4, help="gloo processes (default 4)")
    parser.add_argument("--steps", type=int, default=STEPS, help="SGD steps (default 5)")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(
        worker, args=(args.world, port, args.steps), nprocs=args.world, join=True
    )


if __name__ == "__main__":
    main()
