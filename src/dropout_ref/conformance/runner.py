"""``check_dropout``: run the D checks on any dropout implementation of a backend."""



from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable
from typing import Any

from dropout_ref.conformance.clause_run import run_clause
from dropout_ref.conformance.context import CheckContext
from dropout_ref.conformance.registry import CHECKS, CLAUSES
from dropout_ref.conformance.result import (
    ClauseResult,
    ConformanceReport,
)
from dropout_ref.conformance.stats import DEFAULT_ALPHA
from dropout_ref.conformance.structured import StructuredBridge, validate_structure
from dropout_ref.core.registry import get_backend

#: Called after each clause with its result (the report's progress bar).
Progress = Callable[[ClauseResult], None]


def _select(clauses: Iterable[str] | None) -> tuple[str, ...]:
    if clauses is None:
        return CLAUSES
    if isinstance(clauses, str):
        clauses = [clauses]
    chosen = tuple(clauses)
    unknown = [c for c in chosen if c not in CHECKS]
    if unknown:
        raise ValueError(f"clauses must be among {', '.join(CLAUSES)}, got unknown {unknown}")
    return tuple(c for c in CLAUSES if c in chosen)


def _validate_alpha(alpha: Any) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise TypeError(f"alpha must be a float in (0, 1), got {alpha!r}")
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    return float(alpha)


#: Clause ``index`` seeds the framework with ``seed * SEED_STRIDE + offset + index``.
SEED_STRIDE = 1000
#: Largest seed valid for every run of the kit, whatever offset (< SEED_STRIDE) a clause uses.
MAX_SEED = (2**32 - SEED_STRIDE) // SEED_STRIDE


def _validate_seed(seed: Any, largest_offset: int) -> int:
    """Return ``seed`` if every derived seed ``seed * SEED_STRIDE + offset`` fits numpy's 32 bits.

    Checked up front: a seed the framework refuses would otherwise surface inside a
    clause and read as that clause failing.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be a non-negative integer, got {seed!r}")
    largest = (2**32 - 1 - largest_offset) // SEED_STRIDE
    if not 0 <= seed <= largest:
        raise ValueError(f"seed must be an integer in [0, {largest}], got {seed!r}")
    return int(seed)


def backend_arrays(backend: str, device: Any = None) -> Any:
    """Return ``backend``'s array bridge, placing new arrays on ``device`` (SPEC G2).

    ``None`` keeps the backend's default (the CPU). A bridge with an
    ``on_device`` method (torch) checks the device exists here; the others
    accept only ``"cpu"``.

    Raises
    ------
    ValueError
        If the device is unknown, absent from this machine, or not offered by ``backend``.
    """
    arrays = get_backend(backend).arrays
    if device is None:
        return arrays
    return arrays.on_device(device)


def check_dropout(
    fn: Callable[[Any, Any], Any],
    backend: str = "numpy",
    clauses: Iterable[str] | None = None,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
    *,
    name: str | None = None,
    sample_scale: float = 1.0,
    progress: Progress | None = None,
    device: Any = None,
    noise_shape: Any = None,
) -> ConformanceReport:
    """Check a dropout implementation against the SPEC's D clauses.

    Parameters
    ----------
    fn : callable
        ``fn(X, p)``: takes an array of ``backend`` and the drop probability,
        returns an array of ``backend``. For D8 it must be differentiable by
        the framework's autodiff; for D9 it must draw from the framework's
        global generator.
    backend : str, optional
        ``"numpy"``, ``"torch"``, ``"tensorflow"`` or ``"mxnet"``.
    clauses : iterable of str, optional
        Clause ids to check (default: all of :data:`CLAUSES`).
    seed : int, optional
        Seeds the kit's inputs and the framework's generator, so a run is
        reproducible.
    alpha : float, optional
        Overall false-alarm probability of the run: the chance that a correct
        implementation fails at least one random test. It is split equally
        over the random tests of the selected clauses (Bonferroni), so the
        bound holds whatever their dependence.
    name : str, optional
        Name of the implementation in the report (default: ``fn``'s name).
    sample_scale : float, optional
        Multiplies the large sample sizes of D4/D10; below 1 only to measure
        the false-alarm rate cheaply (the power at the documented sizes is
        what catches biased 16-bit uniforms).
    progress : callable, optional
        Called with each clause's result as soon as it is known.
    device : str, optional
        Where the kit's inputs live, e.g. ``"cuda"`` (SPEC G2: every D clause on
        that device, outputs checked to stay there); default the CPU.
    noise_shape : sequence of None and 1, optional
        Check a structured dropout (SPEC D12): ``fn`` shares one keep decision
        along the axes where ``noise_shape`` is 1 and takes X of rank
        ``len(noise_shape)``, e.g. ``(None, None, 1, 1)`` for
        ``torch.nn.Dropout2d``. D1-D11 are then checked per group and D12 on
        the groups (:mod:`dropout_ref.conformance.structured`). ``None``
        (default): element-wise dropout, D12 is n/a.

    Returns
    -------
    ConformanceReport
        ``report.ok``, ``report.failures`` and one result per clause.

    """
    selected = _select(clauses)
    alpha = _validate_alpha(alpha)
    seed = _validate_seed(seed, len(selected) - 1)
    arrays = backend_arrays(backend, device)
    if noise_shape is not None:
        arrays = StructuredBridge(arrays, validate_structure(noise_shape))
    budget = sum(CHECKS[c].random_tests(len(arrays.float_dtypes)) for c in selected)
    per_test = alpha / max(budget, 1)
    ctx = CheckContext(fn, arrays, int(seed), per_test, sample_scale=sample_scale)
    report = ConformanceReport(
        implementation=name or getattr(fn, "__qualname__", repr(fn)),
        backend=backend,
        alpha=alpha,
        alpha_per_test=per_test,
        seed=int(seed),
    )
    for index, clause in enumerate(selected):
        # Each clause starts from a seeded framework generator: a run is reproducible.
        arrays.seed_global(seed * SEED_STRIDE + index)
        result = run_clause(clause, lambda c=clause: CHECKS[c].run(ctx), ctx, per_test)
        report.results[clause] = result
        if progress is not None:
            progress(result)
    return report
