"""Running an AI code action (LSP-free): region → model → checked hunks → apply.

`explain` and `tests` are chat turns about the region (stored in the history, streamed).
`docstring`, `fix` and `edit` ask for the whole region rewritten, refuse elided code,
diff the answer into hunks and hand them to `apply` (the handler's `workspace/applyEdit`)
only if the document still has the version the edit was computed for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ouzel.inference.types import BackendError
from ouzel.server.documents import Document
from ouzel.server.features import code_actions
from ouzel.server.features.chat import service
from ouzel.server.features.code_actions import ActionName, Definition
from ouzel.server.features.edits import (
    EditRefused,
    Hunk,
    Region,
    check_reply,
    extract_code,
    hunks_for,
    region_text,
)

if TYPE_CHECKING:  # sessions are passed in; features do not import LSP
    from ouzel.server.session import Session

log = logging.getLogger("ouzel.code_actions")

SECRET_FILE = "this file matches `index.secret_globs`; ouzel never sends it to a model"

# apply(document, hunks, label) -> (applied, failure reason)
Apply = Callable[[Document, list[Hunk], str], Awaitable[tuple[bool, str | None]]]


@dataclass
class ActionJob:
    action: ActionName
    document: Document  # the snapshot when the command arrived
    first_line: int
    last_line: int
    selection_empty: bool
    title: str
    instruction: str = ""
    diagnostic: str = ""
    conversation_id: str | None = None


@dataclass
class ActionResult:
    status: str
    message: str
    hunks: int = 0
    applied: bool | None = None
    reply: str = ""
    backend: str = ""
    conversation_id: str | None = None
    turn_id: str | None = None
    first_delta_s: float | None = None
    stop_reason: str | None = None  # the model's, for edit actions
    timings: dict[str, float] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message": self.message,
            "hunks": self.hunks,
            "applied": self.applied,
            "reply": self.reply,
            "backend": self.backend,
            "conversationId": self.conversation_id,
            "turnId": self.turn_id,
        }


def definitions_of(doc: Document) -> list[Definition]:
    """Functions and classes of the snapshot, from the index's tree-sitter outline."""
    from ouzel.server.features.indexing import outline

    path = doc.uri.rsplit("/", 1)[-1]
    found: list[Definition] = []

    def walk(nodes: list[Any]) -> None:
        for node in nodes:
            symbol = node.symbol
            kind = (
                "class"
                if symbol.kind in ("class", "struct", "interface", "trait", "impl")
                else "function"
            )
            if symbol.kind in (
                "function",
                "method",
                "class",
                "struct",
                "interface",
                "trait",
                "impl",
                "constructor",
            ):
                found.append(Definition(symbol.name, kind, symbol.start_line, symbol.end_line))
            walk(node.children)

    try:
        walk(outline(doc.text, doc.language_id, path))
    except Exception as exc:  # an unknown language: the indentation scan answers instead
        log.debug("no outline for %s: %s", doc.uri, exc)
    return found


async def enclosing_definition(doc: Document, line: int) -> Definition | None:
    definitions = await asyncio.to_thread(definitions_of, doc)
    return code_actions.refine(definitions, line) or code_actions.definition_hint(doc.text, line)


async def run_action(
    session: Session,
    job: ActionJob,
    stream: service.Stream,
    apply: Apply,
    backend_source: service.Backends = service.session_backend,
) -> ActionResult:
    doc = job.document
    started = time.perf_counter()
    path, _ = service.display_path(session, doc.uri)
    if service.is_secret(session, path):
        return ActionResult("failed", f"{job.title}: {SECRET_FILE}")
    enclosing = await enclosing_definition(doc, job.first_line)
    region = code_actions.region_for(
        job.action, doc.text, job.first_line, job.last_line, job.selection_empty, enclosing
    )
    original = region_text(doc.text, region)
    _, shown = service.display_path(session, doc.uri)
    action_input = code_actions.ActionInput(
        job.action,
        shown,
        doc.language_id,
        original,
        region.first_line,
        enclosing.name if enclosing else "",
        job.instruction,
        job.diagnostic,
    )
    messages = code_actions.messages_for(action_input)
    if job.action not in code_actions.EDITING_ACTIONS:
        return await _answer(session, job, stream, messages, region, shown, backend_source)
    stream.begin(job.title, {"action": job.action, "conversationId": None, "turnId": None})
    result = ActionResult("failed", "")
    try:
        reply = await _generate(session, stream, messages, result, started, backend_source)
    except BackendError as exc:
        stream.end("failed")
        return ActionResult("failed", f"{job.title}: {exc}")
    except asyncio.CancelledError:
        stream.cancel.cancel()
        stream.end("cancelled")
        raise
    if stream.cancel.cancelled:
        stream.end("cancelled")
        return ActionResult("cancelled", f"{job.title}: cancelled; nothing was changed")
    result.reply = reply
    outcome = await _propose(session, job, region, original, reply, result, apply)
    stream.end(outcome.message)
    return outcome


