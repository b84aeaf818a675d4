"""The router and the completion path against `ouzel sim` as the GPU box: chat and
completions are served by the remote; injected faults make the router fall back to the
real local model with one notice, open the breaker, and come back when the faults stop."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ouzel.inference.health import BreakerState, probe_once
from ouzel.inference.router import Notices, Router
from ouzel.inference.types import BackendError, CancelToken, ChatMessage, CompletionRequest
from ouzel.server.settings import Settings, load_settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sim"))
from test_sim_http import KEY, Sim

pytestmark = pytest.mark.e2e
KEY_VARIABLE = "OUZEL_E2E_SIM_KEY"
QUESTION = [ChatMessage("user", "Name a colour.")]


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    server = Sim(tmp_path, "--gpu", "H100")
    yield server
    server.stop()


def settings_for(sim: Sim) -> Settings:
    loaded = load_settings(
        {
            "models": {
                "remote": {
                    "backend": "openai",
                    "base_url": sim.base_url,
                    "api_key_env": KEY_VARIABLE,
                    "model": "sim",
                },
                "local": {"backend": "llama_cpp", "context_length": 1024},
            },
            "routing": {
                "chat": ["remote", "local"],
                "inline_completion": ["remote", "local"],
                "failure_threshold": 3,
            },
        }
    )
    assert loaded.problems == []
    return loaded.settings


async def ask(router: Router, settings: Settings, notices: Notices) -> tuple[str, str]:
    served, text = "", []
    async for chunk in router.stream_chat(
        settings, "chat", QUESTION, [], CancelToken(), max_tokens=8, notices=notices
    ):
        if chunk.text:
            served = chunk.backend
            text.append(chunk.text)
    return served, "".join(text)


async def test_router_and_completion_path_served_by_the_sim(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    settings = settings_for(sim)
    router = Router()
    sent: list[str] = []
    try:
        served, answer = await ask(router, settings, Notices(sent.append))
        assert served == "remote" and answer
        result = await router.complete(
            settings,
            "inline_completion",
            CompletionRequest("def add(a, b):\n    return", max_tokens=6),
            CancelToken(),
        )
        assert result.backend == "remote" and result.generated_tokens == 6 and result.text
        assert result.first_token_s is not None and result.first_token_s > 0
        assert (
            sim.http(
                "/admin/script",
                json.dumps(
                    {
                        "replies": [
                            {
                                "text": "Looking.",
                                "tool_calls": [
                                    {"name": "read_file", "arguments": {"path": "a.py"}}
                                ],
                            }
                        ]
                    }
                ).encode(),
            )[0]
            == 200
        )
        calls = []
        async for chunk in router.stream_chat(
            settings, "chat", QUESTION, [], CancelToken(), max_tokens=8
        ):
            calls += chunk.tool_calls or []
        assert [(c.name, json.loads(c.arguments)) for c in calls] == [
            ("read_file", {"path": "a.py"})
        ]
        assert sent == []
    finally:
        await router.aclose()
        router.close()


async def test_faults_make_the_router_fall_back_and_open_the_breaker(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    settings = settings_for(sim)
    router = Router()
    sent: list[str] = []
    notices = Notices(sent.append)
    try:
        local = router.entry("local", settings.models["local"], settings).backend
        await local.wait_ready()  # type: ignore[union-attr]
        assert sim.http("/admin/faults", b'{"error_rate": 1.0}')[0] == 200
        for _ in range(3):
            served, answer = await ask(router, settings, notices)
            assert served == "local" and answer
        assert len(sent) == 1 and "answering with 'local'" in sent[0]
        remote = router.entry("remote", settings.models["remote"], settings)
        assert remote.health.breaker.state is BreakerState.OPEN
        # A stream cut mid-way is an error, never a silently short answer.
        assert sim.http("/admin/faults", b'{"error_rate": 0, "disconnect_rate": 1.0}')[0] == 200
        with pytest.raises(BackendError):
            await remote.backend.complete(CompletionRequest("x = ", max_tokens=12), CancelToken())  # type: ignore[union-attr]
        assert sim.http("/admin/faults", b'{"disconnect_rate": 0}')[0] == 200
        await probe_once(remote.backend, remote.health)  # type: ignore[arg-type]
        assert remote.health.breaker.state is BreakerState.HALF_OPEN
        served, _ = await ask(router, settings, notices)
        assert served == "remote"
        assert remote.health.breaker.state is BreakerState.CLOSED
        assert sent[-1] == "chat: back on 'remote'."
    finally:
        await router.aclose()
        router.close()
