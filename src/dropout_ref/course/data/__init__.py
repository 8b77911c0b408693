"""Data for training the course MLP (SPEC T2, E3); numpy only, no framework.

>>> from dropout_ref.course.data import load_dataset, minibatches
>>> data = load_dataset("digits")
>>> data.num_inputs, data.num_classes
(64, 10)
"""

from dropout_ref.course.data.batches import minibatches
from dropout_ref.course.data.datasets import DATASETS, Dataset, load_dataset
from dropout_ref.course.data.errors import ChecksumError, DataError, DataFormatError, DownloadError

__all__ = [
    "DATASETS",
    "ChecksumError",
    "DataError",
    "DataFormatError",
    "Dataset",
    "DownloadError",
    "load_dataset",
    "minibatches",
]
