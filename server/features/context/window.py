"""The text around the cursor: which lines it stands on and which names it uses."""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass

from ouzel.indexer.text import line_of, line_starts

# A dotted chain of identifiers not preceded by another identifier character or a dot.
_DOTTED = re.compile(r"(?<![\w.])([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)")

# Words that are never worth looking up, across the languages we index.
STOP_WORDS = frozenset(
    {
        *keyword.kwlist,
        *keyword.softkwlist,
        "self",
        "cls",
        "this",
        "super",
        "const",
        "let",
        "var",
        "function",
        "new",
        "public",
        "private",
        "protected",
        "static",
        "void",
        "int",
        "str",
        "bool",
        "float",
        "func",
        "package",
        "struct",
        "fn",
        "pub",
        "use",
        "mod",
        "impl",
        "interface",
        "extends",
        "implements",
        "catch",
        "throw",
        "switch",
        "case",
        "default",
        "do",
        "null",
        "undefined",
        "true",
        "false",
        "typeof",
        "instanceof",
        "export",
        "require",
        "include",
        "define",
        "endif",
        "ifdef",
        "ifndef",
        "len",
        "print",
        "range",
        "isinstance",
        "list",
        "dict",
        "set",
        "tuple",
        "object",
        "string",
        "err",
        "nil",
    }
)


@dataclass(frozen=True)
class NameUse:
    """A (possibly dotted) name used near the cursor."""

    dotted: str  # e.g. "os.path.join"
    line: int  # 0-based line of its nearest use
    column: int  # code point column of the start of `dotted` on that line
    distance: float  # lines from the cursor; lines after the cursor count double

    @property
    def name(self) -> str:
        return self.dotted.rsplit(".", 1)[-1]

    @property
    def head(self) -> str:
        return self.dotted.split(".", 1)[0]


@dataclass(frozen=True)
class Cursor:
    """Line facts about a cursor offset in a text."""

    text: str
    starts: list[int]
    offset: int
    line: int

    @staticmethod
    def at(text: str, offset: int, starts: list[int] | None = None) -> Cursor:
        starts = starts if starts is not None else line_starts(text)
        offset = max(0, min(offset, len(text)))
        line = line_of(starts, offset)
        return Cursor(text, starts, offset, line)

    @property
    def line_count(self) -> int:
        return len(self.starts)

    def line_span(self, first: int, last: int) -> tuple[int, int]:
        """Offsets of lines first..last (inclusive), clamped to the text."""
        first = max(0, first)
        last = min(self.line_count - 1, last)
        end = self.starts[last + 1] if last + 1 < self.line_count else len(self.text)
        return self.starts[first], end

    def lines_text(self, first: int, last: int) -> str:
        begin, end = self.line_span(first, last)
        return self.text[begin:end]


def names_near(cursor: Cursor, before: int = 30, after: int = 10) -> list[NameUse]:
    """Dotted names used within `before`/`after` lines of the cursor, nearest first."""
    best: dict[str, NameUse] = {}
    first = max(0, cursor.line - before)
    last = min(cursor.line_count - 1, cursor.line + after)
    for line in range(first, last + 1):
        begin, end = cursor.line_span(line, line)
        text = cursor.text[begin:end]
        distance = float(cursor.line - line) if line <= cursor.line else 2.0 * (line - cursor.line)
        for match in _DOTTED.finditer(text):
            dotted = match.group(1)
            if dotted.split(".", 1)[0] in STOP_WORDS and "." not in dotted:
                continue
            if dotted.isupper() and len(dotted) <= 2:
                continue
            known = best.get(dotted)
            if known is None or distance < known.distance:
                best[dotted] = NameUse(dotted, line, match.start(1), distance)
    return sorted(best.values(), key=lambda use: (use.distance, use.line, use.column))


def query_terms(cursor: Cursor, before: int = 12, after: int = 4, limit: int = 40) -> list[str]:
    """Identifiers around the cursor for a full-text query, nearest first, no repeats.

    The word being typed at the cursor is left out: it is unfinished, and without it the
    query stays the same from one keystroke to the next (and its answer can be reused).
    """
    terms: list[str] = []
    seen: set[str] = set()
    typing = cursor_word_start(cursor)
    for use in names_near(cursor, before, after):
        if use.line == cursor.line and typing is not None and use.column == typing:
            continue
        for part in use.dotted.split("."):
            if part in seen or part in STOP_WORDS or len(part) < 2:
                continue
            seen.add(part)
            terms.append(part)
            if len(terms) >= limit:
                return terms
    return terms


def cursor_word_start(cursor: Cursor) -> int | None:
    """Column where the dotted name that ends at the cursor starts (None: no such name)."""
    begin = cursor.starts[cursor.line]
    before = cursor.text[begin : cursor.offset]
    match = _TYPING.search(before)
    return match.start(1) if match else None


_TYPING = re.compile(r"(?<![\w.])([A-Za-z_][\w.]*)$")
