"""Dropout rates that change while training runs (SPEC S3, S4).

A schedule maps the iteration number (0, 1, 2, ...) to a drop probability. The
definitions are those of Liu et al. 2023, "Dropout Reduces Underfitting"
(facebookresearch/dropout): *early* dropout drops with rate ``p`` for the
first ``until`` iterations and then stops, *late* dropout starts at ``start``.
A schedule is plain Python (no framework): a training loop feeds its value to
the compiled step as a runtime rate (SPEC S1), so changing it never recompiles.

SPEC S4 adds ``linear``, ``exponential``, ``triangular``, ``v_shaped`` and the
stateful ``on_plateau`` (fed each evaluation's loss through ``.step(loss)``, its
``state_dict()`` saved with the checkpoint, as PyTorch's ``ReduceLROnPlateau``).

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


# -- SPEC S4: adaptive schedules ------------------------------------------------------------


def _real(value: Any, name: str) -> float:
    """Return ``value`` as a finite float; refuse anything else naming ``name`` and the value."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    number = float(value)
    if not np.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


@dataclass(frozen=True)
class Linear:
    """``p0`` before ``start``, ``p1`` from ``end`` on, linear in between (S4)."""

    p0: float
    p1: float
    start: int
    end: int

    def __call__(self, step: int) -> float:
        """Return the rate at iteration ``step``."""
        step = _step(step)
        if step < self.start:
            return self.p0
        if step >= self.end:
            return self.p1
        return self.p0 + (self.p1 - self.p0) * (step - self.start) / (self.end - self.start)

    def describe(self) -> str:
        """Return the CLI spelling, e.g. ``linear:0.1:0:0:1000``."""
        return f"linear:{self.p0:g}:{self.p1:g}:{self.start}:{self.end}"


@dataclass(frozen=True)
class Exponential:
    """``max(floor, p0 * gamma**step)`` (S4)."""

    p0: float
    gamma: float
    floor: float = 0.0

    def __call__(self, step: int) -> float:
        """Return the rate at iteration ``step``."""
        return max(self.floor, self.p0 * self.gamma ** _step(step))

    def describe(self) -> str:
        """Return the CLI spelling, e.g. ``exponential:0.3:0.999:0.05``."""
        return f"exponential:{self.p0:g}:{self.gamma:g}:{self.floor:g}"


@dataclass(frozen=True)
class Triangular:
    """``cycles`` triangles over ``total`` iterations: ``low`` up to ``high`` and down (S4).

    Each cycle lasts ``total / cycles`` iterations, rises linearly from ``low``
    to ``high`` in its first half and falls back in its second (the STLM
    report's cyclic dropout); from ``total`` on the rate stays ``low``.
    """

    low: float
    high: float
    cycles: int
    total: int

    def __call__(self, step: int) -> float:
        """Return the rate at iteration ``step``."""
        step = _step(step)
        if step >= self.total:
            return self.low
        phase = (step * self.cycles / self.total) % 1.0  # position in the cycle, [0, 1)
        return self.low + (self.high - self.low) * (1.0 - abs(2.0 * phase - 1.0))

    def describe(self) -> str:
        """Return the CLI spelling, e.g. ``triangular:0:0.3:4:10000``."""
        return f"triangular:{self.low:g}:{self.high:g}:{self.cycles}:{self.total}"


@dataclass(frozen=True)
class VShaped:
    """DropHead's V (S4): ``p_start`` down to 0 over ``warmup``, up to ``p_end`` at ``total``."""

    p_start: float
    p_end: float
    warmup: int
    total: int

    def __call__(self, step: int) -> float:
        """Return the rate at iteration ``step``."""
        step = _step(step)
        if step < self.warmup:
            return self.p_start * (1.0 - step / self.warmup)
        if step >= self.total:
            return self.p_end
        return self.p_end * (step - self.warmup) / (self.total - self.warmup)

    def describe(self) -> str:
        """Return the CLI spelling, e.g. ``v_shaped:0.2:0.1:1000:10000``."""
        return f"v_shaped:{self.p_start:g}:{self.p_end:g}:{self.warmup}:{self.total}"


PLATEAU_MODES = ("min", "max")


