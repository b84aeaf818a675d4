"""Crash safety: kill -9 while indexing, corrupt or old stores, two processes on one index."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from index_fixtures import Tree
from waiting import wait_for

from ouzel.indexer.config import IndexConfig
from ouzel.indexer.index import WorkspaceIndex
from ouzel.indexer.search import search_chunks, search_symbols

OpenIndex = Callable[..., WorkspaceIndex]
Workspace = Callable[[Tree], Path]

SMALL: Tree = {
    "a.py": "def alpha():\n    return 1\n",
    "b.py": "class Beta:\n    def gamma(self):\n        pass\n",
    "c.md": "# Delta\n\ntext\n",
}


def many_files(count: int) -> Tree:
    body = "".join(f"    value_{i} = {i}\n" for i in range(40))
    return {
        f"pkg{i % 7}/mod_{i}.py": f"class Model{i}:\n    def method_{i}(self):\n{body}        return {i}\n"
        for i in range(count)
    }


def table_rows(index: WorkspaceIndex) -> set[tuple[str, str, int]]:
    table = index.store.symbols_table()
    return set(
        zip(
            table.column("path").to_pylist(),
            table.column("qualified_name").to_pylist(),
            table.column("start_line").to_pylist(),
            strict=True,
        )
    )


def assert_consistent(index: WorkspaceIndex) -> None:
    """Every file row matches its symbol and chunk rows, and no row lacks its file."""
    files = index.store.load_files()
    for name, attribute in (("symbols", "symbols"), ("chunks", "chunks")):
        counts = index.store.row_counts(name)
        assert set(counts) <= set(files), f"{name} rows without a file row"
        for path, record in files.items():
            assert counts.get(path, 0) == getattr(record, attribute), (name, path)


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from ouzel.indexer import index as index_module
    from ouzel.indexer.config import IndexConfig
    from ouzel.indexer.index import WorkspaceIndex

    index_module.COMMIT_SECONDS = 0.0  # commit after every group: many chances to be killed
    index_module.GROUP_FILES = 4

    def main() -> None:
        index = WorkspaceIndex(Path(sys.argv[1]), IndexConfig(watch=False, workers=1))
        def report(progress):
            print(progress.phase, progress.done, flush=True)
        index.update_all(report)
        print("finished", flush=True)

    if __name__ == "__main__":
        main()
    """
)


@pytest.mark.parametrize("kill_after", [3, 37])
def test_kill_9_while_indexing_leaves_a_consistent_index(
    workspace: Workspace, tmp_path: Path, kill_after: int
) -> None:
    root = workspace(many_files(80))
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script), str(root)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    killed = False
    for line in child.stdout:
        phase, _, done = line.partition(" ")
        if phase == "indexing" and int(done) >= kill_after:
            child.send_signal(signal.SIGKILL)
            killed = True
            break
    child.wait(timeout=60)
    assert killed, "the child finished before it could be killed"

    index = WorkspaceIndex(root, IndexConfig(watch=False))
    try:
        assert index.writable  # the dead writer's lock is gone
        assert_consistent(index)
        partial = index.status()["files_indexed"]
        assert partial < 80
        summary = index.update_all()
        assert summary.indexed == 80 - partial
        assert_consistent(index)
        recovered = table_rows(index)
    finally:
        index.close()
    fresh = WorkspaceIndex(root, IndexConfig(watch=False, index_dir=tmp_path / "fresh"))
    try:
        fresh.update_all()
        assert table_rows(fresh) == recovered
    finally:
        fresh.close()


def test_rows_of_an_interrupted_batch_are_dropped_on_open(
    workspace: Workspace, open_index: OpenIndex
) -> None:
    root = workspace(SMALL)
    index = WorkspaceIndex(root, IndexConfig(watch=False))
    index.update_all()
    # What a crash between "rows added" and "file row added" leaves: rows, no file row.
    index.store.delete_paths("files", ["b.py"])
    index.close()
    again = open_index(root)
    assert_consistent(again)
    assert again.status()["files_indexed"] == 2
    assert again.update_all().indexed == 1
    assert [h.qualified_name for h in search_symbols(again, "gamma")] == ["Beta.gamma"]


def _corrupt_data_files(folder: Path, table: str) -> None:
    for data in (folder / "db" / f"{table}.lance" / "data").glob("*.lance"):
        data.write_bytes(b"this is not a lance file" * 10)


def _corrupt_manifests(folder: Path, table: str) -> None:
    for manifest in (folder / "db" / f"{table}.lance" / "_versions").iterdir():
        manifest.write_bytes(b"\0garbage")


def _old_schema(folder: Path, _table: str) -> None:
    (folder / "meta.json").write_text(json.dumps({"schema_version": 0}))


def _garbage_meta(folder: Path, _table: str) -> None:
    (folder / "meta.json").write_text("{not json")


def _missing_table(folder: Path, table: str) -> None:
    import shutil

    shutil.rmtree(folder / "db" / f"{table}.lance")


