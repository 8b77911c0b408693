"""Interleaved wall-clock timing: min and median over repeats."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from dropout_ref.bench.cases.common import BenchCase


@dataclass
class Timing:
    """Timing of one case, in milliseconds."""

    first_call_ms: float
    times_ms: list[float]

    @property
    def min_ms(self) -> float:
        """Fastest repeat: the least disturbed by other processes."""
        return min(self.times_ms)

    @property
    def median_ms(self) -> float:
        """Median repeat."""
        return statistics.median(self.times_ms)


def time_once(case: BenchCase) -> float:
    """Return the time of one call of ``case`` in ms.

    The case's own timer where it has one (CUDA events), else the wall clock
    around the call and its sync.
    """
    if case.timer is not None:
        return case.timer(case)
    start = time.perf_counter()
    case.sync(case.run())
    return (time.perf_counter() - start) * 1e3


def time_interleaved(cases: list[BenchCase], repeats: int) -> dict[str, Timing]:
    """Time every case ``repeats`` times, round-robin, after one untimed first call each.

    Round-robin (rotated each round) puts the cases under the same machine
    load, so their ratios hold even when the absolute times drift.

    Parameters
    ----------
    cases : list of BenchCase
        The cases to time; those with ``skip`` set are left out.
    repeats : int
        Timed calls per case.

    Returns
    -------
    dict
        Case name -> :class:`Timing`.
    """
    active = [case for case in cases if case.skip is None]
    first = {case.name: time_once(case) for case in active}
    times: dict[str, list[float]] = {case.name: [] for case in active}
    for round_index in range(repeats):
        shift = round_index % max(len(active), 1)
        for case in active[shift:] + active[:shift]:
            times[case.name].append(time_once(case))
    return {name: Timing(first[name], times[name]) for name in times}
