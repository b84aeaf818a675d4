"""The remote dies mid-session: requests fall back to the local model (a real llama.cpp in
this process) with one notice, the breaker opens, `ouzel doctor` and `ouzel ask` say so,
and when the server is back the remote serves again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ouzel.inference.health import BreakerState, probe_once
from ouzel.inference.router import Notices, Router
from ouzel.inference.types import BackendUnavailable, CancelToken, ChatMessage
from ouzel.server.settings import Settings, load_settings, user_config_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from real_servers import LlamaServer

pytestmark = pytest.mark.e2e

KEY = "e2e-failover-key"
KEY_VARIABLE = "OUZEL_E2E_KEY"
OUZEL = str(Path(sys.executable).with_name("ouzel"))
QUESTION = [ChatMessage("user", "Name a colour.")]


def remote_then_local(server: LlamaServer) -> Settings:
    loaded = load_settings(
        {
            "models": {
                "remote": {
                    "backend": "openai",
                    "base_url": server.base_url,
                    "api_key_env": KEY_VARIABLE,
                },
                "local": {"backend": "llama_cpp", "context_length": 1024},
            },
            "routing": {"chat": ["remote", "local"], "failure_threshold": 3},
        }
    )
    assert loaded.problems == []
    return loaded.settings


async def ask(router: Router, settings: Settings, notices: Notices) -> tuple[str, float, str]:
    """(serving profile, seconds to the first piece of text, answer)."""
    started = time.monotonic()
    first: float | None = None
    served = ""
    text = []
    async for chunk in router.stream_chat(
        settings, "chat", QUESTION, [], CancelToken(), max_tokens=12, notices=notices
    ):
        if chunk.text:
            first = first if first is not None else time.monotonic() - started
            served = chunk.backend
            text.append(chunk.text)
    return served, first if first is not None else time.monotonic() - started, "".join(text)


def cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, KEY_VARIABLE: KEY}
    return subprocess.run(
        [OUZEL, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


async def test_remote_dies_mid_session_and_comes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    server = LlamaServer(KEY, tmp_path / "server.log")
    server.start()
    router = Router()
    sent: list[str] = []
    notices = Notices(sent.append)
    settings = remote_then_local(server)
    endpoint = ["--endpoint", server.base_url, "--api-key-env", KEY_VARIABLE]
    try:
        # The local model loads first, as it would have during the session.
        local = router.entry("local", settings.models["local"], settings).backend
        await local.wait_ready()  # type: ignore[union-attr]
        served, _, answer = await ask(router, settings, notices)
        assert served == "remote" and answer and sent == []

        server.kill()

        served, first_s, answer = await ask(router, settings, notices)
        assert served == "local" and answer
        assert first_s < 5, f"fallback took {first_s:.1f} s"
        assert len(sent) == 1
        assert "cannot reach" in sent[0] and "answering with 'local'" in sent[0]

        for _ in range(2):  # failures two and three open the breaker
            served, _, _ = await ask(router, settings, notices)
            assert served == "local"
        remote = router.entry("remote", settings.models["remote"], settings)
        assert remote.health.breaker.state is BreakerState.OPEN
        requests_before = remote.health.requests
        served, _, _ = await ask(router, settings, notices)
        assert served == "local" and remote.health.requests == requests_before  # not tried
        assert len(sent) == 1  # one notice for the whole outage
        status = router.status(settings)
        assert status["profiles"]["remote"]["state"].startswith("down")
        assert status["routes"]["chat"]["now"] == "local"

        doctor = cli("doctor", *endpoint, "--json", cwd=tmp_path)
        assert doctor.returncode == 1
        row = {r["profile"]: r for r in json.loads(doctor.stdout)}["remote"]
        assert row["reachable"] is False and "cannot reach" in row["problem"]

        strict = tmp_path / "strict"
        strict.mkdir()
        # Routing is the user's: a workspace file cannot set it (server/settings_trust.py).
        user_config_path().parent.mkdir(parents=True, exist_ok=True)
        user_config_path().write_text("[routing]\nallow_fallback = false\n")
        started = time.monotonic()
        failed = cli("ask", *endpoint, "--no-context", "Name a colour.", cwd=strict)
        assert failed.returncode == 1
        assert "cannot reach" in failed.stderr and "allow_fallback" in failed.stderr
        assert time.monotonic() - started < 15  # process start-up included

        server.start()
        await probe_once(remote.backend, remote.health)  # type: ignore[arg-type]
        assert remote.health.breaker.state is BreakerState.HALF_OPEN
        served, _, _ = await ask(router, settings, notices)
        assert served == "remote"
        assert remote.health.breaker.state is BreakerState.CLOSED
        assert sent[-1] == "chat: back on 'remote'."
    finally:
        await router.aclose()
        router.close()
        server.stop()


async def test_everything_down_is_one_clear_error_within_seconds(tmp_path: Path) -> None:
    server = LlamaServer(KEY, tmp_path / "never-started.log")  # a free port, nothing listening
    loaded = load_settings(
        {
            "models": {"remote": {"backend": "openai", "base_url": server.base_url}},
            "routing": {"chat": ["remote", "local"]},
        },
        {"models": {"local": {"backend": "llama_cpp", "model_path": str(tmp_path / "no.gguf")}}},
    )
    router = Router()
    started = time.monotonic()
    try:
        with pytest.raises(BackendUnavailable) as info:
            async for _ in router.stream_chat(loaded.settings, "chat", QUESTION, [], CancelToken()):
                pass
    finally:
        await router.aclose()
        router.close()
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert message.startswith("chat: no model could serve")
    assert "cannot reach" in message and "no.gguf" in message
