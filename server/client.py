"""The LSP side of a session's `Client`: messages, log forwarding and `$/progress`.

`LspClient` implements `ouzel.server.session.Client` for one connection's pygls server;
features never see lsprotocol, they call the session (`show_message`, `progress`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from ouzel.server.convert import Encoding, normalize_encoding
from ouzel.server.session import MessageLevel, Session

if TYPE_CHECKING:
    from ouzel.server.server import OuzelServer

log = logging.getLogger("ouzel.server.client")

_MESSAGE_TYPES: dict[str, types.MessageType] = {
    "error": types.MessageType.Error,
    "warning": types.MessageType.Warning,
    "info": types.MessageType.Info,
}


class LspClient:
    """The editor at the other end of an LSP connection."""

    def __init__(self, server: OuzelServer) -> None:
        self.server = server
        self.session: Session | None = None  # set by the composition root

    @property
    def encoding(self) -> Encoding:
        return normalize_encoding(self.server.ouzel_protocol.position_encoding)

    def supports(self, dotted: str) -> bool:
        """True when the client's capability at `dotted` (snake_case attributes) is truthy."""
        node: Any = self.server.protocol.client_capabilities
        for part in dotted.split("."):
            node = getattr(node, part, None)
            if node is None:
                return False
        return bool(node)

    def show_message(self, text: str, level: MessageLevel) -> None:
        params = types.ShowMessageParams(type=_MESSAGE_TYPES[level], message=f"ouzel: {text}")
        self._call_soon(self.server.window_show_message, params)

    def log(self, level: int, text: str) -> None:
        kind = (
            types.MessageType.Error
            if level >= logging.ERROR
            else types.MessageType.Warning
            if level >= logging.WARNING
            else types.MessageType.Info
            if level >= logging.INFO
            else types.MessageType.Log
        )
        params = types.LogMessageParams(type=kind, message=text)
        self._call_soon(self.server.window_log_message, params)

    def progress(self, title: str, cancellable: bool) -> ProgressReporter:
        assert self.session is not None
        return ProgressReporter(self.session, title, cancellable)

    def _call_soon(self, fn: Any, *args: Any) -> None:
        if self.session is not None:
            self.session.call_soon(fn, *args)


class ProgressReporter:
    """Work-done progress; each method may be called from any thread.

    The LSP spec says a server-created token may be used only after the client answered
    `window/workDoneProgress/create`, so reports made before that are held back.
    """

    _counter = 0

    def __init__(self, session: Session, title: str, cancellable: bool) -> None:
        ProgressReporter._counter += 1
        self.session = session
        assert session.server is not None  # an LSP session's progress
        self._server = session.server
        self.title = title
        self.cancellable = cancellable
        self.token = f"ouzel-{ProgressReporter._counter}-{title.lower().replace(' ', '-')}"
        self.enabled = session.supports("window.work_done_progress")
        self.message = ""
        self.percentage: int | None = None
        self._created = False
        self._ended = False
        self._held: list[Any] = []

    def begin(self) -> None:
        if self.enabled:
            self.session.call_soon(self._create)

    def report(self, message: str, percentage: int | None = None) -> None:
        self.message = message
        self.percentage = percentage
        if self.enabled:
            value = types.WorkDoneProgressReport(message=message, percentage=percentage)
            self.session.call_soon(self._send, value)

    def end(self, message: str | None = None) -> None:
        if self.enabled:
            value = types.WorkDoneProgressEnd(message=message or self.message or None)
            self.session.call_soon(self._send, value)

    # The methods below run on the event loop.

    def _create(self) -> None:
        progress = self._server.work_done_progress

        def created(*_: Any) -> None:
            self._created = True
            progress.begin(
                self.token,
                types.WorkDoneProgressBegin(
                    title=self.title, cancellable=self.cancellable, percentage=0
                ),
            )
            for value in self._held:
                self._send(value)
            self._held.clear()

        try:
            future = progress.create(self.token)
        except Exception:
            log.debug("progress token %s not created", self.token, exc_info=True)
            return
        future.add_done_callback(
            lambda fut: (
                self.session.call_soon(created)
                if not fut.cancelled() and fut.exception() is None
                else None
            )
        )

    def _send(self, value: Any) -> None:
        if self._ended:
            return
        if not self._created:
            self._held = [v for v in self._held if not isinstance(v, types.WorkDoneProgressReport)]
            self._held.append(value)
            return
        if isinstance(value, types.WorkDoneProgressEnd):
            self._ended = True
        progress = self._server.work_done_progress
        if isinstance(value, types.WorkDoneProgressEnd):
            progress.end(self.token, value)
        else:
            progress.report(self.token, value)
