"""`ouzel/status`: what the server is doing, for status bars, `:Ouzel status` and tests.

Params are optional. With `{textDocument: {uri}}` of an open document the sections are
computed from a snapshot of that document (the settings of its workspace folder) and the
result has a `document` entry; otherwise they use the session's settings.
"""

from __future__ import annotations

import logging
from typing import Any

from ouzel.server import __version__
from ouzel.server.session import Session, Snapshot

log = logging.getLogger("ouzel.server.status")


def status(session: Session, params: Any) -> dict[str, Any]:
    snap = _snapshot(session, params)
    settings = snap.settings if snap is not None else session.settings
    result: dict[str, Any] = {
        "version": __version__,
        "client": session.client_name,
        "positionEncoding": session.encoding,
        "workspaceFolders": [str(path) for path in session.roots],
        "openDocuments": len(session.documents.all()),
    }
    if snap is not None:
        result["document"] = {
            "uri": snap.uri,
            "version": snap.document.version,
            "folder": str(snap.root) if snap.root is not None else None,
        }
    for name, section in session.status_sections.items():
        try:
            result[name] = section(settings)
        except Exception as exc:
            log.exception("status section %s failed", name)
            result[name] = {"error": str(exc)}
    return result


def _snapshot(session: Session, params: Any) -> Snapshot | None:
    """The snapshot of the open document named in `params`, if any (else None)."""
    document = params.get("textDocument") if isinstance(params, dict) else None
    uri = document.get("uri") if isinstance(document, dict) else None
    if not isinstance(uri, str):
        return None
    doc = session.documents.find(uri)
    return session.snapshot(doc) if doc is not None else None
