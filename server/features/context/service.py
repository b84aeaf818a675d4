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
from ouzel.server.session import Session
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


def model_format(settings: Settings) -> ModelFormat:
    """The tokenizer and prompt template of the ghost-text model (loads a vocabulary)."""
    profile = inline_profile(settings)
    if profile is None or profile.backend != "llama_cpp":
        name = profile.model if profile is not None else ""
        override = profile.template if profile is not None else "auto"
        return ModelFormat(
            CharEstimateCounter(), detect_template({"general.name": name or ""}, None, override)
        )
    path = Path(profile.model_path).expanduser() if profile.model_path else embedded_model_path()
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
        self._guard: SecretGuard | None = None
        self._format: ModelFormat | None = None
        self._engine: ContextEngine | None = None
        self._analyze_later: dict[str, asyncio.TimerHandle] = {}
        self.requests = 0
        self.last_ms = 0.0
        self._warming: asyncio.Future[Any] | None = None
        self.configure(session.settings)

    def configure(self, settings: Settings) -> None:
        """Settings or folders changed: new guard, new engine on the next request."""
        self._configure(settings)

    def close(self) -> None:
        for handle in self._analyze_later.values():
            handle.cancel()
        self._analyze_later.clear()

    # --- configuration ---------------------------------------------------------------------

    def _configure(self, settings: Settings) -> None:
        self._guard = SecretGuard(self.session.roots, settings.index.secret_globs)
        self.recent.capacity = settings.context.recent_regions
        self.recent.chunk_lines = settings.context.recent_region_lines
        self._format = None  # the model may have changed: read its vocabulary again
        self._engine = None

    def _allowed(self, path: Path | None) -> bool:
        guard = self._guard
        return guard is None or guard.allowed(path)

    def engine(self) -> ContextEngine:
        """The engine for the current settings (built on a worker thread: it may load a
        tokenizer)."""
        engine = self._engine
        if engine is None:
            form = self.model_format()
            assert self._guard is not None
            engine = ContextEngine(
                self.shared.jedi,
                self.recent,
                self.shared.packer(form, "#"),
                self._guard,
                self.shared.files,
                retrieval_for=self._retrieval,
                sys_paths=self.shared.sys_paths,
            )
            engine.snippets = self.shared.snippets
            self._engine = engine
        return engine

    def model_format(self) -> ModelFormat:
        if self._format is None:
            self._format = model_format(self.session.settings)
        return self._format

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
            self._warm_up()
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

    def _warm_up(self) -> None:
        """At the first open document: load the tokenizer off the event loop, so the first
        completion does not wait for it (a session that opens nothing pays nothing)."""
        if self._warming is not None or self._engine is not None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a test driving the store by hand)
            return
        self._warming = self.session.spawn(asyncio.to_thread(self.engine), "context-engine")

    def _prepare(self, uri: str) -> None:
        """Jedi's background analysis of the document's newest version."""
        self._analyze_later.pop(uri, None)
        doc = self.session.documents.find(uri)
        path = self.session.uri_to_path(uri)
        if doc is None or path is None or not self._is_python(doc) or not self._allowed(path):
            return
        root = self.session.root_for(path)
        engine = self._engine  # built off the event loop by the first request or at start
        if engine is not None:
            engine.prepare(uri, path, doc.text, doc.version, root)
        else:
            self.shared.jedi.analyze(uri, path, doc.text, doc.version, root)

    @staticmethod
    def _is_python(doc: Document) -> bool:
        return doc.language_id in ("python", "pyi") or doc.uri.endswith((".py", ".pyi"))

    # --- requests ----------------------------------------------------------------------------

    def request(self, doc: Document, offset: int) -> ContextRequest:
        path = self.session.uri_to_path(doc.uri)
        root = self.session.root_for(path) if path is not None else None
        return ContextRequest(doc.uri, path, doc.language_id, doc.version, doc.text, offset, root)

    def options(self, budget: int | None = None) -> EngineOptions:
        settings = self.session.settings.context
        return EngineOptions(
            budget=settings.budget_tokens if budget is None else budget,
            jedi_cap_s=settings.jedi_timeout_ms / 1000,
            strategies=tuple(settings.sources),
        )

    async def gather(self, doc: Document, offset: int, exact_parts: bool = False) -> ContextResult:
        """Packed repository context for a cursor in the snapshot `doc`."""
        request = self.request(doc, offset)
        settings = self.session.settings
        if not settings.context.enabled:
            return ContextResult([], 0, 0, skipped="context is turned off (context.enabled)")
        options = self.options()
        # Other open documents as they are now: never an older version of any of them.
        documents = {
            path: other.text
            for other in self.session.documents.all()
            if (path := self.session.uri_to_path(other.uri)) is not None
        }
        window = self._window_guess(doc, offset)
        comment = line_comment(doc.language_id, doc.uri)

        def run() -> ContextResult:
            engine = self.engine()
            packer = self.shared.packer(self.model_format(), comment)
            return engine.gather(request, options, window, documents, exact_parts, packer)

        started = time.perf_counter()
        result = await asyncio.to_thread(run)
        self.requests += 1
        self.last_ms = (time.perf_counter() - started) * 1000
        if request.path is not None and result.skipped is None:
            cursor_line = doc.text.count("\n", 0, offset)
            self.recent.touch(doc.uri, request.path, cursor_line, doc.line_count())
        return result

    def _window_guess(self, doc: Document, offset: int) -> tuple[int, int]:
        """Lines the prompt's own window will likely show (its budget is what context leaves)."""
        settings = self.session.settings
        chars = int(
            (settings.completion.prompt_tokens - settings.context.budget_tokens) * CHARS_PER_TOKEN
        )
        first_offset = max(0, offset - chars)
        first = doc.text.count("\n", 0, first_offset)
        last = doc.text.count("\n", 0, offset) + 2
        return first, last

    async def provide(self, doc: Document, offset: int) -> Sequence[ContextSnippet]:
        """The completion pipeline's `ContextProvider`: snippets, packed, in prompt order."""
        result = await self.gather(doc, offset)
        return [ContextSnippet(p.display_path, p.text, p.source) for p in result.parts]

    async def inspect(
        self, doc: Document, offset: int, pipeline: CompletionEngine
    ) -> ContextReport:
        """`ouzel/context`: the context, and the exact prompt `pipeline` would send."""
        started = time.perf_counter()
        result = await self.gather(doc, offset, exact_parts=True)
        snippets = [ContextSnippet(p.display_path, p.text, p.source) for p in result.parts]
        template = self.model_format().template.family
        try:
            backend = await pipeline.backend_source("inline_completion")
            plan = pipeline.build_plan(backend, doc, offset, snippets) if backend else None
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

    def status(self) -> dict[str, Any]:
        settings = self.session.settings.context
        return {
            "enabled": settings.enabled,
            "sources": list(settings.sources),
            "budgetTokens": settings.budget_tokens,
            "requests": self.requests,
            "lastMs": round(self.last_ms, 1),
            "recentRegions": len(self.recent.regions()),
        }
