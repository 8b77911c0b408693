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

#: The kit's view of DropPath (SPEC V1, mode "row"): one decision per sample of an (N, ...) X;
#: the worker checks our own ``drop_path`` row with it too.
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


_KCV_COMMON = {
    "D1": "rates -0.1, 1.5, nan and True are accepted (True gives NaN everywhere: "
    "x / (1 - rate) * mask); '0.5' and None raise errors without the value",
    "D2": "the layer casts X to its dtype policy: float16 X comes back as float32 at rate 0",
    "D3": "rate=1 divides X by 1 - rate = 0 before masking: NaN everywhere (and float32 for "
    "16-bit X)",
    "D6": "dropped samples are (X / (1 - p)) * 0: NaN where X is NaN/inf, -0.0 where X is "
    "negative",
    "D7": "output dtype is the layer's policy (float32), not X's",
    "D8": "at rate 1 the gradient is NaN (0 * 1/0), not 0",
}
_KCV_D5 = (
    "float64 X is computed in float32 (dtype policy): 0.7292905449867249 where "
    "0.7292905338803755 is expected at p=0.1 (1e8 ulp)"
)


def _kcv_d9(framework: str) -> str:
    return (
        f"SeedGenerator(seed=None) is seeded from Python's random, not {framework}'s "
        "generator: two calls after the same framework seeding differ in about half the "
        "samples; keras.utils.set_random_seed reproduces them"
    )


#: The documented deviations of ``keras_cv.layers.DropPath (<backend>)`` (the kit, seed 0).
KERAS_CV_DEVIATIONS: dict[str, dict[str, str]] = {
    "torch": {**_KCV_COMMON, "D5": _KCV_D5, "D9": _kcv_d9("torch")},
    "tensorflow": {**_KCV_COMMON, "D5": _KCV_D5, "D9": _kcv_d9("TensorFlow")},
    # No float64 without jax_enable_x64: D5's float64 case does not arise.
    "jax": {**_KCV_COMMON, "D9": _kcv_d9("the kit's JAX key stream (JAX has no global)")},
}


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
