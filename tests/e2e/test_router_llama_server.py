"""The router and the CLI against a real OpenAI-compatible server: llama-cpp-python's server
with the embedded model on 127.0.0.1, API key on, started once for this module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ouzel.inference.health import probe_once
from ouzel.inference.router import Router
from ouzel.inference.types import (
    BackendUnavailable,
    CancelToken,
    ChatMessage,
    CompletionRequest,
)
from ouzel.server.settings import Settings, load_settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from real_servers import LlamaServer

pytestmark = pytest.mark.e2e

KEY = "e2e-key-3f9a"
KEY_VARIABLE = "OUZEL_E2E_KEY"
OUZEL = str(Path(sys.executable).with_name("ouzel"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with LlamaServer(KEY, log) as running:
        yield running


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_VARIABLE, KEY)


def remote_only(server: LlamaServer, **layers: Any) -> Settings:
    """Everything routed to the server, no local fallback (no local model load here)."""
    base = {
        "models": {
            "remote": {
                "backend": "openai",
                "base_url": server.base_url,
                "api_key_env": KEY_VARIABLE,
            }
        },
        "routing": {task: ["remote"] for task in ("inline_completion", "chat", "agent")},
    }
    loaded = load_settings(base, layers)
    assert loaded.problems == []
    return loaded.settings


async def test_chat_streams_through_the_router(server: LlamaServer) -> None:
    router = Router()
    settings = remote_only(server)
    messages = [ChatMessage("user", "What is the capital of France?")]
    try:
        for _ in range(2):  # the first answer is warm-up; the second feeds the speed figures
            chunks = [
                chunk
                async for chunk in router.stream_chat(
                    settings, "chat", messages, [], CancelToken(), max_tokens=24
                )
            ]
            texts = [chunk.text for chunk in chunks if chunk.text]
            assert len(texts) >= 3, chunks
            assert chunks[-1].done and chunks[-1].stop_reason in ("stop", "length")
            assert {chunk.backend for chunk in chunks} == {"remote"}
        status = router.status(settings)
        remote = status["profiles"]["remote"]
        assert status["routes"]["chat"]["lastServedBy"] == "remote"
        assert remote["requests"] == 2 and remote["failures"] == 0
        assert remote["timeToFirstTokenMs"] > 0 and remote["tokensPerSecond"] > 0
        assert remote["warmupMs"] > 0
    finally:
        await router.aclose()


async def test_text_completion_through_the_router(server: LlamaServer) -> None:
    router = Router()
    try:
        result = await router.complete(
            remote_only(server),
            "inline_completion",
            CompletionRequest("def add(a, b):\n    return", max_tokens=8),
            CancelToken(),
        )
    finally:
        await router.aclose()
    assert result.backend == "remote" and result.text
    assert result.generated_tokens >= 1 and result.stop_reason in ("stop", "length")


async def test_wrong_key_is_a_clear_error(
    server: LlamaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, "not-the-key")
    router = Router()
    try:
        with pytest.raises(BackendUnavailable) as info:
            async for _ in router.stream_chat(
                remote_only(server), "chat", [ChatMessage("user", "hi")], [], CancelToken()
            ):
                pass
    finally:
        await router.aclose()
    message = str(info.value)
    assert "HTTP 401" in message and f"${KEY_VARIABLE}" in message
    assert "not-the-key" not in message


async def test_cancel_aborts_the_generation_on_the_server(server: LlamaServer) -> None:
    """Without a disconnect the server would finish 400 tokens (seconds of work) before it
    served anything else: it runs one request at a time and may not interrupt it."""
    router = Router()
    settings = remote_only(server)
    done_before = server.log_text().count("llama_perf_context_print:       total time")
    try:
        cancel = CancelToken()
        threading.Timer(1.0, cancel.cancel).start()
        started = time.monotonic()
        cancelled = await router.complete(
            settings, "inline_completion", CompletionRequest("1, 2, 3, 4,", max_tokens=400), cancel
        )
        assert cancelled.stop_reason == "cancelled"
        assert time.monotonic() - started < 3
        assert cancelled.generated_tokens < 100
        next_one = await router.complete(
            settings, "inline_completion", CompletionRequest("x =", max_tokens=4), CancelToken()
        )
    finally:
        await router.aclose()
    assert next_one.first_token_s is not None and next_one.first_token_s < 5
    # The server finished only the second request: the first was aborted.
    done_after = server.log_text().count("llama_perf_context_print:       total time")
    assert done_after - done_before == 1


async def test_probe_reports_the_served_model(server: LlamaServer) -> None:
    router = Router()
    settings = remote_only(server)
    entry = router.entry("remote", settings.models["remote"], settings)
    try:
        await probe_once(entry.backend, entry.health)  # type: ignore[arg-type]
    finally:
        await router.aclose()
    assert entry.health.reachable is True
    assert entry.health.served_models and entry.health.served_models[0].endswith(".gguf")
    assert entry.health.probe_latency_s is not None


def run_cli(
    *args: str, cwd: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, KEY_VARIABLE: KEY, **(extra_env or {})}
    return subprocess.run(
        [OUZEL, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_ouzel_ask_streams_an_answer_through_the_server(
    server: LlamaServer, tmp_path: Path
) -> None:
    out = run_cli(
        "ask",
        "--endpoint",
        server.base_url,
        "--api-key-env",
        KEY_VARIABLE,
        "--max-tokens",
        "24",
        "What is the capital of France?",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
    assert "answered by 'remote'" in out.stderr


def test_ouzel_doctor_reports_the_server_healthy(server: LlamaServer, tmp_path: Path) -> None:
    out = run_cli(
        "doctor", "--endpoint", server.base_url, "--api-key-env", KEY_VARIABLE, "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    rows = {row["profile"]: row for row in json.loads(out.stdout)}
    remote = rows["remote"]
    assert remote["usable"] and remote["reachable"] and remote["latency_ms"] > 0
    assert remote["where"] == server.base_url and remote["model"].endswith(".gguf")
    assert "chat" in remote["used_for"]
    table = run_cli(
        "doctor", "--endpoint", server.base_url, "--api-key-env", KEY_VARIABLE, cwd=tmp_path
    )
    assert table.returncode == 0
    assert "remote" in table.stdout and server.base_url in table.stdout and "ok" in table.stdout


def test_ouzel_doctor_with_a_wrong_key_exits_non_zero(server: LlamaServer, tmp_path: Path) -> None:
    out = run_cli(
        "doctor", "--endpoint", server.base_url, "--api-key-env", KEY_VARIABLE, "--json",
        cwd=tmp_path, extra_env={KEY_VARIABLE: "wrong"},
    )  # fmt: skip
    assert out.returncode == 1
    remote = {row["profile"]: row for row in json.loads(out.stdout)}["remote"]
    assert not remote["usable"] and "HTTP 401" in remote["problem"]
