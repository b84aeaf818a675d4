"""The agent over LSP: `ouzel.agent` (and `ouzel/chat` with `"mode": "agent"`), streamed on
`$/progress`; every write a confirmable `workspace/applyEdit` (one change annotation per
hunk, as code actions do); protected files and commands asked with
`window/showMessageRequest`; `ouzel.agent.undo`. The protocol is docs/AGENT.md.

One writer to disk: the editor applies the accepted hunks to its buffer (and reports the
text with didChange); the server learns from that text which hunks were taken and writes
exactly that, sandboxed. It never sends a second edit for the same change.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from ouzel.server import convert
from ouzel.server.agent.confirm import CommandProposal, EditDecision, EditProposal
from ouzel.server.agent.matcher import Hunk
from ouzel.server.documents import Document
from ouzel.server.features import edits
from ouzel.server.features.agent import AgentRequest, AgentService, UnknownTurn
from ouzel.server.features.chat.store import UnknownConversation
from ouzel.server.handlers import ranges
from ouzel.server.handlers.chat import _token, chat_request
from ouzel.server.handlers.streaming import ProgressStream
from ouzel.server.session import Session

log = logging.getLogger("ouzel.server.handlers.agent")

AGENT_COMMAND = "ouzel.agent"
UNDO_COMMAND = "ouzel.agent.undo"
ALLOW, REFUSE, RUN, RUN_ANYWAY = "Allow this change", "Refuse", "Run", "Run anyway"
# How long to wait, after the editor said it applied an edit, for its didChange/didOpen.
DID_CHANGE_WAIT_S = 2.0
UNDO_EDIT_TIMEOUT_S = 30.0


# --- starting a turn ----------------------------------------------------------------------


async def agent(session: Session, params: Any, method: str = AGENT_COMMAND) -> dict[str, Any]:
    """One agent turn (the params of docs/AGENT.md)."""
    chat = chat_request(session, params, method)
    request = AgentRequest(chat.message, chat.conversation_id, chat.document, chat.selection)
    token = _token(params, method)
    stream = ProgressStream(session, token, "agent")
    confirmer = LspConfirmer(session, session.agent)
    try:
        result = await session.agent.run_turn(request, stream, confirmer)
    except UnknownConversation as exc:
        raise JsonRpcInvalidParams(str(exc)) from exc
    finally:
        stream.close()
    if result["status"] == "error" and result["error"]:
        session.show_message(f"agent: {result['error']}", "warning")
    return result


async def agent_command(session: Session, arguments: list[Any]) -> dict[str, Any]:
    if len(arguments) != 1:
        raise JsonRpcInvalidParams(
            f"{AGENT_COMMAND} takes one argument: an object with `message` (docs/AGENT.md)"
        )
    return await agent(session, arguments[0])


# --- the user's answers -------------------------------------------------------------------


class LspConfirmer:
    """`Confirmer` for one session: applyEdit per proposal, showMessageRequest for
    protected files and commands."""

    def __init__(
        self, session: Session, service: AgentService, wait_s: float = DID_CHANGE_WAIT_S
    ) -> None:
        self.session = session
        self.service = service
        self.wait_s = wait_s

    async def confirm_edit(self, proposal: EditProposal) -> EditDecision:
        real = os.path.join(proposal.root, proposal.path)
        uri, document = self.service.locate(real)
        if document is not None and document.text != proposal.old_text:
            log.info("%s changed while its edit was prepared; not proposed", proposal.path)
            return EditDecision.all(proposal, False)
        label = (
            f"Ouzel agent: create {proposal.path}"
            if proposal.created
            else f"Ouzel agent: {proposal.path}"
        )
        description = f"Ouzel agent: {proposal.path}"
        if proposal.protected:
            description += f" — PROTECTED: {proposal.protected}"
        edit = proposal_edit(
            uri,
            document.version if document is not None else None,
            proposal,
            self.session.encoding,
            description,
        )
        answer = await self.session.lsp_server.workspace_apply_edit_async(
            types.ApplyWorkspaceEditParams(edit=edit, label=label)
        )
        if not answer.applied:
            return EditDecision.all(proposal, False)
        after = await self._text_after(uri, proposal.old_text, document)
        if after is None:  # applied, and the editor keeps no buffer we hear of: all of it
            return EditDecision.all(proposal, True)
        accepted = accepted_hunks(proposal.old_text, proposal.hunks, after)
        if accepted is None:
            self.session.show_message(
                f"agent: the text of {proposal.path} in the editor is not the proposal with "
                "some of its changes applied; nothing was written",
                "warning",
            )
            return EditDecision.all(proposal, False)
        return EditDecision(tuple(accepted))

    async def _text_after(self, uri: str, before: str, document: Document | None) -> str | None:
        """The editor's text once its didChange (or didOpen) arrived; None when it never
        reported the document."""
        deadline = time.monotonic() + self.wait_s
        while True:
            current = self.session.documents.find(uri)
            if current is not None and (
                current.text != before
                or (document is not None and current.version != document.version)
            ):
                return current.text
            if time.monotonic() >= deadline:
                return current.text if current is not None else None
            await asyncio.sleep(0.02)

    async def _ask(self, kind: types.MessageType, message: str, actions: list[str]) -> str | None:
        answer = await self.session.lsp_server.window_show_message_request_async(
            types.ShowMessageRequestParams(
                type=kind,
                message=message,
                actions=[types.MessageActionItem(title=title) for title in actions],
            )
        )
        return answer.title if answer is not None else None

    async def confirm_protected(self, path: str, risk: str) -> bool:
        answer = await self._ask(
            types.MessageType.Warning,
            f"Ouzel agent wants to change {path}, a protected file: {risk}. "
            "Allow this change (each hunk is still shown)?",
            [ALLOW, REFUSE],
        )
        return answer == ALLOW

    async def confirm_command(self, proposal: CommandProposal) -> bool:
        answer = await self._ask(
            types.MessageType.Warning,
            f"Ouzel agent wants to run {json.dumps(list(proposal.argv))} in {proposal.cwd}. "
            f"It {proposal.risk}.",
            [RUN, REFUSE],
        )
        return answer == RUN

    async def confirm_destructive(self, proposal: CommandProposal) -> bool:
        answer = await self._ask(
            types.MessageType.Warning,
            f"{json.dumps(list(proposal.argv))} is destructive: "
            f"{'; '.join(proposal.destructive)}. Run it anyway?",
            [RUN_ANYWAY, REFUSE],
        )
        return answer == RUN_ANYWAY


def accepted_hunks(old: str, hunks: tuple[Hunk, ...], after: str) -> list[bool] | None:
    """Which hunks the editor applied: the choice per hunk that turns `old` into `after`
    (None when no choice does: the text changed in other ways too)."""
    lines = old.splitlines(keepends=True)
    gaps: list[str] = []
    position = 0
    for hunk in hunks:
        gaps.append("".join(lines[position : hunk.old_start]))
        position = hunk.old_end
    gaps.append("".join(lines[position:]))
    olds = ["".join(hunk.old_lines) for hunk in hunks]
    news = ["".join(hunk.new_lines) for hunk in hunks]
    failed: set[tuple[int, int]] = set()
    choice: list[bool] = []

    def solve(index: int, at: int) -> bool:  # depth-first, each (hunk, offset) tried once
        if (index, at) in failed:
            return False
        gap = gaps[index]
        if not after.startswith(gap, at):
            failed.add((index, at))
            return False
        at += len(gap)
        if index == len(hunks):
            return at == len(after)
        for take, piece in ((True, news[index]), (False, olds[index])):
            if after.startswith(piece, at):
                choice.append(take)
                if solve(index + 1, at + len(piece)):
                    return True
                choice.pop()
        failed.add((index, at - len(gap)))
        return False

    if len(hunks) > 400:  # deeper than the recursion allows: all or nothing
        if after == "".join(g + n for g, n in zip(gaps, news, strict=False)) + gaps[-1]:
            return [True] * len(hunks)
        return [False] * len(hunks) if after == old else None
    return choice if solve(0, 0) else None


def proposal_edit(
    uri: str,
    version: int | None,
    proposal: EditProposal,
    encoding: convert.Encoding,
    description: str,
) -> types.WorkspaceEdit:
    """The proposal as one WorkspaceEdit: a CreateFile for a new file, then one annotated
    edit per hunk, each with its own ChangeAnnotation (needsConfirmation), labelled as code
    actions label theirs (`Change i of n: lines a-b (replace)`)."""
    old = proposal.old_text
    starts = convert.line_starts(old)
    offsets = [0]
    for line in old.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    changes: list[types.TextDocumentEdit | types.CreateFile | types.RenameFile | types.DeleteFile]
    changes = []
    annotations: dict[str, types.ChangeAnnotation] = {}
    if proposal.created:
        annotations["ouzel-create"] = types.ChangeAnnotation(
            label=f"Create {proposal.path}", needs_confirmation=True, description=description
        )
        changes.append(
            types.CreateFile(
                uri=uri,
                options=types.CreateFileOptions(overwrite=False, ignore_if_exists=False),
                annotation_id="ouzel-create",
            )
        )
    text_edits: list[types.TextEdit | types.AnnotatedTextEdit | types.SnippetTextEdit] = []
    count = len(proposal.hunks)
    for index, hunk in enumerate(proposal.hunks, start=1):
        span = convert.Span(offsets[hunk.old_start], offsets[hunk.old_end])
        lsp_range = ranges.to_lsp_range(old, starts, span, encoding)
        end_line = lsp_range.end.line + (1 if lsp_range.end.character else 0)
        first_line = min(lsp_range.start.line, end_line)
        new_text = "".join(hunk.new_lines)
        shown = edits.Hunk(first_line, end_line if hunk.old_lines else first_line, new_text)
        annotation_id = f"ouzel-{index}"
        text_edits.append(
            types.AnnotatedTextEdit(range=lsp_range, new_text=new_text, annotation_id=annotation_id)
        )
        annotations[annotation_id] = types.ChangeAnnotation(
            label=shown.label(index, count), needs_confirmation=True, description=description
        )
    changes.append(
        types.TextDocumentEdit(
            text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version),
            edits=text_edits,
        )
    )
    return types.WorkspaceEdit(document_changes=changes, change_annotations=annotations)


# --- undo ---------------------------------------------------------------------------------


async def undo_command(session: Session, arguments: list[Any]) -> dict[str, Any]:
    turn_id: str | None = None
    if len(arguments) > 1:
        raise JsonRpcInvalidParams(f"{UNDO_COMMAND} takes at most one argument: {{turnId}}")
    if arguments:
        argument = arguments[0]
        if argument is not None and not isinstance(argument, dict):
            raise JsonRpcInvalidParams(f"{UNDO_COMMAND}: the argument must be {{turnId}}")
        value = (argument or {}).get("turnId")
        if value is not None and (not isinstance(value, str) or not value):
            raise JsonRpcInvalidParams(f"{UNDO_COMMAND}: `turnId` must be a non-empty string")
        turn_id = value
    try:
        outcome = session.agent.undo(turn_id)
    except UnknownTurn as exc:
        raise JsonRpcInvalidParams(str(exc)) from exc
    changes: list[types.TextDocumentEdit | types.CreateFile | types.RenameFile | types.DeleteFile]
    changes = []
    for update in outcome.buffers:
        document = update.document
        whole = convert.Span(0, len(document.text))
        changes.append(
            types.TextDocumentEdit(
                text_document=types.OptionalVersionedTextDocumentIdentifier(
                    uri=document.uri, version=document.version
                ),
                edits=[
                    types.TextEdit(
                        range=ranges.to_lsp_range(
                            document.text, document.starts, whole, session.encoding
                        ),
                        new_text=update.text,
                    )
                ],
            )
        )
    for uri in outcome.deleted_uris:
        changes.append(
            types.DeleteFile(uri=uri, options=types.DeleteFileOptions(ignore_if_not_exists=True))
        )
    if changes:
        try:
            answer = await asyncio.wait_for(
                session.lsp_server.workspace_apply_edit_async(
                    types.ApplyWorkspaceEditParams(
                        edit=types.WorkspaceEdit(document_changes=changes),
                        label="Ouzel agent: undo",
                    )
                ),
                UNDO_EDIT_TIMEOUT_S,
            )
            if not answer.applied:
                outcome.problems.append(
                    "the editor did not update its buffers; reload them from disk"
                )
        except asyncio.TimeoutError:
            outcome.problems.append("the editor did not answer the undo edit; reload from disk")
    if outcome.problems:
        session.show_message("agent undo: " + "; ".join(outcome.problems), "warning")
    return outcome.json()
