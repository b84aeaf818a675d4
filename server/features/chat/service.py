"""Chat turns for a session: workspace context, rules, recall, the model stream, the store.

LSP-free: the handler converts LSP params into a `ChatRequest` and gives a `Stream` that
turns deltas into `$/progress`. The model comes from the router (`models.backend_for`,
task `chat`), so routing, fallback notices, the privacy guard and redaction apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ouzel.indexer.walk import is_secret_path
from ouzel.inference.types import BackendError, CancelToken, ChatChunk, ChatMessage
from ouzel.server.documents import Document
from ouzel.server.features.chat.prompt import ContextItem, build_messages, fit_items
from ouzel.server.features.chat.rules import RuleFile, read_rules
from ouzel.server.features.chat.store import ChatStore, SearchHit, Turn, store_path
from ouzel.server.logs import state_dir
from ouzel.server.settings import TaskKind

if TYPE_CHECKING:  # sessions are passed in; features do not import LSP
    from ouzel.server.app import Engine
    from ouzel.server.session import Session

log = logging.getLogger("ouzel.chat")

_OPEN_FILE_LINES = 60  # lines of another open document shown to the model
_SELECTION_LINES = 200
_INDEX_HITS = 4


class Stream(Protocol):
    """Where a turn's progress goes (`$/progress` in the LSP handler)."""

    cancel: CancelToken

    def begin(self, title: str, extra: dict[str, Any]) -> None: ...

    def report(self, delta: str, references: list[dict[str, Any]] | None = None) -> None: ...

    def reading(self, done: int, total: int) -> None:
        """The local model has read `done` of the prompt's `total` tokens (no text yet)."""
        ...

    def end(self, message: str) -> None: ...


class ChatStores:
    """One `ChatStore` per workspace root, shared by every session of the process."""

    def __init__(self, base: Path | None = None) -> None:
        self.base = base
        self._stores: dict[Path, ChatStore] = {}

    def for_root(self, root: Path | None) -> ChatStore:
        path = store_path(self.base or state_dir(), root)
        store = self._stores.get(path)
        if store is None:
            store = self._stores[path] = ChatStore(path)
        return store

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()


def stores(engine: Engine) -> ChatStores:
    return engine.chat


@dataclass
class ChatRequest:
    message: str
    conversation_id: str | None = None
    document: Document | None = None  # the active editor's snapshot
    selection: tuple[int, int] | None = None  # first and last line, 0-based inclusive
    cursor_offset: int | None = None
    open_files: bool = True
    index: bool = True
    definitions: bool = True
    history: bool = True
    max_tokens: int | None = None


@dataclass
class TurnResult:
    turn: Turn
    reply: str
    references: list[dict[str, Any]]
    rules: list[RuleFile]
    recalled: list[SearchHit]
    backend: str = ""
    stop_reason: str = "stop"
    error: str | None = None
    cancelled: bool = False
    first_delta_s: float | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        return {
            "conversationId": self.turn.conversation_id,
            "turnId": self.turn.turn_id,
            "reply": self.reply,
            "references": self.references,
            "rules": [rule.json() for rule in self.rules],
            "recalled": [
                {"conversationId": hit.conversation_id, "turnId": hit.turn_id}
                for hit in self.recalled
            ],
            "backend": self.backend,
            "stopReason": self.stop_reason,
            "cancelled": self.cancelled,
            "error": self.error,
        }


# --- where things are ----------------------------------------------------------------------


def root_of(session: Session, document: Document | None) -> Path | None:
    path = session.uri_to_path(document.uri) if document is not None else None
    root = session.root_for(path) if path is not None else None
    if root is None and session.roots:
        root = session.roots[0]
    return root


def store_for(session: Session, document: Document | None = None) -> ChatStore:
    return stores(session.engine).for_root(root_of(session, document))


def display_path(session: Session, uri: str) -> tuple[Path | None, str]:
    path = session.uri_to_path(uri)
    if path is None:
        return None, uri
    root = session.root_for(path)
    if root is not None:
        try:
            return path, path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return path, path.name


def is_secret(session: Session, path: Path | None) -> bool:
    if path is None:
        return False
    globs = session.settings.index.secret_globs
    roots = [r for r in session.roots if path.resolve().is_relative_to(r.resolve())]
    return any(is_secret_path(path.resolve(), root, globs) for root in roots or [Path("/")])


# --- context -------------------------------------------------------------------------------


