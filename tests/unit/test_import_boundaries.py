"""The layers stay apart: the emulators (``localcloud``) know nothing of the product, and the saga library
knows nothing of the emulators, the dev stack or the test helpers.

Every module's source is parsed with ``ast``, so an import inside a function counts as much as one at the
top, relative imports are resolved, and ``importlib.import_module("...")`` with a literal name counts too.
Handing a command to another program (``localcloud up`` runs ``python -m devstack`` through ``os.execv``)
is not an import and is allowed."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# (the source tree, its import root, the top-level packages it must not import)
BOUNDARIES = {
    "localcloud": (ROOT / "localcloud", ROOT, ("saga_orchestrator", "devstack", "functions", "examples")),
    "saga_orchestrator": (
        ROOT / "shared" / "saga_orchestrator",
        ROOT / "shared",
        ("tests", "localcloud", "devstack"),
    ),
}


def module_name(path: Path, import_root: Path) -> str:
    parts = list(path.relative_to(import_root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _dynamic_import(node: ast.Call) -> str | None:
    """The literal name given to ``importlib.import_module`` or ``__import__``, if any."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name in ("import_module", "__import__") and node.args:
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
    return None


def imported_modules(source: str, module: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """``(line, module)`` for every import anywhere in ``source`` (``from a import b`` yields ``a.b``)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            yield node.lineno, base
            yield from ((node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call) and (dynamic := _dynamic_import(node)):
            yield node.lineno, dynamic


def is_within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def crossings(tree: Path, import_root: Path, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted(tree.rglob("*.py")):
        module = module_name(path, import_root)
        source = path.read_text(encoding="utf-8")
        for line, name in imported_modules(source, module, path.name == "__init__.py"):
            if is_within(name, forbidden):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return sorted(set(found))


@pytest.mark.parametrize("layer", sorted(BOUNDARIES))
def test_a_layer_imports_nothing_from_the_layers_it_must_not_know(layer: str) -> None:
    tree, import_root, forbidden = BOUNDARIES[layer]
    assert list(tree.rglob("*.py")), f"no modules found under {tree}"
    assert crossings(tree, import_root, forbidden) == []


def test_imports_inside_functions_relative_imports_and_import_module_calls_are_all_seen() -> None:
    source = """
import os
from . import clock
from ..workflows import engine


def later():
    import saga_orchestrator.settings
    from devstack.up import main
    return importlib.import_module("functions.start_saga.main")
"""
    found = {name for _, name in imported_modules(source, "localcloud.tasks.server")}
    assert {"os", "localcloud.tasks.clock", "localcloud.workflows.engine"} <= found
    assert {"saga_orchestrator.settings", "devstack.up", "functions.start_saga.main"} <= found
    assert [n for n in sorted(found) if is_within(n, ("saga_orchestrator", "devstack", "functions"))] == [
        "devstack.up",
        "devstack.up.main",
        "functions.start_saga.main",
        "saga_orchestrator.settings",
    ]


def test_a_relative_import_in_a_package_init_resolves_against_the_package_itself() -> None:
    found = {name for _, name in imported_modules("from .state import X", "localcloud.pubsub", True)}
    assert found == {"localcloud.pubsub.state", "localcloud.pubsub.state.X"}


def test_a_name_that_only_starts_like_a_forbidden_package_is_not_a_crossing() -> None:
    assert not is_within("devstacker.tools", ("devstack",))
    assert is_within("devstack", ("devstack",))
