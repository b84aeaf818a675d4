"""The optional vector column, with a small deterministic embedder (a test stand-in for a
local embedding model): vectors are written, nearest neighbours found, a model change
rebuilds the index, and a failing model leaves text search working."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from index_fixtures import Tree

from ouzel.indexer.config import IndexConfig
from ouzel.indexer.embeddings import EmbeddingProvider
from ouzel.indexer.index import WorkspaceIndex
from ouzel.indexer.search import search_chunks, search_similar

OpenIndex = Callable[..., WorkspaceIndex]
Workspace = Callable[[Tree], Path]

FILES: Tree = {
    "billing.py": "def charge_invoice(invoice):\n    return invoice.total * tax_rate\n",
    "auth.py": "def check_password(user, password):\n    return hash(password) == user.digest\n",
    "notes.md": "# Notes\n\nInvoices are charged monthly with tax.\n",
}


class HashedWords:
    """Feature hashing of words into a unit vector."""

    def __init__(self, name: str = "hashed-words-32", fail: bool = False) -> None:
        self._name = name
        self.fail = fail
        self.calls = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimensions(self) -> int:
        return 32

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        if self.fail:
            raise RuntimeError("the model file is gone")
        vectors = []
        for text in texts:
            vector = [0.0] * 32
            for word in re.findall(r"[a-z]+", text.lower()):
                vector[int(hashlib.md5(word[:5].encode()).hexdigest(), 16) % 32] += 1.0
            norm = math.sqrt(sum(v * v for v in vector)) or 1.0
            vectors.append([v / norm for v in vector])
        return vectors


def test_the_stand_in_is_a_provider() -> None:
    assert isinstance(HashedWords(), EmbeddingProvider)


def test_vectors_are_written_and_neighbours_found(
    workspace: Workspace, open_index: OpenIndex
) -> None:
    root = workspace(FILES)
    index = open_index(root, IndexConfig(watch=False, embedder=HashedWords()))
    index.update_all()
    vectors = index.store.scan("chunks", ["path", "vector"])
    assert all(len(v) == 32 for v in vectors.column("vector").to_pylist())
    hits = search_similar(index, "charge the invoice with tax", limit=2)
    assert hits is not None and hits[0].path in {"billing.py", "notes.md"}
    assert "auth.py" not in [h.path for h in hits]
    excluded = search_similar(index, "charge the invoice", exclude_paths=["billing.py"])
    assert excluded is not None and "billing.py" not in [h.path for h in excluded]
    index.update_text(root / "auth.py", "def charge_again(invoice): pass\n")
    again = search_similar(index, "charge invoice", limit=3)
    assert again is not None and "auth.py" in [h.path for h in again]


def test_without_a_model_there_is_no_vector_search(
    workspace: Workspace, open_index: OpenIndex
) -> None:
    index = open_index(workspace(FILES))
    index.update_all()
    assert search_similar(index, "invoice") is None
    assert "vector" not in index.store.scan("chunks").column_names


def test_another_model_rebuilds_the_index(workspace: Workspace, open_index: OpenIndex) -> None:
    root = workspace(FILES)
    first = WorkspaceIndex(root, IndexConfig(watch=False, embedder=HashedWords("model-a")))
    first.update_all()
    first.close()
    second = open_index(root, IndexConfig(watch=False, embedder=HashedWords("model-b")))
    assert second.rebuilt_reason.startswith("embedding model changed")
    assert second.update_all().indexed == 3


def test_a_failing_model_leaves_text_search_working(
    workspace: Workspace, open_index: OpenIndex
) -> None:
    root = workspace(FILES)
    failing = HashedWords(fail=True)
    index = open_index(root, IndexConfig(watch=False, embedder=failing))
    summary = index.update_all()
    assert summary.indexed == 3 and failing.calls >= 1
    assert (
        "embedding with hashed-words-32 failed: the model file is gone"
        in index.status()["last_error"]
    )
    assert search_chunks(index, "charge_invoice")[0].path == "billing.py"
    assert search_similar(index, "invoice") == []
