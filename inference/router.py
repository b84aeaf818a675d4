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

One `Router` per process (an `Engine` service) holds the backends and their health; the
settings come with each call, because sessions (workspaces) may differ in what they allow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ouzel.inference.backend import Backend
from ouzel.inference.chat_stops import ChatStopRules, obey_stop_rules
from ouzel.inference.health import BackendHealth, CircuitBreaker, HealthMonitor, Probeable
from ouzel.inference.openai_compat import Endpoint, OpenAICompatBackend, read_api_key
from ouzel.inference.privacy import RemoteNotAllowed, host_of, is_remote, redact, redact_messages
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
from ouzel.server.settings import (
    LOCAL_CHAT_PROFILE,
    ModelProfile,
    Settings,
    TaskKind,
    local_chat_profile,
)

log = logging.getLogger("ouzel.inference.router")

TASK_KINDS: tuple[TaskKind, ...] = (
    "inline_completion",
    "code_action",
    "chat",
    "agent",
    "embeddings",
)
TASK_LABELS: dict[str, str] = {
    "inline_completion": "completion",
    "code_action": "code action",
    "chat": "chat",
    "agent": "agent",
    "embeddings": "embeddings",
}

BackendFactory = Callable[[str, ModelProfile], Backend]

# A backend no settings asked for in this long is no longer probed (and its HTTP client
# is dropped when another configuration comes along).
UNUSED_AFTER_S = 600.0


def endpoint_for(profile: ModelProfile) -> Endpoint:
    if not profile.base_url:
        raise BackendUnavailable('`backend = "openai"` needs a `base_url` (…/v1)')
    return Endpoint(
        base_url=profile.base_url,
        model=profile.model,
        api_key_env=profile.api_key_env,
        api_key_file=profile.api_key_file,
        headers=dict(profile.headers),
        ca_bundle=profile.ca_bundle,
        connect_timeout_s=profile.connect_timeout_s,
        read_timeout_s=profile.read_timeout_s,
        context_length=profile.context_length,
    )


def default_backend_factory(name: str, profile: ModelProfile) -> Backend:
    """An OpenAI-compatible client, or the in-process llama.cpp model."""
    if profile.backend == "openai":
        return OpenAICompatBackend(name, endpoint_for(profile))
    from ouzel.inference import catalog
    from ouzel.inference.llama_cpp import LlamaCppBackend, LlamaOptions

    options = LlamaOptions(n_ctx=profile.context_length, n_threads=profile.n_threads)
    path = Path(profile.model_path).expanduser() if profile.model_path else None
    # `model` names a catalog model (`ouzel models list`); `model_path` wins when both are set.
    model = profile.model or (None if path else catalog.default_model())
    return LlamaCppBackend(path, options, template=profile.template, catalog_name=model)


def configured_profiles(settings: Settings) -> dict[str, ModelProfile]:
    """The model profiles, with the default `local` one unless the settings redefine it.

    A settings file that adds `[models.remote]` replaces the whole default `models` table;
    the local model should not vanish because a remote one was added.
    """
    profiles = dict(settings.models)
    profiles.setdefault("local", ModelProfile(backend="llama_cpp"))
    profiles.setdefault(LOCAL_CHAT_PROFILE, local_chat_profile())
    return profiles


def profile_is_remote(profile: ModelProfile) -> bool:
    if profile.backend != "openai":
        return profile.location == "remote"
    return is_remote(profile.base_url or "", profile.location)


class Notices:
    """Routing notices for one user (one session, one CLI run): each situation once."""

    def __init__(self, send: Callable[[str], None]) -> None:
        self._send = send
        self._situation: dict[str, str] = {}

    def situation(self, task: str, key: str, text: str | None) -> None:
        """Send `text` when the situation of `task` changed to `key`."""
        if self._situation.get(task) == key:
            return
        previous = self._situation.get(task)
        self._situation[task] = key
        if text and (previous is not None or key != "normal"):
            self._send(text)


