"""Measure the kit's false-alarm rate: how often a CORRECT dropout fails a random check.

``python -m dropout_ref.conformance.false_alarm --runs 400 --alpha 0.2`` runs the
random clauses (D4, D6, D9, D10) of :func:`check_dropout` on the numpy oracle
``runs`` times with different seeds, at an overall false-alarm probability
``alpha`` large enough to observe, and compares the fraction of runs with a
failure with ``alpha``. The Bonferroni split guarantees at most ``alpha``; the
exact binomial tests, the one-sided D6 bound and D10's rounding allowance make
the real rate lower.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

from dropout_ref.conformance.runner import check_dropout
from dropout_ref.conformance.stats import binomial_count_interval
from dropout_ref.core.contract import kit_dropout_layer
from dropout_ref.core.registry import get_backend

#: Clauses with random tests.
RANDOM_CLAUSES = ("D4", "D6", "D9", "D10")


@dataclass(frozen=True)
class FalseAlarmRate:
    """Result of :func:`measure`."""

    backend: str
    runs: int
    alpha: float
    failed_runs: int
    tests_per_run: int
    failed_tests: int
    seconds: float

    @property
    def rate(self) -> float:
        """Observed fraction of runs with at least one failure."""
        return self.failed_runs / self.runs

    def __str__(self) -> str:
        bound = binomial_count_interval(self.runs, self.alpha, 1e-6)
        return (
            f"{self.backend}: {self.failed_runs} of {self.runs} runs of the random clauses "
            f"{', '.join(RANDOM_CLAUSES)} failed a correct implementation: observed "
            f"false-alarm rate {self.rate:.4f} vs stated alpha {self.alpha:g} (at most "
            f"{bound.high:g} failing runs expected if the stated rate held with equality, "
            f"at 1e-6); {self.failed_tests} clause failures in all, over "
            f"{self.runs * self.tests_per_run} random tests run at "
            f"{self.alpha / self.tests_per_run:.3g} each; {self.seconds:.0f} s"
        )


def measure(
    runs: int = 400, alpha: float = 0.2, backend: str = "numpy", sample_scale: float = 1 / 16
) -> FalseAlarmRate:
    """Run the random clauses ``runs`` times on ``backend``'s own dropout_layer.

    Parameters
    ----------
    runs : int
        Number of independent runs (seeds ``0 .. runs - 1``).
    alpha : float
        Overall false-alarm probability of each run.
    backend : str
        Backend whose ``dropout_layer`` is checked (numpy is the cheapest).
    sample_scale : float
        Shrinks the large samples: the bounds are exact for any size, so the
        false-alarm rate does not depend on it (the power does).

    Returns
    -------
    FalseAlarmRate

    """
    fn = kit_dropout_layer(get_backend(backend))
    failed_runs = failed_tests = tests_per_run = 0
    start = time.perf_counter()
    for seed in range(runs):
        report = check_dropout(
            fn, backend=backend, clauses=RANDOM_CLAUSES, seed=seed, alpha=alpha,
            sample_scale=sample_scale,
        )  # fmt: skip
        tests_per_run = round(alpha / report.alpha_per_test)
        failed_runs += not report.ok
        failed_tests += len(report.failures)
    return FalseAlarmRate(
        backend, runs, alpha, failed_runs, tests_per_run, failed_tests,
        time.perf_counter() - start,
    )  # fmt: skip


def measure_gpt(runs: int = 200, alpha: float = 0.2, backend: str = "numpy") -> str:
    """Run the GPT's site clauses (X2-X4) ``runs`` times on ``backend``'s GPT; describe the rate.

    Only X2 is random (one exact binomial test per site at ``alpha / sites``), so a
    correct GPT fails a run with probability at most ``alpha``.
    """
    from dropout_ref.conformance.model_probes import check_gpt

    failed_runs, by_clause = 0, {}
    start = time.perf_counter()
    for seed in range(runs):
        report = check_gpt(backend=backend, seed=seed, alpha=alpha)
        failed_runs += not report.ok
        for clause in report.failures:
            by_clause[clause] = by_clause.get(clause, 0) + 1
    bound = binomial_count_interval(runs, alpha, 1e-6)
    return (
        f"{backend} GPT: {failed_runs} of {runs} runs of the site clauses failed a correct "
        f"GPT (by clause: {by_clause or 'none'}): observed false-alarm rate "
        f"{failed_runs / runs:.4f} vs stated alpha {alpha:g} (at most {bound.high:g} failing "
        f"runs expected if the stated rate held with equality, at 1e-6); "
        f"{time.perf_counter() - start:.0f} s"
    )


def main(argv: list[str] | None = None) -> int:
    """Print the measured false-alarm rate."""
    parser = argparse.ArgumentParser(prog="python -m dropout_ref.conformance.false_alarm")
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--alpha", type=float, default=0.2)
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--sample-scale", type=float, default=1 / 16)
    parser.add_argument(
        "--model", choices=["none", "gpt"], default="none",
        help="gpt: the GPT's site clauses (X2-X4) instead of dropout_layer's random clauses",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.model == "gpt":
        print(measure_gpt(args.runs, args.alpha, args.backend))
        return 0
    print(measure(args.runs, args.alpha, args.backend, args.sample_scale))
    return 0


if __name__ == "__main__":
    sys.exit(main())
