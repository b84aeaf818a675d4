"""Ghost text (`textDocument/inlineCompletion`), the completion popup, and their telemetry.

- `textDocument/inlineCompletion` (LSP 3.18): the suggestion as ghost text.
- `textDocument/completion`, for clients without inline completions: the suggestion as
  the first item, plus Jedi's semantic completions for Python.
- Telemetry like Copilot's language server: the item's command `ouzel.accepted` runs on
  accept; `textDocument/didShowCompletion` and `textDocument/didPartiallyAcceptCompletion`
  report showing and partial accepts.
- `ouzel/cursorRest` (notification, docs/ARCHITECTURE.md "Ghost text"): the cursor rests
  at a place; its prompt is warmed into the model's KV cache in the background.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from lsprotocol import types

from ouzel.indexer.languages import is_python
from ouzel.server import convert
from ouzel.server.features import completion
from ouzel.server.features.completion_jedi import JediCompleter, JediItem
from ouzel.server.handlers import ranges
from ouzel.server.session import Session, Snapshot

log = logging.getLogger("ouzel.server.handlers.completion")

ACCEPT_COMMAND = "ouzel.accepted"
DID_SHOW = "textDocument/didShowCompletion"
DID_PARTIALLY_ACCEPT = "textDocument/didPartiallyAcceptCompletion"
CURSOR_REST = "ouzel/cursorRest"
INLINE_OPTIONS = types.InlineCompletionOptions()
COMPLETION_OPTIONS = types.CompletionOptions(trigger_characters=["."], resolve_provider=False)

_WORD_BEFORE = re.compile(r"\w*\Z")
_JEDI_KINDS = {
    "module": types.CompletionItemKind.Module,
    "class": types.CompletionItemKind.Class,
    "instance": types.CompletionItemKind.Variable,
    "function": types.CompletionItemKind.Function,
    "param": types.CompletionItemKind.Variable,
    "path": types.CompletionItemKind.File,
    "keyword": types.CompletionItemKind.Keyword,
    "property": types.CompletionItemKind.Property,
    "statement": types.CompletionItemKind.Variable,
}


async def inline_completion(
    session: Session, params: types.InlineCompletionParams
) -> types.InlineCompletionList:
    snap = session.snapshot(params.text_document.uri)  # before any await
    doc, position = snap.document, params.position
    resolved = doc.offset(position.line, position.character, snap.encoding)
    if not resolved.in_range:
        return types.InlineCompletionList(items=[])
    invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
    suggestion = await session.completion.suggest(snap, resolved.offset, invoked)
    if suggestion is None:
        return types.InlineCompletionList(items=[])
    at = ranges.to_lsp_position(doc.text, doc.starts, resolved.offset, snap.encoding)
    item = types.InlineCompletionItem(
        insert_text=suggestion.text,
        range=types.Range(start=at, end=at),
        command=_accept_command(suggestion.id),
    )
    return types.InlineCompletionList(items=[item])


async def completion_popup(
    session: Session, params: types.CompletionParams
) -> types.CompletionList:
    snap = session.snapshot(params.text_document.uri)  # before any await
    doc, position = snap.document, params.position
    resolved = doc.offset(position.line, position.character, snap.encoding)
    if not resolved.in_range:
        return types.CompletionList(is_incomplete=False, items=[])
    offset = resolved.offset
    invoked = (
        params.context is not None
        and params.context.trigger_kind == types.CompletionTriggerKind.Invoked
    )
    suggestion, semantic = await asyncio.gather(
        session.completion.suggest(snap, offset, invoked), _jedi_items(session, snap, offset)
    )
    items: list[types.CompletionItem] = []
    if suggestion is not None:
        items.append(_suggestion_item(snap, offset, suggestion))
    items += [_jedi_item(snap, offset, item, rank) for rank, item in enumerate(semantic)]
    return types.CompletionList(is_incomplete=True, items=items)


def _suggestion_item(
    snap: Snapshot, offset: int, suggestion: completion.Suggestion
) -> types.CompletionItem:
    doc = snap.document
    line_start = doc.starts[doc.position(offset, "utf-32")[0]]
    word = _WORD_BEFORE.search(doc.text[line_start:offset])
    typed = word.group(0) if word else ""
    new_text = typed + suggestion.text
    first_line = new_text.split("\n", 1)[0].strip()
    label = first_line[:80] + (" …" if "\n" in new_text or len(first_line) > 80 else "")
    edit_range = ranges.to_lsp_range(
        doc.text, doc.starts, convert.Span(offset - len(typed), offset), snap.encoding
    )
    return types.CompletionItem(
        label=label or new_text.strip()[:80],
        kind=types.CompletionItemKind.Text,
        detail="ouzel suggestion",
        documentation=types.MarkupContent(
            kind=types.MarkupKind.Markdown, value=f"```{doc.language_id}\n{new_text}\n```"
        ),
        sort_text="0",
        filter_text=new_text,
        preselect=True,
        insert_text_format=types.InsertTextFormat.PlainText,
        text_edit=types.TextEdit(range=edit_range, new_text=new_text),
        command=_accept_command(suggestion.id),
    )


def _jedi_item(snap: Snapshot, offset: int, item: JediItem, rank: int) -> types.CompletionItem:
    doc = snap.document
    start = max(0, offset - item.prefix_length)
    edit_range = ranges.to_lsp_range(
        doc.text, doc.starts, convert.Span(start, offset), snap.encoding
    )
    return types.CompletionItem(
        label=item.name,
        kind=_JEDI_KINDS.get(item.kind, types.CompletionItemKind.Text),
        detail=item.detail,
        sort_text=f"1{rank:04d}",
        text_edit=types.TextEdit(range=edit_range, new_text=item.name),
    )


async def _jedi_items(session: Session, snap: Snapshot, offset: int) -> list[JediItem]:
    doc = snap.document
    if not is_python(doc.language_id, doc.uri):
        return []
    line, _ = doc.position(offset, "utf-32")
    column = offset - doc.starts[line]  # Jedi counts code points
    completer: JediCompleter = session.engine.jedi
    timeout = snap.settings.completion.jedi_timeout_ms / 1000
    return await completer.complete(doc.text, line, column, snap.path, snap.root, timeout)


def _accept_command(suggestion_id: str) -> types.Command:
    return types.Command(title="ouzel: accepted", command=ACCEPT_COMMAND, arguments=[suggestion_id])


def cursor_rest(session: Session, params: Any) -> None:
    """`ouzel/cursorRest` {textDocument: {uri}, position}: warm the prompt there."""
    document = params.get("textDocument") if isinstance(params, dict) else None
    position = params.get("position") if isinstance(params, dict) else None
    uri = document.get("uri") if isinstance(document, dict) else None
    line = position.get("line") if isinstance(position, dict) else None
    character = position.get("character") if isinstance(position, dict) else None
    if not (isinstance(uri, str) and isinstance(line, int) and isinstance(character, int)):
        log.warning("%s needs {textDocument: {uri}, position: {line, character}}", CURSOR_REST)
        return
    doc = session.documents.find(uri)
    if doc is None:
        log.debug("%s for a document that is not open: %s", CURSOR_REST, uri)
        return
    snap = session.snapshot(doc)
    resolved = doc.offset(line, character, snap.encoding)
    if resolved.in_range:
        session.completion.warm(snap, resolved.offset)


# --- telemetry -----------------------------------------------------------------------------


def accepted(session: Session, arguments: list[Any]) -> None:
    """`workspace/executeCommand` "ouzel.accepted" [id]: the user took the whole suggestion."""
    suggestion_id = arguments[0] if arguments and isinstance(arguments[0], str) else None
    if suggestion_id:
        session.completion.accepted(suggestion_id)


def did_show(session: Session, params: Any) -> None:
    suggestion_id = _item_id(params)
    if suggestion_id:
        session.completion.shown(suggestion_id)


def did_partially_accept(session: Session, params: Any) -> None:
    suggestion_id = _item_id(params)
    length = params.get("acceptedLength") if isinstance(params, dict) else None
    if suggestion_id:
        session.completion.partially_accepted(
            suggestion_id, length if isinstance(length, int) else None
        )


def _item_id(params: Any) -> str | None:
    """The suggestion id in a notification's `item.command.arguments[0]`."""
    item = params.get("item") if isinstance(params, dict) else None
    command = item.get("command") if isinstance(item, dict) else None
    arguments = command.get("arguments") if isinstance(command, dict) else None
    if isinstance(arguments, list) and arguments and isinstance(arguments[0], str):
        return arguments[0]
    return None
