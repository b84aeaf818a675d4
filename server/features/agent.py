"""Agent turns for a session: the sandbox over its folders, the tool loop on the router's
`agent` task, the transcript in the chat store, and undo of a whole turn.

LSP-free: the handler (`server/handlers/agent.py`) validates params, gives a `Stream` that
turns progress into `$/progress` and a `Confirmer` that asks the user through
`workspace/applyEdit` and `window/showMessageRequest`. The backend comes from the session's
models (`routing.agent`: remote first, local fallback), so the privacy guard, the breaker
and redaction apply as they do for chat. Open documents are the truth: the agent reads
their buffer text, the stale check hashes it, and undo puts the buffers back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ouzel.inference.backend import Backend
from ouzel.inference.types import BackendError, CancelToken, ChatMessage
from ouzel.server.agent.checkpoint import Checkpoint
from ouzel.server.agent.confirm import CommandProposal, Confirmer, EditDecision, EditProposal
from ouzel.server.agent.loop import AgentLoop, Record
from ouzel.server.agent.sandbox import Sandbox, SandboxError, sandbox_for, sha256
from ouzel.server.agent.tools import AgentContext
from ouzel.server.documents import Document, file_path
from ouzel.server.features.chat.service import root_of, store_for
from ouzel.server.features.chat.store import Turn
from ouzel.server.settings import Settings, TaskKind

if TYPE_CHECKING:
    from ouzel.server.session import Session

log = logging.getLogger("ouzel.agent.service")

TITLE = "Ouzel agent"
UNDO_COMMAND = "ouzel.agent.undo"
MAX_TURNS_KEPT = 50  # undoable turns per session
EDIT_TOOLS = ("propose_edit", "create_file")

BackendSource = Callable[[TaskKind, Settings], Awaitable[Backend | None]]


class Stream(Protocol):
    """Where a turn's progress goes (`$/progress` in the LSP handler)."""

    cancel: CancelToken

    def begin(self, title: str, extra: dict[str, Any]) -> None: ...

    def report_fields(self, fields: dict[str, Any]) -> None: ...

    def end(self, message: str) -> None: ...


class UnknownTurn(Exception):
    """`ouzel.agent.undo` named a turn that cannot be undone (the message says why)."""


@dataclass
class AgentRequest:
    message: str
    conversation_id: str | None = None
    document: Document | None = None  # the active editor's snapshot
    selection: tuple[int, int] | None = None  # first and last line, 0-based inclusive


@dataclass
class FileReport:
    path: str
    uri: str
    created: bool
    hunks: int = 0
    accepted: int = 0

    def json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "uri": self.uri,
            "created": self.created,
            "hunks": self.hunks,
            "accepted": self.accepted,
        }


@dataclass
class AgentTurn:
    """What undo needs of one turn."""

    turn_id: str
    conversation_id: str
    checkpoint: Checkpoint
    sandbox: Sandbox
    # The editor's text of each file open when the agent first proposed a change to it
    # (unsaved changes included), by real path: undo puts it back in the buffer.
    buffers_before: dict[str, str] = field(default_factory=dict)

    @property
    def written(self) -> list[str]:
        """The files this turn wrote (relative paths)."""
        return [
            before.resolved.relative
            for before in self.checkpoint.files.values()
            if before.written_sha256
        ]

    @property
    def wrote(self) -> bool:
        return bool(self.written)


@dataclass
class BufferUpdate:
    document: Document  # the buffer as it is now
    text: str  # its whole text after undo


@dataclass
class UndoOutcome:
    turn_id: str
    restored: list[str]
    deleted: list[str]
    buffers: list[BufferUpdate]  # open documents to set (one applyEdit)
    deleted_uris: list[str]  # created files, for the editor's DeleteFile
    problems: list[str]

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "turnId": self.turn_id,
            "restored": self.restored,
            "deleted": self.deleted,
        }
        if self.problems:
            value["problems"] = self.problems
        return value


