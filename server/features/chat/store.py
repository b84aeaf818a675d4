"""Conversations of one workspace in SQLite (WAL, stdlib `sqlite3`).

A turn is inserted when it starts (status `streaming`) and updated with its reply in one
transaction when it ends, so a completed turn is on disk before its answer is returned and
a `kill -9` at any moment loses at most the turn being streamed (then shown as
`interrupted`). WAL with `synchronous=NORMAL` survives a crashed process (not a power cut
between checkpoints, which is what `FULL` would buy at every commit's cost). A store that
fails SQLite's integrity check is moved aside and started again, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger("ouzel.chat.store")

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    message TEXT NOT NULL,
    reply TEXT NOT NULL DEFAULT '',
    refs TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL,
    backend TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL,
    finished TEXT,
    mode TEXT NOT NULL DEFAULT 'chat',
    tools TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS turns_by_conversation ON turns(conversation_id, seq);
"""
_FTS = "CREATE VIRTUAL TABLE IF NOT EXISTS turns_fts USING fts5(message, reply, turn_id UNINDEXED)"
_WORD = re.compile(r"\w{2,}", re.UNICODE)


class UnknownConversation(KeyError):
    def __init__(self, conversation_id: str) -> None:
        super().__init__(conversation_id)
        self.conversation_id = conversation_id

    def __str__(self) -> str:
        return f"unknown conversation: {self.conversation_id!r}"


@dataclass
class Turn:
    turn_id: str
    conversation_id: str
    message: str
    reply: str
    references: list[dict[str, Any]]
    status: str  # streaming | done | cancelled | error | interrupted (agent: also the
    # loop's stop: steps | tokens | time)
    backend: str
    created: str
    mode: str = "chat"  # chat | agent
    tools: list[dict[str, Any]] = field(default_factory=list)  # agent: {name, summary, status}

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "turnId": self.turn_id,
            "message": self.message,
            "reply": self.reply,
            "references": self.references,
            "status": self.status,
            "created": self.created,
            "backend": self.backend,
            "mode": self.mode,
        }
        if self.mode == "agent":
            value["tools"] = self.tools
        return value


@dataclass
class Conversation:
    conversation_id: str
    title: str
    created: str
    updated: str
    turns: list[Turn] = field(default_factory=list)
    turn_count: int = 0


@dataclass(frozen=True)
class SearchHit:
    conversation_id: str
    turn_id: str
    title: str
    message: str
    reply: str
    created: str


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def store_path(state_dir: Path, root: Path | None) -> Path:
    """`<state>/chat/<folder name>-<hash of its path>.sqlite3` (one store per workspace)."""
    folder = state_dir / "chat"
    if root is None:
        return folder / "no-workspace.sqlite3"
    resolved = str(root.resolve())
    digest = hashlib.sha256(resolved.encode()).hexdigest()[:12]
    name = re.sub(r"[^\w.-]", "_", root.name)[:40] or "root"
    return folder / f"{name}-{digest}.sqlite3"


