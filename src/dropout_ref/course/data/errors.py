"""Exceptions of the data layer (SPEC T2, E3).

Every message names the file (or directory) concerned and says what to do
next, so that a user never has to read a traceback to recover.
"""

from __future__ import annotations


class DataError(Exception):
    """Data set files are missing, unreadable, corrupt or cannot be downloaded."""


class DataFormatError(DataError):
    """A file is not a valid IDX file or does not hold the expected array (truncated, bad magic)."""


class ChecksumError(DataError):
    """A file's MD5 differs from the published checksum (SPEC E3).

    Attributes
    ----------
    path : str
        The file (or URL) whose content was checked.
    expected : str
        The published MD5, hex.
    actual : str
        The MD5 of the bytes received, hex.

    """

    def __init__(self, message: str, *, path: str, expected: str, actual: str) -> None:
        super().__init__(message)
        self.path = path
        self.expected = expected
        self.actual = actual


class DownloadError(DataError):
    """A file could not be downloaded from any mirror (no network, HTTP error, timeout)."""