async def _generate(
    session: Session,
    stream: service.Stream,
    messages: list[Any],
    result: ActionResult,
    started: float,
    backend_source: service.Backends,
) -> str:
    backend = await backend_source(session, "code_action")
    if backend is None:
        why = session.models.why_unavailable("code_action", session.settings)
        raise BackendError(f"no model can serve code actions now: {why}")
    pieces: list[str] = []
    chunks = backend.stream_chat(messages, (), stream.cancel, session.settings.chat.max_tokens, 0.0)
    async for chunk in service.until_cancelled(chunks, stream.cancel):
        if chunk.backend:
            result.backend = chunk.backend
        if chunk.prompt_progress is not None:
            stream.reading(*chunk.prompt_progress)
        if chunk.text:
            if result.first_delta_s is None:
                result.first_delta_s = time.perf_counter() - started
            pieces.append(chunk.text)
            stream.report(chunk.text)
        if chunk.done:
            result.stop_reason = chunk.stop_reason
        if stream.cancel.cancelled:
            break
    return "".join(pieces)


async def _propose(
    session: Session,
    job: ActionJob,
    region: Region,
    original: str,
    reply: str,
    result: ActionResult,
    apply: Apply,
) -> ActionResult:
    doc = job.document
    try:
        note = code_actions.stop_reason_note(result.stop_reason)
        if note is not None:
            raise EditRefused(note)
        new_text = extract_code(reply)
        check_reply(original, new_text)
    except EditRefused as exc:
        return _with(result, "refused", f"{job.title}: {exc}")
    hunks = hunks_for(doc.text, region, new_text)
    if not hunks:
        return _with(result, "unchanged", f"{job.title}: the model proposed no change")
    current = session.documents.find(doc.uri)
    if current is None or current.version != doc.version or current.text != doc.text:
        return _with(
            result,
            "stale",
            f"{job.title}: the document changed while the model worked; the edit was dropped",
        )
    applied, reason = await apply(doc, hunks, job.title)
    result.hunks, result.applied = len(hunks), applied
    if applied:
        return _with(result, "applied", f"{job.title}: {len(hunks)} change(s) proposed")
    why = f" ({reason})" if reason else ""
    return _with(result, "rejected", f"{job.title}: the editor did not apply the edit{why}")


def _with(result: ActionResult, status: str, message: str) -> ActionResult:
    result.status, result.message = status, message
    return result


async def _answer(
    session: Session,
    job: ActionJob,
    stream: service.Stream,
    messages: list[Any],
    region: Region,
    shown: str,
    backend_source: service.Backends,
) -> ActionResult:
    """`explain` / `tests`: a chat turn about the region."""
    lines = f"{shown}:{region.first_line + 1}-{region.end_line}"
    request = service.ChatRequest(
        f"{job.title.removeprefix('Ouzel: ')} ({lines})",
        job.conversation_id,
        document=job.document,
        selection=(region.first_line, region.end_line - 1),
        open_files=False,
    )
    turn = await service.run_turn(
        session,
        request,
        stream,
        task="code_action",
        messages_override=messages,
        backend_source=backend_source,
        title=job.title,
        begin_extra={"action": job.action},
    )
    status = (
        "answered"
        if not (turn.error or turn.cancelled)
        else ("cancelled" if turn.cancelled else "failed")
    )
    message = turn.error or f"{job.title}: answered in the chat"
    return ActionResult(
        status,
        message,
        reply=turn.reply,
        backend=turn.backend,
        conversation_id=turn.turn.conversation_id,
        turn_id=turn.turn.turn_id,
        first_delta_s=turn.first_delta_s,
    )
