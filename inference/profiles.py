"""Model profiles → backends: the process-wide registry of built backends and their health.

A backend is built once per profile name and *backend-defining* configuration (what its
constructor reads: the model file, context length and threads for llama.cpp; the URL,
model, key source, headers, TLS and timeouts for an OpenAI-compatible server). Settings
that only change the policy (routing order, fallback, privacy, breaker thresholds) or
that the backend never reads (`notes`, `location`) never rebuild it, so two sessions with
different settings share one loaded model.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ouzel.inference.backend import Backend
from ouzel.inference.health import BackendHealth, CircuitBreaker, Probeable
from ouzel.inference.openai_compat import Endpoint, OpenAICompatBackend, read_api_key
from ouzel.inference.privacy import is_remote
from ouzel.inference.types import BackendError, BackendUnavailable
from ouzel.server.settings import LOCAL_CHAT_PROFILE, ModelProfile, Settings, local_chat_profile

BackendFactory = Callable[[str, ModelProfile], Backend]

# A backend no settings asked for in this long is no longer probed (and its HTTP client
# is dropped when another configuration comes along).
UNUSED_AFTER_S = 600.0

# The profile fields each kind of backend is built from (see `default_backend_factory`).
BACKEND_FIELDS: dict[str, tuple[str, ...]] = {
    "llama_cpp": ("model_path", "context_length", "n_threads", "template"),
    "openai": (
        "base_url",
        "model",
        "api_key_env",
        "api_key_file",
        "headers",
        "ca_bundle",
        "connect_timeout_s",
        "read_timeout_s",
        "context_length",
        "stream_tool_calls",
        "tool_results_as_user",
    ),
}


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
        stream_tool_calls=profile.stream_tool_calls,
        tool_results_as_user=profile.tool_results_as_user,
    )


def default_backend_factory(name: str, profile: ModelProfile) -> Backend:
    """An OpenAI-compatible client, or the in-process llama.cpp model."""
    if profile.backend == "openai":
        return OpenAICompatBackend(name, endpoint_for(profile))
    # Loaded only when a local profile is used: llama.cpp's native library is large.
    from ouzel.inference import catalog
    from ouzel.inference.llama_cpp import LlamaCppBackend, LlamaOptions

    options = LlamaOptions(n_ctx=profile.context_length, n_threads=profile.n_threads)
    path = Path(profile.model_path).expanduser() if profile.model_path else None
    # `model` names a catalog model (`ouzel models list`); `model_path` wins when both are set.
    model = profile.model or (None if path else catalog.default_model())
    return LlamaCppBackend(path, options, template=profile.template, catalog_name=model)


def backend_key(profile: ModelProfile) -> str:
    """The part of a profile its backend is built from (a stable JSON text)."""
    data = profile.model_dump(mode="json")
    fields = BACKEND_FIELDS.get(profile.backend, tuple(data))
    return json.dumps(
        {"backend": profile.backend, **{f: data.get(f) for f in fields}}, sort_keys=True
    )


def configured_profiles(settings: Settings) -> dict[str, ModelProfile]:
    """The model profiles, with the embedded `local` one unless the settings redefine it.

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


@dataclass
class BackendEntry:
    """A backend built from one profile's configuration, and what we know about it."""

    name: str
    fingerprint: str
    profile: ModelProfile
    backend: Backend | None
    health: BackendHealth
    error: str | None = None  # the backend could not even be built
    last_used: float = 0.0
    # Probes send the API key to the server: only while a caller whose privacy settings
    # allow this server used it recently (`allowed_at`), never because of another's.
    allowed_at: float | None = None
    probe_interval_s: float = 30.0


class Backends:
    """Every backend of the process, by profile name and backend-defining configuration."""

    def __init__(self, factory: BackendFactory, clock: Callable[[], float]) -> None:
        self.factory = factory
        self.clock = clock
        self._entries: dict[tuple[str, str], BackendEntry] = {}
        self._retired: list[BackendEntry] = []

    def entry(self, name: str, profile: ModelProfile, settings: Settings) -> BackendEntry:
        """The backend for profile `name` as configured in `settings` (built on first use)."""
        key = (name, backend_key(profile))
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
            entry = BackendEntry(name, key[1], profile, backend, health, error)
            self._retire_older(entry)
            self._entries[key] = entry
        else:
            # One server, one breaker: its thresholds are the latest caller's.
            entry.health.breaker.configure(routing.failure_threshold, routing.retry_after_s)
        now = self.clock()
        entry.last_used = now
        if settings.privacy.allow_remote or not profile_is_remote(profile):
            entry.allowed_at = now
            entry.probe_interval_s = routing.probe_interval_s
        return entry

    def _retire_older(self, new: BackendEntry) -> None:
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

    def probe_targets(self) -> list[tuple[Probeable, BackendHealth]]:
        now = self.clock()
        targets: list[tuple[Probeable, BackendHealth]] = []
        for entry in self._entries.values():
            # As object: mypy cannot narrow one protocol (Backend) to another (Probeable).
            backend: object = entry.backend
            if (
                isinstance(backend, Probeable)
                and entry.allowed_at is not None
                and now - entry.allowed_at < UNUSED_AFTER_S
                and config_problem(entry) is None
            ):
                targets.append((backend, entry.health))
        return targets

    def probe_interval_s(self) -> float:
        """The shortest interval asked for by the callers of the probed backends."""
        now = self.clock()
        intervals = [
            entry.probe_interval_s
            for entry in self._entries.values()
            if entry.allowed_at is not None and now - entry.allowed_at < UNUSED_AFTER_S
        ]
        return min(intervals, default=30.0)

    def all(self) -> list[BackendEntry]:
        """Every entry, current and retired (to close them)."""
        return [*self._entries.values(), *self._retired]

    def clear(self) -> None:
        self._entries.clear()
        self._retired.clear()


def config_problem(entry: BackendEntry) -> str | None:
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


def model_label(entry: BackendEntry) -> str | None:
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


def serving_label(profile: str, entry: BackendEntry | None) -> str:
    """`'local' (gemma-3-270m-q4_k_m.gguf)`, `'remote' (Qwen/Qwen2.5-Coder-7B)`."""
    if entry is None:
        return f"'{profile}'"
    model = getattr(entry.backend, "model_file_name", None) or model_label(entry)
    return f"'{profile}' ({model})" if model else f"'{profile}'"
