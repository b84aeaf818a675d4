"""`WorkspaceIndex` on real LanceDB: full and incremental updates, buffers, search, status."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from index_fixtures import Tree

from ouzel.indexer.config import IndexConfig
from ouzel.indexer.index import Progress, WorkspaceIndex
from ouzel.indexer.search import search_chunks, search_symbols

OpenIndex = Callable[..., WorkspaceIndex]
Workspace = Callable[[Tree], Path]

FILES: Tree = {
    "app/models.py": 'class UserAccount:\n    """A user."""\n\n    def display_name(self) -> str:\n        return "x"\n',
    "app/views.py": "from app.models import UserAccount\n\ndef render_account(account):\n    return account.display_name()\n",
    "web/main.ts": "export interface Session { id: string }\nexport function startSession(): Session { return { id: '1' } }\n",
    "svc/server.go": "package svc\n\ntype Server struct{}\n\nfunc (s *Server) Serve() error { return nil }\n",
    "README.md": "# Project\n\nHow to run the account service.\n\n## Setup\n\nInstall things.\n",
    "notes.txt": "free text about billing\n",
    ".env": "API_TOKEN=supersecret\n",
    "logo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
}


def names(index: WorkspaceIndex, query: str, **kwargs: object) -> list[str]:
    return [hit.qualified_name for hit in search_symbols(index, query, **kwargs)]  # type: ignore[arg-type]


def test_full_update_indexes_code_docs_and_text(
    workspace: Workspace, open_index: OpenIndex
) -> None:
    root = workspace(FILES)
    index = open_index(root)
    events: list[Progress] = []
    summary = index.update_all(events.append)
    assert summary.indexed == 6
    assert summary.skipped["secret"] == 1 and summary.skipped["binary"] == 1
    assert events[0].phase == "scanning" and events[-1].phase == "finishing"
    assert names(index, "UserAccount")[0] == "UserAccount"
    assert "UserAccount.display_name" in names(index, "display")
    assert names(index, "Serve") == ["Server.Serve", "Server"]  # exact before prefix
    assert names(index, "startSession") == ["startSession"]
    assert "Project > Setup" in names(index, "Setup")
    assert names(index, "user account")[0] == "UserAccount"  # words of names
    assert search_symbols(index, "user account")[0].match == "words"
    assert names(index, "account_user_missing") == []  # one identifier: no word guessing
    hit = search_symbols(index, "display_name")[0]
    assert (hit.path, hit.kind, hit.parent) == ("app/models.py", "method", "UserAccount")
    assert (hit.name_start_line, hit.name_start_col, hit.name_end_col) == (3, 8, 20)
    assert (hit.start_line, hit.end_line) == (3, 4)
    assert hit.signature == "def display_name(self) -> str"
    chunks = search_chunks(index, "billing")
    assert [c.path for c in chunks] == ["notes.txt"]
    assert not search_chunks(index, "supersecret")
    status = index.status()
    assert status["files_indexed"] == 6 and status["errors"] == 0 and status["pending"] == 0
    assert status["writable"] is True


def test_search_chunks_ranks_and_excludes(workspace: Workspace, open_index: OpenIndex) -> None:
    root = workspace(FILES)
    index = open_index(root)
    index.update_all()
    hits = search_chunks(index, "render_account display_name", limit=5)
    assert hits[0].path == "app/views.py"
    assert hits[0].symbols == ["render_account"]
    assert (hits[0].start_line, hits[0].end_line) == (0, 3)
    assert hits[0].score > 0
    excluded = search_chunks(index, "display_name", exclude_paths=["app/views.py", "it's.py"])
    assert {h.path for h in excluded} == {"app/models.py"}
    for odd in ["", "   ", "((", "a:b OR", "'; DROP TABLE chunks; --", "日本"]:
        assert isinstance(search_chunks(index, odd), list)
        assert isinstance(search_symbols(index, odd), list)


def test_incremental_change_delete_and_unchanged(
    workspace: Workspace, open_index: OpenIndex
) -> None:
    root = workspace(FILES)
    index = open_index(root)
    index.update_all()
    models = root / "app" / "models.py"
    models.write_text("class Customer:\n    pass\n")
    (root / "web" / "main.ts").unlink()
    summary = index.update_all()
    assert (summary.indexed, summary.removed) == (1, 1)
    assert names(index, "UserAccount") == []
    assert names(index, "Customer") == ["Customer"]
    assert names(index, "startSession") == []
    # Touching a file without changing it re-hashes it but writes no rows.
    os.utime(models, (1, 1))
    summary = index.update_all()
    assert (summary.indexed, summary.unchanged) == (0, 1)
    assert index.update_all().unchanged == 0  # the new mtime was recorded


def test_update_paths_handles_renames_and_folders(
    workspace: Workspace, open_index: OpenIndex
) -> None:
    root = workspace(FILES)
    index = open_index(root)
    index.update_all()
    (root / "app" / "models.py").rename(root / "app" / "accounts.py")
    summary = index.update_paths([root / "app" / "models.py", root / "app" / "accounts.py"])
    assert (summary.indexed, summary.removed) == (1, 1)
    assert search_symbols(index, "UserAccount")[0].path == "app/accounts.py"
    shutil.move(root / "app", root / "core")
    index.update_paths(["app", "core"])
    assert {h.path for h in search_symbols(index, "UserAccount")} == {"core/accounts.py"}
    shutil.rmtree(root / "core")
    assert index.update_paths([root / "core"]).removed == 2
    assert names(index, "render_account") == []
    assert index.update_paths(["/somewhere/else.py", root / ".env"]).indexed == 0


def test_editor_buffers_and_returning_to_disk(workspace: Workspace, open_index: OpenIndex) -> None:
    root = workspace(FILES)
    index = open_index(root)
    index.update_all()
    views = root / "app" / "views.py"
    index.update_text(views, views.read_text() + "\ndef unsaved_helper():\n    pass\n")
    assert names(index, "unsaved_helper") == ["unsaved_helper"]
    assert (
        index.update_text(
            views, views.read_text() + "\ndef unsaved_helper():\n    pass\n"
        ).unchanged
        == 1
    )
    index.update_paths([views])  # the buffer was closed without saving
    assert names(index, "unsaved_helper") == []
    assert names(index, "render_account") == ["render_account"]
    index.update_text(root / ".env", "def leaked(): pass\n")
    assert names(index, "leaked") == []


def test_ignore_rule_changes_rescan(workspace: Workspace, open_index: OpenIndex) -> None:
    root = workspace(FILES)
    index = open_index(root)
    index.update_all()
    (root / ".gitignore").write_text("svc/\n")
    index.update_paths([root / ".gitignore"])
    assert names(index, "Server") == []
    (root / ".gitignore").write_text("")
    index.update_paths([root / ".gitignore"])
    assert names(index, "Server")[0] == "Server"


def test_many_files_go_through_parser_processes(
    workspace: Workspace, open_index: OpenIndex
) -> None:
    files: Tree = {f"pkg/mod_{i}.py": f"def function_{i}():\n    return {i}\n" for i in range(40)}
    root = workspace(files)
    index = open_index(root, IndexConfig(watch=False, workers=2))
    summary = index.update_all()
    assert summary.indexed == 40 and summary.symbols == 40
    assert names(index, "function_17") == ["function_17"]
    assert len(search_symbols(index, "function_", limit=100)) == 40


def test_unreadable_file_is_an_error_and_retried(
    workspace: Workspace, open_index: OpenIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = workspace({"ok.py": "def fine(): pass\n", "locked.py": "def hidden(): pass\n"})
    real_read = Path.read_bytes

    def read_bytes(path: Path) -> bytes:
        if path.name == "locked.py":  # tests run as root, so chmod cannot refuse a read
            raise PermissionError(13, "Permission denied")
        return real_read(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    index = open_index(root)
    summary = index.update_all()
    assert (summary.indexed, summary.errors) == (1, 1)
    status = index.status()
    assert status["errors"] == 1
    assert status["last_error"] == "locked.py: PermissionError: Permission denied"
    monkeypatch.setattr(Path, "read_bytes", real_read)
    assert index.update_all().indexed == 1  # retried although unchanged on disk
    assert index.status()["errors"] == 0
    assert names(index, "hidden") == ["hidden"]


def test_a_file_gone_before_it_is_read_is_removed(
    workspace: Workspace, open_index: OpenIndex
) -> None:
    root = workspace({"a.py": "def first(): pass\n", "b.py": "def second(): pass\n"})
    index = open_index(root)
    index.update_all()
    (root / "a.py").write_text("def first_changed(): pass\n")
    entry = index.rules.entry_for("a.py")
    (root / "a.py").unlink()  # deleted between the walk and the read
    summary = index._index([entry], [], None)  # type: ignore[list-item]
    assert (summary.errors, summary.removed) == (0, 1)
    assert names(index, "first") == []


def test_reopening_keeps_the_index(workspace: Workspace, open_index: OpenIndex) -> None:
    root = workspace(FILES)
    first = WorkspaceIndex(root, IndexConfig(watch=False))
    first.update_all()
    first.close()
    again = open_index(root)
    assert names(again, "UserAccount")[0] == "UserAccount"
    assert again.update_all().indexed == 0
    assert again.status()["files_indexed"] == 6


def test_cache_location(workspace: Workspace, open_index: OpenIndex) -> None:
    root = workspace({"a.py": "def in_cache(): pass\n"})
    index = open_index(root, IndexConfig(watch=False, location="cache"))
    index.update_all()
    assert not (root / ".ouzel").exists()
    assert str(index.folder).startswith(os.environ["XDG_CACHE_HOME"])
    assert names(index, "in_cache") == ["in_cache"]


def test_a_read_only_workspace_keeps_its_index_in_the_cache(
    workspace: Workspace, open_index: OpenIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = workspace({"a.py": "def in_read_only(): pass\n"})
    real_mkdir = Path.mkdir

    def mkdir(path: Path, *args: object, **kwargs: object) -> None:
        if root in path.parents and ".ouzel" in path.parts:  # root may write anywhere
            raise PermissionError(13, "Permission denied")
        real_mkdir(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", mkdir)
    index = open_index(root)
    assert str(index.folder).startswith(os.environ["XDG_CACHE_HOME"])
    index.update_all()
    assert names(index, "in_read_only") == ["in_read_only"]
    assert not (root / ".ouzel").exists()
