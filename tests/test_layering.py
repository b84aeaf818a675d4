"""The architecture's import rules (docs/ARCHITECTURE.md, invariant 1), direct and indirect.

The import graph is computed statically (ast) over the source tree: every `import` and
`from … import` a module runs, at the top or inside a function (a lazy import is still an
import), but not those under `if TYPE_CHECKING:`. Importing `a.b.c` also runs the packages
`a.b` and `a`. A rule on a module holds for everything it reaches through ouzel's modules.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"server": "ouzel.server", "indexer": "ouzel.indexer", "inference": "ouzel.inference"}
LSP_MODULES = ("pygls", "lsprotocol", "cattrs")
# The settings model is plain pydantic: the one piece of `server/` the libraries may read
# (with its trust policy and the package it lives in).
ALLOWED_FROM_SERVER = {"ouzel.server.settings", "ouzel.server.settings_trust", "ouzel.server"}
# Imports that break the rules and are being removed; a test below fails when an entry is
# no longer needed. Empty since `server/session.py` became LSP-free (its LSP side is
# `server/client.py`). Nothing may be added here.
KNOWN_BREACHES: set[tuple[str, str]] = set()


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = [package, *path.relative_to(ROOT / folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except the bodies of `if TYPE_CHECKING:` blocks."""
    nodes: list[ast.AST] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))
    return nodes


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


def _with_packages(name: str) -> list[str]:
    """`a.b.c` → a.b.c, a.b, a: importing a module runs its packages first."""
    parts = name.split(".")
    return [".".join(parts[:n]) for n in range(len(parts), 0, -1)]


@cache
def imports_of(module: str) -> frozenset[str]:
    """The names `module` imports when it runs (ouzel modules and third-party ones)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.update(_with_packages(alias.name))
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, node)
            names.update(_with_packages(base))
            # `from pkg import mod` imports the module pkg.mod when there is one.
            names.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES)
    names.discard(module)
    return frozenset(names)


def reached(
    start: str, tolerated: frozenset[tuple[str, str]] = frozenset()
) -> dict[str, list[str]]:
    """Every name `start` reaches through ouzel's modules, with one import chain to it
    (not following the `tolerated` imports)."""
    chains: dict[str, list[str]] = {start: [start]}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for name in sorted(imports_of(module)):
            if name in chains or (module, name) in tolerated:
                continue
            chains[name] = [*chains[module], name]
            if name in MODULES:
                queue.append(name)
    return chains


def _violations(
    prefix: str, forbidden: Callable[[str], bool], tolerated: frozenset[tuple[str, str]]
) -> list[str]:
    problems = []
    for module in sorted(m for m in MODULES if m == prefix or m.startswith(prefix + ".")):
        for name, chain in reached(module, tolerated).items():
            if forbidden(name):
                problems.append(" → ".join(chain))
                break  # one chain per module says enough
    return problems


def _is_lsp(name: str) -> bool:
    return name.split(".")[0] in LSP_MODULES


def _is_server(name: str) -> bool:
    return name.startswith("ouzel.server") and name not in ALLOWED_FROM_SERVER


@pytest.mark.parametrize("package", ["ouzel.indexer", "ouzel.inference"])
def test_libraries_never_reach_lsp(package: str) -> None:
    assert _violations(package, _is_lsp, frozenset()) == []


@pytest.mark.parametrize("package", ["ouzel.indexer", "ouzel.inference"])
def test_libraries_reach_nothing_of_the_server_but_the_settings(package: str) -> None:
    assert _violations(package, _is_server, frozenset()) == []


def test_features_never_reach_lsp() -> None:
    assert _violations("ouzel.server.features", _is_lsp, frozenset(KNOWN_BREACHES)) == []


def test_the_agent_never_reaches_lsp() -> None:
    # The agent's core is LSP-free: the editor layer implements its Confirmer.
    assert _violations("ouzel.server.agent", _is_lsp, frozenset()) == []


def test_every_known_breach_is_still_needed() -> None:
    for module, name in sorted(KNOWN_BREACHES):
        assert name in imports_of(module), f"{module} no longer imports {name}: drop the entry"
        chain = reached(name).get("lsprotocol") or reached(name).get("pygls")
        assert chain, f"{name} no longer reaches LSP: drop ({module}, {name})"


# --- the graph itself ----------------------------------------------------------------------


def test_the_graph_sees_every_kind_of_import() -> None:
    # relative, lazy (inside a function), `from package import module`, and packages
    assert "ouzel.server.features.context.sources.common" in imports_of(
        "ouzel.server.features.context.engine"
    )
    assert "ouzel.server.features" in imports_of("ouzel.server.features.context.engine")
    assert "lsprotocol" in imports_of("ouzel.server.handlers.ranges")
    assert "lsprotocol" not in reached("ouzel.server.convert")
    chain = reached("ouzel.server.handlers.completion")["lsprotocol"]
    assert chain[0] == "ouzel.server.handlers.completion" and chain[-1] == "lsprotocol"


def test_type_checking_imports_are_not_runtime_imports() -> None:
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pygls\n")
    names = {
        alias.name
        for node in _runtime_nodes(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert "pygls" not in names
