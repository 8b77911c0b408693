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


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports anywhere: module level, functions, methods, branches.

    A function-level import is lazy, but it still closes a circle: the first call of the
    function imports the other module, which may be half-initialised at that moment. So every
    ``Import``/``ImportFrom`` node of the module's tree counts, relative ones resolved against
    the module's package.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
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


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package modules it imports, without package -> own submodule edges.

    A package's ``__init__`` importing its own submodules is how a package is built, and a
    submodule importing a sibling through ``from package import sibling`` names the package:
    neither edge (package -> own submodule) counts toward a circle.
    """
    known = set(modules)
    graph = {name: imported_modules(name, path, known) for name, path in modules.items()}
    return {
        name: {m for m in edges if not m.startswith(name + ".")} for name, edges in graph.items()
    }


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle of ``graph``: one per strongly connected group of modules.

    Tarjan's algorithm finds the groups; each is reported as one circle through all of its
    members (a shortest cycle from its first module back to itself, then any member not on it
    listed after), so one failure names every circle at once.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for node in sorted(graph):
            if node not in index:
                connect(node)
    finally:
        sys.setrecursionlimit(limit)
    return [shortest_cycle(graph, sorted(group)) for group in sorted(groups)]


def shortest_cycle(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """A shortest circle from ``group[0]`` back to it inside ``group`` (breadth first)."""
    start, members = group[0], set(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & members):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"{group} is not strongly connected")


def test_import_circles_are_found_in_function_level_and_relative_imports(tmp_path):
    # A three-module circle closed by a relative import inside a function, a two-module one
    # closed by an import inside a method's branch, and a package whose __init__ imports its
    # own submodule (not a circle): both circles are found, each once, the package edge never.
    files = {
        "pkg/__init__.py": "from pkg import a\n",
        "pkg/a.py": "import pkg.b\n",
        "pkg/b.py": "def f():\n    from .c import g\n",
        "pkg/c.py": "from pkg.a import x\n",
        "pkg/d.py": "class K:\n    def m(self):\n        if True:\n            import pkg.e\n",
        "pkg/e.py": "from . import d\n",
        "pkg/f.py": "import pkg\n",
    }
    modules = {}
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        parts = Path(relative).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    assert import_circles(import_graph(modules)) == [
        ["pkg.a", "pkg.b", "pkg.c", "pkg.a"],
        ["pkg.d", "pkg.e", "pkg.d"],
    ]


def test_no_import_circles():
    circles = import_circles(import_graph(package_modules()))
    assert not circles, f"{len(circles)} import circle(s), function-level imports included:\n" + (
        "\n".join(" -> ".join(circle) for circle in circles)
    )


def test_no_submodule_is_shadowed_by_an_attribute(registration):
    package = registration.module
    for info in pkgutil.iter_modules(package.__path__):
        value = vars(package).get(info.name)
        if value is not None:
            assert inspect.ismodule(value), (
                f"{package.__name__}.{info.name} names a {type(value).__name__}, not the module"
            )
