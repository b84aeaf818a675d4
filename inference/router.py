"""The inference router: model profiles → backends, and which one serves each kind of work.

Policy (settings `routing.*`, `privacy.*`, `models.*`):

- Each task kind has an ordered list of profile names. Ghost text defaults to
  `["local", "remote"]` (the remote only when no local model is usable); chat, agent and
  code actions default to `["remote", "local"]`.
- A profile is skipped when it is not configured (silently), when it is remote and
  `privacy.allow_remote` is off, when its configuration is broken (missing API key, …),
  when its local model failed to load, or when its circuit breaker is open. With
  `routing.allow_fallback` the next profile serves and the user gets one notice per change
  of situation ("remote is down; answering with local", later "back on remote").
- A request that fails before its first output falls through to the next profile in the
  same way; a stream that fails after output has started raises (answers are not spliced).
- A model that is loading or warming up is skipped for the request but not counted as a
  failure (`BackendWarming`), and the first request a backend serves is not part of its
  speed averages.
- Prompts for remote profiles have secrets redacted (`privacy.redact_secrets`).
- The log says which profile served each request and how fast; the prompt only at debug.
  Results and chunks name the serving profile in `backend`.

One `Router` per process (built by `server/app.py`) holds the backends and their health.
The caller's settings (routing, privacy, model profiles: its policy) come with every call,
because sessions and workspace folders may differ in what they allow; the router keeps no
caller's policy for the next one. Backends are keyed by what they are built from, so
policy changes never reload a model (`profiles.py`).

Modules: `profiles.py` (profiles → backends, the registry), `selection.py` (order, skip
reasons, fallback notices), `router_status.py` (the status section), `routed.py` (the
`Backend` wrappers features hold), and this one (requests through the policy).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ouzel.inference.backend import Backend, closing_stream
from ouzel.inference.chat_stops import ChatStopRules, obey_stop_rules
from ouzel.inference.health import HealthMonitor
from ouzel.inference.privacy import RemoteNotAllowed, redact, redact_messages
from ouzel.inference.profiles import (
    BackendEntry,
    BackendFactory,
    Backends,
    configured_profiles,
    default_backend_factory,
    endpoint_for,
    profile_is_remote,
    serving_label,
)
from ouzel.inference.routed import PinnedBackend, RoutedBackend
from ouzel.inference.router_status import router_status
from ouzel.inference.selection import (
    TASK_KINDS,
    TASK_LABELS,
    Attempt,
    Candidate,
    Notices,
    UsableCandidates,
    situation_kind,
    skip_reason,
)
from ouzel.inference.types import (
    BackendError,
    BackendUnavailable,
    BackendWarming,
    CancelToken,
    ChatChunk,
    ChatMessage,
    CompletionRequest,
    CompletionResult,
    ToolSpec,
)
from ouzel.server.settings import ModelProfile, Settings, TaskKind

log = logging.getLogger("ouzel.inference.router")


@dataclass
class Served:
    """Which profile served the last request of a task kind (for status)."""

    profile: str
    at: float
    fallback: bool


class Router:
    """Process-wide: backends by profile, health, and requests through each caller's policy."""

    def __init__(
        self,
        factory: BackendFactory = default_backend_factory,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.factory = factory
        self.clock = clock
        self.backends = Backends(factory, clock)
        self.served: dict[str, Served] = {}
        self.recent_notices: deque[str] = deque(maxlen=20)
        # Observers (metrics): served(task, profile, fallback, total_s or None) and
        # generated(profile, first_token_s or None, total_s) after each successful call.
        self.on_served: list[Callable[[str, str, bool, float | None], None]] = []
        self.on_generated: list[Callable[[str, float | None, float], None]] = []
        self._turns: dict[str, int] = {}  # round-robin position of profiles with endpoints
        self.monitor = HealthMonitor(self.backends.probe_targets, self.backends.probe_interval_s)

    # --- profiles and backends ---------------------------------------------------------

    def entry(self, name: str, profile: ModelProfile, settings: Settings) -> BackendEntry:
        """The backend for profile `name` as configured in `settings` (built on first use)."""
        return self.backends.entry(name, profile, settings)

    def plan(self, settings: Settings, task: TaskKind, only: str | None = None) -> list[Candidate]:
        """The profiles for `task` in order, each with the reason it would be skipped."""
        candidates = []
        profiles = configured_profiles(settings)
        names = [only] if only is not None else getattr(settings.routing, task)
        for name in names:
            profile = profiles.get(name)
            if profile is None:
                candidates.append(Candidate(name, None, False, "not configured", silent=True))
                continue
            for endpoint_name, endpoint in self._spread(name, profile):
                entry = self.entry(endpoint_name, endpoint, settings)
                remote = profile_is_remote(endpoint)
                candidates.append(
                    Candidate(
                        endpoint_name, entry, remote, self.skip_reason(entry, remote, settings)
                    )
                )
        return candidates

    def _spread(self, name: str, profile: ModelProfile) -> list[tuple[str, ModelProfile]]:
        """A profile with `endpoints`: one candidate per URL (`name@N`, each with its own
        breaker), starting one further on each call, so requests take turns; a failing or
        ejected endpoint falls through to the next."""
        if not profile.endpoints:
            return [(name, profile)]
        endpoints = [
            (f"{name}@{index}", profile.model_copy(update={"base_url": url, "endpoints": []}))
            for index, url in enumerate(profile.endpoints)
        ]
        turn = self._turns.get(name, 0)
        self._turns[name] = turn + 1
        start = turn % len(endpoints)
        return endpoints[start:] + endpoints[:start]

    @staticmethod
    def skip_reason(entry: BackendEntry, remote: bool, settings: Settings) -> str | None:
        return skip_reason(entry, remote, settings)

    def health_by_profile(self) -> dict[str, bool]:
        """Whether each built profile currently accepts requests (for metrics)."""
        # Retired entries first: a live entry of the same name wins.
        return {entry.name: entry.health.usable for entry in reversed(self.backends.all())}

    def start_probes(self) -> None:
        """Probe remote backends in the background (call on the event loop)."""
        self.monitor.start()

    # --- requests ----------------------------------------------------------------------

    async def complete(
        self,
        settings: Settings,
        task: TaskKind,
        request: CompletionRequest,
        cancel: CancelToken,
        notices: Notices | None = None,
        only: str | None = None,
        fallback: bool = False,
    ) -> CompletionResult:
        attempt = Attempt(task, notices, only, fallback)
        async for candidate, fallback in self._candidates(settings, attempt):
            entry = _require(candidate.entry)
            backend = _require(entry.backend)
            prepared = self._prepare_completion(candidate, request, settings)
            started = self.clock()
            try:
                result = await backend.complete(prepared, cancel)
            except BackendError as exc:
                self._failed(candidate, exc, attempt)
                if cancel.cancelled:
                    raise
                continue
            except asyncio.CancelledError:
                entry.health.request_abandoned()
                raise
            if result.stop_reason == "cancelled":
                entry.health.request_abandoned()
            else:
                self._succeeded(
                    entry, result.first_token_s, result.generated_tokens, result.total_s
                )
            self._served(
                task, candidate, fallback, self.clock() - started, result.generated_tokens, notices
            )
            return replace(result, backend=candidate.name)
        raise self._nothing_served(attempt)

    async def stream_chat(
        self,
        settings: Settings,
        task: TaskKind,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        cancel: CancelToken,
        max_tokens: int = 1024,
        temperature: float = 0.2,
        notices: Notices | None = None,
        only: str | None = None,
        fallback: bool = False,
    ) -> AsyncGenerator[ChatChunk, None]:
        attempt = Attempt(task, notices, only, fallback)
        async for candidate, fallback in self._candidates(settings, attempt):
            entry = _require(candidate.entry)
            backend = _require(entry.backend)
            prepared = self._prepare_messages(candidate, messages, settings)
            started = self.clock()
            first_token_s: float | None = None
            pieces = 0
            stop_reason = None
            try:
                stream = obey_stop_rules(  # no answer loops or runs on forever
                    backend.stream_chat(prepared, tools, cancel, max_tokens, temperature),
                    ChatStopRules(settings.routing.chat_time_cap_s),
                    self.clock,
                )
                async with closing_stream(stream) as chunks:
                    async for chunk in chunks:
                        if chunk.text and first_token_s is None:
                            first_token_s = self.clock() - started
                        pieces += bool(chunk.text)
                        if chunk.done:
                            stop_reason = chunk.stop_reason
                        if pieces == 1 and chunk.text:
                            # Output has started: this profile owns the answer now.
                            self._served(task, candidate, fallback, None, 0, notices)
                        yield replace(chunk, backend=candidate.name)
            except BackendError as exc:
                self._failed(candidate, exc, attempt)
                if pieces or cancel.cancelled:
                    raise
                continue
            except (asyncio.CancelledError, GeneratorExit):
                entry.health.request_abandoned()
                raise
            if stop_reason == "cancelled":
                entry.health.request_abandoned()
            else:
                self._succeeded(entry, first_token_s, pieces, self.clock() - started)
            if not pieces:
                self._served(task, candidate, fallback, None, 0, notices)
            log.info(
                "%s served by '%s' in %.2f s (first token %s, %d pieces, %s)",
                TASK_LABELS[task],
                candidate.name,
                self.clock() - started,
                f"{first_token_s * 1000:.0f} ms" if first_token_s is not None else "none",
                pieces,
                stop_reason,
            )
            return
        raise self._nothing_served(attempt)

    async def embed(
        self,
        settings: Settings,
        texts: Sequence[str],
        task: TaskKind = "embeddings",
        notices: Notices | None = None,
        only: str | None = None,
        fallback: bool = False,
    ) -> list[list[float]]:
        attempt = Attempt(task, notices, only, fallback)
        async for candidate, fallback in self._candidates(settings, attempt):
            entry = _require(candidate.entry)
            backend = _require(entry.backend)
            prepared = list(texts)
            if candidate.remote and settings.privacy.redact_secrets:
                prepared = [redact(text).text for text in texts]
            started = self.clock()
            try:
                vectors = await backend.embed(prepared)
            except BackendError as exc:
                self._failed(candidate, exc, attempt)
                continue
            self._succeeded(entry, None, 0, self.clock() - started)
            self._served(task, candidate, fallback, self.clock() - started, 0, notices)
            return vectors
        raise self._nothing_served(attempt)

    def count_tokens(self, settings: Settings, task: TaskKind, text: str) -> int:
        backend = self.current_backend(settings, task)
        if backend is None:
            return max(1, len(text) // 3)
        return backend.count_tokens(text)

    def current_backend(self, settings: Settings, task: TaskKind) -> Backend | None:
        """The backend that would serve `task` now (None when none is usable)."""
        for candidate in self.plan(settings, task):
            if candidate.skip is None and candidate.entry is not None:
                return candidate.entry.backend
            if not candidate.silent and not settings.routing.allow_fallback:
                return None
        return None

    def for_task(
        self, settings: Settings, task: TaskKind, notices: Notices | None = None
    ) -> RoutedBackend:
        """A `Backend` for features: every call is routed (with fallback) for `task`."""
        return RoutedBackend(self, settings, task, notices)

    def pinned(
        self,
        settings: Settings,
        task: TaskKind,
        profile: str,
        notices: Notices | None = None,
        passed_over: Sequence[Candidate] = (),
    ) -> PinnedBackend:
        """A `Backend` bound to one profile chosen beforehand (ghost text renders its prompt
        for that model's template): calls still go through the privacy guard, the breaker
        and the health records, but never to another profile. `passed_over` are the
        candidates skipped to choose it; the user hears about them once."""
        fallback = bool(passed_over)
        if passed_over:
            reason = f"'{passed_over[-1].name}' is skipped: {passed_over[-1].skip}"
            key = f"fallback:{profile}:{situation_kind(reason)}"
            text = f"{TASK_LABELS[task]}: {reason}; answering with '{profile}' instead."
            self.notify(notices, task, key, text)
        entry = self.entry(profile, configured_profiles(settings)[profile], settings)
        return PinnedBackend(self, settings, task, profile, entry.backend, notices, fallback)

    # --- policy helpers ----------------------------------------------------------------

    async def _candidates(
        self, settings: Settings, attempt: Attempt
    ) -> AsyncGenerator[tuple[Candidate, bool], None]:
        """Candidates to try in order, with `fallback` True after a skipped/failed one.

        Lazy on purpose: a failure recorded while one candidate was tried shows in the
        next one's notice, and a half-open breaker's trial slot is claimed only when its
        candidate is really tried. When nothing served and a model was only loading, work
        the user asked for (anything but ghost text, which must not wait) waits for that
        load once and tries it again.
        """
        for pair in UsableCandidates(self, settings, attempt):
            yield pair
        if attempt.task == "inline_completion":
            return
        for candidate in attempt.warming:
            entry = _require(candidate.entry)
            wait_ready = getattr(entry.backend, "wait_ready", None)
            if wait_ready is None:
                continue
            label = TASK_LABELS[attempt.task]
            self.notify(
                attempt.notices,
                attempt.task,
                f"loading:{candidate.name}",
                f"{label}: waiting for '{candidate.name}' to load its model.",
            )
            try:
                await asyncio.wait_for(wait_ready(), timeout=entry.profile.read_timeout_s)
            except (BackendError, asyncio.TimeoutError) as exc:
                reason = str(exc) or f"not loaded after {entry.profile.read_timeout_s:g} s"
                attempt.failures.append(f"'{candidate.name}': {reason}")
                continue
            yield candidate, candidate.fallback
            return

    def _prepare_completion(
        self, candidate: Candidate, request: CompletionRequest, settings: Settings
    ) -> CompletionRequest:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("prompt for '%s': %r", candidate.name, request.prompt)
        if not (candidate.remote and settings.privacy.redact_secrets):
            return request
        result = redact(request.prompt)
        if result.count:
            log.info(
                "redacted %d secret-looking strings (%s) from the prompt for '%s'",
                result.count,
                ", ".join(sorted(set(result.kinds))),
                candidate.name,
            )
        return replace(request, prompt=result.text)

    def _prepare_messages(
        self, candidate: Candidate, messages: Sequence[ChatMessage], settings: Settings
    ) -> Sequence[ChatMessage]:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("messages for '%s': %r", candidate.name, list(messages))
        if not (candidate.remote and settings.privacy.redact_secrets):
            return messages
        cleaned, kinds = redact_messages(messages)
        if kinds:
            log.info(
                "redacted %d secret-looking strings (%s) from the messages for '%s'",
                len(kinds),
                ", ".join(sorted(set(kinds))),
                candidate.name,
            )
        return cleaned

    def _succeeded(
        self, entry: BackendEntry, first_token_s: float | None, tokens: int, total_s: float
    ) -> None:
        for observer in self.on_generated:
            observer(entry.name, first_token_s, total_s)
        health = entry.health
        if not health.warmed:
            # The first request includes loading and warm-up: not a speed sample.
            health.extra["warmupMs"] = round(total_s * 1000, 1)
            health.request_succeeded(None, 0, 0.0)
            return
        health.request_succeeded(first_token_s, tokens, total_s)

    def _failed(self, candidate: Candidate, exc: BackendError, attempt: Attempt) -> None:
        entry = _require(candidate.entry)
        task = attempt.task
        counted = entry.health.request_failed(exc)
        attempt.failures.append(f"'{candidate.name}': {exc}")
        if isinstance(exc, BackendWarming):
            attempt.warming.append(candidate)
        log.warning(
            "%s: '%s' failed%s: %s",
            TASK_LABELS[task],
            candidate.name,
            "" if counted else " (still loading; not counted)",
            exc,
        )

    def _served(
        self,
        task: TaskKind,
        candidate: Candidate,
        fallback: bool,
        total_s: float | None,
        tokens: int,
        notices: Notices | None,
    ) -> None:
        previous = self.served.get(task)
        self.served[task] = Served(candidate.name, self.clock(), fallback)
        for observer in self.on_served:
            observer(task, candidate.name, fallback, total_s)
        if total_s is not None:
            # Ghost text is served on every pause in typing: keep it out of the editor's log.
            level = logging.DEBUG if task == "inline_completion" else logging.INFO
            log.log(
                level,
                "%s served by '%s' in %.0f ms (%d tokens)",
                TASK_LABELS[task],
                candidate.name,
                total_s * 1000,
                tokens,
            )
        if not fallback:
            text = None
            if previous is not None and previous.fallback:
                text = f"{TASK_LABELS[task]}: back on '{candidate.name}'."
            self.notify(notices, task, "normal", text)

    def notify(self, notices: Notices | None, task: str, key: str, text: str | None) -> None:
        if text:
            self.recent_notices.append(text)
        if notices is not None:
            notices.situation(task, key, text)

    def _nothing_served(self, attempt: Attempt) -> BackendError:
        failures = attempt.failures
        detail = "; ".join(failures) if failures else "no model profile is configured for it"
        message = f"{TASK_LABELS[attempt.task]}: no model could serve ({detail})"
        # Only loading models stood in the way: say so, so callers can show "loading".
        if attempt.warming and len(attempt.warming) == len(failures):
            return BackendWarming(message)
        return BackendUnavailable(message)

    # --- status ------------------------------------------------------------------------

    def describe(self, settings: Settings, profile: str) -> str:
        """`'profile' (model)` for messages: which model really answers."""
        profiles = configured_profiles(settings)
        entry = self.entry(profile, profiles[profile], settings) if profile in profiles else None
        return serving_label(profile, entry)

    def status(self, settings: Settings) -> dict[str, Any]:
        """The `router` section of `ouzel/status` for a caller with `settings`."""
        return router_status(self, settings)

    # --- lifecycle ---------------------------------------------------------------------

    async def aclose(self) -> None:
        await self.monitor.stop()
        entries = self.backends.all()
        self.backends.clear()
        for entry in entries:
            await _close_backend(entry.backend)

    def close(self) -> None:
        """Synchronous close (Engine.close): stops probes and frees local models."""
        self.monitor.cancel()
        for entry in self.backends.all():
            close = getattr(entry.backend, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()
        self.backends.clear()


def _require(value: Any) -> Any:
    assert value is not None
    return value


async def _close_backend(backend: Backend | None) -> None:
    if backend is None:
        return
    aclose = getattr(backend, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()
        return
    close = getattr(backend, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):
            close()


__all__ = [
    "TASK_KINDS",
    "BackendFactory",
    "BackendWarming",
    "Candidate",
    "Notices",
    "PinnedBackend",
    "RemoteNotAllowed",
    "RoutedBackend",
    "Router",
    "configured_profiles",
    "default_backend_factory",
    "endpoint_for",
    "profile_is_remote",
]
