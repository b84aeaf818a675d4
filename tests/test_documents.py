from __future__ import annotations

import pytest

from ouzel.server.documents import DocumentStore, TextChange, UnknownDocumentError


def test_incremental_edits_in_utf16_with_crlf_and_emoji() -> None:
    store = DocumentStore()
    store.open("file:///a.py", "python", 1, "x = '😀'\r\ny = 2\r\n")
    # replace "2" on line 1
    doc = store.change("file:///a.py", 2, [TextChange((1, 4, 1, 5), "3")], "utf-16")
    assert doc.text == "x = '😀'\r\ny = 3\r\n"
    # insert after the emoji on line 0: the emoji takes 2 UTF-16 units (columns 5-6)
    doc = store.change("file:///a.py", 3, [TextChange((0, 7, 0, 7), "!")], "utf-16")
    assert doc.text == "x = '😀!'\r\ny = 3\r\n"
    assert doc.version == 3


def test_several_changes_apply_in_order_and_full_replace() -> None:
    store = DocumentStore()
    store.open("file:///b.py", "python", 1, "abc")
    doc = store.change(
        "file:///b.py",
        2,
        [TextChange((0, 0, 0, 1), "X"), TextChange((0, 3, 0, 3), "\nnew")],
        "utf-8",
    )
    assert doc.text == "Xbc\nnew"
    doc = store.change("file:///b.py", 3, [TextChange(None, "whole")], "utf-8")
    assert doc.text == "whole"


def test_snapshots_do_not_change_under_a_handler() -> None:
    store = DocumentStore()
    first = store.open("file:///c.py", "python", 1, "one")
    store.change("file:///c.py", 2, [TextChange(None, "two")], "utf-16")
    assert first.text == "one" and store.get("file:///c.py").text == "two"


def test_listeners_and_unknown_documents() -> None:
    store = DocumentStore()
    events: list[tuple[str, int]] = []
    store.on_change(lambda kind, doc, prev: events.append((kind, doc.version)))
    store.open("file:///d.py", "python", 1, "")
    store.change("file:///d.py", 2, [TextChange(None, "x")], "utf-16")
    store.close("file:///d.py")
    assert events == [("open", 1), ("change", 2), ("close", 2)]
    with pytest.raises(UnknownDocumentError):
        store.get("file:///d.py")


def test_out_of_range_edit_is_clamped() -> None:
    store = DocumentStore()
    store.open("file:///e.py", "python", 1, "ab\ncd")
    doc = store.change("file:///e.py", 2, [TextChange((5, 0, 9, 9), "!")], "utf-16")
    assert doc.text == "ab\ncd!"
