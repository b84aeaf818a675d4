"""Helpers for the indexer tests: fixture workspaces written to disk."""

from __future__ import annotations

from pathlib import Path

Tree = dict[str, str | bytes]


def write_tree(root: Path, files: Tree) -> Path:
    """Write `files` (relative path → text or bytes) under `root`, line endings untouched."""
    for name, content in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8", newline="")
    return root
