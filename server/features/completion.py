"""The ghost-text pipeline, free of LSP types.

    request → newest wins (older generation for the document cancelled)
            → type-through cache?            → answer at once
            → debounce (automatic triggers)  → backend (loaded on first use)
            → repository snippets (ContextProvider seam, time-capped)
            → prompt (completion_prompt.build_prompt)
            → generation (cancelled by a newer keystroke, didClose or $/cancelRequest)
            → dropped if the document moved on → post-processing → cache → telemetry
            → speculative: the suggestion after accepting this one, in the background

Background work (local models only, `CompletionRequest.background`): warm-ups evaluate
the prompt for a place with nothing generated (a file opened, editing paused, the cursor
rested: `ouzel/cursorRest`), so the first request there finds it in the KV cache; the
speculative suggestion lands in the type-through cache under the text the document will
have once the suggestion is accepted. One background job per session; a request the
cache cannot answer cancels it, and the backend preempts it for any other work.

One `CompletionEngine` per session, built by `server/app.py` with what it needs: where
backends come from (`SessionModels.backend_for`, process-wide backends and KV caches),
their prompt templates, the repository context and the telemetry file.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ouzel.inference.backend import Backend
from ouzel.inference.templates import ContextSnippet, PromptTemplate
from ouzel.inference.types import BackendError, CancelToken, CompletionResult
from ouzel.server.documents import Document
from ouzel.server.features.completion_cache import CachedSuggestion, TypeThroughCache
from ouzel.server.features.completion_post import postprocess
from ouzel.server.features.completion_prompt import PromptPlan, build_prompt
from ouzel.server.features.telemetry import Telemetry
from ouzel.server.session import Session, Snapshot
from ouzel.server.settings import Settings, TaskKind

log = logging.getLogger("ouzel.server.completion")

# Repository context for a cursor: (snapshot, offset) → snippets, most useful first (the
# session's `SessionContext.provide`).
ContextProvider = Callable[[Snapshot, int], Awaitable[Sequence[ContextSnippet]]]
# The loaded backend for a task kind under these settings, None when none can serve
# (`SessionModels.backend_for`).
BackendSource = Callable[[TaskKind, Settings], Awaitable[Backend | None]]
# The prompt template a backend's model expects (`SessionModels.template_for`).
TemplateSource = Callable[[Backend, Settings], PromptTemplate]

Kind = Literal["cold", "reused", "cache", "speculative"]
BackgroundKind = Literal["warm", "speculative"]
REUSED_SHARE = 0.5  # a request that found at least this share of its prompt cached is "reused"
SMALL_REST_S = 1.0


@dataclass(frozen=True)
class Suggestion:
    id: str
    text: str  # inserted at `offset`
    offset: int
    version: int
    kind: Kind
    latency_ms: float


@dataclass
class _Shown:
    """What telemetry needs to know about a suggestion when the user acts on it."""

    kind: Kind
    latency_ms: float
    chars: int
    language: str
    shown: bool = False


@dataclass
class _Background:
    """The session's one background job."""

    kind: BackgroundKind
    uri: str
    text: str  # the document text it works for (speculative: after the acceptance)
    token: CancelToken
    offset: int = -1  # where (a warm-up)
    task: asyncio.Future[None] | None = None


