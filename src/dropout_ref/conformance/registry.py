"""The registry of checks: SPEC clause id -> check, with its random-test budget."""



from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dropout_ref.conformance import checks_contract, checks_random, checks_values, structured
from dropout_ref.conformance.context import CheckContext


@dataclass(frozen=True)
class Check:
    """One clause's check.

    Attributes
    ----------
    clause : str
        SPEC clause id.
    title : str
        What the clause asks, in a few words (column header of the report).
    run : callable
        ``run(ctx) -> str``: returns the evidence of a pass, raises
        :class:`~dropout_ref.conformance.context.Violation` with the evidence
        of a failure, or :class:`~dropout_ref.core.contract.NotApplicable`.
    random_tests : callable
        ``random_tests(n_dtypes) -> int``: how many random tests it runs, for
        the Bonferroni split of the overall false-alarm probability.

    """

    clause: str
    title: str
    run: Callable[[CheckContext], str]
    random_tests: Callable[[int], int]


def _none(n_dtypes: int) -> int:
    return 0


CHECKS: dict[str, Check] = {
    check.clause: check
    for check in (
        Check("D1", "bad rates refused", checks_contract.check_d1, _none),
        Check("D2", "p=0 identity", checks_contract.check_d2, _none),
        Check("D3", "p=1 zeros", checks_contract.check_d3, _none),
        Check(
            "D4",
            "keep rule",
            checks_random.check_d4,
            lambda n: n * (len(checks_random.EXTREME_RATES) + 2),
        ),
        Check("D5", "scale", checks_values.check_d5, _none),
        Check(
            "D6",
            "dropped = +0.0",
            checks_values.check_d6,
            lambda n: n * len(checks_values.DROP_RATES),
        ),
        Check("D7", "shape/dtype/device", checks_contract.check_d7, _none),
        Check("D8", "gradient", checks_values.check_d8, _none),
        Check("D9", "fresh, seedable masks", checks_random.check_d9, lambda n: 1),
        Check(
            "D10",
            "expectation",
            checks_random.check_d10,
            lambda n: n * len(checks_random.EXTREME_RATES),
        ),
        Check("D11", "X not modified", checks_contract.check_d11, _none),
        Check("D12", "one decision per group", structured.check_d12, _none),
    )
}

#: Every clause the kit checks, in SPEC order.
CLAUSES: tuple[str, ...] = tuple(CHECKS)
