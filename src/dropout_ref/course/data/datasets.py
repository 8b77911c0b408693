"""The public entry of the data layer: :func:`load_dataset` and :class:`Dataset` (SPEC T2)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from dropout_ref.course.data import digits, fashion_mnist

#: Names accepted by :func:`load_dataset`; the first is the course's data set.
DATASETS: tuple[str, ...] = ("fashion-mnist", "digits")


@dataclass(frozen=True, eq=False)
class Dataset:
    """A classification data set, split into train and test, ready for an MLP.

    Attributes
    ----------
    name : str
        One of :data:`DATASETS`.
    train_images, test_images : numpy.ndarray
        float32, shape (N, D), values in [0, 1], C-contiguous.
    train_labels, test_labels : numpy.ndarray
        int64, shape (N,), values in ``0 .. num_classes - 1``.
    class_names : tuple of str
        Name of each label.

    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            images = getattr(self, f"{split}_images")
            labels = getattr(self, f"{split}_labels")
            if images.dtype != np.float32 or images.ndim != 2 or not images.flags.c_contiguous:
                raise ValueError(
                    f"{split}_images must be a C-contiguous float32 array of shape (N, D), got "
                    f"{images.dtype} of shape {images.shape}"
                )
            if images.shape[0] < 1:
                raise ValueError(f"the {split} split must hold at least one sample, got 0")
            if labels.dtype != np.int64 or labels.shape != images.shape[:1]:
                raise ValueError(
                    f"{split}_labels must be int64 of shape {images.shape[:1]}, got "
                    f"{labels.dtype} of shape {labels.shape}"
                )
        if self.train_images.shape[1] != self.test_images.shape[1]:
            raise ValueError(
                f"train and test images differ in width: {self.train_images.shape[1]} and "
                f"{self.test_images.shape[1]}"
            )

    @property
    def num_inputs(self) -> int:
        """Number of input features D (784 for fashion-mnist, 64 for digits)."""
        return int(self.train_images.shape[1])

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)


def load_dataset(
    name: str = "fashion-mnist",
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> Dataset:
    """Load a data set by name.

    Parameters
    ----------
    name : {"fashion-mnist", "digits"}
        ``"fashion-mnist"``: the official IDX files, checksum-verified, cached, downloaded
        when missing (see :mod:`dropout_ref.course.data.fashion_mnist`); pixels / 255 like d2l's
        ``ToTensor``. ``"digits"``: scikit-learn's bundled 8x8 digits, offline, pixels / 16,
        fixed stratified 80/20 split (see :mod:`dropout_ref.course.data.digits`).
    data_dir : str or os.PathLike, optional
        fashion-mnist only: local directory with the four files (nothing is downloaded).
    download : bool, optional
        fashion-mnist only: whether missing cache files may be downloaded.
    cache_dir : str or os.PathLike, optional
        fashion-mnist only: cache root, overriding ``$DROPOUT_REF_CACHE`` and the
        platform's user cache directory.

    Returns
    -------
    Dataset
        Images flattened to (N, D) float32 in [0, 1], labels int64.

    Raises
    ------
    ValueError
        For an unknown ``name``, or ``data_dir`` given with ``"digits"``.
    DataError
        When the files are missing, damaged or cannot be downloaded; the message names
        the file and says what to do (``--data-dir DIR`` or ``--dataset digits``).

    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known data sets: {', '.join(DATASETS)}")
    if name == "digits":
        if data_dir is not None:
            raise ValueError(
                f"data_dir={str(data_dir)!r} applies to fashion-mnist only; the digits data "
                "set ships with scikit-learn"
            )
        arrays = digits.load_digits_arrays()
        class_names = tuple(str(digit) for digit in range(10))
    else:
        raw = fashion_mnist.load_fashion_mnist_arrays(
            data_dir=data_dir, download=download, cache_dir=cache_dir
        )
        arrays = {}
        for split in ("train", "test"):
            images = raw[f"{split}_images"]
            # float32 division by 255, the same arithmetic as torchvision's ToTensor.
            arrays[f"{split}_images"] = images.reshape(len(images), -1).astype(
                np.float32
            ) / np.float32(255)
            arrays[f"{split}_labels"] = raw[f"{split}_labels"].astype(np.int64)
        class_names = fashion_mnist.CLASS_NAMES
    return Dataset(name=name, class_names=class_names, **arrays)
