"""Bit-identity of the torch backend's masks on a device with the NumPy oracle (SPEC G2, P2, P3).

``python benchmarks/gpu_masks.py [--device cuda] [--json FILE]`` (from the repository root,
``PYTHONPATH=src``). Checks, each against :func:`dropout_ref.core.philox.numpy_keep_mask`:

- Triton's ``tl.randint4x`` against the NumPy Philox words (independent oracle, P3);
- ``dropout_layer(X, p, seed=s, offset=o)`` on the device: the keep mask bit for bit, for
  sizes with every tail, offsets with every lane and counters carrying into c1, and the
  kept values equal to the exact CPU path (D5); dropped elements +0.0 (D6);
- the same with the Triton kernel switched off (the exact torch-ops path on the device);
- the default mode: ``torch.manual_seed`` reproduces it (D9), its gradient uses its mask (D8);
- the gradient of the seed mode (D8).

Prints one line per check and a summary; exit status 1 when any check fails. With
``--device cpu`` under ``TRITON_INTERPRET=1`` it runs the kernel in Triton's interpreter
(how the script itself is tested on a machine without a GPU).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

SIZES = (1, 3, 4, 5, 4099, 65536 + 3)
OFFSETS = (0, 1, 2, 3, 4 * (2**32 - 2) + 1, 2**62 + 6)
SEEDS = (0, 20240611, 2**64 - 1)
DTYPES = ("float32", "bfloat16", "float16", "float64")


def _values(torch: Any, n: int, seed: int, dtype: str, device: str) -> Any:
    """Nonzero values (so ``out != 0`` is the keep mask) with NaN and inf sprinkled in."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) * 3
    x[np.abs(x) < 1e-2] = 1.0
    if n > 20:
        x[::11] = np.nan
        x[1::11] = np.inf
    return torch.from_numpy(x).to(dtype=getattr(torch, dtype), device=device)


@contextlib.contextmanager
def _kernel_routing(device: str) -> Iterator[None]:
    """On the CPU (tests), route tensors through the interpreted kernel; else do nothing."""
    from dropout_ref.torch.fast import triton_kernel

    if device == "cpu" and triton_kernel.interpreting():
        with triton_kernel.interpret_on_cpu():
            yield
    else:
        yield


@contextlib.contextmanager
def _without_kernel() -> Iterator[None]:
    from dropout_ref.torch.fast import triton_kernel

    saved = triton_kernel.DISABLED
    triton_kernel.DISABLED = True
    try:
        yield
    finally:
        triton_kernel.DISABLED = saved


def check_randint4x(device: str) -> str:
    """P3: tl.randint4x(seed, c) == the NumPy words of block c (counters < 2**32)."""
    from dropout_ref.core.philox import numpy_words
    from dropout_ref.torch.fast import triton_kernel

    if triton_kernel.unavailable_reason():
        return f"skipped: {triton_kernel.unavailable_reason()}"
    for seed in SEEDS:
        for first in (0, 2**32 - 1000):
            got = triton_kernel.words(1000, seed, first, device=device).cpu().numpy()
            want = numpy_words((4000,), seed, 4 * first).reshape(1000, 4).astype(np.int64)
            if not np.array_equal(got, want):
                raise AssertionError(f"tl.randint4x differs from NumPy at seed={seed}, c={first}")
    return f"{len(SEEDS) * 2} x 1000 blocks equal"


def check_seed_masks(device: str, label: str = "") -> str:
    """P2/P3/P4/D5/D6: seed= masks bit for bit with NumPy; values equal to the CPU path's."""
    import torch

    from dropout_ref.core.philox import numpy_keep_mask
    from dropout_ref.core.thresholds import word_threshold
    from dropout_ref.torch import dropout_layer

    count = 0
    rate = 0.3
    for dtype in DTYPES:
        for n in SIZES:
            for offset in OFFSETS:
                seed = SEEDS[(n + offset) % len(SEEDS)]
                x = _values(torch, n, n, dtype, device)
                with _kernel_routing(device):
                    out = dropout_layer(x, rate, seed=seed, offset=offset)
                keep = numpy_keep_mask((n,), word_threshold(rate), seed, offset)
                host = out.cpu()
                if not np.array_equal(host.float().numpy() != 0, keep):
                    raise AssertionError(f"mask differs: {dtype} n={n} offset={offset} {label}")
                if torch.signbit(host[torch.from_numpy(~keep)]).any():
                    raise AssertionError(f"a dropped element is -0.0: {dtype} n={n}")
                with _without_kernel():
                    reference = dropout_layer(x.cpu(), rate, seed=seed, offset=offset)
                same = (host == reference) | (host.isnan() & reference.isnan())
                if not bool(same.all()):
                    raise AssertionError(f"values differ from the CPU path: {dtype} n={n} "
                                         f"offset={offset} {label}")
                count += 1
    return f"{count} (dtype, size, offset) masks bit-identical, values equal to the CPU path"


