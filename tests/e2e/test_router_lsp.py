"""Ghost text through the router over a real LSP connection (`ouzel serve` on stdio), with
llama-cpp-python's server as the remote: the "router" section of `ouzel/status`, the
serving profile, fallback when the local model is missing, and the privacy gate."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rpc import RawClient, StdioServer
from waiting import wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from real_servers import LlamaServer
from scripted_openai_server import Reply, ScriptedServer, Seen, models_reply, text_chunk

pytestmark = pytest.mark.e2e

KEY = "e2e-lsp-key"
KEY_VARIABLE = "OUZEL_E2E_KEY"
SOURCE = "def add(a, b):\n    return "


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    with LlamaServer(KEY, tmp_path_factory.mktemp("llama") / "server.log") as running:
        yield running


def start(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    options: dict[str, Any],
    source: str = SOURCE,
) -> tuple[StdioServer, RawClient]:
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "main.py").write_text(source)
    process = StdioServer(tmp_path)
    client = process.client
    client.initialize(root=workspace, options={"completion": {"debounce_ms": 0}, **options})
    uri = (workspace / "main.py").as_uri()
    client.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": source}},
    )
    return process, client


def ghost_text(
    client: RawClient, tmp_path: Path, line: int = 1, character: int = 11
) -> dict[str, Any]:
    uri = (tmp_path / "ws" / "main.py").as_uri()
    return client.request(
        "textDocument/inlineCompletion",
        {
            "textDocument": {"uri": uri},
            "position": {"line": line, "character": character},
            "context": {"triggerKind": 1},
        },
        timeout=60,
    )


def router_status(client: RawClient) -> dict[str, Any]:
    status = client.request("ouzel/status")["result"]
    return dict(status["router"])


def remote_profile(server: LlamaServer, **extra: Any) -> dict[str, Any]:
    return {"backend": "openai", "base_url": server.base_url, "api_key_env": KEY_VARIABLE, **extra}


def test_ghost_text_from_the_remote_profile(
    server: LlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = {
        "models": {"remote": remote_profile(server)},
        "routing": {"inline_completion": ["remote"]},
    }
    process, client = start(tmp_path, monkeypatch, options)
    try:
        answer = ghost_text(client, tmp_path)
        assert "error" not in answer, answer
        status = router_status(client)
        route = status["routes"]["inline_completion"]
        assert route["order"] == ["remote"] and route["lastServedBy"] == "remote"
        remote = status["profiles"]["remote"]
        assert remote["remote"] is False and remote["usable"] and remote["requests"] == 1
        assert remote["endpoint"] == server.base_url
    finally:
        process.close()


def test_missing_local_model_falls_back_to_the_remote(
    server: LlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = {
        "models": {
            "local": {"backend": "llama_cpp", "model_path": str(tmp_path / "missing.gguf")},
            "remote": remote_profile(server),
        },
    }
    process, client = start(tmp_path, monkeypatch, options)
    try:

        def served_by_remote() -> bool:
            answer = ghost_text(client, tmp_path)  # the first one finds the file missing
            assert "error" not in answer, answer
            return router_status(client)["routes"]["inline_completion"]["lastServedBy"] == "remote"

        wait_for(served_by_remote, 60, "ghost text served by 'remote'", every=0)
        status = router_status(client)
        assert "missing.gguf" in status["profiles"]["local"]["skipReason"]
        messages = [
            n["params"]["message"]
            for n in client.notifications
            if n["method"] == "window/showMessage"
        ]
        assert any("missing.gguf" in m for m in messages), messages
    finally:
        process.close()


def test_remote_marked_remote_is_not_used_without_allow_remote(
    server: LlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = {
        "models": {"remote": remote_profile(server, location="remote")},
        "routing": {"inline_completion": ["remote"]},
    }
    process, client = start(tmp_path, monkeypatch, options)
    log_before = server.log_text().count("POST /v1/completions")
    try:
        answer = ghost_text(client, tmp_path)
        assert "error" not in answer
        status = router_status(client)
        remote = status["profiles"]["remote"]
        assert remote["remote"] is True and not remote["usable"]
        assert "privacy.allow_remote" in remote["skipReason"]
        assert status["routes"]["inline_completion"]["now"] is None
    finally:
        process.close()
    assert server.log_text().count("POST /v1/completions") == log_before


def test_secrets_never_reach_a_remote_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remote (here: a scripted server behind a "tunnel") receives the prompt with the
    secret redacted; the server records exactly what arrived."""
    secret = "AKIA" + "Z7VQ3XK4PL2MN8RT"
    source = f'AWS_KEY_ID = "{secret}"\n\ndef add(a, b):\n    return '

    def script(seen: Seen) -> Reply:
        if seen.path.endswith("/models"):
            return models_reply("scripted")
        return Reply(events=[text_chunk("a + b"), text_chunk("", "stop")])

    with ScriptedServer(script, api_key=KEY) as remote:
        options = {
            "models": {
                "remote": {
                    "backend": "openai",
                    "base_url": remote.base_url,
                    "model": "scripted",
                    "api_key_env": KEY_VARIABLE,
                    "location": "remote",
                }
            },
            "routing": {"inline_completion": ["remote"]},
            "privacy": {"allow_remote": True},
        }
        process, client = start(tmp_path, monkeypatch, options, source)
        try:
            answer = ghost_text(client, tmp_path, line=3, character=11)
            assert "error" not in answer, answer
        finally:
            process.close()
        prompts = [
            seen.body["prompt"] for seen in remote.seen if seen.path.endswith("/completions")
        ]
    assert prompts, "the remote got no completion request"
    assert all(secret not in prompt for prompt in prompts)
    assert "[REDACTED:aws-access-key-id]" in prompts[0]
    assert "def add(a, b):" in prompts[0]


def test_status_has_the_router_section_before_any_request(
    server: LlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = {"models": {"remote": remote_profile(server)}}
    process, client = start(tmp_path, monkeypatch, options)
    try:

        def probed_status() -> dict[str, Any] | None:  # sessions start, then the probe runs
            status = client.request("ouzel/status")["result"].get("router", {})
            return status if status and status["profiles"]["remote"]["reachable"] else None

        status: dict[str, Any] = wait_for(probed_status, 20, "a probe of 'remote'", every=0.2)
        remote = status["profiles"]["remote"]
        assert remote["reachable"] is True and remote["probeLatencyMs"] is not None
        assert remote["servedModels"][0].endswith(".gguf")
        assert status["routes"]["chat"]["now"] == "remote"
        assert status["routes"]["inline_completion"]["order"] == ["local", "remote"]
    finally:
        process.close()
