"""The workspace index as the context engine sees it: absolute paths, candidates.

Chunk search is the indexer's BM25 (LanceDB full-text search); symbols are looked up by
exact name; `similar` is the index's vector search, None when no embedding model is
configured (then the vector source stays silent). This is the one place the index's
`ChunkHit` (workspace-relative path, inclusive last line) becomes a context `Candidate`
(absolute path, a line span ending before `end_line`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

from ouzel.indexer.index import WorkspaceIndex
from ouzel.indexer.search import ChunkHit, search_chunks, search_similar, search_symbols
from ouzel.server.features.context.model import Candidate, Source
from ouzel.server.features.context.sources.common import SymbolSite

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

    def _excluded(self, paths: Collection[Path]) -> list[str]:
        return [rel for rel in (self._relative(p) for p in paths) if rel is not None]

    def _candidates(
        self, source: Source, hits: list[ChunkHit], excluded: list[str]
    ) -> list[Candidate]:
        kept = [hit for hit in hits if hit.path not in excluded]
        return [
            Candidate(
                source, self.root / hit.path, hit.start_line, hit.end_line + 1, hit.text, rank
            )
            for rank, hit in enumerate(kept)
        ]

    def chunks(self, query: str, limit: int, exclude: Collection[Path]) -> list[Candidate]:
        excluded = self._excluded(exclude)
        return self._candidates("bm25", search_chunks(self.index, query, limit, excluded), excluded)

    def symbols(self, name: str, limit: int) -> list[SymbolSite]:
        return [
            SymbolSite(hit.name, self.root / hit.path, hit.start_line, hit.kind)
            for hit in search_symbols(self.index, name, limit)
            if hit.name == name
        ]

    def similar(self, text: str, limit: int, exclude: Collection[Path]) -> list[Candidate] | None:
        excluded = self._excluded(exclude)
        hits = search_similar(self.index, text, limit, excluded)
        return None if hits is None else self._candidates("vector", hits, excluded)
