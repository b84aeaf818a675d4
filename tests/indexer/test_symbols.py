"""Symbols from the real grammar wheels: names, kinds, parents, ranges, docs, signatures."""

from __future__ import annotations

import pytest

from ouzel.indexer.extract import analyze
from ouzel.indexer.symbols import Symbol, nest


def symbols_of(source: str | bytes, language: str) -> dict[str, Symbol]:
    data = source.encode() if isinstance(source, str) else source
    found = analyze(data, language, 2000).symbols
    return {s.qualified_name: s for s in found}


def name_range(s: Symbol) -> tuple[int, int, int, int]:
    return (s.name_start_line, s.name_start_col, s.name_end_line, s.name_end_col)


def whole_range(s: Symbol) -> tuple[int, int, int, int]:
    return (s.start_line, s.start_col, s.end_line, s.end_col)


PYTHON = '''"""Module doc."""
import os

MAX_SIZE = 3
counter = 0

# Adds things.
@decorator
def add(a, b=2) -> int:
    """Add two numbers.

    More text."""
    return a + b


class Shape(Base):
    """A shape."""

    sides = 4

    def area(self):
        # not a docstring
        return 0

    class Inner:
        def deep(self): ...
'''


def test_python_symbols_kinds_parents_and_docs() -> None:
    found = symbols_of(PYTHON, "python")
    assert set(found) == {
        "MAX_SIZE",
        "counter",
        "add",
        "Shape",
        "Shape.sides",
        "Shape.area",
        "Shape.Inner",
        "Shape.Inner.deep",
    }
    assert found["MAX_SIZE"].kind == "constant"
    assert found["counter"].kind == "variable"
    assert found["add"].kind == "function"
    assert found["Shape"].kind == "class"
    assert found["Shape.sides"].kind == "field"
    assert found["Shape.area"].kind == "method"
    assert found["Shape.area"].parent == "Shape"
    assert found["Shape.Inner.deep"].parent == "Shape.Inner"
    assert found["add"].doc == "Add two numbers.\n\nMore text."
    assert found["Shape"].doc == "A shape."
    assert found["add"].signature == "def add(a, b=2) -> int"
    assert found["Shape"].signature == "class Shape(Base)"
    assert found["Shape.area"].doc == ""


def test_python_ranges_cover_decorators_and_name_is_exact() -> None:
    found = symbols_of(PYTHON, "python")
    add = found["add"]
    assert whole_range(add) == (7, 0, 12, 16)  # from "@decorator" to "return a + b"
    assert name_range(add) == (8, 4, 8, 7)
    deep = found["Shape.Inner.deep"]
    assert name_range(deep) == (25, 12, 25, 16)


def test_leading_comment_is_the_doc_of_a_decorated_function() -> None:
    found = symbols_of("# Adds.\n# Really.\n@d\ndef f(): pass\n", "python")
    assert found["f"].doc == "Adds.\nReally."


def test_columns_count_code_points_with_crlf_emoji_and_cjk() -> None:
    source = "x = '🎉'\r\nclass 日本:\r\n    def 名前(self): pass  # 🎉\r\n"
    found = symbols_of(source, "python")
    assert name_range(found["日本"]) == (1, 6, 1, 8)
    assert name_range(found["日本.名前"]) == (2, 8, 2, 10)
    assert whole_range(found["日本"]) == (1, 0, 2, 27)  # the comment, not its "\r"


def test_lone_carriage_returns_count_as_line_breaks() -> None:
    found = symbols_of("a = 1\rdef f():\r    pass\r", "python")
    assert name_range(found["f"]) == (1, 4, 1, 5)


def test_invalid_utf8_does_not_break_extraction() -> None:
    found = symbols_of(b"s = '\xff\xfe'\ndef after(): pass\n", "python")
    assert name_range(found["after"]) == (1, 4, 1, 9)


