"""The conversation store: turns, statuses, search, corruption, per-workspace files."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from ouzel.server.features.chat.store import ChatStore, UnknownConversation, snippet, store_path


def test_turns_are_stored_and_loaded_in_order(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "chat.sqlite3")
    first = store.start_turn(None, "Where is the area computed?")
    store.finish_turn(first, "In geometry.py:3.", "done", "remote", [{"path": "geometry.py"}])
    second = store.start_turn(first.conversation_id, "And the perimeter?")
    store.finish_turn(second, "geometry.py:6", "done", "local-chat", [])
    conversation = store.load(first.conversation_id)
    assert conversation.title == "Where is the area computed?"
    assert [t.message for t in conversation.turns] == [
        "Where is the area computed?",
        "And the perimeter?",
    ]
    assert conversation.turns[0].references == [{"path": "geometry.py"}]
    assert conversation.turns[1].backend == "local-chat"
    listed = store.conversations()
    assert [(c.conversation_id, c.turn_count) for c in listed] == [(first.conversation_id, 2)]
    store.close()
    again = ChatStore(tmp_path / "chat.sqlite3")
    assert len(again.load(first.conversation_id).turns) == 2


def test_unknown_conversations_are_a_clear_error(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "chat.sqlite3")
    with pytest.raises(UnknownConversation, match="unknown conversation: 'c-nope'"):
        store.start_turn("c-nope", "hi")
    with pytest.raises(UnknownConversation):
        store.load("c-nope")
    with pytest.raises(UnknownConversation):
        store.delete("c-nope")
    assert store.conversations() == []


def test_search_finds_completed_turns_by_words(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "chat.sqlite3")
    turn = store.start_turn(None, "How do I parse TOML config files?")
    store.finish_turn(turn, "Use tomllib.loads in config.py.", "done", "remote", [])
    other = store.start_turn(None, "Explain the scheduler")
    store.finish_turn(other, "It debounces file events.", "done", "remote", [])
    streaming = store.start_turn(None, "toml again, never finished")
    hits = store.search("toml parsing")
    assert [h.turn_id for h in hits] == [turn.turn_id]
    assert "tomllib" in snippet(hits[0], "tomllib")
    assert store.search("toml", exclude_conversation=turn.conversation_id) == []
    assert streaming.turn_id not in {h.turn_id for h in store.search("finished")}
    assert store.search("!!! ??") == []
    store.delete(turn.conversation_id)
    assert store.search("toml") == []


def test_a_turn_left_streaming_reads_as_interrupted(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "chat.sqlite3")
    turn = store.start_turn(None, "long question")
    store.close()
    reopened = ChatStore(tmp_path / "chat.sqlite3")
    assert reopened.load(turn.conversation_id).turns[0].status == "interrupted"


def _write_forever(path: str, ready: multiprocessing.synchronize.Event) -> None:
    store = ChatStore(Path(path))
    count = 0
    while True:
        turn = store.start_turn(None, f"question {count}")
        store.finish_turn(turn, "answer " * 50, "done", "remote", [])
        count += 1
        if count == 20:
            ready.set()


def test_killed_writers_never_corrupt_the_store_or_lose_committed_turns(tmp_path: Path) -> None:
    path = tmp_path / "chat.sqlite3"
    context = multiprocessing.get_context("spawn")
    for _ in range(3):
        ready = context.Event()
        process = context.Process(target=_write_forever, args=(str(path), ready))
        process.start()
        assert ready.wait(60), "the writer never committed 20 turns"
        before = len(ChatStore(path).conversations(1000))
        assert process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
        process.join(10)
        store = ChatStore(path)
        assert store.integrity() == "ok"
        after = store.conversations(1000)
        assert len(after) >= before  # nothing committed before the kill is gone
        done = [store.load(c.conversation_id).turns[0].status for c in after]
        assert set(done) <= {"done", "interrupted"}
        store.close()


def test_a_corrupt_store_is_moved_aside_and_started_again(tmp_path: Path) -> None:
    path = tmp_path / "chat.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    store = ChatStore(path)
    turn = store.start_turn(None, "hello")
    store.finish_turn(turn, "hi", "done", "remote", [])
    assert store.integrity() == "ok"
    assert list(tmp_path.glob("chat.sqlite3.corrupt-*"))


def test_fts_falls_back_to_substring_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ChatStore, "_has_fts", lambda self: False)
    store = ChatStore(tmp_path / "chat.sqlite3")
    turn = store.start_turn(None, "What is WAL mode?")
    store.finish_turn(turn, "Write-ahead logging.", "done", "remote", [])
    assert [h.turn_id for h in store.search("logging")] == [turn.turn_id]


def test_one_store_per_workspace(tmp_path: Path) -> None:
    a = store_path(tmp_path, tmp_path / "proj")
    b = store_path(tmp_path, tmp_path / "other" / "proj")
    assert a != b and a.name.startswith("proj-") and a.suffix == ".sqlite3"
    assert store_path(tmp_path, None).name == "no-workspace.sqlite3"
    assert sqlite3.sqlite_version  # stdlib sqlite3 only


def test_agent_turns_keep_their_mode_and_tools(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "chat.sqlite3")
    chat = store.start_turn(None, "explain area")
    store.finish_turn(chat, "It multiplies.", "done", "remote", [])
    agent = store.start_turn(chat.conversation_id, "rename area", mode="agent")
    tools = [
        {"name": "read_file", "summary": "geometry.py", "status": "ok"},
        {"name": "propose_edit", "summary": "geometry.py", "status": "refused", "reason": "no"},
    ]
    store.finish_turn(agent, "Renamed.", "steps", "remote", [], tools)
    store.close()
    first, second = ChatStore(tmp_path / "chat.sqlite3").load(chat.conversation_id).turns
    assert first.json()["mode"] == "chat" and "tools" not in first.json()
    assert second.json()["mode"] == "agent" and second.json()["tools"] == tools
    assert second.status == "steps"


def test_a_store_made_before_agent_turns_gains_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE conversations (id TEXT PRIMARY KEY, title TEXT NOT NULL,
            created TEXT NOT NULL, updated TEXT NOT NULL);
        CREATE TABLE turns (id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, seq INTEGER
            NOT NULL, message TEXT NOT NULL, reply TEXT NOT NULL DEFAULT '', refs TEXT NOT
            NULL DEFAULT '[]', status TEXT NOT NULL, backend TEXT NOT NULL DEFAULT '',
            created TEXT NOT NULL, finished TEXT);
        INSERT INTO conversations VALUES ('c-old', 'old', '2026-01-01', '2026-01-01');
        INSERT INTO turns (id, conversation_id, seq, message, reply, status, created)
            VALUES ('t-old', 'c-old', 1, 'hello', 'hi', 'done', '2026-01-01');
        """
    )
    db.commit()
    db.close()
    store = ChatStore(path)
    (old,) = store.load("c-old").turns
    assert old.json()["mode"] == "chat" and old.reply == "hi"
    turn = store.start_turn("c-old", "rename", mode="agent")
    store.finish_turn(turn, "done", "done", "local", [], [{"name": "glob"}])
    assert [t.mode for t in store.load("c-old").turns] == ["chat", "agent"]
