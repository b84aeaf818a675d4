"""Hunks of a rewritten region, elision refusal, region bounds, line ends."""

from __future__ import annotations

import pytest

from ouzel.server.features.edits import (
    EditRefused,
    Hunk,
    Region,
    apply_hunks,
    check_reply,
    elisions,
    extract_code,
    hunks_for,
    region_for_lines,
    region_text,
)

SOURCE = (
    "import math\n"
    "\n"
    "def area(w, h):\n"
    "    return w * h\n"
    "\n"
    "def circle(r):\n"
    "    return math.pi * r * r\n"
)


def test_a_docstring_is_one_insert_hunk() -> None:
    region = Region(2, 4)
    new = 'def area(w, h):\n    """The area of a w × h rectangle."""\n    return w * h\n'
    hunks = hunks_for(SOURCE, region, new)
    assert hunks == [Hunk(3, 3, '    """The area of a w × h rectangle."""\n')]
    assert hunks[0].kind == "insert"
    assert hunks[0].label(1, 1) == "Change 1 of 1: before line 4 (insert)"
    assert apply_hunks(SOURCE, hunks) == SOURCE.replace(
        "    return w * h\n", '    """The area of a w × h rectangle."""\n    return w * h\n'
    )


def test_separate_changes_are_separate_hunks_and_each_applies_alone() -> None:
    region = Region(0, 7)
    new = SOURCE.replace("import math\n", "import math  # pi\n").replace(
        "math.pi * r * r", "math.pi * r**2"
    )
    hunks = hunks_for(SOURCE, region, new)
    assert [(h.first_line, h.end_line, h.kind) for h in hunks] == [
        (0, 1, "replace"),
        (6, 7, "replace"),
    ]
    assert apply_hunks(SOURCE, hunks) == new
    only_second = apply_hunks(SOURCE, [hunks[1]])
    assert only_second == SOURCE.replace("math.pi * r * r", "math.pi * r**2")


def test_nothing_outside_the_region_changes_even_if_the_model_rewrites_more() -> None:
    # The model "helpfully" returns the whole file for a region of two lines: every hunk
    # stays inside the region's lines, so the rest of the file cannot change.
    region = Region(2, 4)
    whole_file_reply = SOURCE.replace("math.pi", "3.14")
    hunks = hunks_for(SOURCE, region, whole_file_reply)
    assert all(region.first_line <= h.first_line and h.end_line <= region.end_line for h in hunks)
    result = apply_hunks(SOURCE, hunks)
    assert result.splitlines()[:2] == SOURCE.splitlines()[:2]
    assert result.endswith("def circle(r):\n    return math.pi * r * r\n")


def test_deleting_lines_is_a_delete_hunk() -> None:
    hunks = hunks_for(SOURCE, Region(2, 5), "def area(w, h):\n")
    assert [(h.first_line, h.end_line, h.kind) for h in hunks] == [(3, 5, "delete")]
    assert hunks[0].label(2, 3) == "Change 2 of 3: lines 4-5 (delete)"


def test_crlf_documents_keep_crlf_and_a_model_writing_lf_changes_nothing_by_that() -> None:
    crlf = SOURCE.replace("\n", "\r\n")
    assert hunks_for(crlf, Region(2, 4), "def area(w, h):\n    return w * h\n") == []
    hunks = hunks_for(crlf, Region(2, 4), "def area(w, h):\n    return h * w\n")
    assert hunks == [Hunk(3, 4, "    return h * w\r\n")]


def test_a_document_without_a_final_line_break_keeps_none() -> None:
    text = "def f():\n    return 1"
    hunks = hunks_for(text, Region(0, 2), "def f():\n    return 2\n")
    assert apply_hunks(text, hunks) == "def f():\n    return 2"
    appended = hunks_for(text, Region(0, 2), "def f():\n    return 1\n    # done\n")
    assert apply_hunks(text, appended) == "def f():\n    return 1\n    # done"


def test_emoji_and_cjk_lines_diff_by_line() -> None:
    text = "s = '😀'\nt = '漢字'\n"
    hunks = hunks_for(text, Region(0, 2), "s = '😀'\nt = '汉字'\n")
    assert hunks == [Hunk(1, 2, "t = '汉字'\n")]


@pytest.mark.parametrize(
    "reply",
    [
        "def area(w, h):\n    # ... existing code ...\n",
        "def area(w, h):\n    // ...\n",
        "def area(w, h):\n    # ... rest of the function\n",
        "/* ... */\n",
        "def area(w, h):\n    ...\n",
        "def area(w, h):\n    # rest of code unchanged\n    pass\n",
    ],
)
def test_elided_code_is_refused(reply: str) -> None:
    original = region_text(SOURCE, Region(2, 4))
    assert elisions(original, reply)
    with pytest.raises(EditRefused, match="leaves code out"):
        check_reply(original, reply)


def test_markers_already_in_the_original_are_not_elisions() -> None:
    original = "class P(Protocol):\n    def f(self) -> int: ...\n    # ... more below\n"
    check_reply(original, original.replace("int", "str"))
    check_reply("def f():\n    ...\n", 'def f():\n    """Doc."""\n    ...\n')


def test_an_empty_answer_is_refused() -> None:
    with pytest.raises(EditRefused, match="empty"):
        check_reply("x = 1\n", "\n")


def test_code_is_taken_from_the_fence() -> None:
    reply = "Sure! Here it is:\n```python\ndef f():\n    return 1\n```\nHope it helps."
    assert extract_code(reply) == "def f():\n    return 1\n"
    assert extract_code("def f():\n    pass") == "def f():\n    pass\n"
    with pytest.raises(EditRefused, match="cut off"):
        extract_code("```python\ndef f():\n    ret")


def test_regions_are_clamped_to_the_text() -> None:
    assert region_for_lines(SOURCE, 5, 99) == Region(5, 7)
    assert region_for_lines(SOURCE, -3, 0) == Region(0, 1)
    assert region_for_lines("", 4, 9) == Region(0, 1)
    with pytest.raises(ValueError):
        Region(3, 2)
