"""The definitions source: where the names near the cursor are defined.

Python: Jedi's import table for the file (built in the background), definitions in the
request's own snapshot, and Jedi at the cursor (time-capped) for attribute chains the
table does not know; hints about what the next line may use (imports not used yet,
outlines of modules used nearby). Other languages: the index's symbols, those in files
this one imports first.
"""

from __future__ import annotations

import itertools
import re
import sysconfig
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from ouzel.server.features.context.imports import imported_files
from ouzel.server.features.context.model import Candidate, ContextRequest
from ouzel.server.features.context.python_defs import (
    DefinitionSite,
    ImportTable,
    JediService,
    local_definitions,
)
from ouzel.server.features.context.sources.common import (
    OUTLINE,
    PER_SOURCE_LIMIT,
    CodeReader,
    RetrievalFor,
    is_python_request,
    wait,
)
from ouzel.server.features.context.window import Cursor, NameUse

CURSOR_LINES = 1  # names on the cursor's line and the one above are "at the cursor"
AT_CURSOR_BOOST = 2.0
MAX_OUTLINES = 4  # module outlines among the definitions
MAX_UNSETTLED = 2  # same-named symbols kept when no import says which one is meant
IMPORTED = "imports"  # only imported somewhere in the file
SEARCH = "search"  # named in code similar to the cursor's (a hop)
WELL_KNOWN_WEIGHT = 0.4  # a standard-library definition: the model has seen it many times
_STDLIB_DIRS = tuple(
    {Path(sysconfig.get_paths()[key]).resolve() for key in ("stdlib", "platstdlib")}
)
_VERSIONED_LIB = re.compile(r"python3\.\d+")


class Proposal(NamedTuple):
    """A definition site a source proposes, with how to rank it."""

    site: DefinitionSite
    boost: float
    lane: int  # ranked apart from other lanes (0: names used, 1: hints)
    via: str = ""  # how it was found when not by a name at hand (IMPORTED, SEARCH)


@lru_cache(maxsize=4096)
def in_standard_library(path: Path) -> bool:
    """A file of Python's standard library: this interpreter's, another one's (a workspace
    virtualenv's `lib/python3.X/`), or typeshed's stubs of it; never site-packages."""
    parts = path.parts
    if "typeshed" in parts and "stdlib" in parts:
        return True  # Jedi's own copy, itself in site-packages
    if "site-packages" in parts or "dist-packages" in parts:
        return False
    if any(path.is_relative_to(folder) for folder in _STDLIB_DIRS):
        return True
    return any(
        part == "lib" and _VERSIONED_LIB.fullmatch(after)
        for part, after in itertools.pairwise(parts)
    )


def direct_definition(candidate: Candidate) -> bool:
    """A definition of a name the file uses (not one reached through a search hit)."""
    return candidate.source == "definition" and candidate.via != SEARCH


class DefinitionSource:
    def __init__(
        self,
        jedi: JediService,
        reader: CodeReader,
        retrieval_for: RetrievalFor,
        on_table: Callable[[ImportTable], None],
    ) -> None:
        self.jedi = jedi
        self.reader = reader
        self.retrieval_for = retrieval_for
        self.on_table = on_table  # called with every import table Jedi builds
        self._local_cache: dict[tuple[str, int, int], dict[str, list[int]]] = {}
        self._imports_cache: dict[tuple[Path, int, int], set[Path]] = {}

    def find(
        self,
        request: ContextRequest,
        cursor: Cursor,
        uses: list[NameUse],
        jedi_cap_s: float,
        documents: Mapping[Path, str],
    ) -> list[Candidate]:
        if is_python_request(request):
            proposals = self.python_sites(request, cursor, uses, jedi_cap_s)
        else:
            proposals = [
                Proposal(site, boost, 0) for site, boost in self.symbol_sites(request, uses)
            ]
        # The model knows the standard library (`typing.Optional`, `__future__`, outlines
        # of `inspect`): its definitions go after the workspace's and third-party ones,
        # at a lower weight, unless the standard library is the workspace.
        known = {p.site.path: self._well_known(p.site.path) for p in proposals}
        proposals = sorted(proposals, key=lambda p: known[p.site.path])
        candidates: list[Candidate] = []
        seen: set[tuple[Path, int, bool]] = set()
        ranks = [0, 0]  # the next rank in each lane
        for site, boost, lane, via in proposals:
            key = (site.path, site.line, site.kind == OUTLINE)
            if key in seen or ranks[lane] >= PER_SOURCE_LIMIT * 2:
                continue
            seen.add(key)
            if not self.reader.guard.allowed(site.path):
                continue
            weight = WELL_KNOWN_WEIGHT if known[site.path] else 1.0
            candidate = self.reader.definition(site, boost * weight, documents)
            if candidate is not None:
                candidate.rank = ranks[lane]
                candidate.via = via
                ranks[lane] += 1
                candidates.append(candidate)
        return candidates

    def _well_known(self, path: Path) -> bool:
        """In the standard library, and not in the workspace."""
        if any(path.is_relative_to(root) for root in self.reader.guard.roots):
            return False
        return in_standard_library(path)

    # --- Python -----------------------------------------------------------------------------

    def python_sites(
        self, request: ContextRequest, cursor: Cursor, uses: list[NameUse], jedi_cap_s: float
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
        deadline = time.monotonic() + jedi_cap_s
        table = self.import_table(request, deadline)
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

    def import_table(self, request: ContextRequest, deadline: float) -> ImportTable | None:
        """The newest table for the document; wait for one (capped) only if there is none."""
        table = self.jedi.table(request.uri)
        if table is not None and table.version == request.version:
            return table
        future = self.jedi.analyze(
            request.uri, request.path, request.text, request.version, request.root, self.on_table
        )
        if table is None:
            table = wait(future, deadline)
        return table

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
            answered = wait(future, deadline)
            sites.extend(answered or [])
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

    # --- other languages ----------------------------------------------------------------------

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
