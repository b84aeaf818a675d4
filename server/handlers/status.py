"""`ouzel/status`: what the server is doing, for status bars, `:Ouzel status` and tests."""

from __future__ import annotations

import logging
from typing import Any

from ouzel.server import __version__
from ouzel.server.session import Session

log = logging.getLogger("ouzel.server.status")


def status(session: Session, params: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "version": __version__,
        "client": session.client_name,
        "positionEncoding": session.encoding,
        "workspaceFolders": [str(path) for path in session.roots],
        "openDocuments": len(session.documents.all()),
    }
    for name, section in session.status_sections.items():
        try:
            result[name] = section()
        except Exception as exc:
            log.exception("status section %s failed", name)
            result[name] = {"error": str(exc)}
    return result
