"""The kit's structured variant (SPEC D12): D1-D11 per group, and D12's one decision per group.

``check_dropout(fn, backend, noise_shape=(None, None, 1, 1))`` says that ``fn``
shares its keep decision along the axes where ``noise_shape`` is 1 (here: whole
channels of an ``(N, C, H, W)`` X, as ``torch.nn.Dropout2d``). The kit then
speaks to the framework through :class:`StructuredBridge`, which

- lifts every input the element-wise checks build (shape ``s``) to X's rank:
  ``s`` fills the axes where ``noise_shape`` is ``None`` and every shared axis
  gets :data:`GROUP` copies of each value, so one group holds one value;
- projects every array read back onto the first element of each group.

A correct structured dropout maps a group of equal values to a group of equal
outputs (one decision, one scale), so the element-wise checks D1-D11 then
check the groups' decisions: D4's keep rate counts groups, D9 and D10 are
about groups, D8 checks the gradient of the lifted input. D12 itself
(:func:`check_d12`) checks on distinct values that every element of a group
shares its group's decision and is scaled on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dropout_ref.conformance.context import CheckContext, Violation
from dropout_ref.core.contract import ArrayBridge, NotApplicable
from dropout_ref.core.numerics import ulp, ulp_distance

#: Copies of each value along every shared axis.
GROUP = 2
#: Rates of D12.
STRUCTURED_RATES = (0.1, 0.5)


def validate_structure(noise_shape: Any) -> tuple[int | None, ...]:
    """Check the kit's ``noise_shape``: entries ``None`` (own decision) or ``1`` (shared).

    Raises
    ------
    TypeError
        If it is not a sequence of ``None`` and ``1``.
    ValueError
        If an entry is another integer, or no entry is ``None``.
    """
    if isinstance(noise_shape, (str, bytes)) or not isinstance(noise_shape, Sequence):
        raise TypeError(
            f"noise_shape must be a sequence of None (own decision) and 1 (shared axis), "
            f"got {noise_shape!r}"
        )
    entries = tuple(noise_shape)
    for axis, entry in enumerate(entries):
        if entry is not None and (isinstance(entry, bool) or entry != 1):
            raise ValueError(
                f"noise_shape[{axis}] must be None (own decision) or 1 (shared along axis "
                f"{axis}), got {entry!r}; the kit chooses the sizes"
            )
    if all(e == 1 for e in entries):
        raise ValueError(f"noise_shape needs at least one None axis, got {entries!r}")
    return entries


class StructuredBridge:
    """An :class:`~dropout_ref.core.contract.ArrayBridge` that lifts inputs and projects outputs.

    Parameters
    ----------
    base : ArrayBridge
        The backend's bridge.
    noise_shape : tuple of None and 1
        Axes with their own decision (``None``) and shared axes (``1``).
    """

    def __init__(self, base: ArrayBridge, noise_shape: tuple[int | None, ...]) -> None:
        self.base = base
        self.noise_shape = noise_shape
        self.name = base.name
        self.float_dtypes = base.float_dtypes
        self.shared_axes = tuple(i for i, e in enumerate(noise_shape) if e == 1)
        self.own_axes = tuple(i for i, e in enumerate(noise_shape) if e is None)
        #: Lifted shape -> the kit's shape it came from, to read results back in that shape.
        self._origin: dict[tuple[int, ...], tuple[int, ...]] = {}

    def own_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Return the kit's shape ``s`` fitted to the own-decision axes (leading 1s, or folded)."""
        m = len(self.own_axes)
        if len(shape) <= m:
            return (1,) * (m - len(shape)) + tuple(shape)
        fold = len(shape) - m + 1
        return (math.prod(shape[:fold]), *shape[fold:])

    def lifted_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """X's shape for a kit shape: own axes from ``s``, :data:`GROUP` on each shared axis."""
        own = iter(self.own_shape(tuple(shape)))
        return tuple(GROUP if e == 1 else next(own) for e in self.noise_shape)

    def lift(self, array: np.ndarray) -> np.ndarray:
        """Repeat each value :data:`GROUP` times along every shared axis."""
        own = np.asarray(array).reshape(self.own_shape(np.shape(array)))
        expanded = np.expand_dims(own, self.shared_axes)
        return np.broadcast_to(expanded, self.lifted_shape(np.shape(array))).copy()

    def project(self, values: np.ndarray) -> np.ndarray:
        """Return the first element of each group, in the kit's shape it was lifted from."""
        shape = tuple(np.shape(values))
        if len(shape) != len(self.noise_shape):
            return values  # a wrong output shape: D7 reports it
        index = tuple(slice(0, 1) if e == 1 else slice(None) for e in self.noise_shape)
        first = np.squeeze(values[index], axis=self.shared_axes)
        origin = self._origin.get(shape)
        if origin is None or math.prod(origin) != first.size:
            return first
        return first.reshape(origin)

    # -- ArrayBridge ----------------------------------------------------------------------------

    def from_numpy(self, array: np.ndarray, dtype: str | None = None) -> Any:
        """Return the framework array of the lifted ``array``."""
        array = np.asarray(array)
        lifted = self.lift(array)
        self._origin[lifted.shape] = array.shape
        return self.base.from_numpy(lifted, dtype)

    def to_numpy(self, x: Any) -> np.ndarray:
        """Return the projection of ``x`` onto one element per group."""
        return self.project(np.asarray(self.base.to_numpy(x)))

    def dtype_name(self, x: Any) -> str:
        """Return the framework's dtype name."""
        return self.base.dtype_name(x)

    def device_name(self, x: Any) -> str:
        """Return the framework's device name."""
        return self.base.device_name(x)

    def seed_global(self, seed: int) -> None:
        """Seed with the framework's own seeding call."""
        self.base.seed_global(seed)

    def value_and_grad(
        self, fn: Callable[[Any], Any], x: Any, cotangent: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Output and gradient for the lifted cotangent, both projected."""
        out, grad = self.base.value_and_grad(fn, x, self.lift(cotangent))
        return self.project(np.asarray(out)), self.project(np.asarray(grad))


def _first_split(keep: np.ndarray, bridge: StructuredBridge) -> str:
    """Describe the first group whose elements disagree."""
    index = tuple(slice(0, 1) if e == 1 else slice(None) for e in bridge.noise_shape)
    first = np.broadcast_to(keep[index], keep.shape)
    bad = np.argwhere(keep != first)[0]
    group = tuple(
        int(i) if e is None else ":" for i, e in zip(bad, bridge.noise_shape, strict=True)
    )
    members = keep[
        tuple(
            slice(None) if e == 1 else int(i) for i, e in zip(bad, bridge.noise_shape, strict=True)
        )
    ]
    return (
        f"the group X[{', '.join(map(str, group))}] has {int(members.sum())} of {members.size} "
        f"elements kept"
    )


def check_d12(ctx: CheckContext) -> str:
    """D12: one keep decision per group, broadcast; each element scaled on its own; D8 per group."""
    bridge = ctx.arrays
    if not isinstance(bridge, StructuredBridge):
        raise NotApplicable("element-wise dropout (checked with noise_shape=None)")
    base = bridge.base
    rng = ctx.rng(12)
    shape = bridge.lifted_shape((48, 40))
    axes = ", ".join(map(str, bridge.shared_axes))
    dtypes = [d for d in ("float32", "float64") if d in ctx.dtypes]
    for dtype in dtypes:
        # Distinct values inside each group: a group's elements differ, its decision does not.
        x_np = rng.uniform(0.5, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
        X = base.from_numpy(x_np, dtype)
        x = np.asarray(base.to_numpy(X), np.float64)
        for p in STRUCTURED_RATES:
            out = ctx.call(X, p)
            # Rounding is judged in the output's dtype: a wrong dtype is D7's finding, not D12's.
            out_dtype = base.dtype_name(out)
            y = np.asarray(base.to_numpy(out), np.float64)
            if y.shape != x.shape:
                raise Violation(f"at dropout={p} in {dtype}: output shape {y.shape}, X's {x.shape}")
            keep = y != 0
            index = tuple(slice(0, 1) if e == 1 else slice(None) for e in bridge.noise_shape)
            if (keep != np.broadcast_to(keep[index], keep.shape)).any():
                raise Violation(
                    f"at dropout={p} in {dtype} with X of shape {shape}: "
                    f"{_first_split(keep, bridge)}; the decision must be shared along axes {axes}"
                )
            # Each element scaled like its group's first one (how well that one is scaled
            # is D5's question): a shared decision with the same factor, element by element.
            ratio = np.broadcast_to(y[index] / x[index], shape)
            err = np.where(keep, ulp_distance(y, x * ratio, out_dtype), 0.0)
            if (err > 4.0).any():  # the group's factor recovered from a rounded output
                i = np.unravel_index(int(np.argmax(err)), shape)
                raise Violation(
                    f"at dropout={p} in {dtype}: kept element {tuple(map(int, i))} is {y[i]!r} "
                    f"= X * {y[i] / x[i]!r}, but its group's first element is scaled by "
                    f"{ratio[i]!r} ({err[i]:.3g} ulp off)"
                )
    note = "n/a"
    try:
        X = base.from_numpy(x_np, "float32")
        cot = rng.normal(size=shape).astype(np.float32)
        out, grad = base.value_and_grad(lambda t: ctx.call(t, 0.5), X, cot)
        out, grad = np.asarray(out, np.float64), np.asarray(grad, np.float64)
        keep = out != 0
        expected = np.where(keep, cot.astype(np.float64) * 2.0, 0.0)
        bad = np.abs(grad - expected) > 2.0 * ulp(expected, "float32")
        if bad.any():
            i = np.unravel_index(int(np.argmax(bad)), shape)
            raise Violation(
                f"gradient at dropout=0.5: element {tuple(map(int, i))} has {grad[i]!r}, expected "
                f"{expected[i]!r} (broadcast keep * G / (1 - p))"
            )
        note = "follows the broadcast mask"
    except NotApplicable:
        pass
    return (
        f"one decision per group along axes {axes} at p in {STRUCTURED_RATES}, every element "
        f"scaled like its group; gradient {note}"
    )
