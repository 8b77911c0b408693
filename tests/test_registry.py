"""SPEC E1, E2 and the promise that ``import dropout_ref`` imports no framework."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import dropout_ref
from dropout_ref.core import registry
from dropout_ref.core.registry import BackendInfo

FRAMEWORKS = ("torch", "tensorflow", "mxnet", "keras", "jax")


def test_e2_unknown_backend_lists_known_ones():
    with pytest.raises(ValueError) as info:
        dropout_ref.get_backend("jaxx")
    message = str(info.value)
    assert "'jaxx'" in message
    for name in ("numpy", "torch", "tensorflow", "mxnet"):
        assert name in message


@pytest.mark.parametrize("bad", [None, 3, "", "Torch"])
def test_e2_non_string_or_wrong_case_name(bad):
    with pytest.raises(ValueError, match="known backends"):
        dropout_ref.get_backend(bad)


def test_e1_missing_framework_names_backend_and_install_command(monkeypatch):
    install = 'python -m pip install "fakeflow==9.9"'
    fake = BackendInfo("fakeflow", "fakeflow_not_installed", install)
    monkeypatch.setitem(registry.BACKENDS, "fakeflow", fake)
    with pytest.raises(ImportError) as info:
        dropout_ref.get_backend("fakeflow")
    message = str(info.value)
    assert "fakeflow backend" in message
    assert 'python -m pip install "fakeflow==9.9"' in message
    assert "fakeflow" not in dropout_ref.available_backends()


def test_e1_framework_that_fails_to_import(monkeypatch):
    """Installed but broken (here: no adapter module) is still an ImportError with the command."""
    fake = BackendInfo("json_backend", "json", 'python -m pip install "json==0"')
    monkeypatch.setitem(registry.BACKENDS, "json_backend", fake)
    with pytest.raises(ImportError, match=r"could not import 'json'.*pip install"):
        dropout_ref.get_backend("json_backend")


def test_available_backends_are_importable_adapters():
    for name in dropout_ref.available_backends():
        module = dropout_ref.get_backend(name)
        assert callable(module.dropout_layer)
        assert module.ops.name == name == module.arrays.name


#: Framework-specific module names: the adapters and each tool's per-framework modules.
FRAMEWORK_PARTS = {*registry.BACKENDS, "keras", "flax"}


def core_modules() -> list[str]:
    """Every module of the package except the per-framework ones (adapters, tool modules).

    A per-framework module has the framework's name as one part of its dotted path
    (``dropout_ref.torch.ops``, ``dropout_ref.models.torch.mlp``,
    ``dropout_ref.conformance.natives.keras``): the layout keeps that true.
    """
    names = ["dropout_ref"]
    for info in pkgutil.walk_packages(dropout_ref.__path__, "dropout_ref."):
        if not FRAMEWORK_PARTS & set(info.name.split(".")[1:]):
            names.append(info.name)
    return [n for n in names if n.rpartition(".")[2] != "__main__"]  # __main__ runs a command


def test_import_dropout_ref_imports_no_framework():
    code = (
        "import dropout_ref, sys; "
        f"loaded = set({FRAMEWORKS!r}) & set(sys.modules); "
        "assert not loaded, loaded"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_core_modules_import_no_framework():
    """The neutral core (validation, stats, CLI, conformance, ...) never imports a framework."""
    modules = core_modules()
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"loaded = set({FRAMEWORKS!r}) & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def test_cli_help_and_backends_command():
    done = subprocess.run(
        [sys.executable, "-m", "dropout_ref", "backends"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    for name in registry.BACKENDS:
        assert name in done.stdout
