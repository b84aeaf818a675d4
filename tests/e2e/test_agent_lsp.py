"""The agent over LSP stdio (docs/AGENT.md): a real `ouzel serve`, the real loop and OpenAI
backend, and a scripted OpenAI-compatible model replaying tool calls. The test client is an
editor: it keeps buffers, answers `workspace/applyEdit` by applying all or some hunks to its
buffer and sending didChange (never saving), and answers `window/showMessageRequest`."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_rig import Editor, progress, tree
from rpc import RawClient, StdioServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from scripted_openai_server import (
    Reply,
    ScriptedServer,
    Seen,
    chat_text_events,
    models_reply,
    tool_calls_events,
)

pytestmark = pytest.mark.e2e

INVALID_PARAMS = -32602
REQUEST_CANCELLED = -32800

GEOMETRY = (
    "def area(width, height):\n"
    "    return width * height\n"
    "\n"
    "\n"
    "def perimeter(width, height):\n"
    "    return 2 * (width + height)\n"
)
GEOMETRY_NEW = GEOMETRY.replace("def area(", "def surface(").replace(
    "2 * (width + height)", "2 * width + 2 * height"
)
MAIN = "from geometry import area\n\n\nprint(area(2, 3))\n"
MAIN_NEW = MAIN.replace("area", "surface")
NOTES = "# Changes\n\n- `area` is now `surface`.\n"

Step = list[tuple[str, dict[str, Any]]]


class Plan:
    """The scripted model: each model call answers the next step's tool calls (after
    running its hook, if any), then a final text."""

    def __init__(self) -> None:
        self.steps: list[Step | Reply] = []
        self.hooks: dict[int, Callable[[], None]] = {}
        self.calls = 0
        self.answer = "Renamed area to surface in both files."

    def script(self, seen: Seen) -> Reply:
        if seen.path.endswith("/models"):
            return models_reply("scripted")
        self.calls += 1
        hook = self.hooks.get(self.calls)
        if hook is not None:
            hook()
        if not self.steps:
            return Reply(events=chat_text_events([self.answer]))
        step = self.steps.pop(0)
        if isinstance(step, Reply):
            return step
        calls = [
            (f"call_{self.calls}_{i}", name, json.dumps(args))
            for i, (name, args) in enumerate(step)
        ]
        return Reply(events=tool_calls_events(calls))


@pytest.fixture
def model() -> Iterator[tuple[Plan, ScriptedServer]]:
    plan = Plan()
    with ScriptedServer(plan.script) as server:
        yield plan, server


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "geometry.py").write_text(GEOMETRY)
    (root / "main.py").write_text(MAIN)
    return root


def start(tmp_path: Path, workspace: Path, server: ScriptedServer, **agent: Any) -> StdioServer:
    process = StdioServer(tmp_path)
    options = {
        "models": {"remote": {"backend": "openai", "base_url": server.base_url}},
        "routing": {"agent": ["remote"], "chat": ["remote"]},
        "index": {"enabled": False},
        "agent": agent,
    }
    response = process.client.initialize(root=workspace, options=options)
    commands = response["result"]["capabilities"]["executeCommandProvider"]["commands"]
    assert {"ouzel.agent", "ouzel.agent.undo"} <= set(commands)
    return process


@pytest.fixture
def ouzel(
    tmp_path: Path, workspace: Path, model: tuple[Plan, ScriptedServer]
) -> Iterator[StdioServer]:
    process = start(tmp_path, workspace, model[1])
    yield process
    process.close()


def run_agent(client: RawClient, params: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    return client.request(
        "workspace/executeCommand",
        {"command": "ouzel.agent", "arguments": [params]},
        timeout=timeout,
    )


def undo(client: RawClient, *arguments: Any) -> dict[str, Any]:
    return client.request(
        "workspace/executeCommand", {"command": "ouzel.agent.undo", "arguments": list(arguments)}
    )


def two_file_plan() -> list[Step | Reply]:
    return [
        [("read_file", {"path": "geometry.py"}), ("read_file", {"path": "main.py"})],
        [("propose_edit", {"path": "geometry.py", "old_text": GEOMETRY, "new_text": GEOMETRY_NEW})],
        [("propose_edit", {"path": "main.py", "old_text": MAIN, "new_text": MAIN_NEW})],
        [("create_file", {"path": "notes/CHANGES.md", "content": NOTES})],
    ]


def test_two_file_change_accepted_then_undone(
    ouzel: StdioServer, workspace: Path, model: tuple[Plan, ScriptedServer]
) -> None:
    plan, _ = model
    client = ouzel.client
    editor = Editor(client)
    geometry_uri = editor.open(workspace / "geometry.py")  # open; main.py is not
    before = tree(workspace)
    plan.steps = two_file_plan()
    response = run_agent(
        client,
        {
            "message": "Rename area to surface",
            "workDoneToken": "agent-1",
            "textDocument": {"uri": geometry_uri},
        },
    )
    result = response["result"]
    assert result["status"] == "done", result
    assert result["answer"] == plan.answer
    assert (workspace / "geometry.py").read_text() == GEOMETRY_NEW
    assert (workspace / "main.py").read_text() == MAIN_NEW
    assert (workspace / "notes" / "CHANGES.md").read_text() == NOTES
    # The editor's buffers hold what is on disk: no second edit was sent.
    assert len(editor.edits) == 3
    assert editor.text(geometry_uri) == GEOMETRY_NEW
    files = {f["path"]: f for f in result["files"]}
    assert files["geometry.py"] == {
        "path": "geometry.py",
        "uri": geometry_uri,
        "created": False,
        "hunks": 2,
        "accepted": 2,
    }
    assert files["main.py"]["hunks"] == files["main.py"]["accepted"] == 2
    assert files["notes/CHANGES.md"]["created"] is True
    assert result["edits"] == {
        "proposed": 3,
        "applied": 3,
        "rejected": 0,
        "refused": 0,
        "retried": 0,
    }
    assert result["backend"] == "remote" and result["steps"] == 5
    assert result["undo"] == {
        "title": "Undo this agent turn",
        "command": "ouzel.agent.undo",
        "arguments": [{"turnId": result["turnId"]}],
    }
    # The edits: one annotation per hunk, all needing confirmation, labelled like code actions.
    first = editor.edits[0]
    assert first["label"] == "Ouzel agent: geometry.py"
    (document_edit,) = first["edit"]["documentChanges"]
    assert document_edit["textDocument"] == {"uri": geometry_uri, "version": 1}
    annotations = first["edit"]["changeAnnotations"]
    assert [annotations[e["annotationId"]]["label"] for e in document_edit["edits"]] == [
        "Change 1 of 2: line 1 (replace)",
        "Change 2 of 2: line 6 (replace)",
    ]
    assert all(a["needsConfirmation"] is True for a in annotations.values())
    assert all(a["description"] == "Ouzel agent: geometry.py" for a in annotations.values())
    second = editor.edits[1]["edit"]["documentChanges"][0]
    assert second["textDocument"]["version"] is None  # main.py was not open
    created = editor.edits[2]
    assert created["label"] == "Ouzel agent: create notes/CHANGES.md"
    create, insert = created["edit"]["documentChanges"]
    assert create["kind"] == "create" and create["options"] == {
        "overwrite": False,
        "ignoreIfExists": False,
    }
    assert create["annotationId"] in created["edit"]["changeAnnotations"]
    assert insert["textDocument"]["version"] is None and insert["edits"][0]["newText"] == NOTES
    # Streaming.
    values = progress(client, "agent-1")
    assert values[0]["kind"] == "begin" and values[0]["title"] == "Ouzel agent"
    assert values[0]["mode"] == "agent" and values[0]["cancellable"] is True
    assert values[0]["turnId"] == result["turnId"]
    reports = [v for v in values if v["kind"] == "report"]
    tools = [r["tool"] for r in reports if "tool" in r]
    assert [t["name"] for t in tools] == [
        "read_file",
        "read_file",
        "propose_edit",
        "propose_edit",
        "create_file",
    ]
    assert tools[0] == {"name": "read_file", "summary": "geometry.py", "status": "ok"}
    assert reports[0]["message"].startswith("step 1/30: ")
    assert any(r.get("delta") == plan.answer for r in reports)
    assert values[-1] == {
        "kind": "end",
        "message": "Ouzel agent: 3 file(s) changed",
        "conversationId": result["conversationId"],
        "turnId": result["turnId"],
        "mode": "agent",
    }
    # History: the turn is stored as an agent turn with its tools.
    loaded = client.request("ouzel/chatLoad", {"conversationId": result["conversationId"]})
    (turn,) = loaded["result"]["turns"]
    assert turn["mode"] == "agent" and turn["status"] == "done" and turn["reply"] == plan.answer
    assert [t["name"] for t in turn["tools"]] == [t["name"] for t in tools]
    # Undo: both files back byte for byte, the created file and its folder gone, the open
    # buffer reset by one applyEdit.
    undone = undo(client, {"turnId": result["turnId"]})["result"]
    assert sorted(undone["restored"]) == ["geometry.py", "main.py"]
    assert undone["deleted"] == ["notes/CHANGES.md"]
    assert tree(workspace) == before
    undo_edit = editor.edits[-1]
    assert undo_edit["label"] == "Ouzel agent: undo"
    assert (
        "changeAnnotations" not in undo_edit["edit"] or not undo_edit["edit"]["changeAnnotations"]
    )
    kinds = [c.get("kind", "edit") for c in undo_edit["edit"]["documentChanges"]]
    assert sorted(kinds) == ["delete", "edit", "edit"]  # geometry.py, main.py (opened), notes
    assert editor.text(geometry_uri) == GEOMETRY
    # Nothing left to undo.
    again = undo(client)
    assert (
        again["error"]["code"] == INVALID_PARAMS and "nothing to undo" in again["error"]["message"]
    )


def test_only_the_first_hunk_of_each_file_accepted(
    ouzel: StdioServer, workspace: Path, model: tuple[Plan, ScriptedServer]
) -> None:
    plan, _ = model
    client = ouzel.client
    editor = Editor(client)
    editor.open(workspace / "geometry.py")
    editor.take = lambda uri, index, annotation: annotation["label"].startswith("Change 1 of")
    plan.steps = two_file_plan()[:3]
    result = run_agent(client, {"message": "Rename area to surface"})["result"]
    assert result["status"] == "done", result
    only_first = GEOMETRY.replace("def area(", "def surface(")
    assert (workspace / "geometry.py").read_text() == only_first
    assert (
        workspace / "main.py"
    ).read_text() == "from geometry import surface\n\n\nprint(area(2, 3))\n"
    assert [(f["path"], f["hunks"], f["accepted"]) for f in result["files"]] == [
        ("geometry.py", 2, 1),
        ("main.py", 2, 1),
    ]
    assert result["edits"]["applied"] == 2
    # The model heard which hunks were rejected.
    tool_texts = [
        m["content"]
        for seen in model[1].seen
        if isinstance(seen.body, dict)
        for m in seen.body.get("messages", [])
        if m.get("role") == "tool"
    ]
    assert any("rejected hunk(s) 2 of 2" in text for text in tool_texts)
    undone = undo(client)["result"]
    assert sorted(undone["restored"]) == ["geometry.py", "main.py"]
    assert (workspace / "geometry.py").read_text() == GEOMETRY
    assert (workspace / "main.py").read_text() == MAIN


def test_an_editor_that_saves_the_edit_itself_is_not_overwritten(
    ouzel: StdioServer, workspace: Path, model: tuple[Plan, ScriptedServer]
) -> None:
    plan, _ = model
    client = ouzel.client
    editor = Editor(client)
    editor.saves = True
    before = tree(workspace)
    plan.steps = two_file_plan()
    result = run_agent(client, {"message": "Rename area to surface"})["result"]
    assert result["edits"]["applied"] == 3 and result["edits"]["refused"] == 0, result
    assert (workspace / "geometry.py").read_text() == GEOMETRY_NEW
    assert (workspace / "notes" / "CHANGES.md").read_text() == NOTES
    undone = undo(client)["result"]
    assert "problems" not in undone, undone
    assert tree(workspace) == before


def test_a_protected_file_refused_by_the_user_writes_nothing(
    ouzel: StdioServer, workspace: Path, model: tuple[Plan, ScriptedServer]
) -> None:
    plan, _ = model
    client = ouzel.client
    editor = Editor(client)
    editor.answer_question = lambda question: "Refuse"
    before = tree(workspace)
    settings = '{"chat.tools.autoApprove": true}\n'
    plan.steps = [[("create_file", {"path": ".vscode/settings.json", "content": settings})]]
    result = run_agent(client, {"message": "Follow the README"})["result"]
    assert result["status"] == "done"
    (question,) = editor.questions
    assert question["type"] == 2  # Warning
    assert ".vscode/settings.json" in question["message"] and "protected" in question["message"]
    assert [a["title"] for a in question["actions"]] == ["Allow this change", "Refuse"]
    assert editor.edits == []  # refused before any applyEdit
    assert tree(workspace) == before
    assert result["edits"] == {
        "proposed": 1,
        "applied": 0,
        "rejected": 1,
        "refused": 0,
        "retried": 0,
    }
    assert result["undo"] is None
    # Allowed: the applyEdit names the risk in every annotation; the user still decides.
    editor.answer_question = lambda question: "Allow this change"
    editor.applied = False
    plan.steps = [[("create_file", {"path": ".vscode/settings.json", "content": settings})]]
    result = run_agent(client, {"message": "Follow the README"})["result"]
    (edit,) = editor.edits
    assert all("PROTECTED" in a["description"] for a in edit["edit"]["changeAnnotations"].values())
    assert tree(workspace) == before and result["edits"]["rejected"] == 1


def test_an_edit_against_a_buffer_changed_since_the_read_is_refused(
    ouzel: StdioServer, workspace: Path, model: tuple[Plan, ScriptedServer]
) -> None:
    plan, _ = model
    client = ouzel.client
    editor = Editor(client)
    uri = editor.open(workspace / "geometry.py")
    typed = GEOMETRY + "\n\n# the user's own line\n"
    plan.steps = two_file_plan()[:2]
    # The user types in the buffer while the model thinks about its edit (not saved).
    plan.hooks[2] = lambda: editor.change(uri, typed)
    time.sleep(0.1)
    result = run_agent(client, {"message": "Rename area to surface"})["result"]
    assert editor.edits == []
    records = result["edits"]
    assert records["refused"] == 1 and records["applied"] == 0
    assert (workspace / "geometry.py").read_text() == GEOMETRY
    assert editor.text(uri) == typed
    loaded = client.request("ouzel/chatLoad", {"conversationId": result["conversationId"]})
    tools = loaded["result"]["turns"][0]["tools"]
    assert tools[-1]["status"] == "refused" and "changed since you read it" in tools[-1]["reason"]


def test_the_agent_reads_and_edits_the_buffer_not_the_disk(
    ouzel: StdioServer, workspace: Path, model: tuple[Plan, ScriptedServer]
) -> None:
    plan, _ = model
    client = ouzel.client
    editor = Editor(client)
    uri = editor.open(workspace / "geometry.py")
    unsaved = GEOMETRY.replace("width * height", "height * width")
    editor.change(uri, unsaved)
    new = unsaved.replace("def area(", "def surface(")
    plan.steps = [
        [("read_file", {"path": "geometry.py"})],
        [
            (
                "propose_edit",
                {"path": "geometry.py", "old_text": "def area(", "new_text": "def surface("},
            )
        ],
    ]
    result = run_agent(client, {"message": "Rename area"})["result"]
    assert result["edits"]["applied"] == 1, result
    assert (workspace / "geometry.py").read_text() == new == editor.text(uri)
    sent = [
        m["content"]
        for seen in model[1].seen
        if isinstance(seen.body, dict)
        for m in seen.body.get("messages", [])
        if m.get("role") == "tool"
    ]
    assert "height * width" in sent[0]
    # Undo puts the disk back as it was and the buffer back as the user had it (unsaved).
    undo(client)
    assert (workspace / "geometry.py").read_text() == GEOMETRY
    assert editor.text(uri) == unsaved


def test_cancel_mid_turn(
    ouzel: StdioServer, workspace: Path, model: tuple[Plan, ScriptedServer]
) -> None:
    plan, _ = model
    client = ouzel.client
    Editor(client)
    before = tree(workspace)
    plan.steps = [[("read_file", {"path": "geometry.py"})], Reply(hang=True)]
    msg_id = client.request_async(
        "workspace/executeCommand",
        {"command": "ouzel.agent", "arguments": [{"message": "go", "workDoneToken": "c-1"}]},
    )
    deadline = time.monotonic() + 30
    while plan.calls < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert plan.calls == 2
    # One turn at a time per session: a second one is an error result, nothing starts.
    busy = run_agent(client, {"message": "another"})["result"]
    assert busy["status"] == "error" and "still running" in busy["error"], busy
    assert busy["turnId"] is None and plan.calls == 2
    started = time.monotonic()
    client.notify("$/cancelRequest", {"id": msg_id})
    # As LSP says, a cancelled request answers -32800; the turn is stored as cancelled.
    response = client.wait_response(msg_id, timeout=10)
    assert response["error"]["code"] == REQUEST_CANCELLED, response
    assert time.monotonic() - started < 5
    assert tree(workspace) == before
    client.wait_notification(
        "$/progress",
        lambda n: n["params"]["token"] == "c-1" and n["params"]["value"]["kind"] == "end",
    )
    values = progress(client, "c-1")
    assert values[-1]["message"] == "Ouzel agent: 0 file(s) changed (cancelled)"
    loaded = client.request("ouzel/chatLoad", {"conversationId": values[0]["conversationId"]})
    (turn,) = loaded["result"]["turns"]
    assert turn["status"] == "cancelled" and turn["mode"] == "agent"
    assert [t["name"] for t in turn["tools"]] == ["read_file"]
    # The same through the progress token, with ouzel/chat in agent mode.
    plan.steps = [Reply(hang=True)]
    calls = plan.calls
    msg_id = client.request_async(
        "ouzel/chat", {"message": "go", "mode": "agent", "workDoneToken": "c-2"}
    )
    while plan.calls == calls and time.monotonic() < deadline + 30:
        time.sleep(0.02)
    client.notify("window/workDoneProgress/cancel", {"token": "c-2"})
    result = client.wait_response(msg_id, timeout=10)["result"]
    assert result["status"] == "cancelled"
    # The server keeps serving.
    assert client.request("ouzel/status")["result"]["version"]


def test_bad_params_are_invalid_params(ouzel: StdioServer, workspace: Path) -> None:
    client = ouzel.client
    cases: list[tuple[Any, str]] = [
        ([], "takes one argument"),
        ([{"message": ""}], "`message`"),
        ([{}], "`message`"),
        (["text"], "object"),
        ([{"message": "x" * 20001}], "longer than"),
        ([{"message": "go", "conversationId": 7}], "`conversationId`"),
        ([{"message": "go", "conversationId": "c-nope"}], "unknown conversation"),
        ([{"message": "go", "workDoneToken": True}], "`workDoneToken`"),
        ([{"message": "go", "textDocument": {"uri": (workspace / "x.py").as_uri()}}], "not open"),
        ([{"message": "go", "selection": {}}], "needs `textDocument`"),
    ]
    for arguments, expected in cases:
        answer = client.request(
            "workspace/executeCommand", {"command": "ouzel.agent", "arguments": arguments}
        )
        assert answer.get("error", {}).get("code") == INVALID_PARAMS, (arguments, answer)
        assert expected in answer["error"]["message"], (expected, answer)
    for arguments, expected in [
        ([{"turnId": "t-unknown"}], "unknown agent turn"),
        ([{"turnId": 3}], "`turnId`"),
        (["x"], "{turnId}"),
        ([], "nothing to undo"),
    ]:
        answer = undo(client, *arguments)
        assert answer.get("error", {}).get("code") == INVALID_PARAMS, (arguments, answer)
        assert expected in answer["error"]["message"], (expected, answer)
    answer = client.request("ouzel/chat", {"message": "go", "mode": "yolo"})
    assert answer["error"]["code"] == INVALID_PARAMS and "`mode`" in answer["error"]["message"]
    assert client.request("ouzel/status")["result"]["version"]


def test_no_model_is_an_error_result_not_a_crash(tmp_path: Path, workspace: Path) -> None:
    with ScriptedServer(lambda seen: Reply(status=500, json={"error": "down"})) as server:
        process = start(tmp_path, workspace, server)
        try:
            result = run_agent(process.client, {"message": "go"})["result"]
            assert result["status"] == "error" and result["error"], result
            assert result["undo"] is None
            assert process.client.request("ouzel/status")["result"]["version"]
        finally:
            process.close()


def test_agent_tools_limits_what_the_model_is_offered(
    tmp_path: Path, workspace: Path, model: tuple[Plan, ScriptedServer]
) -> None:
    plan, server = model
    process = start(tmp_path, workspace, server, tools=["read_file", "propose_edit"])
    try:
        plan.steps = [[("create_file", {"path": "x.py", "content": "x = 1\n"})]]
        result = run_agent(process.client, {"message": "go"})["result"]
        offered = [
            {tool["function"]["name"] for tool in seen.body.get("tools", [])}
            for seen in server.seen
            if isinstance(seen.body, dict) and "messages" in seen.body
        ]
        assert offered and all(names == {"read_file", "propose_edit"} for names in offered)
        # A call to a tool that was not offered is refused like an unknown one.
        assert result["edits"]["refused"] == 1 and not (workspace / "x.py").exists()
    finally:
        process.close()


def test_commands_are_asked_with_their_argv_and_destructive_ones_twice(
    tmp_path: Path, workspace: Path, model: tuple[Plan, ScriptedServer]
) -> None:
    plan, server = model
    process = start(tmp_path, workspace, server, run_command=True)
    try:
        client = process.client
        editor = Editor(client)
        answers = iter(["Run", "Run", "Refuse"])
        editor.answer_question = lambda question: next(answers)
        (workspace / "sub").mkdir()
        (workspace / "sub" / "keep.txt").write_text("keep\n")
        plan.steps = [
            [("run_command", {"argv": ["touch", "made.txt"]})],
            [("run_command", {"argv": ["rm", "-r", "sub"], "cwd": "."})],
        ]
        result = run_agent(client, {"message": "tidy up"})["result"]
        assert result["status"] == "done", result
        first, second, third = editor.questions
        assert '["touch", "made.txt"]' in first["message"] and str(workspace) in first["message"]
        assert [a["title"] for a in first["actions"]] == ["Run", "Refuse"]
        assert '["rm", "-r", "sub"]' in second["message"]
        assert "destructive" in third["message"] and "recursive delete" in third["message"]
        assert [a["title"] for a in third["actions"]] == ["Run anyway", "Refuse"]
        assert (workspace / "made.txt").exists()  # confirmed once, ran
        assert (workspace / "sub" / "keep.txt").exists()  # refused at the second question
        loaded = client.request("ouzel/chatLoad", {"conversationId": result["conversationId"]})
        tools = loaded["result"]["turns"][0]["tools"]
        assert [t["status"] for t in tools] == ["ok", "refused"]
        assert tools[0]["summary"] == '["touch", "made.txt"]'
    finally:
        process.close()


def test_undo_leaves_what_the_user_changed_after_the_agent_alone(
    ouzel: StdioServer, workspace: Path, model: tuple[Plan, ScriptedServer]
) -> None:
    plan, _ = model
    client = ouzel.client
    editor = Editor(client)
    geometry = editor.open(workspace / "geometry.py")
    plan.steps = two_file_plan()[:3]
    run_agent(client, {"message": "Rename area to surface"})
    typed = GEOMETRY_NEW + "# mine\n"
    editor.change(geometry, typed)  # the user goes on editing the buffer (not saved)
    (workspace / "main.py").write_text("print('the user saved this')\n")  # and saves another
    undone = undo(client)["result"]
    problems = "\n".join(undone["problems"])
    assert "geometry.py: the editor's text changed" in problems
    assert "main.py" in problems and "changed after the agent" in problems
    assert undone["restored"] == ["geometry.py"]
    assert (workspace / "geometry.py").read_text() == GEOMETRY  # the disk is restored
    assert editor.text(geometry) == typed  # the buffer is left alone
    assert (workspace / "main.py").read_text() == "print('the user saved this')\n"
    message = client.wait_notification(
        "window/showMessage", lambda n: "agent undo" in n["params"]["message"]
    )
    assert message["params"]["type"] == 2
