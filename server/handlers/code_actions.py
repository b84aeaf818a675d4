"""AI code actions: `textDocument/codeAction` (at once, no model), `codeAction/resolve`,
and the commands that do the work: `ouzel.codeAction.run` (streams `$/progress`, ends in
`workspace/applyEdit` with one confirmable annotation per hunk) and `ouzel.applyCodeBlock`.
The protocol is docs/CHAT.md."""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import converters, types
from pygls.exceptions import JsonRpcInvalidParams

from ouzel.server import convert
from ouzel.server.documents import Document
from ouzel.server.features import code_actions
from ouzel.server.features.chat import actions, service
from ouzel.server.features.edits import (
    EditRefused,
    Hunk,
    check_reply,
    hunks_for,
    region_for_lines,
    region_text,
)
from ouzel.server.handlers import ranges
from ouzel.server.handlers.streaming import ProgressStream
from ouzel.server.session import Session

log = logging.getLogger("ouzel.server.handlers.code_actions")

RUN_COMMAND = "ouzel.codeAction.run"
APPLY_BLOCK_COMMAND = "ouzel.applyCodeBlock"
OPTIONS = types.CodeActionOptions(
    code_action_kinds=list(code_actions.ADVERTISED_KINDS), resolve_provider=True
)
_converter = converters.get_converter()


# --- the list ------------------------------------------------------------------------------


def code_action(session: Session, params: types.CodeActionParams) -> list[types.CodeAction]:
    doc = session.documents.get(params.text_document.uri)
    if service.is_secret(session, session.uri_to_path(doc.uri)):
        return []  # never offer to send a secret file to a model
    start = _clamped(session, doc, params.range.start)
    end = _clamped(session, doc, params.range.end)
    first, last, empty = code_actions.selection_lines(start, end)
    diagnostics = list(params.context.diagnostics or [])
    offered = code_actions.offers(
        doc.text,
        first,
        last,
        empty,
        [d.message for d in diagnostics],
        [str(getattr(kind, "value", kind)) for kind in params.context.only]
        if params.context.only
        else None,
    )
    result = []
    for offer in offered:
        argument: dict[str, Any] = {
            "action": offer.action,
            "textDocument": {"uri": doc.uri, "version": doc.version},
            "range": _converter.unstructure(params.range),
            "instruction": None,
            "workDoneToken": None,
            "conversationId": None,
        }
        fixes: list[types.Diagnostic] | None = None
        if offer.diagnostic_index is not None:
            diagnostic = diagnostics[offer.diagnostic_index]
            argument["diagnostic"] = _converter.unstructure(diagnostic)
            fixes = [diagnostic]
        result.append(
            types.CodeAction(
                title=offer.title,
                kind=offer.kind,
                diagnostics=fixes,
                tags=[types.CodeActionTag.LlmGenerated],
                command=types.Command(title=offer.title, command=RUN_COMMAND, arguments=[argument]),
                data={"argument": argument, "title": offer.title},
            )
        )
    return result


def _clamped(session: Session, doc: Document, position: types.Position) -> tuple[int, int]:
    resolved = doc.offset(position.line, position.character, session.encoding)
    line, _ = doc.position(resolved.offset, "utf-32")
    return line, resolved.offset - doc.starts[line]


def resolve(session: Session, action: types.CodeAction) -> types.CodeAction:
    """Fill in the command (never a model call: the work runs when the command runs)."""
    data = action.data if isinstance(action.data, dict) else None
    if action.command is None and data is not None and isinstance(data.get("argument"), dict):
        title = str(data.get("title") or action.title)
        action.command = types.Command(
            title=title, command=RUN_COMMAND, arguments=[data["argument"]]
        )
    return action


# --- running one ---------------------------------------------------------------------------


def _argument(arguments: list[Any], command: str) -> dict[str, Any]:
    if len(arguments) != 1 or not isinstance(arguments[0], dict):
        raise JsonRpcInvalidParams(f"{command} takes one argument: an object (see docs/CHAT.md)")
    return arguments[0]


