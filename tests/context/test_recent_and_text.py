"""The recent-code ring buffer, the names around the cursor, and cutting definitions."""

from __future__ import annotations

from pathlib import Path

from ouzel.server.documents import DocumentStore, TextChange
from ouzel.server.features.context.engine import focus
from ouzel.server.features.context.recent import RecentBuffer, changed_lines
from ouzel.server.features.context.snippets import (
    definition_snippet,
    python_outline,
    split_lines,
)
from ouzel.server.features.context.window import Cursor, names_near, query_terms


def _store(recent: RecentBuffer) -> DocumentStore:
    store = DocumentStore()
    store.on_change(recent.on_document)
    return store


def test_regions_follow_opens_and_edits_newest_first(tmp_path: Path) -> None:
    recent = RecentBuffer(capacity=3, chunk_lines=10)
    store = _store(recent)
    text = "".join(f"line {i}\n" for i in range(100))
    for name in ("a.py", "b.py"):
        store.open((tmp_path / name).as_uri(), "python", 1, text)
    uri = (tmp_path / "a.py").as_uri()
    store.change(uri, 2, [TextChange((50, 0, 50, 0), "edited\n")], "utf-16")
    regions = recent.regions()
    assert [(Path(r.uri).name, r.start_line, r.end_line) for r in regions] == [
        ("a.py", 45, 55),
        ("b.py", 0, 10),
        ("a.py", 0, 10),
    ]
    # Typing inside the newest region only refreshes it.
    store.change(uri, 3, [TextChange((51, 0, 51, 0), "x")], "utf-16")
    assert len(recent.regions()) == 3 and recent.regions()[0].start_line == 45
    # Lines inserted above a region move it with its code.
    store.change(uri, 4, [TextChange((5, 0, 5, 0), "one\ntwo\n")], "utf-16")
    moved = [r for r in recent.regions() if r.start_line > 40]
    assert [(r.start_line, r.end_line) for r in moved] == [(47, 57)]
    # Capacity: the oldest goes.
    store.open((tmp_path / "c.py").as_uri(), "python", 1, text)
    store.open((tmp_path / "d.py").as_uri(), "python", 1, text)
    assert [Path(r.uri).name for r in recent.regions()] == ["d.py", "c.py", "a.py"]


def test_reopening_forgets_the_old_regions(tmp_path: Path) -> None:
    recent = RecentBuffer(chunk_lines=10)
    store = _store(recent)
    uri = (tmp_path / "a.py").as_uri()
    store.open(uri, "python", 1, "x\n" * 100)
    recent.touch(uri, tmp_path / "a.py", 60, 100)
    store.close(uri)
    store.open(uri, "python", 1, "y\n" * 5)  # six lines: the last one is empty
    assert [(r.start_line, r.end_line) for r in recent.regions()] == [(0, 6)]


def test_secret_paths_are_never_remembered(tmp_path: Path) -> None:
    recent = RecentBuffer(allowed=lambda path: path is None or path.name != ".env")
    store = _store(recent)
    store.open((tmp_path / ".env").as_uri(), "plaintext", 1, "A=1\n")
    assert recent.regions() == []


def test_changed_lines_with_crlf_and_emoji() -> None:
    store = DocumentStore()
    old = store.open("file:///a.py", "python", 1, "a = '😀'\r\nb = 2\r\nc = 3\r\n")
    new = store.change("file:///a.py", 2, [TextChange((1, 4, 1, 5), "20\r\nd = 4")], "utf-16")
    assert changed_lines(old, new) == (1, 1)


def test_names_near_the_cursor_nearest_first() -> None:
    text = "import os\n\ndef f(path):\n    full = os.path.join(path, 'x')\n    return \n"
    cursor = Cursor.at(text, text.index("return ") + 7)
    names = [use.dotted for use in names_near(cursor)]
    assert names[:3] == ["full", "os.path.join", "path"]
    assert "return" not in names and "def" not in names
    assert query_terms(cursor)[:4] == ["full", "os", "path", "join"]


def test_a_cursor_past_the_end_is_clamped() -> None:
    cursor = Cursor.at("a\nb", 99)
    assert (cursor.offset, cursor.line) == (3, 1)


def test_split_lines_breaks_only_where_lsp_and_ast_do() -> None:
    assert split_lines("a\r\nb\x0cc\rd\u2028e\n") == ["a\r\n", "b\x0cc\r", "d\u2028e\n"]


def test_a_long_function_keeps_its_header_and_docstring() -> None:
    body = "".join(f"    step_{i}()\n" for i in range(40))
    source = (
        "@decorator\n"
        "def long(a,\n"
        "         b=1):\n"
        '    """One line.\n\n    More words.\n    And more.\n    Many.\n    Lines.\n    """\n'
        + body
    )
    snippet = definition_snippet(source, 1, "python")
    assert snippet is not None and snippet.start_line == 0
    assert snippet.text.startswith("@decorator\ndef long(a,\n         b=1):\n")
    assert '"""One line. …"""' in snippet.text and "step_39" not in snippet.text
    assert snippet.text.rstrip().endswith("...")


def test_an_attribute_is_shown_as_its_class() -> None:
    source = "class Box:\n    def __init__(self):\n        self.size = 1\n"
    snippet = definition_snippet(source, 2, "python")
    assert snippet is not None and snippet.text == source


def test_brace_languages_cut_at_the_closing_brace() -> None:
    source = "int other;\nstatic int add(int a,\n  int b) {\n  return a + b;\n}\nint after;\n"
    snippet = definition_snippet(source, 1, "c")
    assert (
        snippet is not None
        and snippet.text == "static int add(int a,\n  int b) {\n  return a + b;\n}\n"
    )


def test_module_outline_functions_first() -> None:
    source = "X = 1\nclass Shape:\n    def __init__(self, n): ...\ndef area(shape):\n    return 1\n"
    outline = python_outline(source)
    assert outline is not None
    assert outline.text == (
        "def area(shape): ...\nclass Shape:\n    def __init__(self, n): ...\nX = 1\n"
    )
    assert python_outline("def broken(:\n") is None


def test_focus_keeps_the_lines_that_share_the_most_words() -> None:
    text = "".join(f"filler_{i} = {i}\n" for i in range(40)) + "target = compute(alpha)\n"
    start, kept = focus(100, text, {"target", "compute", "alpha"}, lines=5)
    assert kept.endswith("target = compute(alpha)\n") and start == 100 + 36


def test_the_word_being_typed_is_not_searched() -> None:
    text = "total = compute_price(items)\nresult = compu"
    cursor = Cursor.at(text, len(text))
    terms = query_terms(cursor)
    assert "compu" not in terms and "result" in terms and "compute_price" in terms
    after_space = Cursor.at(text + " ", len(text) + 1)
    assert "compu" in query_terms(after_space)
