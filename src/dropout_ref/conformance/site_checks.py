"""Model clauses on any model with dropout sites, measured through the site calls (SPEC X2-X4).

The MLP checks of :mod:`dropout_ref.conformance.model_checks` read dropout off
identity weights; a Transformer has no such weights. Here the kit instead
*records every call* of the backend's ``dropout_layer`` during a forward pass:
for the duration of the pass, each module global of ``dropout_ref`` (and of
the model's own module) bound to that function is replaced by a recorder that
calls the original and keeps the input, the output, the rate, ``seed`` and
``offset`` of the call. A model whose sites are not ``dropout_layer`` calls
(a native dropout, say) shows as missing site calls.

A model is described to the kit by a :class:`SiteProbe`: how to build it at
given rates with fixed weights, its sites in forward order with the shape of
each site tensor for the probe's input, its framework's forward
(:func:`dropout_ref.forward_numpy`'s convention), and optionally a NumPy
oracle of its training-mode output under portable masks. Three clauses:

X2 (sites at their rates)
    In the training idiom, without a mask seed: exactly one ``dropout_layer``
    call per site, in forward order, at that site's configured rate and on a
    tensor of that site's shape; each call drops a number of the nonzero
    elements of its input that lies inside the exact two-sided binomial
    acceptance interval for that rate (one random test per site, each at
    ``alpha / tests``: Bonferroni), and scales the kept ones by ``1/(1-p)``.
X3 (train/eval idiom)
    Training and eval outputs differ (dropout happens in the training idiom);
    eval is bit-for-bit repeatable, calls no site that changes anything, and
    equals the same model with every rate 0 in both modes; with every rate 0,
    training is repeatable too (nothing but the sites is random).
X4 (portable sites)
    With ``mask_seed=s``, site ``j`` is the call with ``seed=s``,
    ``offset=j * 2**40``; two passes agree bit for bit; the output agrees with
    the NumPy oracle to 1e-5 relative (``max|out - oracle| / max|oracle|``).

Only X2 is random: a correct model fails it with probability at most
``alpha * X2_tests / tests`` (the binomial bounds are exact), where ``tests``
counts the sites.
"""

from __future__ import annotations

import contextlib
import numbers
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dropout_ref.conformance.clause_run import run_clause
from dropout_ref.conformance.context import Violation
from dropout_ref.conformance.result import ConformanceReport
from dropout_ref.conformance.runner import SEED_STRIDE, _validate_alpha, _validate_seed
from dropout_ref.conformance.stats import DEFAULT_ALPHA, binomial_count_interval
from dropout_ref.core.registry import get_backend

#: Clauses checked by :func:`check_sites` (the GPT's rows of ``dropout-ref report``).
SITE_CLAUSES: tuple[str, ...] = ("X2", "X3", "X4")
#: Titles for the report's legend.
SITE_TITLES = {
    "X2": "sites at their rates",
    "X3": "train/eval idiom, eval = rates 0",
    "X4": "portable sites = NumPy oracle",
}
#: Relative tolerance of X4 (SPEC X4: 1e-5 in float32).
X4_RTOL = 1e-5
#: Relative tolerance of "equal to the rates-0 model" (X3): float32 rounding of one
#: forward pass through different kernels (a fused attention in eval, say).
X3_RTOL = 1e-5

#: Model clauses seed the framework apart from check_dropout's (0 .. 99) and the MLP's (100 ..).
_SEED_OFFSET = 110


@dataclass(frozen=True)
class SiteSpec:
    """One dropout site as the kit expects to see it.

    Attributes
    ----------
    rate_name : str
        The key of the model's rates that applies here (e.g. ``"resid"``).
    shape : tuple of int
        Shape of the site tensor for the probe's input.
    description : str
        Where it sits, for messages.

    """

    rate_name: str
    shape: tuple[int, ...]
    description: str


