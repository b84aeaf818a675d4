"""`:Ouzel agent`, agent mode in the chat buffer, the agent's questions and `:Ouzel agent undo`
in a real Neovim 0.11, against the scripted in-process server (tests/e2e/nvim/
scripted_server.lua), which lets a test stream any progress, send any applyEdit or
showMessageRequest, and stand in for the server's disk writes. The real server, its agent
and the scripted model are in test_neovim_agent.py.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pynvim.api.common import NvimError

sys.path.insert(0, str(Path(__file__).parent / "nvim"))
from harness import Editor, editor, wait_for

SCRIPTED = Path(__file__).parent / "nvim" / "scripted_server.lua"
CODE = "def area(w, h):\n    return w * h\n\n\ndef perimeter(w, h):\n    return 2 * (w + h)\n"
RENAMED = CODE.replace("def area", "def surface")
COMMANDS = ["ouzel.agent", "ouzel.agent.undo", "ouzel.chat"]

HOLD = """
for _, method in ipairs(...) do
  Scripted.on[method] = function() return nil end
end
"""

# Counts Neovim's "file changed since editing started" checks (W11/W12/W13 prompts).
COUNT_CHANGED = """
_G.changed_shell = {}
vim.api.nvim_create_autocmd('FileChangedShell', { callback = function(args)
  table.insert(_G.changed_shell, args.file .. ': ' .. vim.v.fcs_reason)
  vim.v.fcs_choice = ''
end })
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "geometry.py").write_text(CODE)
    return root


def start(workspace: Path, home: Path, commands: list[str]) -> Editor:
    running = Editor(workspace, home)
    running.lua("vim.lsp.config('ouzel', { cmd = dofile(...).cmd })", str(SCRIPTED))
    running.lua("Scripted.offered_commands = ...", commands)
    running.open(workspace / "geometry.py")
    running.wait_attached(timeout=10)
    running.lua(HOLD, ["ouzel/chat", "ouzel/chatLoad", "workspace/executeCommand"])
    running.lua(COUNT_CHANGED)
    return running


@pytest.fixture
def nvim(workspace: Path, tmp_path: Path) -> Iterator[Editor]:
    running = start(workspace, tmp_path / "home", COMMANDS)
    try:
        yield running
        assert running.lua_errors() == [], running.messages()
    finally:
        running.close()


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
    nvim.lua(
        "local id, err, result = ...; vim.schedule(function() Scripted.respond(id, err, result) end)",
        request["id"],
        error,
        result,
    )


def server_request(nvim: Editor, method: str, params: dict[str, Any]) -> None:
    nvim.lua("Scripted.server_request(...)", method, params)


def answer_of(nvim: Editor, count: int) -> Any:
    results = wait_for(
        lambda: len(r := nvim.lua("return Scripted.request_results")) >= count and r,
        10,
        "the client's answer",
    )
    result = results[count - 1]
    assert result["ok"] is True, result
    return result["result"]


def chat_lines(nvim: Editor) -> list[str]:
    return nvim.lua(
        "return vim.api.nvim_buf_get_lines(require('ouzel.chat').state.buf, 0, -1, false)"
    )


def idle(nvim: Editor) -> None:
    nvim.wait("return next(require('ouzel.jobs').active) == nil", 10, "no job running")


def buffer_of(nvim: Editor, path: Path) -> int:
    return nvim.lua("return vim.fn.bufnr(...)", str(path))


def buffer_text(nvim: Editor, path: Path) -> str:
    lines = nvim.lua(
        "return vim.api.nvim_buf_get_lines(vim.fn.bufnr(...), 0, -1, false)", str(path)
    )
    return "\n".join(lines) + "\n"


def modified(nvim: Editor, path: Path) -> bool:
    return nvim.lua("return vim.bo[vim.fn.bufnr(...)].modified", str(path))


def wait_float(nvim: Editor, what: str) -> str:
    return wait_for(
        lambda: (
            nvim.lua("return vim.bo.filetype") == "ouzelconfirm"
            and what in (screen := nvim.screen_text())
            and screen
        ),
        10,
        f"the confirmation float showing {what!r}",
    )