class ChatStore:
    """One workspace's conversations; thread-safe (one connection behind a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._open()
        self.fts = self._has_fts()
        self._mark_interrupted()

    # --- opening ---------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            db = self._connect()
            row = db.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {row}")
            return db
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.error("chat history %s is unreadable (%s); moved to %s", self.path, exc, aside)
            for suffix in ("", "-wal", "-shm"):
                source = Path(f"{self.path}{suffix}")
                if source.exists():
                    source.rename(Path(f"{aside}{suffix}"))
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(_SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(turns)")}
        for column, declaration in (
            ("mode", "TEXT NOT NULL DEFAULT 'chat'"),
            ("tools", "TEXT NOT NULL DEFAULT '[]'"),
        ):
            if column not in columns:  # a store made before agent turns existed
                db.execute(f"ALTER TABLE turns ADD COLUMN {column} {declaration}")
        db.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
        )
        db.commit()
        return db

    def _has_fts(self) -> bool:
        try:
            self._db.execute(_FTS)
            self._db.commit()
            return True
        except sqlite3.OperationalError:  # SQLite built without FTS5
            log.info("SQLite has no FTS5; chat search uses substring matching")
            return False

    def _mark_interrupted(self) -> None:
        """Turns a killed server left `streaming` (one process owns a store at a time:
        concurrent servers on one workspace share completed turns, not live ones)."""
        with self._lock, self._db:
            self._db.execute(
                "UPDATE turns SET status = 'interrupted' WHERE status = 'streaming' "
                "AND created < ?",
                (now(),),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- writing ---------------------------------------------------------------------------

    def start_turn(self, conversation_id: str | None, message: str, mode: str = "chat") -> Turn:
        """Record the user's message; a new conversation when `conversation_id` is None."""
        stamp = now()
        with self._lock, self._db:
            if conversation_id is None:
                conversation_id = new_id("c")
                title = " ".join(message.split())[:80] or "(empty)"
                self._db.execute(
                    "INSERT INTO conversations(id, title, created, updated) VALUES (?, ?, ?, ?)",
                    (conversation_id, title, stamp, stamp),
                )
            elif not self._exists(conversation_id):
                raise UnknownConversation(conversation_id)
            seq = self._db.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM turns WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()[0]
            turn = Turn(new_id("t"), conversation_id, message, "", [], "streaming", "", stamp, mode)
            self._db.execute(
                "INSERT INTO turns(id, conversation_id, seq, message, status, created, mode) "
                "VALUES (?, ?, ?, ?, 'streaming', ?, ?)",
                (turn.turn_id, conversation_id, seq, message, stamp, mode),
            )
            self._db.execute(
                "UPDATE conversations SET updated = ? WHERE id = ?", (stamp, conversation_id)
            )
        return turn

    def finish_turn(
        self,
        turn: Turn,
        reply: str,
        status: str,
        backend: str,
        references: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
    ) -> None:
        """Store the reply and the final status in one transaction."""
        stamp = now()
        turn.reply, turn.status, turn.backend, turn.references = reply, status, backend, references
        if tools is not None:
            turn.tools = tools
        with self._lock, self._db:
            self._db.execute(
                "UPDATE turns SET reply = ?, status = ?, backend = ?, refs = ?, finished = ?, "
                "tools = ? WHERE id = ?",
                (
                    reply,
                    status,
                    backend,
                    json.dumps(references),
                    stamp,
                    json.dumps(turn.tools),
                    turn.turn_id,
                ),
            )
            self._db.execute(
                "UPDATE conversations SET updated = ? WHERE id = ?", (stamp, turn.conversation_id)
            )
            if self.fts and status == "done":
                self._db.execute(
                    "INSERT INTO turns_fts(message, reply, turn_id) VALUES (?, ?, ?)",
                    (turn.message, reply, turn.turn_id),
                )

    def delete(self, conversation_id: str) -> None:
        with self._lock, self._db:
            if not self._exists(conversation_id):
                raise UnknownConversation(conversation_id)
            if self.fts:
                self._db.execute(
                    "DELETE FROM turns_fts WHERE turn_id IN "
                    "(SELECT id FROM turns WHERE conversation_id = ?)",
                    (conversation_id,),
                )
            self._db.execute("DELETE FROM turns WHERE conversation_id = ?", (conversation_id,))
            self._db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    # --- reading ---------------------------------------------------------------------------

    def _exists(self, conversation_id: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        return row is not None

    def exists(self, conversation_id: str) -> bool:
        with self._lock:
            return self._exists(conversation_id)

    def conversations(self, limit: int = 50) -> list[Conversation]:
        with self._lock:
            rows = self._db.execute(
                "SELECT c.id, c.title, c.created, c.updated, COUNT(t.id) AS turns "
                "FROM conversations c LEFT JOIN turns t ON t.conversation_id = c.id "
                "GROUP BY c.id ORDER BY c.updated DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            Conversation(r["id"], r["title"], r["created"], r["updated"], turn_count=r["turns"])
            for r in rows
        ]

    def load(self, conversation_id: str) -> Conversation:
        with self._lock:
            head = self._db.execute(
                "SELECT id, title, created, updated FROM conversations WHERE id = ?",
                (conversation_id,),
            ).fetchone()
            if head is None:
                raise UnknownConversation(conversation_id)
            rows = self._db.execute(
                "SELECT * FROM turns WHERE conversation_id = ? ORDER BY seq", (conversation_id,)
            ).fetchall()
        turns = [_turn(row) for row in rows]
        return Conversation(
            head["id"], head["title"], head["created"], head["updated"], turns, len(turns)
        )

    def search(
        self, query: str, limit: int = 20, exclude_conversation: str | None = None
    ) -> list[SearchHit]:
        """Completed turns matching the words of `query`, best first."""
        words = _WORD.findall(query.lower())[:16]
        if not words:
            return []
        with self._lock:
            if self.fts:
                match = " OR ".join(f'"{w}"' for w in words)
                rows = self._db.execute(
                    "SELECT t.id, t.conversation_id, c.title, t.message, t.reply, t.created "
                    "FROM turns_fts f JOIN turns t ON t.id = f.turn_id "
                    "JOIN conversations c ON c.id = t.conversation_id "
                    "WHERE turns_fts MATCH ? AND t.conversation_id IS NOT ? "
                    "ORDER BY bm25(turns_fts) LIMIT ?",
                    (match, exclude_conversation, limit),
                ).fetchall()
            else:
                clauses = " OR ".join("(t.message LIKE ? OR t.reply LIKE ?)" for _ in words)
                values: list[Any] = [v for w in words for v in (f"%{w}%", f"%{w}%")]
                rows = self._db.execute(
                    "SELECT t.id, t.conversation_id, c.title, t.message, t.reply, t.created "
                    "FROM turns t JOIN conversations c ON c.id = t.conversation_id "
                    f"WHERE t.status = 'done' AND ({clauses}) AND t.conversation_id IS NOT ? "
                    "ORDER BY t.created DESC LIMIT ?",
                    [*values, exclude_conversation, limit],
                ).fetchall()
        return [
            SearchHit(
                r["conversation_id"], r["id"], r["title"], r["message"], r["reply"], r["created"]
            )
            for r in rows
        ]

    def integrity(self) -> str:
        with self._lock:
            row = self._db.execute("PRAGMA integrity_check").fetchone()
        return str(row[0]) if row else "no answer"


def _turn(row: sqlite3.Row) -> Turn:
    try:
        references = json.loads(row["refs"] or "[]")
    except ValueError:
        references = []
    try:
        tools = json.loads(row["tools"] or "[]")
    except ValueError:
        tools = []
    return Turn(
        row["id"],
        row["conversation_id"],
        row["message"],
        row["reply"],
        references,
        row["status"],
        row["backend"],
        row["created"],
        row["mode"] or "chat",
        tools if isinstance(tools, list) else [],
    )


def snippet(hit: SearchHit, query: str, width: int = 160) -> str:
    """A short excerpt of the hit around the first query word."""
    text = " ".join(f"{hit.message} — {hit.reply}".split())
    words = _WORD.findall(query.lower())
    lowered = text.lower()
    at = min((lowered.find(w) for w in words if lowered.find(w) >= 0), default=0)
    start = max(0, at - width // 3)
    excerpt = text[start : start + width]
    return ("…" if start else "") + excerpt + ("…" if start + width < len(text) else "")
