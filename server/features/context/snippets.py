"""Cutting a definition out of a file, short enough to spend tokens on.

A definition is its decorators, its header (the whole signature), its docstring and, when
the body is short, the body; long classes keep their method headers, long functions only
their header and docstring. Python is cut with `ast`; other languages (and Python that does
not parse mid-edit) by indentation and braces.
"""

from __future__ import annotations

import ast
import re
import textwrap
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ouzel.indexer.languages import is_python
from ouzel.indexer.text import split_lines as split_lines

MAX_BODY_LINES = 14  # a body this short goes in whole
MAX_SNIPPET_LINES = 24


@dataclass(frozen=True)
class Snippet:
    start_line: int  # 0-based, inclusive
    end_line: int  # 0-based, exclusive: the lines the snippet was taken from
    text: str


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _block_end_by_indent(lines: list[str], start: int) -> int:
    """First line after the indented block that `lines[start]` opens."""
    base = _indent(lines[start])
    end = start + 1
    last_code = start + 1
    # A multi-line header (open brackets) continues until they close.
    depth = _bracket_delta(lines[start])
    while end < len(lines) and depth > 0:
        depth += _bracket_delta(lines[end])
        end += 1
        last_code = end
    while end < len(lines):
        line = lines[end]
        if line.strip():
            if _indent(line) <= base and not line.lstrip().startswith((")", "]", "}")):
                break
            last_code = end + 1
        end += 1
    return last_code


def _bracket_delta(line: str) -> int:
    code = line.split("#", 1)[0] if "#" in line and "'" not in line and '"' not in line else line
    return sum(code.count(c) for c in "([{") - sum(code.count(c) for c in ")]}")


def _block_end_by_braces(lines: list[str], start: int) -> int:
    """For brace languages: the line after the brace that closes the first one opened."""
    depth = 0
    opened = False
    for index in range(start, min(len(lines), start + 2000)):
        for ch in lines[index]:
            if ch == "{":
                depth += 1
                opened = True
            elif ch == "}":
                depth -= 1
        if opened and depth <= 0:
            return index + 1
        if not opened and lines[index].rstrip().endswith(";"):
            return index + 1
    return min(len(lines), start + 1)


def _leading_lines(lines: list[str], start: int, python: bool) -> int:
    """Include decorators / attributes and a short comment block right above `start`."""
    begin = start
    base = _indent(lines[start])
    while begin > 0:
        above = lines[begin - 1]
        stripped = above.strip()
        if _indent(above) != base or not stripped:
            break
        if (python and stripped.startswith("@")) or (
            stripped.startswith(("#", "//", "///", "/*", "*", "@", "#[")) and start - begin < 6
        ):
            begin -= 1
        else:
            break
    return begin


def definition_snippet(
    source: str | list[str], line: int, language: str, max_lines: int = MAX_SNIPPET_LINES
) -> Snippet | None:
    """The definition that starts on `line` (0-based) of `source` (text or lines), summarized."""
    lines = split_lines(source) if isinstance(source, str) else source
    if not 0 <= line < len(lines):
        return None
    python = is_python(language)
    if python:
        line = _python_owner(lines, line)
    begin = _leading_lines(lines, line, python)
    if python:
        end = _block_end_by_indent(lines, line)
        block = lines[begin:end]
        text = summarize_python(block, max_lines)
    else:
        end = _block_end_by_braces(lines, line)
        block = lines[begin:end]
        text = summarize_lines(block, max_lines)
    if not text.endswith("\n"):
        text += "\n"
    return Snippet(begin, end, text)


_PY_DEFINITION = re.compile(r"\s*(?:@|async\s+def\s|def\s|class\s)")


def _python_owner(lines: list[str], line: int) -> int:
    """`self.size = size` in a method is best shown as its class (the attribute's owner);
    other indented statements as their enclosing definition."""
    if _PY_DEFINITION.match(lines[line]) or _indent(lines[line]) == 0:
        return line
    wants_class = lines[line].lstrip().startswith("self.")
    depth = _indent(lines[line])
    for above in range(line - 1, -1, -1):
        text = lines[above]
        if not text.strip() or _indent(text) >= depth:
            continue
        depth = _indent(text)
        stripped = text.lstrip()
        if stripped.startswith("class ") or (
            not wants_class and stripped.startswith(("def ", "async def "))
        ):
            return above
        if depth == 0:
            break
    return line


