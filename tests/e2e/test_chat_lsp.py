"""AI code actions and chat over a real `ouzel serve`, with Qwen2.5-Coder-0.5B on a real
`llama_cpp.server` as the remote model (docs/CHAT.md is the protocol under test)."""

from __future__ import annotations

import ast
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chat_rig import (
    GEOMETRY,
    LlamaServer,
    apply_edits,
    open_file,
    progress_values,
    start_llama,
    start_ouzel,
    wait_for,
)
from rpc import StdioServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    server = start_llama(tmp_path_factory.mktemp("llama") / "server.log")
    yield server
    server.stop()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "geometry.py").write_text(GEOMETRY)
    (root / "AGENTS.md").write_text("Keep answers short.\n")
    return root


@pytest.fixture
def ouzel(tmp_path: Path, workspace: Path, llama: LlamaServer) -> Iterator[StdioServer]:
    process = start_ouzel(tmp_path, workspace, llama)
    yield process
    process.close()


def whole(uri: str, line: int, end_line: int | None = None) -> dict[str, Any]:
    end = line if end_line is None else end_line
    return {
        "textDocument": {"uri": uri},
        "range": {"start": {"line": line, "character": 0}, "end": {"line": end, "character": 0}},
        "context": {"diagnostics": []},
    }


def test_code_actions_are_listed_at_once_and_tagged(ouzel: StdioServer, workspace: Path) -> None:
    client = ouzel.client
    init = client.server_requests  # noqa: F841 (server requests are answered by the client)
    uri = open_file(client, workspace / "geometry.py")
    actions = client.request("textDocument/codeAction", whole(uri, 1))["result"]
    titles = [a["title"] for a in actions]
    assert titles == [
        "Ouzel: Explain this code",
        "Ouzel: Add a docstring to area",
        "Ouzel: Write tests for area",
    ]
    assert all(
        a["tags"] == [1] and a["command"]["command"] == "ouzel.codeAction.run" for a in actions
    )
    resolved = client.request("codeAction/resolve", {**actions[1], "command": None})["result"]
    assert resolved["command"]["arguments"][0]["action"] == "docstring"
    diagnostic = {
        "range": {"start": {"line": 5, "character": 4}, "end": {"line": 5, "character": 10}},
        "message": "name 'hieght' is not defined",
    }
    params = whole(uri, 4, 6) | {"context": {"diagnostics": [diagnostic]}}
    kinds = [a["kind"] for a in client.request("textDocument/codeAction", params)["result"]]
    assert "quickfix.ouzel.fix" in kinds and "refactor.rewrite.ouzel.edit" in kinds
    # Out-of-range positions are clamped, not an error.
    far = whole(uri, 999)
    assert client.request("textDocument/codeAction", far)["result"][0]["title"].startswith("Ouzel")


def test_capabilities_declare_resolve_and_kinds(
    tmp_path: Path, workspace: Path, llama: LlamaServer
) -> None:
    process = StdioServer(tmp_path)
    try:
        answer = process.client.request(
            "initialize", {"processId": None, "rootUri": workspace.as_uri(), "capabilities": {}}
        )
        provider = answer["result"]["capabilities"]["codeActionProvider"]
        assert provider["resolveProvider"] is True
        assert "refactor.ouzel" in provider["codeActionKinds"]
        commands = answer["result"]["capabilities"]["executeCommandProvider"]["commands"]
        assert {"ouzel.codeAction.run", "ouzel.chat", "ouzel.applyCodeBlock"} <= set(commands)
    finally:
        process.close()


