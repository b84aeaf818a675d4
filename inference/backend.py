"""The one small interface every model backend implements."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from ouzel.inference.types import (
    CancelToken,
    ChatChunk,
    ChatMessage,
    CompletionRequest,
    CompletionResult,
    ToolSpec,
)


@runtime_checkable
class Backend(Protocol):
    """A model behind llama.cpp in process or an OpenAI-compatible HTTP server."""

    name: str

    async def complete(self, request: CompletionRequest, cancel: CancelToken) -> CompletionResult:
        """Raw text completion of an already-rendered prompt; stops early on cancel."""
        ...

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        cancel: CancelToken,
        max_tokens: int = 1024,
        temperature: float = 0.2,
    ) -> AsyncIterator[ChatChunk]:
        """Stream a chat answer; the last chunk has done=True."""
        ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embeddings for `texts` (raise BackendError when the model has none)."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in this model's tokenizer (an estimate for remote models)."""
        ...


@contextlib.asynccontextmanager
async def closing_stream(
    stream: AsyncIterator[ChatChunk],
) -> AsyncIterator[AsyncIterator[ChatChunk]]:
    """Close a `stream_chat` stream even when the consumer stops early (cancel, break).

    The protocol promises an AsyncIterator, which need not have `aclose`; the backends'
    async generators do, and closing them ends their HTTP stream or generation at once.
    """
    try:
        yield stream
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()
