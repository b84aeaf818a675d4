"""The context engine: candidates from every source, fused, packed into a token budget.

`ContextEngine.gather` is synchronous and runs on a worker thread (it reads files, queries
the index and waits for Jedi with a time cap); callers on the event loop use
`asyncio.to_thread`. It sees the requesting document only through the request's snapshot,
and other open documents through the snapshot map it is given, so nothing from an older
version of any document enters the result.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Protocol, TypeVar

from ouzel.server.features.context.files import FileTexts, SecretGuard
from ouzel.server.features.context.imports import imported_files
from ouzel.server.features.context.model import (
    Candidate,
    ContextRequest,
    ContextResult,
    Source,
)
from ouzel.server.features.context.pack import Block, Packer
from ouzel.server.features.context.python_defs import (
    DefinitionSite,
    ImportTable,
    JediService,
    display_path,
    local_definitions,
)
from ouzel.server.features.context.rank import drop_window, fuse
from ouzel.server.features.context.recent import RecentBuffer
from ouzel.server.features.context.snippets import SnippetCache, split_lines
from ouzel.server.features.context.window import Cursor, NameUse, names_near, query_terms

log = logging.getLogger("ouzel.context")
T = TypeVar("T")
# Index queries overlap the definitions' look-ups (LanceDB works outside the GIL).
_SEARCH_POOL = ThreadPoolExecutor(2, thread_name_prefix="ouzel-context-search")

STRATEGIES = ("definitions", "bm25", "recent", "vector")
PYTHON_LANGUAGES = ("python", "pyi")
CURSOR_LINES = 1  # names on the cursor's line and the one above are "at the cursor"
AT_CURSOR_BOOST = 2.0
PER_SOURCE_LIMIT = 16
FOCUS_LINES = 16  # search hits and recent regions are cut to their best lines
HOP_HITS = 4  # search hits whose names are followed to their definitions
SEARCH_REUSE_S = 3.0  # an index answer serves the same query again for this long
HOP_WEIGHT = 0.6  # a guess from similar code: less sure than a name at the cursor
_DOTTED_NAME = re.compile(r"(?<![\w.])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)")
MAX_OUTLINES = 4  # module outlines among the definitions
MAX_UNSETTLED = 2  # same-named symbols kept when no import says which one is meant
OUTLINE = "outline"  # DefinitionSite.kind of a whole-module summary


@dataclass(frozen=True)
class ChunkHit:
    """A piece of an indexed file, as the context engine needs it."""

    path: Path
    start_line: int  # 0-based, inclusive
    end_line: int  # 0-based, exclusive
    text: str


@dataclass(frozen=True)
class SymbolSite:
    name: str
    path: Path
    line: int  # 0-based
    kind: str


class Retrieval(Protocol):
    """What the engine needs of a workspace index (see `index_access.py`)."""

    def chunks(self, query: str, limit: int, exclude: Collection[Path]) -> list[ChunkHit]: ...

    def symbols(self, name: str, limit: int) -> list[SymbolSite]: ...

    def similar(self, text: str, limit: int, exclude: Collection[Path]) -> list[ChunkHit] | None:
        """Vector neighbours, or None when no embeddings are configured."""
        ...


class Proposal(NamedTuple):
    """A definition site a source proposes, with how to rank it."""

    site: DefinitionSite
    boost: float
    lane: int  # ranked apart from other lanes (0: names used, 1: hints)
    via: str = ""  # how it was found when not by a name at hand (IMPORTED, SEARCH)


IMPORTED = "imports"  # only imported somewhere in the file
SEARCH = "search"  # named in code similar to the cursor's (a hop)


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
        retrieval_for: Callable[[Path | None], Retrieval | None] = lambda root: None,
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
        self.snippets = SnippetCache()
        self._local_cache: dict[tuple[str, int, int], dict[str, list[int]]] = {}
        self._imports_cache: dict[tuple[Path, int, int], set[Path]] = {}
        self._search_cache: dict[
            tuple[Path | None, Path | None, str], tuple[float, list[ChunkHit]]
        ] = {}
        self._search_lock = threading.Lock()

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
        ranked = fuse(candidates)
        # In a mix of sources, definitions claim the budget first, in their own order
        # (they are what the next line most often needs); then everything else, fused,
        # competes for what they leave.
        mixed = "definitions" in options.strategies and len(set(options.strategies)) > 1
        claims = fuse(c for c in candidates if _direct_definition(c)) if mixed else []
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
        gathered = Gathered()
        uses = names_near(cursor, options.window_before, options.window_after)
        # Files the definitions point into: search hits there are about the code at hand.
        related: set[Path] = set()
        shown: list[Candidate] = []  # definitions found so far (a hop adds no second copy)
        hits: list[ChunkHit] = []  # whole search hits, before they are cut to their focus

        def definitions() -> list[Candidate]:
            found = self.definitions(request, cursor, uses, options, documents)
            related.update(candidate.path for candidate in found)
            shown.extend(candidate for candidate in found if not candidate.outline)
            return found

        # The index query runs (in LanceDB's native code) while the definitions are found.
        searching = (
            _SEARCH_POOL.submit(self._raw_search, request, cursor)
            if "bm25" in options.strategies
            else None
        )

        def bm25() -> list[Candidate]:
            assert searching is not None
            hits.extend(self._rerank(searching.result(), related, documents))
            words = set(query_terms(cursor))
            return [_hit_candidate("bm25", hit, rank, words) for rank, hit in enumerate(hits)]

        steps: list[tuple[str, Callable[[], list[Candidate]]]] = [
            (name, step)
            for name, step in (
                ("definitions", definitions),
                ("vector", lambda: self.vectors(request, cursor, documents)),
                ("bm25", bm25),
                ("recent", lambda: self.recent_code(request, cursor, documents)),
            )
            if name in options.strategies
        ]
        if "definitions" in options.strategies and "bm25" in options.strategies:
            steps.append(("hop", lambda: self.hop(request, hits, shown, documents)))
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
        if path is None or path.suffix not in (".py", ".pyi") or self.guard.is_secret(path):
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
                        site.path, text, site.line, _language(site.path)
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

    # --- definitions ----------------------------------------------------------------------

    def definitions(
        self,
        request: ContextRequest,
        cursor: Cursor,
        uses: list[NameUse],
        options: EngineOptions,
        documents: Mapping[Path, str],
    ) -> list[Candidate]:
        if _is_python(request):
            proposals = self.python_sites(request, cursor, uses, options)
        else:
            proposals = [
                Proposal(site, boost, 0) for site, boost in self.symbol_sites(request, uses)
            ]
        candidates: list[Candidate] = []
        seen: set[tuple[Path, int, bool]] = set()
        ranks = [0, 0]  # the next rank in each lane
        for site, boost, lane, via in proposals:
            key = (site.path, site.line, site.kind == OUTLINE)
            if key in seen or ranks[lane] >= PER_SOURCE_LIMIT * 2:
                continue
            seen.add(key)
            if not self.guard.allowed(site.path):
                continue
            candidate = self._definition_candidate(site, boost, request, documents)
            if candidate is not None:
                candidate.rank = ranks[lane]
                candidate.via = via
                ranks[lane] += 1
                candidates.append(candidate)
        return candidates

    def _definition_candidate(
        self,
        site: DefinitionSite,
        boost: float,
        request: ContextRequest,
        documents: Mapping[Path, str],
    ) -> Candidate | None:
        text = self.files.read(site.path, documents)
        if text is None:
            return None
        if site.kind == OUTLINE:
            snippet = self.snippets.outline(site.path, text)
        else:
            snippet = self.snippets.definition(site.path, text, site.line, _language(site.path))
        if snippet is None:
            return None
        return Candidate(
            "definition",
            site.path,
            snippet.start_line,
            snippet.end_line,
            snippet.text,
            0,
            boost,
            site.dotted,
            outline=site.kind == OUTLINE,
        )

    def python_sites(
        self, request: ContextRequest, cursor: Cursor, uses: list[NameUse], options: EngineOptions
    ) -> list[Proposal]:
        """Where the names near the cursor are defined, best first.

        Lane 0, definitions: names near the cursor, nearest first (the import table, else
        definitions in the request's own text, else, for attribute chains at the cursor,
        Jedi with a time cap); then everything else the file imports, those used closest
        to the cursor first.
        Lane 1, hints about what the next line may use: imports the file does not use yet
        (an import is usually written just before its first use), then outlines of the
        modules used nearest the cursor. Lanes are ranked apart and fused like sources.
        """
        deadline = time.monotonic() + options.jedi_cap_s
        table = self._import_table(request, deadline)
        local = self._local_index(request)
        ordered: list[Proposal] = []
        outlines: list[Proposal] = []
        unresolved: list[NameUse] = []
        listed: set[str] = set()
        for use in uses:
            boost = AT_CURSOR_BOOST if abs(use.line - cursor.line) <= CURSOR_LINES else 1.0
            sites = table.lookup(use.dotted) if table else []
            if sites:
                listed.add(use.dotted)
                ordered.extend(
                    Proposal(self._fresh(site, request, local), boost, 0) for site in sites
                )
            elif "." not in use.dotted and request.path is not None and use.name in local:
                ordered.extend(
                    Proposal(DefinitionSite(use.dotted, request.path, line, "local"), boost, 0)
                    for line in local[use.name]
                    if line != use.line
                )
            elif "." in use.dotted and boost > 1.0:
                unresolved.append(use)
            module = table.module_path(use.head) if table and "." in use.dotted else None
            if (
                module is not None
                and len(outlines) < MAX_OUTLINES
                and all(p.site.path != module for p in outlines)
            ):
                outlines.append(Proposal(DefinitionSite(use.head, module, 0, OUTLINE), boost, 1))
        at_cursor = self._jedi_at_cursor(request, unresolved, deadline, local)
        ordered.extend(Proposal(site, boost, 0) for site, boost in at_cursor)
        if table is None:
            return ordered + outlines
        unused = self._unused_imports(table, request, local)
        listed.update(p.site.dotted for p in unused)
        rest = [
            Proposal(site, boost, 0, IMPORTED)
            for site, boost in self._other_imports(table, cursor, listed, request, local)
        ]
        far = self._module_outlines(table, cursor, {p.site.path for p in outlines})
        return ordered + rest + unused + outlines + far

    def _module_outlines(
        self, table: ImportTable, cursor: Cursor, done: set[Path]
    ) -> list[Proposal]:
        """Outlines of the other modules the file uses, the one used nearest first."""
        modules: list[tuple[int, str, Path]] = []
        for name, lines in table.usage_lines.items():
            module = table.module_path(name)
            if module is not None and module not in done and lines:
                modules.append((min(abs(line - cursor.line) for line in lines), name, module))
        modules.sort()
        return [
            Proposal(DefinitionSite(name, module, 0, OUTLINE), 1.0, 1, IMPORTED)
            for _, name, module in modules[: max(0, MAX_OUTLINES - len(done))]
        ]

    def _unused_imports(
        self, table: ImportTable, request: ContextRequest, local: dict[str, list[int]]
    ) -> list[Proposal]:
        """Names the file imports but does not use (yet): definitions, or module outlines."""
        out: list[Proposal] = []
        for name, lines in table.usage_lines.items():
            if lines:
                continue
            module = table.module_path(name)
            if module is not None:
                out.append(Proposal(DefinitionSite(name, module, 0, OUTLINE), 1.0, 1))
            else:
                out.extend(
                    Proposal(self._fresh(site, request, local), 1.0, 1)
                    for site in table.lookup(name)
                )
        return out

    def _import_table(self, request: ContextRequest, deadline: float) -> ImportTable | None:
        """The newest table for the document; wait for one (capped) only if there is none."""
        table = self.jedi.table(request.uri)
        if table is not None and table.version == request.version:
            return table
        future = self.jedi.analyze(
            request.uri, request.path, request.text, request.version, request.root, self._warm
        )
        if table is None:
            table = _wait(future, deadline)
        return table

    def _local_index(self, request: ContextRequest) -> dict[str, list[int]]:
        """Definitions in the request's own snapshot (never an older version's lines)."""
        key = (request.uri, request.version, len(request.text))
        index = self._local_cache.get(key)
        if index is None:
            index = local_definitions(request.text)
            self._local_cache = {key: index}
        return index

    def _fresh(
        self, site: DefinitionSite, request: ContextRequest, local: dict[str, list[int]]
    ) -> DefinitionSite:
        """A site in the requesting file itself moves with the request's snapshot."""
        if site.path != request.path:
            return site
        lines = local.get(site.dotted.rsplit(".", 1)[-1])
        if not lines:
            return site
        nearest = min(lines, key=lambda line: abs(line - site.line))
        return DefinitionSite(site.dotted, site.path, nearest, site.kind)

    def _jedi_at_cursor(
        self,
        request: ContextRequest,
        uses: list[NameUse],
        deadline: float,
        local: dict[str, list[int]],
    ) -> list[tuple[DefinitionSite, float]]:
        """Attribute chains at the cursor that the import table does not know.

        Answers from earlier look-ups in this document come at once; the rest go to Jedi,
        waited for until `deadline` and remembered for the next request either way.
        """
        sites: list[DefinitionSite] = []
        ask: list[NameUse] = []
        for use in uses:
            known = self.jedi.known_at_cursor(request.uri, use.dotted)
            if known is None:
                ask.append(use)
            else:
                sites.extend(known)
        if ask:
            future = self.jedi.goto_many(request.uri, request.path, request.text, request.root, ask)
            sites.extend(_wait(future, deadline) or [])
        return [(self._fresh(site, request, local), AT_CURSOR_BOOST) for site in sites]

    def _other_imports(
        self,
        table: ImportTable,
        cursor: Cursor,
        listed: set[str],
        request: ContextRequest,
        local: dict[str, list[int]],
    ) -> list[tuple[DefinitionSite, float]]:
        """Imported names not seen near the cursor: those used closest to it first."""

        def distance(dotted: str) -> int:
            lines = table.usage_lines.get(dotted.split(".", 1)[0]) or []
            return min((abs(line - cursor.line) for line in lines), default=1_000_000)

        rest = [dotted for dotted in table.order if dotted not in listed]
        rest.sort(key=distance)
        out: list[tuple[DefinitionSite, float]] = []
        for dotted in rest:
            out.extend((self._fresh(site, request, local), 1.0) for site in table.lookup(dotted))
        return out

    def symbol_sites(
        self, request: ContextRequest, uses: list[NameUse]
    ) -> list[tuple[DefinitionSite, float]]:
        """Other languages: the index's symbols named like the names near the cursor.

        A name defined in a file this one imports wins; a name defined in many places that
        no import settles is left out (a guess would cost budget and mislead the model).
        """
        retrieval = self.retrieval_for(request.root)
        if retrieval is None:
            return []
        imported = self._imported(request)
        out: list[tuple[DefinitionSite, float]] = []
        for use in uses[:PER_SOURCE_LIMIT]:
            hits = [
                hit
                for hit in retrieval.symbols(use.name, 8)
                if hit.name == use.name and hit.path != request.path
            ]
            chosen = [hit for hit in hits if hit.path.resolve() in imported]
            if not chosen and len(hits) <= MAX_UNSETTLED:
                chosen = hits
            out.extend((DefinitionSite(use.dotted, h.path, h.line, h.kind), 1.0) for h in chosen)
        return out

    def _imported(self, request: ContextRequest) -> set[Path]:
        if request.path is None:
            return set()
        key = (request.path, len(request.text), hash(request.text))
        found = self._imports_cache.get(key)
        if found is None:
            found = imported_files(request.path, request.text, request.root)
            self._imports_cache = {key: found}
        return found

    # --- one hop from search hits to definitions ------------------------------------------

    def hop(
        self,
        request: ContextRequest,
        hits: list[ChunkHit],
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
        table = self.jedi.table(request.uri) if _is_python(request) else None
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
            site = DefinitionSite(dotted, path, line, "hop")
            candidate = self._definition_candidate(site, HOP_WEIGHT, request, documents)
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
        if module is None or not self.guard.allowed(module):
            return None
        text = self.files.read(module, documents)
        if text is None:
            return None
        line = self.snippets.top_level_line(module, text, attribute.split(".", 1)[0])
        return (module, line) if line is not None else None

    # --- search ---------------------------------------------------------------------------

    def search(
        self, request: ContextRequest, cursor: Cursor, related: Collection[Path] = ()
    ) -> list[ChunkHit]:
        """Chunks sharing words with the cursor's lines (never the requesting file's own:
        the index holds an older version of it).

        With `related` files (where the definitions point), hits in those files go first:
        a chunk of a module this file imports that matches the words at the cursor is
        likelier to be about this line than an equally good match elsewhere.
        """
        return self._rerank(self._raw_search(request, cursor), related, {})

    def forget_searches(self) -> None:
        """Drop reused index answers (a benchmark timing first requests needs it)."""
        with self._search_lock:
            self._search_cache.clear()

    def _raw_search(self, request: ContextRequest, cursor: Cursor) -> list[ChunkHit]:
        """The index's answer to the words around the cursor (reused for a few seconds:
        keystrokes inside a word ask the same question)."""
        retrieval = self.retrieval_for(request.root)
        terms = query_terms(cursor)
        if retrieval is None or not terms:
            return []
        query = " ".join(terms)
        key = (request.root, request.path, query)
        now = time.monotonic()
        with self._search_lock:
            cached = self._search_cache.get(key)
            if cached is not None and now - cached[0] < SEARCH_REUSE_S:
                return cached[1]
        exclude = [request.path] if request.path is not None else []
        hits = retrieval.chunks(query, PER_SOURCE_LIMIT * 2, exclude)
        with self._search_lock:
            self._search_cache[key] = (now, hits)
            while len(self._search_cache) > 64:
                self._search_cache.pop(next(iter(self._search_cache)))
        return hits

    def _rerank(
        self,
        hits: list[ChunkHit],
        related: Collection[Path],
        documents: Mapping[Path, str],
    ) -> list[ChunkHit]:
        """Hits in related files first; never secrets, never an open document's old text."""
        if related:
            hits = sorted(hits, key=lambda hit: hit.path not in related)
        kept = [
            hit for hit in hits if self.guard.allowed(hit.path) and self._current(hit, documents)
        ]
        return kept[:PER_SOURCE_LIMIT]

    def _current(self, hit: ChunkHit, documents: Mapping[Path, str]) -> bool:
        """False when `hit` is from an open document whose text has changed since indexed
        (the index catches up a moment later; until then its text is an older version)."""
        text = documents.get(hit.path)
        if text is None:
            return True
        lines = self.snippets.lines(hit.path, text)
        return "".join(lines[hit.start_line : hit.end_line]) == hit.text

    def vectors(
        self, request: ContextRequest, cursor: Cursor, documents: Mapping[Path, str]
    ) -> list[Candidate]:
        retrieval = self.retrieval_for(request.root)
        if retrieval is None:
            return []
        exclude = [request.path] if request.path is not None else []
        around = cursor.lines_text(cursor.line - 12, cursor.line + 4)
        hits = retrieval.similar(around, PER_SOURCE_LIMIT, exclude) or []
        words = _words(around)
        return [
            _hit_candidate("vector", hit, rank, words)
            for rank, hit in enumerate(self._rerank(hits, (), documents))
        ]

    # --- recent -----------------------------------------------------------------------------

    def recent_code(
        self, request: ContextRequest, cursor: Cursor, documents: Mapping[Path, str]
    ) -> list[Candidate]:
        """Recent regions, those sharing the most words with the cursor's lines first."""
        around = _words(cursor.lines_text(cursor.line - 15, cursor.line + 5))
        scored: list[tuple[float, int, Candidate]] = []
        for age, region in enumerate(self.recent.regions()):
            if region.path is None:
                continue
            text = self.files.read(region.path, documents)
            if text is None:
                continue
            lines = self.snippets.lines(region.path, text)
            start = max(0, min(region.start_line, len(lines) - 1))
            end = max(start, min(region.end_line, len(lines)))
            body = "".join(lines[start:end])
            if not body.strip():
                continue
            words = _words(body)
            similarity = len(words & around) / len(words | around) if words or around else 0.0
            first, text = focus(start, body, around)
            candidate = Candidate(
                "recent", region.path, first, first + len(split_lines(text)), text, 0
            )
            scored.append((-similarity, age, candidate))
        scored.sort(key=lambda item: item[:2])
        for rank, (_, _, candidate) in enumerate(scored):
            candidate.rank = rank
        return [candidate for _, _, candidate in scored]


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text))