def check_exact_path(device: str) -> str:
    """Check the same masks with the Triton kernel switched off (torch ops on the device)."""
    with _without_kernel():
        return check_seed_masks(device, "(kernel off)")


def check_gradients(device: str) -> str:
    """D8 in both modes; D9: torch.manual_seed reproduces the default mode."""
    import torch

    from dropout_ref.core.philox import numpy_keep_mask
    from dropout_ref.core.thresholds import word_threshold
    from dropout_ref.torch import dropout_layer

    x = _values(torch, 9999, 1, "float32", device)
    x = torch.nan_to_num(x, nan=1.0, posinf=1.0).requires_grad_(True)
    g = torch.full_like(x, 3.0)
    with _kernel_routing(device):
        out = dropout_layer(x, 0.25, seed=77, offset=5)
        out.backward(g)
        keep = torch.from_numpy(numpy_keep_mask(x.shape, word_threshold(0.25), 77, 5))
        if not torch.equal(x.grad.cpu(), torch.where(keep, 4.0, 0.0)):
            raise AssertionError("seed= gradient is not keep * G / (1 - p)")
        x.grad = None
        torch.manual_seed(5)
        first = dropout_layer(x, 0.5)
        first.backward(g)
        torch.manual_seed(5)
        again = dropout_layer(x, 0.5)
        fresh = dropout_layer(x, 0.5)
    if not torch.equal(first.detach(), again.detach()):
        raise AssertionError("torch.manual_seed does not reproduce the default mode (D9)")
    if torch.equal(first.detach(), fresh.detach()):
        raise AssertionError("two default-mode calls gave the same mask (D9)")
    kept = first.detach() != 0
    if not torch.equal(x.grad, torch.where(kept, 6.0, 0.0).to(x.grad)):
        raise AssertionError("default-mode gradient does not use the forward's mask (D8)")
    return "seed= and default-mode gradients on their masks; manual_seed reproduces"


CHECKS: dict[str, Callable[[str], str]] = {
    "tl.randint4x oracle (P3)": check_randint4x,
    "seed= masks vs NumPy, kernel (P2, D5, D6)": check_seed_masks,
    "seed= masks vs NumPy, torch ops (P2, D5, D6)": check_exact_path,
    "gradients and seeding (D8, D9)": check_gradients,
}


def environment(device: str) -> dict[str, Any]:
    """Versions and the device, for the record."""
    import torch

    from dropout_ref.torch.fast import triton_kernel

    info: dict[str, Any] = {"torch": torch.__version__, "numpy": np.__version__,
                            "device": device, "python": sys.version.split()[0]}
    try:
        import triton

        info["triton"] = triton.__version__
    except Exception as exc:
        info["triton"] = f"unavailable: {exc}"
    info["kernel"] = triton_kernel.unavailable_reason() or "Triton kernel in use"
    if torch.device(device).type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(torch.device(device))
    return info


def main(argv: list[str] | None = None) -> int:
    """Run every check; print one line each and a summary; 1 if any failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    import torch

    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        print(f"gpu_masks: --device {args.device}: no CUDA device here", file=sys.stderr)
        return 2
    env = environment(args.device)
    print("environment: " + ", ".join(f"{k}={v}" for k, v in env.items()))
    results = []
    for name, check in CHECKS.items():
        start = time.perf_counter()
        try:
            status, detail = "pass", check(args.device)
        except Exception as exc:
            status, detail = "FAIL", f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)
        seconds = time.perf_counter() - start
        results.append({"check": name, "status": status, "detail": detail, "seconds": seconds})
        print(f"{status:4}  {name}: {detail} ({seconds:.1f} s)", flush=True)
    failed = [r for r in results if r["status"] != "pass"]
    print(f"masks: {len(results) - len(failed)}/{len(results)} checks passed")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"environment": env, "results": results}, handle, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