def hunk(uri: str, start: int, end: int, text: str, annotation: str) -> dict[str, Any]:
    return {
        "range": {"start": {"line": start, "character": 0}, "end": {"line": end, "character": 0}},
        "newText": text,
        "annotationId": annotation,
    }


def rename_edit(uri: str, new_uri: str) -> dict[str, Any]:
    """The agent's applyEdit for geometry.py (version null: the agent does not track it)
    and a new file, as docs/AGENT.md describes."""
    return {
        "label": "Ouzel agent: geometry.py",
        "edit": {
            "documentChanges": [
                {
                    "textDocument": {"uri": uri},
                    "edits": [hunk(uri, 0, 1, "def surface(w, h):\n", "a1")],
                }
            ],
            "changeAnnotations": {
                "a1": {
                    "label": "Change 1 of 1: line 1 (replace)",
                    "needsConfirmation": True,
                    "description": "Ouzel agent: geometry.py",
                }
            },
        },
    }


def create_edit(new_uri: str, text: str) -> dict[str, Any]:
    return {
        "label": "Ouzel agent: create shapes.py",
        "edit": {
            "documentChanges": [
                {
                    "kind": "create",
                    "uri": new_uri,
                    "options": {"overwrite": False, "ignoreIfExists": False},
                    "annotationId": "c0",
                },
                {"textDocument": {"uri": new_uri}, "edits": [hunk(new_uri, 0, 0, text, "c1")]},
            ],
            "changeAnnotations": {
                "c0": {"label": "Create shapes.py", "needsConfirmation": True},
                "c1": {"label": "Change 1 of 1: before line 1 (insert)", "needsConfirmation": True},
            },
        },
    }


def result(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "conversationId": "c-1",
        "turnId": "t-1",
        "status": "done",
        "answer": "Renamed area to surface and added shapes.py.",
        "files": [
            {"path": "geometry.py", "uri": "", "created": False, "hunks": 1, "accepted": 1},
            {"path": "shapes.py", "uri": "", "created": True, "hunks": 2, "accepted": 2},
        ],
        "edits": {"proposed": 2, "applied": 2, "rejected": 0, "refused": 1, "retried": 0},
        "steps": 4,
        "tokens": 900,
        "backend": "remote",
        "error": None,
        "undo": {
            "title": "Undo this agent turn",
            "command": "ouzel.agent.undo",
            "arguments": [{"turnId": "t-1"}],
        },
    }
    base.update(fields)
    return base


