"""LlamaCppBackend with the real embedded model: KV reuse, cancel, caps, clear errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from waiting import wait_until

from ouzel.inference.backend import Backend
from ouzel.inference.llama_cpp import BACKGROUND_CHUNK, LlamaCppBackend, LlamaOptions
from ouzel.inference.types import (
    BackendError,
    BackendUnavailable,
    BackendWarming,
    CancelToken,
    ChatMessage,
    CompletionRequest,
)

# One model for the module: the tests share its loop.
pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

SOURCE = (Path(__file__).resolve().parents[2] / "server" / "convert.py").read_text()[:1200]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def backend() -> AsyncIterator[LlamaCppBackend]:
    loaded = LlamaCppBackend(None, LlamaOptions(n_ctx=2048))
    progress: list[tuple[str, int | None]] = []
    loaded.start_loading(lambda message, percentage: progress.append((message, percentage)))
    await loaded.wait_ready()
    assert progress[0][1] == 0 and any(p and p > 50 for _, p in progress)
    yield loaded
    loaded.close()


def plain(prompt: str, **kwargs: object) -> CompletionRequest:
    return CompletionRequest(prompt, special_tokens=False, **kwargs)  # type: ignore[arg-type]


async def test_it_is_a_backend_with_a_plain_template(backend: LlamaCppBackend) -> None:
    assert isinstance(backend, Backend)
    assert backend.template.family == "plain"  # gemma3 has no FIM tokens
    assert backend.state == "ready" and backend.model_path is not None
    assert backend.count_tokens("def f():\n    return 1\n") > 3


async def test_chat_stops_at_the_models_own_end_of_turn_texts(backend: LlamaCppBackend) -> None:
    # gemma3's GGUF has no chat template; its end of turn must still end an answer.
    assert backend.end_of_turn == ["<end_of_turn>", "<eos>"]
    chunks = [
        chunk
        async for chunk in backend.stream_chat(
            [ChatMessage("user", "Say hi.")], [], CancelToken(), max_tokens=24
        )
    ]
    assert chunks[-1].done
    assert not any(marker in chunk.text for chunk in chunks for marker in backend.end_of_turn)


async def test_consecutive_prompts_evaluate_only_the_changed_tail(backend: LlamaCppBackend) -> None:
    first = await backend.complete(plain(SOURCE + "\ndef foo(", max_tokens=4), CancelToken())
    second = await backend.complete(plain(SOURCE + "\ndef foo(x", max_tokens=4), CancelToken())
    assert first.prompt_tokens > 300
    # All but the few changed tokens come from the KV cache.
    assert second.reused_tokens >= second.prompt_tokens - 3
    assert second.total_s < first.total_s or first.reused_tokens > 0


async def test_greedy_output_is_deterministic(backend: LlamaCppBackend) -> None:
    request = plain(SOURCE + "\ndef offset_of(", max_tokens=8)
    one = await backend.complete(request, CancelToken())
    two = await backend.complete(request, CancelToken())
    assert one.text == two.text and one.generated_tokens == 8 and one.stop_reason == "length"


async def test_stop_strings_and_should_stop(backend: LlamaCppBackend) -> None:
    result = await backend.complete(
        plain("def a():\n    return 1\n\n\ndef b():\n", max_tokens=40, stop=("\n",)), CancelToken()
    )
    assert "\n" not in result.text and result.stop_reason in ("stop", "length")
    calls: list[str] = []
    result = await backend.complete(
        plain(
            "def a():\n",
            max_tokens=40,
            should_stop=lambda text: calls.append(text) or len(text) > 5,
        ),
        CancelToken(),
    )
    assert result.stop_reason == "stop" and len(result.text) > 5 and calls


async def test_cancel_stops_between_tokens(backend: LlamaCppBackend) -> None:
    seen: list[str] = []  # one entry per generated token (should_stop runs after each)
    cancel = CancelToken()
    request = plain(
        SOURCE + "\nclass Z", max_tokens=200, should_stop=lambda t: seen.append(t) and False
    )
    task = asyncio.ensure_future(backend.complete(request, cancel))
    await wait_until(lambda: len(seen) >= 3, 60, "three generated tokens")
    cancel.cancel()  # from the event loop, while the worker thread generates
    tokens_when_cancelled = len(seen)
    result = await task
    assert result.stop_reason == "cancelled"
    assert result.generated_tokens <= tokens_when_cancelled + 2


async def test_a_cancelled_prompt_still_warms_the_cache(backend: LlamaCppBackend) -> None:
    prompt = SOURCE.replace("code point", "codepoint") + "\n# the end\n"
    cancel = CancelToken()
    cancel.cancel()
    result = await backend.complete(plain(prompt), cancel)
    assert result.stop_reason == "cancelled" and result.generated_tokens == 0


async def test_time_cap(backend: LlamaCppBackend) -> None:
    result = await backend.complete(
        plain("# numbers\n1, 2, 3,", max_tokens=500, max_time_s=0.2), CancelToken()
    )
    assert result.stop_reason == "time"
    assert result.generated_tokens < 500


async def test_embeddings_are_a_clear_error(backend: LlamaCppBackend) -> None:
    with pytest.raises(BackendError, match="no embeddings"):
        await backend.embed(["x"])


async def test_missing_unreadable_and_non_gguf_files_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    text_file = tmp_path / "notes.gguf"
    text_file.write_text("hello, not a model")
    folder = tmp_path / "dir.gguf"
    folder.mkdir()
    for path, message in (
        (missing, "model file not found"),
        (text_file, "not a GGUF model file"),
        (folder, "not a file"),
    ):
        broken = LlamaCppBackend(path)
        with pytest.raises(BackendUnavailable, match=message) as caught:
            await broken.wait_ready()
        assert str(path) in str(caught.value)
        assert broken.state == "failed" and str(path) in (broken.error or "")
        with pytest.raises(BackendUnavailable):
            await broken.complete(plain("x"), CancelToken())
        broken.close()


async def test_a_truncated_gguf_is_a_clear_error(tmp_path: Path, backend: LlamaCppBackend) -> None:
    assert backend.model_path is not None
    cut = tmp_path / "cut.gguf"
    with backend.model_path.open("rb") as model:
        cut.write_bytes(model.read(4096))
    broken = LlamaCppBackend(cut)
    with pytest.raises(BackendUnavailable, match="could not load"):
        await broken.wait_ready()
    broken.close()


async def test_requests_while_loading_are_warming_not_failures() -> None:
    loading = LlamaCppBackend(None)
    with pytest.raises(BackendWarming):
        await loading.complete(plain("x"), CancelToken())
    await loading.wait_ready()
    loading.close()


async def test_a_warm_up_evaluates_the_prompt_and_generates_nothing(
    backend: LlamaCppBackend,
) -> None:
    prompt = SOURCE.replace("offset", "position") + "\n# warm\n"
    warm = await backend.complete(plain(prompt, max_tokens=0, background=True), CancelToken())
    assert warm.stop_reason == "length" and warm.generated_tokens == 0 and warm.text == ""
    real = await backend.complete(plain(prompt, max_tokens=4), CancelToken())
    assert real.reused_tokens >= real.prompt_tokens - 1  # all of it from the KV cache


async def test_a_real_request_preempts_background_work_between_chunks(
    backend: LlamaCppBackend,
) -> None:
    llm = backend._llm
    assert llm is not None
    chunks: list[int] = []
    evaluate = llm.eval

    def counted(tokens: list[int]) -> None:
        chunks.append(len(tokens))
        evaluate(tokens)

    long_prompt = "# preempted\n" + (SOURCE * 3).replace("line", "row")
    llm.eval = counted  # type: ignore[method-assign]
    try:
        background = asyncio.ensure_future(
            backend.complete(plain(long_prompt, max_tokens=0, background=True), CancelToken())
        )
        await wait_until(lambda: len(chunks) >= 2, 60, "two warm-up chunks")
        real = await backend.complete(plain(long_prompt[:300], max_tokens=2), CancelToken())
        warm = await background
    finally:
        llm.eval = evaluate  # type: ignore[method-assign]
    assert warm.stop_reason == "cancelled"  # preempted, not finished
    # Preempted part-way: the prompt had many chunks left (and a chunk running is aborted).
    assert warm.prompt_tokens > BACKGROUND_CHUNK * 6 and chunks[0] <= BACKGROUND_CHUNK
    assert real.stop_reason in ("length", "stop")
    assert real.reused_tokens >= 16  # what the warm-up evaluated serves the real request


async def test_background_generation_yields_to_a_queued_request(
    backend: LlamaCppBackend,
) -> None:
    seen: list[str] = []
    speculative = asyncio.ensure_future(
        backend.complete(
            plain(
                SOURCE + "\nclass Y",
                max_tokens=200,
                background=True,
                should_stop=lambda t: seen.append(t) and False,
            ),
            CancelToken(),
        )
    )
    await wait_until(lambda: len(seen) >= 2, 60, "background tokens")
    real = await backend.complete(plain("x = 1\ny =", max_tokens=2), CancelToken())
    result = await speculative
    assert result.stop_reason == "cancelled" and result.generated_tokens < 200
    assert real.stop_reason in ("length", "stop")
