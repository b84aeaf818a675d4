"""Neovim 0.11 with only `vim.lsp.enable('ouzel')`, the real server and the default model.

One headless Neovim (and so one `ouzel serve` and one model load) for the whole module; each
test opens its own file. What is checked is what a user sees and gets: the ghost text on the
screen, the buffer after a key, the server's record of what was shown and accepted.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "nvim"))
from harness import Editor, editor, wait_for

pytestmark = pytest.mark.e2e

FIRST_SUGGESTION_S = 180  # model load and first generation on a busy 2-core CI machine
SUGGESTION_S = 60

FUNCTION = 'def add(a, b):\n    """Return the sum of a and b."""\n    \n'

# Every `$/progress` value Neovim receives from ouzel from the start, with what the plugin's
# statusline and Neovim's own `vim.lsp.status()` said at that moment (this autocmd runs after
# the plugin's, which was made at startup).
RECORD_PROGRESS = """
_G.progress_seen = {}
vim.api.nvim_create_autocmd('LspProgress', { callback = function(args)
  table.insert(_G.progress_seen, {
    token = args.data.params.token,
    value = args.data.params.value,
    statusline = require('ouzel').statusline(),
    lsp_status = vim.lsp.status(),
  })
end })
"""


@pytest.fixture(scope="module")
def nvim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Editor]:
    root = tmp_path_factory.mktemp("neovim-model")
    workspace = root / "project"
    workspace.mkdir()
    (workspace / ".git").mkdir()
    with editor(workspace, root / "home") as running:
        running.lua(RECORD_PROGRESS)
        yield running


@pytest.fixture
def fresh(nvim: Editor) -> Iterator[Editor]:
    """Normal mode, nothing shown, messages cleared; the file is closed afterwards."""
    yield nvim
    nvim.type("<Esc>")
    wait_for(lambda: nvim.mode() == "n", 10, "normal mode")
    nvim.command("silent! write | bwipeout!")
    nvim.command("messages clear")


def open_function(nvim: Editor, name: str) -> None:
    """Open a file with a documented function and enter insert mode in its empty body."""
    path = nvim.workspace / name
    path.write_text(FUNCTION)
    nvim.open(path)
    nvim.wait_attached()
    nvim.type("3GA")


def first_suggestion(nvim: Editor) -> str:
    return nvim.wait_suggestion(FIRST_SUGGESTION_S)


def next_word(text: str) -> str:
    """The plugin's rule for a word (lua/ouzel/text.lua): blanks then one identifier, or one
    run of punctuation, or a line break and the next line's indentation."""
    match = re.match(r"\r?\n[ \t]*|[ \t]*\w+|[ \t]*[^\w\s]+|[ \t]+", text)
    assert match, text
    return match.group(0)


def telemetry(nvim: Editor) -> list[dict[str, Any]]:
    path = nvim.home / "state" / "ouzel" / "completions.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def events(nvim: Editor, kind: str) -> list[dict[str, Any]]:
    return [event for event in telemetry(nvim) if event["event"] == kind]


def test_ghost_text_appears_in_a_function_body_and_accept_inserts_it(fresh: Editor) -> None:
    nvim = fresh
    open_function(nvim, "add.py")
    suggestion = first_suggestion(nvim)
    assert "return" in suggestion, suggestion
    first, *rest = suggestion.split("\n")
    screen = nvim.screen()
    assert screen[2] == "    " + first, "the ghost text is drawn after the cursor"
    assert screen[3 : 3 + len(rest)] == rest, "further lines are drawn below"
    assert nvim.lines() == FUNCTION.split("\n")[:-1], "ghost text is not in the buffer"

    nvim.type("<Plug>(ouzel-accept)")
    expected = ["def add(a, b):", '    """Return the sum of a and b."""', "    " + first, *rest]
    wait_for(lambda: nvim.lines() == expected, 10, "the suggestion in the buffer")
    assert nvim.mode() == "i"
    assert nvim.cursor() == (len(expected), len(expected[-1].encode()))
    shown = wait_for(lambda: events(nvim, "shown"), 10, "the server to record it shown")
    accepted = wait_for(lambda: events(nvim, "accepted"), 10, "the server to record the accept")
    assert accepted[-1]["id"] == shown[-1]["id"]


def test_dismiss_clears_the_ghost_text(fresh: Editor) -> None:
    nvim = fresh
    open_function(nvim, "dismiss.py")
    first_suggestion(nvim)
    nvim.type("<Plug>(ouzel-dismiss)")
    wait_for(lambda: nvim.suggestion() is None, 5, "the ghost text to go")
    assert nvim.screen()[2] == ""
    assert nvim.lines()[2] == "    "


