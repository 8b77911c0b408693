"""Sharded dropout: every layout of a DTensor gets its block of one global mask (SPEC P7).

Run with one command (CPU only, no GPU or cluster needed)::

    python examples/sharded_dropout.py            # 4 gloo processes on this machine
    python examples/sharded_dropout.py --world 2

It starts ``--world`` CPU processes (``torch.multiprocessing``, gloo). Each
builds the same activations, shards them over a DeviceMesh in several ways
(sequence-parallel ``Shard(1)``, tensor-parallel ``Shard(2)``, a 2-D mesh with
two shards, replicated), applies ``dropout_layer(X, p, seed=s)`` and compares
the gathered result with the unsharded call. Unlike a per-rank RNG state (the
Megatron-LM way), the mask of an element depends only on its global index, so
the result is the same whatever the number of devices; no mask is sent over the
network (the collectives inside ``dropout_layer`` are counted: 0).
"""

from __future__ import annotations

import argparse
import socket

import torch

#: (batch, sequence, hidden) activations, as in a transformer block.
SHAPE = (4, 6, 8)
RATE, SEED = 0.25, 2026


def layouts(world: int) -> list[tuple[str, tuple[int, ...], list, object]]:
    """Name, mesh shape, placements and noise_shape of each layout shown."""
    from torch.distributed.tensor import Replicate, Shard

    shown = [
        ("sequence parallel: Shard(1)", (world,), [Shard(1)], None),
        ("tensor parallel: Shard(2)", (world,), [Shard(2)], None),
        ("replicated", (world,), [Replicate()], None),
        ("Shard(1), one decision per (batch, hidden)", (world,), [Shard(1)], (None, 1, None)),
    ]
    if world % 2 == 0 and world > 2:
        shown.append(("2-D mesh: Shard(0) x Shard(2)", (2, world // 2), [Shard(0), Shard(2)], None))
    return shown


def worker(rank: int, world: int, port: int) -> None:
    """One process of the gloo group: shard, drop, compare, report from rank 0."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import distribute_tensor
    from torch.distributed.tensor.debug import CommDebugMode

    from dropout_ref.torch import dropout_layer
    from dropout_ref.torch.distributed import gloo_process_group

    with gloo_process_group(rank, world, port):
        torch.manual_seed(0)
        full = torch.rand(SHAPE) + 0.5
        for name, mesh_shape, placements, noise in layouts(world):
            mesh = init_device_mesh("cpu", mesh_shape)
            X = distribute_tensor(full, mesh, placements)
            with CommDebugMode() as comm:
                out = dropout_layer(X, RATE, seed=SEED, noise_shape=noise)
            gathered = out.full_tensor()
            unsharded = dropout_layer(full, RATE, seed=SEED, noise_shape=noise)
            local = tuple(out.to_local().shape)
            kept = int((out.to_local() != 0).sum())
            lines = [None] * world
            dist.all_gather_object(lines, f"    rank {rank}: local block {local}, {kept} kept")
            if rank == 0:
                same = torch.equal(gathered, unsharded)
                print(f"{name} on mesh {mesh_shape}:")
                print("\n".join(lines))
                print(
                    f"  full_tensor() == dropout_layer(unsharded): {same}; "
                    f"collectives inside dropout_layer: {comm.get_total_counts()}"
                )
                if not same:
                    raise SystemExit("the sharded result differs from the unsharded one")


def main(argv: list[str] | None = None) -> None:
    """Parse ``--world`` and run the group."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=int, default=4, help="processes (default 4)")
    args = parser.parse_args(argv)
    if args.world < 1:
        parser.error(f"--world must be >= 1, got {args.world}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    print(f"dropout_layer(X, p={RATE}, seed={SEED}) on a {SHAPE} DTensor, {args.world} processes")
    torch.multiprocessing.spawn(worker, args=(args.world, port), nprocs=args.world, join=True)


if __name__ == "__main__":
    main()
