"""Benchmark of ``dropout_layer`` against each framework's native dropout and ``X * 2.0``.

The core here imports no framework: it times callables that each adapter's
``bench_cases`` module provides (:class:`~dropout_ref.bench.cases.common.BenchCase`),
runs every backend in its own subprocess (:mod:`dropout_ref.bench.runner`) and
prints or saves the results (:mod:`dropout_ref.bench.report`). The method is
written down in ``docs/benchmark.md``.
"""

from dropout_ref.bench.cases.common import BenchCase, CaseSet
from dropout_ref.bench.runner import BenchConfig, run_benchmark

__all__ = ["BenchCase", "BenchConfig", "CaseSet", "run_benchmark"]
