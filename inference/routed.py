"""The `Backend` protocol over the router: what features hold instead of a raw backend.

`RoutedBackend` routes every call for one task kind (with fallback); `PinnedBackend` keeps
to one profile chosen beforehand. Both carry the caller's settings, so every call is made
under that caller's policy (privacy, routing), never another session's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from ouzel.inference.backend import Backend
from ouzel.inference.selection import Notices
from ouzel.inference.types import (
    CancelToken,
    ChatChunk,
    ChatMessage,
    CompletionRequest,
    CompletionResult,
    ToolSpec,
)
from ouzel.server.settings import Settings, TaskKind

if TYPE_CHECKING:
    from ouzel.inference.router import Router


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