class _Recording:
    """The editor's confirmer, with what the turn's result reports per file."""

    def __init__(self, inner: Confirmer, service: AgentService, turn: AgentTurn) -> None:
        self.inner = inner
        self.service = service
        self.turn = turn
        self.files: dict[str, FileReport] = {}

    async def confirm_edit(self, proposal: EditProposal) -> EditDecision:
        real = os.path.join(proposal.root, proposal.path)
        uri, document = self.service.locate(real)
        if document is not None and real not in self.turn.buffers_before:
            self.turn.buffers_before[real] = document.text
        report = self.files.setdefault(proposal.path, FileReport(proposal.path, uri, False))
        report.created = report.created or proposal.created
        decision = await self.inner.confirm_edit(proposal)
        report.hunks += len(proposal.hunks)
        if isinstance(decision, EditDecision) and len(decision.accepted) == len(proposal.hunks):
            report.accepted += sum(1 for value in decision.accepted if value is True)
        return decision

    async def confirm_protected(self, path: str, risk: str) -> bool:
        return await self.inner.confirm_protected(path, risk)

    async def confirm_command(self, proposal: CommandProposal) -> bool:
        return await self.inner.confirm_command(proposal)

    async def confirm_destructive(self, proposal: CommandProposal) -> bool:
        return await self.inner.confirm_destructive(proposal)


def tool_summary(name: str, arguments: str) -> str:
    """A short, plain description of a tool call for progress and history."""
    try:
        args = json.loads(arguments or "{}")
    except (json.JSONDecodeError, RecursionError):
        return "(arguments are not valid JSON)"
    if not isinstance(args, dict):
        return "(arguments are not an object)"

    def text(key: str) -> str:
        value = args.get(key)
        return value[:120] if isinstance(value, str) else ""

    if name == "read_file":
        start, end = _line(args.get("start_line")), _line(args.get("end_line"))
        lines = f" lines {start or 1}-{end or 'end'}" if start or end else ""
        return f"{text('path')}{lines}"
    if name in ("list_dir",):
        return text("path") or "."
    if name in ("glob", "grep"):
        return f"{text('pattern')} in {text('path') or '.'}"
    if name in ("search_symbols", "search_code"):
        return text("query")
    if name == "definitions":
        return f"{text('name')} at {text('path')}:{args.get('line')}"
    if name in EDIT_TOOLS:
        return text("path")
    if name == "run_command":
        argv = args.get("argv")
        return json.dumps(argv)[:200] if isinstance(argv, list) else "(no argv)"
    return ""


def _line(value: object) -> int | str | None:
    """A line number as the model gave it, for display ("end" past any real file)."""
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    return value if value < 10_000_000 else "end"


def tool_entry(record: Record) -> dict[str, Any]:
    status = "ok" if record.get("ok") else "refused" if record.get("refused") else "failed"
    entry: dict[str, Any] = {
        "name": record.get("name", ""),
        "summary": tool_summary(str(record.get("name", "")), str(record.get("arguments", ""))),
        "status": status,
    }
    if status != "ok":
        entry["reason"] = str(record.get("refused") or record.get("text") or "")[:500]
    return entry


def edit_counts(transcript: list[Record], retried: int) -> dict[str, int]:
    counts = {"proposed": 0, "applied": 0, "rejected": 0, "refused": 0, "retried": retried}
    for record in transcript:
        if record.get("kind") != "tool" or record.get("name") not in EDIT_TOOLS:
            continue
        counts["proposed"] += 1
        reason = str(record.get("refused") or "")
        if record.get("wrote"):
            counts["applied"] += 1
        elif "declined" in reason:
            counts["rejected"] += 1
        else:
            counts["refused"] += 1
    return counts


