"""Give files written through a temporary file the mode a plain ``open()`` would.

``tempfile.mkstemp`` creates its file with mode 0600 whatever the umask, so a
file renamed into place from it would be owner-only; :func:`apply_default_mode`
sets the usual ``0o666 & ~umask`` instead.
"""

from __future__ import annotations

import functools
import os
import threading

_lock = threading.Lock()


@functools.cache
def current_umask() -> int:
    """Return the process umask, read once.

    Linux reports it in ``/proc/self/status``, which changes nothing. Elsewhere
    the only way is to set it and set it back, done once under a lock so that
    no other thread of ours creates a file in between.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _lock:
        old = os.umask(0o022)
        os.umask(old)
    return old


def apply_default_mode(path: str | os.PathLike[str]) -> None:
    """Set ``path``'s mode to ``0o666 & ~umask``, the mode ``open(path, "w")`` creates."""
    os.chmod(path, 0o666 & ~current_umask())
