"""Lines the way LSP counts them, in text (code point offsets) and in UTF-8 bytes.

Lines break at exactly "\\r\\n", "\\r" and "\\n" (a lone "\\r" too, which tree-sitter does
not count); `str.splitlines()` is wrong here because it also breaks on U+2028, form feed
and friends, which would shift every line number after such a character. Lines are
0-based; columns are code points. This is the one place for offset <-> line arithmetic;
converting code points to the client's units (UTF-16, UTF-8) is `ouzel.server.convert`'s.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

_BREAK = re.compile(rb"\r\n|\r|\n")
_LONE_CR = re.compile(rb"\r(?!\n)")
_TEXT_BREAK = re.compile(r"\r\n|\r|\n")
_TEXT_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def line_starts(text: str) -> list[int]:
    """Offsets (code points) where each line begins; always at least one line."""
    starts = [0]
    starts.extend(match.end() for match in _TEXT_BREAK.finditer(text))
    return starts


def line_of(starts: Sequence[int], offset: int) -> int:
    """The 0-based line holding `offset`, given the lines' start offsets (text or bytes)."""
    return max(0, bisect_right(starts, offset) - 1)


def line_content_end(text: str, starts: Sequence[int], line: int) -> int:
    """Offset just before the line break that ends `line` (or the end of the text)."""
    end = starts[line + 1] if line + 1 < len(starts) else len(text)
    while end > starts[line] and text[end - 1] in "\r\n":
        end -= 1
    return end


def split_lines(text: str) -> list[str]:
    """Lines with their endings, broken only at \\r\\n, \\r and \\n (as LSP, ast and Jedi do)."""
    return _TEXT_LINE.findall(text)


def decode(data: bytes) -> tuple[str, bytes]:
    """The text of `data`, and bytes that are valid UTF-8 (invalid bytes become U+FFFD)."""
    try:
        return data.decode("utf-8"), data
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        return text, text.encode("utf-8")


class LineMap:
    """Line starts of a byte string, and offset → (line, code point column)."""

    __slots__ = ("ascii", "data", "lone_cr", "starts")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.ascii = data.isascii()
        self.lone_cr = b"\r" in data and _LONE_CR.search(data) is not None
        if self.lone_cr:
            self.starts = [0, *(m.end() for m in _BREAK.finditer(data))]
        else:
            # "\r\n" ends with "\n", so splitting on "\n" finds the same line starts.
            self.starts = [0, *accumulate(len(line) + 1 for line in data.split(b"\n")[:-1])]

    @property
    def line_count(self) -> int:
        return len(self.starts)

    def line_of(self, offset: int) -> int:
        return line_of(self.starts, offset)

    def position(self, offset: int) -> tuple[int, int]:
        line = line_of(self.starts, offset)
        start = self.starts[line]
        if line + 1 < len(self.starts):
            # An offset inside the line break (tree-sitter puts "\r" in comments) means
            # the end of the line's content.
            following = self.starts[line + 1]
            content_end = following - (2 if self.data[following - 2 : following] == b"\r\n" else 1)
            offset = min(offset, max(content_end, start))
        if self.ascii:
            return line, offset - start
        return line, len(self.data[start:offset].decode("utf-8", errors="replace"))

    def node_position(self, offset: int, point: tuple[int, int]) -> tuple[int, int]:
        """`position(offset)`, taking tree-sitter's (row, byte column) when it is exact:
        ASCII text, no lone "\r", not just after a "\r" (inside a line break)."""
        if self.ascii and not self.lone_cr and self.data[offset - 1 : offset] != b"\r":
            return point[0], point[1]
        return self.position(offset)

    def node_lines(
        self, start: int, end: int, start_row: int, end_point: tuple[int, int]
    ) -> tuple[int, int]:
        """First and last line a node touches (a node ending at a line start ends before it)."""
        if self.lone_cr:
            first = self.line_of(start)
            return first, self.end_line(end, first)
        row, column = end_point
        return start_row, (row - 1 if column == 0 and row > start_row else row)

    def line_span(self, first: int, last: int) -> tuple[int, int]:
        """Byte range of lines first..last (inclusive), line breaks included."""
        end = self.starts[last + 1] if last + 1 < len(self.starts) else len(self.data)
        return self.starts[first], end

    def line_bytes(self, first: int, last: int) -> int:
        begin, end = self.line_span(first, last)
        return end - begin

    def lines_text(self, first: int, last: int) -> str:
        begin, end = self.line_span(first, last)
        return self.data[begin:end].decode("utf-8", errors="replace")

    def end_line(self, end_byte: int, start_line: int) -> int:
        """Last line touched by a range ending (exclusively) at `end_byte`."""
        line = self.line_of(end_byte)
        if line > start_line and self.starts[line] == end_byte:
            return line - 1
        return line
