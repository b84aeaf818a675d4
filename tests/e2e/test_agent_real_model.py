"""The agent with a real tool-calling model through the real LSP server: Qwen2.5-Coder-1.5B-
Instruct behind `python -m llama_cpp.server` as the `remote` profile, a real `ouzel serve`
over stdio, and a test client that answers every `workspace/applyEdit` as an editor would
(all hunks into its buffer, didChange, never saving), for a two-file rename.

`--chat_format chatml-function-calling` is the format that makes this model's tool calls
work there: the GGUF's own template lets the 1.5B invent tool names in fenced JSON. That
format streams only the first word of a tool call and drops `tool` messages, so the
profile sets `stream_tool_calls = false` and `tool_results_as_user = true`. Slow on two
shared cores (each model call takes tens of seconds).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_rig import Editor, progress, tree
from rpc import StdioServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agent"))
from agent_models import qwen_15b
from real_servers import LlamaServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

# Seen on 2 shared cores: the 1.5B renames util.py, fixes main.py's call after the "did you
# mean" round, and often runs out of steps before the import line (it rereads files). So
# this test asserts what must hold whatever the model manages (every file that changed was
# shown to the user as an applyEdit first and holds what the editor's buffer holds, nothing
# else changed, the turn undoes byte for byte) and that its tool calls drove the loop;
# benchmarks/agent_edits.py measures how often the task is finished.

API_KEY = "agent-e2e-key"
KEY_VARIABLE = "OUZEL_AGENT_E2E_KEY"


@pytest.fixture(scope="module")
def qwen_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    model = qwen_15b()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    server = LlamaServer(
        API_KEY, log, model=model, chat_format="chatml-function-calling", n_ctx=4096
    )
    server.start(timeout=300)
    try:
        yield server
    finally:
        server.stop()


def test_a_real_model_edits_only_through_confirmed_proposals(
    qwen_server: LlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, API_KEY)  # inherited by `ouzel serve`
    ws = tmp_path / "repo"
    ws.mkdir()
    (ws / "util.py").write_text("def add(a, b):\n    return a + b\n")
    (ws / "main.py").write_text("from util import add\n\nprint(add(1, 2))\n")
    before = tree(ws)
    process = StdioServer(tmp_path)
    try:
        client = process.client
        options = {
            "models": {
                "remote": {
                    "backend": "openai",
                    "base_url": qwen_server.base_url,
                    "api_key_env": KEY_VARIABLE,
                    "read_timeout_s": 600,
                    "stream_tool_calls": False,
                    "tool_results_as_user": True,
                }
            },
            "routing": {"agent": ["remote"]},
            "index": {"enabled": False},
            "chat": {"max_tokens": 200},
            "agent": {
                "max_steps": 8,
                "max_wall_s": 420,
                "tools": ["read_file", "propose_edit"],
            },
        }
        client.initialize(root=ws, options=options)
        editor = Editor(client)
        message = (
            "Rename the function `add` to `plus`. Two files: in util.py change "
            "`def add(a, b):` to `def plus(a, b):`; in main.py change `add` to `plus` in the "
            "import and in the call. Then stop."
        )
        response = client.request(
            "workspace/executeCommand",
            {"command": "ouzel.agent", "arguments": [{"message": message, "workDoneToken": "q"}]},
            timeout=600,
        )
        result = response["result"]
        after = tree(ws)
        changed = {path for path in set(before) | set(after) if before.get(path) != after.get(path)}
        # The real model drove the loop: its tool calls were parsed, executed and streamed.
        tools = [v["tool"] for v in progress(client, "q") if "tool" in v]
        print(f"status {result['status']}, steps {result['steps']}, edits {result['edits']}")
        print("tools:", [(t["name"], t["summary"], t["status"]) for t in tools])
        assert tools, result
        assert result["backend"] == "remote"
        # Every file that changed on disk was shown to the user first and holds exactly what
        # the editor's buffer holds (the server wrote what was accepted, once); nothing else
        # changed.
        proposed = {
            change["textDocument"]["uri"]
            for edit in editor.edits
            for change in edit["edit"]["documentChanges"]
            if "textDocument" in change
        }
        assert {(ws / path).as_uri() for path in changed} <= proposed, (changed, proposed)
        for path in changed:
            assert (ws / path).read_text() == editor.text((ws / path).as_uri())
        assert len(editor.edits) == result["edits"]["proposed"] - result["edits"]["refused"]
        if "add" not in (ws / "main.py").read_text():  # the whole task was done: it runs
            run = subprocess.run(
                [sys.executable, "main.py"], cwd=ws, capture_output=True, text=True, check=False
            )
            assert run.stdout.strip() == "3", run.stderr
        # The whole turn is undone in one step, byte for byte (a turn that wrote nothing
        # has nothing to undo).
        undone = client.request(
            "workspace/executeCommand", {"command": "ouzel.agent.undo", "arguments": []}
        )
        if changed:
            assert sorted(undone["result"]["restored"]) == sorted(changed), undone
        else:
            assert undone["error"]["code"] == -32602
        assert tree(ws) == before
    finally:
        process.close()
