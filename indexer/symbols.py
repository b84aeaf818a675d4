"""Definitions in a syntax tree: name, kind, ranges, signature, doc and parent.

Ranges are 0-based lines and code point columns; `start`/`end` cover the whole definition
(decorators, `export`, a Markdown heading's section), `name_*` the name itself.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

from tree_sitter import Node, QueryCursor, Tree

from ouzel.indexer.languages import Grammar
from ouzel.indexer.text import LineMap

MAX_SIGNATURE = 200
MAX_DOC = 400
MAX_DEFINITION_DEPTH = 10
CONTAINER_KINDS = frozenset({"class", "struct", "interface", "trait", "impl", "enum"})
# Wrappers that always belong to the definition they hold.
ALWAYS_WRAP = frozenset(
    {"decorated_definition", "export_statement", "template_declaration", "ambient_declaration"}
)
_STRING_PREFIX = re.compile(r"^[rRbBuUfF]*")
_COMMENT_MARKS = re.compile(r"^\s*(?:///?|//!|/\*\*?|\*/|\*|#+|--)\s?")
_UPPER_NAME = re.compile(r"^_*[A-Z][A-Z0-9_]*$")
_GO_RECEIVER = re.compile(r"[\w]+")
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+|[^\W\d_]+")


def name_words(name: str, qualified_name: str) -> str:
    """Words of a symbol name for full-text search: the name, its parts, its qualifiers
    ("getUserName" → "getusername get user name")."""
    parts = [name]
    parts.extend(_WORD.findall(name))
    if qualified_name != name:
        parts.append(qualified_name.replace(".", " "))
    return " ".join(parts).lower()


@dataclass(slots=True)
class Symbol:
    name: str
    qualified_name: str
    kind: str
    language: str
    start_line: int
    start_col: int
    end_line: int
    end_col: int
    name_start_line: int
    name_start_col: int
    name_end_line: int
    name_end_col: int
    signature: str = ""
    doc: str = ""
    parent: str = ""
    # Byte range of the whole definition (for chunking; not stored).
    start_byte: int = 0
    end_byte: int = 0
    scope: str = field(default="", repr=False)  # how children qualify their names


def _text(data: bytes, node: Node) -> str:
    return data[node.start_byte : node.end_byte].decode("utf-8", errors="replace")


def _outer(node: Node, grammar: Grammar, kind: str) -> Node:
    """The node whose range the definition covers (wrappers included)."""
    if kind == "heading":
        parent = node.parent
        if parent is not None and parent.type == "section" and parent.named_children[0] == node:
            return parent
        return node
    wrappers = grammar.spec.wrappers
    while True:
        parent = node.parent
        if parent is None or parent.type not in wrappers:
            return node
        if parent.type not in ALWAYS_WRAP and parent.named_child_count != 1:
            return node
        node = parent


def _clean_comment(lines: list[str]) -> str:
    cleaned = []
    for line in lines:
        stripped = _COMMENT_MARKS.sub("", line.strip(), count=1).rstrip()
        if stripped.endswith("*/"):
            stripped = stripped[:-2].rstrip()
        cleaned.append(stripped)
    return "\n".join(cleaned).strip()[:MAX_DOC]


def _leading_comment(node: Node, data: bytes, comment_types: frozenset[str]) -> str:
    parts: list[str] = []
    expected_row = node.start_point.row
    sibling = node.prev_sibling
    while sibling is not None:
        if sibling.type == "attribute_item":  # Rust: `#[derive]` between doc and item
            expected_row = sibling.start_point.row
            sibling = sibling.prev_sibling
            continue
        if sibling.type not in comment_types or sibling.end_point.row < expected_row - 1:
            break
        parts.append(_text(data, sibling))
        expected_row = sibling.start_point.row
        sibling = sibling.prev_sibling
        if len(parts) > 40:
            break
    if not parts:
        return ""
    lines: list[str] = []
    for part in reversed(parts):
        lines.extend(part.splitlines())
    return _clean_comment(lines)


def _python_docstring(node: Node, data: bytes) -> str:
    body = node.child_by_field_name("body")
    first = body.named_child(0) if body is not None and body.named_child_count else None
    if first is None or first.type != "expression_statement" or not first.named_child_count:
        return ""
    string = first.named_child(0)
    if string is None or string.type != "string":
        return ""
    raw = data[string.start_byte : min(string.end_byte, string.start_byte + 4 * MAX_DOC)]
    literal = _STRING_PREFIX.sub("", raw.decode("utf-8", errors="replace"))
    for quote in ('"""', "'''", '"', "'"):
        if literal.startswith(quote):
            literal = literal[len(quote) :]
            if literal.endswith(quote):
                literal = literal[: -len(quote)]
            break
    return inspect.cleandoc(literal)[:MAX_DOC]


def _signature(node: Node, data: bytes) -> str:
    body = node.child_by_field_name("body")
    end = body.start_byte if body is not None and body.start_byte > node.start_byte else None
    if end is None:
        newline = data.find(b"\n", node.start_byte, node.end_byte)
        end = newline if newline != -1 else node.end_byte
    end = min(end, node.start_byte + 4 * MAX_SIGNATURE)
    text = " ".join(data[node.start_byte : end].decode("utf-8", errors="replace").split())
    return text.rstrip(":{= ").strip()[:MAX_SIGNATURE]


def _heading_name(name_node: Node, data: bytes) -> str:
    text = " ".join(_text(data, name_node).split())
    return text.rstrip("#").strip() or text


def _go_receiver(node: Node, data: bytes) -> str:
    receiver = node.child_by_field_name("receiver")
    if receiver is None:
        return ""
    for param in receiver.named_children:
        kind = param.child_by_field_name("type")
        if kind is not None:
            words = _GO_RECEIVER.findall(_text(data, kind))
            return words[0] if words else ""
    return ""


