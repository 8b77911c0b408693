"""Users run the kit from pytest on their own dropout."""



from __future__ import annotations

import numpy as np
import pytest

from dropout_ref.conformance import (
    CLAUSES,
    ConformanceError,
    assert_conforms,
    check_dropout,
)


def leaky_dropout(X, p):
    """Multiplies by the mask: NaN*0 leaks through dropped elements (D6)."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout must be in [0, 1], got {p!r}")
    if p in (0, 1):
        return X if p == 0 else np.zeros_like(X)
    keep = np.random.random_sample(X.shape) >= p
    with np.errstate(invalid="ignore"):
        return (keep.astype(X.dtype) * X * X.dtype.type(1 / (1 - p))).astype(X.dtype)


def test_assert_conforms_passes_for_the_oracle() -> None:
    """D1-D11: the numpy oracle conforms; the report comes back."""
    from dropout_ref.numpy import dropout_layer

    report = assert_conforms(dropout_layer, backend="numpy")
    assert report.ok and list(report.results) == list(CLAUSES)


def test_assert_conforms_lists_each_failure_with_evidence() -> None:
    """D6: the assertion names the clause and shows the element, X and the expected +0.0."""
    with pytest.raises(ConformanceError) as info:
        assert_conforms(leaky_dropout, backend="numpy", clauses=["D3", "D6"])
    text = str(info.value)
    assert "breaks 1 clause(s): D6" in text
    assert "D6: at dropout=0.5" in text and "expected +0.0" in text
    assert isinstance(info.value, AssertionError)
    assert info.value.report.failures == ["D6"]


def test_allow_accepts_known_deviations_only() -> None:
    """Allowed clauses may fail; any other failure still raises."""
    assert_conforms(leaky_dropout, backend="numpy", clauses=["D6", "D11"], allow=["D6"])
    with pytest.raises(ConformanceError):
        assert_conforms(leaky_dropout, backend="numpy", clauses=["D6"], allow=["D3"])


def test_arguments_are_validated() -> None:
    """Unknown clauses, bad alpha and unknown backends are refused with the value named."""
    with pytest.raises(ValueError, match="D99"):
        check_dropout(leaky_dropout, backend="numpy", clauses=["D99"])
    with pytest.raises(ValueError, match="alpha"):
        check_dropout(leaky_dropout, backend="numpy", alpha=2.0)
    with pytest.raises(ValueError, match="nosuch"):
        check_dropout(leaky_dropout, backend="nosuch")


def test_reports_round_trip_through_json() -> None:
    """The report command ships reports between processes as JSON."""
    import json

    from dropout_ref.conformance import ConformanceReport

    report = check_dropout(leaky_dropout, backend="numpy", clauses=["D2", "D6"])
    again = ConformanceReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.failures == report.failures == ["D6"]
    assert again.results["D6"].message == report.results["D6"].message


def test_example_file_runs_under_pytest() -> None:
    """examples/conformance_my_dropout.py is a working pytest module."""
    pytest.importorskip("torch")
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "conformance_my_dropout.py"
    spec = importlib.util.spec_from_file_location("conformance_my_dropout", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.test_fixed_dropout_conforms()
    module.test_my_dropout_conforms_but_for_known_issues()


@pytest.mark.parametrize("seed", [-1, 2**32, 4_294_968])
def test_out_of_range_seed_is_refused_up_front(seed) -> None:
    """A seed numpy cannot take is a ValueError, not a FAIL on every clause of a correct layer."""
    from dropout_ref.conformance import check_model
    from dropout_ref.numpy import dropout_layer

    with pytest.raises(ValueError, match=f"seed .*{seed}"):
        check_dropout(dropout_layer, backend="numpy", seed=seed)
    with pytest.raises(ValueError, match=f"seed .*{seed}"):
        check_model(backend="numpy", seed=seed)


def test_check_model_validates_alpha() -> None:
    """check_model refuses an alpha outside (0, 1), like check_dropout."""
    from dropout_ref.conformance import check_model

    with pytest.raises(ValueError, match="alpha"):
        check_model(backend="numpy", alpha=2.0)