def _direct_definition(candidate: Candidate) -> bool:
    return candidate.source == "definition" and candidate.via != SEARCH


def _language(path: Path) -> str:
    return "python" if path.suffix in (".py", ".pyi") else path.suffix.lstrip(".")


def _is_python(request: ContextRequest) -> bool:
    suffix = request.path.suffix if request.path is not None else ""
    return request.language in PYTHON_LANGUAGES or suffix in (".py", ".pyi")


def _hit_candidate(
    source: Source, hit: ChunkHit, rank: int, words: set[str] | None = None
) -> Candidate:
    start, text = hit.start_line, hit.text
    if words is not None:
        start, text = focus(hit.start_line, hit.text, words)
    return Candidate(source, hit.path, start, start + len(split_lines(text)), text, rank)


def focus(start_line: int, text: str, words: set[str], lines: int = FOCUS_LINES) -> tuple[int, str]:
    """The `lines` consecutive lines of `text` that use the most of `words`.

    A search hit or a recent region can be a few hundred tokens; the lines around its best
    match say most of what it has to say, at a fraction of the budget.
    """
    rows = split_lines(text)
    if len(rows) <= lines:
        return start_line, text
    hits = [len(set(_WORD.findall(row)) & words) for row in rows]
    window = sum(hits[:lines])
    best, best_at = window, 0
    for first in range(1, len(rows) - lines + 1):
        window += hits[first + lines - 1] - hits[first - 1]
        if window > best:
            best, best_at = window, first
    return start_line + best_at, "".join(rows[best_at : best_at + lines])


def _wait(future: Future[T], deadline: float) -> T | None:
    """The future's result if it arrives before `deadline`; None on timeout or failure."""
    try:
        return future.result(timeout=max(0.0, deadline - time.monotonic()))
    except FutureTimeout:
        return None
    except Exception:
        log.exception("a context look-up failed")
        return None


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
