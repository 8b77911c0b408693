"""Output paths of the commands that write files: checked before the work starts.

A command calls :func:`prepare_output_dir` (a folder it fills) or
:func:`prepare_output_file` (one file) before it trains or times anything,
and turns :class:`OutputPathError` into one line on stderr and exit status 2
with :func:`fail`: a path that cannot be created never ends a long run in a
traceback, and nothing is half-written.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


class OutputPathError(OSError):
    """An output folder or file cannot be created or written; the message names it."""


def _writable_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        # A part of the path is a file: name it rather than say "File exists".
        blocker = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if blocker is None or blocker.is_dir():
            raise
        raise NotADirectoryError(20, f"{str(blocker)!r} is a file, not a folder") from None
    # mkdir succeeds on an existing read-only folder: only a real file proves it writable.
    with tempfile.TemporaryFile(dir=folder):
        pass


def _error(verb: str, what: str, path: Path, exc: OSError) -> OutputPathError:
    reason = exc.strerror or str(exc) or exc.__class__.__name__
    return OutputPathError(f"cannot {verb} {what} {str(path)!r}: {reason}")


def prepare_output_dir(path: str | os.PathLike[str], what: str = "output folder") -> Path:
    """Create folder ``path`` (with its parents) and check that a file can be written in it.

    Parameters
    ----------
    path : str or os.PathLike
        The folder.
    what : str, optional
        How the message calls it (e.g. ``"output folder"``).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    OutputPathError
        If the folder cannot be created or written, naming ``path`` and the reason.

    """
    folder = Path(path)
    try:
        _writable_folder(folder)
    except OSError as exc:
        raise _error("create", what, folder, exc) from exc
    return folder


def prepare_output_file(path: str | os.PathLike[str], what: str = "output file") -> Path:
    """Check that file ``path`` can be written: its folder is created, ``path`` is no folder.

    Raises
    ------
    OutputPathError
        If it cannot, naming ``path`` and the reason.

    """
    target = Path(path)
    try:
        if target.is_dir():
            raise IsADirectoryError(21, "it is a folder")
        _writable_folder(target.parent)
    except OSError as exc:
        raise _error("write", what, target, exc) from exc
    return target


def fail(command: str, message: object) -> int:
    """Print ``dropout-ref <command>: error: <message>`` on stderr; return exit status 2."""
    print(f"dropout-ref {command}: error: {message}", file=sys.stderr)
    return 2
