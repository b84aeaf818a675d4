"""Which retrieved snippets are about the code at the cursor (issue 14: context must not hurt).

A snippet a search, the recent buffer or the vector index proposes is kept only when it
defines a name the cursor's code needs from elsewhere: a name used near the cursor that
the file does not bind itself (nor the builtins), a name the file imports, or the
attribute of an imported module used near the cursor (`m.name`). A snippet of the
requesting file itself is kept when it defines any name used near the cursor. Jedi's
definitions of names at the cursor are relevant by construction and are not judged here.

Without this, files unrelated to the cursor (other HumanEval problems in one workspace)
filled the prompt, the model copied their shape and exact match fell from 0.450 to 0.400.
"""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ouzel.server.features.context.model import Candidate
from ouzel.server.features.context.sources.definitions import in_standard_library
from ouzel.server.features.context.window import Cursor, NameUse, names_near

_BUILTINS = frozenset(dir(builtins))
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
# Fallback when the file does not parse: names that a line binds by its shape.
_BINDS = re.compile(
    rf"^\s*(?:async\s+)?(?:def|class)\s+({_IDENT})|^\s*({_IDENT})\s*(?::[^=\n]*)?=(?!=)"
    rf"|\bfor\s+({_IDENT})\s+in\b|\bas\s+({_IDENT})",
    re.MULTILINE,
)
_IMPORTS = re.compile(
    r"^\s*(?:from\s+[\w.]+\s+)?import\s+([^\n#]+)",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Needs:
    """Names the code at the cursor takes from elsewhere, and the names it uses at all."""

    foreign: frozenset[str]
    used: frozenset[str]
    modules: frozenset[str] = frozenset()  # names the file imports (modules, maybe)


_STRINGS = re.compile(
    r'""".*?"""|\'\'\'.*?\'\'\'|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|#[^\n]*',
    re.DOTALL,
)


def code_only(text: str) -> str:
    """`text` with strings and comments blanked (same length, same line breaks): words of a
    docstring ("groups", "numbers") are not names the code uses."""
    return _STRINGS.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def needs_near(text: str, offset: int, before: int = 30, after: int = 10) -> Needs:
    """`needs_at_cursor` for the names the code (not its strings) uses near `offset`."""
    return needs_at_cursor(text, names_near(Cursor.at(code_only(text), offset), before, after))


def needs_at_cursor(text: str, uses: Iterable[NameUse]) -> Needs:
    """What a snippet must define to be worth a place in the prompt for this cursor."""
    bound, imported, modules = _bindings(text)
    used: set[str] = set()
    foreign: set[str] = set(imported)
    for use in uses:
        parts = use.dotted.split(".")
        used.update(parts)
        head = parts[0]
        if head in modules and len(parts) > 1:
            foreign.add(parts[1])  # `m.name` with `import m`: `name` comes from elsewhere
        # A short unbound name (`n` of a loop header not yet written) is too common to
        # tie a snippet to the cursor.
        if head not in bound and head not in _BUILTINS and len(head) > 2:
            foreign.add(head)
    return Needs(frozenset(foreign), frozenset(used), frozenset(modules))


def defines(text: str, names: frozenset[str], locals_too: bool = True) -> bool:
    """Whether `text` defines a name: def or class, or an assignment (with `locals_too`
    False only at the top level: another function's local `ans = 0` is no one's import)."""
    if not names:
        return False
    for match in _BINDS.finditer(text):
        name = match.group(1)
        if name is None and (locals_too or not match.group(0)[:1].isspace()):
            name = match.group(2)
        if name is not None and name in names:
            return True
    return False


def outside_workspace_stdlib(candidate: Candidate, roots: Iterable[Path]) -> bool:
    """A definition in the standard library, outside every workspace folder (`List` in
    typing.py): the model knows these, and their source only teaches it their shape."""
    if any(candidate.path.is_relative_to(root) for root in roots):
        return False
    return in_standard_library(candidate.path)


def relevant(candidate: Candidate, request_path: Path | None, needs: Needs) -> bool:
    """Whether a retrieved (not Jedi-resolved) candidate is about the cursor's code."""
    if candidate.label:
        *owner, name = candidate.label.split(".")
        # A name used at the cursor, or one of a module the file imports (`prices.with_tax`
        # reached from similar code, with `from shop import prices`).
        if name in needs.foreign or (owner and owner[0] in needs.modules):
            return True
    if request_path is not None and candidate.path == request_path:
        return defines(candidate.text, needs.used)
    return defines(candidate.text, needs.foreign, locals_too=False)


def _bindings(text: str) -> tuple[set[str], set[str], set[str]]:
    """Names the file binds itself, names it imports, and modules it imports whole."""
    tree = _parse(text)
    if tree is None:
        return _bindings_by_shape(text)
    bound: set[str] = set()
    imported: set[str] = set()
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.asname or alias.name.split(".")[0]
                imported.add(name)
                modules.add(name)
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name != "*":
                    imported.add(alias.asname or alias.name)
                    modules.add(alias.asname or alias.name)  # may be a submodule
            if node.module:
                bound.add(node.module.split(".")[0])
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound - imported, imported, modules


def _parse(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):
        return None


def _bindings_by_shape(text: str) -> tuple[set[str], set[str], set[str]]:
    bound = {name for match in _BINDS.finditer(text) for name in match.groups() if name}
    imported: set[str] = set()
    bound.update(re.findall(r"^\s*from\s+(\w+)", text, re.MULTILINE))
    for match in _IMPORTS.finditer(text):
        for item in match.group(1).strip("()\\ ").split(","):
            words = item.split()
            if words:
                name = words[-1] if len(words) == 3 and words[1] == "as" else words[0]
                imported.add(name.split(".")[0].strip("()"))
    # Parameters of the file's functions, which the line shapes above do not catch.
    for signature in re.finditer(rf"\bdef\s+{_IDENT}\s*\(([^)]*)\)", text):
        for param in signature.group(1).split(","):
            found = re.match(rf"\s*\*{{0,2}}({_IDENT})", param)
            if found:
                bound.add(found.group(1))
    return bound - imported, imported, set(imported)
