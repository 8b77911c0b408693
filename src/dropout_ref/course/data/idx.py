"""Reader for the IDX format of (Fashion-)MNIST, written with numpy only (SPEC T2, E3).

An IDX file is a header followed by a C-ordered array, all big-endian:

* bytes 0-1: zero; byte 2: element type code; byte 3: number of dimensions ``ndim``;
* ``ndim`` unsigned 32-bit sizes;
* ``prod(sizes)`` elements of the given type.

Files may be gzip-compressed; compression is recognised by gzip's magic bytes, not by
the file name, so a renamed file still reads. Every defect (bad magic, unknown type,
truncated or over-long data, broken gzip stream) raises :class:`DataFormatError` naming
the file.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from dropout_ref.course.data.errors import DataFormatError

#: Element type codes of the IDX format and the big-endian numpy dtype each stands for.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.

    Returns
    -------
    numpy.ndarray
        The array, writable, in native byte order, with the shape stored in the header.

    Raises
    ------
    DataFormatError
        When the file cannot be read or is not a well-formed IDX file.

    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataFormatError(f"cannot read IDX file {str(path)!r}: {exc}") from exc
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise DataFormatError(
                f"IDX file {str(path)!r} is a damaged or truncated gzip file ({exc}); "
                "delete it and download it again"
            ) from exc
    return parse_idx(data, source=str(path))


def parse_idx(data: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file.

    Parameters
    ----------
    data : bytes
        The whole file content.
    source : str, optional
        Name of the file, used in error messages.

    Returns
    -------
    numpy.ndarray
        The array, writable, in native byte order.

    Raises
    ------
    DataFormatError
        On a bad magic number, an unknown type code, a header or data section that is
        shorter than announced (truncation), or bytes left over after the data.

    """
    hint = "delete it and download it again"
    if len(data) < 4:
        raise DataFormatError(
            f"IDX file {source!r} is truncated: {len(data)} bytes, shorter than the "
            f"4-byte magic number; {hint}"
        )
    zero, code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or code not in IDX_DTYPES:
        raise DataFormatError(
            f"IDX file {source!r} has a bad magic number 0x{data[:4].hex()} "
            f"(expected 0x0000 then a type code in {sorted(hex(c) for c in IDX_DTYPES)}); "
            f"it is not an IDX file or is corrupt; {hint}"
        )
    if ndim == 0:
        raise DataFormatError(f"IDX file {source!r} declares 0 dimensions; {hint}")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataFormatError(
            f"IDX file {source!r} is truncated inside its header ({len(data)} bytes, "
            f"header needs {header_size}); {hint}"
        )
    shape = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    dtype = IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    found = len(data) - header_size
    if found < expected:
        raise DataFormatError(
            f"IDX file {source!r} is truncated: shape {shape} needs {expected} data bytes, "
            f"found {found}; {hint}"
        )
    if found > expected:
        raise DataFormatError(
            f"IDX file {source!r} has {found - expected} unexpected bytes after its data "
            f"(shape {shape}); it is corrupt; {hint}"
        )
    array = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=header_size)
    return array.reshape(shape).astype(dtype.newbyteorder("="))
