"""One editor connection's state, and the engine that all connections share.

`Engine` holds what is expensive and process-wide (models, routers, indexes): a TCP server
with several editors connected loads a model once. `Session` holds what belongs to one
connection: open documents, settings, workspace folders, the client's capabilities.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lsprotocol import types
from pygls.uris import to_fs_path

from ouzel.server.convert import Encoding, normalize_encoding
from ouzel.server.documents import DocumentStore
from ouzel.server.settings import Settings

if TYPE_CHECKING:
    from ouzel.server.server import OuzelServer

log = logging.getLogger("ouzel.server.session")

MessageLevel = Literal["error", "warning", "info"]
_MESSAGE_TYPES: dict[str, types.MessageType] = {
    "error": types.MessageType.Error,
    "warning": types.MessageType.Warning,
    "info": types.MessageType.Info,
}


@dataclass
class Engine:
    """Process-wide services shared by every session."""

    # Settings layered on top of every session's (from CLI flags such as --model).
    overrides: dict[str, Any] = field(default_factory=dict)
    # Hooks run when a session has finished `initialized` / when it ends.
    session_started: list[Callable[[Session], None]] = field(default_factory=list)
    session_ended: list[Callable[[Session], None]] = field(default_factory=list)
    # Named services (router, indexes, completion engine), created on first use.
    services: dict[str, Any] = field(default_factory=dict)

    def service(self, name: str, factory: Callable[[], Any]) -> Any:
        if name not in self.services:
            self.services[name] = factory()
        return self.services[name]

    def close(self) -> None:
        for service in list(self.services.values()):
            close = getattr(service, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    log.exception("closing a service failed")
        self.services.clear()


class Session:
    def __init__(self, server: OuzelServer, engine: Engine) -> None:
        self.server = server
        self.engine = engine
        self.documents = DocumentStore()
        self.settings = Settings()
        self.folders: dict[str, Path] = {}  # workspace folder URI -> path
        self.init_options: dict[str, Any] = {}
        self.client_config: dict[str, Any] = {}
        self.client_name = ""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Called with the new settings after every (re)load.
        self.settings_changed: list[Callable[[Settings], None]] = []
        # Called with (added, removed) folder paths.
        self.folders_changed: list[Callable[[list[Path], list[Path]], None]] = []
        # Called with the URI of every saved document.
        self.saved: list[Callable[[str], None]] = []
        # Sections of `ouzel/status`: name -> function returning a JSON-able dict.
        self.status_sections: dict[str, Callable[[], dict[str, Any]]] = {}

    # --- facts about the connection ------------------------------------------------------

    @property
    def encoding(self) -> Encoding:
        return normalize_encoding(self.server.protocol.position_encoding)

    @property
    def capabilities(self) -> types.ClientCapabilities:
        return self.server.protocol.client_capabilities

    def supports(self, dotted: str) -> bool:
        """True when the client's capability at `dotted` (snake_case attributes) is truthy."""
        node: Any = self.capabilities
        for part in dotted.split("."):
            node = getattr(node, part, None)
            if node is None:
                return False
        return bool(node)

    @property
    def roots(self) -> list[Path]:
        return list(self.folders.values())

    def root_for(self, path: Path) -> Path | None:
        """The workspace folder containing `path` (deepest first)."""
        resolved = path.resolve()
        for root in sorted(self.folders.values(), key=lambda p: len(str(p)), reverse=True):
            if resolved.is_relative_to(root.resolve()):
                return root
        return None

    @staticmethod
    def uri_to_path(uri: str) -> Path | None:
        path = to_fs_path(uri) if uri.startswith("file:") else None
        return Path(path) if path else None

    # --- talking to the client (safe from any thread) ------------------------------------

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` on the event loop, from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def show_message(
        self, text: str, kind: types.MessageType | MessageLevel = types.MessageType.Warning
    ) -> None:
        """`window/showMessage`; LSP-free callers pass "error", "warning" or "info"."""
        if isinstance(kind, str):
            kind = _MESSAGE_TYPES[kind]
        params = types.ShowMessageParams(type=kind, message=f"ouzel: {text}")
        self.call_soon(self.server.window_show_message, params)

    def log_to_client(self, level: int, text: str) -> None:
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
        self.call_soon(self.server.window_log_message, params)

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        """Start background work owned by this session; failures are logged, not raised."""
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)

        def done(finished: asyncio.Task[Any]) -> None:
            self._tasks.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                log.error("background task %s failed", name, exc_info=finished.exception())

        task.add_done_callback(done)
        return task

    def cancel_background(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    @contextmanager
    def progress(self, title: str, cancellable: bool = False) -> Iterator[ProgressReporter]:
        """`$/progress` begin/report/end around long work (a no-op if unsupported)."""
        reporter = ProgressReporter(self, title, cancellable)
        reporter.begin()
        try:
            yield reporter
        finally:
            reporter.end()


class ProgressReporter:
    """Work-done progress; each method may be called from any thread.

    The LSP spec says a server-created token may be used only after the client answered
    `window/workDoneProgress/create`, so reports made before that are held back.
    """

    _counter = 0

    def __init__(self, session: Session, title: str, cancellable: bool) -> None:
        ProgressReporter._counter += 1
        self.session = session
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
        progress = self.session.server.work_done_progress

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
        progress = self.session.server.work_done_progress
        if isinstance(value, types.WorkDoneProgressEnd):
            progress.end(self.token, value)
        else:
            progress.report(self.token, value)