def test_add_docstring_proposes_annotated_hunks_and_a_subset_applies_exactly(
    ouzel: StdioServer, workspace: Path
) -> None:
    client = ouzel.client
    path = workspace / "geometry.py"
    uri = open_file(client, path)
    received: list[dict[str, Any]] = []

    def answer(message: dict[str, Any]) -> dict[str, Any]:
        received.append(message["params"])
        return {"applied": True}

    client.request_handlers["workspace/applyEdit"] = answer
    # Select both functions and ask for docstrings: one hunk per function.
    actions = client.request("textDocument/codeAction", whole(uri, 0, 6))["result"]
    edit = next(a for a in actions if a["kind"] == "refactor.rewrite.ouzel.edit")
    argument = dict(edit["command"]["arguments"][0])
    argument["instruction"] = "Add a one-line docstring to each function. Change nothing else."
    started = time.monotonic()
    result = client.request(
        "workspace/executeCommand",
        {"command": "ouzel.codeAction.run", "arguments": [argument]},
        timeout=240,
    )["result"]
    elapsed = time.monotonic() - started
    assert result["status"] == "applied", (result, elapsed)
    assert len(received) == 1
    workspace_edit = received[0]["edit"]
    (document_edit,) = workspace_edit["documentChanges"]
    assert document_edit["textDocument"] == {"uri": uri, "version": 1}
    edits = document_edit["edits"]
    annotations = workspace_edit["changeAnnotations"]
    assert len(edits) == len(annotations) == result["hunks"] >= 2
    assert {e["annotationId"] for e in edits} == set(annotations)
    assert all(a["needsConfirmation"] is True for a in annotations.values())
    assert len({a["label"] for a in annotations.values()}) == len(annotations)
    # The user accepts the first hunk and rejects the rest: the file holds exactly that.
    accepted = edits[:1]
    new_text = apply_edits(GEOMETRY, accepted)
    path.write_text(new_text)
    tree = ast.parse(new_text)
    functions = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    assert ast.get_docstring(functions["area"])
    assert ast.get_docstring(functions["perimeter"]) is None
    assert new_text.endswith("def perimeter(width, height):\n    return 2 * (width + height)\n")
    assert path.read_text() == new_text
    # Progress streamed on a server-created token, with the model's deltas.
    create = [
        r["params"]["token"]
        for r in client.server_requests
        if r["method"] == "window/workDoneProgress/create"
        and str(r["params"]["token"]).startswith("ouzel-code-action")
    ]
    token = create[-1]
    values = progress_values(client, token)
    assert values[0]["kind"] == "begin" and values[0]["action"] == "edit"
    assert values[-1]["kind"] == "end"
    assert "".join(v.get("delta", "") for v in values if v["kind"] == "report") == result["reply"]


def test_an_edit_for_an_old_version_is_dropped(ouzel: StdioServer, workspace: Path) -> None:
    client = ouzel.client
    uri = open_file(client, workspace / "geometry.py")
    client.request_handlers["workspace/applyEdit"] = lambda m: {"applied": True}
    actions = client.request("textDocument/codeAction", whole(uri, 1))["result"]
    argument = next(a for a in actions if "docstring" in a["kind"])["command"]["arguments"][0]
    client.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": uri, "version": 2},
            "contentChanges": [
                {
                    "range": {
                        "start": {"line": 6, "character": 0},
                        "end": {"line": 6, "character": 0},
                    },
                    "text": "# new\n",
                }
            ],
        },
    )
    result = client.request(
        "workspace/executeCommand", {"command": "ouzel.codeAction.run", "arguments": [argument]}
    )["result"]
    assert result["status"] == "stale"
    assert not [r for r in client.server_requests if r["method"] == "workspace/applyEdit"]


def test_chat_streams_cites_a_workspace_file_and_survives_a_restart(
    tmp_path: Path, workspace: Path, llama: LlamaServer
) -> None:
    process = start_ouzel(tmp_path, workspace, llama)
    client = process.client
    try:
        uri = open_file(client, workspace / "geometry.py")
        result = client.request(
            "ouzel/chat",
            {
                "message": "What does the perimeter function return?",
                "workDoneToken": "chat-1",
                "textDocument": {"uri": uri},
                "selection": {
                    "start": {"line": 4, "character": 0},
                    "end": {"line": 6, "character": 0},
                },
            },
            timeout=240,
        )["result"]
        assert result["reply"].strip() and result["stopReason"] in ("stop", "length")
        cited = [r for r in result["references"] if r["path"] == "geometry.py"]
        assert cited and cited[0]["line"] == 5 and cited[0]["source"] == "selection"
        assert [rule["path"] for rule in result["rules"]] == ["AGENTS.md"]
        values = progress_values(client, "chat-1")
        reports = [v for v in values if v["kind"] == "report"]
        assert values[0]["kind"] == "begin" and values[-1]["kind"] == "end"
        assert len(reports) >= 2 and "".join(v["delta"] for v in reports) == result["reply"]
        assert all(v["conversationId"] == result["conversationId"] for v in values)
        assert reports[0]["references"] == result["references"]
    finally:
        process.close()
    again = start_ouzel(tmp_path, workspace, llama)
    try:
        listed = again.client.request("ouzel/chatList", {})["result"]["conversations"]
        assert [c["conversationId"] for c in listed] == [result["conversationId"]]
        loaded = again.client.request(
            "ouzel/chatLoad", {"conversationId": result["conversationId"]}
        )["result"]
        assert loaded["turns"][0]["reply"] == result["reply"]
        assert loaded["turns"][0]["status"] == "done"
        hits = again.client.request("ouzel/chatSearch", {"query": "perimeter"})["result"]["hits"]
        assert hits and hits[0]["turnId"] == result["turnId"]
    finally:
        again.close()


