"""didOpen / didChange / didClose / didSave: applied in order, synchronously."""

from __future__ import annotations

import logging

from lsprotocol import types

from ouzel.server.documents import TextChange, UnknownDocumentError
from ouzel.server.session import Session

log = logging.getLogger("ouzel.server.text_sync")


def did_open(session: Session, params: types.DidOpenTextDocumentParams) -> None:
    doc = params.text_document
    session.documents.open(doc.uri, doc.language_id, doc.version, doc.text)


def did_change(session: Session, params: types.DidChangeTextDocumentParams) -> None:
    changes = [_plain_change(change) for change in params.content_changes]
    try:
        session.documents.change(
            params.text_document.uri, params.text_document.version, changes, session.encoding
        )
    except UnknownDocumentError as exc:
        log.warning("didChange for a document that is not open: %s", exc.uri)


def did_close(session: Session, params: types.DidCloseTextDocumentParams) -> None:
    session.documents.close(params.text_document.uri)


def did_save(session: Session, params: types.DidSaveTextDocumentParams) -> None:
    for listener in list(session.saved):
        listener(params.text_document.uri)


def _plain_change(change: types.TextDocumentContentChangeEvent) -> TextChange:
    if isinstance(change, types.TextDocumentContentChangePartial):
        r = change.range
        return TextChange(
            (r.start.line, r.start.character, r.end.line, r.end.character), change.text
        )
    return TextChange(None, change.text)
