"""Cut a file into chunks for search: whole lines, aligned with the syntax tree.

A node that fits the budget is one unit; a bigger one is opened and its children become
units. Neighbouring units merge while the chunk stays within the budget, but never across
the edge of a definition that had to be opened (so a chunk never holds the end of one big
function and the start of the next). Comments stick to what follows them. Markdown
sections are never merged: each heading starts a chunk. Files without a grammar are cut
into line windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from tree_sitter import Node

from ouzel.indexer.symbols import Symbol
from ouzel.indexer.text import LineMap

WINDOW_LINES: Final = 60
MAX_CHUNK_TEXT: Final = 16_000  # one enormous line must not become a megabyte chunk


@dataclass(slots=True)
class Chunk:
    start_line: int
    end_line: int  # inclusive
    text: str
    symbols: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Unit:
    start_line: int
    end_line: int
    comment: bool = False
    boundary: bool = False  # a wall between chunks, not text


_WALL = _Unit(0, -1, boundary=True)


class _Cutter:
    def __init__(
        self,
        lines: LineMap,
        definitions: set[tuple[int, int]],
        comment_types: frozenset[str],
        budget: int,
        isolate: bool,
    ) -> None:
        self.lines = lines
        self.definitions = definitions
        self.comment_types = comment_types
        self.budget = budget
        self.isolate = isolate
        self.units: list[_Unit] = []

    def visit(self, node: Node, sticky_until: int = -1) -> None:
        """Units of `node`'s children; those starting before `sticky_until` (the header of
        an opened definition) stick to what follows, like comments."""
        for child in node.children:
            size = child.end_byte - child.start_byte
            if size == 0:
                continue
            is_definition = (child.start_byte, child.end_byte) in self.definitions
            opened = size > self.budget or (self.isolate and is_definition)
            if not opened or child.child_count == 0:
                start, end = self.lines.node_lines(
                    child.start_byte, child.end_byte, child.start_point[0], child.end_point
                )
                sticky = child.type in self.comment_types or child.start_byte < sticky_until
                self.units.append(_Unit(start, end, comment=sticky))
                continue
            if is_definition:
                self.units.append(_WALL)
            biggest = max(child.children, key=lambda c: c.end_byte - c.start_byte)
            self.visit(child, biggest.start_byte)
            if is_definition:
                self.units.append(_WALL)

    def ranges(self) -> list[tuple[int, int]]:
        """Merge units into line ranges within the budget."""
        out: list[tuple[int, int]] = []
        lines, budget = self.lines, self.budget
        start = end = -1  # the chunk being built; start -1: none
        solid_end = -1  # its last line before a trailing run of sticky units
        sticky_start = -1  # first line of that run; -1: none
        for unit in self.units:
            if unit.boundary:
                if start >= 0:
                    out.append((start, end))
                start = end = solid_end = sticky_start = -1
                continue
            too_big = (
                start >= 0
                and unit.start_line > end
                and lines.line_bytes(start, max(end, unit.end_line)) > budget
            )
            if too_big:
                carry = sticky_start >= 0 and lines.line_bytes(sticky_start, end) <= budget // 2
                if not carry:
                    out.append((start, end))
                    start = end = solid_end = sticky_start = -1
                elif sticky_start > start:
                    # Comments and headers move on with what they describe.
                    out.append((start, solid_end))
                    start, solid_end = sticky_start, -1
            if start < 0:
                start = unit.start_line
            end = max(end, unit.end_line)
            if unit.comment and unit.start_line > solid_end:
                if sticky_start < 0:
                    sticky_start = unit.start_line
            else:
                solid_end = end
                sticky_start = -1
        if start >= 0:
            out.append((start, end))
        return _split_oversized(_disjoint(out), self.lines, self.budget)


def _disjoint(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted ranges where no line belongs to two chunks."""
    result: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if result and start <= result[-1][1]:
            if end > result[-1][1]:
                result[-1] = (result[-1][0], end)
            continue
        result.append((start, end))
    return result


def _split_oversized(
    ranges: list[tuple[int, int]], lines: LineMap, budget: int
) -> list[tuple[int, int]]:
    result: list[tuple[int, int]] = []
    for start, end in ranges:
        if lines.line_bytes(start, end) <= budget * 2:
            result.append((start, end))
        else:
            result.extend(line_windows(lines, start, end, budget))
    return result


def line_windows(lines: LineMap, first: int, last: int, budget: int) -> list[tuple[int, int]]:
    """Consecutive windows of whole lines, each within the budget (or one long line)."""
    windows: list[tuple[int, int]] = []
    start = first
    while start <= last:
        end = start
        while (
            end < last
            and end - start + 1 < WINDOW_LINES
            and lines.line_bytes(start, end + 1) <= budget
        ):
            end += 1
        windows.append((start, end))
        start = end + 1
    return windows


def _trim_blank(lines: LineMap, start: int, end: int) -> tuple[int, int] | None:
    data = lines.data
    while start <= end:
        begin, stop = lines.line_span(start, start)
        if data[begin:stop].strip():
            break
        start += 1
    while end >= start:
        begin, stop = lines.line_span(end, end)
        if data[begin:stop].strip():
            break
        end -= 1
    return (start, end) if start <= end else None


def _attach_symbols(ranges: list[tuple[int, int]], symbols: list[Symbol]) -> list[list[str]]:
    """Qualified names defined in each chunk, or the definition around it."""
    ordered = sorted(symbols, key=lambda s: (s.start_line, -s.end_line))
    result: list[list[str]] = []
    index = 0
    for start, end in ranges:
        while index < len(ordered) and ordered[index].start_line < start:
            index += 1
        inside = []
        probe = index
        while probe < len(ordered) and ordered[probe].start_line <= end:
            inside.append(ordered[probe].qualified_name)
            probe += 1
        if not inside:
            for symbol in reversed(ordered[max(0, index - 200) : index]):
                if symbol.end_line >= end:
                    inside.append(symbol.qualified_name)
                    break
        result.append(inside[:32])
    return result


def _make_chunks(
    ranges: list[tuple[int, int]], lines: LineMap, symbols: list[Symbol]
) -> list[Chunk]:
    trimmed = [r for r in (_trim_blank(lines, s, e) for s, e in ranges) if r is not None]
    names = _attach_symbols(trimmed, symbols)
    return [
        Chunk(start, end, lines.lines_text(start, end)[:MAX_CHUNK_TEXT], inside)
        for (start, end), inside in zip(trimmed, names, strict=True)
    ]


def chunk_tree(
    root: Node,
    lines: LineMap,
    symbols: list[Symbol],
    comment_types: frozenset[str],
    budget: int,
    isolate_definitions: bool = False,
) -> list[Chunk]:
    definitions = {(s.start_byte, s.end_byte) for s in symbols}
    cutter = _Cutter(lines, definitions, comment_types, budget, isolate_definitions)
    if root.end_byte - root.start_byte <= budget and not isolate_definitions:
        start = lines.line_of(root.start_byte)
        ranges = [(start, lines.end_line(root.end_byte, start))]
    else:
        cutter.visit(root)
        ranges = cutter.ranges()
    return _make_chunks(ranges, lines, symbols)


def chunk_plain(lines: LineMap, budget: int) -> list[Chunk]:
    if not lines.data.strip():
        return []
    return _make_chunks(line_windows(lines, 0, lines.line_count - 1, budget), lines, [])