@pytest.mark.parametrize(
    ("language", "source", "expected"),
    [
        (
            "javascript",
            "class A { #p = 1; static s() {} }\nfunction* gen() {}\nexport const f = () => 1, z = 3\n",
            {
                "A": "class",
                "A.#p": "field",
                "A.s": "method",
                "gen": "function",
                "f": "function",
                "z": "variable",
            },
        ),
        (
            "typescript",
            "export class A<T> { x: number = 1; m(): void {} }\ninterface I { a: string; f(): void }\n"
            "type T = string\nenum E { A }\nnamespace N { export function g() {} }\n",
            {
                "A": "class",
                "A.x": "field",
                "A.m": "method",
                "I": "interface",
                "I.a": "field",
                "I.f": "method",
                "T": "type",
                "E": "enum",
                "N": "namespace",
                "N.g": "function",
            },
        ),
        (
            "tsx",
            "export function App(): JSX.Element { return <div>hi</div> }\n",
            {"App": "function"},
        ),
        (
            "go",
            "package p\n// S is a struct.\ntype S struct { A int }\nfunc (s *S) M() {}\n"
            "func F() {}\nconst X = 1\ntype I interface { N() }\n",
            {
                "S": "struct",
                "S.A": "field",
                "S.M": "method",
                "F": "function",
                "X": "constant",
                "I": "interface",
                "I.N": "method",
            },
        ),
        (
            "rust",
            "/// A struct.\n#[derive(Debug)]\nstruct S { a: i32 }\nimpl S { fn m(&self) {} }\n"
            "trait T { fn t(&self); }\nmod q { pub const C: u8 = 1; }\nenum E { V }\nmacro_rules! mac { () => {} }\n",
            {
                "S": "struct",
                "S.a": "field",
                "impl S": "impl",
                "S.m": "method",
                "T": "trait",
                "T.t": "method",
                "q": "module",
                "q.C": "constant",
                "E": "enum",
                "E.V": "enum_member",
                "mac": "macro",
            },
        ),
        (
            "java",
            "package p;\n/** Doc. */\npublic class A { int x; A() {} void m() {} enum E { ONE } interface I {} }\n",
            {
                "A": "class",
                "A.x": "field",
                "A.A": "constructor",
                "A.m": "method",
                "A.E": "enum",
                "A.E.ONE": "enum_member",
                "A.I": "interface",
            },
        ),
        (
            "c",
            "#define MAX 3\ntypedef struct P { int a; } P;\nenum E { A };\nstatic int *f(void) { return 0; }\nint g = 3;\n",
            {
                "MAX": "macro",
                "P": "type",
                "P.P": "struct",
                "P.P.a": "field",
                "E": "enum",
                "E.A": "enum_member",
                "f": "function",
                "g": "variable",
            },
        ),
        (
            "cpp",
            "namespace a { class B { int f(int x); }; int B::f(int x) { return x; } }\n"
            "template<class T> T g(T x) { return x; }\n",
            {"a": "namespace", "a.B": "class", "a.B.f": "method", "g": "function"},
        ),
    ],
)
def test_symbols_per_language(language: str, source: str, expected: dict[str, str]) -> None:
    found = symbols_of(source, language)
    assert {name: s.kind for name, s in found.items()} == expected


def test_docs_and_signatures_in_other_languages() -> None:
    go = symbols_of("package p\n// S is a struct.\ntype S struct { A int }\n", "go")
    assert go["S"].doc == "S is a struct."
    rust = symbols_of("/// A struct.\n#[derive(Debug)]\nstruct S { a: i32 }\n", "rust")
    assert rust["S"].doc == "A struct."
    assert rust["S"].signature == "struct S"
    java = symbols_of("/** Says hi. */\nclass A { void hi(int n) {} }\n", "java")
    assert java["A"].doc == "Says hi."
    assert java["A.hi"].signature == "void hi(int n)"


def test_cpp_out_of_class_method_is_qualified_by_its_class() -> None:
    found = symbols_of("namespace a { int B::f(int x) { return x; } }\n", "cpp")
    method = found["a.B.f"]
    assert (method.name, method.parent, method.kind) == ("f", "a.B", "method")


def test_markdown_headings_nest() -> None:
    source = "# Title\n\nintro\n\n## Install 日本\n\nsteps\n\n## Use\n\ntext\n"
    found = symbols_of(source, "markdown")
    assert set(found) == {"Title", "Title > Install 日本", "Title > Use"}
    install = found["Title > Install 日本"]
    assert install.kind == "heading"
    assert install.parent == "Title"
    assert name_range(install) == (4, 3, 4, 13)
    assert whole_range(install)[:2] == (4, 0)


def test_broken_code_still_gives_the_symbols_around_it() -> None:
    found = symbols_of("def ok():\n    pass\n\ndef broken(:\n\nclass After:\n    pass\n", "python")
    assert "ok" in found and "After" in found


def test_nest_builds_an_outline() -> None:
    found = analyze(PYTHON.encode(), "python", 2000).symbols
    roots = nest(found)
    names = [node.symbol.name for node in roots]
    assert names == ["MAX_SIZE", "counter", "add", "Shape"]
    shape = roots[-1]
    assert [child.symbol.name for child in shape.children] == ["sides", "area", "Inner"]
    assert [c.symbol.name for c in shape.children[-1].children] == ["deep"]


def test_plain_text_has_no_symbols() -> None:
    assert analyze(b"just words\n", "text", 2000).symbols == []
