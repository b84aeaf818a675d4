"""The code-action list (no model, no parse), regions and prompts."""

from __future__ import annotations

from ouzel.server.documents import Document
from ouzel.server.features.chat.actions import definitions_of
from ouzel.server.features.code_actions import (
    KINDS,
    ActionInput,
    Definition,
    definition_hint,
    messages_for,
    offers,
    refine,
    region_for,
    selection_lines,
)
from ouzel.server.features.edits import Region

SOURCE = (
    "import math\n"
    "\n"
    "class Shape:\n"
    "    def area(self):\n"
    "        return 0\n"
    "\n"
    "    def name(self):\n"
    "        return 'shape'\n"
    "\n"
    "def circle(r):\n"
    "    if r < 0:\n"
    "        raise ValueError(r)\n"
    "    return math.pi * r * r\n"
    "\n"
    "x = circle(2)\n"
)


def test_inside_a_method_every_action_but_edit_is_offered() -> None:
    found = offers(SOURCE, 4, 4, True, [])
    assert [o.action for o in found] == ["explain", "docstring", "tests"]
    assert found[1].title == "Ouzel: Add a docstring to area"
    assert found[2].title == "Ouzel: Write tests for area"
    assert all(o.kind == KINDS[o.action] for o in found)


def test_a_selection_adds_edit_and_diagnostics_add_fixes() -> None:
    found = offers(SOURCE, 10, 11, False, ["undefined name 'mth'", "x" * 200, "c", "d"])
    actions = [o.action for o in found]
    assert actions == ["explain", "fix", "fix", "fix", "docstring", "tests", "edit"]
    assert found[1].title == "Ouzel: Fix \"undefined name 'mth'\""
    assert found[2].title.endswith('…"') and len(found[2].title) < 80
    assert [o.diagnostic_index for o in found if o.action == "fix"] == [0, 1, 2]


def test_top_level_code_offers_no_docstring() -> None:
    assert [o.action for o in offers(SOURCE, 14, 14, True, [])] == ["explain"]


def test_only_filters_by_kind_prefix() -> None:
    found = offers(SOURCE, 10, 11, False, ["boom"], only=["quickfix"])
    assert [o.action for o in found] == ["fix"]
    found = offers(SOURCE, 10, 11, False, [], only=["refactor.rewrite"])
    assert [o.action for o in found] == ["docstring", "edit"]


def test_the_scan_finds_the_enclosing_definition() -> None:
    hint = definition_hint(SOURCE, 11)
    assert hint == Definition("circle", "function", 9, 12)
    assert definition_hint(SOURCE, 3) == Definition("area", "function", 3, 4)
    assert definition_hint(SOURCE, 5) is not None  # a blank line inside the class
    assert definition_hint("", 0) is None


def test_other_languages_are_scanned_too() -> None:
    js = "export function add(a, b) {\n  return a + b;\n}\n"
    assert definition_hint(js, 1) == Definition("add", "function", 0, 2)
    rust = "pub fn add(a: i32) -> i32 {\n    a + 1\n}\n"
    assert definition_hint(rust, 1) is not None


def test_the_outline_gives_exact_regions() -> None:
    doc = Document.create("file:///w/shapes.py", "python", 1, SOURCE)
    found = definitions_of(doc)
    assert refine(found, 11) == Definition("circle", "function", 9, 12)
    assert refine(found, 4) == Definition("area", "function", 3, 4)
    assert refine(found, 14) is None


def test_regions_follow_the_selection_or_the_definition() -> None:
    circle = Definition("circle", "function", 9, 12)
    assert region_for("edit", SOURCE, 10, 11, False, circle) == Region(10, 12)
    assert region_for("fix", SOURCE, 11, 11, True, circle) == Region(9, 13)
    assert region_for("docstring", SOURCE, 11, 11, False, circle) == Region(9, 13)
    assert region_for("fix", SOURCE, 14, 14, True, None) == Region(14, 15)


def test_selection_lines() -> None:
    assert selection_lines((3, 2), (3, 2)) == (3, 3, True)
    assert selection_lines((5, 0), (3, 1)) == (3, 4, False)  # reversed, ends at column 0
    assert selection_lines((3, 0), (3, 5)) == (3, 3, False)


def test_edit_prompts_ask_for_the_whole_region() -> None:
    job = ActionInput(
        "edit", "shapes.py", "python", "def f():\n    pass\n", 9, "f", "rename f to g"
    )
    system, user = messages_for(job)
    assert "COMPLETE rewritten region" in system.content
    assert "rename f to g" in user.content and "shapes.py, lines 10-11" in user.content
    explain = messages_for(ActionInput("explain", "shapes.py", "python", "x = 1\n", 0))
    assert "Explain" in explain[1].content and "```python\nx = 1\n```" in explain[1].content
