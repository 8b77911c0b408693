"""Benchmark cases for the torch backend (see :mod:`dropout_ref.bench`)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from dropout_ref.bench.cases.common import (
    BASELINE,
    NATIVE,
    NATIVE_FWD_BWD,
    OURS,
    OURS_FWD_BWD,
    OURS_PORTABLE,
    OURS_PORTABLE_FUSED,
    OURS_PORTABLE_FWD_BWD,
    BenchCase,
    CaseSet,
)
from dropout_ref.bench.mlp_epoch import epoch_cases
from dropout_ref.core.thresholds import inverse_keep_scale, word_threshold
from dropout_ref.torch import BACKEND, dropout_layer
from dropout_ref.torch.fast import compiled as fused_module
from dropout_ref.torch.fast import cpu_kernel

SEED = 20240611
#: Without the compiled numba kernel (numba missing, DROPOUT_REF_CPU_KERNEL=0), above this
#: size the op-by-op Philox takes seconds per call (~3 s at 2**20 on 2 cores); from
#: fused.FUSE_MIN_SIZE the portable mode is one compiled pass again.
UNFUSED_PORTABLE_MAX_SIZE = 1 << 16


def framework_version() -> str:
    """Return ``torch.__version__``."""
    return torch.__version__


def thread_count() -> int:
    """Return torch's intra-op thread count."""
    return torch.get_num_threads()


def check_device(device: str) -> None:
    """Raise ``ValueError`` with one clear line unless ``device`` exists here."""
    BACKEND.arrays.on_device(device)


def device_info(device: str) -> str:
    """Return the device's name (``torch.cuda.get_device_name``) for the report."""
    target = torch.device(device)
    if target.type == "cuda":
        from dropout_ref.torch.fast import triton_kernel

        kernel = triton_kernel.unavailable_reason() or "Triton kernel"
        return f"{torch.cuda.get_device_name(target)} ({kernel})"
    return device


def fused_portable(X: torch.Tensor, rate: float) -> torch.Tensor:
    """Portable dropout as one compiled pass (mask and select), whatever the size."""
    threshold, scale = word_threshold(rate), inverse_keep_scale(rate)
    return fused_module.fused_philox_dropout(X, threshold, SEED, 0, scale)


def make_cases(size: int, dtype: str, *, fused: bool, rate: float, device: str = "cpu") -> CaseSet:
    """Return the cases of one (size, dtype) point on ``device``."""
    if torch.device(device).type != "cpu":
        return device_cases(size, dtype, rate=rate, device=device)
    X = torch.randn(size, generator=torch.Generator().manual_seed(0)).to(getattr(torch, dtype))
    nbytes = X.numel() * X.element_size()
    portable_skip = None
    numba_kernel = cpu_kernel.applies(X)
    if not numba_kernel and UNFUSED_PORTABLE_MAX_SIZE < size < fused_module.FUSE_MIN_SIZE:
        portable_skip = "op-by-op Philox takes ~3 s at 2^20; see the fused case"
    cases = [
        BenchCase(BASELINE, lambda: X * 2.0, output_bytes=nbytes, note="X * 2.0"),
        BenchCase(NATIVE, lambda: F.dropout(X, rate, training=True), output_bytes=nbytes,
                  note="torch.nn.functional.dropout(training=True)"),
        BenchCase(OURS, lambda: dropout_layer(X, rate), output_bytes=nbytes,
                  note="dropout_layer(X, p)"),
        BenchCase(OURS_PORTABLE, lambda: dropout_layer(X, rate, seed=SEED),
                  output_bytes=nbytes, skip=portable_skip,
                  note="dropout_layer(X, p, seed=s): the numba kernel on X's memory"
                  if numba_kernel else
                  "dropout_layer(X, p, seed=s): one compiled pass from 2^22, op by op below"),
    ]
    if fused:
        cases.append(BenchCase(OURS_PORTABLE_FUSED, lambda: fused_portable(X, rate),
                               output_bytes=nbytes, compiled=True,
                               note="mask and select in one torch.compile pass (any seed)"))
    return CaseSet(cases)


# --------------------------------------------------------------------------- GPU


def cuda_event_timer(case: BenchCase) -> float:
    """Time one call of ``case`` with CUDA events on the current stream, in ms."""
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    case.run()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def saved_bytes_per_element(fn: Any, X: torch.Tensor) -> float:
    """Bytes autograd saves for backward while ``fn(X)`` runs, per element of ``X``."""
    leaf = X.detach().requires_grad_(True)
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        if tensor is not leaf:  # a saved input is not an extra allocation
            total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(leaf)
    return total / max(X.numel(), 1)


def peak_extra_bytes_per_element(fn: Any, X: torch.Tensor) -> float:
    """Device memory of one call beyond its output (``max_memory_allocated``), per element."""
    fn(X)  # warm (kernels compiled, caches filled)
    torch.cuda.synchronize(X.device)
    torch.cuda.reset_peak_memory_stats(X.device)
    before = torch.cuda.memory_allocated(X.device)
    out = fn(X)
    torch.cuda.synchronize(X.device)
    peak = torch.cuda.max_memory_allocated(X.device) - before
    return max(0, peak - out.numel() * out.element_size()) / max(X.numel(), 1)


