from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ouzel.server import convert
from ouzel.server.convert import Span
from ouzel.server.handlers import ranges

TEXT = "a😀b\r\n漢字x\rlast\n"


def test_line_starts_follow_lsp_line_breaks_only() -> None:
    text = "one\u2028still one\r\ntwo\rthree\nfour\x0cfive"
    starts = convert.line_starts(text)
    assert [text[s:].split("\n")[0][:4] for s in starts] == ["one\u2028", "two\r", "thre", "four"]
    assert len(starts) == 4


@pytest.mark.parametrize(
    ("encoding", "character", "expected_column"),
    [
        ("utf-16", 1, 1),  # before the emoji
        ("utf-16", 3, 2),  # after the emoji (2 UTF-16 units)
        ("utf-16", 2, 1),  # inside the surrogate pair: snaps back
        ("utf-8", 5, 2),  # emoji is 4 UTF-8 bytes
        ("utf-8", 3, 1),  # inside the emoji: snaps back
        ("utf-32", 2, 2),
        ("utf-16", 99, 3),  # past the end of the line: end of line
    ],
)
def test_offset_at_first_line(
    encoding: convert.Encoding, character: int, expected_column: int
) -> None:
    starts = convert.line_starts(TEXT)
    assert convert.offset_at(TEXT, starts, 0, character, encoding).offset == expected_column


def test_cjk_line_and_lone_cr() -> None:
    starts = convert.line_starts(TEXT)
    # line 1 is "漢字x": in UTF-8 each CJK character is 3 bytes.
    assert convert.offset_at(TEXT, starts, 1, 6, "utf-8").offset == starts[1] + 2
    assert convert.offset_at(TEXT, starts, 1, 2, "utf-16").offset == starts[1] + 2
    # line 2 starts after a lone "\r"
    assert TEXT[starts[2] :].startswith("last")
    assert convert.position_at(TEXT, starts, starts[2] + 4, "utf-16") == (2, 4)


def test_out_of_range_is_clamped_and_flagged() -> None:
    starts = convert.line_starts(TEXT)
    beyond = convert.offset_at(TEXT, starts, 99, 0, "utf-16")
    assert beyond.offset == len(TEXT) and not beyond.in_range
    past_eol = convert.offset_at(TEXT, starts, 0, 50, "utf-16")
    assert not past_eol.in_range
    assert convert.offset_at(TEXT, starts, -1, 0, "utf-16").in_range is False


def test_offset_between_cr_and_lf_maps_to_line_end() -> None:
    starts = convert.line_starts(TEXT)
    cr = TEXT.index("\r")
    assert convert.position_at(TEXT, starts, cr + 1, "utf-16") == (0, 4)


@given(st.text(alphabet=st.sampled_from(list("ab\r\n😀漢 é")), max_size=40), st.data())
def test_round_trip(text: str, data: st.DataObject) -> None:
    starts = convert.line_starts(text)
    offset = data.draw(st.integers(0, len(text)))
    # offsets inside "\r\n" are not addressable: move to the line end
    if 0 < offset < len(text) and text[offset - 1] == "\r" and text[offset] == "\n":
        offset -= 1
    for encoding in ("utf-8", "utf-16", "utf-32"):
        line, character = convert.position_at(text, starts, offset, encoding)  # type: ignore[arg-type]
        back = convert.offset_at(text, starts, line, character, encoding)  # type: ignore[arg-type]
        assert back.offset == offset
        assert back.in_range


def test_span_is_ordered() -> None:
    from lsprotocol import types

    starts = convert.line_starts(TEXT)
    rng = types.Range(types.Position(1, 2), types.Position(0, 1))
    assert ranges.to_span(TEXT, starts, rng, "utf-16") == Span(1, starts[1] + 2)


@pytest.mark.parametrize(
    "uri",
    [
        "file:///home/u/project/a.py",
        "file:///home/u/my%20project/caf%C3%A9.py",
        "file:///tmp/a%23b%3Fc.py",
        "file:///tmp/%E6%BC%A2%E5%AD%97/x.py",
        "untitled:Untitled-1",
        "vscode-notebook-cell:/a.ipynb#x",
    ],
)
def test_file_path_of_a_uri_is_pygls_answer(uri: str) -> None:
    from pathlib import Path

    from pygls.uris import to_fs_path

    from ouzel.server.documents import file_path

    expected = to_fs_path(uri) if uri.startswith("file:") else None
    assert file_path(uri) == (Path(expected) if expected else None)
