"""Shared fixtures: every test parametrised by ``backend`` runs once per backend."""

from __future__ import annotations

import pytest

from dropout_ref.registry import get_backend, known_backends


@pytest.fixture(params=known_backends())
def backend(request: pytest.FixtureRequest):
    """The adapter module of each backend; skipped with the reason where it does not import."""
    try:
        return get_backend(request.param)
    except ImportError as exc:
        pytest.skip(str(exc))


@pytest.fixture(params=[name for name in known_backends() if name != "numpy"])
def autodiff_backend(request: pytest.FixtureRequest):
    """The adapter module of each backend with automatic differentiation."""
    try:
        return get_backend(request.param)
    except ImportError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def umask_022():
    """Run the test under umask 022 (read afresh by dropout_ref.file_modes), then restore it."""
    import os

    from dropout_ref.file_modes import current_umask

    old = os.umask(0o022)
    current_umask.cache_clear()
    try:
        yield
    finally:
        os.umask(old)
        current_umask.cache_clear()
