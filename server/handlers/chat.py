"""`ouzel/chat` (streamed on `$/progress`), its `ouzel.chat` command, and the history
requests `ouzel/chatList`, `ouzel/chatLoad`, `ouzel/chatSearch`, `ouzel/chatDelete`.
The protocol is docs/CHAT.md."""

from __future__ import annotations

from typing import Any

from pygls.exceptions import JsonRpcInvalidParams

from ouzel.server.documents import Document
from ouzel.server.features.chat import service
from ouzel.server.features.chat.store import UnknownConversation, snippet
from ouzel.server.handlers.streaming import ProgressStream
from ouzel.server.session import Session

CHAT = "ouzel/chat"
CHAT_COMMAND = "ouzel.chat"
LIST = "ouzel/chatList"
LOAD = "ouzel/chatLoad"
SEARCH = "ouzel/chatSearch"
DELETE = "ouzel/chatDelete"
MAX_MESSAGE_CHARS = 20_000


def _object(params: Any, method: str) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise JsonRpcInvalidParams(f"{method} expects an object of params")
    return params


def _string(params: dict[str, Any], key: str, method: str, required: bool = True) -> str | None:
    value = params.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise JsonRpcInvalidParams(f"{method}: `{key}` must be a non-empty string")
    return value


def _limit(params: dict[str, Any], default: int, method: str) -> int:
    value = params.get("limit", default)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1000:
        raise JsonRpcInvalidParams(f"{method}: `limit` must be an integer from 1 to 1000")
    return value


def _token(params: dict[str, Any], method: str) -> str | int | None:
    token = params.get("workDoneToken")
    if token is not None and (not isinstance(token, (str, int)) or isinstance(token, bool)):
        raise JsonRpcInvalidParams(f"{method}: `workDoneToken` must be a string or an integer")
    return token


def _position(value: Any, what: str, method: str = CHAT) -> tuple[int, int]:
    if (
        not isinstance(value, dict)
        or not all(
            isinstance(value.get(k), int) and not isinstance(value.get(k), bool)
            for k in ("line", "character")
        )
        or value["line"] < 0
        or value["character"] < 0
    ):
        raise JsonRpcInvalidParams(f"{method}: `{what}` must be {{line, character}} (non-negative)")
    return value["line"], value["character"]


