"""Real Jedi on a fixture project: cross-module definitions through re-exports, relative
imports one and two levels up, module aliases, and attribute chains at the cursor."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from ouzel.indexer.config import DEFAULT_SECRET_GLOBS
from ouzel.server.features.context.engine import ContextEngine, EngineOptions
from ouzel.server.features.context.files import FileTexts, SecretGuard
from ouzel.server.features.context.model import ContextRequest
from ouzel.server.features.context.pack import Packer, comment_blocks
from ouzel.server.features.context.python_defs import (
    JediService,
    import_root,
    local_definitions,
)
from ouzel.server.features.context.recent import RecentBuffer
from ouzel.server.features.context.sources.definitions import in_standard_library
from ouzel.server.features.context.tokens import LlamaVocabCounter


def _table(jedi: JediService, root: Path, relative: str):  # type: ignore[no-untyped-def]
    path = root / relative
    table = jedi.analyze(path.as_uri(), path, path.read_text(), 1, root).result(60)
    assert table is not None
    return table


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines()) if text in line)


def test_a_reexported_name_resolves_to_its_real_definition(
    jedi: JediService, project: Path
) -> None:
    table = _table(jedi, project, "app.py")
    impl = project / "pkg" / "impl.py"
    (helper,) = table.lookup("helper")
    assert (helper.path, helper.line) == (impl, _line_of(impl, "def helper"))
    (widget,) = table.lookup("Widget")
    assert (widget.path, widget.line, widget.kind) == (
        impl,
        _line_of(impl, "class Widget"),
        "class",
    )


def test_relative_imports_and_module_attributes(jedi: JediService, project: Path) -> None:
    table = _table(jedi, project, "pkg/sub/mod.py")
    impl = project / "pkg" / "impl.py"
    sibling = project / "pkg" / "sub" / "sibling.py"
    (scaled,) = table.lookup("scaled")  # from ..impl import helper as scaled
    assert (scaled.path, scaled.line) == (impl, _line_of(impl, "def helper"))
    (assist,) = table.lookup("sibling.assist")  # from . import sibling; sibling.assist(...)
    assert (assist.path, assist.line) == (sibling, 0)
    assert table.module_path("sibling") == sibling
    assert table.usage_lines["sibling"] == [6]


def test_a_module_alias_and_its_attribute_chain(jedi: JediService, project: Path) -> None:
    table = _table(jedi, project, "app.py")
    mod = project / "pkg" / "sub" / "mod.py"
    assert table.module_path("mod") == mod
    (run,) = table.lookup("mod.run")
    assert (run.path, run.line) == (mod, _line_of(mod, "def run"))
    assert table.lookup("mod") == []  # a bare module is no definition to show


def test_an_attribute_at_the_cursor_goes_to_jedi_and_is_remembered(
    jedi: JediService, project: Path, counter: LlamaVocabCounter
) -> None:
    app = project / "app.py"
    text = app.read_text().replace("    \n", "    bigger.grow(\n")
    engine = ContextEngine(
        jedi,
        RecentBuffer(),
        Packer(counter, comment_blocks()),
        SecretGuard([project], DEFAULT_SECRET_GLOBS),
        FileTexts(),
    )
    offset = text.index("bigger.grow(") + len("bigger.grow(")
    request = ContextRequest(app.as_uri(), app, "python", 2, text, offset, project)
    options = EngineOptions(budget=1024, jedi_cap_s=5.0, strategies=("definitions",))
    result = engine.gather(request, options)
    assert jedi.known_at_cursor(app.as_uri(), "bigger.grow") is not None
    grow = [p for p in result.parts if p.label == "bigger.grow"]
    assert grow and "def grow(self, by: int)" in grow[0].text
    helper = [p for p in result.parts if p.label == "helper"]
    assert helper and helper[0].text.startswith("def helper(value: int, scale: float = 2.0)")
    assert all(p.path != app for p in result.parts)  # the file's own lines are in the window


def test_local_definitions_in_one_pass() -> None:
    text = "x = 1\nclass A:\n    def f(self):\n        y = 2\nasync def g(): pass\nz: int = 3\n"
    found = local_definitions(text)
    assert found == {"x": [0], "A": [1], "f": [2], "g": [4], "z": [5]}


def test_standard_library_definitions_come_after_the_workspace_ones(
    jedi: JediService, tmp_path: Path, counter: LlamaVocabCounter
) -> None:
    """In a project, `typing` and `__future__` (which the model knows) must not crowd out
    the project's own definitions: with room for one, the project's helper is it."""
    root = tmp_path / "proj"
    (root / "shop").mkdir(parents=True)
    (root / "shop" / "__init__.py").write_text("")
    (root / "shop" / "money.py").write_text(
        "def round_cents(amount: float) -> float:\n    return round(amount, 2)\n"
    )
    app = root / "shop" / "cart.py"
    text = (
        "from __future__ import annotations\n"
        "\n"
        "from typing import Optional, Sequence\n"
        "\n"
        "from .money import round_cents\n"
        "\n"
        "\n"
        "def total(prices: Sequence[float], discount: Optional[float]) -> float:\n"
        "    value = round_cents(sum(prices))\n"
        "    if discount is None:\n"
        "        return value\n"
        "    rate: Optional[float] = discount\n"
        "    items: Sequence[float] = prices\n"
        "    \n"
    )
    app.write_text(text)
    engine = ContextEngine(
        jedi,
        RecentBuffer(),
        Packer(counter, comment_blocks()),
        SecretGuard([root], DEFAULT_SECRET_GLOBS),
        FileTexts(),
    )
    jedi.analyze(app.as_uri(), app, text, 1, root).result(60)
    request = ContextRequest(app.as_uri(), app, "python", 1, text, len(text) - 1, root)
    wide = engine.gather(
        request,
        EngineOptions(budget=2048, jedi_cap_s=5.0, strategies=("definitions",), relevance=False),
    )
    labels = [part.label for part in wide.parts]
    assert {"round_cents", "Optional", "Sequence"} <= set(labels), labels  # all found
    # With the relevance rule (the default), typing's source never reaches the prompt.
    relevant = engine.gather(
        request, EngineOptions(budget=2048, jedi_cap_s=5.0, strategies=("definitions",))
    )
    assert [part.label for part in relevant.parts] == ["round_cents"]
    tight = engine.gather(
        request, EngineOptions(budget=40, jedi_cap_s=5.0, strategies=("definitions",))
    )
    assert [part.label for part in tight.parts] == ["round_cents"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (Path(sysconfig.get_paths()["stdlib"]) / "typing.py", True),
        (Path("/usr/lib/python3.12/inspect.py"), True),  # another interpreter's
        (Path("/x/.venv/lib/python3.12/site-packages/pydantic/main.py"), False),
        (Path("/usr/lib/python3/dist-packages/yaml/__init__.py"), False),
        (Path("/x/jedi/third_party/typeshed/stdlib/os/__init__.pyi"), True),
        (Path("/v/lib/python3.11/site-packages/jedi/third_party/typeshed/stdlib/re.pyi"), True),
        (Path("/home/u/project/lib/helpers.py"), False),
    ],
)
def test_in_standard_library(path: Path, expected: bool) -> None:
    assert in_standard_library(path) is expected


def test_a_package_folder_as_the_workspace_resolves_its_absolute_imports(
    jedi: JediService, tmp_path: Path
) -> None:
    """`code mypkg/`: `from mypkg.shapes import area` must find the workspace's file."""
    root = tmp_path / "checkout" / "mypkg"
    root.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "shapes.py").write_text("def area(side: float) -> float:\n    return side * side\n")
    (root / "plot.py").write_text("from mypkg.shapes import area\n\n\ndef draw():\n    area(2)\n")
    table = _table(jedi, root, "plot.py")
    (site,) = table.lookup("area")
    assert (site.path, site.line) == (root / "shapes.py", 0)
    assert import_root(root) == root.parent
    assert import_root(tmp_path) == tmp_path  # not a package: the root itself
