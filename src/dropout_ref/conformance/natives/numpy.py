"""NumPy has no native dropout: nothing to audit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

NATIVES: dict[str, Callable[[Any, Any], Any]] = {}
EXPECTED_DEVIATIONS: dict[str, dict[str, str]] = {}