@dataclass
class CompletionEngine:
    session: Session
    backend_source: BackendSource  # unit tests give a fake backend
    template_for: TemplateSource
    telemetry: Telemetry | None = None
    context_provider: ContextProvider | None = None
    cache: TypeThroughCache = field(default_factory=TypeThroughCache)
    _pending: dict[str, CancelToken] = field(default_factory=dict)  # running, per document
    _recent: OrderedDict[str, _Shown] = field(default_factory=OrderedDict)
    # The (line, version) of each document's last model call: was the next one typed
    # on the same line, right after it?
    _last_call: dict[str, tuple[int, int]] = field(default_factory=dict)
    _background: _Background | None = None
    _idle: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    # (uri, version, offset) of the last place whose prompt went to the model (real
    # requests and warm-ups): warming it again would evaluate nothing new.
    _last_place: tuple[str, int, int] | None = None
    # What background work did: "warm", "warmed", "speculative", "speculated",
    # "preempted", "speculative_hit" (for tests, the debug log and `ouzel/status`).
    background_counts: Counter[str] = field(default_factory=Counter)
    # A request got a model: warm-ups on open and on an editing pause may use it (they
    # never load a model for a session that has not asked for ghost text).
    _model_seen: bool = False
    # The line of each document's last request that got the smaller prompt: a warm-up of
    # the full prompt there waits SMALL_REST_S first, so a short pause between keystrokes
    # does not swap the small prompt's tokens out of the cache for a warm-up cut short.
    _small_line: dict[str, int] = field(default_factory=dict)

    # --- the pipeline --------------------------------------------------------------------

    async def suggest(
        self, snap: Snapshot, offset: int, invoked: bool = False
    ) -> Suggestion | None:
        """A suggestion at `offset` of the snapshot's document, or None.

        Cancelling the calling task (`$/cancelRequest`) stops the generation.
        """
        started = time.perf_counter()
        doc = snap.document
        settings = snap.settings.completion
        if not settings.enabled:
            return None
        token = self._newest_wins(doc)
        try:
            hit = self.cache.lookup(doc.uri, doc.text, offset)
            if hit is not None:
                kind: Kind = "speculative" if hit.entry.speculative else "cache"
                if hit.entry.speculative and hit.typed == 0:
                    self.background_counts["speculative_hit"] += 1
                    # Accepted and continuing: the one after this, in the background.
                    self._speculate(snap, offset, hit.remaining, hit.entry.snippets)
                return self._served(
                    Suggestion(hit.entry.id, hit.remaining, offset, doc.version, kind, 0.0),
                    doc,
                    started,
                )
            self.cancel_background()  # the user went elsewhere: the model is needed now
            if not invoked and settings.debounce_ms:
                await asyncio.sleep(settings.debounce_ms / 1000)
            if token.cancelled:
                return None
            return await self._generate(snap, offset, token, started)
        except asyncio.CancelledError:
            token.cancel()
            raise
        finally:
            if self._pending.get(doc.uri) is token:
                del self._pending[doc.uri]

    def _newest_wins(self, doc: Document) -> CancelToken:
        previous = self._pending.get(doc.uri)
        if previous is not None:
            previous.cancel()
        token = self._pending[doc.uri] = CancelToken()
        return token

    async def _generate(
        self, snap: Snapshot, offset: int, token: CancelToken, started: float
    ) -> Suggestion | None:
        doc = snap.document
        backend = await self.backend_source("inline_completion", snap.settings)
        if backend is None or token.cancelled:
            return None
        self._model_seen = True
        snippets = await self._snippets(snap, offset)
        plan = self.build_plan(backend, snap, offset, snippets)
        if plan is None or token.cancelled:
            return None
        plan, small = self._fast_enough(backend, snap, offset, plan)
        if small:
            self._small_line[doc.uri] = doc.position(offset, "utf-32")[0]
        else:
            self._small_line.pop(doc.uri, None)
        self._last_place = (doc.uri, doc.version, offset)
        call = asyncio.ensure_future(backend.complete(plan.request, token))
        call.add_done_callback(self._model_call_recorder(doc, offset, plan, small))
        try:
            # Shielded: a cancelled request leaves the call to end at its next token, so
            # its (cancelled) result still reaches telemetry.
            result = await asyncio.shield(call)
        except BackendError as exc:
            log.warning("completion failed: %s", exc)
            return None
        except Exception:  # a bug, not the user's problem: no item, and a traceback in the log
            log.exception("completion failed")
            return None
        if token.cancelled or result.stop_reason == "cancelled":
            return None
        if not self._still_current(doc):
            log.debug("dropped a suggestion for version %d of %s", doc.version, doc.uri)
            return None
        text = postprocess(
            result.text,
            plan.cursor,
            plan.mode,
            snap.settings.completion.max_lines,
            truncated=result.stop_reason in ("length", "time"),
        )
        log.debug(
            "completion: %d prompt tokens (%d reused), %d generated, %s, %.0f ms; kept %d of %d chars",
            result.prompt_tokens,
            result.reused_tokens,
            result.generated_tokens,
            result.stop_reason,
            result.total_s * 1000,
            len(text),
            len(result.text),
        )
        if not text:
            return None
        latency_ms = (time.perf_counter() - started) * 1000
        suggestion = Suggestion(
            uuid.uuid4().hex[:16], text, offset, doc.version, _kind(result), latency_ms
        )
        self.cache.store(
            doc.uri,
            CachedSuggestion(
                suggestion.id, text, doc.text, offset, latency_ms, snippets=plan.snippets
            ),
        )
        self._speculate(
            snap,
            offset,
            text,
            plan.snippets,
            snap.settings.completion.cold_prompt_tokens if small else None,
        )
        return self._served(suggestion, doc, started, result)

    def _fast_enough(
        self, backend: Backend, snap: Snapshot, offset: int, plan: PromptPlan
    ) -> tuple[PromptPlan, bool]:
        """The plan, or a smaller one (and True) when the KV cache lacks too much of it.

        A first request at a new place would evaluate most of a full prompt; with
        `completion.cold_prompt_tokens` it gets a prompt of that size (the file around the
        cursor, no repository context) unless the full one is mostly cached. Warm-ups
        (the cursor resting, an editing pause) put the full prompt into the cache.
        """
        cold = snap.settings.completion.cold_prompt_tokens
        uncached = getattr(backend, "uncached_tokens", None)
        if not cold or not callable(uncached):
            return plan, False
        missing = uncached(plan.request)
        if missing <= cold:
            return plan, False
        smaller = self.build_plan(backend, snap, offset, (), cold)
        if smaller is None or uncached(smaller.request) >= missing:
            return plan, False
        log.debug("%d prompt tokens not cached: a %d-token prompt instead", missing, cold)
        return smaller, True

    def build_plan(
        self,
        backend: Backend,
        snap: Snapshot,
        offset: int,
        snippets: Sequence[ContextSnippet] = (),
        prompt_tokens: int | None = None,
    ) -> PromptPlan | None:
        """The exact prompt the pipeline sends for `offset` in the snapshot (also for
        ouzel/context and `ouzel context`); `prompt_tokens` overrides the budget."""
        doc, settings = snap.document, snap.settings
        completion = settings.completion
        if prompt_tokens is not None:
            completion = completion.model_copy(update={"prompt_tokens": prompt_tokens})
        context_length = getattr(backend, "context_length", None)
        if isinstance(context_length, int):
            # The prompt must leave room for the answer in the model's context.
            room = max(64, context_length - completion.max_tokens - 16)
            completion = completion.model_copy(
                update={"prompt_tokens": min(completion.prompt_tokens, room)}
            )
        return build_prompt(
            doc.text,
            doc.starts,
            offset,
            path=display_path(snap),
            language_id=doc.language_id,
            template=self.template_for(backend, settings),
            count_tokens=backend.count_tokens,
            settings=completion,
            snippets=snippets,
            snippet_budget=settings.context.budget_tokens if settings.context.enabled else 0,
        )

    async def _snippets(self, snap: Snapshot, offset: int) -> Sequence[ContextSnippet]:
        provider = self.context_provider
        settings = snap.settings
        if provider is None or not settings.context.enabled:
            return ()
        timeout = settings.completion.context_timeout_ms / 1000
        try:
            return await asyncio.wait_for(provider(snap, offset), timeout)
        except asyncio.TimeoutError:
            log.debug("repository context took over %.0f ms; left out", timeout * 1000)
        except Exception:
            log.exception("the context provider failed; completing without repository context")
        return ()

    async def prompt_for(
        self, snap: Snapshot, offset: int, snippets: Sequence[ContextSnippet] | None = None
    ) -> PromptPlan | None:
        """The prompt a completion at `offset` would send now (loads the model if needed).

        With `snippets` None the context provider supplies them, as for a real completion.
        """
        backend = await self.backend_source("inline_completion", snap.settings)
        if backend is None:
            return None
        if snippets is None:
            snippets = await self._snippets(snap, offset)
        return self.build_plan(backend, snap, offset, snippets)

    def _still_current(self, doc: Document) -> bool:
        current = self.session.documents.find(doc.uri)
        return current is not None and current.version == doc.version and current.text == doc.text

    # --- background work: warm-ups and the speculative suggestion ------------------------

    def warm(self, snap: Snapshot, offset: int, load: bool = True) -> bool:
        """Evaluate the prompt for `offset` in the background (nothing generated), so a
        request there finds it in the KV cache. False when there is nothing to do.

        `load` False: only once this session's ghost text has a model (no loading).
        """
        settings = snap.settings.completion
        doc = snap.document
        if not (settings.enabled and settings.warm_up) or doc.uri in self._pending:
            return False
        if not load and not self._model_seen:
            return False
        if self._last_place == (doc.uri, doc.version, offset):
            return False  # the model saw this place's prompt last
        background = self._background
        if (
            background is not None
            and background.uri == doc.uri
            and background.text == doc.text
            and (background.kind == "speculative" or background.offset == offset)
        ):
            return False  # a speculative suggestion, or this warm-up, is running

        line = doc.position(offset, "utf-32")[0]
        delay = SMALL_REST_S if self._small_line.get(doc.uri) == line else 0.0

        async def run(backend: Backend, token: CancelToken) -> None:
            if delay:
                await asyncio.sleep(delay)  # a keystroke meanwhile cancels this job
                if token.cancelled:
                    return
            snippets = await self._snippets(snap, offset)
            plan = self.build_plan(backend, snap, offset, snippets)
            if plan is None:  # no suggestion right here (mid-word): the line's start
                line_start = doc.starts[doc.position(offset, "utf-32")[0]]
                plan = self.build_plan(backend, snap, line_start, snippets)
            if plan is None or token.cancelled:
                return
            request = replace(plan.request, max_tokens=0, background=True, should_stop=None)
            self._last_place = (doc.uri, doc.version, offset)
            result = await backend.complete(request, token)
            if result.stop_reason == "cancelled":
                self.background_counts["preempted"] += 1
                self._last_place = None
                return
            self.background_counts["warmed"] += 1
            log.debug(
                "warmed %s at %d: %d prompt tokens (%d reused) in %.0f ms",
                doc.uri,
                offset,
                result.prompt_tokens,
                result.reused_tokens,
                result.total_s * 1000,
            )

        self._run_background("warm", snap, doc.text, run, offset)
        return True

    def warm_file_head(self, snap: Snapshot) -> bool:
        """Warm the file from its start: its first lines up to the prompt's in-file budget
        (the prefix every place near the top shares)."""
        doc = snap.document
        settings = snap.settings.completion
        budget = settings.prompt_tokens * (1 - settings.suffix_share)
        if snap.settings.context.enabled:
            budget -= snap.settings.context.budget_tokens
        used, line = 0, 0
        while line + 1 < len(doc.starts):
            used += max(1, len(doc.line_text(line)) // 3)  # about 3 characters a token
            if used > budget * 0.9:
                break
            line += 1
        return self.warm(snap, doc.starts[line], load=False)

    def _speculate(
        self,
        snap: Snapshot,
        offset: int,
        text: str,
        snippets: Sequence[ContextSnippet],
        prompt_tokens: int | None = None,
    ) -> None:
        """Compute, in the background, the suggestion after `text` is accepted at `offset`."""
        settings = snap.settings.completion
        if not (settings.enabled and settings.speculative) or not text:
            return
        doc = snap.document
        accepted_text = doc.text[:offset] + text + doc.text[offset:]
        accepted = Document.create(doc.uri, doc.language_id, doc.version, accepted_text)
        after = replace(snap, document=accepted)
        at = offset + len(text)

        async def run(backend: Backend, token: CancelToken) -> None:
            plan = self.build_plan(backend, after, at, snippets, prompt_tokens)
            if plan is None or token.cancelled:
                return
            request = replace(plan.request, background=True)
            at_line_end = accepted_text[at:].split("\n", 1)[0].strip() == ""
            if plan.mode == "single" and at_line_end:
                # Accepting a line's rest leaves the cursor at its end: what follows is
                # the next line. The prompt stays the one a request there sends (so the
                # KV cache serves both); only generation goes on past the newline.
                request = replace(
                    request,
                    stop=tuple(stop for stop in request.stop if stop != "\n"),
                    should_stop=_next_line_done,
                )
            started = time.perf_counter()
            result = await backend.complete(request, token)
            if token.cancelled or result.stop_reason == "cancelled":
                self.background_counts["preempted"] += 1
                return
            if request.should_stop is _next_line_done:
                suggestion = _next_line(result.text)
            else:
                suggestion = postprocess(
                    result.text,
                    plan.cursor,
                    plan.mode,
                    settings.max_lines,
                    truncated=result.stop_reason in ("length", "time"),
                )
            if not suggestion:
                return
            latency_ms = (time.perf_counter() - started) * 1000
            self.cache.store(
                doc.uri,
                CachedSuggestion(
                    uuid.uuid4().hex[:16],
                    suggestion,
                    accepted_text,
                    at,
                    latency_ms,
                    speculative=True,
                    snippets=tuple(snippets),
                ),
            )
            self.background_counts["speculated"] += 1
            log.debug("speculative suggestion for %s at %d: %r", doc.uri, at, suggestion)

        self._run_background("speculative", snap, accepted_text, run)

    def _run_background(
        self,
        kind: BackgroundKind,
        snap: Snapshot,
        text: str,
        work: Callable[[Backend, CancelToken], Awaitable[None]],
        offset: int = -1,
    ) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a headless caller): nothing runs behind it
            return
        self.cancel_background()
        job = _Background(kind, snap.uri, text, CancelToken(), offset)
        self._background = job
        self.background_counts[kind] += 1

        async def guarded() -> None:
            try:
                backend = await self.backend_source("inline_completion", snap.settings)
                if backend is None or not getattr(backend, "supports_background", False):
                    return  # remote models get no background work
                if not job.token.cancelled:
                    await work(backend, job.token)
            except BackendError as exc:  # loading, or down: the real request will say
                log.debug("background %s skipped: %s", kind, exc)
            except asyncio.CancelledError:
                job.token.cancel()
            except Exception:
                log.exception("background %s failed", kind)
            finally:
                if self._background is job:
                    self._background = None

        job.task = asyncio.ensure_future(guarded())

    def cancel_background(self, uri: str | None = None) -> None:
        """Stop the background job (only if it is for `uri`, when given)."""
        job = self._background
        if job is not None and (uri is None or job.uri == uri):
            job.token.cancel()
            self._background = None

    def status(self, settings: Settings) -> dict[str, Any]:
        """The `ghostText` section of `ouzel/status`: what background work did."""
        return {"background": self.background_kind, "counts": dict(self.background_counts)}

    @property
    def background_kind(self) -> BackgroundKind | None:
        job = self._background
        return job.kind if job is not None else None

    async def background_idle(self) -> None:
        """Wait until no background job runs (tests, the benchmark)."""
        while (job := self._background) is not None and job.task is not None:
            await asyncio.wait({job.task})

    # --- document events -----------------------------------------------------------------

    def document_changed(self, kind: str, doc: Document, previous: Document | None) -> None:
        """A change or close makes any running generation for the document stale."""
        if kind in ("change", "close"):
            pending = self._pending.pop(doc.uri, None)
            if pending is not None:
                pending.cancel()
            job = self._background
            if job is not None and job.uri == doc.uri and not _on_the_way(doc.text, job.text):
                self.cancel_background()  # computed for a text the document will not have
        if kind == "close":
            self.cache.forget(doc.uri)
            self._last_call.pop(doc.uri, None)
            self._small_line.pop(doc.uri, None)
            timer = self._idle.pop(doc.uri, None)
            if timer is not None:
                timer.cancel()
        elif kind == "open":
            self._after_open(doc)
        elif kind == "change" and previous is not None:
            self._warm_when_idle(doc, previous)

    def _after_open(self, doc: Document) -> None:
        try:
            snap = self.session.snapshot(doc)
        except Exception:  # not a document this session can snapshot: nothing to warm
            return
        self.warm_file_head(snap)

    def _warm_when_idle(self, doc: Document, previous: Document) -> None:
        """Warm the place of this edit once editing pauses (and no request went there)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        settings = self.session.snapshot(doc).settings.completion
        if not (settings.enabled and settings.warm_up):
            return
        timer = self._idle.pop(doc.uri, None)
        if timer is not None:
            timer.cancel()
        at = _edit_end(previous.text, doc.text)

        def fire() -> None:
            self._idle.pop(doc.uri, None)
            current = self.session.documents.find(doc.uri)
            if current is None or current.version != doc.version:
                return
            place = self._last_place
            if place is not None and place[:2] == (doc.uri, doc.version):
                return  # a request already evaluated this version's prompt
            self.warm(self.session.snapshot(current), at, load=False)

        self._idle[doc.uri] = loop.call_later(settings.warm_idle_ms / 1000, fire)

    # --- telemetry -----------------------------------------------------------------------

    def _served(
        self,
        suggestion: Suggestion,
        doc: Document,
        started: float,
        result: CompletionResult | None = None,
    ) -> Suggestion:
        latency_ms = (time.perf_counter() - started) * 1000
        known = self._recent.get(suggestion.id)
        if known is None:
            known = _Shown(suggestion.kind, latency_ms, len(suggestion.text), doc.language_id)
            self._recent[suggestion.id] = known
            while len(self._recent) > 256:
                self._recent.popitem(last=False)
        fields: dict[str, Any] = {
            "id": suggestion.id,
            "version": doc.version,
            "kind": suggestion.kind,
            "latencyMs": round(latency_ms, 2),
            "chars": len(suggestion.text),
            "lines": suggestion.text.count("\n") + 1,
            "language": doc.language_id,
        }
        if result is not None:
            fields |= {
                "promptTokens": result.prompt_tokens,
                "reusedTokens": result.reused_tokens,
                "generatedTokens": result.generated_tokens,
                "modelMs": round(result.total_s * 1000, 1),
                "stopReason": result.stop_reason,
                "backend": result.backend,
            }
        self._record("served", **fields)
        return suggestion

    def _model_call_recorder(
        self, doc: Document, offset: int, plan: PromptPlan, small: bool = False
    ) -> Callable[[asyncio.Future[CompletionResult]], None]:
        """Telemetry for one model call, whatever became of the request that made it."""
        line = doc.position(offset, "utf-32")[0]
        previous = self._last_call.get(doc.uri)
        same_line = previous is not None and previous == (line, doc.version - 1)
        self._last_call[doc.uri] = (line, doc.version)
        prompt_hash = hashlib.sha256(plan.request.prompt.encode("utf-8", "replace")).hexdigest()

        def record(call: asyncio.Future[CompletionResult]) -> None:
            if call.cancelled() or call.exception() is not None:
                return
            result = call.result()
            self._record(
                "model",
                kind=_kind(result),
                version=doc.version,
                sameLine=same_line,
                mode=plan.mode,
                promptTokens=result.prompt_tokens,
                reusedTokens=result.reused_tokens,
                generatedTokens=result.generated_tokens,
                stopReason=result.stop_reason,
                modelMs=round(result.total_s * 1000, 1),
                firstTokenMs=round(result.first_token_s * 1000, 1)
                if result.first_token_s is not None
                else None,
                promptSha=prompt_hash[:16],
                smallPrompt=small,
                backend=result.backend,
            )

        return record

    def shown(self, suggestion_id: str) -> None:
        known = self._recent.get(suggestion_id)
        if known is not None and not known.shown:
            known.shown = True
            self._record(
                "shown", id=suggestion_id, kind=known.kind, latencyMs=round(known.latency_ms, 2)
            )

    def accepted(self, suggestion_id: str) -> None:
        known = self._recent.get(suggestion_id)
        self._record(
            "accepted",
            id=suggestion_id,
            kind=known.kind if known else None,
            latencyMs=round(known.latency_ms, 2) if known else None,
            chars=known.chars if known else None,
            language=known.language if known else None,
        )

    def partially_accepted(self, suggestion_id: str, accepted_chars: int | None) -> None:
        known = self._recent.get(suggestion_id)
        self._record(
            "partial",
            id=suggestion_id,
            kind=known.kind if known else None,
            acceptedChars=accepted_chars,
            chars=known.chars if known else None,
        )

    def _record(self, event: str, **fields: Any) -> None:
        if self.telemetry is not None and self.session.settings.telemetry:
            self.telemetry.record(event, **fields)


def _next_line_done(text: str) -> bool:
    """Generation after a line's end has produced the next non-empty line."""
    rest = text.lstrip("\n")
    return rest != text and "\n" in rest and rest.split("\n", 1)[0].strip() != ""


