"""dropout_ref: one dropout, every framework, provably the same.

``import dropout_ref`` imports no framework; each adapter is imported on
demand, e.g. ``from dropout_ref.torch import dropout_layer``.
"""

from dropout_ref._version import __version__
from dropout_ref.core.registry import available_backends, get_backend, known_backends

__all__ = ["__version__", "available_backends", "get_backend", "known_backends"]
