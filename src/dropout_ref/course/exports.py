"""The course's names that each adapter package offers (``from dropout_ref.torch import MLP``).

An adapter imports none of them at import time: its PEP 562 module ``__getattr__``
resolves them here on first use, so the adapter does not depend on the course's
modules (no import circle) and ``import dropout_ref.torch`` stays as cheap as the
framework itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from dropout_ref.course.backends import COURSE_BACKENDS

#: Name offered by every adapter the course covers -> module under ``dropout_ref.course.<backend>``.
COMMON: dict[str, str] = {"MLP": "mlp"}
#: Names only some adapters offer.
EXTRA: dict[str, dict[str, str]] = {"jax": {"Dropout": "mlp"}}


def exported_names(backend: str) -> tuple[str, ...]:
    """Return the course names ``dropout_ref.<backend>`` offers (none outside the course)."""
    if backend not in COURSE_BACKENDS:
        return ()
    return (*COMMON, *EXTRA.get(backend, {}))


def course_attribute(adapter: str, name: str) -> Any:
    """Return course name ``name`` for the adapter package ``adapter`` (``"dropout_ref.torch"``).

    Raises
    ------
    AttributeError
        If ``name`` is not a course name of that backend (as for any missing attribute).
    """
    backend = adapter.rpartition(".")[2]
    module = EXTRA.get(backend, {}).get(name) or COMMON.get(name)
    if module is None:
        raise AttributeError(f"module {adapter!r} has no attribute {name!r}")
    if backend not in COURSE_BACKENDS:
        raise AttributeError(
            f"module {adapter!r} has no attribute {name!r}: the course's models cover "
            f"{', '.join(COURSE_BACKENDS)}, not {backend}"
        )
    return getattr(importlib.import_module(f"dropout_ref.course.{backend}.{module}"), name)


def course_exports(adapter: str) -> Callable[[str], Any]:
    """Return the module ``__getattr__`` of adapter package ``adapter`` (PEP 562)."""

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module hook's own name
        return course_attribute(adapter, name)

    __getattr__.__doc__ = "Resolve the course's models (``MLP``) on first use."
    return __getattr__
