"""What every context source shares: the index protocol, reading code, cutting hits."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from ouzel.indexer.languages import is_python
from ouzel.server.features.context.files import FileTexts, SecretGuard
from ouzel.server.features.context.model import Candidate, ContextRequest
from ouzel.server.features.context.python_defs import DefinitionSite
from ouzel.server.features.context.snippets import SnippetCache, split_lines

log = logging.getLogger("ouzel.context")
T = TypeVar("T")

PER_SOURCE_LIMIT = 16
FOCUS_LINES = 16  # search hits and recent regions are cut to their best lines
OUTLINE = "outline"  # DefinitionSite.kind of a whole-module summary
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")


@dataclass(frozen=True)
class SymbolSite:
    name: str
    path: Path
    line: int  # 0-based
    kind: str


class Retrieval(Protocol):
    """What the engine needs of a workspace index (see `index_access.py`).

    Index hits arrive as candidates (absolute paths, the context's line spans), ranked
    in the index's order; `index_access.py` converts the index's `ChunkHit`s.
    """

    def chunks(self, query: str, limit: int, exclude: Collection[Path]) -> list[Candidate]:
        """BM25 hits (source "bm25")."""
        ...

    def symbols(self, name: str, limit: int) -> list[SymbolSite]: ...

    def similar(self, text: str, limit: int, exclude: Collection[Path]) -> list[Candidate] | None:
        """Vector neighbours (source "vector"), or None when no embeddings are configured."""
        ...


RetrievalFor = Callable[[Path | None], Retrieval | None]


@dataclass
class CodeReader:
    """How every source reads code: never a secret, never an open document's old text."""

    guard: SecretGuard
    files: FileTexts
    snippets: SnippetCache

    def definition(
        self, site: DefinitionSite, boost: float, documents: Mapping[Path, str]
    ) -> Candidate | None:
        """The definition (or module outline) at `site`, cut to size, as a candidate."""
        text = self.files.read(site.path, documents)
        if text is None:
            return None
        if site.kind == OUTLINE:
            snippet = self.snippets.outline(site.path, text)
        else:
            snippet = self.snippets.definition(site.path, text, site.line, language_of(site.path))
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

    def usable(self, hits: list[Candidate], documents: Mapping[Path, str]) -> list[Candidate]:
        """Index hits that may enter a prompt: no secrets, nothing an editor has changed."""
        return [
            hit for hit in hits if self.guard.allowed(hit.path) and self.current(hit, documents)
        ]

    def current(self, hit: Candidate, documents: Mapping[Path, str]) -> bool:
        """False when `hit` is from an open document whose text has changed since indexed
        (the index catches up a moment later; until then its text is an older version)."""
        text = documents.get(hit.path)
        if text is None:
            return True
        lines = self.snippets.lines(hit.path, text)
        return "".join(lines[hit.start_line : hit.end_line]) == hit.text


def words(text: str) -> set[str]:
    return set(_WORD.findall(text))


def language_of(path: Path) -> str:
    """The language name snippets are cut for (`python`, else the file's suffix)."""
    return "python" if is_python(path=path) else path.suffix.lstrip(".")


def is_python_request(request: ContextRequest) -> bool:
    return is_python(request.language, request.path)


def focused(hit: Candidate, rank: int, wanted: set[str]) -> Candidate:
    """A new candidate: `hit` cut to the lines using the most of `wanted`, ranked `rank`
    (index answers are reused between requests, so they are never changed in place)."""
    start, text = focus(hit.start_line, hit.text, wanted)
    return Candidate(hit.source, hit.path, start, start + len(split_lines(text)), text, rank)


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


def wait(future: Future[T], deadline: float) -> T | None:
    """The future's result if it arrives before `deadline`; None on timeout or failure."""
    try:
        return future.result(timeout=max(0.0, deadline - time.monotonic()))
    except FutureTimeout:
        return None
    except Exception:
        log.exception("a context look-up failed")
        return None
