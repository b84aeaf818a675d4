"""Plain data types shared by every backend and by the router."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

# "repetition": a chat answer stopped because it looped (inference/chat_stops.py).
StopReason = Literal["stop", "length", "time", "cancelled", "error", "repetition"]


class CancelToken:
    """Set by the caller to stop work; backends check it between tokens.

    Thread-safe, so an in-process generation on a worker thread sees a cancel that the
    event loop makes.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], object]] = []

    def cancel(self) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def on_cancel(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call `callback` once when cancelled (at once if already); returns an unsubscribe.

        The callback runs on the thread that cancels: an async waiter hands itself over
        with `loop.call_soon_threadsafe`. This is how a stalled HTTP stream is closed
        without polling.
        """
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return lambda: self._forget(callback)
        callback()
        return lambda: None

    def _forget(self, callback: Callable[[], object]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)


@dataclass(frozen=True)
class CompletionRequest:
    """A raw text completion: the prompt is already rendered (FIM or plain prefix)."""

    prompt: str
    max_tokens: int = 48
    stop: tuple[str, ...] = ()
    temperature: float = 0.0
    # Cap on generation time, counted from the first generated token; evaluating a long
    # prompt is stopped only by the cancel token.
    max_time_s: float | None = None
    # Parse control-token text in the prompt (e.g. "<|fim_prefix|>") as control tokens.
    # False for plain prompts, so code that happens to contain such text stays text.
    special_tokens: bool = True
    # Called with the text generated so far after each token; True ends generation there
    # (e.g. the suggested block ended). Backends that cannot call it may ignore it.
    should_stop: Callable[[str], bool] | None = field(default=None, compare=False)
    # Low priority (a warm-up or a speculative suggestion): any other request on the same
    # backend preempts it between prompt chunks or tokens, and it ends "cancelled".
    # With max_tokens 0 only the prompt is evaluated (into the KV cache). Backends that
    # cannot tell priorities apart say so with `supports_background` False (or absent),
    # and the completion pipeline sends them no background work.
    background: bool = False


@dataclass
class CompletionResult:
    text: str
    stop_reason: StopReason
    backend: str
    prompt_tokens: int = 0
    reused_tokens: int = 0  # prompt tokens served from the KV cache, not evaluated again
    generated_tokens: int = 0
    first_token_s: float | None = None
    total_s: float = 0.0


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_call_id: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model produced it


@dataclass
class ChatChunk:
    """One streamed piece of a chat answer: text, tool calls, or the end."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    done: bool = False
    stop_reason: StopReason | None = None
    backend: str = ""
    # (tokens evaluated, tokens in all) while a local model reads the prompt: no text yet.
    prompt_progress: tuple[int, int] | None = None


class BackendError(Exception):
    """A backend could not serve a request; the message says why, for the user."""


class BackendUnavailable(BackendError):
    """The backend cannot serve at all right now (model missing, server down)."""


class BackendWarming(BackendUnavailable):
    """The backend is loading or warming up its model: not a failure, try again soon."""
