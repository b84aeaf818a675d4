"""A scripted backend for unit tests of the completion pipeline (never used end to end)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

from ouzel.inference.templates import TEMPLATES, PromptTemplate
from ouzel.inference.types import (
    BackendError,
    CancelToken,
    ChatChunk,
    ChatMessage,
    CompletionRequest,
    CompletionResult,
    ToolSpec,
)


class ScriptedBackend:
    """Answers each prompt with `reply(prompt)`, one character per `char_delay` seconds."""

    def __init__(
        self,
        reply: Callable[[str], str] | str,
        char_delay: float = 0.0,
        template: PromptTemplate = TEMPLATES["plain"],
        honour_cancel: bool = True,
        supports_background: bool = False,
        prompt_delay: float = 0.0,
    ) -> None:
        self.name = "scripted"
        self.reply = reply if callable(reply) else (lambda prompt: reply)
        self.char_delay = char_delay
        self.template = template
        self.honour_cancel = honour_cancel
        self.supports_background = supports_background
        self.prompt_delay = prompt_delay  # "evaluating the prompt", checking cancel every 10 ms
        self.requests: list[CompletionRequest] = []
        self.tokens: list[CancelToken] = []
        self.cancelled = 0
        self.started = asyncio.Event()

    async def complete(self, request: CompletionRequest, cancel: CancelToken) -> CompletionResult:
        self.requests.append(request)
        self.tokens.append(cancel)
        self.started.set()
        waited = 0.0
        while waited < self.prompt_delay:
            if cancel.cancelled:
                self.cancelled += 1
                return CompletionResult("", "cancelled", self.name, 10, 0)
            await asyncio.sleep(0.01)
            waited += 0.01
        if request.max_tokens <= 0:
            return CompletionResult("", "length", self.name, 10, 0)
        text = ""
        for ch in self.reply(request.prompt)[: request.max_tokens * 4]:
            if self.honour_cancel and cancel.cancelled:
                self.cancelled += 1
                return CompletionResult(text, "cancelled", self.name, 10, 5)
            if self.char_delay:
                await asyncio.sleep(self.char_delay)
            text += ch
            if any(stop in text for stop in request.stop):
                text = text[: min(text.index(s) for s in request.stop if s in text)]
                return CompletionResult(text, "stop", self.name, 10, 8, len(text))
            if request.should_stop is not None and request.should_stop(text):
                return CompletionResult(text, "stop", self.name, 10, 8, len(text))
        return CompletionResult(text, "length", self.name, 10, 8, len(text))

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        cancel: CancelToken,
        max_tokens: int = 1024,
        temperature: float = 0.2,
    ) -> AsyncIterator[ChatChunk]:
        raise BackendError("no chat here")

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise BackendError("no embeddings here")

    def count_tokens(self, text: str) -> int:
        return -(-len(text) // 4)
