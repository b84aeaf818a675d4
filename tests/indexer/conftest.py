from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from index_fixtures import Tree, write_tree

from ouzel.indexer.config import IndexConfig
from ouzel.indexer.index import WorkspaceIndex


@pytest.fixture
def workspace(tmp_path: Path) -> Callable[[Tree], Path]:
    def make(files: Tree) -> Path:
        return write_tree(tmp_path / "ws", files)

    (tmp_path / "ws").mkdir()
    return make


@pytest.fixture
def open_index() -> Iterator[Callable[..., WorkspaceIndex]]:
    """Open indexes (closed at the end of the test)."""
    opened: list[WorkspaceIndex] = []

    def make(root: Path, config: IndexConfig | None = None, **kwargs: object) -> WorkspaceIndex:
        index = WorkspaceIndex(root, config or IndexConfig(watch=False), **kwargs)  # type: ignore[arg-type]
        opened.append(index)
        return index

    yield make
    for index in opened:
        index.close()
