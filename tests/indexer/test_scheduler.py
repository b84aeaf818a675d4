"""The scheduler with real file watching: saves, renames, a git branch switch, buffers."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from index_fixtures import Tree, write_tree
from waiting import wait_for

from ouzel.indexer.config import IndexConfig
from ouzel.indexer.index import Progress, UpdateSummary, WorkspaceIndex
from ouzel.indexer.scheduler import IndexScheduler
from ouzel.indexer.search import search_symbols

Workspace = Callable[[Tree], Path]


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.summaries: list[UpdateSummary] = []

    def begin(self, title: str) -> None:
        self.events.append(f"begin {title}")

    def report(self, progress: Progress) -> None:
        self.events.append(f"report {progress.phase}")

    def end(self, summary: UpdateSummary) -> None:
        self.events.append("end")
        self.summaries.append(summary)


@pytest.fixture
def schedulers() -> Iterator[Callable[..., IndexScheduler]]:
    started: list[IndexScheduler] = []

    def make(root: Path, **kwargs: object) -> IndexScheduler:
        config = IndexConfig()
        scheduler = IndexScheduler(lambda: WorkspaceIndex(root, config), root, **kwargs)  # type: ignore[arg-type]
        scheduler.start()
        started.append(scheduler)
        assert scheduler.wait_idle(60)
        return scheduler

    yield make
    for scheduler in started:
        scheduler.stop()


def found(scheduler: IndexScheduler, name: str) -> list[str]:
    assert scheduler.index is not None
    return [hit.path for hit in search_symbols(scheduler.index, name) if hit.name == name]


def test_saved_files_are_found_renames_and_deletes_followed(
    workspace: Workspace, schedulers: Callable[..., IndexScheduler]
) -> None:
    root = workspace({"a.py": "def existing(): pass\n"})
    sink = RecordingSink()
    scheduler = schedulers(root, sink=sink)
    assert sink.events[0] == f"begin Indexing {root.name}" and sink.events[-1] == "end"
    assert found(scheduler, "existing") == ["a.py"]
    (root / "b.py").write_text("def saved_later(): pass\n")
    wait_for(lambda: found(scheduler, "saved_later") == ["b.py"], 10, "the saved b.py indexed")
    (root / "b.py").rename(root / "c.py")
    wait_for(lambda: found(scheduler, "saved_later") == ["c.py"], 10, "the rename to c.py")
    (root / "c.py").unlink()
    wait_for(lambda: found(scheduler, "saved_later") == [], 10, "the deleted c.py forgotten")
    (root / "sub").mkdir()
    (root / "sub" / "d.py").write_text("def in_new_folder(): pass\n")
    wait_for(lambda: found(scheduler, "in_new_folder") == ["sub/d.py"], 10, "a new folder indexed")
    shutil.rmtree(root / "sub")
    wait_for(lambda: found(scheduler, "in_new_folder") == [], 10, "a deleted folder forgotten")
    (root / ".env").write_text("def not_indexed(): pass\n")
    (root / "e.py").write_text("def marker(): pass\n")
    wait_for(lambda: found(scheduler, "marker") == ["e.py"], 10, "e.py indexed")
    assert found(scheduler, "not_indexed") == []
    assert scheduler.status()["watching"] is True


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_a_branch_switch_is_one_batch(
    workspace: Workspace, schedulers: Callable[..., IndexScheduler]
) -> None:
    files: Tree = {f"mod_{i}.py": f"def main_branch_{i}(): pass\n" for i in range(120)}
    root = workspace(files)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "main")
    _git(root, "checkout", "-q", "-b", "feature")
    for i in range(100):
        (root / f"mod_{i}.py").write_text(f"def feature_branch_{i}(): pass\n")
    for i in range(100, 110):
        (root / f"mod_{i}.py").unlink()
    write_tree(root, {f"new/added_{i}.py": f"def added_{i}(): pass\n" for i in range(5)})
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "feature")
    _git(root, "checkout", "-q", "main")
    sink = RecordingSink()
    scheduler = schedulers(root, sink=sink)
    assert scheduler.index is not None
    before = len(sink.summaries)
    _git(root, "checkout", "-q", "feature")
    wait_for(lambda: found(scheduler, "feature_branch_99"), 30, "the branch switch indexed")
    assert scheduler.wait_idle(30)
    wait_for(lambda: found(scheduler, "added_4") == ["new/added_4.py"], 10, "the added files")
    batches = sink.summaries[before:]
    assert len(batches) == 1, [b.as_dict() for b in batches]
    assert (batches[0].indexed, batches[0].removed) == (105, 10)
    assert found(scheduler, "main_branch_5") == []
    assert found(scheduler, "main_branch_115") == ["mod_115.py"]


def test_buffers_wait_until_typing_pauses(
    workspace: Workspace, schedulers: Callable[..., IndexScheduler]
) -> None:
    root = workspace({"a.py": "def on_disk(): pass\n"})
    scheduler = schedulers(root, text_debounce_s=0.3, watch=False)
    for i in range(5):
        scheduler.request_text(str(root / "a.py"), f"def typing_{i}(): pass\n")
        time.sleep(0.05)
    assert scheduler.pending() == 1
    assert found(scheduler, "typing_4") == []
    wait_for(lambda: found(scheduler, "typing_4") == ["a.py"], 10, "the last typed text")
    assert found(scheduler, "typing_3") == []
    scheduler.forget_text(str(root / "a.py"))  # closed without saving
    wait_for(lambda: found(scheduler, "on_disk") == ["a.py"], 10, "the file on disk again")


def test_a_reader_takes_over_when_the_writer_stops(
    workspace: Workspace, schedulers: Callable[..., IndexScheduler]
) -> None:
    root = workspace({"a.py": "def first(): pass\n"})
    writer = schedulers(root, watch=False)
    reader = schedulers(root, watch=False)
    assert writer.index is not None and writer.index.writable
    assert reader.index is not None and not reader.index.writable
    assert reader.status()["writer_pid"] is not None
    writer.stop()
    (root / "b.py").write_text("def after_takeover(): pass\n")
    wait_for(lambda: reader.index is not None and reader.index.writable, 15, "the takeover")
    wait_for(
        lambda: found(reader, "after_takeover") == ["b.py"], 15, "b.py indexed by the new writer"
    )


def test_stop_releases_the_index(
    workspace: Workspace, schedulers: Callable[..., IndexScheduler]
) -> None:
    root = workspace({"a.py": "def first(): pass\n"})
    scheduler = schedulers(root, watch=False)
    scheduler.stop()
    again = WorkspaceIndex(root, IndexConfig(watch=False))
    try:
        assert again.writable
    finally:
        again.close()


def test_a_failing_open_is_reported(tmp_path: Path) -> None:
    def broken() -> WorkspaceIndex:
        raise OSError("read-only file system")

    scheduler = IndexScheduler(broken, tmp_path)
    scheduler.start()
    assert scheduler.wait_ready(10) is None
    status = scheduler.status()
    assert status["phase"] == "opening"
    assert "read-only file system" in status["last_error"]
    scheduler.stop()