def test_accept_word_takes_one_word_and_keeps_the_rest(fresh: Editor) -> None:
    nvim = fresh
    open_function(nvim, "word.py")
    suggestion = first_suggestion(nvim)
    word = next_word(suggestion)
    nvim.type("<Plug>(ouzel-accept-word)")
    wait_for(lambda: nvim.lines()[2] == "    " + word, 10, "one word in the buffer")
    assert nvim.suggestion() == suggestion[len(word) :]
    assert nvim.screen()[2] == "    " + suggestion.split("\n")[0]
    partial = wait_for(lambda: events(nvim, "partial"), 10, "the server to record it")
    assert partial[-1]["acceptedChars"] == len(word)


def test_typing_what_is_suggested_keeps_the_rest_on_screen(fresh: Editor) -> None:
    nvim = fresh
    open_function(nvim, "type_through.py")
    suggestion = first_suggestion(nvim)
    typed = suggestion[:3]
    nvim.type(typed)
    wait_for(lambda: nvim.lines()[2] == "    " + typed, 10, "typing")
    # Shown at once from what is already there, before any new answer from the server.
    assert nvim.suggestion() == suggestion[3:]
    # The server's answer for the new position (its type-through cache) agrees.
    wait_for(lambda: not nvim.lua("return require('ouzel.inline').busy()"), SUGGESTION_S, "idle")
    assert nvim.suggestion() == suggestion[3:]


def test_a_crlf_file_with_emoji_keeps_its_line_endings(fresh: Editor) -> None:
    nvim = fresh
    path = nvim.workspace / "crlf.py"
    text = 'def greet(name):\r\n    """Say hello 👋 to name."""\r\n    \r\n'
    path.write_bytes(text.encode())
    nvim.open(path)
    nvim.wait_attached()
    assert nvim.lua("return vim.bo.fileformat") == "dos"
    nvim.type("3GA")
    suggestion = nvim.wait_suggestion(SUGGESTION_S)
    first, *rest = suggestion.split("\n")
    assert nvim.screen()[2] == "    " + first
    nvim.type("<Tab><Esc>:write<CR>")
    expected = text[: -len("\r\n")] + first + "".join("\r\n" + line for line in rest) + "\r\n"
    wait_for(lambda: path.read_bytes() == expected.encode(), 10, "the file written with CRLF")


def test_leaving_insert_mode_clears_it(fresh: Editor) -> None:
    nvim = fresh
    open_function(nvim, "leave.py")
    first_suggestion(nvim)
    nvim.type("<Esc>")
    wait_for(lambda: nvim.mode() == "n", 5, "normal mode")
    assert nvim.lua("return #vim.api.nvim_buf_get_extmarks(0, -1, 0, -1, {})") == 0
    assert nvim.screen()[2] == "    " or nvim.screen()[2] == ""


def test_model_loading_progress_shows_in_the_statusline(fresh: Editor) -> None:
    nvim = fresh
    open_function(nvim, "progress.py")
    first_suggestion(nvim)
    seen = nvim.lua("return _G.progress_seen")
    begin = next(
        s for s in seen if s["value"]["kind"] == "begin" and s["value"]["title"].startswith("Load")
    )
    # The indexer may be reporting at the same time: the statusline shows both.
    assert begin["statusline"].startswith("ouzel: ") and "Loading" in begin["statusline"], seen
    assert "Loading" in begin["lsp_status"], seen
    ends = [s for s in seen if s["token"] == begin["token"] and s["value"]["kind"] == "end"]
    assert ends, seen
    wait_for(
        lambda: not nvim.lua("return require('ouzel.status').progress_line(...)", nvim.client_id()),
        60,
        "all work in progress to end",
    )
    assert nvim.lua("return require('ouzel').statusline()") == "ouzel"


def test_status_and_checkhealth_report_the_loaded_model(fresh: Editor) -> None:
    nvim = fresh
    open_function(nvim, "health.py")
    first_suggestion(nvim)
    nvim.type("<Esc>")
    nvim.command("Ouzel status")
    status = wait_for(
        lambda: (m := nvim.messages()) and "state" in m and m, 20, ":Ouzel status output"
    )
    assert re.search(r"^  model$", status, re.M), status
    assert re.search(r"^    state +ready$", status, re.M), status
    nvim.command("checkhealth ouzel")
    report = "\n".join(nvim.lines())
    nvim.command("bwipeout")
    assert "ERROR" not in report and "WARNING" not in report, report
    assert "OK version: ouzel" in report
    assert re.search(
        r"OK model loaded: qwen2\.5-coder-0\.5b.*\.gguf \(profile local\), in [0-9.]+ s", report
    ), report
