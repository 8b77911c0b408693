"""timm's and torchvision's stochastic depth (DropPath) under the native audit (SPEC V1).

Both are torch code: the torch worker audits them where the package imports in its
process (the optional vision environment, ``backends/vision/requirements.txt``).
KerasCV's ``DropPath`` is a Keras 3 layer: each Keras backend's worker audits it where
``keras_cv`` imports (:func:`keras_cv_natives`). Nothing here imports timm, torchvision
or KerasCV until a function is called, and a package that is absent (or does not load
against this torch or Keras) gives no rows.

Each is audited by the kit's structured variant (SPEC D12) with DropPath's noise shape,
one decision per sample: :data:`DROP_PATH_NOISE_SHAPE`, as the kit's own
``dropout_ref.torch.drop_path`` row. torchvision's ``mode="batch"`` (one decision for the
whole call) has no row: the kit's structured variant needs an axis with decisions of its
own (``validate_structure`` refuses an all-ones noise shape), and
``torch.func.vmap(..., randomness="different")`` cannot give each sample its own call
(torchvision draws with ``torch.empty(...).bernoulli_``, an in-place draw on an unbatched
tensor, which vmap refuses). Its door and its equality with ``drop_path(mode="batch")``
inside ``portable_masks`` are tested (``tests/test_drop_family_natives.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: The kit's view of DropPath (mode "row"): one decision per sample of an (N, ...) X.
DROP_PATH_NOISE_SHAPE: tuple[int | None, ...] = (None, 1, 1, 1)

Structured = dict[str, tuple[Callable[[Any, Any], Any], tuple[int | None, ...]]]

#: The rows' names, documented whatever is installed here.
TIMM_NAMES = ("timm.layers.drop_path", "timm.layers.DropPath")
TORCHVISION_NAMES = (
    "torchvision.ops.stochastic_depth(mode='row')",
    "torchvision.ops.StochasticDepth(mode='row')",
)

#: Exceptions of a package that is absent or does not load against this torch
#: (torchvision built for another torch raises RuntimeError at import).
LOAD_ERRORS = (ImportError, RuntimeError, AttributeError, OSError)


def timm_drop_path(X: Any, p: Any) -> Any:
    """``timm.layers.drop_path(X, p, training=True)`` (its ``training`` defaults to False)."""
    from timm.layers import drop_path

    return drop_path(X, p, training=True)


def timm_drop_path_module(X: Any, p: Any) -> Any:
    """``timm.layers.DropPath(p)`` in train mode (a fresh module is in train mode)."""
    from timm.layers import DropPath

    layer = DropPath(p)
    layer.train()
    return layer(X)


def torchvision_stochastic_depth(X: Any, p: Any) -> Any:
    """``torchvision.ops.stochastic_depth(X, p, "row", training=True)``."""
    from torchvision.ops import stochastic_depth

    return stochastic_depth(X, p, "row", training=True)


def torchvision_stochastic_depth_module(X: Any, p: Any) -> Any:
    """``torchvision.ops.StochasticDepth(p, "row")`` in train mode."""
    from torchvision.ops import StochasticDepth

    layer = StochasticDepth(p, "row")
    layer.train()
    return layer(X)


def _loads(package: str) -> bool:
    try:
        __import__(package)
    except LOAD_ERRORS:
        return False
    return True


def stochastic_depth_natives() -> Structured:
    """Return the structured rows of the packages that load here (``{}`` for none).

    Returns
    -------
    dict
        ``name -> (fn(X, p), noise_shape)``: timm's ``drop_path``/``DropPath`` where
        ``timm.layers`` imports, torchvision's ``stochastic_depth``/``StochasticDepth``
        (mode ``"row"``) where ``torchvision.ops`` imports.
    """
    found: Structured = {}
    if _loads("torchvision.ops"):
        found[TORCHVISION_NAMES[0]] = (torchvision_stochastic_depth, DROP_PATH_NOISE_SHAPE)
        found[TORCHVISION_NAMES[1]] = (torchvision_stochastic_depth_module, DROP_PATH_NOISE_SHAPE)
    if _loads("timm.layers"):
        found[TIMM_NAMES[0]] = (timm_drop_path, DROP_PATH_NOISE_SHAPE)
        found[TIMM_NAMES[1]] = (timm_drop_path_module, DROP_PATH_NOISE_SHAPE)
    return found


#: KerasCV's DropPath, one row per Keras backend (documented whatever is installed).
KERAS_CV_DROP_PATH = "keras_cv.layers.DropPath"


def keras_cv_drop_path(X: Any, p: Any) -> Any:
    """``keras_cv.layers.DropPath(p)(X, training=True)``: Keras layers default to inference."""
    from keras_cv.layers import DropPath

    return DropPath(p)(X, training=True)


def keras_cv_natives(backend: str) -> Structured:
    """Return KerasCV's ``DropPath`` as ``"keras_cv.layers.DropPath (<backend>)"`` if it runs here.

    Parameters
    ----------
    backend : str
        Our backend name: the row exists only where Keras runs on it in this process
        and ``keras_cv`` imports.

    Returns
    -------
    dict
        ``name -> (fn(X, p), noise_shape)``, or ``{}``.
    """
    try:
        import keras
    except LOAD_ERRORS:
        return {}
    if keras.backend.backend() != backend or not _loads("keras_cv"):
        return {}
    return {f"{KERAS_CV_DROP_PATH} ({backend})": (keras_cv_drop_path, DROP_PATH_NOISE_SHAPE)}
