"""Where a suggestion may go and what of the model's text is kept."""

from __future__ import annotations

import pytest

from ouzel.server.convert import line_starts
from ouzel.server.features.completion_post import (
    CursorContext,
    block_ended,
    decide_mode,
    postprocess,
)


def at(marked: str) -> CursorContext:
    """The cursor context at "|" in `marked`."""
    offset = marked.index("|")
    text = marked.replace("|", "", 1)
    return CursorContext.at(text, line_starts(text), offset)


FUNCTION_BODY = "def area(width, height):\n    |\n\nprint(area(2, 3))\n"


@pytest.mark.parametrize(
    ("marked", "fim", "mode"),
    [
        (FUNCTION_BODY, False, "multi"),  # an empty line in a block
        ("def f(x):|\n", False, "multi"),  # the end of a line that opens a block
        ("x = compute(|)\n", False, "single"),  # only closers after the cursor
        ("total = |\n", False, "single"),  # the end of an ordinary line
        ("value = fo|o(bar)\n", False, None),  # mid-line, prefix-only model: nothing
        ("value = fo|o(bar)\n", True, "single"),  # mid-line, FIM model: one line
        ("items = [|]\n", True, "single"),
    ],
)
def test_mode_from_the_cursor(marked: str, fim: bool, mode: str | None) -> None:
    assert decide_mode(at(marked), fim, multiline=True) == mode


def test_multiline_setting_off_gives_single_lines() -> None:
    assert decide_mode(at(FUNCTION_BODY), False, multiline=False) == "single"


def test_single_line_stops_at_the_end_of_the_line() -> None:
    assert postprocess("width * height\n    return x", at("x = |\n"), "single", 8) == (
        "width * height"
    )


def test_block_ends_where_the_indentation_drops() -> None:
    raw = "result = width * height\n    return result\n\nprint(area(4, 5))\n"
    assert postprocess(raw, at(FUNCTION_BODY), "multi", 8) == (
        "result = width * height\n    return result"
    )


def test_block_after_an_opener_starts_on_the_next_line() -> None:
    raw = "\n    return a + b\n\ndef other():\n"
    assert postprocess(raw, at("def add(a, b):|\n"), "multi", 8) == "\n    return a + b"


def test_block_on_an_empty_line_started_by_the_model_on_the_next_line() -> None:
    # The cursor already stands at the indentation; the block starts right there.
    raw = "\n    return width * height\n"
    assert postprocess(raw, at(FUNCTION_BODY), "multi", 8) == "return width * height"


def test_block_keeps_at_most_max_lines() -> None:
    raw = "".join(f"a{i} = {i}\n    " for i in range(20))
    lines = postprocess(raw, at(FUNCTION_BODY), "multi", 3).split("\n")
    assert len(lines) == 3


def test_a_looping_model_is_cut_at_the_first_repeat() -> None:
    raw = "print(a + b)\n    print(a + b)\n    print(a + b)\n"
    assert postprocess(raw, at("def add(a, b):\n    |\n"), "multi", 8) == "print(a + b)"


def test_top_level_block_ends_at_a_blank_line() -> None:
    raw = "import sys\n\ndef main():\n    pass\n"
    assert postprocess(raw, at("import os\n|\n"), "multi", 8) == "import sys"


def test_closing_brackets_already_on_the_line_are_not_repeated() -> None:
    cursor = at("print(|)\n")
    assert postprocess('"hello")', cursor, "single", 8) == '"hello"'
    assert postprocess('"hi", end="")', cursor, "single", 8) == '"hi", end=""'
    assert postprocess('"hi"))', cursor, "single", 8) == '"hi"'
    assert postprocess("f(x), g(y))", cursor, "single", 8) == "f(x), g(y)"
    # A quote and a bracket after the cursor.
    assert postprocess('hello")', at('print("|")\n'), "single", 8) == "hello"


def test_text_that_only_repeats_the_next_line_is_dropped() -> None:
    cursor = at("def f():\n    |\n    return 1\n")
    assert postprocess("return 1\n", cursor, "multi", 8) == ""


