"""The old-text matcher: exact, whitespace-normalised, ambiguity, "did you mean"."""

from __future__ import annotations

from ouzel.server.agent.matcher import (
    Match,
    NoMatch,
    apply_hunks,
    apply_match,
    closest_lines,
    find_match,
    hunks,
)

SOURCE = """def area(width, height):
    return width * height


def perimeter(width, height):
    total = width + height
    return 2 * total


class Shape:
    def __init__(self, name):
        self.name = name
"""


def replaced(old: str, new: str, content: str = SOURCE) -> str:
    match = find_match(content, old, new)
    assert isinstance(match, Match), match
    return apply_match(content, match)


def test_exact_match_replaces_only_that_text() -> None:
    result = replaced("    return width * height\n", "    return abs(width * height)\n")
    assert result == SOURCE.replace("width * height", "abs(width * height)")
    assert find_match(SOURCE, "def area(", "def surface(").strategy == "exact"  # type: ignore[union-attr]


def test_a_dropped_final_newline_is_kept() -> None:
    result = replaced("def area(width, height):\n", "def surface(width, height):")
    assert result.startswith("def surface(width, height):\n    return width * height\n")


def test_ambiguous_exact_match_is_refused_with_line_numbers() -> None:
    result = find_match(SOURCE, "(width, height):", "(w, h):")
    assert isinstance(result, NoMatch)
    assert "2 times" in result.reason and "lines 1, 5" in result.reason


def test_trailing_spaces_and_collapsed_whitespace_match() -> None:
    old = "def perimeter(width,  height):   \n    total = width + height"
    new = "def perimeter(width, height):\n    total = width + height + 0"
    result = find_match(SOURCE, old, new)
    assert isinstance(result, Match) and result.strategy == "whitespace"
    assert "total = width + height + 0\n    return 2 * total" in apply_match(SOURCE, result)


def test_wrong_indentation_is_matched_and_the_new_text_reindented() -> None:
    old = "def __init__(self, name):\n    self.name = name"
    new = "def __init__(self, name, sides):\n    self.name = name\n    self.sides = sides"
    result = replaced(old, new)
    assert "    def __init__(self, name, sides):\n        self.name = name\n" in result
    assert "        self.sides = sides\n" in result


def test_whitespace_ambiguity_is_refused() -> None:
    content = "x = 1\nif x:\n    y = 2\nif  x:\n  y = 2\n"
    result = find_match(content, "if x:\n y = 2", "if x:\n    y = 3")
    assert isinstance(result, NoMatch) and "2 places" in result.reason


def test_failed_match_answers_the_closest_real_lines() -> None:
    old = "def perimeter(w, h):\n    total = w + h\n    return 2 * total"
    result = find_match(SOURCE, old, "def perimeter(w, h):\n    return 2 * (w + h)")
    assert isinstance(result, NoMatch)
    assert "Did you mean" in result.reason
    assert "def perimeter(width, height):\n    total = width + height\n    return 2 * total" in (
        result.reason
    )
    assert "(5-7)" in result.reason


def test_nothing_close_says_so() -> None:
    result = find_match(SOURCE, "import numpy as np", "import numpy")
    assert isinstance(result, NoMatch) and "no lines are close" in result.reason


def test_already_applied_edit_is_reported() -> None:
    result = find_match(SOURCE, "return width + height", "return width * height")
    assert (
        isinstance(result, NoMatch)
        and "already in the file" in result.reason
        and "edit is done" in result.reason
    )


def test_elision_markers_in_new_text_are_refused() -> None:
    for marker in ("# ... existing code ...", "// ... rest of the function", "# rest of code ..."):
        result = find_match(SOURCE, "class Shape:", f"class Shape:\n    {marker}")
        assert isinstance(result, NoMatch) and "elision" in result.reason, marker
    kept = find_match("x = 1  # ... existing code ...\n", "x = 1", "x = 2")
    assert isinstance(kept, Match)


def test_empty_and_identical_are_refused() -> None:
    assert isinstance(find_match(SOURCE, "  \n", "x"), NoMatch)
    assert isinstance(find_match(SOURCE, "class Shape:", "class Shape:"), NoMatch)


def test_crlf_content_keeps_its_line_endings_via_exact_match() -> None:
    content = "a = 1\r\nb = 2\r\n"
    assert replaced("b = 2", "b = 3", content) == "a = 1\r\nb = 3\r\n"


def test_unicode_text_matches() -> None:
    content = "name = 'café'  # 名前 🙂\nother = 1\n"
    assert replaced("name = 'café'  # 名前 🙂", "name = 'cafe'", content) == (
        "name = 'cafe'\nother = 1\n"
    )


def test_closest_lines_on_a_long_file() -> None:
    lines = [f"value_{i} = {i}" for i in range(5000)]
    assert closest_lines(lines, ["value_4321 = 4321", "value_4322 = 4322x"]) == (4321, 4322)


def test_hunks_apply_one_by_one() -> None:
    old = "a\nb\nc\nd\ne\n"
    new = "A\nb\nc\nD\ne\nf\n"
    changes = hunks(old, new)
    assert len(changes) == 3
    assert apply_hunks(old, changes, [True, True, True]) == new
    assert apply_hunks(old, changes, [False, False, False]) == old
    assert apply_hunks(old, changes, [True, False, True]) == "A\nb\nc\nd\ne\nf\n"
    assert apply_hunks(old, changes, [False, True, False]) == "a\nb\nc\nD\ne\n"
