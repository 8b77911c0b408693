"""``dropout-ref bench``: time dropout_layer against native dropout and ``X * 2.0``."""

from __future__ import annotations

import argparse
import importlib.util
import sys

from dropout_ref.bench.report import print_report, to_json
from dropout_ref.bench.runner import DEFAULT_BACKENDS, DEVICE_BACKENDS, BenchConfig, run_benchmark
from dropout_ref.cli.commands.output_paths import OutputPathError, prepare_output_file
from dropout_ref.core.registry import backend_info


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--sizes must be comma-separated powers of two, like 16,20,24; got {text!r}"
        ) from None
    if not values or any(not 0 <= v <= 30 for v in values):
        raise argparse.ArgumentTypeError(f"--sizes must be exponents in [0, 30]; got {text!r}")
    return values


def _dtype_list(text: str) -> list[str]:
    values = [part.strip() for part in text.split(",") if part.strip()]
    allowed = {"float16", "bfloat16", "float32", "float64"}
    if not values or not set(values) <= allowed:
        raise argparse.ArgumentTypeError(
            f"--dtypes must be a comma-separated subset of {sorted(allowed)}; got {text!r}"
        )
    return values


def _backend(text: str) -> str:
    try:
        name = backend_info(text).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    # Only these have bench cases (dropout_ref.<name>.bench_cases).
    if name not in DEFAULT_BACKENDS:
        raise argparse.ArgumentTypeError(
            f"bench has cases for {', '.join(DEFAULT_BACKENDS)} only; got {text!r}"
        )
    return name


def thread_env(threads: int) -> dict[str, str]:
    """Return the environment that caps every framework's CPU threads at ``threads``.

    Read by each framework when its worker process starts: OpenMP and MKL (torch's
    intra-op pool, MXNet), TensorFlow's intra- and inter-op pools, XLA's CPU client
    (JAX), numba's pool (the compiled CPU kernel).
    """
    n = str(threads)
    env = {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "NUMBA_NUM_THREADS": n,
           "TF_NUM_INTRAOP_THREADS": n, "TF_NUM_INTEROP_THREADS": n}
    if threads == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    return env


def installed_backends(names: tuple[str, ...]) -> tuple[str, ...]:
    """Return the backends of ``names`` whose framework is installed; say which are skipped.

    As ``dropout-ref report`` does: a default run benchmarks what is there and
    names what is not (with its install command) on stderr, instead of failing.
    """
    present = []
    for name in names:
        info = backend_info(name)
        if importlib.util.find_spec(info.framework) is None:
            print(f"dropout-ref bench: skipping {name}: {info.framework} is not installed "
                  f"(install with: {info.install})", file=sys.stderr)
        else:
            present.append(name)
    return tuple(present)