def test_a_block_is_cut_where_it_reaches_the_following_code() -> None:
    cursor = at("for item in items:\n    |\n    total += item\n")
    raw = "item = item * 2\n    total += item\n    print(total)\n"
    assert postprocess(raw, cursor, "multi", 8) == "item = item * 2"


def test_a_suggestion_repeating_the_line_above_is_dropped() -> None:
    cursor = at("x = load(path)\nx = load(|\n")
    assert postprocess("path)", cursor, "single", 8) == ""


def test_no_item_rather_than_an_empty_one() -> None:
    assert postprocess("", at("x = |\n"), "single", 8) == ""
    assert postprocess("   \n\n", at(FUNCTION_BODY), "multi", 8) == ""
    assert postprocess("\nfoo()", at("x = |\n"), "single", 8) == ""


def test_indentation_follows_the_document() -> None:
    tabbed = "def f(items):\n\tfor item in items:\n\t\t|\n"
    raw = "if item:\n            yield item\n"
    assert postprocess(raw, at(tabbed), "multi", 8) == "if item:\n\t\t\tyield item"
    spaced = "def f(items):\n    for item in items:\n        |\n"
    raw = "if item:\n\t\t\tyield item\n"
    assert postprocess(raw, at(spaced), "multi", 8) == "if item:\n            yield item"


def test_trailing_whitespace_is_trimmed_and_crlf_normalised() -> None:
    assert postprocess("a + b   \r\n", at("x = |\n"), "single", 8) == "a + b"


def test_should_stop_ends_generation_when_the_block_is_over() -> None:
    ended = block_ended(at(FUNCTION_BODY), max_lines=8)
    assert not ended("result = 1\n    return result")
    assert not ended("result = 1\n    return result\n")
    assert ended("result = 1\n    return result\nprint(")
    assert ended("a\n" * 10)


def test_crlf_documents_give_the_same_context() -> None:
    cursor = at("def f():\r\n    |\r\n    return 1\r\n")
    assert cursor.line_prefix == "    " and cursor.line_suffix == ""
    assert cursor.lines_after[0] == "    return 1"


def test_a_capped_block_drops_its_unfinished_last_line() -> None:
    raw = "if n <= 1:\n        return n\n    return"
    cursor = at("def fib(n):\n    |\n")
    assert postprocess(raw, cursor, "multi", 8, truncated=True) == "if n <= 1:\n        return n"
    assert postprocess(raw, cursor, "multi", 8, truncated=False).endswith("    return")
    # A block that ended before the cap is complete.
    ended = "x = 1\n    y = 2\nprint(x)"
    assert postprocess(ended, cursor, "multi", 8, truncated=True) == "x = 1\n    y = 2"


CRLF_BODY = "def f(x):\r\n    |\r\n"
LF_BODY = "def f(x):\n    |\n"


@pytest.mark.parametrize("document", [CRLF_BODY, LF_BODY, "def f(x):\r    |\r"])
@pytest.mark.parametrize(
    "raw",
    [
        "y = x\r\n    return y\r\n",  # Windows line breaks from the model
        "y = x\r    return y\r",  # lone carriage returns
        "y = x\n    return y\r\n",  # mixed
        "y = x\r\n    return y",  # no final break
    ],
)
def test_blocks_never_contain_carriage_returns(document: str, raw: str) -> None:
    # Clients insert "\n" as the document's line break; a "\r" would show as ^M in Neovim.
    assert postprocess(raw, at(document), "multi", 8) == "y = x\n    return y"


@pytest.mark.parametrize("raw", ["x + 1\r\n", "x + 1\r", "x + 1\rprint(x)", "x + 1\r\r\n"])
def test_single_lines_never_contain_carriage_returns(raw: str) -> None:
    assert postprocess(raw, at("def f(x):\r\n    return |\r\n"), "single", 8) == "x + 1"


def test_a_block_that_repeats_the_next_crlf_line_is_cut_there() -> None:
    cursor = at("def f(x):\r\n    |\r\n    return x\r\n")
    assert postprocess("x += 1\r\n    return x\r\n", cursor, "multi", 8) == "x += 1"


