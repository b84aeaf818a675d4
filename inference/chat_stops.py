"""Stop rules every chat answer obeys, whichever backend streams it.

Small local models (and misconfigured servers) can go on forever: the same line again and
again, or an end-of-turn marker written out as text followed by a made-up next turn. The
router wraps every chat stream in `obey_stop_rules`, so chat, code actions and the agent
all stop

- at an end-of-turn marker that arrives as text (the text before it is kept),
- when the answer loops: the same block of lines over and over, or a repeating tail,
- at the time cap (`routing.chat_time_cap_s`), also while the stream is silent. It counts
  from the answer's first text; before it, while a local model reports reading a long
  prompt, from its last report (a prompt that makes progress is not a runaway answer).

The final chunk's `stop_reason` says which rule stopped it ("stop", "repetition", "time").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace

from ouzel.inference.types import ChatChunk, StopReason

# End-of-turn and start-of-turn texts of the common chat templates (gemma, ChatML/Qwen,
# Llama 3, GPT-style): never part of an answer.
END_OF_TURN_MARKERS = (
    "<end_of_turn>",
    "<start_of_turn>",
    "<|im_end|>",
    "<|im_start|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|start_header_id|>",
)

# A line loop: one block of up to MAX_BLOCK_LINES lines repeated until it covers at least
# MIN_LOOP_LINES lines, and at least MIN_COPIES times. Code rarely repeats a block so.
MAX_BLOCK_LINES = 8
MIN_LOOP_LINES = 6
MIN_COPIES = 3
MIN_BLOCK_CHARS = 4  # a run of closing braces or blank lines is not a loop
# A loop within lines ("hello hello hello ..."): the last MIN_TAIL_CHARS characters (at
# least MIN_TAIL_COPIES periods) repeat with a period of at most MAX_PERIOD characters.
MAX_PERIOD = 100
MIN_TAIL_CHARS = 200
MIN_TAIL_COPIES = 4
WINDOW_CHARS = 4000  # how much of the answer the loop checks look at


@dataclass(frozen=True)
class ChatStopRules:
    time_cap_s: float
    markers: Sequence[str] = END_OF_TURN_MARKERS


class AnswerWatch:
    """Follows an answer piece by piece: what to pass on, and whether to stop.

    A piece that might be the start of a marker is held back until the next piece shows
    whether it is one.
    """

    def __init__(self, markers: Sequence[str] = END_OF_TURN_MARKERS) -> None:
        self.markers = tuple(marker for marker in markers if marker)
        self.answer = ""  # what was passed on
        self._held = ""

    def feed(self, text: str) -> tuple[str, StopReason | None]:
        """The text to pass on now, and the reason to stop after it (None: go on)."""
        pending = self._held + text
        cut = _first_marker(pending, self.markers)
        if cut is not None:
            self._held = ""
            return self._pass(pending[:cut]), "stop"
        keep = partial_marker_length(pending, self.markers)
        self._held = pending[len(pending) - keep :]
        passed = self._pass(pending[: len(pending) - keep])
        return passed, "repetition" if passed and is_looping(self.answer) else None

    def flush(self) -> str:
        """The held-back text, at the end of the stream (it was no marker after all)."""
        held, self._held = self._held, ""
        return self._pass(held)

    def _pass(self, text: str) -> str:
        self.answer = (self.answer + text)[-WINDOW_CHARS:]
        return text


def is_looping(answer: str) -> bool:
    """True when the end of `answer` is a loop (see the constants above)."""
    return _lines_loop(answer.split("\n")[:-1]) or _tail_repeats(answer)


def _lines_loop(lines: Sequence[str]) -> bool:
    """The last complete lines are one block of lines repeated (indentation included)."""
    for size in range(1, MAX_BLOCK_LINES + 1):
        span = size * max(MIN_COPIES, -(-MIN_LOOP_LINES // size))
        if len(lines) < span:
            return False
        tail = lines[-span:]
        if sum(len(line.strip()) for line in tail[:size]) < MIN_BLOCK_CHARS:
            continue
        if all(tail[index] == tail[index % size] for index in range(size, span)):
            return True
    return False


def _tail_repeats(answer: str) -> bool:
    for period in range(1, MAX_PERIOD + 1):
        length = max(MIN_TAIL_CHARS, MIN_TAIL_COPIES * period)
        if len(answer) < length:
            return False
        if answer[-length:-period] == answer[-length + period :]:
            return True
    return False


def _first_marker(text: str, markers: Sequence[str]) -> int | None:
    found = [index for marker in markers if (index := text.find(marker)) >= 0]
    return min(found) if found else None


def partial_marker_length(text: str, markers: Sequence[str]) -> int:
    """Length of the longest end of `text` that some marker starts with."""
    longest = 0
    for marker in markers:
        for length in range(min(len(marker) - 1, len(text)), longest, -1):
            if marker.startswith(text[-length:]):
                longest = length
                break
    return longest


async def obey_stop_rules(
    stream: AsyncIterator[ChatChunk],
    rules: ChatStopRules,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[ChatChunk]:
    """`stream`, stopped by the rules; the backend's stream is closed when they stop it."""
    watch = AnswerWatch(rules.markers)
    started = clock()
    answering = False  # the first text (or tool call) came
    backend = ""
    reason: StopReason | None = None
    try:
        while reason is None:
            remaining = rules.time_cap_s - (clock() - started)
            try:
                if remaining <= 0:
                    raise asyncio.TimeoutError
                chunk = await asyncio.wait_for(stream.__anext__(), remaining)
            except StopAsyncIteration:
                break
            except asyncio.TimeoutError:
                reason = "time"
                break
            backend = chunk.backend or backend
            if chunk.done:
                if held := watch.flush():
                    yield ChatChunk(text=held, backend=backend)
                yield chunk
                return
            if chunk.prompt_progress is not None and not chunk.text:
                if not answering:
                    started = clock()  # still reading the prompt, and making progress
                yield chunk
                continue
            answering = True
            text, reason = watch.feed(chunk.text)
            if text or chunk.tool_calls:
                yield replace(chunk, text=text)
        if reason is None:  # the stream ended without its final chunk
            if held := watch.flush():
                yield ChatChunk(text=held, backend=backend)
            return
        if reason == "time" and (held := watch.flush()):
            yield ChatChunk(text=held, backend=backend)
        yield ChatChunk(done=True, stop_reason=reason, backend=backend)
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()