@pytest.mark.parametrize(
    ("damage", "table", "reason"),
    [
        (_corrupt_data_files, "symbols", "corrupt store"),
        (_corrupt_data_files, "files", "corrupt store"),
        (_corrupt_manifests, "chunks", "corrupt store"),
        (_missing_table, "chunks", "corrupt store"),
        (_old_schema, "", "schema version 0"),
        (_garbage_meta, "", "unreadable meta.json"),
    ],
)
def test_damaged_store_is_rebuilt_with_a_reason(
    workspace: Workspace,
    open_index: OpenIndex,
    caplog: pytest.LogCaptureFixture,
    damage: Callable[[Path, str], None],
    table: str,
    reason: str,
) -> None:
    root = workspace(SMALL)
    index = WorkspaceIndex(root, IndexConfig(watch=False))
    index.update_all()
    folder = index.folder
    index.close()
    damage(folder, table)
    with caplog.at_level("WARNING", logger="ouzel.indexer"):
        again = open_index(root)
    assert again.rebuilt_reason.startswith(reason)
    assert any("is rebuilt" in r.getMessage() and reason in r.getMessage() for r in caplog.records)
    assert again.status()["rebuilt_reason"] == again.rebuilt_reason
    assert again.update_all().indexed == 3
    assert [h.qualified_name for h in search_symbols(again, "alpha")] == ["alpha"]
    assert search_chunks(again, "Delta")[0].path == "c.md"


def test_a_store_corrupted_while_open_is_noticed_and_rebuilt(
    workspace: Workspace, open_index: OpenIndex
) -> None:
    root = workspace(SMALL)
    index = open_index(root)
    index.update_all()
    _corrupt_data_files(index.folder, "chunks")
    assert search_chunks(index, "Delta") == []  # a failed read is an empty answer…
    assert "search failed" in index.status()["last_error"]
    index.update_all()  # …and the next update checks the store and rebuilds it
    assert index.rebuilt_reason.startswith("corrupt store")
    assert search_chunks(index, "Delta")[0].path == "c.md"


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from ouzel.indexer.config import IndexConfig
    from ouzel.indexer.index import WorkspaceIndex
    from ouzel.indexer.scheduler import IndexScheduler

    def main() -> None:
        root = Path(sys.argv[1])
        scheduler = IndexScheduler(lambda: WorkspaceIndex(root, IndexConfig()), root)
        scheduler.start()
        scheduler.wait_idle(60)
        print("ready", scheduler.index.writable, flush=True)
        sys.stdin.readline()  # until the test closes our stdin
        scheduler.stop()

    if __name__ == "__main__":
        main()
    """
)


def test_two_processes_one_writer(workspace: Workspace, tmp_path: Path) -> None:
    root = workspace(SMALL)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    writer = subprocess.Popen(
        [sys.executable, str(script), str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None and writer.stdin is not None
    try:
        assert writer.stdout.readline().split() == ["ready", "True"]
        reader = WorkspaceIndex(root, IndexConfig(watch=False))
        try:
            assert not reader.writable
            assert reader.status()["writer_pid"] == writer.pid
            assert [h.name for h in search_symbols(reader, "alpha")] == ["alpha"]
            # The reader never writes: its updates are refused, the writer's are seen.
            assert reader.update_all().read_only
            (root / "a.py").write_text("def alpha_renamed():\n    return 2\n")
            wait_for(lambda: search_symbols(reader, "alpha_renamed"), 15, "the writer's rename")
            assert search_chunks(reader, "alpha_renamed")[0].path == "a.py"
            # When the writer dies, the reader takes over.
            writer.send_signal(signal.SIGKILL)
            writer.wait(30)
            assert reader.try_become_writer()
            (root / "d.py").write_text("def epsilon(): pass\n")
            assert reader.update_paths([root / "d.py"]).indexed == 1
            assert [h.name for h in search_symbols(reader, "epsilon")] == ["epsilon"]
        finally:
            reader.close()
    finally:
        if writer.poll() is None:
            writer.stdin.close()
            writer.wait(30)


def test_a_second_index_in_the_same_process_is_read_only(
    workspace: Workspace, open_index: OpenIndex
) -> None:
    root = workspace(SMALL)
    first = open_index(root)
    first.update_all()
    second = open_index(root)
    assert first.writable and not second.writable
    assert [h.name for h in search_symbols(second, "Beta")] == ["Beta"]
    search_only = open_index(root, writer=False)
    assert not search_only.try_become_writer()


def test_lock_file_names_the_writer(workspace: Workspace, open_index: OpenIndex) -> None:
    root = workspace(SMALL)
    index = open_index(root)
    assert (index.folder / "writer.lock").read_text().strip() == str(os.getpid())
    assert (index.folder / ".gitignore").read_text() == "*\n"


def test_versions_are_compacted_and_pruned(
    workspace: Workspace, open_index: OpenIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ouzel.indexer import store

    monkeypatch.setattr(store, "KEEP_VERSIONS_FOR", timedelta(0))  # usually two minutes
    root = workspace(SMALL)
    index = open_index(root)
    index.update_all()
    for i in range(30):
        index.update_text(root / "a.py", f"def alpha_{i}(): pass\n")
    before = index.store.version_count()
    assert before > 100  # six commits per update
    index.upkeep()
    assert index.store.commits_since_compaction == 0
    assert index.store.version_count() < 10
    assert [h.name for h in search_symbols(index, "alpha_29")] == ["alpha_29"]
    assert [h.path for h in search_chunks(index, "alpha_29")] == ["a.py"]


def test_writing_never_touches_user_files(workspace: Workspace, open_index: OpenIndex) -> None:
    root = workspace(SMALL)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    index = open_index(root)
    index.update_all()
    index.update_text(root / "a.py", "def changed_in_buffer(): pass\n")
    after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and ".ouzel" not in p.parts}
    assert after == before
