"""dropout_ref: one dropout, every framework, provably the same.

``import dropout_ref`` imports no framework; each adapter is imported on
demand, e.g. ``from dropout_ref.torch import dropout_layer``.
"""

from dropout_ref._version import __version__
from dropout_ref.core.registry import available_backends, get_backend, known_backends

__all__ = [
    "GPTConfig",
    "__version__",
    "available_backends",
    "forward_numpy",
    "get_backend",
    "known_backends",
]

# Resolved on first use (PEP 562), so that ``import dropout_ref`` stays light.
_LAZY = {
    "GPTConfig": "dropout_ref.models.gpt_config",
    "forward_numpy": "dropout_ref.models.forward",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dropout_ref' has no attribute {name!r}")
