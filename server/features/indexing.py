"""The engine-wide index service: one `WorkspaceIndex` per workspace root, shared by sessions.

`server/app.py` attaches each session when it starts and detaches it when it ends. For
each session the service opens (or joins) the index of every workspace folder and feeds
it: open buffers
(`DocumentStore.on_change`), saves (`Session.saved`), changes on disk (watchfiles in the
indexer, plus `workspace/didChangeWatchedFiles`), folder changes and settings changes.
All index work runs on the scheduler's thread and in parser processes; the hooks only
queue requests, so the event loop never waits for the index. Progress of full updates goes
to every attached session as `$/progress`; `status(session)` is the "index" section of
`ouzel/status`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ouzel.indexer.config import IndexConfig
from ouzel.indexer.scheduler import IndexScheduler
from ouzel.server.documents import Document
from ouzel.server.session import Progress, Session
from ouzel.server.settings import IndexSettings, Settings

if TYPE_CHECKING:
    # LanceDB, Arrow and the grammars load on worker threads, never on the event loop.
    from ouzel.indexer.index import Progress as IndexProgress
    from ouzel.indexer.index import UpdateSummary, WorkspaceIndex
    from ouzel.indexer.search import SymbolHit
    from ouzel.indexer.symbols import SymbolNode

log = logging.getLogger("ouzel.server.indexing")

BUFFER_DEBOUNCE_S = 0.5
PROGRESS_EVERY_S = 0.2
WORKSPACE_SYMBOL_LIMIT = 100


def index_config(settings: IndexSettings) -> IndexConfig:
    return IndexConfig(
        location=settings.location,
        max_file_bytes=settings.max_file_bytes,
        exclude=list(settings.exclude),
        secret_globs=list(settings.secret_globs),
        watch=settings.watch,
        watch_debounce_ms=settings.watch_debounce_ms,
    )


def too_broad(root: Path) -> str:
    """Why a folder is not indexed as a workspace ("" when it may be)."""
    resolved = root.resolve()
    if resolved == Path(resolved.anchor):
        return "the file system root is not indexed"
    if resolved == Path.home().resolve():
        return "the home folder is not indexed (open a project folder instead)"
    return ""


class _Broadcast:
    """`$/progress` of one root's updates, sent to every session using that root."""

    def __init__(self, entry: _Root) -> None:
        self.entry = entry
        self._reporters: list[Progress] = []
        self._last = 0.0

    def begin(self, title: str) -> None:
        self._reporters = [s.client.progress(title, False) for s in list(self.entry.sessions)]
        for reporter in self._reporters:
            reporter.begin()

    def report(self, progress: IndexProgress) -> None:
        now = time.monotonic()
        if now - self._last < PROGRESS_EVERY_S and progress.done < progress.total:
            return
        self._last = now
        if progress.phase == "indexing" and progress.total:
            message = f"{progress.done}/{progress.total} files"
            percentage: int | None = min(99, progress.done * 100 // progress.total)
        else:
            message, percentage = progress.phase, None
        for reporter in self._reporters:
            reporter.report(message, percentage)

    def end(self, summary: UpdateSummary) -> None:
        message = (
            f"{summary.indexed} files indexed, {summary.symbols} symbols in {summary.seconds:.1f} s"
        )
        if summary.errors:
            message += f"; {summary.errors} errors"
        for reporter in self._reporters:
            reporter.end(message)
        self._reporters = []
        self.entry.service.resend_buffers(self.entry)


@dataclass(eq=False)
class _Root:
    root: Path
    config: IndexConfig
    service: IndexService
    sessions: set[Session] = field(default_factory=set)
    scheduler: IndexScheduler | None = None

    def start(self) -> None:
        config, root = self.config, self.root

        def open_index() -> WorkspaceIndex:
            from ouzel.indexer.index import WorkspaceIndex

            return WorkspaceIndex(root, config)

        self.scheduler = IndexScheduler(
            open_index,
            root,
            watch_debounce_ms=config.watch_debounce_ms,
            text_debounce_s=BUFFER_DEBOUNCE_S,
            watch=config.watch,
            sink=_Broadcast(self),
        )
        self.scheduler.start(full=True)


class IndexService:
    def __init__(self) -> None:
        self._roots: dict[Path, _Root] = {}
        self._session_roots: dict[Session, set[Path]] = {}
        self._refused: dict[Path, str] = {}
        self._lock = threading.RLock()

    # --- sessions ----------------------------------------------------------------------------

    def attach(self, session: Session) -> None:
        """Index the session's folders and follow its buffers, saves and settings."""
        with self._lock:
            if session in self._session_roots:
                return
            self._session_roots[session] = set()
        session.documents.on_change(
            lambda kind, doc, _previous: self._document_changed(session, kind, doc)
        )
        session.saved.append(lambda uri: self._paths_changed(session, [uri]))
        session.folders_changed.append(
            lambda added, removed: self._folders_changed(session, added, removed)
        )
        session.settings_changed.append(lambda settings: self._settings_changed(session, settings))
        self._open_roots(session, session.roots)

    def detach(self, session: Session) -> None:
        with self._lock:
            roots = self._session_roots.pop(session, set())
        for root in roots:
            self._leave(session, root)

    def _open_roots(self, session: Session, roots: list[Path]) -> None:
        """Open (or join) the index of each root, configured by that root's own settings."""
        for root in roots:
            wanted = self._wanted(session, root)
            if wanted is None:
                continue
            reason = too_broad(root)
            if reason:
                log.warning("not indexing %s: %s", root, reason)
                self._refused[root] = reason
                continue
            with self._lock:
                if session not in self._session_roots:
                    return  # the session ended meanwhile
                entry = self._roots.get(root)
                if entry is None:
                    entry = self._roots[root] = _Root(root, wanted, self)
                    entry.sessions.add(session)
                    entry.start()
                else:
                    entry.sessions.add(session)
                self._session_roots[session].add(root)

    @staticmethod
    def _wanted(session: Session, root: Path) -> IndexConfig | None:
        """The index configuration `root`'s settings ask for (None: indexing is off)."""
        settings = session.settings_for(root).index
        return index_config(settings) if settings.enabled else None

    def _leave(self, session: Session, root: Path) -> None:
        with self._lock:
            entry = self._roots.get(root)
            if entry is None:
                return
            entry.sessions.discard(session)
            if entry.sessions:
                return
            del self._roots[root]
        self._stop(entry)

    @staticmethod
    def _stop(entry: _Root) -> None:
        scheduler = entry.scheduler
        if scheduler is not None:
            # Stopping waits for the current batch; do not hold up the caller.
            threading.Thread(target=scheduler.stop, name="ouzel-index-stop", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            entries = list(self._roots.values())
            self._roots.clear()
            self._session_roots.clear()
        for entry in entries:
            if entry.scheduler is not None:
                entry.scheduler.stop()

    # --- what feeds the index -----------------------------------------------------------------

    def _scheduler_for(self, session: Session, path: Path) -> IndexScheduler | None:
        root = session.root_for(path)
        with self._lock:
            entry = self._roots.get(root) if root is not None else None
            if entry is None or session not in entry.sessions:
                return None
            return entry.scheduler

    def _document_changed(self, session: Session, kind: str, doc: Document) -> None:
        path = session.uri_to_path(doc.uri)
        scheduler = self._scheduler_for(session, path) if path else None
        if scheduler is None or path is None:
            return
        if kind == "close":
            scheduler.forget_text(str(path))
        else:
            scheduler.request_text(str(path), doc.text)

    def _paths_changed(self, session: Session, uris: list[str]) -> None:
        for uri in uris:
            path = session.uri_to_path(uri)
            scheduler = self._scheduler_for(session, path) if path else None
            if scheduler is not None:
                scheduler.request_paths([str(path)])

    def files_changed(self, session: Session, uris: list[str]) -> None:
        """`workspace/didChangeWatchedFiles`: created, changed or deleted files."""
        self._paths_changed(session, uris)

    def _folders_changed(self, session: Session, added: list[Path], removed: list[Path]) -> None:
        for root in removed:
            with self._lock:
                self._session_roots.get(session, set()).discard(root)
            self._leave(session, root)
        self._open_roots(session, added)

    def _settings_changed(self, session: Session, settings: Settings) -> None:
        """Reopen the index of each folder whose own settings now ask for another one."""
        changed = []
        for root in session.roots:
            wanted = self._wanted(session, root)
            with self._lock:
                attached = root in self._session_roots.get(session, set())
                entry = self._roots.get(root) if attached else None
            if entry is not None and entry.config == wanted:
                continue
            if attached:
                with self._lock:
                    self._session_roots.get(session, set()).discard(root)
                self._leave(session, root)
            changed.append(root)
        self._open_roots(session, changed)

    def resend_buffers(self, entry: _Root) -> None:
        """After a full update, index open buffers again (they may differ from disk)."""
        scheduler = entry.scheduler
        if scheduler is None:
            return
        for session in list(entry.sessions):
            for doc in session.documents.all():
                path = session.uri_to_path(doc.uri)
                if path is not None and session.root_for(path) == entry.root:
                    scheduler.request_text(str(path), doc.text)

    # --- reading -----------------------------------------------------------------------------

    def indexes_for(self, session: Session) -> list[WorkspaceIndex]:
        with self._lock:
            roots = self._session_roots.get(session, set())
            entries = [self._roots[r] for r in roots if r in self._roots]
        return [e.scheduler.index for e in entries if e.scheduler and e.scheduler.index is not None]

    def schedulers_for(self, session: Session) -> list[IndexScheduler]:
        with self._lock:
            roots = self._session_roots.get(session, set())
            entries = [self._roots[r] for r in sorted(roots) if r in self._roots]
        return [e.scheduler for e in entries if e.scheduler is not None]

    def root_phases(self) -> dict[str, tuple[str, int]]:
        """Every open root's (phase, files indexed), for metrics."""
        with self._lock:
            entries = list(self._roots.values())
        phases: dict[str, tuple[str, int]] = {}
        for entry in entries:
            if entry.scheduler is not None:
                state = entry.scheduler.status()
                phases[str(entry.root)] = (
                    str(state.get("phase", "idle")),
                    int(state.get("files_indexed", state.get("filesIndexed", 0))),
                )
        return phases

    def status(self, session: Session, settings: Settings) -> dict[str, Any]:
        per_root = [_camel(s.status()) for s in self.schedulers_for(session)]
        refused = {str(r): why for r, why in self._refused.items() if r in session.roots}
        last_errors = [r["lastError"] for r in per_root if r.get("lastError")]
        phases = {r.get("phase", "idle") for r in per_root}
        result: dict[str, Any] = {
            "enabled": settings.index.enabled,
            "phase": next(
                (p for p in ("opening", "rebuilding", "scanning", "indexing") if p in phases),
                "idle",
            ),
            "filesIndexed": sum(int(r.get("filesIndexed", 0)) for r in per_root),
            "pending": sum(int(r.get("pending", 0)) for r in per_root),
            "errors": sum(int(r.get("errors", 0)) for r in per_root),
            "lastError": last_errors[-1] if last_errors else "",
            "symbols": sum(int(r.get("symbols", 0)) for r in per_root),
            "chunks": sum(int(r.get("chunks", 0)) for r in per_root),
            "roots": per_root,
        }
        if refused:
            result["notIndexed"] = refused
        return result


def _camel(value: Any) -> Any:
    if isinstance(value, dict):
        return {_camel_key(str(k)): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _camel_key(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# --- symbols for the handlers --------------------------------------------------------------


@dataclass(frozen=True)
class FoundSymbol:
    root: Path
    hit: SymbolHit

    @property
    def path(self) -> Path:
        return self.root / self.hit.path


def find_symbols(indexes: list[WorkspaceIndex], query: str, limit: int) -> list[FoundSymbol]:
    """Best symbols over every index (runs on a worker thread)."""
    from ouzel.indexer.search import search_symbols

    found = [
        FoundSymbol(index.root, hit)
        for index in indexes
        for hit in search_symbols(index, query, limit)
    ]
    found.sort(key=lambda f: -f.hit.score)
    return found[:limit]


def outline(text: str, language_id: str, path: str) -> list[SymbolNode]:
    """The symbols of a document's current text, nested (runs on a worker thread)."""
    from ouzel.indexer.extract import analyze
    from ouzel.indexer.languages import language_for_id
    from ouzel.indexer.symbols import nest

    language = language_for_id(language_id, path)
    data = text.encode("utf-8", errors="replace")
    return nest(analyze(data, language, 1 << 30, with_chunks=False).symbols)