def _lines(doc: Document, first: int, last: int) -> str:
    last = min(last, doc.line_count() - 1)
    return "\n".join(doc.line_text(n) for n in range(max(0, first), last + 1))


def document_items(session: Session, request: ChatRequest) -> list[ContextItem]:
    """The selection (or the lines around the cursor) and the other open documents."""
    items: list[ContextItem] = []
    doc = request.document
    if doc is not None:
        path, shown = display_path(session, doc.uri)
        if not is_secret(session, path):
            if request.selection is not None:
                first, last = request.selection
                last = min(last, first + _SELECTION_LINES - 1)
                items.append(
                    ContextItem(
                        "selection",
                        doc.uri,
                        shown,
                        first,
                        last,
                        _lines(doc, first, last),
                        language=doc.language_id,
                    )
                )
            else:
                # Around the cursor, or the top of the file when the client sent none.
                line = 0
                if request.cursor_offset is not None:
                    line = doc.text.count("\n", 0, request.cursor_offset)
                first = max(0, line - _SELECTION_LINES // 2)
                last = min(first + _SELECTION_LINES, doc.line_count()) - 1
                text = _lines(doc, first, last)
                items.append(
                    ContextItem("open", doc.uri, shown, first, last, text, language=doc.language_id)
                )
    if request.open_files:
        for other in session.documents.all():
            if doc is not None and other.uri == doc.uri:
                continue
            path, shown = display_path(session, other.uri)
            if is_secret(session, path) or not other.text.strip():
                continue
            last = min(other.line_count(), _OPEN_FILE_LINES) - 1
            items.append(
                ContextItem(
                    "open",
                    other.uri,
                    shown,
                    0,
                    last,
                    _lines(other, 0, last),
                    language=other.language_id,
                )
            )
    return items


def index_items(session: Session, query: str) -> list[ContextItem]:
    """BM25 hits of the workspace index for the message's words (on a worker thread)."""
    from ouzel.indexer.search import search_chunks

    items: list[ContextItem] = []
    for index in session.engine.index.indexes_for(session):
        try:
            hits = search_chunks(index, query, _INDEX_HITS)
        except Exception as exc:  # the index is a cache: a failing one only means no hits
            log.warning("index search for chat failed: %s", exc)
            continue
        for hit in hits:
            path = index.root / hit.path
            if is_secret(session, path):
                continue
            items.append(
                ContextItem(
                    "index",
                    path.as_uri(),
                    hit.path,
                    hit.start_line,
                    hit.end_line,
                    hit.text,
                    ", ".join(hit.symbols[:3]),
                    hit.language,
                )
            )
    return items


async def definition_items(session: Session, request: ChatRequest) -> list[ContextItem]:
    """Definitions the code at the cursor uses, from the context engine (Jedi for Python)."""
    doc = request.document
    if doc is None or request.cursor_offset is None:
        return []
    try:
        result = await session.context.gather(session.snapshot(doc), request.cursor_offset)
    except Exception as exc:
        log.warning("no definitions for chat: %s", exc)
        return []
    items = []
    for part in result.parts:
        if part.source != "definition" or part.path is None:
            continue
        _, shown = display_path(session, part.path.as_uri())
        items.append(
            ContextItem(
                "definition",
                part.path.as_uri(),
                shown,
                part.start_line,
                max(part.start_line, part.end_line - 1),
                part.text,
                part.label,
            )
        )
    return items


async def gather_context(session: Session, request: ChatRequest) -> list[ContextItem]:
    items = document_items(session, request)
    if request.definitions:
        items += await definition_items(session, request)
    if request.index:
        items += await asyncio.to_thread(index_items, session, request.message)
    return fit_items(items, session.settings.chat.context_chars)


# --- a turn --------------------------------------------------------------------------------


async def until_cancelled(
    chunks: AsyncIterator[ChatChunk], cancel: CancelToken
) -> AsyncIterator[ChatChunk]:
    """`chunks` until `cancel` is set: a cancel ends the wait for the next chunk at once
    (the backend stops at its next token or when its HTTP stream is closed)."""
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[None] = loop.create_future()

    def stop() -> None:
        if not stopped.done():
            stopped.set_result(None)

    unsubscribe = cancel.on_cancel(lambda: loop.call_soon_threadsafe(stop))
    iterator = chunks.__aiter__()
    try:
        while not stopped.done():
            step = asyncio.ensure_future(iterator.__anext__())
            racing: set[asyncio.Future[Any]] = {step, stopped}
            await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                step.cancel()  # closes the backend's stream where it waits
                with contextlib.suppress(BaseException):
                    await step
                return
            try:
                chunk = step.result()
            except StopAsyncIteration:
                return
            yield chunk
    finally:
        unsubscribe()
        close = getattr(iterator, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()


Backends = Callable[["Session", TaskKind], Awaitable[Any]]


async def session_backend(session: Session, task: TaskKind) -> Any:
    """The backend serving `task` under the session's settings (`SessionModels`)."""
    return await session.models.backend_for(task, session.settings)


async def run_turn(
    session: Session,
    request: ChatRequest,
    stream: Stream,
    task: TaskKind = "chat",
    messages_override: list[ChatMessage] | None = None,
    backend_source: Backends = session_backend,
    title: str = "Ouzel chat",
    begin_extra: dict[str, Any] | None = None,
) -> TurnResult:
    """One streamed answer, stored in the workspace's history.

    Raises UnknownConversation before anything is stored or streamed.
    """
    settings = session.settings.chat
    store = store_for(session, request.document)
    history: list[Turn] = []
    if request.conversation_id is not None:
        history = store.load(request.conversation_id).turns[-settings.history_turns :]
    root = root_of(session, request.document)
    started = time.perf_counter()
    rules = await asyncio.to_thread(read_rules, root, settings.rules_max_chars)
    items = (
        document_items(session, request)  # the prompt is given: only say what it shows
        if messages_override is not None
        else await gather_context(session, request)
    )
    recalled = (
        store.search(request.message, settings.recall_turns, request.conversation_id)
        if request.history and settings.recall_turns > 0 and messages_override is None
        else []
    )
    references = [item.reference() for item in items] + [
        {
            "uri": None,
            "path": None,
            "line": None,
            "endLine": None,
            "source": "history",
            "label": hit.message[:80],
            "conversationId": hit.conversation_id,
            "turnId": hit.turn_id,
        }
        for hit in recalled
    ]
    if messages_override is not None:
        messages = list(messages_override)
        if rules:
            from ouzel.server.features.chat.rules import rules_prompt

            system = messages[0]
            messages[0] = ChatMessage("system", system.content + "\n\n" + rules_prompt(rules))
    else:
        messages = build_messages(request.message, items, rules, history, recalled)
    turn = store.start_turn(request.conversation_id, request.message)
    result = TurnResult(turn, "", references, rules, recalled)
    result.timings["context_s"] = time.perf_counter() - started
    stream.begin(
        title,
        {**(begin_extra or {}), "conversationId": turn.conversation_id, "turnId": turn.turn_id},
    )
    pieces: list[str] = []
    sent_references = False
    try:
        backend = await backend_source(session, task)
        if backend is None:
            why = session.models.why_unavailable(task, session.settings)
            raise BackendError(f"no model can serve chat now: {why}")
        max_tokens = min(request.max_tokens or settings.max_tokens, settings.max_tokens)
        chunks = backend.stream_chat(messages, (), stream.cancel, max_tokens, settings.temperature)
        async for chunk in until_cancelled(chunks, stream.cancel):
            if chunk.backend:
                result.backend = chunk.backend
            if chunk.prompt_progress is not None:
                stream.reading(*chunk.prompt_progress)
            if chunk.text:
                if result.first_delta_s is None:
                    result.first_delta_s = time.perf_counter() - started
                pieces.append(chunk.text)
                stream.report(chunk.text, None if sent_references else references)
                sent_references = True
            if chunk.done:
                result.stop_reason = chunk.stop_reason or "stop"
            if stream.cancel.cancelled:
                break
    except asyncio.CancelledError:
        stream.cancel.cancel()
        result.reply, result.cancelled, result.stop_reason = "".join(pieces), True, "cancelled"
        store.finish_turn(turn, result.reply, "cancelled", result.backend, references)
        stream.end("cancelled")
        raise
    except BackendError as exc:
        result.error, result.stop_reason = str(exc), "error"
    result.reply = "".join(pieces)
    if stream.cancel.cancelled:
        result.cancelled, result.stop_reason = True, "cancelled"
    status = "cancelled" if result.cancelled else "error" if result.error else "done"
    store.finish_turn(turn, result.reply, status, result.backend, references)
    stream.end(result.error or status)
    return result
