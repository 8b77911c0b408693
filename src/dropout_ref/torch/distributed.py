"""``dropout_layer`` on ``torch.distributed.tensor.DTensor`` (SPEC P7).

A DTensor sharded on any dims of a 1-D or 2-D (or larger) DeviceMesh, or
replicated, is on each rank a rectangular block of the global tensor. Each rank
computes the portable mask of its own block from the elements' global indices
(:mod:`dropout_ref.core.blocks`), so the global result is the same for every layout
and world size, bit for bit, and no mask crosses the network. The local result
is rewrapped with the input's mesh and placements; ``to_local``/``from_local``
are differentiable, so the gradient follows the same mask (D8).

Partial placements (pending sums) are refused: dropout of a summand is not
dropout of the sum. Default-mode calls (``seed=None``) are refused too: a
rank's global generator knows nothing of the other ranks' blocks.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch


def _dtensor_type() -> type | None:
    # Imported only when torch.distributed is built in (it is on Linux/macOS wheels).
    if not torch.distributed.is_available():
        return None
    from torch.distributed.tensor import DTensor

    return DTensor


def local_block(
    X: Any,
) -> tuple[torch.Tensor, tuple[int, ...], tuple[int, ...], Callable[[torch.Tensor], Any]] | None:
    """Split a DTensor into its local block, or return ``None`` for any other tensor.

    Returns
    -------
    tuple or None
        ``(local, global_shape, block_start, rewrap)``: the rank's shard, the
        global shape, the global index of the shard's first element, and a
        function turning the local result into a DTensor like ``X``.

    Raises
    ------
    ValueError
        If ``X`` has a ``Partial`` placement.
    """
    dtensor = _dtensor_type()
    if dtensor is None or not isinstance(X, dtensor):
        return None
    from torch.distributed.tensor import DTensor
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    for placement in X.placements:
        if placement.is_partial():
            raise ValueError(
                f"X has a Partial placement ({X.placements}): dropout of a pending sum's "
                f"summands is not dropout of the sum; redistribute to Shard/Replicate first"
            )
    global_shape = tuple(int(n) for n in X.shape)
    local = X.to_local()
    _, start = compute_local_shape_and_global_offset(X.shape, X.device_mesh, X.placements)
    mesh, placements, stride = X.device_mesh, X.placements, X.stride()

    def rewrap(out: torch.Tensor) -> Any:
        if isinstance(out, DTensor):
            return out
        # The local result has the local shape; shape/stride given: no communication.
        return DTensor.from_local(
            out, mesh, placements, run_check=False, shape=X.shape, stride=stride
        )

    return local, global_shape, tuple(int(s) for s in start), rewrap


@contextlib.contextmanager
def gloo_process_group(
    rank: int, world: int, port: int, *, timeout_s: float = 120.0
) -> Iterator[None]:
    """One CPU process of a gloo group on this machine, for examples and tests.

    On entry the process joins the group at ``127.0.0.1:port``. A bounded
    timeout ends a run in two minutes when a peer has failed, not in gloo's 30.
    On a normal exit every rank waits for the others (``barrier``), destroys
    every group, flushes its streams and ends at once with ``os._exit(0)``.

    The immediate exit is why this helper exists: gloo's worker threads can
    still hold tensors when the interpreter finalizes, and releasing them then
    aborts the process now and then with "terminate called without an active
    exception" (SIGABRT) even after ``destroy_process_group()`` (seen in CI;
    pytorch/pytorch#179291, #190489). ``os._exit`` skips that finalization. An
    exception leaves normally: the group is destroyed and the exception
    propagates, so ``torch.multiprocessing.spawn`` reports it.

    Parameters
    ----------
    rank, world : int
        This process's rank and the number of processes.
    port : int
        A free TCP port on 127.0.0.1, the same for every rank.
    timeout_s : float, optional
        Seconds a collective waits for a peer.
    """
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group(
        "gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=timeout_s)
    )
    try:
        yield
        dist.barrier()
    except BaseException:
        dist.destroy_process_group()
        raise
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