def test_an_agent_turn_streams_steps_confirms_hunks_and_leaves_buffers_unmodified(
    nvim: Editor, workspace: Path
) -> None:
    geometry = workspace / "geometry.py"
    shapes = workspace / "shapes.py"
    nvim.command("Ouzel agent Rename area to surface and add shapes.py")
    request = wait_request(nvim, "workspace/executeCommand")
    assert request["params"]["command"] == "ouzel.agent"
    params = request["params"]["arguments"][0]
    assert params["message"] == "Rename area to surface and add shapes.py"
    assert params["textDocument"]["uri"] == geometry.as_uri()
    token = params["workDoneToken"]
    begin = {"kind": "begin", "title": "Ouzel agent", "cancellable": True}
    progress(nvim, token, begin | {"conversationId": "c-1", "turnId": "t-1", "mode": "agent"})
    progress(
        nvim,
        token,
        {
            "kind": "report",
            "message": "step 1/12: read_file geometry.py",
            "tool": {"name": "read_file", "summary": "geometry.py lines 1-6", "status": "ok"},
        },
    )
    progress(nvim, token, {"kind": "report", "message": "step 2/12", "delta": "I will rename "})
    progress(nvim, token, {"kind": "report", "delta": "it."})
    progress(
        nvim,
        token,
        {
            "kind": "report",
            "message": "step 2/12: propose_edit .vscode/settings.json",
            "tool": {
                "name": "propose_edit",
                "summary": ".vscode/settings.json",
                "status": "refused",
                "reason": "the user refused the protected file\nchange",
            },
        },
    )
    assert nvim.lua("return require('ouzel').statusline()").startswith("ouzel: Ouzel agent")
    lines = chat_lines(nvim)
    assert "## You (agent)" in lines and "## Ouzel agent" in lines
    assert "- step 1/12: read_file geometry.py lines 1-6 (ok)" in lines
    assert "I will rename it." in lines
    assert (
        "- step 2/12: propose_edit .vscode/settings.json (refused): "
        "the user refused the protected file change"
    ) in lines
    # The edit of geometry.py and the new file, confirmed hunk by hunk.
    server_request(nvim, "workspace/applyEdit", rename_edit(geometry.as_uri(), shapes.as_uri()))
    wait_float(nvim, "Change 1 of 1: line 1 (replace)")
    nvim.type("y")
    assert answer_of(nvim, 1) == {"applied": True}
    server_request(nvim, "workspace/applyEdit", create_edit(shapes.as_uri(), "SIDES = 4\n"))
    screen = wait_float(nvim, "Create shapes.py  (1 of 2)")
    assert "create file shapes.py" in screen
    nvim.type("a")
    assert answer_of(nvim, 2) == {"applied": True}
    assert not shapes.exists(), "the editor writes nothing: the server does"
    assert buffer_text(nvim, geometry) == RENAMED and modified(nvim, geometry)
    # The server saw both buffers' text before it got the answers.
    changes = [
        n["params"]["textDocument"]["uri"]
        for n in nvim.lua("return Scripted.notifications")
        if n["method"] in ("textDocument/didChange", "textDocument/didOpen")
    ]
    assert geometry.as_uri() in changes and shapes.as_uri() in changes
    # ... and writes them (here the test does, as the server would).
    geometry.write_text(RENAMED)
    shapes.write_text("SIDES = 4\n")
    progress(nvim, token, {"kind": "end", "message": "Ouzel agent: 2 file(s) changed"})
    respond(nvim, request, result())
    idle(nvim)
    assert not modified(nvim, geometry) and not modified(nvim, shapes)
    nvim.command("checktime")
    assert nvim.lua("return _G.changed_shell") == [], "no W12/W13 prompt"
    lines = chat_lines(nvim)
    assert "Renamed area to surface and added shapes.py." in lines
    assert "Files: geometry.py (1 of 1 hunk(s)), shapes.py (new, 2 of 2 hunk(s))" in lines, lines
    assert "Edits: 2 proposed, 2 applied, 0 rejected, 1 refused, 0 retried" in lines
    assert "_(done, 4 step(s), 900 tokens, remote)_" in lines
    assert any(line.startswith("Undo: gu here, or :Ouzel agent undo") for line in lines)
    assert "agent done, 2 edit(s) applied" in nvim.messages()

    # Undo the turn from the chat buffer: the server restores the disk and sends the edit
    # that sets the buffers back and deletes the new file.
    nvim.lua("vim.api.nvim_set_current_win(vim.fn.bufwinid(require('ouzel.chat').state.buf))")
    nvim.type("gu")
    undo = wait_request(nvim, "workspace/executeCommand", 2)
    assert undo["params"] == {"command": "ouzel.agent.undo", "arguments": [{"turnId": "t-1"}]}
    geometry.write_text(CODE)
    shapes.unlink()
    lines_now = len(RENAMED.splitlines())
    server_request(
        nvim,
        "workspace/applyEdit",
        {
            "label": "Ouzel agent: undo",
            "edit": {
                "documentChanges": [
                    {
                        "textDocument": {"uri": geometry.as_uri(), "version": None},
                        "edits": [
                            {
                                "range": {
                                    "start": {"line": 0, "character": 0},
                                    "end": {"line": lines_now, "character": 0},
                                },
                                "newText": CODE,
                            }
                        ],
                    },
                    {"kind": "delete", "uri": shapes.as_uri()},
                ]
            },
        },
    )
    assert answer_of(nvim, 3) == {"applied": True}
    respond(nvim, undo, {"turnId": "t-1", "restored": ["geometry.py"], "deleted": ["shapes.py"]})
    nvim.wait(
        "return vim.tbl_contains(vim.api.nvim_buf_get_lines(require('ouzel.chat').state.buf,"
        " 0, -1, false), '_(agent turn t-1 undone: restored geometry.py; deleted shapes.py)_')",
        10,
        "the undo in the chat buffer",
    )
    assert buffer_text(nvim, geometry) == CODE and not modified(nvim, geometry)
    assert buffer_of(nvim, shapes) == -1, "the new file's buffer is gone"
    nvim.command("checktime")
    assert nvim.lua("return _G.changed_shell") == []
    assert nvim.lua("return require('ouzel.chat').state.last_undo") is None


