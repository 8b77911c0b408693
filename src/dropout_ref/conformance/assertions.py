"""Turn a conformance report into a pytest-friendly assertion."""



from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from dropout_ref.conformance.result import ConformanceReport
from dropout_ref.conformance.runner import check_dropout
from dropout_ref.conformance.stats import DEFAULT_ALPHA


class ConformanceError(AssertionError):
    """A dropout implementation broke SPEC clauses; the message lists each with its evidence."""

    def __init__(self, report: ConformanceReport) -> None:
        self.report = report
        lines = [
            f"{report.implementation} ({report.backend}) breaks "
            f"{len(report.failures)} clause(s): {', '.join(report.failures)}"
        ]
        lines += [f"  {report.results[c].message}" for c in report.failures]
        super().__init__("\n".join(lines))


def assert_conforms(
    fn: Callable[[Any, Any], Any],
    backend: str = "numpy",
    clauses: Iterable[str] | None = None,
    *,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
    allow: Iterable[str] = (),
) -> ConformanceReport:
    """Assert that ``fn`` conforms to the SPEC's D clauses; return the report.

    Parameters
    ----------
    fn, backend, clauses, seed, alpha
        As for :func:`~dropout_ref.conformance.check_dropout`.
    allow : iterable of str, optional
        Clause ids whose failure is accepted (known, documented deviations).

    Raises
    ------
    ConformanceError
        An ``AssertionError`` listing each failed clause with its evidence,
        e.g. ``D6: at dropout=0.5 in float32: element 0 is nan where X is nan``.

    """
    report = check_dropout(fn, backend=backend, clauses=clauses, seed=seed, alpha=alpha)
    allowed = set(allow)
    if any(c not in allowed for c in report.failures):
        raise ConformanceError(report)
    return report
