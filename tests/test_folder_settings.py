"""Multi-root: each workspace folder's `.ouzel/config.toml` applies to its own files.

Two folders with different settings in one headless session built by the composition
root: snapshots carry their folder's settings, secret rules guard their own folder's files
(also when another folder's request reaches them), and each folder's index is built with
its own `index.exclude`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import wait_for

from ouzel.server import app
from ouzel.server.handlers.lifecycle import add_folder, reload_settings
from ouzel.server.session import Session

CONFIG_A = """
[context]
budget_tokens = 111

[index]
secret_globs = ["*.keep"]
exclude = ["generated/"]
"""
CONFIG_B = """
[context]
budget_tokens = 222
"""


def folder(base: Path, name: str, config: str) -> Path:
    root = base / name
    (root / ".ouzel").mkdir(parents=True)
    (root / ".ouzel" / "config.toml").write_text(config, encoding="utf-8")
    (root / "generated").mkdir()
    (root / "generated" / f"made_{name}.py").write_text(f"def made_in_{name}():\n    pass\n")
    (root / "main.py").write_text(f"def main_{name}():\n    pass\n")
    return root.resolve()


@pytest.fixture
def two_folders(tmp_path: Path) -> Iterator[tuple[Session, Path, Path]]:
    a, b = folder(tmp_path, "a", CONFIG_A), folder(tmp_path, "b", CONFIG_B)
    engine = app.build_engine()
    session = app.build_session(engine)
    add_folder(session, a.as_uri())
    add_folder(session, b.as_uri())
    reload_settings(session)
    yield session, a, b
    app.end_session(session)
    engine.close()


def test_each_folder_has_its_own_settings(two_folders: tuple[Session, Path, Path]) -> None:
    session, a, b = two_folders
    assert session.settings_for(a / "main.py").context.budget_tokens == 111
    assert session.settings_for(b / "main.py").context.budget_tokens == 222
    doc = session.documents.open((b / "main.py").as_uri(), "python", 1, "x = 1\n")
    snap = session.snapshot(doc)
    assert snap.root == b and snap.settings.context.budget_tokens == 222
    # The status of a document shows its folder's settings.
    section = session.status_sections["context"](snap.settings)
    assert section["budgetTokens"] == 222


def test_secret_rules_guard_their_own_folder(two_folders: tuple[Session, Path, Path]) -> None:
    session, a, b = two_folders
    for name in ("a", "b"):
        (a.parent / name / "notes.keep").write_text("token = 1\n")
    from_a, from_b = session.context.guard(a), session.context.guard(b)
    assert from_a.is_secret(a / "notes.keep")
    assert from_b.is_secret(a / "notes.keep")  # a's file, asked for from b: a's rules
    assert not from_b.is_secret(b / "notes.keep")
    assert not from_a.is_secret(b / "notes.keep")  # b's file: b's rules, even from a
    assert from_b.is_secret(b / ".env")  # the built-in rules hold everywhere


def test_each_folder_is_indexed_with_its_own_settings(
    two_folders: tuple[Session, Path, Path],
) -> None:
    from ouzel.indexer.search import search_symbols

    session, a, b = two_folders
    app.start_session(session)

    def symbols(root: Path, name: str) -> list[str]:
        for index in session.engine.index.indexes_for(session):
            if index.root == root:
                return [hit.name for hit in search_symbols(index, name, 5)]
        return []

    def indexed(root: Path) -> int | None:
        for index in session.engine.index.indexes_for(session):
            if index.root == root and index.status()["phase"] == "idle":
                return int(index.status()["files_indexed"])
        return None

    wait_for(lambda: "made_in_b" in symbols(b, "made_in_b"), 60, "b's generated file indexed")
    wait_for(lambda: "main_a" in symbols(a, "main_a"), 60, "a's main.py indexed")
    wait_for(lambda: indexed(a) is not None and indexed(b) is not None, 60, "both indexes idle")
    assert (indexed(a), indexed(b)) == (1, 2)  # a excludes generated/, b does not
    assert "made_in_a" not in symbols(a, "made_in_a")


def test_status_of_a_document_uses_its_folder_and_survives_bad_params(
    two_folders: tuple[Session, Path, Path],
) -> None:
    from ouzel.server.handlers.status import status

    session, _, b = two_folders
    uri = (b / "main.py").as_uri()
    session.documents.open(uri, "python", 3, "x = 1\n")
    result = status(session, {"textDocument": {"uri": uri}})
    assert result["document"] == {"uri": uri, "version": 3, "folder": str(b)}
    assert result["context"]["budgetTokens"] == 222
    assert status(session, None)["context"]["budgetTokens"] == 111  # the session's (a's)
    for bad in ({"textDocument": 5}, {"textDocument": {"uri": "file:///nowhere.py"}}, [1]):
        assert "document" not in status(session, bad)