def _impl_name(node: Node, data: bytes) -> tuple[str, str]:
    """Display name (`impl Trait for Type`) and scope (`Type`) of a Rust impl block."""
    kind = node.child_by_field_name("type")
    trait = node.child_by_field_name("trait")
    type_name = _text(data, kind) if kind is not None else "?"
    display = (
        f"impl {_text(data, trait)} for {type_name}" if trait is not None else f"impl {type_name}"
    )
    return " ".join(display.split()), type_name


@dataclass(slots=True)
class _Found:
    node: Node
    outer: Node
    name_node: Node
    kind: str
    pattern: int


def _matches(tree: Tree, grammar: Grammar) -> list[_Found]:
    """One definition per name node, from the first pattern that matched it."""
    by_name: dict[tuple[int, int], _Found] = {}
    cursor = QueryCursor(grammar.query)
    # Definitions deeper than this are local helpers nested in many blocks; not starting
    # matches there skips most of a tree's expression nodes.
    cursor.set_max_start_depth(MAX_DEFINITION_DEPTH)
    for pattern, captures in cursor.matches(tree.root_node):
        names = captures.get("name")
        if not names:
            continue
        definition = None
        kind = ""
        for capture, nodes in captures.items():
            if capture.startswith("definition."):
                definition = nodes[0]
                kind = capture[11:]
                break
        if definition is None:
            continue
        name_node = names[0]
        key = (name_node.start_byte, name_node.end_byte)
        known = by_name.get(key)
        if known is None or pattern < known.pattern:
            outer = _outer(definition, grammar, kind)
            by_name[key] = _Found(definition, outer, name_node, kind, pattern)
    found = list(by_name.values())
    found.sort(key=lambda f: (f.outer.start_byte, -f.outer.end_byte))
    return found


def extract_symbols(tree: Tree, data: bytes, lines: LineMap, grammar: Grammar) -> list[Symbol]:
    language = grammar.spec.name
    comment_types = grammar.spec.comment_types
    symbols: list[Symbol] = []
    stack: list[Symbol] = []
    for found in _matches(tree, grammar):
        node, outer, name_node, kind = found.node, found.outer, found.name_node, found.kind
        start, end = outer.start_byte, outer.end_byte
        while stack and stack[-1].end_byte <= start:
            stack.pop()
        enclosing = stack[-1] if stack and stack[-1].end_byte >= end else None
        name = _text(data, name_node)
        scope_parent = enclosing.scope if enclosing else ""
        parent_name = scope_parent
        scope = ""  # how children qualify their names; the qualified name unless an impl
        signature = ""
        doc = ""
        if kind == "heading":
            name = _heading_name(name_node, data)
            qualified = f"{parent_name} > {name}" if parent_name else name
        else:
            if kind == "impl":
                name, type_name = _impl_name(node, data)
                scope = f"{scope_parent}.{type_name}" if scope_parent else type_name
            elif name_node.type == "qualified_identifier":  # C++ `int B::f()`
                *scopes, name = name.replace(" ", "").split("::")
                outer_scope = ".".join(s for s in scopes if s)
                if outer_scope:
                    scope_parent = f"{scope_parent}.{outer_scope}" if scope_parent else outer_scope
                    parent_name = scope_parent
                    kind = "method"
            elif kind == "method" and language == "go":
                receiver = _go_receiver(node, data)
                if receiver:
                    scope_parent = parent_name = receiver
            if kind == "function" and enclosing is not None and enclosing.kind in CONTAINER_KINDS:
                kind = "method"
            if kind in ("variable", "field") and language == "python" and _UPPER_NAME.match(name):
                kind = "constant"
            qualified = f"{scope_parent}.{name}" if scope_parent else name
            signature = _signature(node, data)
            if language == "python" and kind in ("function", "method", "class"):
                doc = _python_docstring(node, data)
            if not doc:
                doc = _leading_comment(outer, data, comment_types)
        start_line, start_col = lines.node_position(start, outer.start_point)
        end_line, end_col = lines.node_position(end, outer.end_point)
        name_line, name_col = lines.node_position(name_node.start_byte, name_node.start_point)
        name_end_line, name_end_col = lines.node_position(name_node.end_byte, name_node.end_point)
        symbol = Symbol(
            name=name,
            qualified_name=qualified,
            kind=kind,
            language=language,
            start_line=start_line,
            start_col=start_col,
            end_line=end_line,
            end_col=end_col,
            name_start_line=name_line,
            name_start_col=name_col,
            name_end_line=name_end_line,
            name_end_col=name_end_col,
            signature=signature,
            doc=doc,
            parent=parent_name,
            start_byte=start,
            end_byte=end,
            scope=scope or qualified,
        )
        symbols.append(symbol)
        stack.append(symbol)
    return symbols


@dataclass
class SymbolNode:
    """A symbol with the symbols nested in it (for an outline)."""

    symbol: Symbol
    children: list[SymbolNode] = field(default_factory=list)


def nest(symbols: list[Symbol]) -> list[SymbolNode]:
    """Nest symbols by range containment (input in document order)."""
    roots: list[SymbolNode] = []
    stack: list[SymbolNode] = []
    ordered = sorted(symbols, key=lambda s: (s.start_byte, -s.end_byte))
    for symbol in ordered:
        node = SymbolNode(symbol)
        while stack and stack[-1].symbol.end_byte <= symbol.start_byte:
            stack.pop()
        if stack and stack[-1].symbol.end_byte >= symbol.end_byte:
            stack[-1].children.append(node)
        else:
            roots.append(node)
        stack.append(node)
    return roots