@dataclass(frozen=True)
class SiteProbe:
    """What the kit needs to check a model with dropout sites.

    Attributes
    ----------
    build : callable
        ``build(rates)`` returns a fresh model with the probe's fixed weights and
        ``rates`` (a dict rate name -> rate).
    sites : sequence of SiteSpec
        Every site in forward order (site ``j`` is ``sites[j]``).
    inputs : numpy.ndarray
        The batch the model runs on.
    forward : callable
        ``forward(model, inputs, *, training, mask_seed=None) -> numpy.ndarray`` in
        the framework's idiom (:func:`dropout_ref.forward_numpy`).
    layer : callable
        The ``dropout_layer`` whose calls are the sites.
    to_numpy : callable
        Converts a site tensor of the framework to NumPy.
    rates : dict of str to float
        Distinct, non-zero rates per rate name for X2 (a mixed-up rate then shows).
    stride : int
        Counter offset between consecutive sites under ``mask_seed`` (X4).
    oracle : callable, optional
        ``oracle(rates, mask_seed)`` returns the NumPy reference of the
        training-mode output under portable masks (X4); ``None`` skips that part.
    modules : sequence of str
        Modules besides ``dropout_ref.*`` whose globals may hold ``layer``.

    """

    build: Callable[[Mapping[str, float]], Any]
    sites: Sequence[SiteSpec]
    inputs: np.ndarray
    forward: Callable[..., np.ndarray]
    layer: Callable[..., Any]
    to_numpy: Callable[[Any], np.ndarray]
    rates: Mapping[str, float]
    stride: int
    oracle: Callable[[Mapping[str, float], int], np.ndarray] | None = None
    modules: Sequence[str] = field(default_factory=tuple)


@dataclass
class SiteCall:
    """One recorded ``dropout_layer`` call."""

    rate: Any
    shape: tuple[int, ...]
    seed: Any
    offset: Any
    nonzero: int
    dropped: int
    misscaled: int


def _summarise(probe: SiteProbe, X: Any, out: Any, rate: Any, seed: Any, offset: Any) -> SiteCall:
    x = np.asarray(probe.to_numpy(X), np.float64)
    y = np.asarray(probe.to_numpy(out), np.float64)
    live = x != 0
    dropped = live & (y == 0)
    kept = live & ~dropped
    misscaled = 0
    if isinstance(rate, numbers.Real) and not isinstance(rate, bool) and 0 < rate < 1:
        # Kept elements are X / (1 - p) in float32 (D5); 1e-6 leaves room for its rounding.
        expected = x[kept] / (1.0 - float(rate))
        misscaled = int((~np.isclose(y[kept], expected, rtol=1e-6, atol=0)).sum())
    return SiteCall(rate, tuple(x.shape), seed, offset, int(live.sum()), int(dropped.sum()),
                    misscaled)  # fmt: skip


@contextlib.contextmanager
def record_site_calls(probe: SiteProbe) -> Iterator[list[SiteCall]]:
    """Record every call of ``probe.layer`` made through a module global, while inside.

    Every global bound to ``probe.layer`` in a loaded ``dropout_ref`` module (or
    one of ``probe.modules``) is swapped for a recorder and restored on exit, also
    after an exception. Calls made from inside a recorded call are not recorded
    again (a layer that delegates to itself counts once).
    """
    original = probe.layer
    calls: list[SiteCall] = []
    depth = [0]

    def recorder(X: Any, dropout: Any, *args: Any, **kwargs: Any) -> Any:
        depth[0] += 1
        try:
            out = original(X, dropout, *args, **kwargs)
        finally:
            depth[0] -= 1
        if depth[0] == 0:
            calls.append(
                _summarise(probe, X, out, dropout, kwargs.get("seed"), kwargs.get("offset", 0))
            )
        return out

    patched: list[tuple[Any, str]] = []
    wanted = set(probe.modules)
    for name, module in list(sys.modules.items()):
        if module is None or not (name.startswith("dropout_ref.") or name in wanted):
            continue
        for attr, value in list(vars(module).items()):
            if value is original:
                patched.append((module, attr))
    try:
        for module, attr in patched:
            setattr(module, attr, recorder)
        yield calls
    finally:
        for module, attr in patched:
            setattr(module, attr, original)


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return float(np.max(np.abs(a - b))) / max(scale, np.finfo(np.float32).tiny)


