"""One editor connection's state: open documents, settings, folders, the client.

`Session` holds what belongs to one connection. Its features (model choice, completion,
context) and the process-wide `Engine` they share are built and attached by the
composition root, `server/app.py`; read that file to see what a session is made of.
A session without a server (`server=None`) is headless: the CLI uses it to run the same
pipeline as the editor does, with messages going to the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lsprotocol import types
from pygls.uris import to_fs_path

from ouzel.server.convert import Encoding, normalize_encoding
from ouzel.server.documents import Document, DocumentStore
from ouzel.server.settings import Settings

if TYPE_CHECKING:
    from ouzel.server.app import Engine
    from ouzel.server.features.completion import CompletionEngine
    from ouzel.server.features.context.service import SessionContext
    from ouzel.server.features.models import SessionModels
    from ouzel.server.server import OuzelServer

log = logging.getLogger("ouzel.server.session")

MessageLevel = Literal["error", "warning", "info"]
_MESSAGE_TYPES: dict[str, types.MessageType] = {
    "error": types.MessageType.Error,
    "warning": types.MessageType.Warning,
    "info": types.MessageType.Info,
}
_LOG_LEVELS: dict[types.MessageType, int] = {
    types.MessageType.Error: logging.ERROR,
    types.MessageType.Warning: logging.WARNING,
    types.MessageType.Info: logging.INFO,
    types.MessageType.Log: logging.DEBUG,
}


@dataclass(frozen=True)
class Snapshot:
    """What an async handler works on, taken before its first await (as ruff's server
    does): one version of the document, the settings of the folder it belongs to, the
    client's position encoding. Edits and settings changes that arrive meanwhile make a
    new snapshot for the next request; they never change this one's answer halfway."""

    document: Document
    settings: Settings
    encoding: Encoding
    path: Path | None  # None for a document that is not a file (untitled:, …)
    root: Path | None  # its workspace folder, None outside every folder

    @property
    def uri(self) -> str:
        return self.document.uri


class Session:
    # Features, attached by `app.build_session` right after construction.
    models: SessionModels
    completion: CompletionEngine
    context: SessionContext

    def __init__(self, server: OuzelServer | None, engine: Engine) -> None:
        self.server = server  # None: headless (the CLI), no client to talk to
        self.engine = engine
        self.documents = DocumentStore()
        # The session's settings (the first folder's, or no folder's) for what belongs to
        # no file; `settings_for(path)` gives each folder's own.
        self.settings = Settings()
        self.folder_settings: dict[Path, Settings] = {}  # workspace folder -> its settings
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
        # Sections of `ouzel/status`: name -> function of the settings in force (the
        # session's, or a document folder's) returning a JSON-able dict.
        self.status_sections: dict[str, Callable[[Settings], dict[str, Any]]] = {}
        # Called once the client finished `initialized` (settings pulled) / when it ends.
        self.started: list[Callable[[], None]] = []
        self.ended: list[Callable[[], None]] = []

    # --- facts about the connection ------------------------------------------------------

    @property
    def encoding(self) -> Encoding:
        if self.server is None:
            return "utf-32"  # headless: positions are code points
        return normalize_encoding(self.server.protocol.position_encoding)

    @property
    def capabilities(self) -> types.ClientCapabilities:
        if self.server is None:
            return types.ClientCapabilities()
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

    def settings_for(self, path: Path | None) -> Settings:
        """The settings that apply to `path`: those of its workspace folder (its
        `.ouzel/config.toml` over the user's), else the session's."""
        root = self.root_for(path) if path is not None else None
        if root is None:
            return self.settings
        return self.folder_settings.get(root, self.settings)

    def snapshot(self, doc: Document | str) -> Snapshot:
        """A snapshot of the open document `doc` (a URI: its current version)."""
        document = self.documents.get(doc) if isinstance(doc, str) else doc
        path = self.uri_to_path(document.uri)
        root = self.root_for(path) if path is not None else None
        return Snapshot(document, self.settings_for(path), self.encoding, path, root)

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
        if self.server is None:
            log.log(_LOG_LEVELS[kind], "%s", text)
            return
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
        if self.server is not None:
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
        assert self.session.server is not None  # enabled only with a client
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
        assert self.session.server is not None
        progress = self.session.server.work_done_progress
        if isinstance(value, types.WorkDoneProgressEnd):
            progress.end(self.token, value)
        else:
            progress.report(self.token, value)
