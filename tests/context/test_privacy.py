"""Nothing from an older version of a document, and nothing from a secret file, ever
reaches the packed context: through recent code, definitions, or search hits."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path

import pytest
from conftest import write_project

from ouzel.indexer.config import DEFAULT_SECRET_GLOBS
from ouzel.server.documents import DocumentStore, TextChange
from ouzel.server.features.context.engine import ContextEngine, EngineOptions, SymbolSite
from ouzel.server.features.context.files import FileTexts, SecretGuard
from ouzel.server.features.context.model import Candidate, ContextRequest, ContextResult
from ouzel.server.features.context.pack import Packer, comment_blocks
from ouzel.server.features.context.python_defs import JediService
from ouzel.server.features.context.recent import RecentBuffer
from ouzel.server.features.context.tokens import LlamaVocabCounter

ALL = ("definitions", "bm25", "recent")
SECRET_GLOBS = [*DEFAULT_SECRET_GLOBS, "*_secret.py"]


class Everything:
    """A search that returns every chunk of the given files (to test what is filtered)."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files

    def chunks(self, query: str, limit: int, exclude: Collection[Path]) -> list[Candidate]:
        hits = []
        for path in self.files:
            text = path.read_text()
            hits.append(Candidate("bm25", path, 0, text.count("\n") + 1, text, len(hits)))
        return hits[:limit]

    def symbols(self, name: str, limit: int) -> list[SymbolSite]:
        return []

    def similar(self, text: str, limit: int, exclude: Collection[Path]) -> list[Candidate] | None:
        return None


@pytest.fixture
def store_and_engine(
    tmp_path: Path, jedi: JediService, counter: LlamaVocabCounter
) -> Iterator[tuple[Path, DocumentStore, ContextEngine]]:
    root = write_project(
        tmp_path / "w",
        {
            "keys_secret.py": "API_KEY = 'sk-live-0000-SECRET-VALUE'\n\ndef token():\n"
            "    return API_KEY\n",
            "lib.py": "def compute(x):\n    return x + 1\n",
            ".env": "PASSWORD=hunter2-SECRET-VALUE\n",
            "app.py": "from lib import compute\nfrom keys_secret import token, API_KEY\n\n"
            "def main():\n    value = compute(1)\n    key = token()\n    \n",
        },
    )
    guard = SecretGuard([root], SECRET_GLOBS)
    recent = RecentBuffer(allowed=guard.allowed)
    store = DocumentStore()
    store.on_change(recent.on_document)
    search = Everything([root / "lib.py", root / "keys_secret.py", root / ".env"])
    engine = ContextEngine(
        jedi,
        recent,
        Packer(counter, comment_blocks()),
        guard,
        FileTexts(),
        retrieval_for=lambda _: search,
    )
    yield root, store, engine


def _gather(
    engine: ContextEngine,
    store: DocumentStore,
    root: Path,
    name: str,
    at: str,
    analyze: bool = True,
) -> ContextResult:
    """Context at the end of `at`; `analyze=False` keeps Jedi's table of an older version."""
    path = root / name
    doc = store.get(path.as_uri())
    offset = doc.text.index(at) + len(at)
    request = ContextRequest(doc.uri, path, "python", doc.version, doc.text, offset, root)
    documents = {root / Path(d.uri).name: d.text for d in store.all()}
    if analyze:
        engine.jedi.analyze(doc.uri, path, doc.text, doc.version, root).result(60)
    options = EngineOptions(budget=4000, jedi_cap_s=5.0, strategies=ALL)
    line = doc.text.count("\n", 0, offset)
    return engine.gather(request, options, (line - 3, line), documents)


def _open(store: DocumentStore, root: Path, name: str, text: str | None = None) -> None:
    path = root / name
    store.open(path.as_uri(), "python", 1, text if text is not None else path.read_text())


