"""Running one clause's check: its verdict, its evidence and the random tests it spent."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from dropout_ref.conformance.context import Violation
from dropout_ref.conformance.result import FAIL, NOT_APPLICABLE, PASS, ClauseResult
from dropout_ref.core.contract import NotApplicable


def first_line(exc: BaseException) -> str:
    """Return the first line of ``exc``'s message, at most 160 characters."""
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else ""


def run_clause(
    clause: str,
    check: Callable[[], str],
    counter: Any,
    per_test: float,
    *,
    random_tests: int = 0,
) -> ClauseResult:
    """Run ``check`` for ``clause`` and return its result.

    Parameters
    ----------
    clause : str
        The clause id, e.g. ``"D4"``.
    check : callable
        Returns the evidence of a pass; raises :class:`Violation` (fail),
        :class:`NotApplicable` (n/a) or any other exception (a fail that names it:
        an implementation that crashes does not conform).
    counter : object or None
        Has ``random_tests_run``, the number of random tests spent so far; ``None``
        where the check's number of random tests is known in advance.
    per_test : float
        False-alarm probability of each random test.
    random_tests : int, optional
        With ``counter=None``: the random tests the check spends.

    Returns
    -------
    ClauseResult

    """
    start = time.perf_counter()
    before = counter.random_tests_run if counter is not None else 0
    try:
        status, message = PASS, check()
    except Violation as exc:
        status, message = FAIL, str(exc)
    except NotApplicable as exc:
        status, message = NOT_APPLICABLE, str(exc)
    except Exception as exc:
        status, message = FAIL, f"raised {type(exc).__name__}: {first_line(exc)}"
    ran = counter.random_tests_run - before if counter is not None else random_tests
    return ClauseResult(
        clause,
        status,
        f"{clause}: {message}",
        random_tests=ran,
        alpha=per_test if ran else 0.0,
        seconds=round(time.perf_counter() - start, 3),
    )
