"""lsprotocol `Position` and `Range` from and to code point offsets (through `convert.py`)."""

from __future__ import annotations

from lsprotocol import types as lsp

from ouzel.server.convert import Encoding, Span, offset_at, position_at


def to_lsp_position(text: str, starts: list[int], offset: int, encoding: Encoding) -> lsp.Position:
    line, character = position_at(text, starts, offset, encoding)
    return lsp.Position(line=line, character=character)


def to_lsp_range(text: str, starts: list[int], span: Span, encoding: Encoding) -> lsp.Range:
    return lsp.Range(
        start=to_lsp_position(text, starts, span.start, encoding),
        end=to_lsp_position(text, starts, span.end, encoding),
    )


def to_span(text: str, starts: list[int], rng: lsp.Range, encoding: Encoding) -> Span:
    start = offset_at(text, starts, rng.start.line, rng.start.character, encoding).offset
    end = offset_at(text, starts, rng.end.line, rng.end.character, encoding).offset
    return Span(min(start, end), max(start, end))
