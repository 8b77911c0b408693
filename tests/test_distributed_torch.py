"""SPEC P7 on torch.distributed: ``dropout_layer`` on DTensors, gloo, CPU processes.

Each world size (1, 2, 4) runs in ``torch.multiprocessing.spawn`` processes
that form a gloo group. Every rank checks, for several meshes (1-D and 2-D) and
placements (Shard on every dim, nested shards, Replicate, uneven shards), with
and without ``noise_shape``, that

- the output is a DTensor with the input's mesh and placements;
- no collective ran inside ``dropout_layer`` (``CommDebugMode`` counts 0): no
  mask crosses the network;
- ``full_tensor()`` equals ``dropout_layer(full, p, seed=s)`` bit for bit;
- the gradient (through ``full_tensor()``) is ``keep * G / (1 - p)``.
"""

from __future__ import annotations

import os
import socket

import pytest

torch = pytest.importorskip("torch")

# torch alone (gloo process groups): once per CI, in the numpy-2 environment.
pytestmark = pytest.mark.one_environment
if not torch.distributed.is_available():  # pragma: no cover - all Linux wheels have it
    pytest.skip("torch.distributed is not built in", allow_module_level=True)

GLOBAL = (6, 7, 10)
RATE, SEED, OFFSET = 0.4, 2**40 + 17, 3


def _cases(world: int):
    from torch.distributed.tensor import Replicate, Shard

    cases = [((world,), [Shard(d)], None) for d in range(3)]
    cases += [((world,), [Replicate()], None), ((world,), [Shard(1)], (6, 1, 10))]
    cases += [((world,), [Shard(2)], (None, None, 1))]
    if world == 4:
        cases += [
            ((2, 2), [Shard(0), Shard(1)], None),
            ((2, 2), [Shard(1), Shard(1)], None),  # nested: dim 1 split twice (uneven: 7)
            ((2, 2), [Replicate(), Shard(2)], (1, 7, 10)),
            ((2, 2), [Shard(2), Shard(0)], (6, 1, None)),
        ]
    if world == 2:
        cases += [((1, 2), [Shard(0), Shard(2)], None)]
    return cases


def _worker(rank: int, world: int, port: int) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, distribute_tensor
    from torch.distributed.tensor.debug import CommDebugMode

    from dropout_ref.torch import dropout_layer
    from dropout_ref.torch.distributed import gloo_process_group

    with gloo_process_group(rank, world, port):
        torch.manual_seed(0)  # the same global X on every rank
        full = torch.rand(GLOBAL) + 0.5
        grad_out = torch.randn(GLOBAL)
        for mesh_shape, placements, noise in _cases(world):
            mesh = init_device_mesh("cpu", mesh_shape)
            what = f"world {world}, mesh {mesh_shape}, {placements}, noise_shape={noise}"
            expected = dropout_layer(full, RATE, seed=SEED, offset=OFFSET, noise_shape=noise)
            X = distribute_tensor(full, mesh, placements).requires_grad_(True)
            with CommDebugMode() as comm:
                out = dropout_layer(X, RATE, seed=SEED, offset=OFFSET, noise_shape=noise)
            assert comm.get_total_counts() == 0, f"{what}: collectives {comm.get_comm_counts()}"
            assert isinstance(out, DTensor), what
            assert tuple(out.placements) == tuple(placements), what
            gathered = out.full_tensor()
            assert torch.equal(gathered, expected), f"{what}: full_tensor() differs"
            (gathered * grad_out).sum().backward()
            grad = X.grad.full_tensor()
            want = torch.where(expected != 0, grad_out / (1 - RATE), torch.zeros(()))
            torch.testing.assert_close(grad, want, rtol=1e-6, atol=0, msg=what)
        # Default mode and Partial placements are refused with a clear message.
        mesh = init_device_mesh("cpu", (world,))
        X = distribute_tensor(full, mesh, _cases(world)[0][1])
        try:
            dropout_layer(X, RATE)
        except ValueError as exc:
            assert "seed=" in str(exc), exc
        else:
            raise AssertionError("seed=None on a DTensor was accepted")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("world", [1, 2, 4])
def test_p7_dtensor_full_tensor_equals_unsharded(world):
    """P7: sharded (any dim, 1-D/2-D mesh) or replicated DTensor = the unsharded result."""
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(world, _free_port()), nprocs=world, join=True)


def test_p7_dtensor_partial_placement_refused():
    """A Partial DTensor (a pending sum) is refused: dropout of summands is not of the sum."""
    import torch.multiprocessing as mp

    mp.spawn(_partial_worker, args=(_free_port(),), nprocs=1, join=True)


def _partial_worker(rank: int, port: int) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Partial

    from dropout_ref.torch import dropout_layer
    from dropout_ref.torch.distributed import gloo_process_group

    with gloo_process_group(rank, 1, port):
        mesh = init_device_mesh("cpu", (1,))
        X = DTensor.from_local(torch.ones(3, 4), mesh, [Partial()])
        try:
            dropout_layer(X, 0.5, seed=1)
        except ValueError as exc:
            assert "Partial" in str(exc), exc
        else:
            raise AssertionError("a Partial DTensor was accepted")


def test_p7_sharded_example_runs_with_one_command():
    """examples/sharded_dropout.py: every layout's gathered result equals the unsharded one."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    done = subprocess.run(
        [sys.executable, str(root / "examples" / "sharded_dropout.py"), "--world", "2"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    verdicts = [line for line in done.stdout.splitlines() if "full_tensor()" in line]
    assert len(verdicts) == 4, done.stdout
    assert all("unsharded): True" in v and "dropout_layer: 0" in v for v in verdicts), done.stdout


def _failing_worker(rank: int, port: int) -> None:
    from dropout_ref.torch.distributed import gloo_process_group

    with gloo_process_group(rank, 1, port):
        raise AssertionError("a check inside the group failed")


def test_gloo_process_group_reports_a_failing_worker():
    """The helper's immediate exit is for passing workers only: a failed check still
    reaches torch.multiprocessing.spawn (else every distributed test here could not fail)."""
    import torch.multiprocessing as mp

    with pytest.raises(mp.ProcessRaisedException, match="a check inside the group failed"):
        mp.spawn(_failing_worker, args=(_free_port(),), nprocs=1, join=True)
