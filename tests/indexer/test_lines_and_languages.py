"""The one definition of each shared concept: lines of a text, "is this Python", chunk lines."""

from __future__ import annotations

import pytest

from ouzel.indexer.languages import is_python
from ouzel.indexer.search import ChunkHit
from ouzel.indexer.text import LineMap, line_content_end, line_of, line_starts, split_lines
from ouzel.server import convert

TEXT = "a\r\nb\rc\nd\u2028e\x0cf\n😀z"


def test_lines_break_only_where_lsp_breaks_them() -> None:
    assert line_starts(TEXT) == [0, 3, 5, 7, 13]
    assert split_lines(TEXT) == ["a\r\n", "b\r", "c\n", "d\u2028e\x0cf\n", "😀z"]
    assert [line_content_end(TEXT, line_starts(TEXT), n) for n in range(5)] == [1, 4, 6, 12, 15]


@pytest.mark.parametrize(
    ("offset", "line"), [(-5, 0), (0, 0), (2, 0), (3, 1), (4, 1), (5, 2), (15, 4), (99, 4)]
)
def test_line_of_an_offset(offset: int, line: int) -> None:
    assert line_of(line_starts(TEXT), offset) == line


def test_the_server_and_the_byte_map_use_the_same_lines() -> None:
    starts = line_starts(TEXT)
    assert convert.line_starts is line_starts
    for offset in range(len(TEXT) + 1):
        assert convert.position_at(TEXT, starts, offset, "utf-32")[0] == line_of(starts, offset)
    data = TEXT.encode()
    byte_map = LineMap(data)
    assert byte_map.line_count == len(starts)
    for offset in range(len(data) + 1):
        assert byte_map.line_of(offset) == line_of(byte_map.starts, offset)


@pytest.mark.parametrize(
    ("language_id", "path", "expected"),
    [
        ("python", None, True),
        ("Python", "notes.txt", True),
        ("pyi", None, True),
        ("py", None, True),
        ("", "pkg/mod.py", True),
        ("plaintext", "file:///w/stub.pyi", True),
        ("", "tool.PYW", True),
        ("javascript", "app.js", False),
        ("", "README.md", False),
        ("", None, False),
        ("", "python", False),  # a file called "python" is not Python source
    ],
)
def test_is_python(language_id: str, path: str | None, expected: bool) -> None:
    assert is_python(language_id, path) is expected


def test_a_chunk_hit_is_shown_from_line_one() -> None:
    hit = ChunkHit("pkg/mod.py", 0, 2, "a\nb\nc\n", 1.0)
    assert hit.shown_lines() == "pkg/mod.py:1-3"
