"""Fuzzy symbol ranking: exact > prefix > humps > substring, on an in-memory snapshot."""

from __future__ import annotations

import pyarrow as pa
import pytest

from ouzel.indexer import schema
from ouzel.indexer.search import SymbolSnapshot, humps_match, query_terms, rank_symbols
from ouzel.indexer.symbols import name_words


def snapshot(entries: list[tuple[str, str, str]]) -> SymbolSnapshot:
    """(name, kind, path) rows; other columns get plain values."""
    rows = []
    for line, (name, kind, path) in enumerate(entries):
        qualified = name if "." not in path else f"{path.split('.')[0]}.{name}"
        rows.append(
            {
                "path": path,
                "name": name,
                "qualified_name": qualified,
                "kind": kind,
                "language": "python",
                "start_line": line,
                "start_col": 0,
                "end_line": line,
                "end_col": 1,
                "name_start_line": line,
                "name_start_col": 0,
                "name_end_line": line,
                "name_end_col": len(name),
                "signature": "",
                "doc": "",
                "parent": "",
                "words": name_words(name, qualified),
            }
        )
    return SymbolSnapshot(pa.Table.from_pylist(rows, schema=schema.SYMBOLS))


def ranked(
    snap: SymbolSnapshot, query: str, limit: int = 10, kind: str | None = None
) -> list[tuple[str, str]]:
    names = snap.table.column("name").to_pylist()
    return [(names[row], tier) for row, tier in rank_symbols(snap, query, limit, kind)]


@pytest.mark.parametrize(
    ("query", "name", "expected"),
    [
        ("gUN", "getUserName", True),
        ("gun", "getUserName", True),
        ("getun", "getUserName", True),
        ("gus", "getUserName", True),  # "Us" continues the User word
        ("gnu", "getUserName", False),  # words in order only
        ("ws", "workspace_symbol", True),
        ("wsym", "workspace_symbol", True),
        ("HS", "HTTPServer", True),
        ("hts", "HTTPServer", True),
        ("x", "getUserName", False),
        ("p2", "parse2Fast", True),
        ("un", "getUserName", True),  # any word may start the match
        ("sern", "getUserName", False),  # but not the middle of a word
    ],
)
def test_humps(query: str, name: str, expected: bool) -> None:
    assert humps_match(query, name) is expected


def test_tiers_in_order() -> None:
    snap = snapshot(
        [
            ("isUserNamed", "function", "z.py"),
            ("getUserName", "function", "a.py"),
            ("username", "variable", "b.py"),
            ("usernames_by_id", "function", "c.py"),
            ("UserName", "class", "d.py"),
            ("myusernamefield", "field", "e.py"),
        ]
    )
    result = ranked(snap, "username")
    assert result[0] == ("username", "exact")
    assert result[1] == ("UserName", "exact")
    assert result[2] == ("usernames_by_id", "prefix")
    tiers = [tier for _, tier in result]
    assert tiers == sorted(tiers, key=["exact", "prefix", "humps", "substring"].index)
    assert ("getUserName", "humps") in result
    assert result[-1] == ("myusernamefield", "substring")


def test_query_case_wins_within_a_tier_then_shorter_names() -> None:
    snap = snapshot(
        [
            ("parse_all", "function", "a.py"),
            ("Parse", "class", "b.py"),
            ("parse", "function", "c.py"),
        ]
    )
    assert ranked(snap, "Parse")[:2] == [("Parse", "exact"), ("parse", "exact")]
    assert ranked(snap, "par")[0] == ("parse", "prefix")


def test_kind_filter_and_limit() -> None:
    snap = snapshot([(f"item{i}", "function" if i % 2 else "class", f"m{i}.py") for i in range(50)])
    result = ranked(snap, "item", limit=5, kind="class")
    assert len(result) == 5
    kinds = snap.table.column("kind").to_pylist()
    names = snap.table.column("name").to_pylist()
    assert all(kinds[names.index(name)] == "class" for name, _ in result)


def test_qualified_query() -> None:
    snap = snapshot(
        [("update_all", "method", "WorkspaceIndex.x"), ("update_all", "function", "other.py")]
    )
    result = rank_symbols(snap, "WorkspaceIndex.update", 5)
    qualified = snap.table.column("qualified_name").to_pylist()
    assert [qualified[row] for row, _ in result] == ["WorkspaceIndex.update_all"]


def test_empty_query_lists_types_first_and_nothing_matches_nothing() -> None:
    snap = snapshot([("helper", "function", "a.py"), ("Model", "class", "b.py")])
    assert ranked(snap, "")[0] == ("Model", "all")
    assert ranked(snap, "zzz") == []
    assert ranked(snapshot([]), "x") == []


def test_regex_characters_in_queries_are_literal() -> None:
    snap = snapshot(
        [("a.b", "function", "a.py"), ("operator[]", "method", "b.py"), ("x", "variable", "c.py")]
    )
    assert ranked(snap, "[]") == [("operator[]", "substring")]
    assert ranked(snap, "(.*)") == []


def test_query_terms() -> None:
    assert query_terms("def get_user(name): return self.name") == [
        "def",
        "get_user",
        "name",
        "return",
        "self",
    ]
    assert query_terms("日本語 テスト") == ["日本語", "テスト"]
    assert query_terms("!!! ...") == []
    assert len(query_terms(" ".join(f"w{i}" for i in range(500)))) == 64


def test_code_ranks_before_its_tests_when_names_tie() -> None:
    snap = snapshot(
        [
            ("urlopen", "function", "test/test_urllib.py"),
            ("urlopen", "function", "tests/unit/helpers.py"),
            ("urlopen", "function", "web/client.test.ts"),
            ("urlopen", "function", "urllib/request.py"),
        ]
    )
    paths = snap.table.column("path").to_pylist()
    ranked = [paths[row] for row, _ in rank_symbols(snap, "urlopen", 4)]
    assert ranked[0] == "urllib/request.py"
    assert set(ranked[1:]) == {"test/test_urllib.py", "tests/unit/helpers.py", "web/client.test.ts"}
