"""AI code actions and `:Ouzel chat` in a real Neovim 0.11 against the real `ouzel serve`,
with Qwen2.5-Coder-0.5B-Instruct on a real `llama_cpp.server` as the remote model.

What is checked is what the user does and gets: a selection, a code action from
`vim.lsp.buf.code_action()`, the instruction typed at the `vim.ui.input` prompt, the diff
float answered key by key, the file on disk afterwards; the chat buffer as it streams, its
references opened with `gf`, and the conversation found again with `:Ouzel chat history`
after Neovim and the server were restarted.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chat_rig import GEOMETRY, KEY, KEY_VARIABLE, LlamaServer, options, start_llama

sys.path.insert(0, str(Path(__file__).parent / "nvim"))
from harness import Editor, editor, wait_for

pytestmark = pytest.mark.e2e

MODEL_S = 300  # a model answer on a busy 2-core machine, with the server's first start

# Every `$/progress` value of ouzel, with the statusline and the chat buffer's size then.
RECORD = """
_G.seen = {}
vim.api.nvim_create_autocmd('LspProgress', { callback = function(args)
  local chat = package.loaded['ouzel.chat']
  local buf = chat and chat.state.buf
  local size = 0
  if buf and vim.api.nvim_buf_is_valid(buf) then
    size = #table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), '\\n')
  end
  table.insert(_G.seen, {
    token = args.data.params.token,
    value = args.data.params.value,
    statusline = require('ouzel').statusline(),
    chat_size = size,
  })
end })
"""


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    server = start_llama(tmp_path_factory.mktemp("llama") / "server.log")
    yield server
    server.stop()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / ".git").mkdir()
    (root / "geometry.py").write_text(GEOMETRY)
    (root / "AGENTS.md").write_text("Keep answers short.\n")
    return root


def start_editor(tmp_path: Path, workspace: Path, llama: LlamaServer) -> Any:
    settings = options(llama) | {"completion": {"enabled": False}}
    return editor(
        workspace,
        tmp_path / "home",
        options={"settings": settings},
        env={KEY_VARIABLE: KEY},
    )


def open_geometry(nvim: Editor) -> Path:
    path = nvim.workspace / "geometry.py"
    nvim.open(path)
    nvim.wait_attached(timeout=120)
    nvim.lua(RECORD)
    return path


def float_text(nvim: Editor) -> str | None:
    if nvim.lua("return vim.bo.filetype") != "ouzelconfirm":
        return None
    return "\n".join(nvim.lines())


def wait_float(nvim: Editor, timeout: float = MODEL_S) -> str:
    """Wait for the confirmation float; fail at once, with the messages, if the action
    started and ended without one."""
    started = False

    def shown() -> str | None:
        nonlocal started
        text = float_text(nvim)
        running = nvim.lua("return next(require('ouzel.jobs').active) ~= nil")
        if text is None and started and not running:
            raise AssertionError(f"the action ended without an edit: {nvim.messages()}")
        started = started or running
        return text

    return wait_for(shown, timeout, "the confirmation float")


def wait_prompt(nvim: Editor, prompt: str) -> None:
    """Wait until Neovim reads a line for the `vim.ui.input` prompt `prompt`."""
    wait_for(
        lambda: nvim.lua("return vim.fn.getcmdtype() == '@' and vim.fn.getcmdprompt()") == prompt,
        30,
        f"the prompt {prompt!r}",
    )


def run_code_action(nvim: Editor, title_part: str) -> None:
    """As a user with a mapping to vim.lsp.buf.code_action() in visual mode."""
    nvim.type(
        "<Cmd>lua vim.lsp.buf.code_action({ apply = true, filter = function(a)"
        f" return a.title:find({title_part!r}, 1, true) ~= nil end }})<CR>"
    )


def docstrings(text: str) -> dict[str, str | None]:
    tree = ast.parse(text)
    return {f.name: ast.get_docstring(f) for f in tree.body if isinstance(f, ast.FunctionDef)}


def wait_idle(nvim: Editor) -> None:
    nvim.wait("return next(require('ouzel.jobs').active) == nil", MODEL_S, "the action to end")


def test_edit_with_an_instruction_accept_one_hunk_reject_another_then_add_docstring(
    tmp_path: Path, workspace: Path, llama: LlamaServer
) -> None:
    with start_editor(tmp_path, workspace, llama) as nvim:
        path = open_geometry(nvim)
        # 1. "Edit selection with an instruction" over both functions: one hunk per
        #    function; accept the first, reject the second.
        nvim.type("ggVG")
        run_code_action(nvim, "Edit selection")
        wait_prompt(nvim, "Ouzel: how should the selection change? ")
        nvim.type("Add a one-line docstring to each function. Change nothing else.<CR>")
        first = wait_float(nvim)
        assert "Change 1 of" in first and "geometry.py:" in first, first
        assert "[y] accept" in first and any(line.startswith("+ ") for line in first.split("\n"))
        statusline = [s["statusline"] for s in nvim.lua("return _G.seen")]
        assert any("Ouzel: Edit selection" in line for line in statusline), statusline
        total = int(first.split(" of ")[1].split(":")[0])
        assert total >= 2, first
        nvim.type("y")
        second = wait_for(lambda: "Change 2 of" in (f := float_text(nvim) or "") and f, 10, "2")
        assert second != first
        nvim.type("n")
        for _ in range(total - 2):
            wait_for(float_text, 10, "the next hunk")
            nvim.type("n")
        wait_idle(nvim)
        assert f"1 of {total} change(s) applied" in nvim.messages()
        nvim.command("write")
        after_edit = path.read_text()
        assert docstrings(after_edit)["area"] and docstrings(after_edit)["perimeter"] is None
        assert after_edit.endswith(
            "def perimeter(width, height):\n    return 2 * (width + height)\n"
        )

        # 2. "Add a docstring" on `perimeter`, from the actions of a selection in it.
        nvim.type("<Esc>")
        row = after_edit.split("\n").index("def perimeter(width, height):") + 1
        nvim.type(f"{row}GVj")
        run_code_action(nvim, "Add a docstring to perimeter")
        shown = wait_float(nvim)
        assert "Add a docstring" in nvim.screen_text() and "Change 1 of" in shown
        nvim.type("a")  # accept this change and any after it
        wait_idle(nvim)
        nvim.command("write")
        final = path.read_text()
        assert docstrings(final)["perimeter"], final
        assert docstrings(final)["area"] == docstrings(after_edit)["area"]
        assert final.startswith(after_edit.split("def perimeter")[0])


def test_chat_streams_cites_a_file_and_survives_a_restart(
    tmp_path: Path, workspace: Path, llama: LlamaServer
) -> None:
    with start_editor(tmp_path, workspace, llama) as nvim:
        open_geometry(nvim)
        nvim.command("5,6Ouzel chat What does the perimeter function return?")
        nvim.wait(
            "return package.loaded['ouzel.chat'] and package.loaded['ouzel.jobs']"
            " and next(require('ouzel.jobs').active) == nil"
            " and #require('ouzel.chat').state.turns == 1",
            MODEL_S,
            "the chat answer",
        )
        chat = nvim.lua(
            "local buf = require('ouzel.chat').state.buf;"
            " return vim.api.nvim_buf_get_lines(buf, 0, -1, false)"
        )
        text = "\n".join(chat)
        assert chat[0] == "# Ouzel chat" and chat[1] == "Rules: AGENTS.md", chat[:3]
        assert "## You\nWhat does the perimeter function return?" in text
        assert "References:" in text and "- geometry.py:5-6 (selection" in text, text
        answer = text.split("## Ouzel", 1)[1]
        assert len(answer.strip().split("\n")) > 2, answer
        assert nvim.lua("return vim.bo[require('ouzel.chat').state.buf].filetype") == "markdown"
        seen = nvim.lua("return _G.seen")
        reports = [
            s for s in seen if s["value"].get("kind") == "report" and s["value"].get("delta")
        ]
        assert len(reports) >= 2
        sizes = [s["chat_size"] for s in reports]
        assert sizes[-1] > sizes[0], "the buffer grew while the answer streamed"
        assert any(s["statusline"].startswith("ouzel: Ouzel chat") for s in reports)
        # gf on the reference opens the file at that line.
        nvim.lua(
            "local buf = require('ouzel.chat').state.buf;"
            " vim.api.nvim_set_current_win(vim.fn.bufwinid(buf))"
        )
        row = next(i for i, line in enumerate(chat) if line.startswith("- geometry.py:5")) + 1
        nvim.nvim.current.window.cursor = (row, 3)
        nvim.type("gf")
        wait_for(lambda: nvim.nvim.current.buffer.name.endswith("geometry.py"), 10, "geometry.py")
        assert nvim.cursor()[0] == 5
        conversation = nvim.lua("return require('ouzel.chat').state.conversation_id")
        assert conversation
    # A new Neovim and a new server: the conversation is in the history.
    with start_editor(tmp_path, workspace, llama) as nvim:
        open_geometry(nvim)
        nvim.command("Ouzel chat history")
        wait_for(
            lambda: "What does the perimeter function return?" in nvim.screen_text(),
            30,
            "the history picker",
        )
        nvim.type("1<CR>")
        nvim.wait(
            "local chat = package.loaded['ouzel.chat'];"
            " return chat and chat.state.conversation_id == ...",
            30,
            "the conversation to load",
            conversation,
        )
        lines = nvim.lua(
            "return vim.api.nvim_buf_get_lines(require('ouzel.chat').state.buf, 0, -1, false)"
        )
        assert "## You" in lines and "What does the perimeter function return?" in lines
        assert any(line.startswith("- geometry.py:5") for line in lines)
        assert text.split("## Ouzel", 1)[1].strip().split("\n")[-1] in "\n".join(lines)


def test_stop_key_cancels_a_streaming_answer(
    tmp_path: Path, workspace: Path, llama: LlamaServer
) -> None:
    with start_editor(tmp_path, workspace, llama) as nvim:
        open_geometry(nvim)
        nvim.command("Ouzel chat Write a long essay about sorting algorithms.")
        wait_for(
            lambda: [
                s
                for s in nvim.lua("return _G.seen")
                if s["value"].get("kind") == "report" and s["value"].get("delta")
            ],
            MODEL_S,
            "the first streamed delta",
        )
        nvim.lua("vim.api.nvim_set_current_win(vim.fn.bufwinid(require('ouzel.chat').state.buf))")
        nvim.type("<C-c>")
        nvim.wait("return next(require('ouzel.jobs').active) == nil", 60, "the answer to stop")
        lines = nvim.lua(
            "return vim.api.nvim_buf_get_lines(require('ouzel.chat').state.buf, 0, -1, false)"
        )
        assert "_(stopped)_" in lines, lines
        cancels = [n for n in nvim.lua("return _G.seen") if n["value"].get("kind") == "end"]
        assert cancels