class _Harness:
    def __init__(self, probe: SiteProbe, per_test: float) -> None:
        self.probe = probe
        self.per_test = per_test
        self.zero = dict.fromkeys(probe.rates, 0.0)

    def run(self, model: Any, training: bool, mask_seed: int | None = None) -> np.ndarray:
        out = self.probe.forward(model, self.probe.inputs, training=training, mask_seed=mask_seed)
        return np.asarray(out, np.float64)

    def recorded(
        self, model: Any, training: bool, mask_seed: int | None = None
    ) -> tuple[np.ndarray, list[SiteCall]]:
        with record_site_calls(self.probe) as calls:
            out = self.run(model, training, mask_seed)
        return out, calls

    def expect_sites(self, calls: list[SiteCall], where: str) -> None:
        sites = self.probe.sites
        if len(calls) != len(sites):
            raise Violation(
                f"{where}: {len(calls)} dropout_layer calls recorded, expected one per site "
                f"({len(sites)}: {', '.join(s.description for s in sites)}); a site that is "
                "not a dropout_layer call (e.g. a native dropout) does not show"
            )
        for j, (call, site) in enumerate(zip(calls, sites, strict=True)):
            rate = self.probe.rates[site.rate_name]
            if call.shape != site.shape:
                raise Violation(
                    f"{where}: site {j} ({site.description}) dropped a tensor of shape "
                    f"{call.shape}, expected {site.shape}"
                )
            if not isinstance(call.rate, numbers.Real) or float(call.rate) != rate:
                raise Violation(
                    f"{where}: site {j} ({site.description}) ran at rate {call.rate!r}, "
                    f"expected its {site.rate_name!r} rate {rate}"
                )


def _x2(h: _Harness) -> str:
    model = h.probe.build(h.probe.rates)
    _, calls = h.recorded(model, training=True)
    h.expect_sites(calls, "training")
    seen = []
    for j, (call, site) in enumerate(zip(calls, h.probe.sites, strict=True)):
        p = float(call.rate)
        bound = binomial_count_interval(call.nonzero, p, h.per_test)
        if call.dropped not in bound:
            raise Violation(
                f"site {j} ({site.description}) dropped {call.dropped} of {call.nonzero} "
                f"nonzero elements at rate {p}; expected {bound.low:g}..{bound.high:g} "
                f"(false-alarm probability {bound.alpha:.2g})"
            )
        if call.misscaled:
            raise Violation(
                f"site {j} ({site.description}): {call.misscaled} kept elements are not "
                f"X / (1 - {p})"
            )
        seen.append(f"{call.dropped}/{call.nonzero} at {p}")
    return f"{len(calls)} sites in forward order at their rates ({'; '.join(seen)})"


def _x3(h: _Harness) -> str:
    model = h.probe.build(h.probe.rates)
    first, calls = h.recorded(model, training=False)
    changing = [c for c in calls if c.dropped or c.misscaled]
    if changing:
        raise Violation(
            f"eval still drops: {len(changing)} dropout_layer calls changed their input"
        )
    second = h.run(model, training=False)
    if not np.array_equal(first, second):
        raise Violation(
            f"eval is not deterministic: two calls differ in {int((first != second).sum())} "
            f"of {first.size} outputs"
        )
    trained = h.run(model, training=True)
    if np.array_equal(trained, first):
        raise Violation(
            "the framework's training idiom applied no dropout: the training output equals "
            f"eval's at rates {dict(h.probe.rates)}"
        )
    plain = h.probe.build(h.zero)
    plain_train = h.run(plain, training=True)
    if not np.array_equal(plain_train, h.run(plain, training=True)):
        raise Violation(
            "with every rate 0, two training passes differ: something besides the dropout "
            "sites is random"
        )
    for name, reference in (("eval", h.run(plain, training=False)), ("train", plain_train)):
        worst = _relative(first, reference)
        if worst > X3_RTOL:
            raise Violation(
                f"eval output differs from the same model with every rate 0 ({name} mode) by "
                f"{worst:.3g} relative (allowed {X3_RTOL:g})"
            )
    return "dropout in the training idiom only; eval deterministic, equal to the rates-0 model"


