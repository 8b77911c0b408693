"""The offline data set: scikit-learn's bundled handwritten digits (SPEC T2).

``sklearn.datasets.load_digits`` ships with scikit-learn (no download): 1797 images of
8x8 pixels with integer values 0..16, ten classes. Pixels are divided by 16 into [0, 1].

Split: stratified, 20 % of each class to the test set. For each class (in label order)
its sample indices are permuted with ``numpy.random.default_rng(SPLIT_SEED)`` (one
generator shared by all classes) and the first ``round(0.2 * count)`` go to the test
set. Both sets keep the original sample order. The split depends only on numpy's PCG64
stream, not on scikit-learn's splitting code, so it is the same on every machine.
"""

from __future__ import annotations

import numpy as np

from dropout_ref.course.data.errors import DataError

#: Seed of the train/test split.
SPLIT_SEED = 0

#: Fraction of each class that goes to the test set.
TEST_FRACTION = 0.2

#: Largest pixel value in the scikit-learn digits.
MAX_PIXEL = 16.0


def stratified_split(
    labels: np.ndarray, test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Return sorted (train, test) index arrays, ``test_fraction`` of every class in test.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer class of every sample, shape (N,).
    test_fraction : float, optional
        Share of each class put into the test set, rounded per class.
    seed : int, optional
        Seed of the permutation.

    Returns
    -------
    tuple of numpy.ndarray
        ``(train_indices, test_indices)``, int64, ascending, disjoint, covering 0..N-1.

    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    rng = np.random.default_rng(seed)
    test: list[np.ndarray] = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        test.append(members[: round(test_fraction * members.size)])
    test_indices = np.sort(np.concatenate(test)).astype(np.int64)
    train_indices = np.setdiff1d(np.arange(labels.size, dtype=np.int64), test_indices)
    return train_indices, test_indices


def load_digits_arrays() -> dict[str, np.ndarray]:
    """Load and split the digits.

    Returns
    -------
    dict of str to numpy.ndarray
        ``train_images``/``test_images`` float32 of shape (n, 64) in [0, 1] and
        ``train_labels``/``test_labels`` int64.

    Raises
    ------
    DataError
        When scikit-learn is not installed.

    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DataError(
            "the offline data set 'digits' comes with scikit-learn, which is not installed; "
            "run: pip install scikit-learn"
        ) from exc
    bunch = load_digits()
    images = (np.asarray(bunch.data, dtype=np.float64) / MAX_PIXEL).astype(np.float32)
    labels = np.asarray(bunch.target, dtype=np.int64)
    train, test = stratified_split(labels)
    return {
        "train_images": np.ascontiguousarray(images[train]),
        "train_labels": labels[train],
        "test_images": np.ascontiguousarray(images[test]),
        "test_labels": labels[test],
    }