class OnPlateau:
    """A rate changed when the validation loss stops improving (S4), as ``ReduceLROnPlateau``.

    Called with a step number it returns the current rate (the S3 interface);
    :meth:`step` feeds it one evaluation's loss. The rule is PyTorch's
    ``ReduceLROnPlateau`` with ``threshold_mode="rel"`` and no cooldown: an
    evaluation improves when ``loss < best * (1 - threshold)`` (mode ``"min"``)
    or ``loss > best * (1 + threshold)`` (``"max"``); after more than
    ``patience`` evaluations in a row without improvement the rate becomes
    ``rate * factor`` (or ``rate + step``), clipped to ``[min, max]``, and the count
    restarts. Its state (:meth:`state_dict`) is saved with the training checkpoint.
    """

    def __init__(
        self,
        p0: float,
        *,
        factor: float | None = None,
        step: float | None = None,
        patience: int = 10,
        min: float = 0.0,  # the SPEC's names (ReduceLROnPlateau's min_lr)
        max: float = 1.0,
        mode: str = "min",
        threshold: float = 1e-4,
    ) -> None:
        if (factor is None) == (step is None):
            raise ValueError(
                f"on_plateau needs exactly one of factor= or step=, got factor={factor!r}, "
                f"step={step!r}"
            )
        if factor is not None:
            factor = _real(factor, "factor")
            if factor <= 0.0 or factor == 1.0:
                raise ValueError(f"factor must be > 0 and != 1, got {factor!r}")
        if step is not None:
            step = _real(step, "step")
            if step == 0.0:
                raise ValueError("step must be non-zero, got 0.0")
        if not isinstance(mode, str) or mode not in PLATEAU_MODES:
            raise ValueError(f"mode must be one of {PLATEAU_MODES}, got {mode!r}")
        low, high = _rate(min, "min"), _rate(max, "max")
        if low > high:
            raise ValueError(f"min must be <= max, got min={min!r}, max={max!r}")
        rate = _rate(p0, "p0")
        if not low <= rate <= high:
            raise ValueError(f"p0 must lie in [min, max] = [{low:g}, {high:g}], got {p0!r}")
        threshold = _real(threshold, "threshold")
        if threshold < 0.0:
            raise ValueError(f"threshold must be >= 0, got {threshold!r}")
        self.factor, self.change = factor, step
        self.patience = _count(patience, "patience")
        self.min, self.max, self.mode, self.threshold = low, high, mode, threshold
        self.p0 = self.rate = rate
        self.best = float("inf") if mode == "min" else float("-inf")
        self.bad_evaluations = 0
        self.evaluations = 0

    def __call__(self, step: int) -> float:
        """Return the current rate (the same at every iteration until :meth:`step` changes it)."""
        _step(step)
        return self.rate

    def _improves(self, loss: float) -> bool:
        if self.mode == "min":
            return loss < self.best * (1.0 - self.threshold)
        return loss > self.best * (1.0 + self.threshold)

    def step(self, loss: float) -> float:
        """Feed one evaluation's loss; return the rate from now on.

        Raises
        ------
        TypeError, ValueError
            If ``loss`` is not a finite real number (naming it and the value).
        """
        loss = _real(loss, "loss")
        self.evaluations += 1
        if self._improves(loss):
            self.best, self.bad_evaluations = loss, 0
            return self.rate
        self.bad_evaluations += 1
        if self.bad_evaluations > self.patience:
            moved = self.rate * self.factor if self.factor is not None else self.rate + self.change
            self.rate = min(self.max, max(self.min, moved))
            self.bad_evaluations = 0
        return self.rate

    def state_dict(self) -> dict[str, Any]:
        """Return the schedule's state, JSON-serialisable, for a checkpoint."""
        return {
            "rate": self.rate,
            "best": self.best,
            "bad_evaluations": self.bad_evaluations,
            "evaluations": self.evaluations,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state written by :meth:`state_dict`.

        Raises
        ------
        ValueError
            If a key is missing or unknown, or the rate leaves ``[min, max]``.
        """
        keys = {"rate", "best", "bad_evaluations", "evaluations"}
        if set(state) != keys:
            raise ValueError(f"on_plateau state needs the keys {sorted(keys)}, got {sorted(state)}")
        rate = _rate(state["rate"], "state['rate']")
        if not self.min <= rate <= self.max:
            raise ValueError(f"state['rate'] must lie in [{self.min:g}, {self.max:g}], got {rate}")
        self.p0 = self.rate = rate
        self.best = float(state["best"])
        self.bad_evaluations = _count(state["bad_evaluations"], "state['bad_evaluations']")
        self.evaluations = _count(state["evaluations"], "state['evaluations']")

    def describe(self) -> str:
        """Return the CLI spelling, e.g. ``on_plateau:0.3:factor=0.5:patience=2``."""
        change = f"factor={self.factor:g}" if self.factor is not None else f"step={self.change:g}"
        return (
            f"on_plateau:{self.p0:g}:{change}:patience={self.patience}:min={self.min:g}"
            f":max={self.max:g}:mode={self.mode}"
        )

    def __repr__(self) -> str:
        return f"OnPlateau({self.describe()!r}, best={self.best!r})"


def linear(p0: float, p1: float, start: int, end: int) -> Linear:
    """Return ``p0`` before ``start``, ``p1`` from ``end``, linear in between (SPEC S4).

    Raises
    ------
    TypeError, ValueError
        Naming the argument and the value (``end`` must be >= ``start``).
    """
    start, end = _count(start, "start"), _count(end, "end")
    if end < start:
        raise ValueError(f"end must be >= start, got start={start}, end={end}")
    return Linear(_rate(p0, "p0"), _rate(p1, "p1"), start, end)


def exponential(p0: float, gamma: float, floor: float = 0.0) -> Exponential:
    """Return ``max(floor, p0 * gamma**t)`` (SPEC S4); ``0 < gamma <= 1`` keeps it in [0, 1].

    Raises
    ------
    TypeError, ValueError
        Naming the argument and the value.
    """
    gamma = _real(gamma, "gamma")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must satisfy 0 < gamma <= 1, got {gamma!r}")
    return Exponential(_rate(p0, "p0"), gamma, _rate(floor, "floor"))


def triangular(low: float, high: float, cycles: int, total: int) -> Triangular:
    """Return ``cycles`` triangles from ``low`` to ``high`` and back over ``total`` (SPEC S4).

    Raises
    ------
    TypeError, ValueError
        Naming the argument and the value (``cycles`` and ``total`` >= 1).
    """
    cycles, total = _count(cycles, "cycles"), _count(total, "total")
    for name, value in (("cycles", cycles), ("total", total)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    return Triangular(_rate(low, "low"), _rate(high, "high"), cycles, total)


def v_shaped(p_start: float, p_end: float, warmup: int, total: int) -> VShaped:
    """Return DropHead's V (SPEC S4): ``p_start`` to 0 by ``warmup``, ``p_end`` at ``total``.

    Raises
    ------
    TypeError, ValueError
        Naming the argument and the value (``0 < warmup < total``).
    """
    warmup, total = _count(warmup, "warmup"), _count(total, "total")
    if not 0 < warmup < total:
        raise ValueError(f"need 0 < warmup < total, got warmup={warmup}, total={total}")
    return VShaped(_rate(p_start, "p_start"), _rate(p_end, "p_end"), warmup, total)


def on_plateau(p0: float, **options: Any) -> OnPlateau:
    """Return a stateful :class:`OnPlateau` schedule (SPEC S4); options as its constructor."""
    return OnPlateau(p0, **options)


def _stateful(schedules: Any) -> dict[str, Any]:
    """Return the stateful schedules (with ``state_dict``) of a schedule or a per-site dict."""
    items = schedules.items() if isinstance(schedules, Mapping) else [("schedule", schedules)]
    seen: dict[int, str] = {}
    found = {}
    for site, schedule in items:
        if hasattr(schedule, "state_dict") and id(schedule) not in seen:
            seen[id(schedule)] = site
            found[site] = schedule
    return found


def feed_evaluation(schedules: Any, loss: float) -> None:
    """Feed one evaluation's loss to every stateful schedule among ``schedules`` (once each)."""
    for schedule in _stateful(schedules).values():
        schedule.step(loss)


def schedule_states(schedules: Any) -> dict[str, Any]:
    """Return ``{site: state}`` of the stateful schedules, for a checkpoint (S4)."""
    return {site: schedule.state_dict() for site, schedule in _stateful(schedules).items()}


def load_schedule_states(schedules: Any, states: Mapping[str, Any]) -> None:
    """Restore what :func:`schedule_states` returned, site by site.

    Raises
    ------
    ValueError
        If ``states`` names a site without a stateful schedule, or misses one.
    """
    stateful = _stateful(schedules)
    if set(states) != set(stateful):
        raise ValueError(
            f"checkpoint schedule states are for sites {sorted(states)}, the run's stateful "
            f"schedules are {sorted(stateful)}"
        )
    for site, schedule in stateful.items():
        schedule.load_state_dict(states[site])


ADAPTIVE_USAGE = (
    "linear:P0:P1:START:END, exponential:P0:GAMMA[:FLOOR], triangular:LOW:HIGH:CYCLES:TOTAL, "
    "v_shaped:P_START:P_END:WARMUP:TOTAL or "
    "on_plateau:P0:factor=F|step=S[:patience=N][:min=X][:max=X][:mode=min|max]"
)

_PLATEAU_OPTIONS = {
    "factor": float, "step": float, "patience": int, "min": float, "max": float,
    "mode": str, "threshold": float,
}  # fmt: skip


def parse_adaptive(text: str, number: Callable[[str, type], Any]) -> Schedule | None:
    """Parse an S4 spelling (:data:`ADAPTIVE_USAGE`), or return ``None`` for another kind.

    ``number(field, type)`` converts a field, naming the text when it fails.
    """
    parts = str(text).split(":")
    kind, fields = parts[0], parts[1:]
    simple = {
        "linear": (linear, (float, float, int, int)),
        "triangular": (triangular, (float, float, int, int)),
        "v_shaped": (v_shaped, (float, float, int, int)),
    }
    if kind in simple and len(fields) == 4:
        make, types = simple[kind]
        return make(*(number(f, t) for f, t in zip(fields, types, strict=True)))
    if kind == "exponential" and len(fields) in (2, 3):
        return exponential(*(number(f, float) for f in fields))
    if kind == "on_plateau" and len(fields) >= 2:
        options: dict[str, Any] = {}
        for field in fields[1:]:
            name, _, value = field.partition("=")
            if name not in _PLATEAU_OPTIONS or not value or name in options:
                raise ValueError(
                    f"--dropout-schedule {text!r}: {field!r} is not one of "
                    f"{', '.join(o + '=' for o in _PLATEAU_OPTIONS)} (each once)"
                )
            kind_of = _PLATEAU_OPTIONS[name]
            options[name] = value if kind_of is str else number(value, kind_of)
        return on_plateau(number(fields[0], float), **options)
    return None


def parse(text: str, p: float | None = None) -> Schedule:
    """Parse the CLI spelling of a schedule.

    ``constant:P``, ``early:constant:STEPS``, ``early:linear:STEPS``,
    ``late:START``; the early and late kinds take their rate ``p`` from the
    model's own rate (the ``p`` argument), or from an optional last field
    (``early:linear:STEPS:P``). The adaptive kinds of SPEC S4 spell out their
    numbers: ``linear:P0:P1:START:END``, ``exponential:P0:GAMMA[:FLOOR]``,
    ``triangular:LOW:HIGH:CYCLES:TOTAL``, ``v_shaped:P_START:P_END:WARMUP:TOTAL``
    and ``on_plateau:P0:factor=F|step=S[:patience=N][:min=X][:max=X][:mode=min|max]``
    (see :func:`parse_adaptive`).

    Raises
    ------
    ValueError
        Naming the text when it is not one of these forms.
    """
    parts = str(text).split(":")
    usage = (
        "constant:P, early:constant:STEPS[:P], early:linear:STEPS[:P], late:START[:P], "
        + ADAPTIVE_USAGE
    )

    def number(field: str, kind: type) -> Any:
        try:
            return kind(field)
        except ValueError:
            raise ValueError(
                f"--dropout-schedule {text!r}: {field!r} is not a {kind.__name__}; expected {usage}"
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
    adaptive = parse_adaptive(text, number)
    if adaptive is not None:
        return adaptive
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
    "Exponential",
    "Late",
    "Linear",
    "OnPlateau",
    "Schedule",
    "Triangular",
    "VShaped",
    "as_site_schedules",
    "constant",
    "describe",
    "early",
    "exponential",
    "feed_evaluation",
    "late",
    "linear",
    "load_schedule_states",
    "on_plateau",
    "parse",
    "parse_adaptive",
    "rate_at",
    "rates_at",
    "schedule_states",
    "triangular",
    "v_shaped",
]
