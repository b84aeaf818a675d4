"""Two TCP sessions with different settings share one loaded model (one load, one cache).

Each client sends other settings that do not change what the model is built from (a
timeout, notes, the routing and privacy policy). Both get ghost text from the embedded
model, and the "model" section of `ouzel/status` shows the same backend's counters to
both: requests from the two sessions add up, the load happened once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rpc import RawClient, TcpServer

pytestmark = pytest.mark.e2e

SOURCE = "def add(a, b):\n    return "
SESSIONS: list[dict[str, Any]] = [
    {"models": {"local": {"backend": "llama_cpp", "read_timeout_s": 40, "notes": "one"}}},
    {
        "models": {"local": {"backend": "llama_cpp", "notes": "two"}},
        "routing": {"allow_fallback": False, "failure_threshold": 5},
        "privacy": {"redact_secrets": False},
    },
]


def open_session(server: TcpServer, workspace: Path, options: dict[str, Any]) -> RawClient:
    workspace.mkdir()
    (workspace / "main.py").write_text(SOURCE)
    client = server.connect()
    client.initialize(root=workspace, options={"completion": {"debounce_ms": 0}, **options})
    client.notify(
        "textDocument/didOpen",
        {
            "textDocument": {
                "uri": (workspace / "main.py").as_uri(),
                "languageId": "python",
                "version": 1,
                "text": SOURCE,
            }
        },
    )
    return client


def ghost_text(client: RawClient, workspace: Path) -> dict[str, Any]:
    reply = client.request(
        "textDocument/inlineCompletion",
        {
            "textDocument": {"uri": (workspace / "main.py").as_uri()},
            "position": {"line": 1, "character": 11},
            "context": {"triggerKind": 1},
        },
        timeout=120,
    )
    return dict(reply["result"])


def test_two_sessions_with_different_settings_load_the_model_once(tmp_path: Path) -> None:
    server = TcpServer(tmp_path)
    try:
        workspaces = [tmp_path / "one", tmp_path / "two"]
        clients = [open_session(server, w, o) for w, o in zip(workspaces, SESSIONS, strict=True)]
        for _ in range(2):  # alternate: a reload would show as a second load
            for client, workspace in zip(clients, workspaces, strict=True):
                assert ghost_text(client, workspace)["items"], "no ghost text"
        models = [client.request("ouzel/status")["result"]["model"] for client in clients]
        assert [m["state"] for m in models] == ["ready", "ready"]
        # One backend's counters: a model call per session (each session's second request
        # is its type-through cache's), seen alike by both.
        assert models[0]["requests"] == models[1]["requests"] == 2
        assert models[0]["loadSeconds"] == models[1]["loadSeconds"]
    finally:
        server.close()