def _x4(h: _Harness, mask_seed: int) -> str:
    rates = h.probe.rates
    model = h.probe.build(rates)
    first, calls = h.recorded(model, training=True, mask_seed=mask_seed)
    h.expect_sites(calls, f"training with mask_seed={mask_seed}")
    for j, call in enumerate(calls):
        if call.seed != mask_seed or call.offset != j * h.probe.stride:
            raise Violation(
                f"site {j} ({h.probe.sites[j].description}) called dropout_layer with "
                f"seed={call.seed!r}, offset={call.offset!r}; expected seed={mask_seed}, "
                f"offset={j} * {h.probe.stride}"
            )
    second = h.run(model, training=True, mask_seed=mask_seed)
    if not np.array_equal(first, second):
        raise Violation(
            f"two training passes with mask_seed={mask_seed} differ in "
            f"{int((first != second).sum())} of {first.size} outputs"
        )
    if h.probe.oracle is None:
        return f"site j at seed={mask_seed}, offset=j*{h.probe.stride}; repeatable"
    reference = np.asarray(h.probe.oracle(rates, mask_seed), np.float64)
    if reference.shape != first.shape:
        raise Violation(f"output shape {first.shape}, the NumPy oracle's {reference.shape}")
    worst = _relative(first, reference)
    if worst > X4_RTOL:
        raise Violation(
            f"training output with mask_seed={mask_seed} differs from the NumPy oracle's by "
            f"{worst:.3g} relative (allowed {X4_RTOL:g})"
        )
    return (
        f"site j at seed={mask_seed}, offset=j*{h.probe.stride}; output = NumPy oracle to "
        f"{worst:.2g} relative"
    )


def check_sites(
    probe: SiteProbe,
    *,
    backend: str,
    name: str,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
    arrays: Any = None,
) -> ConformanceReport:
    """Check a model with dropout sites against SPEC X2-X4 through its site calls.

    Parameters
    ----------
    probe : SiteProbe
        The model, its sites and its framework's forward.
    backend : str
        The backend whose generator is seeded before each clause.
    name : str
        Name of the model in the report.
    seed : int, optional
        Seeds the framework's generator (``seed * 1000 + 110 + clause index``) and
        the mask seed of X4.
    alpha : float, optional
        Overall false-alarm probability, Bonferroni-split over X2's one test per site.
    arrays : ArrayBridge, optional
        Whose ``seed_global`` seeds the framework (default the backend's).

    Returns
    -------
    ConformanceReport
        Verdicts on X2, X3 and X4.

    """
    alpha = _validate_alpha(alpha)
    seed = _validate_seed(seed, _SEED_OFFSET + len(SITE_CLAUSES) - 1)
    if arrays is None:
        arrays = get_backend(backend).arrays
    tests = len(probe.sites)
    per_test = alpha / tests
    harness = _Harness(probe, per_test)
    report = ConformanceReport(
        implementation=name, backend=backend, alpha=alpha, alpha_per_test=per_test, seed=seed
    )
    checks = {"X2": _x2, "X3": _x3, "X4": lambda h: _x4(h, mask_seed=seed + 1)}
    for index, clause in enumerate(SITE_CLAUSES):
        arrays.seed_global(seed * SEED_STRIDE + _SEED_OFFSET + index)
        report.results[clause] = run_clause(
            clause,
            lambda check=checks[clause]: check(harness),
            None,
            per_test,
            random_tests=tests if clause == "X2" else 0,
        )
    return report
