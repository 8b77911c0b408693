"""Model clauses M2-M4 on any MLP of a backend, through its framework's train/eval idiom.

The kit builds small networks whose weights make every dropout visible:
``W1 = W2 = W3 = I`` (64 units everywhere), ``b1 = c > 0``, so the training-mode
logits are ``D2(D1(X + c))`` elementwise. Dropout after each hidden ReLU shows
as exact zeros and values ``(X + c) / (1 - p)``; dropout of the input would
show as ``c``; dropout of the logits shows once ``W3`` averages the hidden
units (every logit of a row is then equal).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dropout_ref.conformance.clause_run import run_clause
from dropout_ref.conformance.context import Violation
from dropout_ref.conformance.result import ConformanceReport
from dropout_ref.conformance.runner import (
    SEED_STRIDE,
    _validate_alpha,
    _validate_seed,
    backend_arrays,
)
from dropout_ref.conformance.stats import DEFAULT_ALPHA, binomial_count_interval
from dropout_ref.core.registry import get_backend
from dropout_ref.models.backends import MLP_MODULE, MODEL_MODES_MODULE

#: Clauses checked by :func:`check_model`.
MODEL_CLAUSES: tuple[str, ...] = ("M2", "M3", "M4")
#: Titles for the report's legend.
MODEL_TITLES = {"M2": "train/eval idiom", "M3": "eval = rates-0 net", "M4": "dropout after ReLUs"}

UNITS = 64
BATCH = 256
SHIFT = 0.25  # b1: makes input dropout visible as c instead of 0
#: Random tests of M4 (keep counts at rates (p, 0), (0, p), (p, p)).
M4_TESTS = 3

MakeModel = Callable[..., Any]


def _weights(w3: np.ndarray | None = None) -> dict[str, np.ndarray]:
    eye = np.eye(UNITS, dtype=np.float32)
    return {
        "W1": eye.copy(),
        "b1": np.full(UNITS, SHIFT, np.float32),
        "W2": eye.copy(),
        "b2": np.zeros(UNITS, np.float32),
        "W3": eye.copy() if w3 is None else w3.astype(np.float32),
        "b3": np.zeros(UNITS, np.float32),
    }


def _random_weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    w = {k: rng.normal(0, 0.3, size=v.shape).astype(np.float32) for k, v in _weights().items()}
    return w


class _Harness:
    def __init__(
        self, make_model: MakeModel, backend: str, seed: int, per_test: float, arrays: Any = None
    ) -> None:
        self.make_model = make_model
        self.modes = MODEL_MODES_MODULE.load(backend)
        self.arrays = arrays if arrays is not None else get_backend(backend).arrays
        self.rng = np.random.default_rng([seed, 4242])
        self.per_test = per_test
        self.X = self.rng.uniform(0.5, 1.5, size=(BATCH, UNITS)).astype(np.float32)

    def model(self, d1: float, d2: float, weights: dict[str, np.ndarray]) -> Any:
        model = self.make_model(UNITS, UNITS, UNITS, UNITS, d1, d2, weights=weights)
        return self.arrays.place_model(model)

    def train(self, model: Any) -> np.ndarray:
        return np.asarray(self.modes.train_forward(model, self.X), np.float64)

    def eval(self, model: Any) -> np.ndarray:
        return np.asarray(self.modes.eval_forward(model, self.X), np.float64)


def _m2(h: _Harness) -> str:
    model = h.model(0.5, 0.0, _weights())
    trained = h.train(model)
    if not (trained == 0).any():
        raise Violation(
            "the framework's training idiom applied no dropout: no logit is 0 out of "
            f"{trained.size} at dropout1=0.5 (a correct model drops about half)"
        )
    evaluated = h.eval(model)
    if (evaluated == 0).any():
        raise Violation(
            f"the framework's evaluation idiom still drops: {int((evaluated == 0).sum())} of "
            f"{evaluated.size} logits are 0 where X + b1 > 0"
        )
    return "dropout in the training idiom only"


def _m3(h: _Harness) -> str:
    weights = _random_weights(h.rng)
    model = h.model(0.2, 0.5, weights)
    first, second = h.eval(model), h.eval(model)
    if not np.array_equal(first, second):
        raise Violation(
            f"eval is not deterministic: two calls differ in {int((first != second).sum())} "
            f"of {first.size} logits"
        )
    plain = h.model(0.0, 0.0, weights)
    for name, reference in (("eval", h.eval(plain)), ("train", h.train(plain))):
        if not np.allclose(first, reference, rtol=1e-5, atol=1e-6):
            worst = float(np.max(np.abs(first - reference)))
            raise Violation(
                f"eval logits differ from the same network with rates 0 ({name} mode) by up "
                f"to {worst:.3g}"
            )
    return "eval deterministic, equal to the rates-0 network"


def _m4(h: _Harness) -> str:
    x = h.X.astype(np.float64) + SHIFT
    plain = h.train(h.model(0.0, 0.0, _weights()))
    if not np.allclose(plain, x, rtol=1e-6, atol=0):
        raise Violation(
            "with both rates 0, training-mode logits are not relu(X + b1) through identity "
            "weights: something else drops or scales"
        )
    for d1, d2 in ((0.5, 0.0), (0.0, 0.5), (0.5, 0.5)):
        out = h.train(h.model(d1, d2, _weights()))
        q = (1 - d1) * (1 - d2)
        kept = out != 0
        expected = x / q
        wrong = kept & ~np.isclose(out, expected, rtol=1e-6, atol=0)
        if wrong.any():
            i = np.unravel_index(int(np.flatnonzero(wrong)[0]), out.shape)
            raise Violation(
                f"at rates ({d1}, {d2}) logit {tuple(int(j) for j in i)} is {out[i]!r}; "
                f"expected 0 or (X + b1)/{q:g} = {expected[i]!r}: dropout is not (only) after "
                f"the hidden ReLUs (input dropout leaves b1 where an element is dropped)"
            )
        bound = binomial_count_interval(out.size, q, h.per_test)
        if int(kept.sum()) not in bound:
            raise Violation(
                f"at rates ({d1}, {d2}) {int(kept.sum())} of {out.size} units survive both "
                f"dropouts; expected {bound.low:g}..{bound.high:g} for keep probability {q:g} "
                f"(false-alarm probability {bound.alpha:.2g})"
            )
    averaging = np.full((UNITS, UNITS), 1.0 / UNITS, np.float32)
    out = h.train(h.model(0.5, 0.5, _weights(averaging)))
    spread = out.max(axis=1) - out.min(axis=1)
    if not np.all(spread <= 1e-5 * np.maximum(np.abs(out).max(axis=1), 1e-30)):
        row = int(np.argmax(spread))
        raise Violation(
            f"the logits are dropped: with W3 averaging the hidden units every logit of a row "
            f"is equal, but row {row} spans {out[row].min():.4g}..{out[row].max():.4g}"
        )
    return "dropout after each hidden ReLU, at its rate, and nowhere else"


_CHECKS = {"M2": _m2, "M3": _m3, "M4": _m4}

#: Model clauses seed the framework apart from check_dropout's clauses (offsets 0 .. 99).
_SEED_OFFSET = 100


def check_model(
    make_model: MakeModel | None = None,
    backend: str = "numpy",
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
    *,
    name: str | None = None,
    device: Any = None,
) -> ConformanceReport:
    """Check an MLP of ``backend`` against SPEC M2-M4.

    Parameters
    ----------
    make_model : callable, optional
        ``make_model(num_inputs, num_outputs, num_hiddens1, num_hiddens2, dropout1,
        dropout2, weights=dict)`` returning a model in the neutral weight layout of
        :mod:`dropout_ref.models.mlp_spec`; default ``dropout_ref.<backend>.MLP``.
    backend : str, optional
        Whose train/eval idiom to use (``dropout_ref.<backend>.model_modes``).
    seed : int, optional
        Seeds inputs, weights and the framework's generator.
    alpha : float, optional
        Overall false-alarm probability (Bonferroni-split over M4's 3 binomial tests).
    name : str, optional
        Name of the model in the report.
    device : str, optional
        Where the model and its inputs live, e.g. ``"cuda"`` (default the CPU).

    Returns
    -------
    ConformanceReport
        Verdicts on M2, M3 and M4.

    """
    alpha = _validate_alpha(alpha)
    seed = _validate_seed(seed, _SEED_OFFSET + len(MODEL_CLAUSES) - 1)
    get_backend(backend)  # E1 / E2 for a missing or unknown backend
    arrays = backend_arrays(backend, device)
    if make_model is None:
        make_model = MLP_MODULE.load(backend).MLP
    per_test = alpha / M4_TESTS
    harness = _Harness(make_model, backend, seed, per_test, arrays)
    report = ConformanceReport(
        implementation=name or getattr(make_model, "__qualname__", repr(make_model)),
        backend=backend,
        alpha=alpha,
        alpha_per_test=per_test,
        seed=seed,
    )
    for index, clause in enumerate(MODEL_CLAUSES):
        arrays.seed_global(seed * SEED_STRIDE + _SEED_OFFSET + index)
        report.results[clause] = run_clause(
            clause,
            lambda check=_CHECKS[clause]: check(harness),
            None,
            per_test,
            random_tests=M4_TESTS if clause == "M4" else 0,
        )
    return report
