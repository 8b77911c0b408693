"""Peak memory of one call, from the kernel's high-water mark of this process (Linux).

The method works the same for every framework: reset the process's peak
resident set (``VmHWM``, by writing ``5`` to ``/proc/self/clear_refs``), make
one call, read the new peak and subtract the resident set before the call and
the bytes of the output. glibc is told to serve every allocation above
128 KiB with its own ``mmap`` (``mallopt(M_MMAP_THRESHOLD)``), so freed
temporaries leave the resident set at once and a later allocation cannot
hide in pages the heap kept. Framework allocators that pool memory (MXNet)
may still reuse resident pages and so under-report; the report says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path

from dropout_ref.bench.cases.common import BenchCase

M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024


def _status_kib(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def memory_method_available() -> bool:
    """Whether this process can reset and read its peak resident set."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


def prefer_mmap_for_large_blocks() -> bool:
    """Make glibc ``mmap`` (and on free ``munmap``) every block above 128 KiB."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


def peak_extra_bytes(case: BenchCase) -> int | None:
    """Return the peak bytes one call of ``case`` holds beyond its output, or ``None``.

    Call it after the case has run once (so libraries are loaded) and after
    :func:`prefer_mmap_for_large_blocks`.
    """
    clear = Path("/proc/self/clear_refs")
    try:
        clear.write_text("5")
    except OSError:
        return None
    before = _status_kib("VmRSS")
    result = case.run()
    case.sync(result)
    peak = _status_kib("VmHWM")
    del result
    if before is None or peak is None:
        return None
    return max(0, (peak - before) * 1024 - case.output_bytes)
