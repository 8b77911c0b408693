"""The names an adapter package offers beyond its adapter, resolved on first use.

``from dropout_ref.torch import MLP, GPT, generate, portable_masks``: the course's
models and tools (``dropout_ref.course.<backend>``) and the adapter's interception
context (``dropout_ref.<backend>.intercept``) all import the adapter's
``dropout_layer``. The adapter imports none of them at import time: its PEP 562
module ``__getattr__`` (:func:`lazy_exports`) resolves them here on first use, so
there is no import circle and ``import dropout_ref.torch`` stays as cheap as the
framework itself. Nothing is imported by this module: the table holds paths.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

#: Offered by every backend the course covers: name -> module path (``{backend}`` filled in).
COURSE: dict[str, str] = {
    "MLP": "dropout_ref.models.{backend}.mlp",
    "GPT": "dropout_ref.models.{backend}.gpt",
    "portable_masks": "dropout_ref.{backend}.intercept",
    "generate": "dropout_ref.models.generate",
}

#: Backend -> its table: the course's names where it covers the backend, plus extras.
EXPORTS: dict[str, dict[str, str]] = {
    "numpy": {"MLP": COURSE["MLP"], "GPT": COURSE["GPT"], "generate": COURSE["generate"]},
    "torch": dict(COURSE),
    "tensorflow": dict(COURSE),
    "mxnet": dict(COURSE),
    "jax": {**COURSE, "Dropout": COURSE["MLP"]},
}


def exported_names(backend: str) -> tuple[str, ...]:
    """Return the lazily resolved names ``dropout_ref.<backend>`` offers."""
    return tuple(EXPORTS.get(backend, {}))


def exported_attribute(adapter: str, name: str) -> Any:
    """Return the lazily exported ``name`` of adapter package ``adapter`` (``"dropout_ref.torch"``).

    Raises
    ------
    AttributeError
        If ``name`` is not exported by that backend (as for any missing attribute).
    """
    backend = adapter.rpartition(".")[2]
    path = EXPORTS.get(backend, {}).get(name)
    if path is None:
        offered = [b for b, table in EXPORTS.items() if name in table]
        where = (
            f"; the course's models cover {', '.join(offered)}, not {backend}" if offered else ""
        )
        raise AttributeError(f"module {adapter!r} has no attribute {name!r}{where}")
    return getattr(importlib.import_module(path.format(backend=backend)), name)


def lazy_exports(adapter: str) -> Callable[[str], Any]:
    """Return the module ``__getattr__`` of adapter package ``adapter`` (PEP 562)."""

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module hook's own name
        return exported_attribute(adapter, name)

    __getattr__.__doc__ = "Resolve the course's models and the interception context on first use."
    return __getattr__
