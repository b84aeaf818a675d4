"""A prompt chunk is aborted part-way when its request is cancelled (the real Qwen 0.5B):
the decode stops, nothing of it counts as cached, and the next answer is the one a
fresh cache gives."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from models import QWEN_05B, installed_model

from ouzel.inference.llama_cpp import LlamaCppBackend, LlamaOptions
from ouzel.inference.types import CancelToken, CompletionRequest

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

CODE = "\n".join(f"def step_{i}(value):\n    return value + {i}\n" for i in range(80))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def qwen() -> AsyncIterator[LlamaCppBackend]:
    installed_model(QWEN_05B)
    backend = LlamaCppBackend(None, LlamaOptions(n_ctx=4096), catalog_name=QWEN_05B)
    await backend.wait_ready()
    yield backend
    backend.close()


async def answer(qwen: LlamaCppBackend, prompt: str) -> str:
    request = CompletionRequest(prompt, max_tokens=12, special_tokens=False)
    result = await qwen.complete(request, CancelToken())
    assert result.stop_reason in ("stop", "length")
    return result.text


async def test_a_halted_chunk_is_aborted_part_way_and_the_cache_stays_right(
    qwen: LlamaCppBackend, caplog: pytest.LogCaptureFixture
) -> None:
    llm = qwen._llm
    assert llm is not None and qwen._abort is not None
    prompt = "def fibonacci(n):\n    "
    fresh = await answer(qwen, prompt)

    tokens = llm.tokenize(CODE.encode(), add_bos=False)[:1024]
    llm.n_tokens = 0

    def aborted_chunk() -> bool:
        # 1,024 tokens take seconds here; the watcher raises the flag within 10 ms.
        return qwen._eval_chunk(llm, tokens, halted=lambda: True)

    with caplog.at_level(logging.WARNING, logger="ouzel.llama_cpp.native"):
        completed = await asyncio.get_running_loop().run_in_executor(None, aborted_chunk)
    assert completed is False
    assert llm.n_tokens == 0  # the aborted chunk is not counted as cached
    assert not qwen._abort.raised  # cleared for the next decode
    # llama.cpp's "failed to compute graph" lines of an abort on purpose stay in the debug log.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    # The next request (unwatched by then) runs to its end and answers as from a fresh cache.
    assert await answer(qwen, prompt) == fresh


async def test_a_cancelled_completion_stops_inside_its_prompt(qwen: LlamaCppBackend) -> None:
    llm = qwen._llm
    assert llm is not None
    cancel = CancelToken()
    request = CompletionRequest(CODE + "\ndef total(", max_tokens=8, special_tokens=False)
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, cancel.cancel)
    result = await qwen.complete(request, cancel)
    assert result.stop_reason == "cancelled"
    assert result.generated_tokens == 0
    assert llm.n_tokens < result.prompt_tokens - 1  # stopped before the prompt's end