def summarize_lines(block: list[str], max_lines: int) -> str:
    if len(block) <= max_lines:
        return "".join(block)
    indent = block[0][: _indent(block[0])]
    return "".join(block[: max_lines - 1]) + f"{indent}    ...\n"


def summarize_python(block: list[str], max_lines: int = MAX_SNIPPET_LINES) -> str:
    """Header, docstring and (short) body of a Python definition; method headers of a class."""
    if len(block) <= MAX_BODY_LINES:
        return "".join(block)
    indent = block[0][: _indent(block[0])] if block else ""
    dedented = textwrap.dedent("".join(block))
    try:
        tree = ast.parse(dedented)
    except SyntaxError:
        return summarize_lines(block, max_lines)
    node = next((n for n in tree.body if isinstance(n, _DEFINITION_NODES)), None)
    if node is None:
        return summarize_lines(block, max_lines)
    source_lines = split_lines(dedented)
    out: list[str] = []
    previous = -1
    for item in _outline(node, source_lines)[: max_lines - 1]:
        first, last, written = item if isinstance(item, tuple) else (item, item, None)
        if first > previous + 1 and previous >= 0:
            out.append(indent + _ellipsis_for(source_lines[previous + 1 : first]))
        if written is not None:
            out.append(indent + written)
        else:
            out.append(indent + source_lines[first] if source_lines[first].strip() else "\n")
        previous = last
    if 0 <= previous < len(source_lines) - 1:
        out.append(indent + _ellipsis_for(source_lines[previous + 1 :]))
    return "".join(out)


_DEFINITION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
# A 0-based line index of the source, or (first, last, text): lines replaced by one written.
OutlineItem = int | tuple[int, int, str]


def _ellipsis_for(omitted: list[str]) -> str:
    """A `...` line indented like the first omitted line of code."""
    code = next((line for line in omitted if line.strip() and line.lstrip()[0] != "#"), None)
    return "" if code is None else " " * _indent(code) + "...\n"


def _outline(node: Definition, lines: list[str]) -> list[OutlineItem]:
    """What to keep of a long definition: decorators, header, docstring, members' headers."""
    items: list[OutlineItem] = list(_header_lines(node))
    body = list(node.body)
    if body and _is_docstring(body[0]):
        items.extend(_docstring_lines(body.pop(0), lines))
    if isinstance(node, ast.ClassDef):
        for member in body:
            if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                items.extend(_header_lines(member))
                if member.body and _is_docstring(member.body[0]):
                    items.extend(_docstring_lines(member.body[0], lines, max_lines=1))
            elif isinstance(member, ast.Assign | ast.AnnAssign) and (
                member.lineno == member.end_lineno
            ):
                items.append(member.lineno - 1)
    elif body and (node.end_lineno or node.lineno) - body[0].lineno < MAX_BODY_LINES:
        items.extend(range(body[0].lineno - 1, node.end_lineno or body[0].lineno))
    return [i for i in items if isinstance(i, tuple) or 0 <= i < len(lines)]


def _header_lines(node: Definition) -> range:
    first = min([d.lineno for d in node.decorator_list] + [node.lineno]) - 1
    body_start = node.body[0].lineno - 1 if node.body else node.lineno
    return range(first, max(body_start, node.lineno))


