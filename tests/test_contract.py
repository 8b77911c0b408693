"""The written backend contract (dropout_ref.core.contract): every installed backend against it.

A backend is its adapter's registration (``BACKEND``: ops, arrays, dropout_layer) plus one
module per tool that covers it. These tests fail naming the hook when one is missing or
misnamed, and keep the layout free of import circles and of modules shadowed by instances.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import dropout_ref
from dropout_ref.core import registry
from dropout_ref.core.blocks import BlockArrays
from dropout_ref.core.contract import (
    ArrayBridge,
    Backend,
    ContractError,
    DropoutOps,
    ToolModule,
)
from dropout_ref.core.exports import exported_names

#: The packages that declare the tools' per-framework modules.
TOOL_PACKAGES = (
    "dropout_ref.conformance.natives",
    "dropout_ref.bench.cases",
    "dropout_ref.course.backends",
    "dropout_ref.models.backends",
    "dropout_ref.core.doors",
    "dropout_ref.conformance.transformer",
)


def declared_tools() -> list[ToolModule]:
    tools = []
    for package in TOOL_PACKAGES:
        module = importlib.import_module(package)
        tools.extend(v for v in vars(module).values() if isinstance(v, ToolModule))
    return tools


def test_every_tool_package_declares_a_tool():
    names = {tool.tool for tool in declared_tools()}
    assert {"native audit", "bench cases", "course MLP", "course training step",
            "model modes", "course GPT", "course GPT training step", "course forward",
            "course GPT AdamW", "transformer layer audit", "portable masks"} <= names


@pytest.fixture(params=registry.known_backends())
def registration(request) -> Backend:
    try:
        return dropout_ref.get_backend(request.param)
    except ImportError as exc:
        pytest.skip(str(exc))


def test_adapter_registration_is_a_backend_of_the_contract(registration):
    assert isinstance(registration, Backend)
    assert isinstance(registration.ops, DropoutOps)
    assert isinstance(registration.arrays, ArrayBridge)
    assert registration.ops.name == registration.arrays.name == registration.name
    assert registration.module.BACKEND is registration
    assert registration.module.dropout_layer is registration.dropout_layer
    assert isinstance(registration.fast_path_status(), str)


def test_ops_implement_every_abstract_hook_and_block_arrays(registration):
    ops = registration.ops
    for name in DropoutOps.__abstractmethods__:
        assert getattr(type(ops), name) is not getattr(DropoutOps, name), name
    X = registration.arrays.from_numpy(np.ones((2, 3), np.float32))
    assert isinstance(ops.block_arrays(X), BlockArrays)


def test_every_tool_covering_a_backend_has_its_declared_names(registration):
    for tool in declared_tools():
        if not tool.covers(registration.name):
            continue
        try:
            view = tool.load(registration.name)
        except ImportError as exc:  # e.g. Keras absent: the native audit module needs it
            if "keras" in str(exc).lower():
                continue
            raise
        for name in tool.required:
            assert getattr(view, name) is not None, (tool.tool, name)
        for name in tool.optional:
            getattr(view, name)


def test_lazy_exports_resolve(registration):
    module = registration.module
    for name in exported_names(registration.name):
        assert getattr(module, name) is not None
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchModel'"):
        module.NoSuchModel  # noqa: B018


def test_a_missing_required_name_is_named(monkeypatch):
    fake = types.ModuleType("dropout_ref_fake_tool.numpy")
    fake.framework_version = lambda: "0"
    monkeypatch.setitem(sys.modules, "dropout_ref_fake_tool.numpy", fake)
    tool = ToolModule(
        tool="fake tool",
        pattern="dropout_ref_fake_tool.{backend}",
        backends=("numpy",),
        required={"framework_version": "() -> str", "make_cases": "(size) -> cases"},
        optional={"MEMORY_POOLED": (False, "bool")},
    )
    with pytest.raises(ContractError, match=r"does not define make_cases \(\(size\) -> cases\)"):
        tool.load("numpy")
    fake.make_cases = lambda size: size
    view = tool.load("numpy")
    assert view.MEMORY_POOLED is False
    with pytest.raises(AttributeError, match="'CPU_KERNEL' is not declared"):
        view.CPU_KERNEL  # noqa: B018
    with pytest.raises(ValueError, match="no module for the torch backend"):
        tool.load("torch")


def test_ops_missing_an_abstract_hook_cannot_be_built():
    class Incomplete(DropoutOps):
        name = "incomplete"
        conversion_hint = ""

    with pytest.raises(TypeError, match="block_arrays"):
        Incomplete()


def test_a_registration_refuses_ops_outside_the_contract():
    numpy_backend = dropout_ref.get_backend("numpy")

    class LooseOps:  # the right methods, but not declared as the contract's DropoutOps
        name = "numpy"

    with pytest.raises(ContractError, match=r"ops must be a .*\.DropoutOps"):
        Backend("numpy", LooseOps(), numpy_backend.arrays, numpy_backend.dropout_layer)
    with pytest.raises(ContractError, match=r"ops.name is 'numpy'"):
        Backend("torch", numpy_backend.ops, numpy_backend.arrays, numpy_backend.dropout_layer)


def test_optional_hooks_default_to_the_plain_path():
    ops = dropout_ref.get_backend("numpy").ops
    assert ops.local_block(np.ones(3)) is None
    with pytest.raises(TypeError, match="key= is not supported by the numpy backend"):
        ops.check_key(object())


# -- the layout ---------------------------------------------------------------------------


def package_modules() -> dict[str, Path]:
    """Every module of the package, by dotted name, with its file."""
    root = Path(dropout_ref.__file__).parent
    found = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def top_level_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports at module level (function-local imports are lazy)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                base = ".".join(parent[: len(parent) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in out if m in known and m != name}


def test_no_import_circles():
    modules = package_modules()
    known = set(modules)
    graph = {name: top_level_imports(name, path, known) for name, path in modules.items()}
    # A package's __init__ importing its own submodules is how a package is built, and a
    # submodule importing a sibling through ``from package import sibling`` names the
    # package: count neither edge (package -> own submodule) as a circle.
    for name, edges in graph.items():
        graph[name] = {m for m in edges if not m.startswith(name + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circle = [*stack[stack.index(nxt):], nxt]
                pytest.fail("import circle: " + " -> ".join(circle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_submodule_is_shadowed_by_an_attribute(registration):
    package = registration.module
    for info in pkgutil.iter_modules(package.__path__):
        value = vars(package).get(info.name)
        if value is not None:
            assert inspect.ismodule(value), (
                f"{package.__name__}.{info.name} names a {type(value).__name__}, not the module"
            )
