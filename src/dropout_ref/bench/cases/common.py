"""What an adapter hands the benchmark: named callables, no framework types."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Case names the report knows how to compare; adapters may add others.
OURS = "ours"
OURS_PORTABLE = "ours_portable"
OURS_PORTABLE_FUSED = "ours_portable_fused"
NATIVE = "native"
BASELINE = "baseline"
MLP_OURS = "mlp_epoch_ours"
MLP_NATIVE = "mlp_epoch_native"
#: Forward + backward (``out.backward(G)``) of the default mode, the portable mode, the native op.
OURS_FWD_BWD = "ours_fwd_bwd"
OURS_PORTABLE_FWD_BWD = "ours_portable_fwd_bwd"
NATIVE_FWD_BWD = "native_fwd_bwd"
#: Eager (not compiled) calls where a backend's other cases are compiled (JAX): the portable
#: mode and the framework's own generator's dropout.
OURS_PORTABLE_EAGER = "ours_portable_eager"
NATIVE_EAGER = "native_eager"

#: Prefix of the one line a worker prints with its JSON result.
RESULT_PREFIX = "RESULT "


def no_sync(result: Any) -> None:
    """Do nothing: the framework has finished when the call returns."""


@dataclass
class BenchCase:
    """One timed callable.

    Attributes
    ----------
    name : str
        Case name, e.g. :data:`OURS` or :data:`NATIVE`.
    run : callable
        Called with no arguments; returns the result to wait for.
    sync : callable
        Waits until ``run``'s result is computed (asynchronous frameworks).
    output_bytes : int
        Bytes of the result, subtracted when reporting extra memory.
    compiled : bool
        Whether the first call compiles; its excess over the steady time is
        reported as compile cost.
    skip : str or None
        Why the case is not run at this size (e.g. it would take minutes).
    note : str
        Shown in the report, e.g. what "native" means in this framework.
    timer : callable or None
        ``timer(case) -> ms`` replacing the wall clock, e.g. CUDA events on a GPU.
    extra : dict
        Measurements the adapter made itself (e.g. bytes saved for backward per
        element), copied into the case's report row.
    """

    name: str
    run: Callable[[], Any]
    sync: Callable[[Any], None] = no_sync
    output_bytes: int = 0
    compiled: bool = False
    skip: str | None = None
    note: str = ""
    timer: Callable[[BenchCase], float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class CaseSet:
    """The cases of one (size, dtype) point, plus what the report should say about it."""

    cases: list[BenchCase]
    notes: dict[str, str] = field(default_factory=dict)
