"""Minibatches for SGD (SPEC T1, T2)."""

from __future__ import annotations

import numbers
from collections.abc import Iterator

import numpy as np


def minibatches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool,
    rng: np.random.Generator | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(images, labels)`` batches that cover every sample exactly once.

    Batches are consecutive slices of length ``batch_size`` (the last one may be
    shorter), taken in storage order or, with ``shuffle=True``, in the order of one
    permutation drawn from ``rng`` per call (that is, per epoch), like d2l's
    ``DataLoader(shuffle=True)``.

    Parameters
    ----------
    images : numpy.ndarray
        Samples along the first axis.
    labels : numpy.ndarray
        One label per sample, same first-axis length as ``images``.
    batch_size : int
        Positive number of samples per batch.
    shuffle : bool
        Whether to visit the samples in random order.
    rng : numpy.random.Generator, optional
        Source of the permutation; when None and ``shuffle`` is true, a fresh
        unseeded generator is used (not reproducible).

    Yields
    ------
    tuple of numpy.ndarray
        ``(image_batch, label_batch)``; views when not shuffled, copies otherwise.

    Raises
    ------
    TypeError
        When ``batch_size`` is not an integer, ``shuffle`` not a bool or ``rng`` not a
        ``numpy.random.Generator``.
    ValueError
        When ``batch_size`` is not positive or images and labels differ in length.

    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(
            f"batch_size must be a positive int, got {batch_size!r} "
            f"(type {type(batch_size).__name__})"
        )
    if batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle must be a bool, got {shuffle!r}")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(
            "rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(0)) or None, "
            f"got {type(rng).__name__}"
        )
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim == 0 or labels.ndim == 0 or len(images) != len(labels):
        raise ValueError(
            f"images and labels must have the same number of samples along axis 0, got "
            f"shapes {images.shape} and {labels.shape}"
        )
    # Not a generator itself, so that bad arguments fail at the call, not at first next().
    return _batches(images, labels, int(batch_size), bool(shuffle), rng)


def _batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    shuffle: bool,
    rng: np.random.Generator | None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    count = len(images)
    if shuffle:
        order = (rng if rng is not None else np.random.default_rng()).permutation(count)
        for start in range(0, count, batch_size):
            index = order[start : start + batch_size]
            yield images[index], labels[index]
    else:
        for start in range(0, count, batch_size):
            yield images[start : start + batch_size], labels[start : start + batch_size]
