"""timm's and torchvision's stochastic depth as sites of ``dropout_ref.torch.portable_masks`` (P8).

Neither goes through a torch function the context's mode sees (both draw with
``bernoulli_`` on a fresh tensor), so these doors are attribute patches, installed
while a context is open (:class:`dropout_ref.core.sites.PatchSet`, as Keras 3's):

- ``timm.layers.drop_path(x, drop_prob, training=False, scale_by_keep=True)``, also
  what ``timm.layers.DropPath`` calls (the module-global ``drop_path`` of
  ``timm.layers.drop``, patched there and where timm re-exports it);
- ``torchvision.ops.stochastic_depth(input, p, mode, training=True)``, also what
  ``torchvision.ops.StochasticDepth`` calls (patched in
  ``torchvision.ops.stochastic_depth`` and as the ``torchvision.ops`` attribute).

A training-mode call, rate 0 included, is a site: our
``dropout_ref.torch.drop_path(x, p, seed=seed, offset=j * 2**40, mode=...)`` (SPEC V1),
mode ``"row"`` (timm, torchvision's ``"row"``) or ``"batch"``. An eval-mode call runs the
package's own function and takes no number. timm's ``scale_by_keep=False`` (kept samples
not rescaled: not inverted dropout) is refused in training. A package is patched only if
it is imported when the context is entered (a model built on it exists only then); code
that bound the function to a name of its own before that (``from timm.layers import
drop_path`` in user code) keeps the original.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch

from dropout_ref.core.doors import Door, refused_door
from dropout_ref.core.drop_family import drop_path_noise_shape
from dropout_ref.core.sites import AttributePatch, SiteCounter, active
from dropout_ref.torch import drop_path as portable_drop_path
from dropout_ref.torch.intercept_layers import compiled_site_error

__all__ = ["STOCHASTIC_DEPTH_DOORS", "stochastic_depth_patches"]

CONTEXT = "dropout_ref.torch.portable_masks"

#: The doors (rows of the torch table; present whether or not the packages are installed).
STOCHASTIC_DEPTH_DOORS: tuple[Door, ...] = (
    Door(
        "timm.layers.drop_path", "site",
        "needs timm imported at entry; and timm.layers.DropPath; training=True (rate 0 too):"
        " drop_path(x, p, mode='row'), noise (N, 1, ...); scale_by_keep=False refused",
    ),
    Door(
        "torchvision.ops.stochastic_depth", "site",
        "needs torchvision imported at entry; and torchvision.ops.StochasticDepth; training=True"
        " (rate 0 too): drop_path(x, p, mode=mode), noise (N, 1, ...) or all ones",
    ),
)


def _site(counter: SiteCounter, x: torch.Tensor, p: Any, mode: str, source: str) -> Any:
    """``drop_path(x, p, seed=seed, offset=<next site>, mode=mode)``, numbered and logged."""
    if torch.compiler.is_compiling():
        raise compiled_site_error(source)

    def run(X: Any, rate: Any, *, seed: Any, offset: Any, noise_shape: Any) -> Any:
        return portable_drop_path(X, rate, seed=seed, offset=offset, mode=mode)

    noise = drop_path_noise_shape(tuple(x.shape), mode)
    return counter.apply(run, x, p, source=source, noise_shape=noise)


def timm_door(original: Callable[..., Any]) -> Callable[..., Any]:
    """Return the context's ``timm.layers.drop_path`` (timm's signature and defaults)."""

    def drop_path(
        x: torch.Tensor, drop_prob: float = 0.0, training: bool = False, scale_by_keep: bool = True
    ) -> torch.Tensor:
        counter = active()
        if counter is None or not training:
            return original(x, drop_prob, training, scale_by_keep)
        if not scale_by_keep:
            raise refused_door(
                "timm.layers.drop_path(scale_by_keep=False)", CONTEXT,
                "its kept samples are not rescaled (not inverted dropout)",
            )
        return _site(counter, x, drop_prob, "row", "timm.layers.drop_path")

    drop_path.__wrapped__ = original  # type: ignore[attr-defined]
    return drop_path


def torchvision_door(original: Callable[..., Any]) -> Callable[..., Any]:
    """Return the context's ``torchvision.ops.stochastic_depth`` (torchvision's signature)."""

    def stochastic_depth(
        input: torch.Tensor, p: float, mode: str, training: bool = True
    ) -> torch.Tensor:
        counter = active()
        if counter is None or not training:
            return original(input, p, mode, training)
        # torchvision's own checks of p and mode, exactly, at no cost: eval mode.
        original(input, p, mode, False)
        return _site(counter, input, p, mode, "torchvision.ops.stochastic_depth")

    stochastic_depth.__wrapped__ = original  # type: ignore[attr-defined]
    return stochastic_depth


def stochastic_depth_patches() -> list[AttributePatch]:
    """Return the patches of the packages imported now (none for a package not imported).

    Returns
    -------
    list of AttributePatch
        ``drop_path`` of ``timm.layers.drop`` and its re-exports (``timm.layers``,
        ``timm.models.layers``); ``stochastic_depth`` of ``torchvision.ops.stochastic_depth``
        and ``torchvision.ops``.
    """
    patches: list[AttributePatch] = []
    drop = sys.modules.get("timm.layers.drop")
    if drop is not None:
        door = timm_door(drop.drop_path)
        for owner in ("timm.layers.drop", "timm.layers", "timm.models.layers"):
            module = sys.modules.get(owner)
            if module is not None and getattr(module, "drop_path", None) is drop.drop_path:
                patches.append(AttributePatch(module, "drop_path", door))
    sd = sys.modules.get("torchvision.ops.stochastic_depth")
    if sd is not None:
        door = torchvision_door(sd.stochastic_depth)
        for owner in ("torchvision.ops.stochastic_depth", "torchvision.ops"):
            module = sys.modules.get(owner)
            if module is not None and getattr(module, "stochastic_depth", None) is (
                sd.stochastic_depth
            ):
                patches.append(AttributePatch(module, "stochastic_depth", door))
    return patches