def test_agent_mode_in_the_chat_buffer_and_the_prefixes(nvim: Editor) -> None:
    nvim.command("Ouzel chat /agent add a docstring to area")
    request = wait_request(nvim, "workspace/executeCommand")
    assert request["params"]["command"] == "ouzel.agent"
    assert request["params"]["arguments"][0]["message"] == "add a docstring to area"
    respond(nvim, request, result(status="steps", edits={"proposed": 0, "applied": 0}, files=[]))
    idle(nvim)
    lines = chat_lines(nvim)
    assert "_(stopped: out of steps, 4 step(s), 900 tokens, remote)_" in lines
    assert not any(line.startswith("Undo:") for line in lines), "nothing to undo"
    # gm switches the buffer to agent mode: `i` asks the agent.
    nvim.lua("vim.api.nvim_set_current_win(vim.fn.bufwinid(require('ouzel.chat').state.buf))")
    nvim.type("gm")
    assert chat_lines(nvim)[0].startswith("# Ouzel chat (agent mode")
    nvim.type("i")
    nvim.wait("return vim.fn.getcmdprompt() == 'Ask the ouzel agent: '", 10, "the agent prompt")
    nvim.type("rename perimeter<CR>")
    second = wait_request(nvim, "workspace/executeCommand", 2)
    assert second["params"]["arguments"][0]["message"] == "rename perimeter"
    assert second["params"]["arguments"][0]["conversationId"] == "c-1"
    respond(nvim, second, result(turnId="t-2"))
    idle(nvim)
    # In agent mode `/chat …` still asks the chat.
    nvim.command("Ouzel chat /chat what is perimeter?")
    chat = wait_request(nvim, "ouzel/chat")
    assert chat["params"]["message"] == "what is perimeter?"
    respond(nvim, chat, {"conversationId": "c-1", "turnId": "t-3", "reply": "A function."})
    idle(nvim)
    nvim.type("gm")
    assert chat_lines(nvim)[0] == "# Ouzel chat"


def test_ouzel_agent_without_a_task_asks_and_undo_without_a_turn_asks_the_server(
    nvim: Editor,
) -> None:
    nvim.type("<Cmd>Ouzel agent<CR>")
    nvim.wait("return vim.fn.getcmdprompt() == 'Ask the ouzel agent: '", 10, "the agent prompt")
    nvim.type("<Esc>")
    assert requests(nvim, "workspace/executeCommand") == []
    nvim.command("Ouzel agent undo")
    undo = wait_request(nvim, "workspace/executeCommand")
    assert undo["params"] == {"command": "ouzel.agent.undo", "arguments": [{}]}
    respond(nvim, undo, error={"code": -32602, "message": "nothing to undo in this session"})
    nvim.wait(
        "return vim.fn.execute('messages'):find('undo failed: nothing to undo', 1, true) ~= nil",
        10,
        "the error",
    )
    assert nvim.lua("return require('ouzel.commands').complete('u', 'Ouzel agent u')") == ["undo"]


def test_protected_file_and_command_questions_are_asked_with_vim_ui_select(nvim: Editor) -> None:
    warning = {
        "type": 2,
        "message": "Ouzel agent wants to change .vscode/settings.json: PROTECTED: editor settings can run code",
        "actions": [{"title": "Allow this change"}, {"title": "Refuse"}],
    }
    server_request(nvim, "window/showMessageRequest", warning)
    wait_for(
        lambda: (
            "ouzel warning: Ouzel agent wants to change .vscode/settings.json" in nvim.screen_text()
        ),
        10,
        "the question",
    )
    assert "1: Allow this change" in nvim.screen_text()
    nvim.type("1<CR>")
    assert answer_of(nvim, 1) == {"title": "Allow this change"}
    server_request(
        nvim,
        "window/showMessageRequest",
        {
            "type": 2,
            "message": "Run ['rm', '-rf', 'build'] in /w?",
            "actions": [{"title": "Run"}, {"title": "Refuse"}],
        },
    )
    wait_for(lambda: "2: Refuse" in nvim.screen_text(), 10, "the second question")
    nvim.type("<CR>")  # nothing chosen: null, a refusal
    assert answer_of(nvim, 2) is None
    server_request(nvim, "window/showMessageRequest", {"type": 3, "message": 7})
    assert answer_of(nvim, 3) is None


