"""An array's Array API namespace, device and dtype name (array-api-compat), for the adapter.

The helpers that both :mod:`dropout_ref.array_api.ops` and the integer Philox of
:mod:`dropout_ref.array_api.philox` need: they live apart from both so that ``ops`` can
import ``philox`` at module level without an import circle.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

#: Dtype names looked up in a namespace, floating ones first (``bfloat16`` is not standard,
#: but torch's and JAX's namespaces have it).
DTYPE_NAMES = (
    "float16", "bfloat16", "float32", "float64", "bool",
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "complex64", "complex128",
)  # fmt: skip


def namespace_of(X: Any) -> Any:
    """Return ``X``'s Array API namespace (``array_api_compat.array_namespace``)."""
    return array_api_compat.array_namespace(X)


def device_of(X: Any) -> Any:
    """Return the device holding ``X`` (``array_api_compat.device``)."""
    return array_api_compat.device(X)


def dtype_name(X: Any, xp: Any = None) -> str:
    """Return the canonical dtype name of ``X`` (``"float32"``, ``"int64"``, ``"bool"``, ...).

    Found by comparing ``X.dtype`` with the namespace's own dtype objects, which
    is the standard's way (dtype objects have no portable name attribute).
    """
    xp = namespace_of(X) if xp is None else xp
    for name in DTYPE_NAMES:
        candidate = getattr(xp, name, None)
        if candidate is not None and X.dtype == candidate:
            return name
    return str(X.dtype).rpartition(".")[2]


def namespace_float_dtypes(xp: Any) -> tuple[str, ...]:
    """Return the SPEC D7 floating dtypes the namespace has, canonical names in SPEC order."""
    return tuple(
        name for name in ("float16", "bfloat16", "float32", "float64") if hasattr(xp, name)
    )