def test_cancel_stops_a_chat_stream(ouzel: StdioServer) -> None:
    client = ouzel.client
    msg_id = client.request_async(
        "ouzel/chat",
        {
            "message": "Write a long essay about sorting algorithms.",
            "workDoneToken": "long-1",
            "context": {"index": False, "openFiles": False},
        },
    )
    wait_for(
        "the first streamed delta",
        lambda: [v for v in progress_values(client, "long-1") if v["kind"] == "report"],
        timeout=120,
    )
    cancelled_at = time.monotonic()
    client.notify("window/workDoneProgress/cancel", {"token": "long-1"})
    result = client.wait_response(msg_id, timeout=60)["result"]
    assert result["cancelled"] is True and result["stopReason"] == "cancelled"
    assert time.monotonic() - cancelled_at < 30  # stopped, not run to max_tokens
    loaded = client.request("ouzel/chatLoad", {"conversationId": result["conversationId"]})
    assert loaded["result"]["turns"][0]["status"] == "cancelled"


def test_cancel_request_stops_a_running_code_action(ouzel: StdioServer, workspace: Path) -> None:
    client = ouzel.client
    uri = open_file(client, workspace / "geometry.py")
    client.request_handlers["workspace/applyEdit"] = lambda m: {"applied": True}
    actions = client.request("textDocument/codeAction", whole(uri, 1))["result"]
    argument = dict(actions[0]["command"]["arguments"][0])  # explain: a long answer
    msg_id = client.request_async(
        "workspace/executeCommand", {"command": "ouzel.codeAction.run", "arguments": [argument]}
    )
    wait_for(
        "a streamed delta",
        lambda: [
            n
            for n in list(client.notifications)
            if n["method"] == "$/progress" and n["params"]["value"].get("delta")
        ],
        timeout=120,
    )
    client.notify("$/cancelRequest", {"id": msg_id})
    answer = client.wait_response(msg_id, timeout=60)
    assert "error" in answer or answer["result"]["status"] == "cancelled", answer
    assert client.request("ouzel/status")["result"]  # the server keeps serving


@pytest.mark.parametrize(
    ("method", "params", "expected"),
    [
        ("ouzel/chat", {}, "`message`"),
        ("ouzel/chat", {"message": ""}, "`message`"),
        ("ouzel/chat", [1, 2], "object"),
        ("ouzel/chat", {"message": "hi", "conversationId": "c-nope"}, "unknown conversation"),
        ("ouzel/chat", {"message": "hi", "textDocument": {"uri": "file:///nope.py"}}, "not open"),
        ("ouzel/chat", {"message": "hi", "selection": {}}, "textDocument"),
        ("ouzel/chat", {"message": "hi", "workDoneToken": {"x": 1}}, "workDoneToken"),
        ("ouzel/chatLoad", {"conversationId": "c-nope"}, "unknown conversation"),
        ("ouzel/chatLoad", {}, "conversationId"),
        ("ouzel/chatDelete", {"conversationId": "c-nope"}, "unknown conversation"),
        ("ouzel/chatSearch", {"query": "x", "limit": -1}, "limit"),
        (
            "workspace/executeCommand",
            {"command": "ouzel.codeAction.run", "arguments": []},
            "one argument",
        ),
        (
            "workspace/executeCommand",
            {"command": "ouzel.codeAction.run", "arguments": [{"action": "dance"}]},
            "`action`",
        ),
        ("workspace/executeCommand", {"command": "ouzel.chat", "arguments": ["hi"]}, "object"),
    ],
)
def test_bad_params_are_clear_errors(
    ouzel: StdioServer, method: str, params: Any, expected: str
) -> None:
    answer = ouzel.client.request(method, params)
    assert answer["error"]["code"] == -32602, answer
    assert expected in answer["error"]["message"]
    assert ouzel.client.request("ouzel/chatList", {})["result"] == {"conversations": []}


def test_edit_needs_an_instruction_and_a_valid_range(ouzel: StdioServer, workspace: Path) -> None:
    client = ouzel.client
    uri = open_file(client, workspace / "geometry.py")
    base = {
        "action": "edit",
        "textDocument": {"uri": uri, "version": 1},
        "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}},
    }
    for argument, expected in [
        (base, "instruction"),
        (base | {"instruction": "  "}, "instruction"),
        (base | {"instruction": "x", "range": {"start": {"line": -1}}}, "range"),
        (base | {"action": "fix"}, "diagnostic"),
        (base | {"textDocument": {"uri": uri + "x"}}, "not open"),
    ]:
        answer = client.request(
            "workspace/executeCommand", {"command": "ouzel.codeAction.run", "arguments": [argument]}
        )
        assert answer["error"]["code"] == -32602 and expected in answer["error"]["message"], answer
