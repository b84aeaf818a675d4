"""The agent's LSP edits (server/handlers/agent.py): a proposal as a WorkspaceEdit whose
ranges are right in every position encoding, and which hunks an editor applied, told from
the text it reports."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from lsprotocol import converters

from ouzel.server.agent.confirm import EditProposal
from ouzel.server.agent.matcher import apply_hunks, hunks
from ouzel.server.handlers.agent import accepted_hunks, proposal_edit

converter = converters.get_converter()


def proposal(old: str, new: str, created: bool = False) -> EditProposal:
    return EditProposal("a.py", "/ws", old, new, tuple(hunks(old, new)), created)


def lsp_apply(text: str, edits: list[dict[str, Any]], encoding: str) -> str:
    """Apply LSP TextEdits as an editor does (ranges of the original text)."""
    # LSP lines: split at \r\n, \r, \n only.
    lines = re.split(r"(?<=\r\n)|(?<=\r)(?!\n)|(?<=\n)", text)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(position: dict[str, int]) -> int:
        line = position["line"]
        if line >= len(lines):
            return len(text)
        content = lines[line]
        units = 0
        for index, ch in enumerate(content):
            if units >= position["character"]:
                return starts[line] + index
            if encoding == "utf-16":
                units += 2 if ord(ch) > 0xFFFF else 1
            elif encoding == "utf-8":
                units += len(ch.encode())
            else:
                units += 1
        return starts[line] + len(content)

    spans = sorted(
        ((offset(e["range"]["start"]), offset(e["range"]["end"]), e["newText"]) for e in edits),
        reverse=True,
    )
    for begin, end, new in spans:
        text = text[:begin] + new + text[end:]
    return text


CASES = [
    (
        "def area(w, h):\n    return w * h\n\n\nx = 1\n",
        "def surface(w, h):\n    return w * h\n\n\nx = 2\n",
    ),
    ("a\r\nb\r\nc\r\nd\r\n", "a\r\nB\r\nc\r\nD\r\n"),  # CRLF
    ("s = '😀'; t = 1\nu = 2\n", "s = '😀'; t = 3\nu = 2\nv = 4\n"),  # astral characters
    ("x = 1\x0cy = 2\nz = 3\n", "x = 1\x0cy = 5\nz = 6\n"),  # a form feed: not an LSP line end
    ("first\nlast", "first\nlast line\nmore"),  # no final newline
    ("one\ntwo\nthree\n", "zero\none\nthree\nfour\n"),  # insert, delete, append
]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8", "utf-32"])
@pytest.mark.parametrize(("old", "new"), CASES)
def test_the_edit_applied_in_any_subset_gives_the_matching_text(
    old: str, new: str, encoding: str
) -> None:
    prop = proposal(old, new)
    edit = converter.unstructure(
        proposal_edit("file:///ws/a.py", 4, prop, encoding, "Ouzel agent: a.py")  # type: ignore[arg-type]
    )
    (document,) = edit["documentChanges"]
    assert document["textDocument"] == {"uri": "file:///ws/a.py", "version": 4}
    edits = document["edits"]
    assert len(edits) == len(prop.hunks) == len(edit["changeAnnotations"])
    labels = [edit["changeAnnotations"][e["annotationId"]]["label"] for e in edits]
    assert len(set(labels)) == len(labels)
    assert all(
        label.startswith(f"Change {i} of {len(edits)}: ") for i, label in enumerate(labels, 1)
    )
    for choice in itertools.product([True, False], repeat=len(edits)):
        taken = [e for e, take in zip(edits, choice, strict=True) if take]
        after = lsp_apply(old, taken, encoding)
        assert after == apply_hunks(old, list(prop.hunks), list(choice))
        assert accepted_hunks(old, prop.hunks, after) == list(choice)


def test_labels_name_the_lines_as_code_actions_do() -> None:
    old = "one\ntwo\nthree\nfour\n"
    prop = proposal(old, "zero\none\nTWO\nthree\n")
    edit = converter.unstructure(proposal_edit("file:///a", None, prop, "utf-16", "d"))
    labels = [a["label"] for a in edit["changeAnnotations"].values()]
    assert labels == [
        "Change 1 of 3: before line 1 (insert)",
        "Change 2 of 3: line 2 (replace)",
        "Change 3 of 3: line 4 (delete)",
    ]
    assert edit["documentChanges"][0]["textDocument"]["version"] is None


def test_a_new_file_is_a_create_then_the_whole_text() -> None:
    prop = proposal("", "print('hi')\n", created=True)
    edit = converter.unstructure(proposal_edit("file:///ws/new.py", None, prop, "utf-16", "d"))
    create, insert = edit["documentChanges"]
    assert create == {
        "kind": "create",
        "uri": "file:///ws/new.py",
        "options": {"overwrite": False, "ignoreIfExists": False},
        "annotationId": "ouzel-create",
    }
    assert insert["edits"][0]["newText"] == "print('hi')\n"
    assert insert["edits"][0]["range"]["start"] == insert["edits"][0]["range"]["end"]
    assert all(a["needsConfirmation"] for a in edit["changeAnnotations"].values())


def test_text_changed_in_other_ways_matches_no_subset() -> None:
    old = "a\nb\nc\n"
    prop = proposal(old, "A\nb\nC\n")
    assert accepted_hunks(old, prop.hunks, "A\nb\nC\nuser typed\n") is None
    assert accepted_hunks(old, prop.hunks, "") is None
    assert accepted_hunks(old, prop.hunks, old) == [False, False]


def test_ambiguous_pieces_are_resolved_by_the_rest_of_the_text() -> None:
    # Hunk 1 replaces "x" by "x\nx": taking it or not is only told apart by what follows.
    old = "x\ny\nx\n"
    new = "x\nx\ny\nz\n"
    prop = proposal(old, new)
    for choice in itertools.product([True, False], repeat=len(prop.hunks)):
        after = apply_hunks(old, list(prop.hunks), list(choice))
        found = accepted_hunks(old, prop.hunks, after)
        assert found is not None
        assert apply_hunks(old, list(prop.hunks), found) == after