def _docstring_lines(
    statement: ast.stmt, lines: list[str], max_lines: int = 6
) -> list[OutlineItem]:
    """The docstring's lines when short; else its first sentence, closed, on one line."""
    first, last = statement.lineno - 1, (statement.end_lineno or statement.lineno) - 1
    if last - first < max_lines:
        return list(range(first, last + 1))
    assert isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
    text = str(statement.value.value)
    summary = next((s.strip() for s in text.splitlines() if s.strip()), "")
    summary = summary.replace('"', "'").rstrip("\\")
    return [(first, last, " " * _indent(lines[first]) + f'"""{summary} …"""\n')]


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def python_outline(source: str) -> Snippet | None:
    """A stub-like summary of a module: one line per public top-level definition.

    `def compile(pattern, flags=0): ...` costs a dozen tokens and tells the model what a
    module it uses offers, when the exact name at the cursor is not known yet. Functions
    come first (what a next line most often calls), then classes with their `__init__`,
    then short constants; a packer that cuts the outline keeps the most useful part.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    lines = [line.rstrip("\r\n") for line in split_lines(source)]
    functions: list[str] = []
    classes: list[str] = []
    constants: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if not node.name.startswith("_"):
                functions.extend(_stub(node, lines, ""))
        elif isinstance(node, ast.ClassDef):
            if not node.name.startswith("_"):
                classes.extend(_stub(node, lines, ""))
                init = next((m for m in node.body if _is_init(m)), None)
                if isinstance(init, ast.FunctionDef):
                    classes.extend(_stub(init, lines, "    "))
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.lineno == node.end_lineno:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            text = lines[node.lineno - 1]
            if names and not names[0].startswith("_") and len(text) <= 80:
                constants.append(text.rstrip() + "\n")
    out = functions + classes + constants
    if not out:
        return None
    return Snippet(0, len(lines), "".join(out))


def _is_init(node: ast.stmt) -> bool:
    return isinstance(node, ast.FunctionDef) and node.name == "__init__"


def _stub(node: Definition, lines: list[str], indent: str) -> list[str]:
    """The definition's header on one line (`def f(a, b): ...`), without its body."""
    rows = [lines[i] for i in _header_lines(node)]
    first_body = node.body[0] if node.body else None
    if first_body is not None and rows and first_body.lineno - 1 in _header_lines(node):
        # `def f(): return 1`: the body starts on the header's last line.
        # (ast columns count UTF-8 bytes)
        rows[-1] = rows[-1].encode("utf-8")[: first_body.col_offset].decode("utf-8", "ignore")
    header = [
        row.strip() for row in rows if row.strip() and not row.lstrip().startswith(("@", "#"))
    ]
    if not header:
        return []
    if isinstance(node, ast.ClassDef):
        return [indent + " ".join(header) + "\n"]
    return [indent + " ".join(header) + " ...\n"]


class SnippetCache:
    """Snippets and outlines per (file, text, line): a repeated request costs a look-up.

    Keys include the text's length and hash, so an edited file never gets an old snippet.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._snippets: OrderedDict[tuple[object, ...], Any] = OrderedDict()
        self._lines: OrderedDict[tuple[object, ...], list[str]] = OrderedDict()
        self._lock = threading.Lock()

    def definition(self, path: Path, text: str, line: int, language: str) -> Snippet | None:
        key = (path, len(text), hash(text), line, language)
        found, snippet = self._get(key)
        if not found:
            snippet = definition_snippet(self.lines(path, text), line, language)
            self._put(key, snippet)
        return snippet

    def outline(self, path: Path, text: str) -> Snippet | None:
        key = (path, len(text), hash(text), "outline")
        found, snippet = self._get(key)
        if not found:
            snippet = python_outline(text)
            self._put(key, snippet)
        return snippet

    def top_level_line(self, path: Path, text: str, name: str) -> int | None:
        """The line of the last top-level binding of `name` in a module (as at import)."""
        key = (path, len(text), hash(text), "top-level")
        found, index = self._get(key)
        if not found:
            index = _top_level_bindings(self.lines(path, text))
            self._put(key, index)
        assert index is None or isinstance(index, dict)
        return index.get(name) if index else None

    def lines(self, path: Path, text: str) -> list[str]:
        """`split_lines(text)`, cached for the last few texts."""
        key = (path, len(text), hash(text))
        with self._lock:
            lines = self._lines.get(key)
            if lines is not None:
                return lines
        lines = split_lines(text)
        with self._lock:
            self._lines[key] = lines
            while len(self._lines) > 64:
                self._lines.popitem(last=False)
        return lines

    def _get(self, key: tuple[object, ...]) -> tuple[bool, Any]:
        with self._lock:
            if key in self._snippets:
                self._snippets.move_to_end(key)
                return True, self._snippets[key]
        return False, None

    def _put(self, key: tuple[object, ...], snippet: Any) -> None:
        with self._lock:
            self._snippets[key] = snippet
            while len(self._snippets) > self._size:
                self._snippets.popitem(last=False)


_TOP_LEVEL = re.compile(
    r"(?:async[ \t]+def|def|class)[ \t]+([A-Za-z_]\w*)|([A-Za-z_]\w*)[ \t]*(?::[^=\n]*)?=(?!=)"
)


def _top_level_bindings(lines: list[str]) -> dict[str, int]:
    """name -> 0-based line of its last top-level def, class or assignment."""
    found: dict[str, int] = {}
    for number, line in enumerate(lines):
        match = _TOP_LEVEL.match(line)
        if match:
            found[match.group(1) or match.group(2)] = number
    return found