class AgentService:
    """One session's agent: its turns (for undo) and the way it runs one."""

    def __init__(self, session: Session, backend_source: BackendSource) -> None:
        self.session = session
        self.backend_source = backend_source
        self.turns: list[AgentTurn] = []
        self.running: str | None = None  # the turn id of the turn running now
        self._cancel: CancelToken | None = None  # the running turn's

    def close(self) -> None:
        """The session ended: stop the running turn (no one is left to confirm)."""
        if self._cancel is not None:
            self._cancel.cancel()

    # --- where files are in the editor ---------------------------------------------------

    def locate(self, real: str) -> tuple[str, Document | None]:
        """The editor's URI for a real path (its open document's URI, else the path under
        the workspace folder as the editor named it) and the open document, if any."""
        for document in self.session.documents.all():
            path = file_path(document.uri)
            if path is not None and os.path.realpath(path) == real:
                return document.uri, document
        for root in self.session.roots:
            real_root = os.path.realpath(root)
            if real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep):
                return (root / os.path.relpath(real, real_root)).as_uri(), None
        return Path(real).as_uri(), None

    def buffer_text(self, real: str) -> str | None:
        _, document = self.locate(real)
        return document.text if document is not None else None

    # --- a turn ----------------------------------------------------------------------------

    async def run_turn(
        self, request: AgentRequest, stream: Stream, confirmer: Confirmer
    ) -> dict[str, Any]:
        """One agent turn, streamed and stored; the result of docs/AGENT.md.

        Raises UnknownConversation before anything is stored or streamed; while another
        turn of the session runs the result is an error and nothing starts.
        """
        session = self.session
        if self.running is not None:
            return _refused_turn(
                f"an agent turn ({self.running}) is still running in this session: wait for "
                "it or cancel it"
            )
        root = root_of(session, request.document)
        settings = session.settings_for(root)
        store = store_for(session, request.document)
        history: list[Turn] = []
        if request.conversation_id is not None:
            history = store.load(request.conversation_id).turns[-settings.chat.history_turns :]
        try:
            sandbox = sandbox_for(session.roots, settings)
        except SandboxError as exc:
            return _refused_turn(str(exc))
        turn = store.start_turn(request.conversation_id, request.message, mode="agent")
        record = AgentTurn(turn.turn_id, turn.conversation_id, Checkpoint(turn.turn_id), sandbox)
        self.turns.append(record)
        del self.turns[:-MAX_TURNS_KEPT]
        self.running, self._cancel = turn.turn_id, stream.cancel
        try:
            return await self._run(
                request, stream, confirmer, settings, store, turn, record, history
            )
        finally:
            self.running, self._cancel = None, None

    async def _run(
        self,
        request: AgentRequest,
        stream: Stream,
        confirmer: Confirmer,
        settings: Settings,
        store: Any,
        turn: Turn,
        record: AgentTurn,
        history: list[Turn],
    ) -> dict[str, Any]:
        recording = _Recording(confirmer, self, record)
        indexes = self.session.engine.index.indexes_for(self.session)
        ctx = AgentContext(
            sandbox=record.sandbox,
            confirmer=recording,
            checkpoint=record.checkpoint,
            settings=settings.agent,
            cancel=stream.cancel,
            index=indexes[0] if indexes else None,
            buffers=self.buffer_text,
        )
        ids = {"conversationId": turn.conversation_id, "turnId": turn.turn_id}
        stream.begin(TITLE, {**ids, "mode": "agent"})
        max_steps = settings.agent.max_steps
        tools: list[dict[str, Any]] = []
        loop_ref: list[AgentLoop] = []

        def step() -> str:
            return f"step {loop_ref[0].steps if loop_ref else 0}/{max_steps}"

        def on_record(entry: Record) -> None:
            if entry.get("kind") != "tool":
                return
            tool = tool_entry(entry)
            tools.append(tool)
            stream.report_fields(
                {**ids, "message": f"{step()}: {tool['name']} {tool['summary']}", "tool": tool}
            )

        def on_delta(text: str) -> None:
            stream.report_fields({**ids, "message": f"{step()}: thinking", "delta": text})

        status, answer, error, backend_name = "error", "", "", ""
        steps = tokens = retried = 0
        transcript: list[Record] = []
        try:
            backend = await self.backend_source("agent", settings)
            if backend is None:
                why = self.session.models.why_unavailable("agent", settings)
                raise BackendError(f"no model can serve the agent now: {why}")
            loop = AgentLoop(
                backend,
                ctx,
                on_record=on_record,
                on_delta=on_delta,
                max_answer_tokens=max(1024, settings.chat.max_tokens),
                only_tools=settings.agent.tools,
            )
            loop_ref.append(loop)
            result = await loop.run(_message(self.session, request), _history_messages(history))
            status, answer, error = result.status, result.answer, result.error
            steps, tokens, backend_name = result.steps, result.tokens, result.backend
            retried, transcript = result.stats.applied_after_feedback, result.transcript
        except BackendError as exc:
            status, error = "error", str(exc)
        except Exception as exc:  # a bug must not leave the turn `streaming`
            log.exception("agent turn %s failed", turn.turn_id)
            status, error = "error", f"{type(exc).__name__}: {exc}"
        except asyncio.CancelledError:
            stream.cancel.cancel()
            loop_now = loop_ref[0] if loop_ref else None
            store.finish_turn(turn, "", "cancelled", "", [], tools)
            stream.end(_end_message("cancelled", len(record.written), ""))
            if loop_now is not None:
                log.info("agent turn %s cancelled at step %d", turn.turn_id, loop_now.steps)
            raise
        if stream.cancel.cancelled and status not in ("error",):
            status = "cancelled"
        store.finish_turn(turn, answer or error, status, backend_name, [], tools)
        stream.end(_end_message(status, len(record.written), error))
        return {
            **ids,
            "status": status,
            "answer": answer,
            "files": [report.json() for report in recording.files.values()],
            "edits": edit_counts(transcript, retried),
            "steps": steps,
            "tokens": tokens,
            "backend": backend_name,
            "error": error or None,
            "undo": {
                "title": "Undo this agent turn",
                "command": UNDO_COMMAND,
                "arguments": [{"turnId": turn.turn_id}],
            }
            if record.wrote
            else None,
        }

    # --- undo ------------------------------------------------------------------------------

    def undo(self, turn_id: str | None) -> UndoOutcome:
        """Restore every file a turn wrote (byte for byte) and delete the files it created;
        the open buffers to reset come back in the outcome. Raises UnknownTurn."""
        if self.running is not None and (turn_id is None or turn_id == self.running):
            raise UnknownTurn("the agent turn is still running: cancel it first")
        if turn_id is None:
            turn = next((t for t in reversed(self.turns) if t.wrote), None)
            if turn is None:
                raise UnknownTurn("nothing to undo: no agent turn of this session changed a file")
        else:
            turn = next((t for t in self.turns if t.turn_id == turn_id), None)
            if turn is None:
                raise UnknownTurn(f"unknown agent turn: {turn_id!r}")
            if not turn.wrote:
                raise UnknownTurn(f"agent turn {turn_id!r} changed no file: nothing to undo")
        entries = [
            (before.resolved, before.state, before.written_sha256)
            for before in turn.checkpoint.files.values()
            if before.written_sha256
        ]
        problems = turn.checkpoint.undo(turn.sandbox)
        failed = {problem.split(": ", 1)[0] for problem in problems}
        outcome = UndoOutcome(turn.turn_id, [], [], [], [], problems)
        for resolved, state, written in entries:
            if resolved.relative in failed:
                continue
            uri, document = self.locate(resolved.real)
            if state is None:
                outcome.deleted.append(resolved.relative)
                outcome.deleted_uris.append(uri)
                continue
            outcome.restored.append(resolved.relative)
            if document is None:
                continue
            if sha256(document.text.encode("utf-8", errors="surrogatepass")) != written:
                outcome.problems.append(
                    f"{resolved.relative}: the editor's text changed after the agent wrote it; "
                    "the file on disk was restored, the buffer was left alone"
                )
                continue
            text = turn.buffers_before.get(resolved.real)
            if text is None:
                text = state.data.decode("utf-8", errors="replace")
            outcome.buffers.append(BufferUpdate(document, text))
        if not problems:
            self.turns.remove(turn)
        return outcome


