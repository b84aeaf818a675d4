"""One editor connection's state: open documents, settings, folders, the client.

`Session` holds what belongs to one connection. Its features (model choice, completion,
context) and the process-wide `Engine` they share are built and attached by the
composition root, `server/app.py`; read that file to see what a session is made of.
The session talks to its editor through a `Client` (`server/client.py`: LSP messages,
`$/progress`); a headless session (`HeadlessClient`, the CLI) runs the same pipeline
with messages going to the log. This module knows nothing of LSP, so features may use it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ouzel.server.convert import Encoding
from ouzel.server.documents import Document, DocumentStore, file_path
from ouzel.server.settings import Settings

if TYPE_CHECKING:
    from ouzel.server.app import Engine
    from ouzel.server.features.agent import AgentService
    from ouzel.server.features.completion import CompletionEngine
    from ouzel.server.features.context.service import SessionContext
    from ouzel.server.features.models import SessionModels
    from ouzel.server.server import OuzelServer

log = logging.getLogger("ouzel.server.session")

MessageLevel = Literal["error", "warning", "info"]
_LOG_LEVELS: dict[str, int] = {
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
}


class Progress(Protocol):
    """Work-done progress of one long task; each method may be called from any thread."""

    def begin(self) -> None: ...

    def report(self, message: str, percentage: int | None = None) -> None: ...

    def end(self, message: str | None = None) -> None: ...


class Client(Protocol):
    """The editor at the other end of a session, as features see it."""

    @property
    def encoding(self) -> Encoding: ...

    def supports(self, dotted: str) -> bool: ...

    def show_message(self, text: str, level: MessageLevel) -> None: ...

    def log(self, level: int, text: str) -> None: ...

    def progress(self, title: str, cancellable: bool) -> Progress: ...


class _NoProgress:
    def begin(self) -> None:
        pass

    def report(self, message: str, percentage: int | None = None) -> None:
        pass

    def end(self, message: str | None = None) -> None:
        pass


class HeadlessClient:
    """No editor (the CLI): code point positions, no capabilities, messages to the log."""

    encoding: Encoding = "utf-32"

    def supports(self, dotted: str) -> bool:
        return False

    def show_message(self, text: str, level: MessageLevel) -> None:
        log.log(_LOG_LEVELS[level], "%s", text)

    def log(self, level: int, text: str) -> None:
        pass  # already in the log

    def progress(self, title: str, cancellable: bool) -> Progress:
        return _NoProgress()


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
    agent: AgentService

    def __init__(self, client: Client, engine: Engine, server: OuzelServer | None = None) -> None:
        self.client = client
        self.server = server  # for LSP handlers only; None when headless
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
    def lsp_server(self) -> OuzelServer:
        """The LSP server, for LSP handlers: they only run in a session that has one."""
        if self.server is None:
            raise RuntimeError("this session is headless: it has no LSP server")
        return self.server

    @property
    def encoding(self) -> Encoding:
        return self.client.encoding

    def supports(self, dotted: str) -> bool:
        """True when the client's capability at `dotted` (snake_case attributes) is truthy."""
        return self.client.supports(dotted)

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
        return file_path(uri)

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

    def show_message(self, text: str, kind: MessageLevel = "warning") -> None:
        """`window/showMessage` (headless: the log); safe from any thread."""
        self.client.show_message(text, kind)

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
    def progress(self, title: str, cancellable: bool = False) -> Iterator[Progress]:
        """`$/progress` begin/report/end around long work (a no-op if unsupported)."""
        reporter = self.client.progress(title, cancellable)
        reporter.begin()
        try:
            yield reporter
        finally:
            reporter.end()
