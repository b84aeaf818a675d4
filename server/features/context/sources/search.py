"""The search source: BM25 over the index's chunks, and one hop to definitions.

The index query runs on a small pool (LanceDB works outside the GIL) while the
definitions are found; its answer is reused for a few seconds, since keystrokes inside a
word ask the same question. The hop follows names in the best hits to where they are
defined, when this file can reach them (RepoCoder's retrieval hop).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ouzel.server.features.context.model import Candidate, ContextRequest
from ouzel.server.features.context.python_defs import DefinitionSite, ImportTable, JediService
from ouzel.server.features.context.sources.common import (
    PER_SOURCE_LIMIT,
    CodeReader,
    RetrievalFor,
    focused,
    is_python_request,
)
from ouzel.server.features.context.sources.definitions import SEARCH
from ouzel.server.features.context.window import Cursor, query_terms

_SEARCH_POOL = ThreadPoolExecutor(2, thread_name_prefix="ouzel-context-search")
HOP_HITS = 4  # search hits whose names are followed to their definitions
SEARCH_REUSE_S = 3.0  # an index answer serves the same query again for this long
HOP_WEIGHT = 0.6  # a guess from similar code: less sure than a name at the cursor
_DOTTED_NAME = re.compile(r"(?<![\w.])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)")


class SearchSource:
    def __init__(self, retrieval_for: RetrievalFor, reader: CodeReader, jedi: JediService) -> None:
        self.retrieval_for = retrieval_for
        self.reader = reader
        self.jedi = jedi
        self._cache: dict[tuple[Path | None, Path | None, str], tuple[float, list[Candidate]]] = {}
        self._lock = threading.Lock()

    def start(self, request: ContextRequest, cursor: Cursor) -> Future[list[Candidate]]:
        """Ask the index now, in the background; `candidates` takes the answer later."""
        return _SEARCH_POOL.submit(self.raw, request, cursor)

    def search(
        self, request: ContextRequest, cursor: Cursor, related: Collection[Path] = ()
    ) -> list[Candidate]:
        """Chunks sharing words with the cursor's lines (never the requesting file's own:
        the index holds an older version of it).

        With `related` files (where the definitions point), hits in those files go first:
        a chunk of a module this file imports that matches the words at the cursor is
        likelier to be about this line than an equally good match elsewhere.
        """
        return self.rerank(self.raw(request, cursor), related, {})

    def candidates(self, hits: list[Candidate], cursor: Cursor) -> list[Candidate]:
        """Reranked hits as candidates, each cut to the lines sharing most words."""
        wanted = set(query_terms(cursor))
        return [focused(hit, rank, wanted) for rank, hit in enumerate(hits)]

    def forget(self) -> None:
        """Drop reused index answers (a benchmark timing first requests needs it)."""
        with self._lock:
            self._cache.clear()

    def raw(self, request: ContextRequest, cursor: Cursor) -> list[Candidate]:
        """The index's answer to the words around the cursor (reused for a few seconds)."""
        retrieval = self.retrieval_for(request.root)
        terms = query_terms(cursor)
        if retrieval is None or not terms:
            return []
        query = " ".join(terms)
        key = (request.root, request.path, query)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and now - cached[0] < SEARCH_REUSE_S:
                return cached[1]
        exclude = [request.path] if request.path is not None else []
        hits = retrieval.chunks(query, PER_SOURCE_LIMIT * 2, exclude)
        with self._lock:
            self._cache[key] = (now, hits)
            while len(self._cache) > 64:
                self._cache.pop(next(iter(self._cache)))
        return hits

    def rerank(
        self, hits: list[Candidate], related: Collection[Path], documents: Mapping[Path, str]
    ) -> list[Candidate]:
        """Hits in related files first; never secrets, never an open document's old text."""
        if related:
            hits = sorted(hits, key=lambda hit: hit.path not in related)
        return self.reader.usable(hits, documents)[:PER_SOURCE_LIMIT]

    # --- one hop from search hits to definitions ------------------------------------------

    def hop(
        self,
        request: ContextRequest,
        hits: list[Candidate],
        shown: list[Candidate],
        documents: Mapping[Path, str],
    ) -> list[Candidate]:
        """Definitions of what similar code uses (one retrieval hop, as in RepoCoder).

        Code that reads like the lines at the cursor often calls what the next line
        needs: `codecs.make_identity_dict(...)` in a sibling module when this one imports
        `codecs`. Names in the best search hits that this file can reach (its module
        aliases, the names it imports) are looked up where they are defined, the names
        used most first.
        """
        table = self.jedi.table(request.uri) if is_python_request(request) else None
        if table is None or not hits:
            return []
        counts: dict[tuple[Path, int], tuple[int, str]] = {}
        for hit in hits[:HOP_HITS]:
            for dotted in dict.fromkeys(_DOTTED_NAME.findall(hit.text)):
                site = self._reachable(table, dotted, documents)
                if site is None or any(
                    c.path == site[0] and c.start_line <= site[1] < c.end_line for c in shown
                ):
                    continue
                seen, _ = counts.get(site, (0, dotted))
                counts[site] = (seen + 1, dotted)
        ordered = sorted(counts.items(), key=lambda item: -item[1][0])
        candidates: list[Candidate] = []
        for (path, line), (_, dotted) in ordered[:PER_SOURCE_LIMIT]:
            hop = DefinitionSite(dotted, path, line, "hop")
            candidate = self.reader.definition(hop, HOP_WEIGHT, documents)
            if candidate is not None:
                candidate.via = SEARCH
                candidate.rank = len(candidates)
                candidates.append(candidate)
        return candidates

    def _reachable(
        self, table: ImportTable, dotted: str, documents: Mapping[Path, str]
    ) -> tuple[Path, int] | None:
        """Where `dotted` is defined, if this file can name it (an import or module alias)."""
        head, _, attribute = dotted.partition(".")
        if not attribute:
            sites = table.lookup(dotted)
            return (sites[0].path, sites[0].line) if sites else None
        module = table.module_path(head)
        if module is None or not self.reader.guard.allowed(module):
            return None
        text = self.reader.files.read(module, documents)
        if text is None:
            return None
        line = self.reader.snippets.top_level_line(module, text, attribute.split(".", 1)[0])
        return (module, line) if line is not None else None
