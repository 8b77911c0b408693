"""Keras 3's own dropouts on whichever Keras backend this process runs (native audit).

Keras 3 runs one backend per process, fixed by ``KERAS_BACKEND`` before
``import keras``; ``dropout-ref report`` gives each framework's worker its own
(``KERAS_BACKEND=jax`` in the jax worker, ``torch`` in the torch worker, ...),
so each Keras backend is audited once, against that framework's arrays.
Nothing here imports Keras until :func:`keras_natives` is called.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

#: Frameworks Keras 3 runs on, by our backend names.
KERAS_BACKENDS = ("jax", "torch", "tensorflow")


def use_keras_backend(backend: str) -> None:
    """Ask for Keras on ``backend`` in this process (only effective before ``import keras``)."""
    if backend in KERAS_BACKENDS:
        os.environ["KERAS_BACKEND"] = backend


def layer_dropout(X: Any, p: Any) -> Any:
    """``keras.layers.Dropout(p)(X, training=True)``: Keras layers default to inference."""
    import keras

    return keras.layers.Dropout(p)(X, training=True)


def random_dropout(X: Any, p: Any) -> Any:
    """``keras.random.dropout(X, p)``: the op under the layer, seeded by Keras' global seed."""
    import keras

    return keras.random.dropout(X, p)


def keras_natives(backend: str, suffix: bool = True) -> dict[str, Callable[[Any, Any], Any]]:
    """Return Keras' dropouts as natives of ``backend`` if Keras runs on it here, else ``{}``.

    Parameters
    ----------
    backend : str
        Our backend name (``"jax"``, ``"torch"`` or ``"tensorflow"``).
    suffix : bool, optional
        Name them ``"keras.layers.Dropout (jax)"`` etc.

    """
    try:
        import keras
    except ImportError:
        return {}
    if keras.backend.backend() != backend:
        return {}
    tag = f" ({backend})" if suffix else ""
    return {
        f"keras.layers.Dropout{tag}": layer_dropout,
        f"keras.random.dropout{tag}": random_dropout,
    }
