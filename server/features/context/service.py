"""The context engine bound to sessions: documents in, packed context and prompts out.

`server/app.py` builds one `SessionContext` per session: its document events feed the
recent-code buffer and Jedi's background analysis, and `provide` is the completion
pipeline's `ContextProvider`. Process-wide parts (the Jedi worker, file and snippet caches,
tokenizers) live in one `ContextService`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ouzel.indexer.languages import is_python
from ouzel.inference import catalog
from ouzel.inference.templates import ContextSnippet, PromptTemplate, detect_template, line_comment
from ouzel.server.documents import Document
from ouzel.server.features.completion import CompletionEngine
from ouzel.server.features.context.engine import ContextEngine, EngineOptions, Retrieval
from ouzel.server.features.context.files import FileTexts, SecretGuard
from ouzel.server.features.context.index_access import IndexRetrieval
from ouzel.server.features.context.model import ContextPart, ContextRequest, ContextResult
from ouzel.server.features.context.pack import Block, Packer, Renderer
from ouzel.server.features.context.python_defs import JediService, default_sys_paths
from ouzel.server.features.context.recent import RecentBuffer
from ouzel.server.features.context.snippets import SnippetCache
from ouzel.server.features.context.tokens import (
    CharEstimateCounter,
    LlamaVocabCounter,
    TokenCounter,
    counter_for_model,
    embedded_model_path,
)
from ouzel.server.session import Session, Snapshot
from ouzel.server.settings import ModelProfile, Settings

if TYPE_CHECKING:
    from ouzel.indexer.index import WorkspaceIndex
    from ouzel.inference.templates import Window

log = logging.getLogger("ouzel.context.service")

ANALYZE_DEBOUNCE_S = 0.4  # Jedi re-reads a changed file after this pause in typing
CHARS_PER_TOKEN = 3.5  # to guess which lines the prompt's own window will show
NOTE_NO_MODEL = "the completion model is loading or unavailable (see ouzel/status)"


# --- the model's tokenizer and format ----------------------------------------------------


def inline_profile(settings: Settings) -> ModelProfile | None:
    """The first model profile that serves ghost text."""
    for name in settings.routing.inline_completion:
        profile = settings.models.get(name)
        if profile is not None:
            return profile
    return None


@dataclass(frozen=True)
class ModelFormat:
    """How to count and render for the model that will read the prompt."""

    counter: TokenCounter
    template: PromptTemplate


def local_model_file(profile: ModelProfile) -> Path | None:
    """The GGUF a llama.cpp profile loads (as `inference.profiles` resolves it), if present."""
    if profile.model_path:
        return Path(profile.model_path).expanduser()
    name = profile.model or catalog.default_model()
    if not name or name == catalog.EMBEDDED:
        return embedded_model_path()
    try:
        return catalog.model_path(name)
    except (catalog.CatalogError, OSError, ValueError):
        return None


def model_format(settings: Settings) -> ModelFormat:
    """The tokenizer and prompt template of the ghost-text model (loads a vocabulary)."""
    profile = inline_profile(settings)
    if profile is None or profile.backend != "llama_cpp":
        name = profile.model if profile is not None else ""
        override = profile.template if profile is not None else "auto"
        return ModelFormat(
            CharEstimateCounter(), detect_template({"general.name": name or ""}, None, override)
        )
    path = local_model_file(profile)
    if path is None:  # the model is not installed: its loader reports that to the user
        return ModelFormat(CharEstimateCounter(), detect_template({}, None, profile.template))
    counter = counter_for_model(path)
    if not isinstance(counter, LlamaVocabCounter):
        return ModelFormat(counter, detect_template({}, None, profile.template))
    from ouzel.inference.llama_cpp import fim_token_texts

    metadata = counter.metadata()
    template = detect_template(metadata, fim_token_texts(counter.llama), profile.template)
    return ModelFormat(counter, template)


def template_renderer(template: PromptTemplate, comment: str) -> Renderer:
    """Blocks rendered exactly as the completion prompt renders repository snippets."""

    def render(blocks: Sequence[Block]) -> str:
        snippets = [ContextSnippet(b.path, b.text, b.source) for b in blocks]
        return template.render("", "", "", snippets, comment)

    return render


# --- process-wide ------------------------------------------------------------------------


class ContextService:
    """What every session shares: the Jedi worker, caches, packers per model format."""

    def __init__(self) -> None:
        self.jedi = JediService()
        self.files = FileTexts()
        self.snippets = SnippetCache()
        self.sys_paths = default_sys_paths()
        self._packers: dict[tuple[str, str, str], Packer] = {}

    def packer(self, form: ModelFormat, comment: str) -> Packer:
        key = (form.counter.name, form.template.family, comment)
        packer = self._packers.get(key)
        if packer is None:
            packer = Packer(form.counter, template_renderer(form.template, comment))
            self._packers[key] = packer
        return packer

    def close(self) -> None:
        self.jedi.close()


# --- per session ---------------------------------------------------------------------------


@dataclass
class ContextReport:
    """What `ouzel/context` shows: the exact prompt and where each part came from."""

    prompt: str | None
    template: str
    parts: list[ContextPart]
    result: ContextResult
    window: Window | None = None
    note: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)


class SessionContext:
    def __init__(
        self,
        session: Session,
        shared: ContextService,
        indexes: Callable[[], list[WorkspaceIndex]],
    ) -> None:
        self.session = session
        self.shared = shared
        self._indexes = indexes  # the ready indexes of the session's folders
        self.recent = RecentBuffer(allowed=self._allowed)
        # Each workspace folder's secret rules guard its own files (multi-root).
        self._guards: dict[Path, SecretGuard] = {}
        self._fallback = SecretGuard([], ())  # files outside every folder
        self._formats: dict[str, ModelFormat] = {}  # by the ghost-text profile
        self._engines: dict[tuple[Path | None, str], ContextEngine] = {}
        self._analyze_later: dict[str, asyncio.TimerHandle] = {}
        self.requests = 0
        self.last_ms = 0.0
        self._warming: asyncio.Future[Any] | None = None
        self.configure(session.settings)

    def configure(self, settings: Settings) -> None:
        """Settings or folders changed: new guards; new engines on the next request."""
        session = self.session
        self._guards = {
            root.resolve(): SecretGuard([root], session.settings_for(root).index.secret_globs)
            for root in session.roots
        }
        self._fallback = SecretGuard(session.roots, settings.index.secret_globs)
        self.recent.capacity = settings.context.recent_regions
        self.recent.chunk_lines = settings.context.recent_region_lines
        self._formats.clear()  # the model may have changed: read its vocabulary again
        self._engines.clear()

    def close(self) -> None:
        for handle in self._analyze_later.values():
            handle.cancel()
        self._analyze_later.clear()

    # --- configuration ---------------------------------------------------------------------

    def guard(self, root: Path | None) -> SecretGuard:
        """The secret guard for a request from folder `root`: every path is judged by its
        own folder's rules, paths outside every folder by `root`'s."""
        fallback = self._guards.get(root.resolve(), self._fallback) if root else self._fallback
        return FolderGuard(self._guards, fallback)

    def _allowed(self, path: Path | None) -> bool:
        return self.guard(None).allowed(path)

    def engine(self, snap: Snapshot) -> ContextEngine:
        """The engine for the snapshot's folder and model (built on a worker thread: it may
        load a tokenizer)."""
        form = self.model_format(snap.settings)
        key = (snap.root, _format_key(snap.settings))
        engine = self._engines.get(key)
        if engine is None:
            engine = ContextEngine(
                self.shared.jedi,
                self.recent,
                self.shared.packer(form, "#"),
                self.guard(snap.root),
                self.shared.files,
                retrieval_for=self._retrieval,
                sys_paths=self.shared.sys_paths,
            )
            engine.snippets = self.shared.snippets
            self._engines[key] = engine
        return engine

    def model_format(self, settings: Settings) -> ModelFormat:
        key = _format_key(settings)
        form = self._formats.get(key)
        if form is None:
            form = self._formats[key] = model_format(settings)
        return form

    def _retrieval(self, root: Path | None) -> Retrieval | None:
        if root is None:  # a file outside the workspace folders: no index is its own
            return None
        resolved = root.resolve()
        for index in self._indexes():
            if index.root == resolved:
                return IndexRetrieval(index)
        return None

    # --- document events (on the event loop) -------------------------------------------

    def document_changed(self, kind: str, doc: Document, previous: Document | None) -> None:
        self.recent.on_document(kind, doc, previous)
        if kind == "close":
            self.shared.jedi.forget(doc.uri)
            handle = self._analyze_later.pop(doc.uri, None)
            if handle is not None:
                handle.cancel()
            return
        if kind == "open":
            self._warm_up(doc)
            self._prepare(doc.uri)
            return
        handle = self._analyze_later.pop(doc.uri, None)
        if handle is not None:
            handle.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (unit tests driving the store by hand)
            return
        self._analyze_later[doc.uri] = loop.call_later(ANALYZE_DEBOUNCE_S, self._prepare, doc.uri)

    def _warm_up(self, doc: Document) -> None:
        """At the first open document: load the tokenizer off the event loop, so the first
        completion does not wait for it (a session that opens nothing pays nothing)."""
        if self._warming is not None or self._engines:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a test driving the store by hand)
            return
        snap = self.session.snapshot(doc)
        self._warming = self.session.spawn(asyncio.to_thread(self.engine, snap), "context-engine")

    def _prepare(self, uri: str) -> None:
        """Jedi's background analysis of the document's newest version."""
        self._analyze_later.pop(uri, None)
        doc = self.session.documents.find(uri)
        if doc is None or not is_python(doc.language_id, doc.uri):
            return
        snap = self.session.snapshot(doc)
        if snap.path is None or not self._allowed(snap.path):
            return
        # Built off the event loop by the first request or at start.
        engine = self._engines.get((snap.root, _format_key(snap.settings)))
        if engine is not None:
            engine.prepare(uri, snap.path, doc.text, doc.version, snap.root)
        else:
            self.shared.jedi.analyze(uri, snap.path, doc.text, doc.version, snap.root)

    # --- requests ----------------------------------------------------------------------------

    @staticmethod
    def request(snap: Snapshot, offset: int) -> ContextRequest:
        doc = snap.document
        return ContextRequest(
            doc.uri, snap.path, doc.language_id, doc.version, doc.text, offset, snap.root
        )

    @staticmethod
    def options(settings: Settings) -> EngineOptions:
        context = settings.context
        return EngineOptions(
            budget=context.budget_tokens,
            jedi_cap_s=context.jedi_timeout_ms / 1000,
            strategies=tuple(context.sources),
        )

    async def gather(self, snap: Snapshot, offset: int, exact_parts: bool = False) -> ContextResult:
        """Packed repository context for a cursor in the snapshot's document."""
        request = self.request(snap, offset)
        doc, settings = snap.document, snap.settings
        if not settings.context.enabled:
            return ContextResult([], 0, 0, skipped="context is turned off (context.enabled)")
        options = self.options(settings)
        # Other open documents as they are now: never an older version of any of them.
        documents = {
            path: other.text
            for other in self.session.documents.all()
            if (path := self.session.uri_to_path(other.uri)) is not None
        }
        window = window_guess(doc, offset, settings)
        comment = line_comment(doc.language_id, doc.uri)

        def run() -> ContextResult:
            engine = self.engine(snap)
            packer = self.shared.packer(self.model_format(settings), comment)
            return engine.gather(request, options, window, documents, exact_parts, packer)

        started = time.perf_counter()
        result = await asyncio.to_thread(run)
        self.requests += 1
        self.last_ms = (time.perf_counter() - started) * 1000
        if request.path is not None and result.skipped is None:
            cursor_line = doc.text.count("\n", 0, offset)
            self.recent.touch(doc.uri, request.path, cursor_line, doc.line_count())
        return result

    async def settle(self, snap: Snapshot, offset: int, wait_s: float) -> None:
        """Wait for Jedi's analysis of the snapshot and its look-ups at the cursor, as the
        next keystroke in an editor would find them (the CLI, which has no next keystroke)."""
        doc = snap.document
        if snap.path is None or not is_python(doc.language_id, doc.uri):
            return
        if not self.guard(snap.root).allowed(snap.path):
            return

        def analyze() -> None:
            engine = self.engine(snap)
            engine.prepare(doc.uri, snap.path, doc.text, doc.version, snap.root)
            self.shared.jedi.analyze(doc.uri, snap.path, doc.text, doc.version, snap.root).result(
                wait_s
            )

        await asyncio.to_thread(analyze)
        await self.gather(snap, offset)  # starts Jedi's look-ups at the cursor
        await asyncio.to_thread(self.shared.jedi.idle, wait_s)

    async def provide(self, snap: Snapshot, offset: int) -> Sequence[ContextSnippet]:
        """The completion pipeline's `ContextProvider`: snippets, packed, in prompt order."""
        result = await self.gather(snap, offset)
        return [ContextSnippet(p.display_path, p.text, p.source) for p in result.parts]

    async def inspect(
        self, snap: Snapshot, offset: int, pipeline: CompletionEngine
    ) -> ContextReport:
        """`ouzel/context`: the context, and the exact prompt `pipeline` would send."""
        started = time.perf_counter()
        result = await self.gather(snap, offset, exact_parts=True)
        snippets = [ContextSnippet(p.display_path, p.text, p.source) for p in result.parts]
        template = self.model_format(snap.settings).template.family
        try:
            backend = await pipeline.backend_source("inline_completion", snap.settings)
            plan = pipeline.build_plan(backend, snap, offset, snippets) if backend else None
        except Exception as exc:  # the model failed to load, …: still show the context
            log.warning("no prompt for ouzel/context: %s", exc)
            return ContextReport(None, template, result.parts, result, note=str(exc))
        timings = dict(result.timings_ms)
        timings["prompt"] = round((time.perf_counter() - started) * 1000, 2)
        if plan is None:
            note = (
                NOTE_NO_MODEL
                if backend is None
                else "no completion is made at this cursor (ouzel suggests at the end of a "
                "line or on an empty one)"
            )
            return ContextReport(None, template, result.parts, result, note=note)
        kept = set(plan.snippets)
        parts = [
            p for p in result.parts if ContextSnippet(p.display_path, p.text, p.source) in kept
        ]
        return ContextReport(
            plan.request.prompt, plan.template, parts, result, plan.window, timings_ms=timings
        )

    def status(self, settings: Settings) -> dict[str, Any]:
        context = settings.context
        return {
            "enabled": context.enabled,
            "sources": list(context.sources),
            "budgetTokens": context.budget_tokens,
            "requests": self.requests,
            "lastMs": round(self.last_ms, 1),
            "recentRegions": len(self.recent.regions()),
            "jediJobs": self.shared.jedi.busy(),
        }


