"""The type-through cache: suggestions still valid after the user typed into them.

An entry remembers the document text and cursor it was computed for. A later request is
answered from it, without a model call, when the text after the cursor is unchanged and
the text before the cursor grew by exactly characters the suggestion starts with, which
is what typing the suggestion, or accepting part of it, does. Entries hold a reference to
the document's (immutable) text, not copies.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

from ouzel.inference.templates import ContextSnippet


@dataclass(frozen=True)
class CachedSuggestion:
    id: str
    text: str  # the full suggestion at `offset`
    document_text: str
    offset: int
    latency_ms: float  # how long the model call took when it was computed
    # Computed in the background for the text after accepting another suggestion.
    speculative: bool = False
    snippets: tuple[ContextSnippet, ...] = ()  # the repository context its prompt had


@dataclass(frozen=True)
class CacheHit:
    entry: CachedSuggestion
    remaining: str  # what is left of the suggestion at the new cursor
    typed: int  # characters of it typed (or accepted) since


class TypeThroughCache:
    def __init__(self, per_document: int = 16, documents: int = 64) -> None:
        self._per_document = per_document
        self._documents = documents
        self._entries: OrderedDict[str, deque[CachedSuggestion]] = OrderedDict()

    def store(self, uri: str, entry: CachedSuggestion) -> None:
        entries = self._entries.get(uri)
        if entries is None:
            entries = self._entries[uri] = deque(maxlen=self._per_document)
        self._entries.move_to_end(uri)
        entries.append(entry)
        while len(self._entries) > self._documents:
            self._entries.popitem(last=False)

    def lookup(self, uri: str, text: str, offset: int) -> CacheHit | None:
        """The newest entry the user has typed into (or not moved away from)."""
        entries = self._entries.get(uri)
        if not entries:
            return None
        after = len(text) - offset
        for entry in reversed(entries):
            typed = offset - entry.offset
            if typed < 0 or len(entry.document_text) - entry.offset != after:
                continue
            if typed >= len(entry.text) or not entry.text.startswith(text[entry.offset : offset]):
                continue
            if not _same_around(entry, text, offset):
                continue
            return CacheHit(entry, entry.text[typed:], typed)
        return None

    def forget(self, uri: str) -> None:
        self._entries.pop(uri, None)


def _same_around(entry: CachedSuggestion, text: str, offset: int) -> bool:
    """The text before the entry's cursor and after the new cursor did not change."""
    old = entry.document_text
    return text.startswith(old[: entry.offset]) and text.endswith(old[entry.offset :])
