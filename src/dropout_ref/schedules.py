"""Dropout rates that change while training runs (SPEC S3).

A schedule maps the iteration number (0, 1, 2, ...) to a drop probability. The
definitions are those of Liu et al. 2023, "Dropout Reduces Underfitting"
(facebookresearch/dropout): *early* dropout drops with rate ``p`` for the
first ``until`` iterations and then stops, *late* dropout starts at ``start``.
A schedule is plain Python (no framework): a training loop feeds its value to
the compiled step as a runtime rate (SPEC S1), so changing it never recompiles.

Examples
--------
>>> from dropout_ref.schedules import early
>>> s = early(0.1, until=3, mode="linear")
>>> [round(s(i), 3) for i in range(5)]
[0.1, 0.05, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: A schedule: iteration number -> drop probability.
Schedule = Callable[[int], float]

EARLY_MODES = ("constant", "linear")


def _rate(p: Any, name: str = "p") -> float:
    """Return ``p`` as a float in [0, 1]; refuse anything else naming ``name`` and the value."""
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, numbers.Real):
        raise TypeError(f"{name} must be a real number in [0, 1], got {p!r} ({type(p).__name__})")
    value = float(p)
    if not 0.0 <= value <= 1.0:  # also false for NaN
        raise ValueError(f"{name} must satisfy 0 <= {name} <= 1, got {p!r}")
    return value


def _count(n: Any, name: str) -> int:
    """Return ``n`` as a non-negative int; refuse anything else naming ``name`` and the value."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{name} must be a non-negative integer, got {n!r} ({type(n).__name__})")
    if int(n) < 0:
        raise ValueError(f"{name} must be >= 0, got {n!r}")
    return int(n)


def _step(step: Any) -> int:
    return _count(step, "step")


@dataclass(frozen=True)
class Constant:
    """``p`` at every iteration."""

    p: float

    def __call__(self, step: int) -> float:
        """Return the rate at iteration ``step``."""
        _step(step)
        return self.p

    def describe(self) -> str:
        """Return the CLI spelling, e.g. ``constant:0.5``."""
        return f"constant:{self.p:g}"


@dataclass(frozen=True)
class Early:
    """``p`` (or ``linspace(p, 0, until)``) for iterations ``[0, until)``, then 0."""

    p: float
    until: int
    mode: str = "constant"

    def __call__(self, step: int) -> float:
        """Return the rate at iteration ``step``."""
        step = _step(step)
        if step >= self.until:
            return 0.0
        if self.mode == "constant":
            return self.p
        # numpy.linspace(p, 0, until)[step], computed as numpy does it, for one element.
        return float(np.linspace(self.p, 0.0, self.until)[step])

    def describe(self) -> str:
        """Return the CLI spelling, e.g. ``early:linear:1000``."""
        return f"early:{self.mode}:{self.until}"


@dataclass(frozen=True)
class Late:
    """0 before iteration ``start``, ``p`` from ``start`` on."""

    p: float
    start: int

    def __call__(self, step: int) -> float:
        """Return the rate at iteration ``step``."""
        return self.p if _step(step) >= self.start else 0.0

    def describe(self) -> str:
        """Return the CLI spelling, e.g. ``late:1000``."""
        return f"late:{self.start}"


def constant(p: float) -> Constant:
    """Return the schedule that is ``p`` at every iteration (ordinary dropout).

    Raises
    ------
    TypeError, ValueError
        If ``p`` is not a real number in ``[0, 1]``.
    """
    return Constant(_rate(p))


def early(p: float, until: int, mode: str = "constant") -> Early:
    """Return early dropout: rate ``p`` before iteration ``until``, 0 from ``until`` on.

    Parameters
    ----------
    p : float
        The rate at iteration 0, in ``[0, 1]``.
    until : int
        First iteration without dropout (>= 0).
    mode : {"constant", "linear"}
        ``"constant"``: ``p`` for every iteration in ``[0, until)``.
        ``"linear"``: ``numpy.linspace(p, 0, until)[step]``, from ``p`` down to 0
        at iteration ``until - 1`` (Liu et al. 2023).

    Raises
    ------
    TypeError, ValueError
        Naming the argument and the value.
    """
    if mode not in EARLY_MODES:
        raise ValueError(f"mode must be one of {EARLY_MODES}, got {mode!r}")
    return Early(_rate(p), _count(until, "until"), mode)


