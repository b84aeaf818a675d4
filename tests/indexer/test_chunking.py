"""Chunks: whole lines, syntax-aligned, within the budget, every line of code covered once."""

from __future__ import annotations

from ouzel.indexer.chunking import Chunk
from ouzel.indexer.extract import analyze


def chunks_of(source: str, language: str, budget: int) -> list[Chunk]:
    return analyze(source.encode(), language, budget).chunks


def covered_lines(chunks: list[Chunk]) -> list[int]:
    return [line for c in chunks for line in range(c.start_line, c.end_line + 1)]


def function(name: str, body_lines: int) -> str:
    body = "".join(f"    value_{i} = compute({i})\n" for i in range(body_lines))
    return f"def {name}():\n{body}    return value_0\n"


def test_small_file_is_one_chunk_with_its_symbols() -> None:
    source = "import os\n\ndef a():\n    return 1\n\ndef b():\n    return 2\n"
    (chunk,) = chunks_of(source, "python", 2000)
    assert (chunk.start_line, chunk.end_line) == (0, 6)
    assert chunk.symbols == ["a", "b"]
    assert chunk.text == source


def test_small_neighbours_merge_and_big_definitions_stand_alone() -> None:
    source = (
        "def tiny_a():\n    return 1\n\n"
        "def tiny_b():\n    return 2\n\n" + function("big", 30) + "\ndef tiny_c():\n    return 3\n"
    )
    chunks = chunks_of(source, "python", 400)
    lines = source.splitlines()
    big_start = lines.index("def big():")
    first = chunks[0]
    assert first.symbols[:2] == ["tiny_a", "tiny_b"]
    # No chunk mixes the end of `big` with `tiny_c`, and none spans its start.
    for chunk in chunks:
        assert not (
            chunk.start_line < big_start <= chunk.end_line and chunk.start_line != big_start
        )
    assert chunks[-1].symbols == ["tiny_c"]


def test_every_nonblank_line_is_in_exactly_one_chunk_and_budget_holds() -> None:
    source = "\n\n".join(function(f"f{i}", 5 + i * 3) for i in range(12))
    chunks = chunks_of(source, "python", 600)
    lines = covered_lines(chunks)
    assert len(lines) == len(set(lines)), "chunks overlap"
    nonblank = {i for i, text in enumerate(source.splitlines()) if text.strip()}
    assert nonblank <= set(lines)
    for chunk in chunks:
        assert len(chunk.text.encode()) <= 2 * 600


def test_a_big_function_is_split_on_statement_boundaries() -> None:
    source = function("huge", 120)
    chunks = chunks_of(source, "python", 800)
    assert len(chunks) > 3
    assert chunks[0].text.startswith("def huge():\n")  # the header stays with its body
    for chunk in chunks:
        for line in chunk.text.splitlines():
            assert line.startswith(("def huge", "    value_", "    return"))
    assert all(c.symbols == ["huge"] for c in chunks)


def test_comments_stay_with_what_follows() -> None:
    source = function("first", 10) + "\n# Explains second.\n# More.\n" + function("second", 10)
    chunks = chunks_of(source, "python", 350)
    second = next(c for c in chunks if "def second" in c.text)
    assert second.text.startswith("# Explains second.")


def test_markdown_sections_are_chunks() -> None:
    source = "# Title\n\nIntro.\n\n## Install\n\nRun it.\n\n## Use\n\nCall it.\n"
    chunks = chunks_of(source, "markdown", 2000)
    assert [c.text.splitlines()[0] for c in chunks] == ["# Title", "## Install", "## Use"]
    assert chunks[1].symbols == ["Title > Install"]


def test_plain_text_becomes_line_windows() -> None:
    source = "".join(f"line {i}\n" for i in range(200))
    chunks = chunks_of(source, "text", 2000)
    assert len(chunks) > 1
    assert covered_lines(chunks) == list(range(200))
    assert all(c.symbols == [] for c in chunks)


def test_crlf_text_keeps_its_line_endings() -> None:
    source = "def a():\r\n    return 1\r\n"
    (chunk,) = chunks_of(source, "python", 2000)
    assert chunk.text == source
    assert (chunk.start_line, chunk.end_line) == (0, 1)


def test_one_enormous_line_is_capped() -> None:
    source = "data = [" + ", ".join(str(i) for i in range(20000)) + "]\n"
    chunks = chunks_of(source, "python", 2000)
    assert len(chunks) == 1
    assert len(chunks[0].text) <= 16_000


def test_empty_files_have_no_chunks() -> None:
    assert chunks_of("", "python", 2000) == []
    assert chunks_of("\n\n", "text", 2000) == []
