"""The agent from Neovim, end to end: a real headless Neovim 0.11 with the plugin, the real
`ouzel serve` (started by `vim.lsp.enable('ouzel')`), its real agent loop and OpenAI
backend, and the scripted OpenAI-compatible model (tests/agent/scripted_agent.py) replaying
the tool calls of a two-file change plus a new file.

The user's side is what is checked: `:Ouzel agent …`, the steps streaming into the chat
buffer, each hunk answered in the diff float (geometry.py: accept one, reject one; main.py
and the new file: accept all), the files on disk (written by the server, not saved by
Neovim), buffers left unmodified with no "changed on disk" prompt, then `:Ouzel agent undo`
restoring both files byte for byte and deleting the new one. A protected file is asked
about with `vim.ui.select` first, and refusing it writes nothing.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "nvim"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agent"))
from harness import Editor, editor, wait_for
from scripted_agent import Plan
from scripted_openai_server import ScriptedServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

START_S = 120  # the server's first start on a busy 2-core machine
STEP_S = 60

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
GEOMETRY_FIRST_HUNK = GEOMETRY.replace("def area(", "def surface(")
MAIN = "from geometry import area\n\n\nprint(area(2, 3))\n"
MAIN_NEW = MAIN.replace("area", "surface")
NOTES = "# Changes\n\n- `area` is now `surface`.\n"
PYPROJECT = '[project]\nname = "shapes"\n'

# Neovim's "file changed since editing started" checks (the W11/W12/W13 prompts), counted.
COUNT_CHANGED = """
_G.changed_shell = {}
vim.api.nvim_create_autocmd('FileChangedShell', { callback = function(args)
  table.insert(_G.changed_shell, args.file .. ': ' .. vim.v.fcs_reason)
  vim.v.fcs_choice = ''
end })
"""


@pytest.fixture
def model() -> Iterator[tuple[Plan, ScriptedServer]]:
    plan = Plan()
    with ScriptedServer(plan.script) as server:
        yield plan, server


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / ".git").mkdir()
    (root / "geometry.py").write_text(GEOMETRY)
    (root / "main.py").write_text(MAIN)
    (root / "pyproject.toml").write_text(PYPROJECT)
    return root


@pytest.fixture
def nvim(tmp_path: Path, workspace: Path, model: tuple[Plan, ScriptedServer]) -> Iterator[Editor]:
    settings = {
        "models": {"remote": {"backend": "openai", "base_url": model[1].base_url}},
        "routing": {"agent": ["remote"], "chat": ["remote"]},
        "index": {"enabled": False},
        "completion": {"enabled": False},
    }
    with editor(workspace, tmp_path / "home", options={"settings": settings}) as running:
        # The same settings at initialize too: the server pulls `workspace/configuration`
        # after `initialized`, and on a loaded machine a command sent as soon as the client
        # is up could otherwise start before they arrive (no remote model yet).
        running.lua("vim.lsp.config('ouzel', { init_options = ... })", settings)
        running.open(workspace / "geometry.py")
        running.wait_attached(timeout=START_S)
        running.wait(
            """
            local client = require('ouzel').client()
            local provider = client.server_capabilities.executeCommandProvider or {}
            return vim.list_contains(provider.commands or {}, 'ouzel.agent')
            """,
            10,
            "the server to offer ouzel.agent",
        )
        running.lua(COUNT_CHANGED)
        yield running


def tree(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        if path.is_file()
        else "dir"
        for path in sorted(root.rglob("*"))
    }


def chat_lines(nvim: Editor) -> list[str]:
    return nvim.lua(
        "return vim.api.nvim_buf_get_lines(require('ouzel.chat').state.buf, 0, -1, false)"
    )


def running(nvim: Editor) -> bool:
    return nvim.lua("return next(require('ouzel.jobs').active) ~= nil")


def wait_float(nvim: Editor, what: str) -> str:
    """Wait until the confirmation float shows `what`; fail at once if the turn ended."""

    def shown() -> str | bool | None:
        if nvim.lua("return vim.bo.filetype") == "ouzelconfirm":
            screen = nvim.screen_text()
            if what in screen:
                return screen
        if not running(nvim):
            raise AssertionError(
                f"the turn ended before {what!r}: {chat_lines(nvim)}\n{nvim.messages()}"
            )
        return None

    return wait_for(shown, STEP_S, f"the confirmation float showing {what!r}")


def wait_idle(nvim: Editor) -> None:
    nvim.wait("return next(require('ouzel.jobs').active) == nil", STEP_S, "the turn to end")


def buffer_text(nvim: Editor, path: Path) -> str | None:
    lines = nvim.lua(
        """
        local bufnr = vim.fn.bufnr(...)
        if bufnr == -1 then return nil end
        return vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
        """,
        str(path),
    )
    return None if lines is None else "\n".join(lines) + "\n"


def modified(nvim: Editor, path: Path) -> bool:
    return nvim.lua("return vim.bo[vim.fn.bufnr(...)].modified", str(path))


def no_change_prompts(nvim: Editor) -> None:
    nvim.command("checktime")
    assert nvim.lua("return _G.changed_shell") == [], "a W11/W12/W13 prompt would show"


def test_two_file_change_reviewed_hunk_by_hunk_then_undone(
    nvim: Editor, workspace: Path, model: tuple[Plan, ScriptedServer]
) -> None:
    plan, server = model
    geometry, main = workspace / "geometry.py", workspace / "main.py"
    notes = workspace / "notes" / "CHANGES.md"
    before = tree(workspace)
    plan.steps = [
        [("read_file", {"path": "geometry.py"}), ("read_file", {"path": "main.py"})],
        [("propose_edit", {"path": "geometry.py", "old_text": GEOMETRY, "new_text": GEOMETRY_NEW})],
        [("propose_edit", {"path": "main.py", "old_text": MAIN, "new_text": MAIN_NEW})],
        [("create_file", {"path": "notes/CHANGES.md", "content": NOTES})],
    ]
    nvim.command("Ouzel agent Rename area to surface in both files")

    # geometry.py (open in Neovim): accept the rename, reject the second hunk.
    screen = wait_float(nvim, "Change 1 of 2: line 1 (replace)")
    assert "Ouzel agent: geometry.py" in screen
    assert "- def area(width, height):" in screen and "+ def surface(width, height):" in screen
    lines = chat_lines(nvim)
    assert "## You (agent)" in lines and "Rename area to surface in both files" in lines
    assert any(line.startswith("- step 1/") and "read_file geometry.py" in line for line in lines)
    nvim.type("y")
    screen = wait_float(nvim, "Change 2 of 2: line 6 (replace)")
    assert "+     return 2 * width + 2 * height" in screen
    nvim.type("n")

    # main.py (not open): accept every hunk.
    screen = wait_float(nvim, "Change 1 of 2: line 1 (replace)")
    assert "Ouzel agent: main.py" in screen and "+ from geometry import surface" in screen
    nvim.type("a")

    # The new file: its creation, then its text.
    screen = wait_float(nvim, "Create notes/CHANGES.md")
    assert "create file" in screen
    nvim.type("a")
    wait_idle(nvim)

    # The server wrote exactly what was accepted; Neovim saved nothing.
    assert geometry.read_text() == GEOMETRY_FIRST_HUNK
    assert main.read_text() == MAIN_NEW
    assert notes.read_text() == NOTES
    for path, text in [(geometry, GEOMETRY_FIRST_HUNK), (main, MAIN_NEW), (notes, NOTES)]:
        assert buffer_text(nvim, path) == text, path
        assert not modified(nvim, path), f"{path.name} is left modified"
    no_change_prompts(nvim)
    lines = chat_lines(nvim)
    assert "Done." in lines
    files = next(line for line in lines if line.startswith("Files: "))
    assert "geometry.py (1 of 2 hunk(s))" in files and "main.py (2 of 2 hunk(s))" in files
    assert "notes/CHANGES.md (new" in files
    assert "Edits: 3 proposed, 3 applied, 0 rejected, 0 refused, 0 retried" in lines, lines
    assert any(line.startswith("_(done, 5 step(s)") for line in lines), lines
    assert any(line.startswith("Undo: gu here, or :Ouzel agent undo") for line in lines)
    # The model heard that the second hunk of geometry.py was rejected.
    assert any(
        "rejected hunk(s) 2 of 2" in (message.get("content") or "")
        for seen in server.seen
        if isinstance(seen.body, dict)
        for message in seen.body.get("messages", [])
    )

    # Undo the whole turn.
    nvim.command("Ouzel agent undo")
    nvim.wait(
        "return vim.iter(vim.api.nvim_buf_get_lines(require('ouzel.chat').state.buf, 0, -1,"
        " false)):any(function(l) return l:find('undone: restored', 1, true) ~= nil end)",
        STEP_S,
        "the undo to be shown",
    )
    assert tree(workspace) == before, "both files restored byte for byte, the new one gone"
    assert buffer_text(nvim, geometry) == GEOMETRY and not modified(nvim, geometry)
    assert buffer_text(nvim, main) == MAIN and not modified(nvim, main)
    assert buffer_text(nvim, notes) is None, "the new file's buffer is gone"
    no_change_prompts(nvim)
    undone = next(line for line in chat_lines(nvim) if "undone: restored" in line)
    assert "geometry.py" in undone and "main.py" in undone and "notes/CHANGES.md" in undone


def test_a_protected_file_is_asked_about_first_and_refusing_writes_nothing(
    nvim: Editor, workspace: Path, model: tuple[Plan, ScriptedServer]
) -> None:
    plan, _ = model
    before = tree(workspace)
    new = PYPROJECT + 'dependencies = ["evil"]\n'
    plan.steps = [
        [("read_file", {"path": "pyproject.toml"})],
        [("propose_edit", {"path": "pyproject.toml", "old_text": PYPROJECT, "new_text": new})],
    ]
    nvim.command("Ouzel agent add a dependency")

    def question() -> str | None:
        screen = nvim.screen_text()
        if "ouzel warning:" in screen and "pyproject.toml" in screen:
            return screen
        if not running(nvim):
            raise AssertionError(f"no question: {chat_lines(nvim)}\n{nvim.messages()}")
        return None

    screen = wait_for(question, STEP_S, "the protected-file question")
    assert "1: Allow this change" in screen and "2: Refuse" in screen
    nvim.type("2<CR>")
    wait_idle(nvim)
    assert tree(workspace) == before
    lines = chat_lines(nvim)
    refused = [line for line in lines if "propose_edit pyproject.toml" in line]
    assert refused and "(refused)" in refused[0], lines
    assert not any(line.startswith("Undo:") for line in lines), "nothing to undo"
    assert nvim.lua("return vim.bo.filetype") == "python", "no hunk float was shown"
