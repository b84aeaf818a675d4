"""`:Ouzel chat`, code-action commands and `:Ouzel cancel` in a real Neovim 0.11, against the
scripted in-process server, which lets a test stream any `$/progress` value and answer
with anything: malformed references, values that are not tables, lost deltas, errors, an
empty or garbage history. The real server and model are in test_neovim_chat.py.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "nvim"))
from harness import Editor, editor, wait_for

SCRIPTED = Path(__file__).parent / "nvim" / "scripted_server.lua"
CODE = "def area(w, h):\n    return w * h\n\n\ndef perimeter(w, h):\n    return 2 * (w + h)\n"

# Requests of these methods stay open until the test answers them (Scripted.respond).
HOLD = """
for _, method in ipairs(...) do
  Scripted.on[method] = function() return nil end
end
"""


@pytest.fixture
def nvim(tmp_path: Path) -> Iterator[Editor]:
    workspace = tmp_path / "project"
    workspace.mkdir()
    (workspace / "geometry.py").write_text(CODE)
    with editor(workspace, tmp_path / "home") as running:
        running.lua("vim.lsp.config('ouzel', { cmd = dofile(...).cmd })", str(SCRIPTED))
        running.open(workspace / "geometry.py")
        running.wait_attached(timeout=10)
        running.lua(
            HOLD,
            ["ouzel/chat", "ouzel/chatList", "ouzel/chatLoad", "workspace/executeCommand"],
        )
        yield running


def requests(nvim: Editor, method: str) -> list[dict[str, Any]]:
    return [r for r in nvim.lua("return Scripted.requests") if r["method"] == method]


def wait_request(nvim: Editor, method: str, count: int = 1) -> dict[str, Any]:
    found = wait_for(
        lambda: len(r := requests(nvim, method)) >= count and r, 10, f"a {method} request"
    )
    return found[count - 1]


def progress(nvim: Editor, token: str, value: Any) -> None:
    nvim.lua("Scripted.progress(...)", token, value)


def respond(nvim: Editor, request: dict[str, Any], result: Any = None, error: Any = None) -> None:
    # Scheduled, as a real answer arrives from the event loop (not inside this RPC call,
    # which a prompt such as vim.ui.select's would block).
    nvim.lua(
        "local id, err, result = ...; vim.schedule(function() Scripted.respond(id, err, result) end)",
        request["id"],
        error,
        result,
    )


def chat_lines(nvim: Editor) -> list[str]:
    return nvim.lua(
        "return vim.api.nvim_buf_get_lines(require('ouzel.chat').state.buf, 0, -1, false)"
    )


def idle(nvim: Editor) -> None:
    nvim.wait("return next(require('ouzel.jobs').active) == nil", 10, "no job running")


def test_chat_sends_the_selection_and_streams_only_well_formed_values(nvim: Editor) -> None:
    nvim.command("5,6Ouzel chat What does perimeter return?")
    request = wait_request(nvim, "ouzel/chat")
    params = request["params"]
    token = params["workDoneToken"]
    assert params["message"] == "What does perimeter return?"
    assert params["textDocument"]["uri"].endswith("/geometry.py")
    assert params["selection"] == {
        "start": {"line": 4, "character": 0},
        "end": {"line": 6, "character": 0},
    }
    assert "conversationId" not in params
    uri = params["textDocument"]["uri"]
    progress(nvim, token, {"kind": "begin", "title": "Ouzel chat", "conversationId": "c-1"})
    progress(
        nvim,
        token,
        {
            "kind": "report",
            "message": "generating…",
            "delta": "It returns ",
            "references": [
                {"uri": uri, "path": "geometry.py", "line": 5, "endLine": 6, "source": "selection"},
                {"path": 7, "line": "x"},
                "garbage",
            ],
        },
    )
    assert nvim.lua("return require('ouzel').statusline()") == "ouzel: Ouzel chat: generating…"
    progress(nvim, token, "not a table")
    progress(nvim, token, {"kind": "report", "delta": 42})
    progress(nvim, token, {"kind": "report", "delta": "twice the sum.\n\nSee geometry.py:5."})
    lines = chat_lines(nvim)
    assert lines[-3:] == ["It returns twice the sum.", "", "See geometry.py:5."]
    assert "- geometry.py:5-6 (selection)" in lines
    assert "References:" in lines
    progress(nvim, token, {"kind": "end", "message": "done"})
    reply = "It returns twice the sum.\n\nSee geometry.py:5."
    respond(
        nvim,
        request,
        {
            "conversationId": "c-1",
            "turnId": "t-1",
            "reply": reply,
            "references": [],
            "rules": [{"path": "AGENTS.md", "chars": 10, "truncated": False}],
            "stopReason": "stop",
            "cancelled": False,
        },
    )
    idle(nvim)
    lines = chat_lines(nvim)
    assert lines[1] == "Rules: AGENTS.md"
    assert lines.count("## You") == 1 and "What does perimeter return?" in lines
    # <CR> on "See geometry.py:5." opens the file at line 5 in the other window.
    nvim.lua("vim.api.nvim_set_current_win(vim.fn.bufwinid(require('ouzel.chat').state.buf))")
    nvim.nvim.current.window.cursor = (len(lines) - 1, 6)
    nvim.type("<CR>")
    wait_for(lambda: nvim.nvim.current.buffer.name.endswith("geometry.py"), 5, "the file")
    assert nvim.cursor()[0] == 5
    # The next question continues the conversation.
    nvim.command("Ouzel chat And area?")
    follow = wait_request(nvim, "ouzel/chat", 2)["params"]
    assert follow["conversationId"] == "c-1"
    respond(nvim, wait_request(nvim, "ouzel/chat", 2), {"reply": "w * h", "rules": []})
    idle(nvim)
    assert chat_lines(nvim)[1].startswith("Rules: none")


def test_a_lost_delta_is_repaired_from_the_result_and_errors_are_shown(nvim: Editor) -> None:
    nvim.command("Ouzel chat hi")
    request = wait_request(nvim, "ouzel/chat")
    token = request["params"]["workDoneToken"]
    progress(nvim, token, {"kind": "report", "delta": "Hel"})
    respond(nvim, request, {"reply": "Hello there", "stopReason": "length"})
    idle(nvim)
    lines = chat_lines(nvim)
    assert "Hello there" in lines and "Hel" not in lines
    assert "_(cut at the token limit)_" in lines
    nvim.command("Ouzel chat again")
    second = wait_request(nvim, "ouzel/chat", 2)
    respond(nvim, second, error={"code": -32602, "message": "unknown conversation c-x"})
    idle(nvim)
    assert "_(error: unknown conversation c-x)_" in chat_lines(nvim)
    nvim.command("Ouzel chat third")
    third = wait_request(nvim, "ouzel/chat", 3)
    respond(nvim, third, {"reply": "", "stopReason": "error", "error": "no model can serve chat"})
    idle(nvim)
    assert "_(error: no model can serve chat)_" in chat_lines(nvim)
    assert "chat failed: unknown conversation c-x" in nvim.messages()


def test_stop_and_ouzel_cancel_send_work_done_cancel_for_the_token(nvim: Editor) -> None:
    nvim.command("Ouzel chat long")
    request = wait_request(nvim, "ouzel/chat")
    token = request["params"]["workDoneToken"]
    progress(nvim, token, {"kind": "begin", "title": "Ouzel chat", "cancellable": True})
    assert "running            Ouzel chat (:Ouzel cancel)" in "\n".join(
        nvim.lua("return require('ouzel.status').format(require('ouzel').client(), {})")
    )
    nvim.lua("vim.api.nvim_set_current_win(vim.fn.bufwinid(require('ouzel.chat').state.buf))")
    nvim.type("<C-c>")
    cancel = wait_for(
        lambda: [
            n
            for n in nvim.lua("return Scripted.notifications")
            if n["method"] == "window/workDoneProgress/cancel"
        ],
        5,
        "window/workDoneProgress/cancel",
    )
    assert cancel[0]["params"] == {"token": token}
    respond(nvim, request, {"reply": "partial", "cancelled": True, "stopReason": "cancelled"})
    idle(nvim)
    assert "_(stopped)_" in chat_lines(nvim)
    nvim.command("Ouzel cancel")
    assert "nothing is running" in nvim.messages()


def test_code_action_commands_ask_for_the_instruction_and_stream(nvim: Editor) -> None:
    argument = {
        "action": "edit",
        "textDocument": {"uri": (nvim.workspace / "geometry.py").as_uri(), "version": 0},
        "range": {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}},
    }
    # Scheduled, as vim.lsp.buf.code_action() runs it from the event loop (a prompt inside
    # this RPC call would block it).
    run = (
        "local argument = ...; vim.schedule(function()"
        " require('ouzel').client():exec_cmd({ title = 'Ouzel: Edit selection',"
        " command = 'ouzel.codeAction.run', arguments = { argument } }, { bufnr = 0 }) end)"
    )
    nvim.lua(run, argument)
    prompt = "Ouzel: how should the selection change? "
    wait_for(
        lambda: nvim.lua("return vim.fn.getcmdprompt()") == prompt, 5, "the instruction prompt"
    )
    nvim.type("<CR>")  # nothing typed: nothing is sent
    wait_for(lambda: "no instruction given" in nvim.messages(), 5, "the notice")
    nvim.lua(run, argument)
    wait_for(lambda: nvim.lua("return vim.fn.getcmdprompt()") == prompt, 5, "the prompt again")
    nvim.type("Use type hints<CR>")
    request = wait_request(nvim, "workspace/executeCommand")
    sent = request["params"]
    assert sent["command"] == "ouzel.codeAction.run"
    assert sent["arguments"][0]["instruction"] == "Use type hints"
    token = sent["arguments"][0]["workDoneToken"]
    progress(nvim, token, {"kind": "begin", "title": "Ouzel: Edit selection"})
    progress(nvim, token, {"kind": "report", "message": "generating…", "delta": "def"})
    assert (
        nvim.lua("return require('ouzel').statusline()")
        == "ouzel: Ouzel: Edit selection: generating…"
    )
    progress(nvim, token, {"kind": "end", "message": "1 change proposed"})
    respond(nvim, request, {"status": "refused", "message": "Ouzel: Edit selection: elided"})
    idle(nvim)
    assert "ouzel: Ouzel: Edit selection: elided" in nvim.messages()
    # An "explain" answer streams into the chat buffer; a command without arguments is refused.
    nvim.lua(run, argument | {"action": "explain"})
    explain = wait_request(nvim, "workspace/executeCommand", 2)
    token = explain["params"]["arguments"][0]["workDoneToken"]
    progress(nvim, token, {"kind": "report", "delta": "It multiplies."})
    respond(nvim, explain, {"status": "answered", "reply": "It multiplies.", "message": "done"})
    idle(nvim)
    assert "It multiplies." in chat_lines(nvim) and "Ouzel: Edit selection" in chat_lines(nvim)
    nvim.lua(
        "require('ouzel').client():exec_cmd({ title = 'x', command = 'ouzel.codeAction.run' },"
        " { bufnr = 0 })"
    )
    assert "has no argument to run with" in nvim.messages()


def test_history_lists_resumes_and_survives_garbage(nvim: Editor) -> None:
    nvim.command("Ouzel chat history")
    respond(nvim, wait_request(nvim, "ouzel/chatList"), {"conversations": []})
    wait_for(lambda: "no past conversations" in nvim.messages(), 5, "the notice")
    nvim.command("Ouzel chat history")
    respond(nvim, wait_request(nvim, "ouzel/chatList", 2), {"conversations": "garbage"})
    wait_for(lambda: nvim.messages().count("no past conversations") == 2, 5, "the notice")
    nvim.command("Ouzel chat history")
    listed = {
        "conversations": [
            {
                "conversationId": "c-2",
                "title": "Sorting",
                "updated": "2026-12-02T10:00:00Z",
                "turns": 1,
            },
            {
                "conversationId": "c-1",
                "title": "Geometry",
                "updated": "2026-12-01T09:00:00Z",
                "turns": 2,
            },
        ]
    }
    respond(nvim, wait_request(nvim, "ouzel/chatList", 3), listed)
    wait_for(lambda: "Geometry  (2 turns, 2026-12-01 09:00)" in nvim.screen_text(), 5, "picker")
    nvim.type("2<CR>")
    load = wait_request(nvim, "ouzel/chatLoad")
    assert load["params"] == {"conversationId": "c-1"}
    uri = (nvim.workspace / "geometry.py").as_uri()
    respond(
        nvim,
        load,
        {
            "conversationId": "c-1",
            "title": "Geometry",
            "turns": [
                {
                    "message": "What is area?",
                    "reply": "w times h\r\nsee geometry.py:1",
                    "references": [
                        {"uri": uri, "path": "geometry.py", "line": 1, "source": "open"}
                    ],
                    "status": "done",
                },
                {"message": "More?", "reply": "Half done", "status": "interrupted"},
            ],
        },
    )
    nvim.wait("return require('ouzel.chat').state.conversation_id == 'c-1'", 5, "the conversation")
    lines = chat_lines(nvim)
    assert lines[0] == "# Ouzel chat: Geometry"
    assert lines[4:9] == ["## You", "What is area?", "", "## Ouzel", "References:"]
    assert "see geometry.py:1" in lines and "_(interrupted)_" in lines
    nvim.command("Ouzel chat next")
    assert wait_request(nvim, "ouzel/chat")["params"]["conversationId"] == "c-1"
    nvim.command("Ouzel chat history")
    respond(nvim, wait_request(nvim, "ouzel/chatList", 4), error={"code": -32603, "message": "db"})
    wait_for(lambda: "cannot list conversations: db" in nvim.messages(), 5, "the error")


def test_a_code_block_is_applied_to_the_selection_it_was_asked_about(nvim: Editor) -> None:
    nvim.command("1,2Ouzel chat Add type hints")
    request = wait_request(nvim, "ouzel/chat")
    reply = "Here:\n\n```python\ndef area(w: float, h: float) -> float:\n    return w * h\n```\n"
    respond(nvim, request, {"reply": reply})
    idle(nvim)
    lines = chat_lines(nvim)
    row = lines.index("    return w * h") + 1
    nvim.lua("vim.api.nvim_set_current_win(vim.fn.bufwinid(require('ouzel.chat').state.buf))")
    nvim.nvim.current.window.cursor = (row, 0)
    nvim.type("ga")
    apply = wait_request(nvim, "workspace/executeCommand")["params"]
    assert apply["command"] == "ouzel.applyCodeBlock"
    (argument,) = apply["arguments"]
    assert argument["text"] == "def area(w: float, h: float) -> float:\n    return w * h\n"
    assert argument["range"] == {
        "start": {"line": 0, "character": 0},
        "end": {"line": 2, "character": 0},
    }
    assert argument["textDocument"]["uri"].endswith("/geometry.py")
    # Outside a block, or for a question without a selection: a notice, nothing sent.
    nvim.lua("vim.api.nvim_set_current_win(vim.fn.bufwinid(require('ouzel.chat').state.buf))")
    nvim.nvim.current.window.cursor = (1, 0)
    nvim.type("ga")
    wait_for(lambda: "inside a ``` code block" in nvim.messages(), 5, "the notice")
    assert len(requests(nvim, "workspace/executeCommand")) == 1


def test_chat_without_a_server_or_a_question_says_so(tmp_path: Path) -> None:
    workspace = tmp_path / "empty"
    workspace.mkdir()
    with editor(workspace, tmp_path / "home2") as nvim:
        nvim.command("Ouzel chat hello")
        assert "no server is running" in nvim.messages()
        nvim.command("Ouzel chat history")
        assert "no server is running" in nvim.messages()
        nvim.command("Ouzel cancel")
        assert "nothing is running" in nvim.messages()
        # A reference that names no file of the workspace.
        nvim.lua("require('ouzel.chat').open()")
        nvim.lua(
            "vim.bo.modifiable = true; vim.api.nvim_buf_set_lines(0, -1, -1, false, {'see nope.py:3'})"
        )
        nvim.nvim.current.window.cursor = (5, 5)
        nvim.type("gf")
        wait_for(lambda: "nope.py is not a file of the workspace" in nvim.messages(), 5, "notice")


def test_a_server_that_stops_mid_answer_ends_the_turn(nvim: Editor) -> None:
    nvim.command("Ouzel chat hello")
    request = wait_request(nvim, "ouzel/chat")
    progress(nvim, request["params"]["workDoneToken"], {"kind": "report", "delta": "Hi"})
    nvim.lua("require('ouzel').client():stop(true)")
    idle(nvim)
    assert "_(error: the server stopped)_" in chat_lines(nvim)
    nvim.command("Ouzel cancel")
    assert "nothing is running" in nvim.messages()


def reading_lines(nvim: Editor) -> list[str]:
    return nvim.lua(
        """
        local chat = require('ouzel.chat')
        local ns = vim.api.nvim_create_namespace('ouzel_chat_reading')
        local found = {}
        for _, mark in ipairs(vim.api.nvim_buf_get_extmarks(chat.state.buf, ns, 0, -1, { details = true })) do
          for _, line in ipairs(mark[4].virt_lines or {}) do
            table.insert(found, line[1][1])
          end
        end
        return found
        """
    )


def test_a_long_prompt_being_read_shows_below_the_turn_until_the_first_text(nvim: Editor) -> None:
    nvim.command("Ouzel chat Explain this file")
    request = wait_request(nvim, "ouzel/chat")
    token = request["params"]["workDoneToken"]
    progress(nvim, token, {"kind": "begin", "title": "Ouzel chat", "conversationId": "c-1"})
    message = "reading the prompt: 640 of 2,900 tokens"
    progress(nvim, token, {"kind": "report", "message": message, "percentage": 22})
    assert reading_lines(nvim) == [message]
    assert message not in chat_lines(nvim)  # a virtual line, not the buffer's text
    progress(nvim, token, {"kind": "report", "message": "generating…", "delta": "It adds."})
    assert reading_lines(nvim) == []
    assert chat_lines(nvim)[-1] == "It adds."
    progress(nvim, token, {"kind": "end", "message": "done"})
    respond(
        nvim,
        request,
        {
            "conversationId": "c-1",
            "turnId": "t-1",
            "reply": "It adds.",
            "references": [],
            "rules": [],
            "stopReason": "stop",
            "cancelled": False,
        },
    )
    idle(nvim)