def _document(
    session: Session, argument: dict[str, Any], command: str
) -> tuple[Document, int | None]:
    text_document = argument.get("textDocument")
    if not isinstance(text_document, dict) or not isinstance(text_document.get("uri"), str):
        raise JsonRpcInvalidParams(f"{command}: `textDocument` must be {{uri, version}}")
    version = text_document.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise JsonRpcInvalidParams(f"{command}: `textDocument.version` must be an integer")
    return session.documents.get(text_document["uri"]), version


def _range(session: Session, doc: Document, value: Any, command: str) -> tuple[int, int, bool]:
    try:
        parsed = _converter.structure(value, types.Range)
    except Exception as exc:
        raise JsonRpcInvalidParams(f"{command}: `range` must be an LSP Range: {exc}") from exc
    for position in (parsed.start, parsed.end):
        if position.line < 0 or position.character < 0:
            raise JsonRpcInvalidParams(f"{command}: a position cannot be negative")
    start = _clamped(session, doc, parsed.start)
    end = _clamped(session, doc, parsed.end)
    return code_actions.selection_lines(start, end)


def _job(session: Session, argument: dict[str, Any]) -> tuple[actions.ActionJob, int | None]:
    action = argument.get("action")
    if action not in code_actions.ACTIONS:
        raise JsonRpcInvalidParams(
            f"{RUN_COMMAND}: `action` must be one of {', '.join(code_actions.ACTIONS)}"
        )
    doc, version = _document(session, argument, RUN_COMMAND)
    first, last, empty = _range(session, doc, argument.get("range"), RUN_COMMAND)
    instruction = argument.get("instruction")
    if action == "edit":
        if not isinstance(instruction, str) or not instruction.strip():
            raise JsonRpcInvalidParams(
                f"{RUN_COMMAND}: `edit` needs `instruction` (ask the user, then run the command)"
            )
        if len(instruction) > code_actions.MAX_INSTRUCTION_CHARS:
            raise JsonRpcInvalidParams(
                f"{RUN_COMMAND}: `instruction` is longer than "
                f"{code_actions.MAX_INSTRUCTION_CHARS} characters"
            )
    diagnostic = ""
    if action == "fix":
        raw = argument.get("diagnostic")
        try:
            parsed = _converter.structure(raw, types.Diagnostic)
        except Exception as exc:
            raise JsonRpcInvalidParams(f"{RUN_COMMAND}: `fix` needs `diagnostic`: {exc}") from exc
        diagnostic = parsed.message
        if empty:  # no selection: the diagnostic's lines locate the region
            first, last, _ = code_actions.selection_lines(
                _clamped(session, doc, parsed.range.start), _clamped(session, doc, parsed.range.end)
            )
    conversation_id = argument.get("conversationId")
    if conversation_id is not None and not isinstance(conversation_id, str):
        raise JsonRpcInvalidParams(f"{RUN_COMMAND}: `conversationId` must be a string")
    title = _TITLES[str(action)]
    job = actions.ActionJob(
        action,
        doc,
        first,
        last,
        empty,
        title,
        instruction=instruction if isinstance(instruction, str) else "",
        diagnostic=diagnostic,
        conversation_id=conversation_id,
    )
    return job, version


_TITLES = {
    "explain": "Ouzel: Explain this code",
    "fix": "Ouzel: Fix a problem",
    "docstring": "Ouzel: Add a docstring",
    "tests": "Ouzel: Write tests",
    "edit": "Ouzel: Edit selection",
}


async def run(session: Session, arguments: list[Any]) -> dict[str, Any]:
    argument = _argument(arguments, RUN_COMMAND)
    job, version = _job(session, argument)
    if version is not None and version != job.document.version:
        return _stale(session, job.title)
    token = argument.get("workDoneToken")
    if token is not None and (not isinstance(token, (str, int)) or isinstance(token, bool)):
        raise JsonRpcInvalidParams(f"{RUN_COMMAND}: `workDoneToken` must be a string or integer")
    stream = ProgressStream(session, token, "code-action")
    try:
        result = await actions.run_action(session, job, stream, _apply_for(session))
    except Exception as exc:
        from ouzel.server.features.chat.store import UnknownConversation

        if isinstance(exc, UnknownConversation):
            raise JsonRpcInvalidParams(str(exc)) from exc
        raise
    finally:
        stream.close()
    if result.status in ("refused", "stale", "failed"):
        session.show_message(result.message, "warning")
    return result.json()