def chat_request(session: Session, params: Any, method: str = CHAT) -> service.ChatRequest:
    """Validate `ouzel/chat` params (the document snapshot is taken here, before awaiting);
    `method` names the request in error messages (the agent takes the same params)."""
    params = _object(params, method)
    message = _string(params, "message", method)
    assert message is not None
    if len(message) > MAX_MESSAGE_CHARS:
        raise JsonRpcInvalidParams(
            f"{method}: `message` is longer than {MAX_MESSAGE_CHARS} characters"
        )
    conversation_id = _string(params, "conversationId", method, required=False)
    flags = params.get("context") or {}
    if not isinstance(flags, dict):
        raise JsonRpcInvalidParams(f"{method}: `context` must be an object")
    max_tokens = params.get("maxTokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise JsonRpcInvalidParams(f"{method}: `maxTokens` must be a positive integer")
    request = service.ChatRequest(
        message,
        conversation_id,
        open_files=bool(flags.get("openFiles", True)),
        index=bool(flags.get("index", True)),
        definitions=bool(flags.get("definitions", True)),
        history=bool(flags.get("history", True)),
        max_tokens=max_tokens,
    )
    text_document = params.get("textDocument")
    if text_document is not None:
        if not isinstance(text_document, dict) or not isinstance(text_document.get("uri"), str):
            raise JsonRpcInvalidParams(f"{method}: `textDocument` must be {{uri}}")
        doc = session.documents.get(text_document["uri"])
        request.document = doc
        selection = params.get("selection")
        if selection is not None:
            if not isinstance(selection, dict):
                raise JsonRpcInvalidParams(f"{method}: `selection` must be a Range")
            _selection(session, doc, request, selection, method)
    elif params.get("selection") is not None:
        raise JsonRpcInvalidParams(f"{method}: `selection` needs `textDocument`")
    return request


def _selection(
    session: Session,
    doc: Document,
    request: service.ChatRequest,
    selection: dict[str, Any],
    method: str = CHAT,
) -> None:
    start = _position(selection.get("start"), "selection.start", method)
    end = _position(selection.get("end"), "selection.end", method)
    start_offset = doc.offset(*start, session.encoding).offset
    end_offset = doc.offset(*end, session.encoding).offset
    first, last = sorted((start_offset, end_offset))
    request.cursor_offset = first
    if first != last:
        first_line = doc.text.count("\n", 0, first)
        last_line = doc.text.count("\n", 0, max(first, last - 1))
        request.selection = (first_line, last_line)


async def chat(session: Session, params: Any) -> dict[str, Any]:
    mode = params.get("mode", "chat") if isinstance(params, dict) else "chat"
    if mode == "agent":  # the agent takes the same params (docs/AGENT.md)
        from ouzel.server.handlers import agent

        return await agent.agent(session, params, CHAT)
    if mode not in ("chat", None):
        raise JsonRpcInvalidParams(f'{CHAT}: `mode` must be "chat" or "agent"')
    request = chat_request(session, params)
    stream = ProgressStream(session, _token(params, CHAT), "chat")
    try:
        result = await service.run_turn(session, request, stream)
    except UnknownConversation as exc:
        raise JsonRpcInvalidParams(str(exc)) from exc
    finally:
        stream.close()
    return result.json()


async def chat_command(session: Session, arguments: list[Any]) -> dict[str, Any]:
    if len(arguments) != 1:
        raise JsonRpcInvalidParams(f"{CHAT_COMMAND} takes one argument: the {CHAT} params")
    return await chat(session, arguments[0])


def _store(session: Session, params: dict[str, Any]) -> Any:
    doc = None
    text_document = params.get("textDocument")
    if isinstance(text_document, dict) and isinstance(text_document.get("uri"), str):
        doc = session.documents.find(text_document["uri"])
    return service.store_for(session, doc)


def chat_list(session: Session, params: Any) -> dict[str, Any]:
    params = _object(params or {}, LIST)
    limit = _limit(params, 50, LIST)
    conversations = _store(session, params).conversations(limit)
    return {
        "conversations": [
            {
                "conversationId": c.conversation_id,
                "title": c.title,
                "created": c.created,
                "updated": c.updated,
                "turns": c.turn_count,
            }
            for c in conversations
        ]
    }


def chat_load(session: Session, params: Any) -> dict[str, Any]:
    params = _object(params, LOAD)
    conversation_id = _string(params, "conversationId", LOAD)
    assert conversation_id is not None
    try:
        conversation = _store(session, params).load(conversation_id)
    except UnknownConversation as exc:
        raise JsonRpcInvalidParams(str(exc)) from exc
    return {
        "conversationId": conversation.conversation_id,
        "title": conversation.title,
        "created": conversation.created,
        "updated": conversation.updated,
        "turns": [turn.json() for turn in conversation.turns],
    }


def chat_search(session: Session, params: Any) -> dict[str, Any]:
    params = _object(params, SEARCH)
    query = _string(params, "query", SEARCH)
    assert query is not None
    limit = _limit(params, 20, SEARCH)
    hits = _store(session, params).search(query, limit)
    return {
        "hits": [
            {
                "conversationId": h.conversation_id,
                "turnId": h.turn_id,
                "title": h.title,
                "snippet": snippet(h, query),
                "created": h.created,
            }
            for h in hits
        ]
    }


def chat_delete(session: Session, params: Any) -> dict[str, Any]:
    params = _object(params, DELETE)
    conversation_id = _string(params, "conversationId", DELETE)
    assert conversation_id is not None
    try:
        _store(session, params).delete(conversation_id)
    except UnknownConversation as exc:
        raise JsonRpcInvalidParams(str(exc)) from exc
    return {"deleted": True}
