"""The relevance rule: retrieved snippets reach the prompt only when they define a name the
cursor's code takes from elsewhere (issue 14: unrelated HumanEval files lowered exact match)."""

from __future__ import annotations

from pathlib import Path

from ouzel.server.features.context.model import Candidate
from ouzel.server.features.context.relevance import (
    Needs,
    defines,
    needs_at_cursor,
    needs_near,
    relevant,
)
from ouzel.server.features.context.window import Cursor, names_near

HERE = Path("/w/here.py")

HUMANEVAL = (
    "from typing import List, Tuple\n\n\n"
    "def sum_product(numbers: List[int]) -> Tuple[int, int]:\n"
    '    """Sum and product of the numbers."""\n'
    "    sum_value = 0\n"
    "    prod_value = 1\n\n"
    "    \n"
    "        sum_value += n\n"
    "        prod_value *= n\n"
    "    return sum_value, prod_value\n"
)

OTHER_PROBLEM = (
    "def below_zero(operations: List[int]) -> bool:\n"
    "    balance = 0\n"
    "    for op in operations:\n"
    "        balance += op\n"
    "        if balance < 0:\n"
    "            return True\n"
    "    return False\n"
)


def _needs(text: str, at: str) -> Needs:
    cursor = Cursor.at(text, text.index(at) + len(at))
    return needs_at_cursor(text, names_near(cursor))


def _hit(text: str, path: str = "/w/other.py", label: str = "") -> Candidate:
    return Candidate("bm25", Path(path), 0, text.count("\n"), text, 0, label=label)


def test_an_unrelated_file_of_the_workspace_is_not_relevant() -> None:
    # The hole makes the file unparsable: the bindings come from line shapes.
    needs = _needs(HUMANEVAL, "prod_value = 1\n\n    ")
    assert "numbers" not in needs.foreign and "sum_value" not in needs.foreign
    assert "n" not in needs.foreign  # too short to tie a snippet to the cursor
    assert not relevant(_hit(OTHER_PROBLEM), HERE, needs)
    assert not relevant(_hit("n = 3\nsum_value = 2\n"), HERE, needs)


def test_a_definition_of_a_name_the_cursor_takes_from_elsewhere_is_relevant() -> None:
    text = "from shop.util import helper\n\n\ndef total(x):\n    y = helper(x)\n    return y\n"
    needs = _needs(text, "y = helper(x)\n    ")
    assert "helper" in needs.foreign and "x" not in needs.foreign
    assert relevant(_hit("def helper(a):\n    return a * 2\n"), HERE, needs)
    assert not relevant(_hit("def other(a):\n    return helper(a)\n"), HERE, needs)


def test_an_unbound_name_near_the_cursor_is_taken_from_elsewhere() -> None:
    """`from shop import *` or a name not imported yet: a snippet defining it counts."""
    text = "from shop import *\n\n\ndef pay(amount):\n    return amount * TAX_RATE\n"
    needs = _needs(text, "return amount")
    assert needs.foreign >= {"TAX_RATE"}
    assert relevant(_hit("TAX_RATE = 0.2\n"), HERE, needs)
    assert not relevant(_hit("len = 3\namount = 1\n"), HERE, needs)


def test_attributes_of_imported_modules_and_labels() -> None:
    text = (
        "import prices\n\n\ndef cart(items):\n    s = sum(items)\n    return prices.with_tax(s)\n"
    )
    needs = _needs(text, "return ")
    assert "with_tax" in needs.foreign
    assert relevant(_hit("def with_tax(amount):\n    return amount\n"), HERE, needs)
    # A definition reached from similar code, in a module the file imports.
    assert relevant(_hit("def discounted(a):\n    pass\n", label="prices.discounted"), HERE, needs)
    assert not relevant(
        _hit("def discounted(a):\n    pass\n", label="other.discounted"), HERE, needs
    )


def test_the_files_own_code_counts_when_it_defines_a_name_used_near_the_cursor() -> None:
    text = "def helper(a):\n    return a\n\n\ndef main(x):\n    return helper(x)\n"
    needs = _needs(text, "return helper(x)")
    assert relevant(_hit("def helper(a):\n    return a\n", str(HERE)), HERE, needs)
    assert not relevant(_hit("def unused(a):\n    return a\n", str(HERE)), HERE, needs)


def test_defines_needs_a_definition_not_a_use() -> None:
    names = frozenset({"helper"})
    assert defines("class helper:\n    pass\n", names)
    assert defines("    helper: int = 3\n", names)
    assert not defines("x = helper(3)\nif helper == 2:\n    pass\n", names)
    assert not defines("def helper_two():\n    pass\n", names)
    assert not defines("def helper():\n    pass\n", frozenset())


def test_another_files_local_variable_is_not_a_definition() -> None:
    text = "def sort_even(l: list):\n    evens = l[::2]\n    \n    return ans\n"
    needs = _needs(text, "evens = l[::2]\n    ")
    assert "ans" in needs.foreign
    assert not relevant(_hit("def fizz_buzz(n: int):\n    ans = 0\n"), HERE, needs)
    assert relevant(_hit("ans = 0\n"), HERE, needs)


def test_words_of_docstrings_and_comments_are_not_uses() -> None:
    text = 'def split(s):\n    """Separate the groups."""\n    # groups again\n    return s\n'
    needs = needs_near(text, text.index("return"))
    assert "groups" not in needs.used and "Separate" not in needs.foreign