def _run_compiled(args: argparse.Namespace, device: str) -> int:
    """Run ``bench --compiled`` (:mod:`dropout_ref.bench.compiled_loop`)."""
    import json

    from dropout_ref.bench.compiled_loop import (
        COMPILED_BACKENDS,
        format_report,
        run_compiled_loops,
    )

    if args.steps < 1:
        print(f"dropout-ref bench: --steps must be >= 1; got {args.steps}", file=sys.stderr)
        return 2
    wanted = args.backends or installed_backends(COMPILED_BACKENDS)
    backends = tuple(b for b in wanted if b in COMPILED_BACKENDS)
    if not backends:
        print(f"dropout-ref bench --compiled: only {', '.join(COMPILED_BACKENDS)} have compiled "
              "steps", file=sys.stderr)
        return 2
    results = run_compiled_loops(
        backends, args.steps, device,
        progress=lambda name: print(f"compiled loop: {name} on {device}", file=sys.stderr),
    )
    text = json.dumps(results, indent=2)
    if args.output:
        from dropout_ref.course.training import atomic_write_bytes

        atomic_write_bytes(args.output, (text + "\n").encode())
    print(text if args.format == "json" else format_report(results))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options."""
    parser.add_argument("--backend", action="append", type=_backend, dest="backends",
                        help="backend to run (repeatable); default: "
                        + ", ".join(DEFAULT_BACKENDS))
    parser.add_argument("--sizes", type=_int_list, default=[16, 20, 24],
                        help="log2 of the element counts, comma-separated (default 16,20,24)")
    parser.add_argument("--dtypes", type=_dtype_list, default=["float32", "float16"],
                        help="dtypes, comma-separated (default float32,float16)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed calls per case, interleaved (default 5)")
    parser.add_argument("--rate", type=float, default=0.5, help="dropout rate (default 0.5)")
    parser.add_argument("--no-fused", dest="fused", action="store_false",
                        help="leave out the compiled variants (torch.compile, XLA)")
    parser.add_argument("--no-memory", dest="memory", action="store_false",
                        help="do not measure peak extra memory")
    parser.add_argument("--mlp-epoch", action="store_true",
                        help="also time one MLP training epoch, ours vs the native dropout layer")
    parser.add_argument("--gpt-step", action="store_true",
                        help="also time GPT train steps: ours (both modes) vs native dropout at "
                        "every site (CPU)")
    parser.add_argument("--device", default="cpu",
                        help="where X lives: cpu (default) or a GPU such as cuda, cuda:1 "
                        f"({', '.join(DEVICE_BACKENDS)} only); on a GPU: forward, forward + "
                        "backward, bytes saved for backward, the seed= mode, timed with CUDA "
                        "events")
    parser.add_argument("--compiled", action="store_true",
                        help="instead: the compiled training loop (SPEC S1-S3), 100 steps of "
                        "the course MLP with an early-linear schedule and a new seed every "
                        "step in torch, tensorflow and jax: programs compiled (the frameworks' "
                        "counters) and step time against constant Python rate and seed")
    parser.add_argument("--steps", type=int, default=100,
                        help="steps of the --compiled loop (default 100)")
    parser.add_argument("--threads", type=int, default=None,
                        help="cap every framework's CPU threads (OpenMP, MKL, TensorFlow, "
                        "numba; XLA for 1); default: the frameworks' own")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--output", help="also write the JSON results to this file")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print the table or the JSON."""
    if args.repeats < 1:
        print(f"dropout-ref bench: --repeats must be >= 1; got {args.repeats}", file=sys.stderr)
        return 2
    if not 0.0 < args.rate < 1.0:
        print(f"dropout-ref bench: --rate must be in (0, 1); got {args.rate}", file=sys.stderr)
        return 2
    if args.threads is not None and args.threads < 1:
        print(f"dropout-ref bench: --threads must be >= 1; got {args.threads}", file=sys.stderr)
        return 2
    device = args.device.strip()
    if args.compiled:
        return _run_compiled(args, device)
    on_cpu = device == "cpu"
    default = DEFAULT_BACKENDS if on_cpu else DEVICE_BACKENDS
    # Backends asked for by name must run (an absent framework is an error);
    # the default set skips what is not installed.
    backends = tuple(args.backends) if args.backends else installed_backends(default)
    if not on_cpu and not set(backends) <= set(DEVICE_BACKENDS):
        print(f"dropout-ref bench: --device {device}: only {', '.join(DEVICE_BACKENDS)} has "
              f"cases on a device other than the CPU; got --backend {', '.join(backends)}",
              file=sys.stderr)
        return 2
    if args.output:
        try:
            prepare_output_file(args.output, "--output")
        except OutputPathError as exc:
            print(f"dropout-ref bench: {exc}", file=sys.stderr)
            return 2
    config = BenchConfig(
        backends=backends, log2_sizes=tuple(args.sizes),
        dtypes=tuple(args.dtypes), repeats=args.repeats, rate=args.rate, memory=args.memory,
        fused=args.fused, mlp_epoch=args.mlp_epoch, gpt_step=args.gpt_step, device=device,
        extra_env=thread_env(args.threads) if args.threads else {},
    )
    results = run_benchmark(
        config, progress=lambda name: print(f"benchmarking {name} on {device}", file=sys.stderr)
    )
    unusable = [r for r in results["backends"] if r.get("unusable")]
    if unusable:  # e.g. --device cuda without a GPU: one line, no table, no traceback
        for result in unusable:
            print(f"dropout-ref bench: --device {device}: {result['error']}", file=sys.stderr)
        return 2
    if args.output:
        from dropout_ref.course.training import atomic_write_bytes

        try:
            atomic_write_bytes(args.output, to_json(results).encode())
        except OSError as exc:
            print(f"dropout-ref bench: cannot write --output {args.output!r}: {exc}",
                  file=sys.stderr)
            return 2
    if args.format == "json":
        print(to_json(results))
    else:
        print_report(results)
    return 1 if any("error" in result for result in results["backends"]) else 0
