"""Which backend serves a task for a session, loading it, telling the user.

Backends live in the process-wide `Router` (built by `server/app.py`), one per model
profile, so every session and feature shares one loaded model. `SessionModels.backend_for`
returns the backend that serves a task now, after loading it on its worker thread with
`$/progress`, wrapped so every call still goes through the router (privacy guard, breaker,
health, the log of who served): ghost text stays on the chosen profile (its prompt is
rendered for that model's template), other work falls back per request. A model
that cannot load (missing file, not a GGUF, llama.cpp error) is announced once per session
with a `window/showMessage` and a log line naming the file and the setting to change;
that task then gets None (completions off) and everything else keeps working.
"""

from __future__ import annotations

import logging
from typing import Any

from ouzel.inference.backend import Backend
from ouzel.inference.llama_cpp import LlamaCppBackend
from ouzel.inference.router import Candidate, Notices, Router
from ouzel.inference.templates import PromptTemplate, detect_template
from ouzel.inference.types import BackendUnavailable
from ouzel.server.session import Session
from ouzel.server.settings import Settings, TaskKind

log = logging.getLogger("ouzel.server.models")


class SessionModels:
    """One session's view of the shared router: its notices, announcements, status."""

    def __init__(self, session: Session, router: Router) -> None:
        self.session = session
        self.router = router
        # Routing notices ("remote is down; answering with local"), once each.
        self.notices = Notices(lambda text: session.show_message(text, "warning"))
        self.announced: set[str] = set()  # problems already shown to the user
        self.last_profile: str | None = None

    def start_probes(self) -> None:
        """Probe remote servers in the background (on the event loop, at session start)."""
        self.router.start_probes()

    async def backend_for(self, task: TaskKind, settings: Settings) -> Backend | None:
        """The loaded backend that serves `task` under `settings` (the session's, or those
        of a document's folder) now; None when none can."""
        session = self.session
        models = self.router
        passed_over: list[Candidate] = []
        for candidate in models.plan(settings, task):
            if candidate.entry is None or candidate.silent:
                continue
            backend = candidate.entry.backend
            if candidate.skip is not None:
                # Other reasons (remote not allowed, server down) come as the router's notices.
                if isinstance(backend, LlamaCppBackend) and backend.state == "failed":
                    self._announce(candidate.name, backend.error or candidate.skip, settings)
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
                    self._announce(candidate.name, backend.error or str(exc), settings)
                    if not settings.routing.allow_fallback:
                        return None
                    continue
            self.last_profile = candidate.name
            if task != "inline_completion":
                return models.for_task(settings, task, self.notices)
            return models.pinned(settings, task, candidate.name, self.notices, passed_over)
        return None

    def template_for(self, backend: Backend, settings: Settings) -> PromptTemplate:
        """The prompt template for `backend`: detected from the GGUF, or from the profile."""
        template = getattr(backend, "template", None)  # LlamaCppBackend reads its GGUF
        if isinstance(template, PromptTemplate):
            return template
        name = self.last_profile
        profile = settings.models.get(name) if name else None
        if profile is None:
            return detect_template({})
        # A remote model has no GGUF to read here: its id usually names the family.
        return detect_template({"general.name": profile.model or ""}, override=profile.template)

    def _announce(self, profile: str, problem: str, settings: Settings) -> None:
        """Tell the user once per session what is wrong and which setting fixes it."""
        key = f"{profile}:{problem}"
        if key in self.announced:
            return
        self.announced.add(key)
        config = settings.models.get(profile)
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
        self.session.show_message(text, "error")

    def router_status(self, settings: Settings) -> dict[str, Any]:
        """The "router" section of `ouzel/status`."""
        return self.router.status(settings)

    def why_unavailable(self, task: TaskKind, settings: Settings) -> str:
        """Why no model serves `task` now, for the error the user reads."""
        reasons = [
            f"'{candidate.name}' is skipped: {candidate.skip}"
            for candidate in self.router.plan(settings, task)
            if candidate.skip is not None and not candidate.silent
        ]
        where = f"see `routing.{task}` and `models.*`"
        return f"{'; '.join(reasons)} ({where})" if reasons else where

    def status(self, settings: Settings) -> dict[str, Any]:
        """The "model" section of `ouzel/status`: the local model and its KV-cache reuse."""
        return model_status(self.router, settings)


def _start_loading(session: Session, backend: LlamaCppBackend) -> None:
    if backend.state != "unloaded":
        return
    label = (
        backend.model_path.name
        if backend.model_path
        else backend.catalog_name or "the embedded model"
    )
    reporter = session.client.progress(f"Loading {label}", cancellable=False)
    reporter.begin()

    def report(message: str, percentage: int | None) -> None:
        reporter.report(message, percentage)

    future = backend.start_loading(report)
    future.add_done_callback(
        lambda done: reporter.end(
            "model ready" if done.exception() is None else "the model could not load"
        )
    )


def model_status(models: Router, settings: Settings) -> dict[str, Any]:
    """The local model that serves ghost text under `settings`, and its KV-cache reuse."""
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
            "background": stats.background,
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