STOPS = {
    "cancelled": "cancelled",
    "steps": "stopped: agent.max_steps reached",
    "tokens": "stopped: agent.max_tokens reached",
    "time": "stopped: agent.max_wall_s reached",
}


def _end_message(status: str, changed: int, error: str) -> str:
    if status == "error":
        return f"{TITLE}: {error or 'failed'}"
    stop = STOPS.get(status)
    return f"{TITLE}: {changed} file(s) changed" + (f" ({stop})" if stop else "")


def _refused_turn(error: str) -> dict[str, Any]:
    return {
        "conversationId": None,
        "turnId": None,
        "status": "error",
        "answer": "",
        "files": [],
        "edits": edit_counts([], 0),
        "steps": 0,
        "tokens": 0,
        "backend": "",
        "error": error,
        "undo": None,
    }


def _message(session: Session, request: AgentRequest) -> str:
    """The user's request, with where they are in the editor."""
    document = request.document
    if document is None:
        return request.message
    path = session.uri_to_path(document.uri)
    root = session.root_for(path) if path is not None else None
    shown = document.uri
    if path is not None and root is not None:
        try:
            shown = path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            shown = path.name
    where = f"The user's editor shows `{shown}`"
    if request.selection is not None:
        first, last = request.selection
        where += f" with lines {first + 1}-{last + 1} selected"
    return f"{request.message}\n\n({where}.)"


def _history_messages(turns: list[Turn]) -> list[ChatMessage]:
    messages: list[ChatMessage] = []
    for turn in turns:
        if turn.status in ("streaming", "interrupted") or not turn.reply:
            continue
        messages.append(ChatMessage("user", turn.message))
        messages.append(ChatMessage("assistant", turn.reply))
    return messages