def test_a_server_without_the_agent_is_named(workspace: Path, tmp_path: Path) -> None:
    with editor(workspace, tmp_path / "home") as nvim:
        nvim.lua("vim.lsp.config('ouzel', { cmd = dofile(...).cmd })", str(SCRIPTED))
        nvim.lua("Scripted.offered_commands = ...", ["ouzel.chat"])
        nvim.open(workspace / "geometry.py")
        nvim.wait_attached(timeout=10)
        with pytest.raises(NvimError, match=r"this server has no agent \(ouzel.agent\)"):
            nvim.command("Ouzel agent do it")
        assert requests(nvim, "workspace/executeCommand") == []


def test_history_shows_agent_turns_with_their_steps(nvim: Editor) -> None:
    nvim.lua("require('ouzel.chat').resume(require('ouzel').client(), 'c-9')")
    load = wait_request(nvim, "ouzel/chatLoad")
    respond(
        nvim,
        load,
        {
            "conversationId": "c-9",
            "title": "rename",
            "turns": [
                {
                    "turnId": "t-1",
                    "message": "rename area",
                    "reply": "Done.",
                    "status": "done",
                    "mode": "agent",
                    "tools": [
                        {"name": "read_file", "summary": "geometry.py", "status": "ok"},
                        {"name": "propose_edit", "summary": "geometry.py", "status": "ok"},
                    ],
                },
                {"turnId": "t-2", "message": "why?", "reply": "Clearer.", "mode": "chat"},
            ],
        },
    )
    nvim.wait("return require('ouzel.chat').state.conversation_id == 'c-9'", 10, "the load")
    lines = chat_lines(nvim)
    assert lines[lines.index("## You (agent)") + 1] == "rename area"
    assert "- read_file geometry.py (ok)" in lines and "- propose_edit geometry.py (ok)" in lines
    assert "## You" in lines and "Clearer." in lines


def test_an_undo_that_left_a_file_alone_says_so(nvim: Editor) -> None:
    nvim.command("Ouzel chat new")
    nvim.command("Ouzel agent undo")
    undo = wait_request(nvim, "workspace/executeCommand")
    respond(
        nvim,
        undo,
        {
            "turnId": "t-4",
            "restored": ["main.py"],
            "deleted": [],
            "problems": ["geometry.py changed after the agent wrote it; left alone"],
        },
    )
    nvim.wait(
        "return vim.fn.execute('messages'):find('not undone: geometry.py', 1, true) ~= nil",
        10,
        "the warning",
    )
    lines = chat_lines(nvim)
    assert "_(agent turn t-4 undone: restored main.py)_" in lines
    assert "- not undone: geometry.py changed after the agent wrote it; left alone" in lines


def test_c_c_in_the_chat_buffer_cancels_the_turn(nvim: Editor) -> None:
    nvim.command("Ouzel agent rename everything")
    request = wait_request(nvim, "workspace/executeCommand")
    token = request["params"]["arguments"][0]["workDoneToken"]
    nvim.lua("vim.api.nvim_set_current_win(vim.fn.bufwinid(require('ouzel.chat').state.buf))")
    nvim.type("<C-c>")
    cancels = wait_for(
        lambda: [
            n
            for n in nvim.lua("return Scripted.notifications")
            if n["method"] == "window/workDoneProgress/cancel"
        ],
        10,
        "the cancel",
    )
    assert cancels[0]["params"] == {"token": token}
    assert "Ouzel agent (stopping)" in nvim.lua("return require('ouzel.jobs').running()")
    respond(
        nvim,
        request,
        result(status="cancelled", answer="", files=[], edits={"proposed": 0, "applied": 0}),
    )
    idle(nvim)
    lines = chat_lines(nvim)
    assert any(line.startswith("_(stopped, 4 step(s)") for line in lines), lines
    assert nvim.lua("return require('ouzel.chat').state.token") is None
