"""Shared pieces for the context engine's tests: fixture projects, Jedi, the tokenizer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ouzel.server.features.context.python_defs import JediService
from ouzel.server.features.context.tokens import (
    LlamaVocabCounter,
    counter_for_model,
    embedded_model_path,
)

# A package that re-exports from a private module, with relative imports one and two
# levels up, a module alias, and an application using all of it.
PROJECT = {
    "pkg/__init__.py": "from .impl import helper, Widget\n\n__all__ = ['helper', 'Widget']\n",
    "pkg/impl.py": (
        '"""Implementation."""\n'
        "\n"
        "\n"
        "def helper(value: int, scale: float = 2.0) -> float:\n"
        '    """Scale a value."""\n'
        "    return value * scale\n"
        "\n"
        "\n"
        "class Widget:\n"
        '    """A thing with a size."""\n'
        "\n"
        "    def __init__(self, size: int) -> None:\n"
        "        self.size = size\n"
        "\n"
        "    def grow(self, by: int) -> 'Widget':\n"
        "        return Widget(self.size + by)\n"
    ),
    "pkg/sub/__init__.py": "",
    "pkg/sub/sibling.py": "def assist(name: str) -> str:\n    return name.upper()\n",
    "pkg/sub/mod.py": (
        "from ..impl import helper as scaled\n"
        "from . import sibling\n"
        "\n"
        "\n"
        "def run(n: int) -> str:\n"
        "    total = scaled(n)\n"
        "    return sibling.assist(str(total))\n"
    ),
    "app.py": (
        "from pkg import helper, Widget\n"
        "import pkg.sub.mod as mod\n"
        "\n"
        "\n"
        "def main() -> None:\n"
        "    w = Widget(3)\n"
        "    bigger = w.grow(2)\n"
        "    print(helper(bigger.size), mod.run(1))\n"
        "    \n"
    ),
}


def write_project(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (root / ".git").mkdir(exist_ok=True)  # a workspace root marker
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "project", PROJECT)


@pytest.fixture(scope="module")
def jedi() -> Iterator[JediService]:
    """One Jedi worker process per test module (starting one imports Jedi: ~1 s)."""
    service = JediService()
    yield service
    service.close()


@pytest.fixture(scope="session")
def counter() -> LlamaVocabCounter:
    """The embedded model's real tokenizer (its vocabulary only)."""
    found = counter_for_model(embedded_model_path())
    assert isinstance(found, LlamaVocabCounter), "the embedded model's vocabulary must load"
    return found
