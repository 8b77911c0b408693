"""A gallery of WRONG dropout implementations: each must be caught by the conformance kit.

Every module lists ``MUTANTS``: :class:`Mutant` records naming the clause(s)
expected to catch it. ``tests/test_conformance_power.py`` runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Mutant:
    """One wrong implementation.

    Attributes
    ----------
    name : str
        Short id, used as the pytest id.
    backend : str
        Whose arrays it takes.
    fn : callable
        ``fn(X, p)``.
    caught_by : tuple of str
        SPEC clauses expected to fail.
    what : str
        The mistake, in words.
    """

    name: str
    backend: str
    fn: Callable[[Any, Any], Any]
    caught_by: tuple[str, ...]
    what: str
