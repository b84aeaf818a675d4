"""A scripted in-memory backend for router unit tests (never used end to end)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from ouzel.inference.types import (
    BackendError,
    BackendWarming,
    CancelToken,
    ChatChunk,
    ChatMessage,
    CompletionRequest,
    CompletionResult,
    ToolSpec,
)


@dataclass
class FakeBackend:
    name: str
    reply: str = "ok"
    state: str = "ready"
    error: str | None = None
    # One entry per call, consumed in order: an exception to raise, or None to succeed.
    script: deque[BackendError | None] = field(default_factory=deque)
    fail_after_first_chunk: BackendError | None = None
    prompts: list[str] = field(default_factory=list)
    conversations: list[list[ChatMessage]] = field(default_factory=list)
    embedded: list[list[str]] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return len(self.prompts) + len(self.conversations) + len(self.embedded)

    def fail_next(self, *errors: BackendError | None) -> None:
        self.script.extend(errors)

    async def wait_ready(self) -> None:
        """Like LlamaCppBackend: a load that finishes a little later."""
        await asyncio.sleep(0.01)
        if self.state == "loading":
            self.state = "ready"

    def _maybe_fail(self) -> None:
        if self.state == "loading":
            raise BackendWarming(f"{self.name} is loading its model")
        if self.script:
            error = self.script.popleft()
            if error is not None:
                raise error

    async def complete(self, request: CompletionRequest, cancel: CancelToken) -> CompletionResult:
        self.prompts.append(request.prompt)
        self._maybe_fail()
        return CompletionResult(
            text=self.reply,
            stop_reason="cancelled" if cancel.cancelled else "stop",
            backend=self.name,
            generated_tokens=5,
            first_token_s=0.01,
            total_s=0.05,
        )

    async def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        cancel: CancelToken,
        max_tokens: int = 1024,
        temperature: float = 0.2,
    ) -> AsyncIterator[ChatChunk]:
        self.conversations.append(list(messages))
        self._maybe_fail()
        for word in self.reply.split(" "):
            if cancel.cancelled:
                yield ChatChunk(done=True, stop_reason="cancelled", backend=self.name)
                return
            yield ChatChunk(text=word, backend=self.name)
            if self.fail_after_first_chunk is not None:
                raise self.fail_after_first_chunk
        yield ChatChunk(done=True, stop_reason="stop", backend=self.name)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.embedded.append(list(texts))
        self._maybe_fail()
        return [[float(len(text))] for text in texts]

    def count_tokens(self, text: str) -> int:
        return len(text.split())
