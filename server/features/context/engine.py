"""The context engine: candidates from every source, fused, packed into a token budget.

`ContextEngine.gather` is synchronous and runs on a worker thread (it reads files, queries
the index and waits for Jedi with a time cap); callers on the event loop use
`asyncio.to_thread`. It sees the requesting document only through the request's snapshot,
and other open documents through the snapshot map it is given, so nothing from an older
version of any document enters the result.

The sources live in `sources/`, one module each; this module runs them, fuses their
candidates and packs the result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ouzel.indexer.languages import is_python
from ouzel.server.features.context.files import FileTexts, SecretGuard
from ouzel.server.features.context.model import Candidate, ContextRequest, ContextResult
from ouzel.server.features.context.pack import Block, Packer
from ouzel.server.features.context.python_defs import ImportTable, JediService, display_path
from ouzel.server.features.context.rank import drop_window, fuse
from ouzel.server.features.context.recent import RecentBuffer
from ouzel.server.features.context.relevance import (
    needs_near,
    outside_workspace_stdlib,
    relevant,
)
from ouzel.server.features.context.snippets import SnippetCache
from ouzel.server.features.context.sources.common import (
    CodeReader,
    Retrieval,
    RetrievalFor,
    SymbolSite,
    focus,
    language_of,
)
from ouzel.server.features.context.sources.definitions import DefinitionSource, direct_definition
from ouzel.server.features.context.sources.recent import RecentSource
from ouzel.server.features.context.sources.search import SearchSource
from ouzel.server.features.context.sources.vector import VectorSource
from ouzel.server.features.context.window import Cursor, names_near

__all__ = [
    "STRATEGIES",
    "ContextEngine",
    "EngineOptions",
    "Gathered",
    "Retrieval",
    "SymbolSite",
    "focus",
]

log = logging.getLogger("ouzel.context")

STRATEGIES = ("definitions", "bm25", "recent", "vector")


@dataclass
class EngineOptions:
    budget: int = 384
    jedi_cap_s: float = 0.03
    strategies: Collection[str] = STRATEGIES
    # Definitions of names the file uses are the surest help: in a mix of sources they
    # fill up to this share of the budget first, then everything competes for the rest.
    definitions_share: float = 1.0
    window_before: int = 30  # lines whose names count as "near the cursor"
    window_after: int = 10
    # Keep a retrieved snippet only when it defines a name the cursor's code needs from
    # elsewhere (see relevance.py); off, every source's candidates compete as they come.
    relevance: bool = True


@dataclass
class Gathered:
    """Candidates per source, with the time each source took."""

    candidates: list[Candidate] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)


class ContextEngine:
    def __init__(
        self,
        jedi: JediService,
        recent: RecentBuffer,
        packer: Packer,
        guard: SecretGuard,
        files: FileTexts,
        retrieval_for: RetrievalFor = lambda root: None,
        sys_paths: list[Path] | None = None,
    ) -> None:
        self.jedi = jedi
        self.recent = recent
        self.packer = packer
        self.guard = guard
        self.files = files
        self.retrieval_for = retrieval_for
        self.sys_paths = sys_paths or []
        self._display: dict[Path, str] = {}
        self.reader = CodeReader(guard, files, SnippetCache())
        self.definitions = DefinitionSource(jedi, self.reader, retrieval_for, self._warm)
        self.search = SearchSource(retrieval_for, self.reader, jedi)
        self.vector = VectorSource(retrieval_for, self.reader)
        self.recent_code = RecentSource(recent, self.reader)

    @property
    def snippets(self) -> SnippetCache:
        return self.reader.snippets

    @snippets.setter
    def snippets(self, cache: SnippetCache) -> None:
        """Share a snippet cache (the service's, process-wide) with every source."""
        self.reader.snippets = cache

    # --- the whole pipeline ---------------------------------------------------------------

    def gather(
        self,
        request: ContextRequest,
        options: EngineOptions,
        window_lines: tuple[int, int] | None = None,
        open_documents: Mapping[Path, str] | None = None,
        exact_parts: bool = False,
        packer: Packer | None = None,
    ) -> ContextResult:
        """Packed context for `request`; `window_lines` are the lines the prompt already has.

        `open_documents` maps paths to the current text of open documents; `packer` renders
        and counts for the model at hand (default: the engine's).
        """
        started = time.perf_counter()
        if self.guard.is_secret(request.path):
            return ContextResult([], options.budget, 0, skipped="secret file")
        cursor = Cursor.at(request.text, request.offset)
        shown_first, shown_last = window_lines or (cursor.line - options.window_before, cursor.line)
        documents = dict(open_documents or {})
        if request.path is not None:
            documents[request.path] = request.text  # this request's snapshot, nothing older
        found = self.collect(request, cursor, options, documents)
        candidates = [c for c in found.candidates if self.guard.allowed(c.path)]
        candidates = drop_window(candidates, request.path, shown_first, shown_last)
        if options.relevance:
            needs = needs_near(
                request.text, request.offset, options.window_before, options.window_after
            )
            candidates = [
                c
                for c in candidates
                if (direct_definition(c) or relevant(c, request.path, needs))
                and not outside_workspace_stdlib(c, self.guard.roots)
            ]
        ranked = fuse(candidates)
        # In a mix of sources, definitions claim the budget first, in their own order
        # (they are what the next line most often needs); then everything else, fused,
        # competes for what they leave.
        mixed = "definitions" in options.strategies and len(set(options.strategies)) > 1
        claims = fuse(c for c in candidates if direct_definition(c)) if mixed else []
        pack_started = time.perf_counter()
        parts, tokens = (packer or self.packer).pack(
            ranked, options.budget, self.display, exact_parts, claims, options.definitions_share
        )
        found.timings_ms["pack"] = _ms_since(pack_started)
        found.timings_ms["total"] = _ms_since(started)
        return ContextResult(parts, options.budget, tokens, found.timings_ms, None, len(ranked))

    def collect(
        self,
        request: ContextRequest,
        cursor: Cursor,
        options: EngineOptions,
        documents: Mapping[Path, str],
    ) -> Gathered:
        """Every enabled source's candidates, one source at a time (the index query
        overlaps the definitions' look-ups), with the time each took."""
        gathered = Gathered()
        uses = names_near(cursor, options.window_before, options.window_after)
        # Files the definitions point into: search hits there are about the code at hand.
        related: set[Path] = set()
        shown: list[Candidate] = []  # definitions found so far (a hop adds no second copy)
        hits: list[Candidate] = []  # whole search hits, before they are cut to their focus

        def definitions() -> list[Candidate]:
            found = self.definitions.find(request, cursor, uses, options.jedi_cap_s, documents)
            related.update(candidate.path for candidate in found)
            shown.extend(candidate for candidate in found if not candidate.outline)
            return found

        searching = self.search.start(request, cursor) if "bm25" in options.strategies else None

        def bm25() -> list[Candidate]:
            assert searching is not None
            hits.extend(self.search.rerank(searching.result(), related, documents))
            return self.search.candidates(hits, cursor)

        steps: list[tuple[str, Callable[[], list[Candidate]]]] = [
            (name, step)
            for name, step in (
                ("definitions", definitions),
                ("vector", lambda: self.vector.find(request, cursor, documents)),
                ("bm25", bm25),
                ("recent", lambda: self.recent_code.find(request, cursor, documents)),
            )
            if name in options.strategies
        ]
        if "definitions" in options.strategies and "bm25" in options.strategies:
            steps.append(("hop", lambda: self.search.hop(request, hits, shown, documents)))
        for name, step in steps:
            step_started = time.perf_counter()
            try:
                gathered.candidates.extend(step())
            except Exception:  # one broken source must not cost the others
                log.exception("context source %s failed", name)
            gathered.timings_ms[name] = _ms_since(step_started)
        return gathered

    def prepare(
        self, uri: str, path: Path | None, text: str, version: int, root: Path | None
    ) -> None:
        """Background work for a document that just opened or changed (no waiting).

        Builds Jedi's import table and then, off the request path, the snippets and
        outlines it points to and their token counts, so a request only looks them up.
        """
        if path is None or not is_python(path=path) or self.guard.is_secret(path):
            return
        self.jedi.analyze(uri, path, text, version, root, after=self._warm)

    def _warm(self, table: ImportTable) -> None:
        for dotted in table.order:
            for site in table.sites.get(dotted, []):
                if not self.guard.allowed(site.path):
                    continue
                text = self.files.read(site.path)
                if text is None:
                    continue
                if site.kind == "module":
                    snippet = self.snippets.outline(site.path, text)
                else:
                    snippet = self.snippets.definition(
                        site.path, text, site.line, language_of(site.path)
                    )
                if snippet is not None:  # count its tokens now, not during a request
                    self.packer.part_cost(
                        Block(self.display(site.path), snippet.text, "definition")
                    )

    def display(self, path: Path) -> str:
        """The path as the prompt shows it (relative to the workspace or an import root)."""
        shown = self._display.get(path)
        if shown is None:
            root = next((r for r in self.guard.roots if path.is_relative_to(r)), None)
            shown = display_path(path, root, self.sys_paths)
            if len(self._display) > 4096:
                self._display.clear()
            self._display[path] = shown
        return shown

    def forget_searches(self) -> None:
        """Drop reused index answers (a benchmark timing first requests needs it)."""
        self.search.forget()


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