def _next_line(text: str) -> str:
    """The speculative suggestion at a line's end: a newline and the next line (or the
    rest of this line, when the model continues it)."""
    text = text.replace("\r", "")
    if not text.startswith("\n"):
        return text.split("\n", 1)[0].rstrip()
    for line in text[1:].split("\n"):
        if line.strip():
            return "\n" + line.rstrip()
    return ""


def _common_prefix(a: str, b: str) -> int:
    limit = min(len(a), len(b))
    start, step = 0, 4096
    while step:
        while start < limit and a[start : start + step] == b[start : start + step]:
            start += step
        step //= 8
    return min(start, limit)


def _on_the_way(text: str, target: str) -> bool:
    """`target` is `text` with characters inserted at one place (typing a suggestion)."""
    if len(text) > len(target):
        return False
    prefix = _common_prefix(text, target)
    return target.endswith(text[prefix:])


def _edit_end(old: str, new: str) -> int:
    """Where an edit that turned `old` into `new` ends in `new` (its cursor, usually)."""
    start = _common_prefix(old, new)
    return min(len(new), start + max(0, len(new) - len(old)))


def _kind(result: CompletionResult) -> Kind:
    if result.prompt_tokens and result.reused_tokens >= REUSED_SHARE * result.prompt_tokens:
        return "reused"
    return "cold"


def display_path(snap: Snapshot) -> str:
    """The document's path relative to its workspace folder (what the prompt shows)."""
    if snap.path is None:
        return snap.uri.rsplit("/", 1)[-1]
    if snap.root is None:
        return snap.path.name
    return snap.path.resolve().relative_to(snap.root.resolve()).as_posix()
