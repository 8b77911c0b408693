"""dropout_ref: one dropout, every framework, provably the same.

``import dropout_ref`` imports no framework; each adapter is imported on
demand, e.g. ``from dropout_ref.torch import dropout_layer``.
"""

from dropout_ref.core.registry import available_backends, get_backend, known_backends

__all__ = ["__version__", "available_backends", "get_backend", "known_backends"]

__version__ = "0.1.0"
