"""The pure rules of `lua/ouzel/hunks.lua` (which changes need confirmation, grouping into
hunks, the float's lines, the accepted subset), called directly in a headless Neovim 0.11:
no window, no buffer, no server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "nvim"))
from harness import Editor, editor

URI_A = "file:///w/a.py"
URI_B = "file:///w/b.py"


@pytest.fixture(scope="module")
def nvim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Editor]:
    root = tmp_path_factory.mktemp("hunks")
    with editor(root, root / "home") as running:
        yield running


def call(nvim: Editor, function: str, *args: Any) -> Any:
    return nvim.lua(f"return require('ouzel.hunks').{function}(...)", *args)


def call_all(nvim: Editor, function: str, *args: Any) -> list[Any]:
    """Every value a function returns (exec_lua keeps only the first)."""
    return nvim.lua(f"return {{ require('ouzel.hunks').{function}(...) }}", *args)


def edit(line: int, end: int, text: str, annotation: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "range": {"start": {"line": line, "character": 0}, "end": {"line": end, "character": 0}},
        "newText": text,
    }
    if annotation:
        result["annotationId"] = annotation
    return result


def confirm(label: str, needed: bool = True) -> dict[str, Any]:
    return {"label": label, "needsConfirmation": needed}


MIXED = {
    "documentChanges": [
        {"kind": "create", "uri": URI_B, "annotationId": "new"},
        {
            "textDocument": {"uri": URI_A, "version": 3},
            "edits": [
                edit(0, 1, "x = 1\n", "one"),
                edit(4, 5, "y = 2\n", "plain"),
                edit(6, 6, "z = 3\n", "one"),
                edit(8, 9, "w = 4\n"),
            ],
        },
        {"textDocument": {"uri": URI_B}, "edits": [edit(0, 0, "b = 1\n", "one")]},
    ],
    "changeAnnotations": {
        "one": confirm("Rename x"),
        "plain": confirm("Formatting", needed=False),
        "new": confirm("Create b.py"),
    },
}


def test_grouping_one_hunk_per_document_and_annotation_in_order(nvim: Editor) -> None:
    assert call(nvim, "needs_confirmation", MIXED) is True
    hunks = call(nvim, "collect", MIXED)
    assert [(h["uri"], h["annotation_id"], h["label"], len(h["edits"])) for h in hunks] == [
        (URI_B, "new", "Create b.py", 0),
        (URI_A, "one", "Rename x", 2),
        (URI_B, "one", "Rename x", 1),
    ]
    assert hunks[0]["operation"]["kind"] == "create"
    assert [h["index"] for h in hunks] == [1, 2, 3]


def test_no_confirmation_needed_without_confirming_annotations(nvim: Editor) -> None:
    plain = {"changes": {URI_A: [edit(0, 1, "a\n")]}}
    assert call(nvim, "needs_confirmation", plain) is False
    assert call(nvim, "needs_confirmation", MIXED | {"changeAnnotations": {}}) is True, (
        "ids the edit does not define are asked about"
    )
    unconfirmed = {
        "changes": {URI_A: [edit(0, 1, "a\n", "f")]},
        "changeAnnotations": {"f": confirm("f", False)},
    }
    assert call(nvim, "needs_confirmation", unconfirmed) is False
    for garbage in ["x", 3, [], {"documentChanges": "x"}]:
        assert call(nvim, "needs_confirmation", garbage) is False


def test_the_subset_keeps_unconfirmed_changes_and_the_accepted_hunks_in_order(nvim: Editor) -> None:
    subset = nvim.lua(
        """
        local hunks = require('ouzel.hunks')
        local edit = ...
        local list = hunks.collect(edit)
        return hunks.subset(edit, list, { [1] = false, [2] = true, [3] = false })
        """,
        MIXED,
    )
    changes = subset["documentChanges"]
    assert len(changes) == 1, "the rejected file creation and b.py's only edit are gone"
    assert changes[0]["textDocument"] == {"uri": URI_A, "version": 3}
    assert [e["newText"] for e in changes[0]["edits"]] == [
        "x = 1\n",
        "y = 2\n",
        "z = 3\n",
        "w = 4\n",
    ]
    none = nvim.lua(
        """
        local hunks = require('ouzel.hunks')
        local edit = ...
        return hunks.subset(edit, hunks.collect(edit), {})
        """,
        MIXED,
    )
    assert [e["newText"] for e in none["documentChanges"][0]["edits"]] == ["y = 2\n", "w = 4\n"]


@pytest.mark.parametrize(
    ("edits", "old", "new", "first"),
    [
        ([edit(1, 1, "inserted\n")], [], ["inserted"], 1),  # whole lines inserted
        ([edit(1, 2, "")], ["b"], [], 1),  # a line deleted
        ([edit(1, 3, "B\nC\nD\n")], ["b", "c"], ["B", "C", "D"], 1),  # replaced
        ([edit(0, 0, "top\n"), edit(2, 3, "C\n")], ["a", "b", "c"], ["top", "a", "b", "C"], 0),
        ([edit(3, 99, "end\n")], ["d"], ["end"], 3),  # past the end: clamped, as Neovim does
    ],
)
def test_preview_old_and_new_lines(
    nvim: Editor, edits: list[dict[str, Any]], old: list[str], new: list[str], first: int
) -> None:
    hunk = {"edits": edits}
    assert call_all(nvim, "preview", hunk, ["a", "b", "c", "d"], "utf-16") == [old, new, first]


def test_preview_counts_utf16_and_utf8_positions(nvim: Editor) -> None:
    line = "ab😀cd"
    utf16 = {
        "range": {"start": {"line": 0, "character": 4}, "end": {"line": 0, "character": 5}},
        "newText": "X",
    }
    assert call_all(nvim, "preview", {"edits": [utf16]}, [line], "utf-16")[1] == ["ab😀Xd"]
    utf8 = {
        "range": {"start": {"line": 0, "character": 6}, "end": {"line": 0, "character": 7}},
        "newText": "X",
    }
    assert call_all(nvim, "preview", {"edits": [utf8]}, [line], "utf-8")[1] == ["ab😀Xd"]
    crlf = edit(0, 1, "one\r\ntwo\r\n")
    assert call_all(nvim, "preview", {"edits": [crlf]}, ["a"], "utf-16")[1] == ["one", "two"]


def test_float_lines_name_the_change_file_and_keys(nvim: Editor) -> None:
    hunk = {
        "label": "Change 2 of 3: line 6 (replace)",
        "description": "Ouzel: Fix",
        "missing": False,
        "edits": [],
    }
    lines, highlights = call_all(
        nvim, "float_lines", hunk, 2, 3, "pkg/a.py", ["old"], ["new", "more"], 5
    )
    assert lines == [
        "Change 2 of 3: line 6 (replace)  (2 of 3)",
        "Ouzel: Fix",
        "pkg/a.py:6",
        "",
        "- old",
        "+ new",
        "+ more",
        "",
        "[y] accept  [n] reject  [a] accept this and the rest  [q] reject the rest",
    ]
    assert [4, "OuzelDiffDelete"] in highlights and [6, "OuzelDiffAdd"] in highlights


@pytest.mark.parametrize(
    "bad",
    [
        {"changes": {URI_A: [{"range": {"start": {"line": -1, "character": 0}}, "newText": "x"}]}},
        {"changes": {URI_A: [{"range": "r", "newText": "x"}]}},
        {"changes": {URI_A: [edit(0, 1, 7)]}},  # type: ignore[arg-type]
        {"documentChanges": [{"textDocument": {}, "edits": [edit(0, 1, "x")]}]},
    ],
)
def test_malformed_changes_are_named(nvim: Editor, bad: dict[str, Any]) -> None:
    assert isinstance(call(nvim, "problem", bad), str)
    assert call(nvim, "problem", MIXED) is None