def test_should_stop_sees_the_lines_of_crlf_and_cr_model_text() -> None:
    ended = block_ended(at(FUNCTION_BODY), max_lines=8)
    assert not ended("result = 1\r\n    return result\r\n")
    assert ended("result = 1\r\n    return result\r\nprint(")
    assert ended("result = 1\r    return result\rprint(")


# --- cases from the HumanEval infilling benchmark (issue 14) ---------------------------------

SEPARATE_PAREN_GROUPS = (  # HumanEval/1: the same line in both branches of an if
    "    for c in paren_string:\n"
    "        if c == '(':\n"
    "            current_depth += 1\n"
    "            current_string.append(c)\n"
    "        elif c == ')':\n"
    "            current_depth -= 1\n"
    "            |\n"
    "\n"
    "            if current_depth == 0:\n"
)


def test_a_line_that_also_appears_three_lines_up_is_kept() -> None:
    cursor = at(SEPARATE_PAREN_GROUPS)
    raw = "current_string.append(c)\n\n    return"
    assert postprocess(raw, cursor, "multi", 8) == "current_string.append(c)"


def test_a_copy_of_the_line_right_above_is_still_dropped() -> None:
    cursor = at("    total += 1\n    |\n    print(total)\n")
    assert postprocess("total += 1\n", cursor, "multi", 8) == ""


MAKE_PALINDROME = (  # HumanEval/10: the model indented its answer again
    "    while not is_palindrome(string[beginning_of_suffix:]):\n"
    "        beginning_of_suffix += 1\n"
    "\n"
    "    |\n"
)
LARGEST_DIVISOR = (  # HumanEval/24
    "    for i in reversed(range(n)):\n        if n % i == 0:\n            |\n"
)


def test_indentation_the_blank_line_already_has_is_not_written_twice() -> None:
    raw = "    return string + string[:beginning_of_suffix][::-1]\n\n\n"
    expected = "return string + string[:beginning_of_suffix][::-1]"
    assert postprocess(raw, at(MAKE_PALINDROME), "multi", 8) == expected
    assert postprocess("    return i\n    return", at(LARGEST_DIVISOR), "multi", 8) == "return i"
    assert postprocess("    return i", at(LARGEST_DIVISOR), "single", 8) == "return i"


def test_a_block_with_excess_indentation_keeps_its_shape() -> None:
    # Lines after the first are whole lines: the model put the first at column 16.
    raw = "    if i > 1:\n" + " " * 20 + "return i\n" + " " * 16 + "return 1\n"
    expected = "if i > 1:\n" + " " * 16 + "return i\n" + " " * 12 + "return 1"
    assert postprocess(raw, at(LARGEST_DIVISOR), "multi", 8) == expected


def test_indentation_a_line_may_take_is_left_alone() -> None:
    # One level deeper than a block opener above: the model's extra level is allowed.
    assert postprocess("    return x\n", at("def f(x):\n|\n"), "multi", 8) == "    return x"
    cursor = at("class A:\n    def f(self):\n    |\n")  # the editor did not indent enough
    assert postprocess("    return 1\n", cursor, "multi", 8) == "    return 1"
    # Not a blank line: the model's spaces are text inside the line.
    assert postprocess("  + 1", at("x = y|\n"), "single", 8) == "  + 1"


def test_should_stop_sees_the_block_without_the_excess_indentation() -> None:
    ended = block_ended(at(LARGEST_DIVISOR), max_lines=8)
    assert not ended("    return i\n")
    assert ended("    return i\n    return 1")


def test_after_a_space_mid_line_the_model_s_extra_space_is_dropped() -> None:
    cursor = at("    return math.sqrt(x * x + |)\n")
    assert postprocess(" y * y", cursor, "single", 8) == "y * y"
    assert postprocess(" y * y", at("total = compute(|)\n"), "single", 8) == " y * y"


def test_after_indentation_a_space_short_of_an_indent_step_is_dropped() -> None:
    cursor = at("def f(x):\n    |\n")
    assert postprocess(" return x", cursor, "multi", 8) == "return x"
    assert postprocess("return x", cursor, "multi", 8) == "return x"