def _stale(session: Session, title: str) -> dict[str, Any]:
    message = f"{title}: the document changed since the action was offered; run it again"
    session.show_message(message, "warning")
    return actions.ActionResult("stale", message).json()


def _apply_for(session: Session) -> actions.Apply:
    async def apply(doc: Document, hunks: list[Hunk], label: str) -> tuple[bool, str | None]:
        edit = workspace_edit(session, doc, hunks, label)
        answer = await session.lsp_server.workspace_apply_edit_async(
            types.ApplyWorkspaceEditParams(edit=edit, label=label)
        )
        return bool(answer.applied), answer.failure_reason

    return apply


def workspace_edit(
    session: Session, doc: Document, hunks: list[Hunk], label: str
) -> types.WorkspaceEdit:
    """One annotated edit per hunk, each with its own ChangeAnnotation(needsConfirmation)."""
    edits: list[types.TextEdit | types.AnnotatedTextEdit | types.SnippetTextEdit] = []
    annotations: dict[str, types.ChangeAnnotation] = {}
    for index, hunk in enumerate(hunks, start=1):
        annotation_id = f"ouzel-{index}"
        start = _line_offset(doc, hunk.first_line)
        end = _line_offset(doc, hunk.end_line)
        span = convert.Span(start, end)
        edits.append(
            types.AnnotatedTextEdit(
                range=ranges.to_lsp_range(doc.text, doc.starts, span, session.encoding),
                new_text=hunk.new_text,
                annotation_id=annotation_id,
            )
        )
        annotations[annotation_id] = types.ChangeAnnotation(
            label=hunk.label(index, len(hunks)), needs_confirmation=True, description=label
        )
    document_edit = types.TextDocumentEdit(
        text_document=types.OptionalVersionedTextDocumentIdentifier(
            uri=doc.uri, version=doc.version
        ),
        edits=edits,
    )
    return types.WorkspaceEdit(document_changes=[document_edit], change_annotations=annotations)


def _line_offset(doc: Document, line: int) -> int:
    return doc.starts[line] if line < len(doc.starts) else len(doc.text)


# --- applying a code block from the chat ---------------------------------------------------


async def apply_code_block(session: Session, arguments: list[Any]) -> dict[str, Any]:
    argument = _argument(arguments, APPLY_BLOCK_COMMAND)
    doc, version = _document(session, argument, APPLY_BLOCK_COMMAND)
    title = "Ouzel: Apply code block"
    if version is not None and version != doc.version:
        return _stale(session, title)
    text = argument.get("text")
    if not isinstance(text, str):
        raise JsonRpcInvalidParams(f"{APPLY_BLOCK_COMMAND}: `text` must be a string")
    first, last, _ = _range(session, doc, argument.get("range"), APPLY_BLOCK_COMMAND)
    region = region_for_lines(doc.text, first, last)
    original = region_text(doc.text, region)
    try:
        check_reply(original, text if text.endswith("\n") else text + "\n")
    except EditRefused as exc:
        message = f"{title}: {exc}"
        session.show_message(message, "warning")
        return actions.ActionResult("refused", message).json()
    hunks = hunks_for(doc.text, region, text)
    if not hunks:
        return actions.ActionResult("unchanged", f"{title}: nothing to change").json()
    applied, reason = await _apply_for(session)(doc, hunks, title)
    status = "applied" if applied else "rejected"
    message = (
        f"{title}: {len(hunks)} change(s) proposed"
        if applied
        else f"{title}: not applied ({reason})"
    )
    return actions.ActionResult(status, message, hunks=len(hunks), applied=applied).json()
