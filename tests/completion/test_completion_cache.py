"""The type-through cache: typing (or accepting part of) a suggestion needs no model call."""

from __future__ import annotations

from ouzel.server.features.completion_cache import CachedSuggestion, TypeThroughCache

URI = "file:///w/m.py"
TEXT = "def area(w, h):\n    \n\nprint(area(2, 3))\n"
CURSOR = TEXT.index("    \n") + 4
SUGGESTION = "return w * h"


def cache_with_entry() -> TypeThroughCache:
    cache = TypeThroughCache()
    cache.store(URI, CachedSuggestion("s1", SUGGESTION, TEXT, CURSOR, 120.0))
    return cache


def typed(chars: str) -> tuple[str, int]:
    return TEXT[:CURSOR] + chars + TEXT[CURSOR:], CURSOR + len(chars)


def test_typing_the_suggestion_returns_the_rest() -> None:
    cache = cache_with_entry()
    for count in range(len(SUGGESTION)):
        text, offset = typed(SUGGESTION[:count])
        hit = cache.lookup(URI, text, offset)
        assert hit is not None and hit.remaining == SUGGESTION[count:] and hit.typed == count
        assert hit.entry.id == "s1"


def test_fully_typed_or_diverging_text_is_a_miss() -> None:
    cache = cache_with_entry()
    assert cache.lookup(URI, *typed(SUGGESTION)) is None
    assert cache.lookup(URI, *typed("retx")) is None


def test_an_edit_elsewhere_is_a_miss() -> None:
    cache = cache_with_entry()
    text, offset = typed("ret")
    changed_after = text.replace("area(2, 3)", "area(2, 4)")
    assert cache.lookup(URI, changed_after, offset) is None
    changed_before = text.replace("def area", "def zone")
    assert cache.lookup(URI, changed_before, offset) is None


def test_backspace_finds_the_older_entry_again() -> None:
    cache = cache_with_entry()
    text, offset = typed("x")
    cache.store(URI, CachedSuggestion("s2", " = 1", text, offset, 90.0))
    hit = cache.lookup(URI, TEXT, CURSOR)  # the "x" deleted again
    assert hit is not None and hit.entry.id == "s1" and hit.remaining == SUGGESTION


def test_partial_accept_of_a_multi_line_suggestion() -> None:
    block = "area = w * h\n    return area"
    cache = TypeThroughCache()
    cache.store(URI, CachedSuggestion("b", block, TEXT, CURSOR, 300.0))
    text, offset = typed("area = w * h\n    ")  # the client accepted the first line
    hit = cache.lookup(URI, text, offset)
    assert hit is not None and hit.remaining == "return area"


def test_other_documents_and_forgetting() -> None:
    cache = cache_with_entry()
    assert cache.lookup("file:///w/other.py", TEXT, CURSOR) is None
    cache.forget(URI)
    assert cache.lookup(URI, TEXT, CURSOR) is None


def test_bounded_per_document_and_in_documents() -> None:
    cache = TypeThroughCache(per_document=2, documents=2)
    for index in range(3):
        cache.store(URI, CachedSuggestion(f"e{index}", "abc", f"{index}", 1, 1.0))
    assert cache.lookup(URI, "0", 1) is None  # the oldest entry was dropped
    assert cache.lookup(URI, "2", 1) is not None
    cache.store("file:///a", CachedSuggestion("a", "x", "", 0, 1.0))
    cache.store("file:///b", CachedSuggestion("b", "x", "", 0, 1.0))
    assert cache.lookup(URI, "2", 1) is None  # the least recently used document went
