"""Streamed work over `$/progress`, with extra fields in each value (Copilot's shape).

`WorkDoneProgressReport` has no room for `conversationId`, `turnId`, `delta` or
`references`, so values go out as plain JSON. The token is the client's (`workDoneToken`)
or one the server creates with `window/workDoneProgress/create` when the client supports
that; `window/workDoneProgress/cancel` for it and `$/cancelRequest` for the request both
set the stream's `CancelToken`, which backends check between tokens.
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import Future
from typing import Any

from lsprotocol import types

from ouzel.inference.types import CancelToken
from ouzel.server.protocol import REQUEST_ID, OuzelProtocol
from ouzel.server.session import Session

log = logging.getLogger("ouzel.server.streaming")


class ProgressStream:
    """One streamed job's `$/progress`; methods run on the event loop."""

    def __init__(self, session: Session, token: str | int | None, kind: str) -> None:
        self.session = session
        self.cancel = CancelToken()
        self.kind = kind
        self.client_token = token is not None
        self.token: str | int | None = token
        self.extra: dict[str, Any] = {}
        self._ready = token is not None
        self._held: list[dict[str, Any]] = []
        self._cancel_future: Future[Any] | None = None
        self._request_id = REQUEST_ID.get()
        protocol = session.lsp_server.protocol
        if isinstance(protocol, OuzelProtocol) and self._request_id is not None:
            protocol.cancel_listeners[self._request_id] = self.cancel.cancel
        if token is None and session.supports("window.work_done_progress"):
            self.token = f"ouzel-{kind}-{uuid.uuid4().hex[:12]}"
            self._create()
        if self.token is not None:
            self._watch_cancel(self.token)

    def _create(self) -> None:
        def created(future: Any) -> None:
            failed = future.cancelled() or future.exception() is not None
            self.session.call_soon(self._on_created, failed)

        try:
            request = self.session.lsp_server.protocol.send_request(
                types.WINDOW_WORK_DONE_PROGRESS_CREATE,
                types.WorkDoneProgressCreateParams(token=self.token or ""),
            )
            request.add_done_callback(created)
        except Exception:
            log.debug("progress token not created", exc_info=True)
            self.token = None

    def _on_created(self, failed: bool) -> None:
        if failed:
            self.token = None
            self._held.clear()
            return
        self._ready = True
        for value in self._held:
            self._send(value)
        self._held.clear()

    def _watch_cancel(self, token: str | int) -> None:
        # pygls cancels the future registered for a token on window/workDoneProgress/cancel.
        future: Future[Any] = Future()
        future.add_done_callback(lambda _: self.cancel.cancel())
        self.session.lsp_server.work_done_progress.tokens[token] = future
        self._cancel_future = future

    def _send(self, value: dict[str, Any]) -> None:
        if self.token is None:
            return
        if not self._ready:
            self._held.append(value)
            return
        # `value` stays plain JSON: lsprotocol types it as LSPAny.
        self.session.lsp_server.protocol.notify(
            types.PROGRESS, types.ProgressParams(token=self.token, value=value)
        )

    def begin(self, title: str, extra: dict[str, Any]) -> None:
        self.extra = dict(extra)
        self._send({"kind": "begin", "title": title, "cancellable": True, **self.extra})

    def report(self, delta: str, references: list[dict[str, Any]] | None = None) -> None:
        value: dict[str, Any] = {
            "kind": "report",
            "message": "generating…",
            **self.extra,
            "delta": delta,
        }
        if references is not None:
            value["references"] = references
        self._send(value)

    def reading(self, done: int, total: int) -> None:
        percentage = min(99, done * 100 // max(1, total))
        self._send(
            {
                "kind": "report",
                "message": f"reading the prompt: {done:,} of {total:,} tokens",
                "percentage": percentage,
                **self.extra,
            }
        )

    def report_fields(self, fields: dict[str, Any]) -> None:
        """A report with its own fields (the agent's `message`, `delta`, `tool`)."""
        self._send({"kind": "report", **self.extra, **fields})

    def end(self, message: str) -> None:
        self._send({"kind": "end", "message": message, **self.extra})
        self.close()

    def close(self) -> None:
        protocol = self.session.lsp_server.protocol
        if isinstance(protocol, OuzelProtocol) and self._request_id is not None:
            protocol.cancel_listeners.pop(self._request_id, None)
        if self.token is not None:
            self.session.lsp_server.work_done_progress.tokens.pop(self.token, None)