def device_cases(size: int, dtype: str, *, rate: float, device: str) -> CaseSet:
    """Forward, forward + backward, the seed= mode, vs native and ``X * 2.0`` on a GPU.

    Timed with CUDA events on a GPU; on the CPU (the tests) by the wall clock.
    """
    target = torch.device(device)
    generator = torch.Generator(device=target).manual_seed(0)
    X = torch.randn(size, device=target, generator=generator).to(getattr(torch, dtype))
    G = torch.randn(size, device=target, generator=generator).to(X.dtype)
    nbytes = X.numel() * X.element_size()
    leaf = X.detach().clone().requires_grad_(True)

    def forward_backward(fn: Any) -> Any:
        def run() -> None:
            leaf.grad = None
            fn(leaf).backward(G)

        return run

    ours = lambda t: dropout_layer(t, rate)  # noqa: E731
    portable = lambda t: dropout_layer(t, rate, seed=SEED)  # noqa: E731
    native = lambda t: F.dropout(t, rate, training=True)  # noqa: E731
    on_gpu = target.type == "cuda"
    common = {"timer": cuda_event_timer if on_gpu else None, "output_bytes": nbytes}
    cases = [
        BenchCase(BASELINE, lambda: X * 2.0, note="X * 2.0", **common),
        BenchCase(NATIVE, lambda: native(X), note="F.dropout(training=True)", **common),
        BenchCase(OURS, lambda: ours(X), note="dropout_layer(X, p)", **common),
        BenchCase(OURS_PORTABLE, lambda: portable(X), note="dropout_layer(X, p, seed=s)",
                  **common),
        BenchCase(NATIVE_FWD_BWD, forward_backward(native), note="F.dropout, out.backward(G)",
                  **common),
        BenchCase(OURS_FWD_BWD, forward_backward(ours), note="dropout_layer, out.backward(G)",
                  **common),
        BenchCase(OURS_PORTABLE_FWD_BWD, forward_backward(portable),
                  note="dropout_layer(seed=s), out.backward(G)", **common),
    ]
    measured = {NATIVE: native, OURS: ours, OURS_PORTABLE: portable}
    for case in cases:
        if case.name in measured:
            fn = measured[case.name]
            case.extra["saved_bytes_per_element"] = saved_bytes_per_element(fn, X)
            if on_gpu:
                case.extra["peak_extra_bytes_per_element"] = peak_extra_bytes_per_element(fn, X)
    return CaseSet(cases)


def native_dropout_layer(X: torch.Tensor, dropout: float, *, seed=None, offset=0) -> torch.Tensor:
    """``dropout_layer``'s signature over ``torch.nn.functional.dropout`` (training mode)."""
    return F.dropout(X, dropout, training=True)


def mlp_epoch_cases(device: str = "cpu") -> CaseSet:
    """One epoch of the course MLP with our dropout_layer and with the native dropout."""
    if torch.device(device).type == "cpu":
        return epoch_cases("torch", native_dropout_layer, "F.dropout")
    target = torch.device(device)
    return epoch_cases("torch", native_dropout_layer, "F.dropout",
                       place=lambda model: model.to(target))


def compiled_loop(steps: int, device: str = "cpu") -> dict[str, Any]:
    """Run the compiled-loop benchmark (:mod:`dropout_ref.bench.compiled_loop`) in torch.

    The step is :func:`dropout_ref.course.torch.training.make_compiled_sgd_step`
    (forward and loss one ``torch.compile(fullgraph=True)`` graph); programs
    are Dynamo's ``unique_graphs`` counter.
    """
    from torch._dynamo.utils import counters

    from dropout_ref.bench.compiled_loop import WARMUP, loop_inputs, summary, time_steps
    from dropout_ref.course.torch.training import make_compiled_sgd_step
    from dropout_ref.models.torch.mlp import MLP

    inputs = loop_inputs(steps)
    dev = torch.device(device)
    X, y = torch.as_tensor(inputs.images, device=dev), torch.as_tensor(inputs.labels, device=dev)

    def graphs() -> int:
        return counters["stats"]["unique_graphs"]

    runtime_step = make_compiled_sgd_step(MLP(rng=0).to(dev))

    def run_runtime(i: int) -> None:
        seed = torch.tensor(inputs.seeds[i], dtype=torch.int64, device=dev)
        rates = tuple(torch.tensor(r, dtype=torch.float64, device=dev) for r in inputs.rates[i])
        float(runtime_step(X, y, inputs.lr, seed, rates))  # float(): waits for the device

    constant_step = make_compiled_sgd_step(MLP(rng=0).to(dev), constant_seed=1234)

    def run_constant(i: int) -> None:
        float(constant_step(X, y, inputs.lr, None, None))

    seeded_step = make_compiled_sgd_step(MLP(rng=0).to(dev))

    def run_seeded(i: int) -> None:
        seed = torch.tensor(inputs.seeds[i], dtype=torch.int64, device=dev)
        float(seeded_step(X, y, inputs.lr, seed, None))  # the model's own rates

    start = graphs()
    for i in range(WARMUP):
        run_runtime(i)
    warm = graphs()
    runtime = time_steps(run_runtime, steps)
    after = graphs()
    for i in range(WARMUP):
        run_constant(i)
        run_seeded(i)
    constant, seeded = time_steps(run_constant, steps), time_steps(run_seeded, steps)
    runtime += time_steps(run_runtime, steps)  # interleaved rounds: drift hits all alike
    constant += time_steps(run_constant, steps)
    seeded += time_steps(run_seeded, steps)
    return summary(after - start, runtime, constant, seeded, recompiles_in_loop=after - warm,
                   counter="torch._dynamo.utils.counters['stats']['unique_graphs']")
