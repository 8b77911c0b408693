"""Shared fixtures: every test parametrised by ``backend`` runs once per backend."""

from __future__ import annotations

import numpy as np
import pytest

from dropout_ref.conformance.natives import NATIVE_AUDIT
from dropout_ref.core.contract import NotApplicable, kit_dropout_layer
from dropout_ref.core.registry import get_backend, known_backends
from dropout_ref.models.backends import MLP_MODULE


class KitView:
    """A backend whose ``dropout_layer`` follows the shared ``fn(X, p)`` convention.

    For JAX (no global generator) that is ``kit_dropout_layer``, drawing keys from
    ``arrays.seed_global``'s stream; every other attribute is the registration's
    (``ops``, ``arrays``, ...) or else the adapter package's (``MLP``).
    """

    def __init__(self, registration) -> None:
        self.registration = registration
        self.dropout_layer = kit_dropout_layer(registration)

    def __getattr__(self, name):
        try:
            return getattr(self.registration, name)
        except AttributeError:
            return getattr(self.registration.module, name)


def _adapter(name: str):
    try:
        return KitView(get_backend(name))
    except ImportError as exc:
        pytest.skip(str(exc))


@pytest.fixture(params=known_backends())
def backend(request: pytest.FixtureRequest):
    """The adapter of each backend; skipped with the reason where it does not import."""
    return _adapter(request.param)


@pytest.fixture(params=[name for name in known_backends() if name != "numpy"])
def autodiff_backend(request: pytest.FixtureRequest):
    """The adapter of each backend with automatic differentiation.

    Skipped, with the bridge's reason, where ``arrays.value_and_grad`` raises
    ``NotApplicable`` (e.g. the array_api backend: the standard has no autodiff).
    """
    adapter = _adapter(request.param)
    x = adapter.arrays.from_numpy(np.ones(1, np.float32))
    try:
        adapter.arrays.value_and_grad(lambda v: v, x, np.ones(1, np.float32))
    except NotApplicable as exc:
        pytest.skip(f"{request.param}: {exc}")
    return adapter


@pytest.fixture(params=MLP_MODULE.backends)
def course_backend(request: pytest.FixtureRequest):
    """The adapter of each backend the course covers (its MLP and training step)."""
    return _adapter(request.param)


@pytest.fixture(params=NATIVE_AUDIT.backends)
def audited_backend(request: pytest.FixtureRequest):
    """The adapter of each backend whose framework has native dropouts to audit."""
    return _adapter(request.param)


@pytest.fixture
def umask_022():
    """Run the test under umask 022 (read afresh by course.file_modes), then restore it."""
    import os

    from dropout_ref.course.file_modes import current_umask

    old = os.umask(0o022)
    current_umask.cache_clear()
    try:
        yield
    finally:
        os.umask(old)
        current_umask.cache_clear()
