"""Conversions between LSP positions and plain text offsets.

The one place that knows about position encodings (UTF-8, UTF-16, UTF-32 code units) and
LSP line endings. Everything else in ouzel works on Python string offsets (code points).
No lsprotocol types here, so the LSP-free features can use it; `handlers/ranges.py` wraps
the results in lsprotocol's `Position` and `Range`.

LSP line breaks are exactly "\\r\\n", "\\r" and "\\n"; the line arithmetic itself (line
starts, the line of an offset, where a line's content ends) is `ouzel.indexer.text`'s,
shared with the LSP-free code, and re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ouzel.indexer.text import line_content_end as line_content_end
from ouzel.indexer.text import line_of
from ouzel.indexer.text import line_starts as line_starts

Encoding = Literal["utf-8", "utf-16", "utf-32"]


@dataclass(frozen=True)
class Pos:
    """A position as (line, column) where column counts code points."""

    line: int
    column: int


@dataclass(frozen=True)
class Span:
    """A half-open range of code point offsets into a document's text."""

    start: int
    end: int


def units(text: str, encoding: Encoding) -> int:
    """Length of `text` in code units of `encoding`."""
    if encoding == "utf-32" or text.isascii():
        return len(text)
    if encoding == "utf-16":
        return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)
    return len(text.encode("utf-8", errors="surrogatepass"))


def column_from_units(line_text: str, count: int, encoding: Encoding) -> int:
    """Code point column for `count` code units into `line_text`.

    A count that lands inside a character (half a surrogate pair, a byte in the middle of
    a UTF-8 sequence) snaps back to that character's start; a count past the end of the
    line means the end of the line, as the LSP specification says.
    """
    if count <= 0:
        return 0
    if encoding == "utf-32" or line_text.isascii():
        return min(count, len(line_text))
    seen = 0
    for column, ch in enumerate(line_text):
        width = _char_units(ch, encoding)
        if seen + width > count:
            return column
        seen += width
    return len(line_text)


def _char_units(ch: str, encoding: Encoding) -> int:
    code = ord(ch)
    if encoding == "utf-16":
        return 2 if code > 0xFFFF else 1
    if code < 0x80:
        return 1
    if code < 0x800:
        return 2
    if code < 0x10000:
        return 3
    return 4


@dataclass(frozen=True)
class ResolvedOffset:
    offset: int
    in_range: bool  # False when the position pointed past the line or the document end


def offset_at(
    text: str, starts: list[int], line: int, character: int, encoding: Encoding
) -> ResolvedOffset:
    """Code point offset of an LSP position, clamped into the document."""
    if line < 0 or character < 0:
        return ResolvedOffset(0, False)
    if line >= len(starts):
        return ResolvedOffset(len(text), False)
    begin = starts[line]
    end = line_content_end(text, starts, line)
    line_text = text[begin:end]
    column = column_from_units(line_text, character, encoding)
    in_range = character <= units(line_text, encoding)
    return ResolvedOffset(begin + column, in_range)


def position_at(text: str, starts: list[int], offset: int, encoding: Encoding) -> tuple[int, int]:
    """LSP (line, character) of a code point offset."""
    offset = max(0, min(offset, len(text)))
    line = line_of(starts, offset)
    begin = starts[line]
    end = line_content_end(text, starts, line)
    # An offset between "\r" and "\n" belongs to the end of the line's content.
    column_text = text[begin : min(offset, end)]
    return line, units(column_text, encoding)


def normalize_encoding(value: str | None) -> Encoding:
    if value == "utf-8":
        return "utf-8"
    if value == "utf-32":
        return "utf-32"
    return "utf-16"
