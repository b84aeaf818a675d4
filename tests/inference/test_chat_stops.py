"""The stop rules every chat answer obeys, on scripted streams (and through the router)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from fake_backend import FakeBackend

from ouzel.inference.chat_stops import AnswerWatch, ChatStopRules, is_looping, obey_stop_rules
from ouzel.inference.router import Router
from ouzel.inference.types import CancelToken, ChatChunk, ChatMessage
from ouzel.server.settings import ModelProfile, Settings

RULES = ChatStopRules(time_cap_s=60)
DONE = ChatChunk(done=True, stop_reason="stop", backend="scripted")


class Scripted:
    """A backend stream of `pieces`; remembers whether it was closed and how far it got."""

    def __init__(self, pieces: Sequence[str], end: bool = True, stall: bool = False) -> None:
        self.pieces = pieces
        self.end = end
        self.stall = stall
        self.sent = 0
        self.closed = False

    async def stream(self) -> AsyncIterator[ChatChunk]:
        try:
            for piece in self.pieces:
                self.sent += 1
                yield ChatChunk(text=piece, backend="scripted")
            if self.stall:
                await asyncio.Event().wait()  # a server that stops sending, never ends
            if self.end:
                yield DONE
        finally:
            self.closed = True


async def run(
    script: Scripted, rules: ChatStopRules = RULES, clock: FakeClock | None = None
) -> tuple[str, ChatChunk | None]:
    text = ""
    last = None
    stream = obey_stop_rules(script.stream(), rules, *([clock] if clock else []))
    async for chunk in stream:
        text += chunk.text
        last = chunk
    return text, last if last is not None and last.done else None


class FakeClock:
    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


async def test_an_ordinary_answer_passes_unchanged_with_the_backends_end() -> None:
    pieces = ["def area(w, h):\n", "    return w * h\n", "\n", "Use `area(2, 3)`."]
    script = Scripted(pieces)
    text, done = await run(script)
    assert text == "".join(pieces)
    assert done == DONE
    assert script.closed


@pytest.mark.parametrize(
    ("pieces", "kept"),
    [
        (["hello", "<end_of_turn>", "\n<start_of_turn>user\nmore"], "hello"),  # gemma
        (["hello<|im_", "end|>\n<|im_start|>user"], "hello"),  # ChatML split across pieces
        (["hi <", "|eot_id|>junk"], "hi "),  # Llama 3
        (["a < b and <", "end", "_of_turn>"], "a < b and "),
    ],
)
async def test_an_end_of_turn_marker_written_as_text_ends_the_answer(
    pieces: list[str], kept: str
) -> None:
    script = Scripted([*pieces, "never sent"])
    text, done = await run(script)
    assert text == kept
    assert done is not None and done.stop_reason == "stop"
    assert script.closed and script.sent <= len(pieces)  # "never sent" was not asked for


async def test_a_held_back_marker_start_that_is_no_marker_is_passed_on() -> None:
    text, done = await run(Scripted(["if a <", "|b|: pass", " x <"]))
    assert text == "if a <|b|: pass x <"
    assert done == DONE


async def test_a_looping_line_stops_the_answer() -> None:
    # What gemma3 270M answered to "Write one word: hello", on and on.
    script = Scripted(["Write one word: hello mendatanguser\n"] * 200)
    text, done = await run(script)
    assert done is not None and done.stop_reason == "repetition"
    assert text.count("mendatanguser") <= 6
    assert script.closed and script.sent < 10


async def test_a_looping_block_of_lines_stops_the_answer() -> None:
    block = ["    x = compute(x)\n", "    print(x)\n"]
    text, done = await run(Scripted(block * 100))
    assert done is not None and done.stop_reason == "repetition"
    assert text.count("print(x)") <= 4


async def test_a_loop_within_a_line_stops_the_answer() -> None:
    text, done = await run(Scripted(["hello "] * 500))
    assert done is not None and done.stop_reason == "repetition"
    assert len(text) < 300


@pytest.mark.parametrize(
    "answer",
    [
        "class A:\n    def f(self):\n        if x:\n            if y:\n                pass\n"
        + "            }\n        }\n    }\n}\n}\n}\n",
        "matrix = [\n    [1, 0, 0],\n    [0, 1, 0],\n    [0, 0, 1],\n]\n",
        "\n\n\n\n\n\n\n\nsome text after blank lines\n",
        "a = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]\n" + "=" * 79 + "\n",
        "assert f(1) == 1\nassert f(1) == 1\nassert f(2) == 4\n",
    ],
)
def test_ordinary_code_and_text_are_no_loop(answer: str) -> None:
    watch = AnswerWatch()
    for index in range(0, len(answer), 3):
        assert watch.feed(answer[index : index + 3])[1] is None, answer[: index + 3]
    assert not is_looping(answer)


async def test_the_time_cap_stops_a_stream_that_keeps_going() -> None:
    # Each look at the clock is 10 s later: the cap of 35 s stops it within a few pieces.
    script = Scripted([f"word{n} " for n in range(100)])
    text, done = await run(script, ChatStopRules(time_cap_s=35), FakeClock(step=10))
    assert done is not None and done.stop_reason == "time"
    assert script.closed and 1 <= script.sent <= 4
    assert text.startswith("word0 ")


async def test_the_time_cap_stops_a_silent_stream_too() -> None:
    script = Scripted(["started, then silence"], end=False, stall=True)
    text, done = await run(script, ChatStopRules(time_cap_s=0.05))
    assert text == "started, then silence"
    assert done is not None and done.stop_reason == "time"
    assert script.closed


class Reading:
    """A local model reading a long prompt (`reports` progress chunks), then answering."""

    def __init__(self, reports: int, pieces: Sequence[str]) -> None:
        self.reports = reports
        self.pieces = pieces

    async def stream(self) -> AsyncIterator[ChatChunk]:
        for done in range(self.reports):
            yield ChatChunk(prompt_progress=(done * 64, self.reports * 64), backend="scripted")
        for piece in self.pieces:
            yield ChatChunk(text=piece, backend="scripted")
        yield DONE


async def test_reading_a_long_prompt_with_progress_is_not_cut_by_the_time_cap() -> None:
    # Each look at the clock is 10 s later: 20 progress reports take 200 s, over the 35 s
    # cap, but each came within it; the answer's own time counts from its first text.
    chunks = []
    stream = obey_stop_rules(
        Reading(20, ["It ", "adds."]).stream(), ChatStopRules(time_cap_s=35), FakeClock(10)
    )
    async for chunk in stream:
        chunks.append(chunk)
    progress = [chunk.prompt_progress for chunk in chunks if chunk.prompt_progress]
    assert len(progress) == 20  # passed on to the client
    assert "".join(chunk.text for chunk in chunks) == "It adds."
    assert chunks[-1].done and chunks[-1].stop_reason == "stop"


async def test_the_time_cap_still_stops_an_answer_after_a_long_prompt() -> None:
    words = [f"word{n} " for n in range(100)]
    chunks = []
    stream = obey_stop_rules(
        Reading(20, words).stream(), ChatStopRules(time_cap_s=35), FakeClock(10)
    )
    async for chunk in stream:
        chunks.append(chunk)
    assert chunks[-1].done and chunks[-1].stop_reason == "time"
    assert 1 <= sum(1 for chunk in chunks if chunk.text) <= 4


async def test_a_stream_without_its_final_chunk_ends_cleanly() -> None:
    text, done = await run(Scripted(["partial <"], end=False))
    assert text == "partial <" and done is None


async def test_every_routed_chat_obeys_the_rules() -> None:
    looping = FakeBackend("local", reply=" ".join(["again and again"] * 300))
    router = Router(factory=lambda name, profile: looping)
    settings = Settings(models={"local": ModelProfile(backend="llama_cpp")})
    settings.routing.chat = ["local"]
    text = ""
    last = None
    messages = [ChatMessage("user", "hello")]
    async for chunk in router.stream_chat(settings, "chat", messages, [], CancelToken()):
        text += chunk.text
        last = chunk
    assert last is not None and last.stop_reason == "repetition"
    assert text.count("again") < 60
    await router.aclose()
