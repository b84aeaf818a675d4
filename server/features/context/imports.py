"""Files a non-Python source file imports, found from its import lines (no language server).

Used to prefer the definitions a file can actually see when the index has several symbols
of one name. Resolution is by path, as the languages themselves do it: relative module
specifiers (JavaScript/TypeScript), `#include "…"` (C/C++), `mod`/`use crate::…` (Rust),
package folders (Go) and `import a.b.C` (Java, Kotlin). Anything unresolvable is skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

_JS_SPEC = re.compile(
    r"""(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|require\(\s*['"]([^'"]+)['"]\s*\)"""
    r"""|import\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s*['"]([^'"]+)['"]""",
    re.MULTILINE,
)
_JS_EXTENSIONS = (".ts", ".tsx", ".d.ts", ".js", ".jsx", ".mjs", ".cjs")
_C_INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.MULTILINE)
_RUST_MOD = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([A-Za-z_]\w*)\s*;", re.MULTILINE)
_RUST_USE = re.compile(r"^\s*(?:pub\s+)?use\s+(crate|super|self)((?:::\w+)+)", re.MULTILINE)
_GO_IMPORT = re.compile(r'"([\w./-]+)"')
_JAVA_IMPORT = re.compile(r"^\s*import\s+(?:static\s+)?([\w.]+)\s*;?", re.MULTILINE)
_JAVA_PACKAGE = re.compile(r"^\s*package\s+([\w.]+)\s*;?", re.MULTILINE)

LANGUAGE_OF_SUFFIX = {
    ".js": "javascript",
    ".jsx": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".rs": "rust",
    ".go": "go",
    ".java": "java",
    ".kt": "java",
}


def imported_files(path: Path, text: str, root: Path | None) -> set[Path]:
    """Existing files that `path` (with content `text`) imports."""
    language = LANGUAGE_OF_SUFFIX.get(path.suffix.lower())
    if language in ("javascript", "typescript"):
        found = _javascript(path, text)
    elif language in ("c", "cpp"):
        found = {path.parent / name for name in _C_INCLUDE.findall(text)}
    elif language == "rust":
        found = _rust(path, text, root)
    elif language == "go":
        found = _go(path, text, root)
    elif language == "java":
        found = _java(path, text)
    else:
        found = set()
    return {candidate.resolve() for candidate in found if candidate.is_file()}


def _javascript(path: Path, text: str) -> set[Path]:
    found: set[Path] = set()
    for match in _JS_SPEC.finditer(text):
        spec = next(group for group in match.groups() if group)
        if not spec.startswith("."):
            continue  # a package from node_modules: not the workspace's code
        base = (path.parent / spec).resolve()
        candidates = [base, *(base.with_name(base.name + ext) for ext in _JS_EXTENSIONS)]
        candidates += [base / f"index{ext}" for ext in _JS_EXTENSIONS]
        if base.suffix == ".js":  # TypeScript imports './x.js' for x.ts
            candidates += [base.with_suffix(".ts"), base.with_suffix(".tsx")]
        found.update(c for c in candidates if c.is_file())
    return found


def _rust(path: Path, text: str, root: Path | None) -> set[Path]:
    found: set[Path] = set()
    here = path.parent
    for name in _RUST_MOD.findall(text):
        found.update({here / f"{name}.rs", here / name / "mod.rs", here / path.stem / f"{name}.rs"})
    source = _rust_source_root(path, root)
    for anchor, rest in _RUST_USE.findall(text):
        parts = [p for p in rest.split("::") if p]
        base = {"crate": source, "super": here.parent, "self": here}[anchor]
        for size in range(len(parts), 0, -1):  # `use crate::a::b::Thing`: a/b.rs or a.rs
            folder = base.joinpath(*parts[: size - 1])
            found.update({folder / f"{parts[size - 1]}.rs", folder / parts[size - 1] / "mod.rs"})
    return found


def _rust_source_root(path: Path, root: Path | None) -> Path:
    for folder in path.parents:
        if (folder / "Cargo.toml").is_file():
            return folder / "src"
        if root is not None and folder == root:
            break
    return path.parent


def _go(path: Path, text: str, root: Path | None) -> set[Path]:
    found = {p for p in path.parent.glob("*.go") if p != path}  # the same package
    block = re.findall(r"import\s*\(([^)]*)\)|import\s+(\"[^\"]+\")", text)
    specs = [spec for groups in block for part in groups for spec in _GO_IMPORT.findall(part)]
    if root is not None:
        for spec in specs:
            folder = _suffix_folder(root, spec.split("/"))
            if folder is not None:
                found.update(folder.glob("*.go"))
    return found


def _java(path: Path, text: str) -> set[Path]:
    """`import a.b.C` from the source root this file's own `package` line implies."""
    package = _JAVA_PACKAGE.search(text)
    depth = len(package.group(1).split(".")) if package else 0
    source_root = path.parents[depth] if depth < len(path.parents) else path.parent
    found: set[Path] = set()
    for name in _JAVA_IMPORT.findall(text):
        *folders, last = name.split(".")
        folder = source_root.joinpath(*folders)
        found.update({folder / f"{last}.java", folder / f"{last}.kt"})
    return found


def _suffix_folder(root: Path, parts: list[str]) -> Path | None:
    """The folder under `root` whose path ends with `parts` (longest suffix first)."""
    try:
        tops = [root, *(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))]
    except OSError:
        return None
    for size in range(len(parts), 0, -1):
        tail = Path(*parts[-size:])
        for top in tops:
            if (top / tail).is_dir():
                return top / tail
    return None