def late(p: float, start: int) -> Late:
    """Return late dropout: 0 before iteration ``start``, ``p`` from ``start`` on.

    Raises
    ------
    TypeError, ValueError
        Naming the argument and the value.
    """
    return Late(_rate(p), _count(start, "start"))


def rate_at(schedule: Schedule | float, step: int, name: str = "schedule") -> float:
    """Return the rate of ``schedule`` at ``step``, checked to lie in ``[0, 1]``.

    A plain number is a constant schedule; any callable ``step -> rate`` is
    accepted, and what it returns is checked like ``p``.
    """
    if not callable(schedule):
        return _rate(schedule, name)
    return _rate(schedule(step), f"{name}({step})")


def as_site_schedules(schedule: Any, sites: tuple[str, ...]) -> dict[str, Schedule | float]:
    """Return one schedule per dropout site of a model.

    Parameters
    ----------
    schedule : schedule, float or mapping
        One schedule (or number) for every site, or a mapping ``site -> schedule``
        that names every site in ``sites`` and nothing else.
    sites : tuple of str
        The model's sites, e.g. ``("dropout1", "dropout2")``.

    Raises
    ------
    TypeError
        If ``schedule`` is neither a number, a callable nor a mapping.
    ValueError
        If a mapping misses a site or names an unknown one.
    """
    if isinstance(schedule, Mapping):
        missing = [s for s in sites if s not in schedule]
        extra = [s for s in schedule if s not in sites]
        if missing or extra:
            raise ValueError(
                f"a schedule per site must name exactly the sites {sites}; "
                f"missing {missing}, unknown {extra}"
            )
        for site, value in schedule.items():
            _check_schedule(value, f"schedule[{site!r}]")
        return {s: schedule[s] for s in sites}
    _check_schedule(schedule, "schedule")
    return {s: schedule for s in sites}


def _check_schedule(value: Any, name: str) -> None:
    if callable(value):
        return
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        _rate(value, name)
        return
    raise TypeError(
        f"{name} must be a callable step -> rate or a number in [0, 1], "
        f"got {value!r} ({type(value).__name__})"
    )


def rates_at(schedules: Mapping[str, Schedule | float], step: int) -> dict[str, float]:
    """Return every site's rate at ``step`` (see :func:`rate_at`)."""
    return {site: rate_at(s, step, f"schedule[{site!r}]") for site, s in schedules.items()}


def parse(text: str, p: float | None = None) -> Schedule:
    """Parse the CLI spelling of a schedule.

    ``constant:P``, ``early:constant:STEPS``, ``early:linear:STEPS``,
    ``late:START``; the early and late kinds take their rate ``p`` from the
    model's own rate (the ``p`` argument), or from an optional last field
    (``early:linear:STEPS:P``).

    Raises
    ------
    ValueError
        Naming the text when it is not one of these forms.
    """
    parts = str(text).split(":")
    usage = (
        "constant:P, early:constant:STEPS[:P], early:linear:STEPS[:P] or late:START[:P]"
    )

    def number(field: str, kind: type) -> Any:
        try:
            return kind(field)
        except ValueError:
            raise ValueError(
                f"--dropout-schedule {text!r}: {field!r} is not a {kind.__name__}; "
                f"expected {usage}"
            ) from None

    def rate(fields: list[str]) -> float:
        if fields:
            return number(fields[0], float)
        if p is None:
            raise ValueError(f"--dropout-schedule {text!r} needs a rate: add ':P'")
        return p

    kind = parts[0]
    if kind == "constant" and len(parts) == 2:
        return constant(number(parts[1], float))
    if kind == "early" and len(parts) in (3, 4) and parts[1] in EARLY_MODES:
        return early(rate(parts[3:]), number(parts[2], int), parts[1])
    if kind == "late" and len(parts) in (2, 3):
        return late(rate(parts[2:]), number(parts[1], int))
    raise ValueError(f"--dropout-schedule {text!r} is not recognised; expected {usage}")


def describe(schedule: Any) -> str:
    """Return a short name of a schedule for reports (its CLI spelling where it has one)."""
    if hasattr(schedule, "describe"):
        return schedule.describe()
    if isinstance(schedule, numbers.Real):
        return f"constant:{float(schedule):g}"
    return getattr(schedule, "__name__", type(schedule).__name__)


__all__ = [
    "Constant",
    "Early",
    "Late",
    "Schedule",
    "as_site_schedules",
    "constant",
    "describe",
    "early",
    "late",
    "parse",
    "rate_at",
    "rates_at",
]
