"""The whole engine on a real index (tree-sitter + LanceDB): search hits, the hop from
similar code to definitions, other languages through the index's symbols, stable order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import write_project

from ouzel.indexer.config import DEFAULT_SECRET_GLOBS, IndexConfig
from ouzel.indexer.index import WorkspaceIndex
from ouzel.server.features.context.engine import ContextEngine, EngineOptions
from ouzel.server.features.context.files import FileTexts, SecretGuard
from ouzel.server.features.context.index_access import IndexRetrieval
from ouzel.server.features.context.model import ContextRequest
from ouzel.server.features.context.pack import Packer, comment_blocks
from ouzel.server.features.context.python_defs import JediService
from ouzel.server.features.context.recent import RecentBuffer
from ouzel.server.features.context.tokens import LlamaVocabCounter
from ouzel.server.features.context.window import Cursor

FILES = {
    "shop/prices.py": (
        "TAX_RATE = 0.2\n\n\n"
        "def with_tax(amount: float) -> float:\n"
        '    """The amount with tax added."""\n'
        "    return amount * (1 + TAX_RATE)\n\n\n"
        "def discounted(amount: float, percent: int) -> float:\n"
        "    return amount * (100 - percent) / 100\n"
    ),
    "shop/cart.py": (
        "from shop import prices\n\n\n"
        "def cart_total(items):\n"
        "    subtotal = sum(item.price * item.quantity for item in items)\n"
        "    return prices.with_tax(subtotal)\n"
    ),
    "shop/invoice.py": (
        "from shop import prices\n\n\n"
        "def invoice_total(lines, percent):\n"
        "    net = prices.discounted(sum(lines), percent)\n"
        "    subtotal = sum(line.price * line.quantity for line in lines)\n"
        "    \n"
    ),
    "web/format.ts": (
        "export function formatPrice(amount: number, currency: string): string {\n"
        "  return `${amount.toFixed(2)} ${currency}`;\n"
        "}\n"
    ),
    "web/page.ts": (
        "import { formatPrice } from './format';\n\n"
        "export function render(total: number): string {\n"
        "  const label = formatPrice(total, 'EUR');\n"
        "  return label;\n"
        "}\n"
    ),
}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, WorkspaceIndex]]:
    root = write_project(tmp_path_factory.mktemp("shop"), FILES)
    config = IndexConfig(index_dir=root.parent / "index", watch=False, workers=1)
    index = WorkspaceIndex(root, config)
    index.update_all()
    yield root, index
    index.close()


@pytest.fixture
def engine(
    indexed: tuple[Path, WorkspaceIndex], jedi: JediService, counter: LlamaVocabCounter
) -> ContextEngine:
    root, index = indexed
    retrieval = IndexRetrieval(index)
    return ContextEngine(
        jedi,
        RecentBuffer(),
        Packer(counter, comment_blocks()),
        SecretGuard([root], DEFAULT_SECRET_GLOBS),
        FileTexts(),
        retrieval_for=lambda _: retrieval,
    )


def _request(root: Path, name: str, at: str, language: str = "python") -> ContextRequest:
    path = root / name
    text = path.read_text()
    offset = text.index(at) + len(at)
    return ContextRequest(path.as_uri(), path, language, 1, text, offset, root)


def test_search_hits_never_come_from_the_file_itself(
    engine: ContextEngine, indexed: tuple[Path, WorkspaceIndex]
) -> None:
    root, _ = indexed
    request = _request(root, "shop/invoice.py", "line.quantity for line in lines)\n    ")
    cursor = Cursor.at(request.text, request.offset)
    hits = engine.search.search(request, cursor)
    assert hits, "the index knows similar code"
    assert all(hit.path != request.path for hit in hits)
    assert hits[0].path == root / "shop" / "cart.py"  # `subtotal = sum(... quantity ...)`


def test_a_hop_from_similar_code_to_what_it_calls(
    engine: ContextEngine, indexed: tuple[Path, WorkspaceIndex]
) -> None:
    """cart.py looks like the cursor's lines and calls prices.with_tax: its definition comes
    in although invoice.py never names it."""
    root, _ = indexed
    request = _request(root, "shop/invoice.py", "line.quantity for line in lines)\n    ")
    engine.jedi.analyze(request.uri, request.path, request.text, 1, root).result(60)
    cursor = Cursor.at(request.text, request.offset)
    hops = engine.search.hop(request, engine.search.search(request, cursor), [], {})
    assert [c.label for c in hops][:1] == ["prices.with_tax"]
    assert hops[0].text.startswith("def with_tax(amount: float) -> float:")
    assert hops[0].via == "search"


def test_combined_context_in_a_stable_cache_friendly_order(
    engine: ContextEngine, indexed: tuple[Path, WorkspaceIndex]
) -> None:
    root, _ = indexed
    request = _request(root, "shop/invoice.py", "line.quantity for line in lines)\n    ")
    engine.jedi.analyze(request.uri, request.path, request.text, 1, root).result(60)
    options = EngineOptions(budget=1024, jedi_cap_s=5.0)
    first = engine.gather(request, options, (0, 6))
    again = engine.gather(request, options, (0, 6))
    assert [p.text for p in first.parts] == [p.text for p in again.parts]
    sources = [p.source for p in first.parts]
    assert sources == sorted(sources, key=["definition", "vector", "bm25", "recent"].index)
    labels = {p.label for p in first.parts}
    assert "prices.discounted" in labels and "prices.with_tax" in labels
    assert first.tokens <= 1024
    assert set(first.timings_ms) >= {"definitions", "bm25", "recent", "hop", "pack", "total"}


def test_other_languages_use_the_index_symbols(
    engine: ContextEngine, indexed: tuple[Path, WorkspaceIndex]
) -> None:
    root, _ = indexed
    request = _request(root, "web/page.ts", "return ", "typescript")
    result = engine.gather(request, EngineOptions(budget=512, strategies=("definitions",)), (0, 0))
    (part,) = [p for p in result.parts if p.label == "formatPrice"]
    assert part.path == root / "web" / "format.ts"
    assert part.text.startswith("export function formatPrice(amount: number, currency: string)")
    assert part.text.rstrip().endswith("}")


def test_imports_resolve_to_files_in_several_languages(tmp_path: Path) -> None:
    from ouzel.server.features.context.imports import imported_files

    root = write_project(
        tmp_path,
        {
            "web/format.ts": "export const a = 1;\n",
            "web/lib/index.ts": "export const b = 2;\n",
            "web/page.ts": "import { a } from './format';\nimport * as l from './lib';\n"
            "import x from 'react';\n",
            "c/util.h": "int util(void);\n",
            "c/main.c": '#include "util.h"\n#include <stdio.h>\n',
            "rs/Cargo.toml": "[package]\n",
            "rs/src/net/client.rs": "pub struct Client;\n",
            "rs/src/main.rs": "mod net;\nuse crate::net::client::Client;\n",
            "go/store/store.go": "package store\n",
            "go/main.go": 'package main\n\nimport (\n\t"fmt"\n\t"example.com/app/store"\n)\n',
            "java/src/com/acme/Widget.java": "package com.acme;\nclass Widget {}\n",
            "java/src/com/acme/app/Main.java": "package com.acme.app;\nimport com.acme.Widget;\n",
        },
    )

    def found(name: str) -> set[str]:
        path = root / name
        return {
            p.relative_to(root).as_posix() for p in imported_files(path, path.read_text(), root)
        }

    assert found("web/page.ts") == {"web/format.ts", "web/lib/index.ts"}
    assert found("c/main.c") == {"c/util.h"}
    assert found("rs/src/main.rs") == {"rs/src/net/client.rs"}
    assert found("go/main.go") == {"go/store/store.go"}
    assert found("java/src/com/acme/app/Main.java") == {"java/src/com/acme/Widget.java"}


class HashedWords:
    """A tiny embedding model for the test: hashed identifier counts (no download)."""

    name = "hashed-words-64"
    dimensions = 64

    def embed(self, texts: list[str]) -> list[list[float]]:
        import re
        import zlib

        vectors = []
        for text in texts:
            vector = [0.0] * self.dimensions
            for word in re.findall(r"[A-Za-z_]\w+", text):
                vector[zlib.crc32(word.encode()) % self.dimensions] += 1.0
            norm = sum(v * v for v in vector) ** 0.5 or 1.0
            vectors.append([v / norm for v in vector])
        return vectors


def test_vectors_only_when_the_index_has_embeddings(
    tmp_path: Path, jedi: JediService, counter: LlamaVocabCounter
) -> None:
    root = write_project(tmp_path / "v", FILES)
    for embedder in (None, HashedWords()):
        config = IndexConfig(
            index_dir=tmp_path / f"index-{embedder is not None}",
            watch=False,
            workers=1,
            embedder=embedder,
        )
        index = WorkspaceIndex(root, config)
        try:
            index.update_all()
            retrieval = IndexRetrieval(index)
            engine = ContextEngine(
                jedi,
                RecentBuffer(),
                Packer(counter, comment_blocks()),
                SecretGuard([root], DEFAULT_SECRET_GLOBS),
                FileTexts(),
                retrieval_for=lambda _, r=retrieval: r,  # type: ignore[misc]
            )
            request = _request(root, "shop/invoice.py", "line.quantity for line in lines)\n    ")
            found = engine.vector.find(request, Cursor.at(request.text, request.offset), {})
            if embedder is None:
                assert found == []
            else:
                assert found and all(c.path != request.path for c in found)
                assert found[0].path == root / "shop" / "cart.py"
        finally:
            index.close()
