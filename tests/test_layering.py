"""The architecture's import rules (docs/ARCHITECTURE.md, invariant 1)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LSP_MODULES = ("pygls", "lsprotocol", "cattrs")
# The settings model is plain pydantic: the one piece of `server/` the libraries may read.
ALLOWED_FROM_SERVER = {"ouzel.server.settings"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_server_knows_lsp() -> None:
    for package in ("indexer", "inference"):
        for path in (ROOT / package).rglob("*.py"):
            for name in _imports(path):
                assert not name.startswith(LSP_MODULES), f"{path} imports {name}"


def test_libraries_do_not_depend_on_the_server() -> None:
    for package in ("indexer", "inference"):
        for path in (ROOT / package).rglob("*.py"):
            for name in _imports(path):
                if name.startswith("ouzel.server"):
                    assert name in ALLOWED_FROM_SERVER, f"{path} imports {name}"


def test_features_are_lsp_free() -> None:
    for path in (ROOT / "server" / "features").rglob("*.py"):
        for name in _imports(path):
            assert not name.startswith(LSP_MODULES), f"{path} imports {name}"