@dataclass
class Served:
    """Which profile served the last request of a task kind (for status)."""

    profile: str
    at: float
    fallback: bool


@dataclass
class _Entry:
    """A backend built from one profile's configuration, and what we know about it."""

    name: str
    fingerprint: str
    profile: ModelProfile
    backend: Backend | None
    health: BackendHealth
    error: str | None = None  # the backend could not even be built
    # Probes send the API key to the server: not to a remote the settings do not allow.
    probe_allowed: bool = False
    last_used: float = 0.0


@dataclass
class Candidate:
    """One profile in a task's order, and why it would be skipped (None: usable now)."""

    name: str
    entry: _Entry | None
    remote: bool
    skip: str | None
    silent: bool = False  # skipped without a notice (the profile is not configured)
    fallback: bool = False  # tried after another profile was skipped or failed


@dataclass
class _Attempt:
    """One request's way through the candidates."""

    task: TaskKind
    notices: Notices | None
    only: str | None = None  # one profile, no fallback to others (see `pinned`)
    fallback: bool = False  # that profile was itself chosen as a fallback
    failures: list[str] = field(default_factory=list)
    warming: list[Candidate] = field(default_factory=list)


class Router:
    """Process-wide: backends by profile, health, and the routing policy."""

    def __init__(
        self,
        factory: BackendFactory = default_backend_factory,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.factory = factory
        self.clock = clock
        # By profile name and configuration: two workspaces that configure `remote`
        # differently each keep their backend and its health instead of rebuilding it on
        # every request.
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._retired: list[_Entry] = []
        self.served: dict[str, Served] = {}
        self.recent_notices: deque[str] = deque(maxlen=20)
        self._probe_interval_s = 30.0
        self.monitor = HealthMonitor(self._probe_targets, lambda: self._probe_interval_s)

    # --- profiles and backends ---------------------------------------------------------

    def entry(self, name: str, profile: ModelProfile, settings: Settings) -> _Entry:
        """The backend for profile `name` as configured in `settings` (built on first use)."""
        key = (name, profile.model_dump_json())
        entry = self._entries.get(key)
        routing = settings.routing
        if entry is None:
            breaker = CircuitBreaker(routing.failure_threshold, routing.retry_after_s, self.clock)
            health = BackendHealth(name, breaker, clock=self.clock)
            backend: Backend | None = None
            error = None
            try:
                backend = self.factory(name, profile)
            except BackendError as exc:
                error = str(exc)
            entry = _Entry(name, key[1], profile, backend, health, error)
            self._retire_older(entry)
            self._entries[key] = entry
        else:
            entry.health.breaker.configure(routing.failure_threshold, routing.retry_after_s)
        entry.probe_allowed = settings.privacy.allow_remote or not profile_is_remote(profile)
        entry.last_used = self.clock()
        self._probe_interval_s = routing.probe_interval_s
        return entry

    def _retire_older(self, new: _Entry) -> None:
        """Free what a profile's previous configuration held: an in-process model (memory:
        only the newest stays loaded), and HTTP clients nobody used for a while."""
        now = self.clock()
        for key, entry in list(self._entries.items()):
            in_process = entry.profile.backend == "llama_cpp"
            same_local_model = entry.name == new.name and in_process
            if same_local_model or now - entry.last_used > UNUSED_AFTER_S:
                del self._entries[key]
                self._retired.append(entry)
                close = getattr(entry.backend, "close", None)
                if in_process and callable(close):
                    with contextlib.suppress(Exception):
                        close()

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
            entry = self.entry(name, profile, settings)
            remote = profile_is_remote(profile)
            candidates.append(
                Candidate(name, entry, remote, self.skip_reason(entry, remote, settings))
            )
        return candidates

    def skip_reason(self, entry: _Entry, remote: bool, settings: Settings) -> str | None:
        if entry.backend is None:
            return f"it is misconfigured: {entry.error}"
        if remote and not settings.privacy.allow_remote:
            where = host_of(entry.profile.base_url or "") or "another machine"
            return f"it is remote ({where}) and `privacy.allow_remote` is off"
        problem = _config_problem(entry)
        if problem:
            return problem
        state = getattr(entry.backend, "state", None)
        if state == "failed":
            return f"its model could not load: {getattr(entry.backend, 'error', None) or 'unknown error'}"
        health = entry.health
        if not health.breaker.would_allow():
            retry = health.breaker.retry_in()
            when = f"retrying in {retry:.0f} s" if retry > 0 else "a retry is under way"
            return f"it is down ({health.last_error or 'repeated failures'}; {when})"
        return None

    def _probe_targets(self) -> list[tuple[Probeable, BackendHealth]]:
        return [
            (entry.backend, entry.health)
            for entry in self._entries.values()
            if isinstance(entry.backend, Probeable)
            and entry.probe_allowed
            and self.clock() - entry.last_used < UNUSED_AFTER_S
            and _config_problem(entry) is None
        ]

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
        attempt = _Attempt(task, notices, only, fallback)
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
        attempt = _Attempt(task, notices, only, fallback)
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
                async with _closing(stream) as chunks:
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
        attempt = _Attempt(task, notices, only, fallback)
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
            key = f"fallback:{profile}:{_situation_kind(reason)}"
            text = f"{TASK_LABELS[task]}: {reason}; answering with '{profile}' instead."
            self._notify(notices, task, key, text)
        entry = self.entry(profile, configured_profiles(settings)[profile], settings)
        return PinnedBackend(self, settings, task, profile, entry.backend, notices, fallback)

    # --- policy helpers ----------------------------------------------------------------

    async def _candidates(
        self, settings: Settings, attempt: _Attempt
    ) -> AsyncGenerator[tuple[Candidate, bool], None]:
        """Candidates to try in order, with `fallback` True after a skipped/failed one.

        Lazy on purpose: a failure recorded while one candidate was tried shows in the
        next one's notice, and a half-open breaker's trial slot is claimed only when its
        candidate is really tried. When nothing served and a model was only loading, work
        the user asked for (anything but ghost text, which must not wait) waits for that
        load once and tries it again.
        """
        for pair in _UsableCandidates(self, settings, attempt):
            yield pair
        if attempt.task == "inline_completion":
            return
        for candidate in attempt.warming:
            entry = _require(candidate.entry)
            wait_ready = getattr(entry.backend, "wait_ready", None)
            if wait_ready is None:
                continue
            label = TASK_LABELS[attempt.task]
            self._notify(
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
        self, entry: _Entry, first_token_s: float | None, tokens: int, total_s: float
    ) -> None:
        health = entry.health
        if not health.warmed:
            # The first request includes loading and warm-up: not a speed sample.
            health.extra["warmupMs"] = round(total_s * 1000, 1)
            health.request_succeeded(None, 0, 0.0)
            return
        health.request_succeeded(first_token_s, tokens, total_s)

    def _failed(self, candidate: Candidate, exc: BackendError, attempt: _Attempt) -> None:
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
            self._notify(notices, task, "normal", text)

    def _notify(self, notices: Notices | None, task: str, key: str, text: str | None) -> None:
        if text:
            self.recent_notices.append(text)
        if notices is not None:
            notices.situation(task, key, text)

    def _nothing_served(self, attempt: _Attempt) -> BackendError:
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
        """The `router` section of `ouzel/status`."""
        profiles: dict[str, Any] = {}
        for name, profile in configured_profiles(settings).items():
            entry = self.entry(name, profile, settings)
            remote = profile_is_remote(profile)
            profiles[name] = {
                "backend": profile.backend,
                "endpoint": entry.backend.base_url
                if isinstance(entry.backend, OpenAICompatBackend)
                else None,
                "remote": remote,
                "model": _model_label(entry),
                "usable": self.skip_reason(entry, remote, settings) is None,
                "skipReason": self.skip_reason(entry, remote, settings),
                **entry.health.snapshot(),
            }
        routes: dict[str, Any] = {}
        for task in TASK_KINDS:
            plan = self.plan(settings, task)
            chosen = next((c.name for c in plan if c.skip is None), None)
            served = self.served.get(task)
            routes[task] = {
                "order": [c.name for c in plan],
                "now": chosen,
                "skipped": {c.name: c.skip for c in plan if c.skip and not c.silent},
                "lastServedBy": served.profile if served else None,
                "lastServedAgoS": round(self.clock() - served.at, 1) if served else None,
            }
        return {
            "allowRemote": settings.privacy.allow_remote,
            "allowFallback": settings.routing.allow_fallback,
            "profiles": profiles,
            "routes": routes,
            "notices": list(self.recent_notices),
        }

    # --- lifecycle ---------------------------------------------------------------------

    async def aclose(self) -> None:
        await self.monitor.stop()
        entries = [*self._entries.values(), *self._retired]
        self._entries.clear()
        self._retired.clear()
        for entry in entries:
            await _close_backend(entry.backend)

    def close(self) -> None:
        """Synchronous close (Engine.close): stops probes and frees local models."""
        self.monitor.cancel()
        for entry in [*self._entries.values(), *self._retired]:
            close = getattr(entry.backend, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()
        self._entries.clear()
        self._retired.clear()


class _UsableCandidates:
    """Iterates the usable candidates of a plan, sending fallback notices as it goes."""

    def __init__(self, router: Router, settings: Settings, attempt: _Attempt) -> None:
        self.router = router
        self.settings = settings
        self.task = attempt.task
        self.failures = attempt.failures
        self.notices = attempt.notices
        self.only = attempt.only
        self.fallback = attempt.fallback

    def __iter__(self) -> Iterator[tuple[Candidate, bool]]:
        router, settings, task = self.router, self.settings, self.task
        label = TASK_LABELS[task]
        passed_over: list[str] = []  # why earlier profiles did not serve
        for candidate in router.plan(settings, task, self.only):
            if candidate.silent:
                continue
            if passed_over and not settings.routing.allow_fallback:
                self.failures.append(
                    f"'{candidate.name}' not tried because `routing.allow_fallback` is off"
                )
                return
            if candidate.skip is not None:
                reason = f"'{candidate.name}' is skipped: {candidate.skip}"
                self.failures.append(reason)
                passed_over.append(reason)
                continue
            entry = _require(candidate.entry)
            if not entry.health.breaker.allow():
                reason = f"'{candidate.name}' is skipped: a retry is under way"
                self.failures.append(reason)
                passed_over.append(reason)
                continue
            fallback = bool(passed_over) or self.fallback
            candidate.fallback = fallback
            if passed_over:
                key = f"fallback:{candidate.name}:{_situation_kind(passed_over[-1])}"
                answering = serving_label(candidate.name, candidate.entry)
                text = f"{label}: {passed_over[-1]}; answering with {answering} instead."
                router._notify(self.notices, task, key, text)
            failures_before = len(self.failures)
            yield candidate, fallback
            if len(self.failures) > failures_before:
                passed_over.append(self.failures[-1].replace("': ", "' failed: ", 1))


def _situation_kind(reason: str) -> str:
    """Reasons that differ only in detail (failed once, then down) are one situation."""
    if "allow_remote" in reason:
        return "privacy"
    if "misconfigured" in reason or "could not load" in reason:
        return "broken"
    return "unavailable"


def _config_problem(entry: _Entry) -> str | None:
    """A problem the user must fix before the backend can work (checked per request)."""
    backend = entry.backend
    if isinstance(backend, OpenAICompatBackend):
        try:
            read_api_key(backend.endpoint)
        except BackendUnavailable as exc:
            return str(exc)
        bundle = backend.endpoint.ca_bundle
        if bundle and not Path(bundle).expanduser().is_file():
            return f"the CA bundle {bundle} does not exist"
    return None


def _model_label(entry: _Entry) -> str | None:
    backend = entry.backend
    profile = entry.profile
    if isinstance(backend, OpenAICompatBackend):
        return profile.model or (
            entry.health.served_models[0] if entry.health.served_models else None
        )
    if profile.model_path:
        return profile.model_path
    loaded = getattr(backend, "model_path", None)
    return str(loaded) if loaded else "embedded"


def serving_label(profile: str, entry: _Entry | None) -> str:
    """`'local' (gemma-3-270m-q4_k_m.gguf)`, `'remote' (Qwen/Qwen2.5-Coder-7B)`."""
    if entry is None:
        return f"'{profile}'"
    model = getattr(entry.backend, "model_file_name", None) or _model_label(entry)
    return f"'{profile}' ({model})" if model else f"'{profile}'"


def _require(value: Any) -> Any:
    assert value is not None
    return value


@contextlib.asynccontextmanager
async def _closing(stream: AsyncIterator[ChatChunk]) -> AsyncIterator[AsyncIterator[ChatChunk]]:
    """Close an async generator even when the consumer stops early (cancel, break)."""
    try:
        yield stream
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


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


class RoutedBackend:
    """The `Backend` protocol over the router for one task kind and one user's settings."""

    def __init__(
        self, router: Router, settings: Settings, task: TaskKind, notices: Notices | None
    ) -> None:
        self.router = router
        self.settings = settings
        self.task = task
        self.notices = notices
        self.name = f"router:{task}"

    async def complete(self, request: CompletionRequest, cancel: CancelToken) -> CompletionResult:
        return await self.router.complete(self.settings, self.task, request, cancel, self.notices)

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        cancel: CancelToken,
        max_tokens: int = 1024,
        temperature: float = 0.2,
    ) -> AsyncIterator[ChatChunk]:
        return self.router.stream_chat(
            self.settings, self.task, messages, tools, cancel, max_tokens, temperature, self.notices
        )

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await self.router.embed(self.settings, texts, self.task, self.notices)

    def count_tokens(self, text: str) -> int:
        return self.router.count_tokens(self.settings, self.task, text)

    def current(self) -> Backend | None:
        """The backend that would serve now (e.g. to pick its prompt template)."""
        return self.router.current_backend(self.settings, self.task)


class PinnedBackend:
    """One profile's backend used through the router (see `Router.pinned`).

    Other attributes (a local model's `template`, `state`, `stats`) are the backend's own.
    """

    def __init__(
        self,
        router: Router,
        settings: Settings,
        task: TaskKind,
        profile: str,
        backend: Backend | None,
        notices: Notices | None,
        fallback: bool,
    ) -> None:
        self.router = router
        self.settings = settings
        self.task = task
        self.name = profile
        self.backend = backend
        self.notices = notices
        self.fallback = fallback

    def __getattr__(self, attribute: str) -> Any:
        if attribute == "backend":  # not set yet (copying): no recursion
            raise AttributeError(attribute)
        return getattr(self.backend, attribute)

    async def complete(self, request: CompletionRequest, cancel: CancelToken) -> CompletionResult:
        return await self.router.complete(
            self.settings, self.task, request, cancel, self.notices, self.name, self.fallback
        )

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        cancel: CancelToken,
        max_tokens: int = 1024,
        temperature: float = 0.2,
    ) -> AsyncIterator[ChatChunk]:
        return self.router.stream_chat(
            self.settings,
            self.task,
            messages,
            tools,
            cancel,
            max_tokens,
            temperature,
            self.notices,
            self.name,
            self.fallback,
        )

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await self.router.embed(
            self.settings, texts, self.task, self.notices, self.name, self.fallback
        )

    def count_tokens(self, text: str) -> int:
        if self.backend is None:
            return max(1, len(text) // 3)
        return self.backend.count_tokens(text)


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
