"""A model that cannot load: one clear message naming the file and the setting; completions
are off and everything else keeps working; fixing the setting brings them back."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from rpc import RawClient, StdioServer
from waiting import wait_for

pytestmark = pytest.mark.e2e


def open_python(client: RawClient, root: Path, name: str, text: str) -> str:
    uri = (root / name).as_uri()
    client.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
    )
    return uri


def inline(client: RawClient, uri: str, line: int, character: int) -> dict[str, Any]:
    return client.request(
        "textDocument/inlineCompletion",
        {
            "textDocument": {"uri": uri},
            "position": {"line": line, "character": character},
            "context": {"triggerKind": 1},
        },
        timeout=120,
    )


def messages(client: RawClient) -> list[str]:
    return [
        n["params"]["message"] for n in client.notifications if n["method"] == "window/showMessage"
    ]


def test_missing_model_from_the_command_line(tmp_path: Path) -> None:
    stdio = StdioServer(tmp_path, "--model", "/nonexistent.gguf")
    client = stdio.client
    try:
        client.initialize(root=tmp_path)
        uri = open_python(client, tmp_path, "m.py", "import os\nos.pa\n\ndef f():\n    \n")
        for _ in range(2):
            response = inline(client, uri, 4, 4)
            assert response["result"] == {"items": []}
        client.wait_notification("window/showMessage")
        time.sleep(0.2)
        shown = [m for m in messages(client) if "nonexistent" in m]
        assert len(shown) == 1  # once, not per keystroke
        assert "/nonexistent.gguf" in shown[0] and "models.local.model_path" in shown[0]
        assert "model file not found" in shown[0]
        log = (tmp_path / "state" / "ouzel" / "ouzel.log").read_text()
        assert "/nonexistent.gguf" in log and "models.local.model_path" in log

        # Everything else keeps working: status, the popup with Jedi's items, shutdown.
        status = client.request("ouzel/status")["result"]
        assert status["model"]["state"] == "failed"
        assert "/nonexistent.gguf" in status["model"]["error"]
        popup = client.request(
            "textDocument/completion",
            {"textDocument": {"uri": uri}, "position": {"line": 1, "character": 5}},
            timeout=60,
        )
        assert "result" in popup and isinstance(popup["result"]["items"], list)
        assert client.request("shutdown")["result"] is None
        client.notify("exit")
        assert stdio.process.wait(timeout=20) == 0
    finally:
        stdio.close()


def test_bad_model_from_settings_then_fixed(tmp_path: Path) -> None:
    not_a_model = tmp_path / "notes.gguf"
    not_a_model.write_text("these are notes, not weights")
    stdio = StdioServer(tmp_path)
    client = stdio.client
    try:
        client.configuration = {"models": {"local": {"modelPath": str(not_a_model)}}}
        client.initialize(root=tmp_path)
        time.sleep(0.3)  # the server pulls the configuration after `initialized`
        text = "def add(a, b):\n    return "
        uri = open_python(client, tmp_path, "add.py", text + "\n")
        assert inline(client, uri, 1, 11)["result"] == {"items": []}
        client.wait_notification(
            "window/showMessage", lambda m: "notes.gguf" in m["params"]["message"]
        )
        shown = [m for m in messages(client) if "notes.gguf" in m]
        assert "not a GGUF model file" in shown[0] and "models.local.model_path" in shown[0]

        # The user fixes the setting (empty: the embedded model); suggestions come back.
        client.configuration = {}
        client.notify("workspace/didChangeConfiguration", {"settings": {}})
        time.sleep(0.3)
        response = wait_for(
            lambda: (r := inline(client, uri, 1, 11))["result"]["items"] and r,
            120,
            "a suggestion once the model is fixed",
            every=0,
        )
        assert response["result"]["items"][0]["insertText"].strip()
        assert client.request("ouzel/status")["result"]["model"]["state"] == "ready"
    finally:
        stdio.close()


def test_missing_catalog_model_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUZEL_MODELS_DIR", str(tmp_path / "no-models"))
    stdio = StdioServer(tmp_path, "--model", "qwen2.5-coder-1.5b")
    client = stdio.client
    try:
        client.initialize(root=tmp_path)
        uri = open_python(client, tmp_path, "m.py", "def f():\n    \n")
        for _ in range(2):
            assert inline(client, uri, 1, 4)["result"] == {"items": []}
        client.wait_notification("window/showMessage")
        time.sleep(0.2)
        shown = [m for m in messages(client) if "qwen2.5-coder-1.5b" in m]
        assert len(shown) == 1, shown  # once, not per keystroke
        assert "is not installed" in shown[0]
        assert "run `ouzel models install qwen2.5-coder-1.5b`" in shown[0]
        status = client.request("ouzel/status")["result"]
        assert status["model"]["state"] == "failed"
        assert client.request("shutdown")["result"] is None
    finally:
        stdio.close()