def test_secret_files_never_appear(
    store_and_engine: tuple[Path, DocumentStore, ContextEngine],
) -> None:
    root, store, engine = store_and_engine
    _open(store, root, "keys_secret.py")  # the user looked at it: still never remembered
    _open(store, root, ".env")
    _open(store, root, "app.py")
    result = _gather(engine, store, root, "app.py", "key = token()\n    ")
    texts = "".join(part.text for part in result.parts)
    assert "SECRET-VALUE" not in texts
    assert all(part.path not in (root / "keys_secret.py", root / ".env") for part in result.parts)
    assert any(part.label == "compute" for part in result.parts)  # the rest still works
    assert all(region.path != root / ".env" for region in engine.recent.regions())


def test_no_context_at_all_in_a_secret_file(
    store_and_engine: tuple[Path, DocumentStore, ContextEngine],
) -> None:
    root, store, engine = store_and_engine
    _open(store, root, "keys_secret.py")
    result = _gather(engine, store, root, "keys_secret.py", "return ")
    assert result.parts == [] and result.skipped == "secret file"


def test_a_symlink_to_a_secret_is_a_secret(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("A=1\n")
    (tmp_path / "settings_link.py").symlink_to(tmp_path / ".env")
    guard = SecretGuard([tmp_path], DEFAULT_SECRET_GLOBS)
    assert guard.is_secret(tmp_path / "settings_link.py")
    assert guard.is_secret(Path.home() / ".ssh" / "id_ed25519")  # outside any workspace too
    assert not guard.is_secret(tmp_path / "app.py")


def test_an_older_version_never_leaks(
    store_and_engine: tuple[Path, DocumentStore, ContextEngine],
) -> None:
    root, store, engine = store_and_engine
    _open(store, root, "app.py")
    # lib.py is open and edited: the old body (and a secret pasted and deleted) must go.
    lib_v1 = "def compute(x):\n    token = 'PASTED-BY-MISTAKE-V1'\n    return x + 1\n"
    _open(store, root, "lib.py", lib_v1)
    _gather(engine, store, root, "app.py", "key = token()\n    ")  # caches, regions, table
    lib = (root / "lib.py").as_uri()
    store.change(lib, 2, [TextChange((1, 0, 2, 0), "")], "utf-16")  # the line is deleted
    assert "V1" not in store.get(lib).text
    # app.py changes too: its table (built for version 1) still points into lib.py.
    app = (root / "app.py").as_uri()
    store.change(app, 2, [TextChange((6, 4, 6, 4), "compute(")], "utf-16")
    result = _gather(engine, store, root, "app.py", "compute(", analyze=False)
    texts = "".join(part.text for part in result.parts)
    assert "PASTED-BY-MISTAKE-V1" not in texts
    assert any("def compute(x):\n    return x + 1" in part.text for part in result.parts)
    # And in the requesting document itself: a local definition read from the snapshot.
    store.change(
        app, 3, [TextChange((0, 0, 0, 0), "def helper():\n    return 'OLD-V3'\n\n")], "utf-16"
    )
    store.change(app, 4, [TextChange((1, 12, 1, 18), "NEW-V4")], "utf-16")
    text = store.get(app).text
    store.change(app, 5, [TextChange(None, text + "\n" * 60 + "x = helper(")], "utf-16")
    result = _gather(engine, store, root, "app.py", "x = helper(", analyze=False)
    texts = "".join(part.text for part in result.parts)
    assert "NEW-V4" in texts and "OLD-V3" not in texts


def test_search_hits_from_an_edited_open_document_are_not_its_old_text(
    store_and_engine: tuple[Path, DocumentStore, ContextEngine],
) -> None:
    """The index holds lib.py as saved; the user has since changed it in the editor."""
    root, store, engine = store_and_engine
    (root / "lib.py").write_text("def compute(x):\n    return x + 1  # OLD-INDEXED-TEXT\n")
    _open(store, root, "lib.py", "def compute(x):\n    return x + 2\n")
    _open(store, root, "app.py")
    result = _gather(engine, store, root, "app.py", "key = token()\n    ")
    assert "OLD-INDEXED-TEXT" not in "".join(part.text for part in result.parts)
    assert all(part.source != "bm25" or part.path != root / "lib.py" for part in result.parts)
