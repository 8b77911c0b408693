"""Shared fixtures: every test parametrised by ``backend`` runs once per backend."""

from __future__ import annotations

import pytest

from dropout_ref.core.contract import kit_dropout_layer
from dropout_ref.core.registry import get_backend, known_backends


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
    """The adapter of each backend with automatic differentiation."""
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
