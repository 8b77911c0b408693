"""Checksums, the cache directory and atomic, verified downloads (SPEC T2, E3).

A download goes to a uniquely named temporary file *inside* the destination
directory, is hashed while it streams, and is moved into place with
:func:`os.replace` only when its MD5 matches. Whatever goes wrong (no network, HTTP
error, timeout, truncated transfer, wrong checksum, Ctrl-C) the temporary file is
removed, so the cache never holds a half-written or unverified file.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import socket
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import platformdirs

from dropout_ref.course.data.errors import ChecksumError, DataError, DownloadError
from dropout_ref.course.file_modes import apply_default_mode

#: Environment variable that moves the cache (``cache_dir=`` still wins over it).
CACHE_ENV = "DROPOUT_REF_CACHE"

#: Seconds a connection may stay silent before the download is abandoned.
DOWNLOAD_TIMEOUT_S = 30.0

_CHUNK = 1 << 20
_log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """Return the cache root: ``$DROPOUT_REF_CACHE`` or ``platformdirs.user_cache_dir``.

    Returns
    -------
    pathlib.Path
        The directory (not created here).

    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("dropout-ref"))


def resolve_cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    """Return ``cache_dir`` as a path, or :func:`default_cache_dir` when it is None."""
    return default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()


def md5_of_file(path: str | os.PathLike) -> str:
    """Return the hex MD5 of a file, read in chunks.

    Raises
    ------
    DataError
        When the file cannot be read.

    """
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
    except OSError as exc:
        raise DataError(f"cannot read {str(path)!r}: {exc}") from exc
    return digest.hexdigest()


def _describe_failure(exc: BaseException) -> str:
    """One line saying why a transfer failed (HTTP status, DNS, refused, timeout...)."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        if isinstance(exc.reason, socket.gaierror):
            return f"cannot resolve the host name (no network or DNS?): {exc.reason}"
        return f"{type(exc.reason).__name__}: {exc.reason}"
    if isinstance(exc, TimeoutError):
        return f"no answer within {DOWNLOAD_TIMEOUT_S:g} s (timeout)"
    return f"{type(exc).__name__}: {exc}"


def _fetch_to(url: str, temp: Path, timeout: float) -> tuple[str, int, int | None]:
    """Stream ``url`` into ``temp``; return (hex MD5, bytes received, bytes announced).

    A connection that closes before ``Content-Length`` bytes arrived is not an error
    here: the short file then fails the checksum, which is how it is reported (E3).
    """
    digest = hashlib.md5(usedforsecurity=False)
    received = 0
    with urllib.request.urlopen(url, timeout=timeout) as response, open(temp, "wb") as out:
        length = response.headers.get("Content-Length", "")
        announced = int(length) if length.isdigit() else None
        try:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
                received += len(chunk)
        except http.client.IncompleteRead as exc:
            digest.update(exc.partial)
            received += len(exc.partial)
    return digest.hexdigest(), received, announced


def download_verified(
    urls: Sequence[str],
    dest: str | os.PathLike,
    md5: str,
    *,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """Download one file from the first mirror that delivers it with the right MD5.

    Each mirror is tried once, in order; there are no retries.

    Parameters
    ----------
    urls : sequence of str
        Full URLs of the same file on each mirror.
    dest : str or os.PathLike
        Final path; its directory is created if needed.
    md5 : str
        Expected hex MD5 of the file.
    timeout : float, optional
        Socket timeout in seconds for each mirror.

    Returns
    -------
    pathlib.Path
        ``dest``, now holding the verified file.

    Raises
    ------
    ChecksumError
        When a mirror delivered the file but no mirror delivered the right bytes: the
        message names the file, the expected and the received checksum (SPEC E3).
    DownloadError
        When no mirror could be reached or none answered with the file.
    DataError
        When the destination directory cannot be created or written.

    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create the cache directory {str(dest.parent)!r}: {exc}; choose another "
            f"with cache_dir= or the environment variable {CACHE_ENV}"
        ) from exc
    failures: list[str] = []
    bad_checksum: tuple[str, str] | None = None
    for url in urls:
        _log.info("downloading %s to %s", url, dest)
        try:
            handle, temp_name = tempfile.mkstemp(
                prefix=f".{dest.name}.", suffix=".part", dir=dest.parent
            )
        except OSError as exc:
            raise DataError(
                f"cannot write into the cache directory {str(dest.parent)!r}: {exc}; choose "
                f"another with cache_dir= or the environment variable {CACHE_ENV}"
            ) from exc
        os.close(handle)
        temp = Path(temp_name)
        try:
            actual, size, announced = _fetch_to(url, temp, timeout)
            if actual == md5:
                apply_default_mode(temp)
                os.replace(temp, dest)
                return dest
            bad_checksum = (url, actual)
            short = (
                f", truncated: {size} of {announced} bytes"
                if announced is not None and size < announced
                else f", {size} bytes"
            )
            failures.append(f"{url}: got MD5 {actual}{short}; expected MD5 {md5}")
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # OSError covers URLError, HTTPError, refused connections and timeouts.
            failures.append(f"{url}: {_describe_failure(exc)}")
        finally:
            temp.unlink(missing_ok=True)
    tried = "\n".join(f"  - {line}" for line in failures) or "  (no URL given)"
    if bad_checksum is not None:
        url, actual = bad_checksum
        raise ChecksumError(
            f"checksum mismatch for {dest.name!r} downloaded from {url}: expected MD5 {md5}, "
            f"got {actual}. The transfer was corrupt or truncated; nothing was written to "
            f"{str(dest.parent)!r}. Attempts:\n{tried}",
            path=url,
            expected=md5,
            actual=actual,
        )
    raise DownloadError(f"could not download {dest.name!r}. Attempts:\n{tried}")
