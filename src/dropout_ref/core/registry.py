"""Which backends exist, which import here, and how to install the rest (SPEC E1, E2).

Nothing here imports a framework until a backend is asked for by name.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from dropout_ref.core.contract import Backend, ContractError


@dataclass(frozen=True)
class BackendInfo:
    """Static facts about one backend.

    Attributes
    ----------
    name : str
        Backend name, also the adapter's module name under ``dropout_ref``.
    framework : str
        Top-level module of the framework.
    install : str
        The exact command that installs the framework as tested here.
    """

    name: str
    framework: str
    install: str

    @property
    def adapter(self) -> str:
        """Dotted path of the adapter package."""
        return f"dropout_ref.{self.name}"


# Order matters: imports happen in this order, and TensorFlow comes after torch
# because importing it first has been reported to crash torch in one process.
BACKENDS: dict[str, BackendInfo] = {
    info.name: info
    for info in (
        BackendInfo("numpy", "numpy", 'python -m pip install "numpy==1.26.4"'),
        BackendInfo("torch", "torch", 'python -m pip install "torch==2.13.0"'),
        BackendInfo("mxnet", "mxnet", 'python -m pip install "mxnet==1.9.1" "numpy==1.26.4"'),
        BackendInfo(
            "tensorflow", "tensorflow", 'python -m pip install "tensorflow-cpu==2.21.0"'
        ),
        BackendInfo(
            "jax", "jax", 'python -m pip install "jax[cpu]==0.10.2" "flax==0.12.8"'
        ),
        BackendInfo(
            "array_api",
            "array_api_compat",
            'python -m pip install "array-api-compat==1.16.0" "array-api-strict==2.6.1"',
        ),
    )
}


def known_backends() -> tuple[str, ...]:
    """Return the names of every backend this package has an adapter for."""
    return tuple(BACKENDS)


def backend_info(name: str) -> BackendInfo:
    """Return the static facts of backend ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not a known backend (E2); the message lists the known ones.
    """
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(
            f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}"
        )
    return BACKENDS[name]


def get_backend(name: str) -> Backend:
    """Import backend ``name``'s adapter and return its registration.

    Parameters
    ----------
    name : str
        One of :func:`known_backends`.

    Returns
    -------
    Backend
        The ``BACKEND`` of ``dropout_ref.<name>``: its ``ops``, ``arrays``,
        ``dropout_layer`` and ``kit_dropout_layer`` (see
        :class:`dropout_ref.core.contract.Backend`).

    Raises
    ------
    ValueError
        If ``name`` is unknown (E2).
    ImportError
        If the framework is not installed or fails to import (E1); the
        message names the backend and the install command.
    """
    info = backend_info(name)
    if importlib.util.find_spec(info.framework) is None:
        raise ImportError(
            f"the {name} backend needs the {info.framework!r} package, which is not "
            f"installed; install it with: {info.install}"
        )
    try:
        module = importlib.import_module(info.adapter)
    except ImportError as exc:
        raise ImportError(
            f"the {name} backend could not import {info.framework!r} ({exc}); "
            f"reinstall it with: {info.install}"
        ) from exc
    registration = module.BACKEND
    if not isinstance(registration, Backend):
        raise ContractError(f"{info.adapter}.BACKEND is not a dropout_ref.core.contract.Backend")
    return registration


def available_backends() -> tuple[str, ...]:
    """Return the names of the backends whose framework imports here.

    Importing a framework takes seconds (TensorFlow), so this imports each
    one; call it once and keep the answer.
    """
    found = []
    for name in BACKENDS:
        try:
            get_backend(name)
        except ImportError:
            continue
        found.append(name)
    return tuple(found)
