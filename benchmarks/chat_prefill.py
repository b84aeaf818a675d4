"""Local chat on a long prompt: ouzel's in-process chat next to llama-cpp-python's own
`create_chat_completion` (ouzel's chat path before it read prompts itself), side by side
in one run on the same GGUF and the same messages.

For each runner and run:

- time to the first text of a first turn (a cold KV cache) with a long prompt;
- time to the first text of a follow-up turn (the conversation so far in the cache);
- cancel while the prompt is being read: from the cancel to the end of the stream;
- for ouzel, the prompt-progress reports that came before the first text.

    python benchmarks/chat_prefill.py [--model qwen2.5-coder-0.5b] [--runs 2]
        [--prompt-tokens 1500] [--cancel-after-s 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from models import model_file  # noqa: E402  (tests/models.py: where the GGUFs are)

from ouzel.inference.llama_cpp import (  # noqa: E402
    LlamaCppBackend,
    LlamaOptions,
    _role_and_content,
    end_of_turn_texts,
)
from ouzel.inference.types import CancelToken, ChatMessage  # noqa: E402

MAX_TOKENS = 16
SYSTEM = ChatMessage("system", "You are a terse Python assistant. Answer in one sentence.")


def long_question(tokens: int, salt: int) -> str:
    """About `tokens` tokens of code (different per `salt`, so no cache is shared)."""
    functions = max(1, tokens // 14)
    code = "\n".join(
        f"def step_{salt}_{i}(value):\n    return value + {i * salt}\n" for i in range(functions)
    )
    return f"{code}\n\nWhat does step_{salt}_3 return for 1?"


@dataclass
class Figures:
    first: list[float] = field(default_factory=list)
    follow_up: list[float] = field(default_factory=list)
    cancel: list[float] = field(default_factory=list)
    reports: list[int] = field(default_factory=list)
    prompt_tokens: list[int] = field(default_factory=list)


def ouzel_turn(
    backend: LlamaCppBackend,
    messages: list[ChatMessage],
    cancel_after_s: float | None = None,
) -> tuple[float | None, float | None, int, str]:
    """(first text s, cancel → end s, progress reports, text) of one turn."""

    async def turn() -> tuple[float | None, float | None, int, str]:
        cancel = CancelToken()
        started = time.perf_counter()
        first: float | None = None
        cancelled_at: float | None = None
        reports, text = 0, ""
        async for chunk in backend.stream_chat(messages, (), cancel, MAX_TOKENS):
            now = time.perf_counter()
            if chunk.prompt_progress:
                reports += 1
            if chunk.text and first is None:
                first = now - started
            text += chunk.text
            late = cancel_after_s is not None and now - started >= cancel_after_s
            if late and cancelled_at is None:
                cancelled_at = now
                cancel.cancel()
        ended = time.perf_counter()
        return first, (ended - cancelled_at) if cancelled_at else None, reports, text

    return asyncio.run(turn())


def raw_turn(
    backend: LlamaCppBackend, messages: list[ChatMessage], cancel_after_s: float | None = None
) -> tuple[float | None, float | None, str]:
    """The same turn through `create_chat_completion`, cancelled as ouzel's old path was:
    a flag checked at each streamed part (a timer sets it)."""
    llm = backend._llm
    assert llm is not None
    cancelled = threading.Event()
    cancelled_at: list[float] = []

    def cancel() -> None:
        cancelled_at.append(time.perf_counter())
        cancelled.set()

    timer = threading.Timer(cancel_after_s, cancel) if cancel_after_s is not None else None
    started = time.perf_counter()
    if timer:
        timer.start()
    first: float | None = None
    text = ""
    for part in llm.create_chat_completion(
        messages=_role_and_content(messages),
        max_tokens=MAX_TOKENS,
        temperature=0.0,
        stream=True,
        stop=end_of_turn_texts(llm),
    ):
        if cancelled.is_set():
            break
        piece = (part["choices"][0].get("delta") or {}).get("content") or ""  # type: ignore[index]
        if piece and first is None:
            first = time.perf_counter() - started
        text += piece
    ended = time.perf_counter()
    if timer:
        timer.cancel()
    return first, (ended - cancelled_at[0]) if cancelled_at else None, text


def measure(
    name: str,
    backend: LlamaCppBackend,
    run: int,
    args: argparse.Namespace,
    figures: Figures,
) -> None:
    llm = backend._llm
    assert llm is not None
    salt = run * 2 + (1 if name == "ouzel" else 2)
    first_turn = [SYSTEM, ChatMessage("user", long_question(args.prompt_tokens, salt))]
    figures.prompt_tokens.append(
        len(llm.tokenize(first_turn[1].content.encode(), add_bos=False, special=False))
    )
    turn: Callable[..., tuple]
    turn = (
        (lambda m, c=None: ouzel_turn(backend, m, c))
        if name == "ouzel"
        else (lambda m, c=None: raw_turn(backend, m, c))
    )
    result = turn(first_turn)
    figures.first.append(result[0] or float("nan"))
    if name == "ouzel":
        figures.reports.append(result[2])
    follow_up = [
        *first_turn,
        ChatMessage("assistant", result[-1]),
        ChatMessage("user", "And for 2?"),
    ]
    figures.follow_up.append(turn(follow_up)[0] or float("nan"))
    other = [SYSTEM, ChatMessage("user", long_question(args.prompt_tokens, salt + 100))]
    figures.cancel.append(turn(other, args.cancel_after_s)[1] or float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=1500)
    parser.add_argument("--cancel-after-s", type=float, default=1.0)
    args = parser.parse_args()
    model_file(args.model)  # says how to install it when missing
    backend = LlamaCppBackend(None, LlamaOptions(n_ctx=4096), catalog_name=args.model)
    asyncio.run(backend.wait_ready())
    results = {"ouzel": Figures(), "raw": Figures()}
    try:
        for run in range(args.runs):
            for name in ("raw", "ouzel") if run % 2 else ("ouzel", "raw"):
                measure(name, backend, run, args, results[name])
                print(f"run {run + 1}/{args.runs}: {name} done", file=sys.stderr)
    finally:
        backend.close()

    def median(values: list[float]) -> str:
        if not values:
            return "–"
        value = statistics.median(values)
        return f"{value:.2f} s" if value >= 1 else f"{value * 1000:.0f} ms"

    ouzel, raw = results["ouzel"], results["raw"]
    print(
        f"\n{args.model}, ~{statistics.median(ouzel.prompt_tokens):.0f}-token question, "
        f"medians of {args.runs} runs\n"
    )
    print("| | ouzel | create_chat_completion | ratio |\n|---|---:|---:|---:|")
    for label, mine, theirs in (
        ("first text, first turn", ouzel.first, raw.first),
        ("first text, follow-up turn", ouzel.follow_up, raw.follow_up),
        (f"cancel at {args.cancel_after_s:g} s → end of stream", ouzel.cancel, raw.cancel),
    ):
        ratio = statistics.median(mine) / statistics.median(theirs) if mine and theirs else 0
        print(f"| {label} | {median(mine)} | {median(theirs)} | {ratio:.2f} |")
    print(
        f"| progress reports before the first text | {statistics.median(ouzel.reports):.0f} | 0 | |"
    )


if __name__ == "__main__":
    main()