def window_guess(doc: Document, offset: int, settings: Settings) -> tuple[int, int]:
    """Lines the prompt's own window will likely show (its budget is what context leaves)."""
    chars = int(
        (settings.completion.prompt_tokens - settings.context.budget_tokens) * CHARS_PER_TOKEN
    )
    first_offset = max(0, offset - chars)
    first = doc.text.count("\n", 0, first_offset)
    last = doc.text.count("\n", 0, offset) + 2
    return first, last


def _format_key(settings: Settings) -> str:
    """Settings that decide the ghost-text model's tokenizer and template."""
    profile = inline_profile(settings)
    return profile.model_dump_json() if profile is not None else ""


class FolderGuard(SecretGuard):
    """Each path judged by the secret rules of its own workspace folder (multi-root);
    paths outside every folder by `fallback` (the requesting folder's rules)."""

    def __init__(self, guards: dict[Path, SecretGuard], fallback: SecretGuard) -> None:
        super().__init__(fallback.roots, fallback.globs)
        self._guards = sorted(guards.items(), key=lambda item: len(str(item[0])), reverse=True)
        self._fallback = fallback

    def is_secret(self, path: Path | None) -> bool:
        if path is None:
            return False
        for candidate in {path, path.resolve()}:
            if self._owner(candidate).is_secret(candidate):
                return True
        return False

    def _owner(self, path: Path) -> SecretGuard:
        for root, guard in self._guards:
            if path.is_relative_to(root):
                return guard
        return self._fallback
