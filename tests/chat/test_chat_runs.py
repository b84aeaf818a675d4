"""Chat turns and code-action runs with a scripted model: recall, history, cancel, stale
drop, elision refusal, what reaches `apply` (unit level; end to end in tests/e2e)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_until

from ouzel.inference.types import CancelToken, ChatChunk, ChatMessage, ToolSpec
from ouzel.server.app import build_engine
from ouzel.server.documents import Document, TextChange
from ouzel.server.features.chat import service
from ouzel.server.features.chat.actions import ActionJob, run_action
from ouzel.server.features.chat.store import UnknownConversation
from ouzel.server.features.edits import Hunk, apply_hunks
from ouzel.server.server import create_server
from ouzel.server.session import Session

SOURCE = "def area(w, h):\n    return w * h\n\n\ndef volume(w, h, d):\n    return area(w, h) * d\n"


class ScriptedChat:
    """Streams `reply` in pieces of `piece` characters, `delay` seconds apart."""

    def __init__(self, reply: str, delay: float = 0.0, piece: int = 4) -> None:
        self.name = "scripted"
        self.reply = reply
        self.delay = delay
        self.piece = piece
        self.conversations: list[list[ChatMessage]] = []
        self.stopped_early = False

    async def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        cancel: CancelToken,
        max_tokens: int = 1024,
        temperature: float = 0.2,
    ) -> AsyncIterator[ChatChunk]:
        self.conversations.append(list(messages))
        for start in range(0, len(self.reply), self.piece):
            if cancel.cancelled:
                self.stopped_early = True
                yield ChatChunk(done=True, stop_reason="cancelled", backend="scripted")
                return
            if self.delay:
                await asyncio.sleep(self.delay)
            yield ChatChunk(text=self.reply[start : start + self.piece], backend="scripted")
        yield ChatChunk(done=True, stop_reason="stop", backend="scripted")


class Recorder:
    def __init__(self) -> None:
        self.cancel = CancelToken()
        self.events: list[tuple[str, Any]] = []

    def begin(self, title: str, extra: dict[str, Any]) -> None:
        self.events.append(("begin", {"title": title, **extra}))

    def report(self, delta: str, references: list[dict[str, Any]] | None = None) -> None:
        self.events.append(("report", (delta, references)))

    def reading(self, done: int, total: int) -> None:
        self.events.append(("reading", (done, total)))

    def end(self, message: str) -> None:
        self.events.append(("end", message))

    def deltas(self) -> str:
        return "".join(value[0] for kind, value in self.events if kind == "report")


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    server = create_server(build_engine())
    root = tmp_path / "ws"
    root.mkdir()
    (root / "AGENTS.md").write_text("Answer in one sentence.\n")
    server.session.folders[root.as_uri()] = root
    yield server.session
    server.session.engine.close()


def source_of(backend: ScriptedChat) -> service.Backends:
    async def source(session: Session, task: str) -> Any:
        return backend

    return source


def open_doc(session: Session, text: str = SOURCE) -> Document:
    uri = (session.roots[0] / "shapes.py").as_uri()
    return session.documents.open(uri, "python", 1, text)


async def test_a_turn_streams_stores_and_lists_rules(session: Session) -> None:
    doc = open_doc(session)
    backend = ScriptedChat("volume multiplies area by depth (shapes.py:5).")
    stream = Recorder()
    request = service.ChatRequest("what does volume do?", document=doc, selection=(4, 5))
    result = await service.run_turn(session, request, stream, backend_source=source_of(backend))
    assert stream.deltas() == result.reply == backend.reply
    assert stream.events[0][0] == "begin" and stream.events[-1] == ("end", "done")
    first_report = next(value for kind, value in stream.events if kind == "report")
    assert first_report[1] == result.references  # references come with the first delta
    selection = result.references[0]
    assert (selection["source"], selection["path"], selection["line"]) == (
        "selection",
        "shapes.py",
        5,
    )
    assert [rule.path for rule in result.rules] == ["AGENTS.md"]
    system, user = backend.conversations[0][0], backend.conversations[0][-1]
    assert "Answer in one sentence." in system.content
    assert "shapes.py:5-6" in user.content and "   5 def volume" in user.content
    stored = service.store_for(session, doc).load(result.turn.conversation_id)
    assert stored.turns[0].status == "done" and stored.turns[0].reply == backend.reply


async def test_history_and_recall_reach_the_prompt(session: Session) -> None:
    backend = ScriptedChat("Use tomllib.")
    first = await service.run_turn(
        session,
        service.ChatRequest("how to parse toml?"),
        Recorder(),
        backend_source=source_of(backend),
    )
    follow = await service.run_turn(
        session,
        service.ChatRequest("and write it?", conversation_id=first.turn.conversation_id),
        Recorder(),
        backend_source=source_of(backend),
    )
    roles = [m.role for m in backend.conversations[1]]
    assert roles == ["system", "user", "assistant", "user"]  # the earlier turn is history
    assert follow.turn.conversation_id == first.turn.conversation_id
    other = await service.run_turn(
        session,
        service.ChatRequest("toml again please"),
        Recorder(),
        backend_source=source_of(backend),
    )
    assert [hit.turn_id for hit in other.recalled] == [first.turn.turn_id]
    assert "Earlier exchanges" in backend.conversations[2][-1].content
    assert any(ref["source"] == "history" for ref in other.references)


async def test_an_unknown_conversation_stores_nothing(session: Session) -> None:
    with pytest.raises(UnknownConversation):
        await service.run_turn(
            session,
            service.ChatRequest("hi", conversation_id="c-missing"),
            Recorder(),
            backend_source=source_of(ScriptedChat("x")),
        )
    assert service.store_for(session).conversations() == []


async def test_cancel_stops_the_stream_and_keeps_what_came(session: Session) -> None:
    backend = ScriptedChat("word " * 200, delay=0.01)
    stream = Recorder()
    task = asyncio.ensure_future(
        service.run_turn(
            session, service.ChatRequest("long"), stream, backend_source=source_of(backend)
        )
    )
    await wait_until(stream.deltas, 30, "a streamed delta")
    stream.cancel.cancel()
    result = await task
    assert result.cancelled and result.stop_reason == "cancelled"
    assert 0 < len(result.reply) < len(backend.reply)
    turns = service.store_for(session).load(result.turn.conversation_id).turns
    assert turns[0].status == "cancelled" and turns[0].reply == result.reply


def job(doc: Document, action: str = "docstring", **extra: Any) -> ActionJob:
    return ActionJob(action, doc, 1, 1, True, "Ouzel: Add a docstring", **extra)  # type: ignore[arg-type]


class Applier:
    def __init__(self) -> None:
        self.calls: list[list[Hunk]] = []

    async def __call__(
        self, doc: Document, hunks: list[Hunk], label: str
    ) -> tuple[bool, str | None]:
        self.calls.append(hunks)
        return True, None


DOCSTRING_REPLY = (
    '```python\ndef area(w, h):\n    """The area of a w by h rectangle."""\n    return w * h\n```'
)


async def test_docstring_becomes_one_hunk_inside_the_function(session: Session) -> None:
    doc = open_doc(session)
    apply = Applier()
    result = await run_action(
        session,
        job(doc),
        Recorder(),
        apply,
        backend_source=source_of(ScriptedChat(DOCSTRING_REPLY)),
    )
    assert result.status == "applied" and result.hunks == 1
    assert apply.calls == [[Hunk(1, 1, '    """The area of a w by h rectangle."""\n')]]
    assert apply_hunks(SOURCE, apply.calls[0]).count("def volume") == 1


async def test_an_edit_for_an_old_version_is_dropped(session: Session) -> None:
    doc = open_doc(session)
    apply = Applier()
    backend = ScriptedChat(DOCSTRING_REPLY, delay=0.01)
    task = asyncio.ensure_future(
        run_action(session, job(doc), Recorder(), apply, backend_source=source_of(backend))
    )
    await wait_until(lambda: backend.conversations, 30, "the model call")
    session.documents.change(doc.uri, 2, [TextChange((5, 0, 5, 0), "# typed\n")], "utf-16")
    result = await task
    assert result.status == "stale" and apply.calls == []


async def test_elided_code_is_refused_and_never_applied(session: Session) -> None:
    doc = open_doc(session)
    apply = Applier()
    lazy = '```python\ndef area(w, h):\n    """Doc."""\n    # ... existing code ...\n```'
    result = await run_action(
        session, job(doc), Recorder(), apply, backend_source=source_of(ScriptedChat(lazy))
    )
    assert result.status == "refused" and "leaves code out" in result.message
    assert apply.calls == []


async def test_a_cancelled_action_applies_nothing(session: Session) -> None:
    doc = open_doc(session)
    apply = Applier()
    stream = Recorder()
    backend = ScriptedChat(DOCSTRING_REPLY, delay=0.02, piece=2)
    task = asyncio.ensure_future(
        run_action(session, job(doc), stream, apply, backend_source=source_of(backend))
    )
    await wait_until(stream.deltas, 30, "a streamed delta")
    stream.cancel.cancel()
    result = await task
    assert result.status == "cancelled" and apply.calls == []
    assert len(stream.deltas()) < len(DOCSTRING_REPLY)  # generation stopped early


async def test_explain_is_a_chat_turn_not_an_edit(session: Session) -> None:
    doc = open_doc(session)
    apply = Applier()
    result = await run_action(
        session,
        job(doc, "explain"),
        Recorder(),
        apply,
        backend_source=source_of(ScriptedChat("It multiplies.")),
    )
    assert result.status == "answered" and result.reply == "It multiplies." and apply.calls == []
    assert result.conversation_id is not None
    turns = service.store_for(session, doc).load(result.conversation_id).turns
    assert turns[0].references[0]["path"] == "shapes.py"


class StallingChat(ScriptedChat):
    """One piece, then waits forever for the next token (a slow model mid-generation)."""

    async def stream_chat(  # type: ignore[override]
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        cancel: CancelToken,
        max_tokens: int = 1024,
        temperature: float = 0.2,
    ) -> AsyncIterator[ChatChunk]:
        yield ChatChunk(text="Once upon", backend="scripted")
        try:
            await asyncio.Event().wait()
        finally:
            self.stopped_early = True  # the stream was closed where it waited
        yield ChatChunk(done=True, stop_reason="stop")  # pragma: no cover


async def test_cancel_does_not_wait_for_the_next_token(session: Session) -> None:
    backend = StallingChat("")
    stream = Recorder()
    task = asyncio.ensure_future(
        service.run_turn(
            session, service.ChatRequest("story"), stream, backend_source=source_of(backend)
        )
    )
    await wait_until(stream.deltas, 30, "a streamed delta")
    stream.cancel.cancel()
    result = await asyncio.wait_for(task, 30)  # the stalled token never comes
    assert result.cancelled and result.reply == "Once upon" and backend.stopped_early


async def test_a_secret_file_never_reaches_the_model(session: Session) -> None:
    root = session.roots[0]
    secret = session.documents.open((root / ".env").as_uri(), "dotenv", 1, "TOKEN=abc\n")
    backend = ScriptedChat("x")
    result = await run_action(
        session, job(secret, "explain"), Recorder(), Applier(), backend_source=source_of(backend)
    )
    assert result.status == "failed" and "secret" in result.message
    assert backend.conversations == []
    answer = await service.run_turn(
        session,
        service.ChatRequest("what is in it?", document=secret, selection=(0, 0)),
        Recorder(),
        backend_source=source_of(backend),
    )
    assert all("TOKEN" not in m.content for m in backend.conversations[0])
    assert all(ref["path"] != ".env" for ref in answer.references)


class CutChat(ScriptedChat):
    """An answer without a fence that ends by a cap (length, time, repetition)."""

    def __init__(self, reply: str, reason: str) -> None:
        super().__init__(reply)
        self.reason = reason

    async def stream_chat(  # type: ignore[override]
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        cancel: CancelToken,
        max_tokens: int = 1024,
        temperature: float = 0.2,
    ) -> AsyncIterator[ChatChunk]:
        yield ChatChunk(text=self.reply, backend="scripted")
        yield ChatChunk(done=True, stop_reason=self.reason, backend="scripted")  # type: ignore[arg-type]


@pytest.mark.parametrize("reason", ["length", "time", "repetition", "error"])
async def test_an_answer_cut_short_is_never_applied(session: Session, reason: str) -> None:
    doc = open_doc(session)
    apply = Applier()
    truncated = 'def area(w, h):\n    """Doc."""\n'  # the body is missing
    result = await run_action(
        session, job(doc), Recorder(), apply, backend_source=source_of(CutChat(truncated, reason))
    )
    assert result.status == "refused" and apply.calls == []
