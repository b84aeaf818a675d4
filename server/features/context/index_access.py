"""The workspace index as the context engine sees it: absolute paths, end-exclusive lines.

Chunk search is the indexer's BM25 (LanceDB full-text search); symbols are looked up by
exact name; `similar` is the index's vector search, None when no embedding model is
configured (then the vector source stays silent).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from ouzel.server.features.context.sources.common import ChunkHit, SymbolSite

if TYPE_CHECKING:
    from ouzel.indexer.index import WorkspaceIndex

log = logging.getLogger("ouzel.context.index")


class IndexRetrieval:
    def __init__(self, index: WorkspaceIndex) -> None:
        self.index = index
        self.root = index.root

    def _relative(self, path: Path) -> str | None:
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return None

    def chunks(self, query: str, limit: int, exclude: Collection[Path]) -> list[ChunkHit]:
        from ouzel.indexer.search import search_chunks

        excluded = [rel for rel in (self._relative(p) for p in exclude) if rel is not None]
        hits = search_chunks(self.index, query, limit, excluded)
        return [
            ChunkHit(self.root / hit.path, hit.start_line, hit.end_line + 1, hit.text)
            for hit in hits
            if hit.path not in excluded
        ]

    def symbols(self, name: str, limit: int) -> list[SymbolSite]:
        from ouzel.indexer.search import search_symbols

        return [
            SymbolSite(hit.name, self.root / hit.path, hit.start_line, hit.kind)
            for hit in search_symbols(self.index, name, limit)
            if hit.name == name
        ]

    def similar(self, text: str, limit: int, exclude: Collection[Path]) -> list[ChunkHit] | None:
        from ouzel.indexer.search import search_similar

        excluded = [rel for rel in (self._relative(p) for p in exclude) if rel is not None]
        hits = search_similar(self.index, text, limit, excluded)
        if hits is None:
            return None
        return [
            ChunkHit(self.root / hit.path, hit.start_line, hit.end_line + 1, hit.text)
            for hit in hits
            if hit.path not in excluded
        ]
