"""Compare two models' dropout site tables, site by site (SPEC P8).

Inside ``portable_masks(seed)`` the j-th training-mode dropout of a model draws the
mask of offset ``j * 2**40`` on its tensor's shape, rate and noise shape (P8, D12).
Two ports therefore drop the same units exactly when their site tables agree on
the number of sites and, site by site, on the shape, the rate and the noise shape.
The door a site came through (``Site.source``) is not compared: the same dropout
is ``torch.nn.functional.dropout`` in one framework and ``keras.layers.Dropout``
in another, and both draw the same P8 mask.

Equality rules
--------------
shape
    Equal dimension by dimension; an unknown dimension (``None``, a symbolic
    size) matches any.
rate
    Equal as float32 values: a framework that holds its rate as a float32 (Keras
    does) records ``float(numpy.float32(0.1))``, the same rate as torch's ``0.1``
    for every mask threshold drawn from it. A symbolic rate (recorded as NaN) is
    unknown and matches any.
noise shape
    Compared after normalising ``None`` (element-wise) to the full shape and a
    ``None`` entry to that dimension of the shape, so Keras' explicit
    ``noise_shape=(N, T, C)`` equals torch's element-wise dropout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dropout_ref.core.sites import Site

__all__ = ["SiteDifference", "first_site_difference", "normalised_noise_shape", "site_row"]

#: The ways two site tables can differ, in the order they are checked at a site.
DIFFERENCE_KINDS = ("count", "shape", "rate", "noise_shape")


def normalised_noise_shape(site: Site) -> tuple[int | None, ...]:
    """Return the site's noise shape with ``None`` (element-wise) and ``None`` entries filled.

    ``None`` means the full shape; a ``None`` entry takes that dimension of the shape.
    """
    if site.noise_shape is None:
        return tuple(site.shape)
    if len(site.noise_shape) != len(site.shape):
        return tuple(site.noise_shape)
    return tuple(s if n is None else n for n, s in zip(site.noise_shape, site.shape, strict=True))


def _dims_match(a: Sequence[int | None], b: Sequence[int | None]) -> bool:
    if len(a) != len(b):
        return False
    return all(x is None or y is None or x == y for x, y in zip(a, b, strict=True))


def _rates_match(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return True  # a symbolic rate: unknown, not a difference
    return bool(np.float32(a) == np.float32(b))


def _format(dims: Sequence[int | None] | None) -> str:
    if dims is None:
        return "-"
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


def site_row(site: Site | None) -> dict[str, object]:
    """Return a site as a JSON-ready row: j, door, shape, rate, noise_shape (``None`` if absent)."""
    if site is None:
        return {"j": None, "door": None, "shape": None, "rate": None, "noise_shape": None}
    return {
        "j": site.j,
        "door": site.source,
        "shape": list(site.shape),
        "rate": None if math.isnan(site.rate) else site.rate,
        "noise_shape": None if site.noise_shape is None else list(site.noise_shape),
    }


@dataclass(frozen=True)
class SiteDifference:
    """The first site at which two site tables differ, and how.

    Attributes
    ----------
    j : int
        The site's number (the first that differs, or the first site one model lacks).
    kinds : tuple of str
        Which of :data:`DIFFERENCE_KINDS` differ: ``"count"`` whenever the tables
        have different lengths, plus what differs at site ``j`` itself.
    message : str
        One line naming the site, the kinds and both values.

    """

    j: int
    kinds: tuple[str, ...]
    message: str


def first_site_difference(
    sites_a: Sequence[Site], sites_b: Sequence[Site], labels: tuple[str, str] = ("A", "B")
) -> SiteDifference | None:
    """Return the first site where two site tables differ (SPEC P8), ``None`` if they agree.

    Parameters
    ----------
    sites_a, sites_b : sequence of Site
        ``ctx.sites`` of each model's step.
    labels : tuple of str
        How the message calls the two models.

    Returns
    -------
    SiteDifference or None

    """
    la, lb = labels
    count_differs = len(sites_a) != len(sites_b)
    count_text = f"{la} has {len(sites_a)} sites, {lb} has {len(sites_b)}"
    for j, (a, b) in enumerate(zip(sites_a, sites_b, strict=False)):
        kinds, parts = [], []
        if not _dims_match(a.shape, b.shape):
            kinds.append("shape")
            parts.append(f"shape {_format(a.shape)} vs {_format(b.shape)}")
        if not _rates_match(a.rate, b.rate):
            kinds.append("rate")
            parts.append(f"rate {a.rate:g} vs {b.rate:g}")
        if "shape" not in kinds and not _dims_match(
            normalised_noise_shape(a), normalised_noise_shape(b)
        ):
            kinds.append("noise_shape")
            parts.append(
                f"noise shape {_format(a.noise_shape)} vs {_format(b.noise_shape)} "
                "(- = element-wise)"
            )
        if kinds:
            if count_differs:
                kinds.insert(0, "count")
                parts.append(count_text)
            return SiteDifference(
                j, tuple(kinds),
                f"site {j} ({la} {a.source}, {lb} {b.source}): " + "; ".join(parts),
            )
    if count_differs:
        j = min(len(sites_a), len(sites_b))
        extra = (sites_a if len(sites_a) > len(sites_b) else sites_b)[j]
        owner = la if len(sites_a) > len(sites_b) else lb
        return SiteDifference(
            j, ("count",),
            f"site {j}: count: {count_text}; {owner}'s site {j} is {extra.source} on "
            f"{_format(extra.shape)} at rate {extra.rate:g}",
        )
    return None
