"""``dropout-ref bench --compiled``: a training loop whose rate and seed change every step (S1-S3).

The course MLP (784-256-256-10, batch 256) runs ``steps`` compiled SGD steps with
an early-linear schedule (both hidden dropouts, SPEC S3) and a new portable-mask
seed every step, passed as runtime values (S1, S2). Measured per framework from
the framework's own counters: how many programs the loop compiled after warm-up
(Dynamo's ``unique_graphs``, ``tf.function``'s tracing count, the ``jax.jit``
cache size), and the median step time against two baselines:

- the same compiled step with a constant Python rate and seed (the issue's
  baseline). Its masks depend on constants only, so the compilers (Grappler,
  XLA, Inductor) may fold the whole Philox generator into a compile-time
  constant: the ratio then prices the generator itself, which a training run
  needs anyway (a constant seed would drop the same units at every step);
- the same compiled step with a runtime seed and the model's constant rates:
  the ratio is the cost of the runtime rates alone (SPEC S1).

Each framework's loop lives in ``dropout_ref.bench.cases.<backend>`` as
``compiled_loop(steps, device)``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dropout_ref.schedules import early

#: Frameworks with compiled steps (torch.compile, tf.function, jax.jit).
COMPILED_BACKENDS = ("torch", "tensorflow", "jax")

BATCH = 256
SIZES = (784, 256, 256, 10)
WARMUP = 3


@dataclass
class LoopInputs:
    """The loop's batch, labels, lr, seeds and per-step rates (the same in every framework)."""

    images: np.ndarray
    labels: np.ndarray
    lr: float
    seeds: list[int]
    rates: list[tuple[float, float]]


def loop_inputs(steps: int) -> LoopInputs:
    """Return ``steps`` steps of inputs: one batch, seeds 1000 + i, early linear rates."""
    rng = np.random.default_rng(0)
    images = rng.random((BATCH, SIZES[0]), dtype=np.float32)
    labels = rng.integers(0, SIZES[-1], BATCH).astype(np.int64)
    s1, s2 = early(0.2, steps, "linear"), early(0.5, steps, "linear")
    rates = [(float(np.float32(s1(i))), float(np.float32(s2(i)))) for i in range(steps)]
    return LoopInputs(images, labels, 0.1, [1000 + i for i in range(steps)], rates)


def time_steps(run: Callable[[int], Any], steps: int) -> list[float]:
    """Return the wall time of ``run(i)`` (which must wait for its result) for each step."""
    times = []
    for i in range(steps):
        start = time.perf_counter()
        run(i)
        times.append(time.perf_counter() - start)
    return times


def summary(
    programs: int,
    runtime: list[float],
    constant: list[float],
    seeded: list[float],
    **extra: Any,
) -> dict[str, Any]:
    """Return one framework's result: programs after warm-up, median step times, ratios.

    ``runtime``, ``constant`` and ``seeded`` are the step times (seconds) with
    runtime rates and seeds, with constants, and with a runtime seed and constant rates.
    """
    runtime_ms = statistics.median(runtime) * 1e3
    constant_ms = statistics.median(constant) * 1e3
    seeded_ms = statistics.median(seeded) * 1e3
    return {
        "programs_after_warmup": programs,
        "runtime_step_ms": runtime_ms,
        "constant_step_ms": constant_ms,
        "runtime_over_constant": runtime_ms / constant_ms,
        "seeded_step_ms": seeded_ms,
        "runtime_over_seeded": runtime_ms / seeded_ms,
        **extra,
    }


def run_compiled_loops(
    backends: tuple[str, ...], steps: int = 100, device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run each framework's loop; a framework that is not installed is reported, not run."""
    from dropout_ref.bench.cases import BENCH_CASES

    results: dict[str, Any] = {"steps": steps, "batch": BATCH, "sizes": SIZES, "backends": {}}
    for name in backends:
        if progress is not None:
            progress(name)
        try:
            cases = BENCH_CASES.load(name)
        except ImportError as exc:
            results["backends"][name] = {"skipped": str(exc)}
            continue
        results["backends"][name] = cases.compiled_loop(steps, device)
    return results


def format_report(results: dict[str, Any]) -> str:
    """Return the results as a small text table."""
    lines = [
        f"compiled loop: {results['steps']} steps, MLP {'-'.join(map(str, results['sizes']))}, "
        f"batch {results['batch']}, early-linear rates and a new seed every step",
        f"{'backend':<11} {'programs':>8} {'runtime ms':>11} {'constant ms':>12} "
        f"{'ratio':>6} {'seeded ms':>10} {'ratio':>6}  notes",
    ]
    for name, r in results["backends"].items():
        if "skipped" in r:
            lines.append(f"{name:<11} skipped: {r['skipped']}")
            continue
        notes = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in r.items() if k not in (
                              "programs_after_warmup", "runtime_step_ms", "constant_step_ms",
                              "runtime_over_constant", "seeded_step_ms", "runtime_over_seeded"))
        lines.append(
            f"{name:<11} {r['programs_after_warmup']:>8} {r['runtime_step_ms']:>11.3f} "
            f"{r['constant_step_ms']:>12.3f} {r['runtime_over_constant']:>6.3f} "
            f"{r['seeded_step_ms']:>10.3f} {r['runtime_over_seeded']:>6.3f}  {notes}"
        )
    return "\n".join(lines)
