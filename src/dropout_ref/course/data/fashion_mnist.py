"""Fashion-MNIST from Zalando's official IDX files (SPEC T2, E3).

Files, download location and MD5 checksums are those published in the "Get the Data"
table of https://github.com/zalandoresearch/fashion-mnist (README.md). The checksums are
of the ``.gz`` files.

Where the files come from, in order:

1. ``data_dir=`` (the ``--data-dir`` option): a local directory holding the four files,
   each either gzip-compressed (``train-images-idx3-ubyte.gz``, checked against the
   published MD5) or already uncompressed (``train-images-idx3-ubyte``; the MD5 of the
   ``.gz`` cannot be checked, so the IDX header, element type, shape and label range are
   checked instead). Nothing is downloaded or written there.
2. The cache, ``<cache>/fashion-mnist/``, where ``<cache>`` is ``cache_dir=``, else
   ``$DROPOUT_REF_CACHE``, else ``platformdirs.user_cache_dir("dropout-ref")``. A cached
   file is re-hashed on every load.
3. A download (``download=True``) from :data:`MIRRORS`, verified before it enters the
   cache (see :mod:`dropout_ref.course.data.download`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dropout_ref.course.data.download import download_verified, md5_of_file, resolve_cache_dir
from dropout_ref.course.data.errors import ChecksumError, DataError, DataFormatError, DownloadError
from dropout_ref.course.data.idx import read_idx

#: Official location (Zalando's README), then the copy in Zalando's own GitHub repository.
MIRRORS: tuple[str, ...] = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)

#: Label names, index = label (Zalando's README, "Labels").
CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@dataclass(frozen=True)
class IDXFileSpec:
    """One published file: its name, the MD5 of the ``.gz`` and the array it holds.

    Attributes
    ----------
    filename : str
        Name of the gzip file, e.g. ``"train-images-idx3-ubyte.gz"``.
    md5 : str
        Published hex MD5 of the gzip file.
    shape : tuple of int
        Shape of the uint8 array stored in it.

    """

    filename: str
    md5: str
    shape: tuple[int, ...]

    @property
    def raw_name(self) -> str:
        """Name of the uncompressed file (``filename`` without ``.gz``)."""
        return self.filename.removesuffix(".gz")


#: The four files by role, as published. Tests substitute their own small table.
FILES: dict[str, IDXFileSpec] = {
    "train_images": IDXFileSpec(
        "train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", (60000, 28, 28)
    ),
    "train_labels": IDXFileSpec(
        "train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe", (60000,)
    ),
    "test_images": IDXFileSpec(
        "t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79", (10000, 28, 28)
    ),
    "test_labels": IDXFileSpec(
        "t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310", (10000,)
    ),
}

_ROLES = ("train_images", "train_labels", "test_images", "test_labels")


def ways_out(files: Mapping[str, IDXFileSpec], mirrors: Sequence[str]) -> str:
    """Return the two ways to go on without a download, as printed in every error."""
    names = ", ".join(files[role].filename for role in _ROLES)
    where = mirrors[0] if mirrors else "the Fashion-MNIST README"
    return (
        "Two ways out:\n"
        f"  1. get the four files ({names}) from {where} on a machine with network, put "
        "them into a directory DIR and pass --data-dir DIR (load_dataset(data_dir=DIR));\n"
        "  2. train on the offline data set instead: --dataset digits "
        '(load_dataset("digits")), which needs no download.'
    )


def _check_array(array: np.ndarray, spec: IDXFileSpec, path: Path, num_classes: int) -> None:
    """Check element type, shape and (for labels) range of one parsed file."""
    if array.dtype != np.uint8:
        raise DataFormatError(
            f"{str(path)!r} holds {array.dtype} elements, expected uint8 for {spec.filename}; "
            "the file is not the published one; delete it and download it again"
        )
    if array.shape != spec.shape:
        raise DataFormatError(
            f"{str(path)!r} holds an array of shape {array.shape}, expected {spec.shape} for "
            f"{spec.filename}; delete it and download it again"
        )
    if array.ndim == 1 and array.size and int(array.max()) >= num_classes:
        raise DataFormatError(
            f"{str(path)!r} holds label {int(array.max())}, outside 0..{num_classes - 1}; "
            "delete it and download it again"
        )


def _verify_md5(path: Path, spec: IDXFileSpec, advice: str) -> None:
    actual = md5_of_file(path)
    if actual != spec.md5:
        raise ChecksumError(
            f"checksum mismatch for {str(path)!r}: expected MD5 {spec.md5}, got {actual}. "
            f"The file is corrupt, truncated or not the published {spec.filename}; {advice}",
            path=str(path),
            expected=spec.md5,
            actual=actual,
        )


def _find_local(
    data_dir: Path, files: Mapping[str, IDXFileSpec], mirrors: Sequence[str]
) -> dict[str, Path]:
    """Locate the four files in ``data_dir``, gz preferred; verify the gz ones by MD5."""
    if not data_dir.is_dir():
        raise DataError(
            f"data directory {str(data_dir)!r} does not exist or is not a directory.\n"
            + ways_out(files, mirrors)
        )
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role in _ROLES:
        spec = files[role]
        gz, raw = data_dir / spec.filename, data_dir / spec.raw_name
        if gz.is_file():
            _verify_md5(gz, spec, f"replace it with a fresh copy from {mirrors[0]}")
            found[role] = gz
        elif raw.is_file():
            found[role] = raw  # No published MD5 for it: structure is checked on parsing.
        else:
            missing.append(f"{spec.filename} (or {spec.raw_name})")
    if missing:
        raise DataError(
            f"data directory {str(data_dir)!r} lacks: {', '.join(missing)}.\n"
            + ways_out(files, mirrors)
        )
    return found


def _ensure_cached(
    cache: Path,
    files: Mapping[str, IDXFileSpec],
    mirrors: Sequence[str],
    download: bool,
) -> dict[str, Path]:
    """Return the verified cached files, downloading those missing or damaged."""
    found: dict[str, Path] = {}
    for role in _ROLES:
        spec = files[role]
        path = cache / spec.filename
        if path.is_file() and md5_of_file(path) == spec.md5:
            found[role] = path
            continue
        if not download:
            state = "is damaged (wrong MD5)" if path.is_file() else "is not in the cache"
            raise DataError(
                f"{spec.filename} {state} ({str(path)!r}) and download=False; allow the "
                "download or delete the damaged file.\n" + ways_out(files, mirrors)
            )
        urls = [mirror.rstrip("/") + "/" + spec.filename for mirror in mirrors]
        try:
            found[role] = download_verified(urls, path, spec.md5)
        except ChecksumError as exc:
            raise ChecksumError(
                f"{exc}\nTry again later, or:\n{ways_out(files, mirrors)}",
                path=exc.path,
                expected=exc.expected,
                actual=exc.actual,
            ) from None
        except DownloadError as exc:
            raise DownloadError(
                f"Fashion-MNIST download failed (no network?): {exc}\n"
                + ways_out(files, mirrors)
            ) from None
    return found


def load_fashion_mnist_arrays(
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    cache_dir: str | os.PathLike | None = None,
    files: Mapping[str, IDXFileSpec] | None = None,
    mirrors: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Load the four Fashion-MNIST arrays as stored (uint8 images, uint8 labels).

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Local directory with the four files; when given, nothing is downloaded.
    download : bool, optional
        Whether missing or damaged cache files may be downloaded.
    cache_dir : str or os.PathLike, optional
        Cache root; defaults to ``$DROPOUT_REF_CACHE`` or the platform's user cache.
    files : mapping, optional
        Role -> :class:`IDXFileSpec`; defaults to :data:`FILES` (tests pass small files).
    mirrors : sequence of str, optional
        Base URLs; defaults to :data:`MIRRORS`.

    Returns
    -------
    dict of str to numpy.ndarray
        Keys ``train_images``, ``train_labels``, ``test_images``, ``test_labels``.

    Raises
    ------
    DataError
        (or its subclasses) when files are missing, damaged or cannot be downloaded;
        the message names the file and the ways out.

    """
    files = FILES if files is None else files
    mirrors = MIRRORS if mirrors is None else tuple(mirrors)
    if data_dir is not None:
        paths = _find_local(Path(data_dir).expanduser(), files, mirrors)
    else:
        cache = resolve_cache_dir(cache_dir) / "fashion-mnist"
        paths = _ensure_cached(cache, files, mirrors, download)
    arrays = {}
    for role in _ROLES:
        array = read_idx(paths[role])
        _check_array(array, files[role], paths[role], len(CLASS_NAMES))
        arrays[role] = array
    return arrays
