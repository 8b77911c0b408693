"""Power of the conformance kit: every wrong dropout is caught, every correct one passes."""

from __future__ import annotations

import pytest

from dropout_ref.conformance import check_dropout, check_model
from dropout_ref.core.registry import get_backend
from tests.mutants import Mutant
from tests.mutants.framework_mutants import MUTANTS as FRAMEWORK_MUTANTS
from tests.mutants.model_mutants import MODEL_MUTANTS
from tests.mutants.numpy_mutants import MUTANTS as NUMPY_MUTANTS

ALL_MUTANTS: list[Mutant] = [*NUMPY_MUTANTS, *FRAMEWORK_MUTANTS]


def _backend_or_skip(name: str):
    try:
        return get_backend(name)
    except ImportError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("mutant", ALL_MUTANTS, ids=[m.name for m in ALL_MUTANTS])
def test_mutant_is_caught(mutant: Mutant) -> None:
    """Each wrong implementation fails (at least) the clauses named for it."""
    _backend_or_skip(mutant.backend)
    report = check_dropout(mutant.fn, backend=mutant.backend, clauses=mutant.caught_by, seed=1)
    missed = [c for c in mutant.caught_by if c not in report.failures]
    assert not missed, f"{mutant.name} ({mutant.what}) was not caught by {missed}:\n" + (
        report.summary()
    )


def test_course_torch_on_a_non_cpu_device() -> None:
    """The course's torch code draws its mask on the CPU: on a GPU X it fails D7."""
    _backend_or_skip("torch")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine: torch.rand(X.shape) vs X on cuda:0 untested")
    import dropout_ref.torch as adapter
    from dropout_ref.torch.arrays import TorchArrays
    from tests.mutants.course_mutants import course_torch

    adapter.arrays = TorchArrays("cuda")
    try:
        report = check_dropout(course_torch, backend="torch", clauses=["D7"])
    finally:
        adapter.arrays = TorchArrays()
    assert "D7" in report.failures


def test_every_backend_dropout_layer_conforms(backend) -> None:
    """D1-D11: our own dropout_layer passes every clause on every installed backend."""
    report = check_dropout(backend.dropout_layer, backend=backend.arrays.name, seed=0)
    assert report.ok, report.summary()
    if backend.arrays.name == "numpy":
        assert report.status("D8") == "n/a"  # no autodiff: not applicable, never "pass"


def test_failures_are_sorted_clause_ids() -> None:
    """report.failures lists clause ids in SPEC order (D3 before D10)."""
    from tests.mutants.numpy_mutants import no_rescale

    report = check_dropout(no_rescale, backend="numpy", clauses=["D10", "D5", "D3"])
    assert report.failures == ["D5", "D10"]
    assert report.results["D5"].message.startswith("D5: ")


@pytest.mark.parametrize("mutant", MODEL_MUTANTS, ids=[m.name for m in MODEL_MUTANTS])
def test_model_mutant_is_caught(mutant) -> None:
    """M2-M4: each wrong MLP fails the clauses named for it."""
    _backend_or_skip(mutant.backend)
    report = check_model(mutant.make(), backend=mutant.backend, seed=1)
    missed = [c for c in mutant.caught_by if c not in report.failures]
    assert not missed, f"{mutant.name} not caught by {missed}:\n{report.summary()}"


def test_every_backend_mlp_conforms(course_backend) -> None:
    """M2-M4: our MLP passes in every installed backend the course covers, in its idiom."""
    report = check_model(backend=course_backend.arrays.name, seed=0)
    assert report.ok, report.summary()
