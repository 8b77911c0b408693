"""What a conformance run returns: one verdict per SPEC clause."""



from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: The three verdicts of a clause.
PASS, FAIL, NOT_APPLICABLE = "pass", "fail", "n/a"


@dataclass(frozen=True)
class ClauseResult:
    """The verdict on one clause.

    Attributes
    ----------
    clause : str
        SPEC clause id, e.g. ``"D6"``.
    status : str
        ``"pass"``, ``"fail"`` or ``"n/a"`` (the framework cannot express the check).
    message : str
        Readable evidence, e.g. ``"D6: element 3 is nan where X is nan at dropout=0.5 ..."``.
    random_tests : int
        How many random (statistical) tests the check ran.
    alpha : float
        False-alarm probability of each of those tests (0 for deterministic checks).
    seconds : float
        Wall time of the check.

    """

    clause: str
    status: str
    message: str
    random_tests: int = 0
    alpha: float = 0.0
    seconds: float = 0.0


@dataclass
class ConformanceReport:
    """The verdicts of one implementation on the selected clauses.

    Attributes
    ----------
    implementation : str
        A name for what was checked, e.g. ``"torch.dropout_layer"``.
    backend : str
        The backend whose arrays it takes.
    alpha : float
        Requested overall false-alarm probability of the run.
    alpha_per_test : float
        What each random test was run at (``alpha`` split by Bonferroni).
    results : dict of str to ClauseResult
        Verdicts by clause id, in SPEC order.

    """

    implementation: str
    backend: str
    alpha: float
    alpha_per_test: float
    seed: int
    results: dict[str, ClauseResult] = field(default_factory=dict)

    @property
    def failures(self) -> list[str]:
        """Sorted ids of the failed clauses (``D2`` before ``D10``)."""
        return sorted(
            (c for c, r in self.results.items() if r.status == FAIL), key=clause_sort_key
        )

    @property
    def ok(self) -> bool:
        """True when no clause failed (``n/a`` clauses do not fail)."""
        return not self.failures

    def status(self, clause: str) -> str:
        """Return the verdict on ``clause``."""
        return self.results[clause].status

    def summary(self) -> str:
        """Return one line per clause: id, verdict, evidence."""
        lines = [f"{self.implementation} ({self.backend}): " + ("ok" if self.ok else "FAILED")]
        for result in self.results.values():
            lines.append(f"  {result.clause:>4} {result.status:<5} {result.message}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        data = asdict(self)
        data["ok"] = self.ok
        data["failures"] = self.failures
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConformanceReport:
        """Rebuild a report from :meth:`to_dict`'s output."""
        results = {k: ClauseResult(**v) for k, v in data["results"].items()}
        return cls(
            implementation=data["implementation"],
            backend=data["backend"],
            alpha=data["alpha"],
            alpha_per_test=data["alpha_per_test"],
            seed=data["seed"],
            results=results,
        )


def clause_sort_key(clause: str) -> tuple[str, int]:
    """Sort ``D2`` before ``D10``."""
    return clause[0], int(clause[1:])
