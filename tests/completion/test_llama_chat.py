"""Chat on the real Qwen2.5-Coder 0.5B in process: the GGUF's chat template, the prompt
read in chunks (progress, a cancel that stops it there) and a follow-up turn that finds
the conversation so far in the KV cache."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from models import QWEN_05B, installed_model

from ouzel.inference.llama_cpp import LlamaCppBackend, LlamaOptions, _render_chat
from ouzel.inference.types import CancelToken, ChatChunk, ChatMessage

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

SYSTEM = ChatMessage("system", "You are a terse Python assistant. Answer in one sentence.")
# A long first question: its prompt takes several chunks to read.
CODE = "\n".join(f"def step_{i}(value):\n    return value + {i}\n" for i in range(40))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def qwen() -> AsyncIterator[LlamaCppBackend]:
    installed_model(QWEN_05B)
    backend = LlamaCppBackend(None, LlamaOptions(n_ctx=4096), catalog_name=QWEN_05B)
    await backend.wait_ready()
    yield backend
    backend.close()


async def chat(
    qwen: LlamaCppBackend, messages: list[ChatMessage], cancel: CancelToken | None = None
) -> list[ChatChunk]:
    chunks = []
    async for chunk in qwen.stream_chat(messages, (), cancel or CancelToken(), max_tokens=24):
        chunks.append(chunk)
    return chunks


def text_of(chunks: list[ChatChunk]) -> str:
    return "".join(chunk.text for chunk in chunks)


async def test_the_prompt_is_the_gguf_chat_template(qwen: LlamaCppBackend) -> None:
    assert qwen._llm is not None
    rendered = _render_chat(qwen._llm, [SYSTEM, ChatMessage("user", "hi")])
    assert rendered is not None
    tokens, stops = rendered
    prompt = qwen._llm.detokenize(tokens, special=True).decode()
    assert prompt.startswith("<|im_start|>system\nYou are a terse Python assistant.")
    assert prompt.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    assert "<|im_end|>" in stops


async def test_the_prompt_is_read_with_progress_and_a_follow_up_reuses_it(
    qwen: LlamaCppBackend,
) -> None:
    first = [SYSTEM, ChatMessage("user", f"{CODE}\n\nWhat does step_3 return for 1?")]
    chunks = await chat(qwen, first)
    progress = [chunk.prompt_progress for chunk in chunks if chunk.prompt_progress]
    assert len(progress) >= 5, progress  # ~1,000 tokens, read 64 at a time
    done = [evaluated for evaluated, _ in progress]
    total = progress[0][1]
    assert done == sorted(done) and done[-1] == total - 1  # the last one is sampled from
    assert text_of(chunks).strip()
    assert chunks[-1].done and chunks[-1].stop_reason in ("stop", "length")
    # The first text comes after the whole prompt was read.
    first_text = next(i for i, chunk in enumerate(chunks) if chunk.text)
    assert all(chunk.prompt_progress is None for chunk in chunks[first_text:])

    follow_up = [
        *first,
        ChatMessage("assistant", text_of(chunks)),
        ChatMessage("user", "And step_4?"),
    ]
    chunks = await chat(qwen, follow_up)
    progress = [chunk.prompt_progress for chunk in chunks if chunk.prompt_progress]
    # Only the new turn is read: the conversation so far is in the KV cache.
    assert progress and progress[0][0] > total - 64, (progress[0], total)
    assert len(progress) <= 3
    assert text_of(chunks).strip()


async def test_a_cancel_while_the_prompt_is_read_stops_it_there(qwen: LlamaCppBackend) -> None:
    cancel = CancelToken()
    question = [SYSTEM, ChatMessage("user", f"{CODE.replace('value', 'item')}\n\nExplain.")]
    chunks: list[ChatChunk] = []
    cancelled_at: float | None = None
    async for chunk in qwen.stream_chat(question, (), cancel, max_tokens=24):
        chunks.append(chunk)
        if chunk.prompt_progress and cancelled_at is None:
            cancelled_at = time.perf_counter()
            cancel.cancel()
    assert cancelled_at is not None
    progress = [chunk.prompt_progress for chunk in chunks if chunk.prompt_progress]
    total = progress[0][1]
    assert progress[-1][0] < total - 1  # stopped before the end of the prompt
    assert not text_of(chunks)
    assert chunks[-1].done and chunks[-1].stop_reason == "cancelled"
