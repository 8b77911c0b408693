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


# -- structured Keras dropouts (SPEC D12) and attention dropout (the identity trick) ----------


def keras_dropout_noise_shape(X: Any, p: Any) -> Any:
    """``keras.layers.Dropout(p, noise_shape=(None, 1, None))(X, training=True)``."""
    import keras

    return keras.layers.Dropout(p, noise_shape=(None, 1, None))(X, training=True)


def keras_spatial_dropout_1d(X: Any, p: Any) -> Any:
    """``keras.layers.SpatialDropout1D(p)(X, training=True)`` on an ``(N, T, C)`` X."""
    import keras

    return keras.layers.SpatialDropout1D(p)(X, training=True)


def keras_spatial_dropout_2d(X: Any, p: Any) -> Any:
    """``keras.layers.SpatialDropout2D(p)(X, training=True)`` on an ``(N, H, W, C)`` X."""
    import keras

    return keras.layers.SpatialDropout2D(p)(X, training=True)


#: Structured Keras dropouts and the kit's noise_shape for each (1 marks shared axes).
_STRUCTURED = {
    "keras.layers.Dropout(noise_shape=)": (keras_dropout_noise_shape, (None, 1, None)),
    "keras.layers.SpatialDropout1D": (keras_spatial_dropout_1d, (None, 1, None)),
    "keras.layers.SpatialDropout2D": (keras_spatial_dropout_2d, (None, 1, 1, None)),
}
STRUCTURED_KERAS_NAMES = tuple(_STRUCTURED)


def _keras_on(backend: str) -> bool:
    try:
        import keras
    except ImportError:
        return False
    return keras.backend.backend() == backend


def keras_structured_natives(
    backend: str,
) -> dict[str, tuple[Callable[[Any, Any], Any], tuple[int | None, ...]]]:
    """Return Keras' structured dropouts, ``name (backend)`` -> (fn, noise_shape), if on it."""
    if not _keras_on(backend):
        return {}
    return {f"{name} ({backend})": entry for name, entry in _STRUCTURED.items()}


def keras_attention_natives(backend: str) -> dict[str, Callable[[], Any]]:
    """Return ``MultiHeadAttention(dropout=)`` as a probe factory if Keras runs on ``backend``."""
    if not _keras_on(backend):
        return {}
    from dropout_ref.conformance.attention.keras import keras_mha_probe
    from dropout_ref.core.registry import get_backend

    # The dtypes the framework holds here (JAX without jax_enable_x64 has no float64).
    dtypes = tuple(get_backend(backend).arrays.float_dtypes)
    return {
        f"keras.layers.MultiHeadAttention(dropout=) ({backend})": lambda: keras_mha_probe(dtypes)
    }
