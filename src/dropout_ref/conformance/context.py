"""Everything a check needs: the function under test, its backend's array bridge, the budget."""



from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dropout_ref.core.contract import ArrayBridge


class Violation(Exception):  # noqa: N818 - reads as the verdict it carries
    """Raised by a check with the evidence that the implementation breaks its clause."""


@dataclass
class CheckContext:
    """State shared by the checks of one run.

    Attributes
    ----------
    fn : callable
        ``fn(X, p)`` returning an array of the backend.
    arrays : ArrayBridge
        The backend's array bridge, the only way the kit touches the framework.
    seed : int
        Seed of the kit's own NumPy generator (inputs, cotangents) and of the
        framework's global generator before each random check.
    alpha_per_test : float
        False-alarm probability of each random test.
    sample_scale : float
        Multiplies the large sample sizes (1.0 = the documented sizes).

    """

    fn: Callable[[Any, Any], Any]
    arrays: ArrayBridge
    seed: int
    alpha_per_test: float
    sample_scale: float = 1.0
    random_tests_run: int = 0
    _cache: dict[Any, Any] = field(default_factory=dict)

    @property
    def dtypes(self) -> tuple[str, ...]:
        """The floating dtypes the backend supports."""
        return tuple(self.arrays.float_dtypes)

    def missing_dtypes_note(self) -> str:
        """Say which SPEC dtypes the framework lacks (their sub-checks are n/a)."""
        missing = [d for d in ("float16", "bfloat16", "float32", "float64") if d not in self.dtypes]
        if not missing:
            return ""
        return f" ({', '.join(missing)}: n/a, {self.arrays.name} has no such dtype)"

    def rng(self, salt: int) -> np.random.Generator:
        """Return the kit's own generator for one check; independent of the framework's."""
        return np.random.default_rng([self.seed, salt])

    def make(self, values: np.ndarray, dtype: str) -> Any:
        """Return a backend array of ``dtype`` holding ``values``."""
        return self.arrays.from_numpy(np.asarray(values), dtype)

    def exact_values(self, X: Any) -> np.ndarray:
        """Return the values ``X`` really holds, widened to float64."""
        return np.asarray(self.arrays.to_numpy(X), dtype=np.float64)

    def call(self, X: Any, p: Any) -> Any:
        """Call the function under test; its own exceptions propagate as evidence."""
        return self.fn(X, p)

    def seeded_call(self, X: Any, p: Any, salt: int) -> Any:
        """Seed the framework's generator (D9's seeding call), then call the function."""
        self.arrays.seed_global(int(np.random.default_rng([self.seed, salt]).integers(2**31)))
        return self.fn(X, p)

    def counted(self, n: int = 1) -> float:
        """Record ``n`` random tests; return the false-alarm probability each runs at."""
        self.random_tests_run += n
        return self.alpha_per_test

    def cached(self, key: Any, make: Callable[[], Any]) -> Any:
        """Return ``make()``, computed once per run (large samples are shared by D4 and D10)."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


def describe_call(p: Any, dtype: str | None = None) -> str:
    """Name the call in a message: ``"at dropout=0.3 in bfloat16"``."""
    text = f"at dropout={p!r}"
    return f"{text} in {dtype}" if dtype else text


def is_positive_zero(values: np.ndarray) -> np.ndarray:
    """Return where ``values`` are exactly ``+0.0`` (not ``-0.0``, not NaN)."""
    return (values == 0) & ~np.signbit(values)
