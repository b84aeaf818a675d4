"""The engine-wide model service: which backend serves a task, loading it, telling the user.

Backends live in the process-wide `Router` (an `Engine` service), one per model profile,
so every session and feature shares one loaded model. `backend_for` returns the backend
that serves a task now, after loading it on its worker thread with `$/progress`, wrapped
so every call still goes through the router (privacy guard, breaker, health, the log of
who served): ghost text stays on the chosen profile (its prompt is rendered for that
model's template), other work falls back per request. A model
that cannot load (missing file, not a GGUF, llama.cpp error) is announced once per session
with a `window/showMessage` and a log line naming the file and the setting to change;
that task then gets None (completions off) and everything else keeps working.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field
from typing import Any

from ouzel.inference.backend import Backend
from ouzel.inference.llama_cpp import LlamaCppBackend
from ouzel.inference.router import Candidate, Notices, Router
from ouzel.inference.templates import PromptTemplate, detect_template
from ouzel.inference.types import BackendUnavailable
from ouzel.server.session import Engine, ProgressReporter, Session
from ouzel.server.settings import TaskKind

log = logging.getLogger("ouzel.server.models")

ROUTER_SERVICE = "router"


def router(engine: Engine) -> Router:
    """The process-wide router that owns every backend."""
    service: Router = engine.service(ROUTER_SERVICE, Router)
    return service


@dataclass
class _SessionModels:
    notices: Notices  # routing notices ("remote is down; answering with local"), once each
    announced: set[str] = field(default_factory=set)  # problems already shown to the user
    last_profile: str | None = None


_sessions: weakref.WeakKeyDictionary[Session, _SessionModels] = weakref.WeakKeyDictionary()


def _state(session: Session) -> _SessionModels:
    state = _sessions.get(session)
    if state is None:
        notices = Notices(lambda text: session.show_message(text, "warning"))
        state = _sessions[session] = _SessionModels(notices)
        session.status_sections["model"] = lambda: status(session)
        models = router(session.engine)
        session.status_sections["router"] = lambda: models.status(session.settings)
        try:
            models.start_probes()  # remote servers are probed in the background
        except RuntimeError:  # no running event loop (a plain function call in a test)
            pass
    return state


def attach(session: Session) -> None:
    """Register the session's "model" and "router" status sections (idempotent)."""
    _state(session)


def install(engine: Engine) -> None:
    """Attach every session when it starts, so `ouzel/status` shows the router (and remote
    servers are probed) before the first completion (idempotent)."""
    if attach not in engine.session_started:
        engine.session_started.append(attach)


async def backend_for(session: Session, task: TaskKind = "inline_completion") -> Backend | None:
    """The loaded backend that serves `task` for this session now; None when none can."""
    state = _state(session)
    settings = session.settings
    models = router(session.engine)
    passed_over: list[Candidate] = []
    for candidate in models.plan(settings, task):
        if candidate.entry is None or candidate.silent:
            continue
        backend = candidate.entry.backend
        if candidate.skip is not None:
            # Other reasons (remote not allowed, server down) come as the router's notices.
            if isinstance(backend, LlamaCppBackend) and backend.state == "failed":
                _announce(session, state, candidate.name, backend.error or candidate.skip)
            else:
                passed_over.append(candidate)
            if not settings.routing.allow_fallback:
                return None
            continue
        if isinstance(backend, LlamaCppBackend) and backend.state != "ready":
            _start_loading(session, backend)
            try:
                await backend.wait_ready()
            except BackendUnavailable as exc:
                _announce(session, state, candidate.name, backend.error or str(exc))
                if not settings.routing.allow_fallback:
                    return None
                continue
        state.last_profile = candidate.name
        if task != "inline_completion":
            return models.for_task(settings, task, state.notices)
        return models.pinned(settings, task, candidate.name, state.notices, passed_over)
    return None


def profile_name(session: Session) -> str | None:
    """The profile that served this session's last request."""
    return _state(session).last_profile


def template_for(session: Session, backend: Backend) -> PromptTemplate:
    """The prompt template for `backend`: detected from the GGUF, or from the profile."""
    template = getattr(backend, "template", None)  # LlamaCppBackend reads its GGUF
    if isinstance(template, PromptTemplate):
        return template
    name = profile_name(session)
    profile = session.settings.models.get(name) if name else None
    if profile is None:
        return detect_template({})
    # A remote model has no GGUF to read here: its id usually names the family.
    return detect_template({"general.name": profile.model or ""}, override=profile.template)


def _start_loading(session: Session, backend: LlamaCppBackend) -> None:
    if backend.state != "unloaded":
        return
    label = (
        backend.model_path.name
        if backend.model_path
        else backend.catalog_name or "the embedded model"
    )
    reporter = ProgressReporter(session, f"Loading {label}", cancellable=False)
    reporter.begin()

    def report(message: str, percentage: int | None) -> None:
        reporter.report(message, percentage)

    future = backend.start_loading(report)
    future.add_done_callback(
        lambda done: reporter.end(
            "model ready" if done.exception() is None else "the model could not load"
        )
    )


def _announce(session: Session, state: _SessionModels, profile: str, problem: str) -> None:
    """Tell the user once per session what is wrong and which setting fixes it."""
    key = f"{profile}:{problem}"
    if key in state.announced:
        return
    state.announced.add(key)
    config = session.settings.models.get(profile)
    if (
        config is not None
        and config.backend == "llama_cpp"
        and config.model
        and not config.model_path
    ):
        fix = f"run `ouzel models install {config.model}`, or set `models.{profile}.model_path`"
    elif config is not None and config.backend == "llama_cpp":
        fix = (
            f"set `models.{profile}.model_path` to a GGUF file, or leave it empty for the "
            "default model"
        )
    else:
        fix = f"check the `models.{profile}` settings"
    text = (
        f"model '{profile}' is unavailable: {problem}. To fix it, {fix}. Completions from "
        "this model are off; everything else keeps working."
    )
    log.error("%s", text)
    session.show_message(text, "error")


def status(session: Session) -> dict[str, Any]:
    """The "model" section of `ouzel/status`: the local model and its KV-cache reuse."""
    settings = session.settings
    models = router(session.engine)
    result: dict[str, Any] = {"profile": None, "state": "none"}
    for name in settings.routing.inline_completion:
        profile = settings.models.get(name)
        if profile is None or profile.backend != "llama_cpp":
            continue
        backend = models.entry(name, profile, settings).backend
        if not isinstance(backend, LlamaCppBackend):
            continue
        stats = backend.stats
        result = {
            "profile": name,
            "path": str(backend.model_path) if backend.model_path else "embedded",
            "setting": f"models.{name}.model_path",
            "state": backend.state,
            "error": backend.error,
            "template": backend.template.family,
            "loadSeconds": round(backend.load_seconds, 2) if backend.load_seconds else None,
            "requests": stats.requests,
            "cancelled": stats.cancelled,
            "promptTokens": stats.prompt_tokens,
            "reusedTokens": stats.reused_tokens,
            "reusedShare": round(stats.reused_tokens / stats.prompt_tokens, 3)
            if stats.prompt_tokens
            else None,
            "generatedTokens": stats.generated_tokens,
            "generating": stats.running,  # tokens so far, while a request runs
            "last": stats.last,
        }
        break
    return result
