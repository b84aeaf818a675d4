"""The routing policy: which profiles may serve a task now, in which order, and the
fallback notices the user hears ("remote is down; answering with local")."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ouzel.inference.privacy import host_of
from ouzel.inference.profiles import BackendEntry, config_problem, serving_label
from ouzel.server.settings import Settings, TaskKind

if TYPE_CHECKING:
    from ouzel.inference.router import Router

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
class Candidate:
    """One profile in a task's order, and why it would be skipped (None: usable now)."""

    name: str
    entry: BackendEntry | None
    remote: bool
    skip: str | None
    silent: bool = False  # skipped without a notice (the profile is not configured)
    fallback: bool = False  # tried after another profile was skipped or failed


@dataclass
class Attempt:
    """One request's way through the candidates."""

    task: TaskKind
    notices: Notices | None
    only: str | None = None  # one profile, no fallback to others (see `pinned`)
    fallback: bool = False  # that profile was itself chosen as a fallback
    failures: list[str] = field(default_factory=list)
    warming: list[Candidate] = field(default_factory=list)


def skip_reason(entry: BackendEntry, remote: bool, settings: Settings) -> str | None:
    if entry.backend is None:
        return f"it is misconfigured: {entry.error}"
    if remote and not settings.privacy.allow_remote:
        where = host_of(entry.profile.base_url or "") or "another machine"
        return f"it is remote ({where}) and `privacy.allow_remote` is off"
    problem = config_problem(entry)
    if problem:
        return problem
    state = getattr(entry.backend, "state", None)
    if state == "failed":
        return (
            f"its model could not load: {getattr(entry.backend, 'error', None) or 'unknown error'}"
        )
    health = entry.health
    if not health.breaker.would_allow():
        retry = health.breaker.retry_in()
        when = f"retrying in {retry:.0f} s" if retry > 0 else "a retry is under way"
        return f"it is down ({health.last_error or 'repeated failures'}; {when})"
    return None


class UsableCandidates:
    """Iterates the usable candidates of a plan, sending fallback notices as it goes."""

    def __init__(self, router: Router, settings: Settings, attempt: Attempt) -> None:
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
            entry = candidate.entry
            assert entry is not None
            if not entry.health.breaker.allow():
                reason = f"'{candidate.name}' is skipped: a retry is under way"
                self.failures.append(reason)
                passed_over.append(reason)
                continue
            fallback = bool(passed_over) or self.fallback
            candidate.fallback = fallback
            if passed_over:
                key = f"fallback:{candidate.name}:{situation_kind(passed_over[-1])}"
                answering = serving_label(candidate.name, candidate.entry)
                text = f"{label}: {passed_over[-1]}; answering with {answering} instead."
                router.notify(self.notices, task, key, text)
            failures_before = len(self.failures)
            yield candidate, fallback
            if len(self.failures) > failures_before:
                passed_over.append(self.failures[-1].replace("': ", "' failed: ", 1))


def situation_kind(reason: str) -> str:
    """Reasons that differ only in detail (failed once, then down) are one situation."""
    if "allow_remote" in reason:
        return "privacy"
    if "misconfigured" in reason or "could not load" in reason:
        return "broken"
    return "unavailable"
