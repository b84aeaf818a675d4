"""The plugin's ghost-text rules in a real Neovim, against a scripted in-process LSP server.

The scripted server (tests/e2e/nvim/scripted_server.lua) answers `textDocument/inlineCompletion`
with whatever a test sets, so each rule can be forced: where the text is drawn, what
typing through, moving, leaving and accepting do, UTF-16 positions, ranges that replace text,
stale and malformed answers. The real server with the real model is in test_neovim.py.
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
SHOWN = "textDocument/didShowCompletion"
PARTIAL = "textDocument/didPartiallyAcceptCompletion"


@pytest.fixture
def nvim(tmp_path: Path) -> Iterator[Editor]:
    workspace = tmp_path / "project"
    workspace.mkdir()
    with editor(workspace, tmp_path / "home", options={"debounce_ms": 10}) as running:
        running.lua("vim.lsp.config('ouzel', { cmd = dofile(...).cmd })", str(SCRIPTED))
        yield running


def item(text: str, start: tuple[int, int], end: tuple[int, int] | None = None) -> dict:
    end = end or start
    return {
        "insertText": text,
        "range": {
            "start": {"line": start[0], "character": start[1]},
            "end": {"line": end[0], "character": end[1]},
        },
    }


def answer(nvim: Editor, *items: dict[str, Any]) -> None:
    nvim.lua("Scripted.answer = ...", {"items": list(items)})


def edit(nvim: Editor, text: str, name: str = "calc.py") -> None:
    path = nvim.workspace / name
    path.write_text(text, encoding="utf-8")
    nvim.open(path)
    nvim.wait_attached(timeout=10)


def requests(nvim: Editor) -> list[dict]:
    return nvim.lua(
        "return vim.tbl_filter(function(r) return r.method == 'textDocument/inlineCompletion' end,"
        " Scripted.requests)"
    )


def notified(nvim: Editor, method: str) -> list[dict]:
    return [n["params"] for n in nvim.lua("return Scripted.notifications") if n["method"] == method]


def screen_row(nvim: Editor, row: int) -> str:
    return nvim.screen()[row - 1]


def test_ghost_text_appears_at_the_cursor_and_tab_inserts_it(nvim: Editor) -> None:
    edit(nvim, "def add(a, b):\n    \n")
    answer(nvim, item("return a + b", (1, 4)))
    nvim.type("2GAret")
    assert nvim.wait_suggestion(10) == "urn a + b"
    assert screen_row(nvim, 2) == "    return a + b"
    assert nvim.line(2) == "    ret", "ghost text is not in the buffer"
    request = requests(nvim)[-1]["params"]
    assert request["context"]["triggerKind"] == 2
    assert request["textDocument"]["uri"].endswith("/calc.py")
    nvim.type("<Tab>")
    wait_for(lambda: nvim.line(2) == "    return a + b", 5, "the accepted text")
    assert nvim.cursor() == (2, 16)
    assert nvim.mode() == "i"
    assert nvim.suggestion() is None


def test_typing_through_keeps_the_rest_without_asking_again(nvim: Editor) -> None:
    edit(nvim, "def add(a, b):\n    \n")
    answer(nvim, item("return a + b", (1, 4)))
    nvim.type("2GA")
    assert nvim.wait_suggestion(10) == "return a + b"
    nvim.lua("Scripted.answer = 'never'")  # from now on only the first answer counts
    nvim.type("retu")
    wait_for(lambda: nvim.line(2) == "    retu", 5, "typing")
    assert nvim.suggestion() == "rn a + b"
    assert screen_row(nvim, 2) == "    return a + b"
    nvim.type("x")  # leaves the suggestion: it goes
    wait_for(lambda: nvim.suggestion() is None, 5, "the ghost text to go")
    assert screen_row(nvim, 2) == "    retux"


def test_moving_the_cursor_leaving_insert_mode_or_dismissing_clears_it(nvim: Editor) -> None:
    edit(nvim, "def add(a, b):\n    \n")
    answer(nvim, item("return a + b", (1, 4)))
    for leave in ["<Left>", "<Esc>", "<C-]>", "<Plug>(ouzel-dismiss)"]:
        nvim.type("<Esc>2GA")
        wait_for(lambda: nvim.suggestion() == "return a + b", 10, "ghost text")
        nvim.type(leave)
        wait_for(lambda: nvim.suggestion() is None, 5, f"{leave} to clear the ghost text")
        assert screen_row(nvim, 2) == "", leave
        assert nvim.line(2) == "    "


def test_leaving_the_buffer_clears_it(nvim: Editor) -> None:
    edit(nvim, "def add(a, b):\n    \n")
    answer(nvim, item("return a + b", (1, 4)))
    nvim.type("2GA")
    nvim.wait_suggestion(10)
    nvim.type("<C-o>:new<CR>")
    wait_for(lambda: nvim.lua("return vim.fn.winnr('$')") == 2, 5, "a new window")
    assert (
        nvim.lua(
            "return #vim.api.nvim_buf_get_extmarks(vim.fn.bufnr('calc.py'), "
            "require('ouzel.inline').namespace, 0, -1, {})"
        )
        == 0
    )


def test_multi_line_suggestions_are_virtual_lines_and_accepted_whole(nvim: Editor) -> None:
    edit(nvim, "def total(xs):\n    \n\nprint(total([1]))\n")
    body = "s = 0\n    for x in xs:\n        s += x\n    return s"
    answer(nvim, item(body, (1, 4)))
    nvim.type("2GA")
    assert nvim.wait_suggestion(10) == body
    screen = nvim.screen()
    assert screen[1:6] == [
        "    s = 0",
        "    for x in xs:",
        "        s += x",
        "    return s",
        "",
    ]
    assert screen[6] == "print(total([1]))"
    nvim.type("<Plug>(ouzel-accept)")
    wait_for(lambda: nvim.lines()[1:5] == ["    s = 0", *body.split("\n")[1:]], 5, "accept")
    assert nvim.lines()[5:] == ["", "print(total([1]))"]
    assert nvim.cursor() == (5, 12)


def test_accept_word_and_line_take_pieces_and_report_them(nvim: Editor) -> None:
    edit(nvim, "def add(a, b):\n    \n")
    command = {"title": "accepted", "command": "ouzel.accepted", "arguments": ["id-7"]}
    answer(nvim, {**item("total = a + b\n    return total", (1, 4)), "command": command})
    nvim.type("2GA")
    nvim.wait_suggestion(10)
    nvim.lua("Scripted.answer = 'never'")
    nvim.type("<Plug>(ouzel-accept-word)")
    wait_for(lambda: nvim.line(2) == "    total", 5, "one word")
    assert nvim.suggestion() == " = a + b\n    return total"
    nvim.type("<M-Right>")  # the default key for a word: the next one is " ="
    wait_for(lambda: nvim.line(2) == "    total =", 5, "the next word")
    nvim.type("<Plug>(ouzel-accept-line)")
    wait_for(lambda: nvim.line(2) == "    total = a + b", 5, "the rest of the line")
    assert nvim.suggestion() == "\n    return total"
    nvim.type("<Plug>(ouzel-accept-line)")
    wait_for(lambda: nvim.lines()[1:3] == ["    total = a + b", "    return total"], 5, "line 2")
    assert nvim.suggestion() is None
    assert nvim.cursor() == (3, 16)
    partial = wait_for(lambda: len(p := notified(nvim, PARTIAL)) == 4 and p, 5, "the reports")
    assert [p["acceptedLength"] for p in partial] == [5, 7, 13, 30]
    assert all(p["item"]["command"]["arguments"] == ["id-7"] for p in partial)
    shown = notified(nvim, SHOWN)
    assert len(shown) == 1, "shown once, however often it was redrawn"
    assert shown[0]["item"]["insertText"] == "total = a + b\n    return total"
    assert nvim.lua("return Scripted.commands") == []


def test_accepting_runs_the_items_command(nvim: Editor) -> None:
    edit(nvim, "x = \n")
    command = {"title": "accepted", "command": "ouzel.accepted", "arguments": ["id-1"]}
    answer(nvim, {**item("42", (0, 4)), "command": command})
    nvim.type("A")
    nvim.wait_suggestion(10)
    nvim.type("<Tab>")
    executed = wait_for(lambda: nvim.lua("return Scripted.commands"), 5, "the command")
    assert executed == [{"command": "ouzel.accepted", "arguments": ["id-1"]}]


def test_utf16_positions_after_emoji_and_cjk(nvim: Editor) -> None:
    # "🦆" is 2 UTF-16 code units and 4 bytes; "名" and "水" are 1 unit and 3 bytes.
    edit(nvim, 'label = "🦆名" + \n')
    command = {"title": "accepted", "command": "ouzel.accepted"}
    answer(nvim, {**item('"水🦆"', (0, 16)), "command": command})  # 16: the end, in UTF-16
    nvim.type("A")
    assert nvim.wait_suggestion(10) == '"水🦆"'
    assert screen_row(nvim, 1) == 'label = "🦆名" + "水🦆"'
    assert requests(nvim)[-1]["params"]["position"] == {"line": 0, "character": 16}
    nvim.lua("Scripted.answer = 'never'")
    nvim.type("<Plug>(ouzel-accept-word)")
    wait_for(lambda: nvim.line(1) == 'label = "🦆名" + "', 5, "the quote")
    nvim.type("<Plug>(ouzel-accept-word)")
    wait_for(lambda: nvim.line(1) == 'label = "🦆名" + "水🦆', 5, "the word in CJK and emoji")
    nvim.type("<Tab>")
    wait_for(lambda: nvim.line(1) == 'label = "🦆名" + "水🦆"', 5, "the rest")
    executed = wait_for(lambda: nvim.lua("return Scripted.commands"), 5, "the command")
    assert executed == [{"command": "ouzel.accepted"}]
    # UTF-16 code units: '"' is 1, '"水🦆' is 1 + 1 + 2.
    assert [p["acceptedLength"] for p in notified(nvim, PARTIAL)] == [1, 4]


def test_an_item_that_replaces_a_closing_bracket(nvim: Editor) -> None:
    edit(nvim, "print()\n")
    answer(nvim, item('"hi")', (0, 6), (0, 7)))  # replaces ")" with '"hi")'
    nvim.type("0f)i")
    assert nvim.wait_suggestion(10) == '"hi")'
    assert screen_row(nvim, 1) == 'print("hi")', "the existing ) is not drawn twice"
    nvim.type("<Tab>")
    wait_for(lambda: nvim.line(1) == 'print("hi")', 5, "the accepted text")
    assert nvim.cursor() == (1, 11)


def test_next_cycles_through_several_suggestions(nvim: Editor) -> None:
    edit(nvim, "x = \n")
    answer(nvim, item("1", (0, 4)), item("2", (0, 4)))
    nvim.type("A")
    assert nvim.wait_suggestion(10) == "1"
    assert screen_row(nvim, 1) == "x = 1 (1/2)"
    nvim.type("<M-]>")
    wait_for(lambda: nvim.suggestion() == "2", 5, "the second suggestion")
    assert screen_row(nvim, 1) == "x = 2 (2/2)"
    nvim.type("<Tab>")
    wait_for(lambda: nvim.line(1) == "x = 2", 5, "the second one accepted")


def test_next_asks_for_a_suggestion_when_typing_does_not(nvim: Editor) -> None:
    nvim.lua("vim.g.ouzel = { auto_trigger = false }")
    edit(nvim, "x = \n")
    answer(nvim, item("1", (0, 4)))
    nvim.type("A")
    wait_for(lambda: nvim.mode() == "i", 5, "insert mode")
    assert requests(nvim) == []
    nvim.type("<Plug>(ouzel-next)")
    assert nvim.wait_suggestion(10) == "1"
    assert requests(nvim)[-1]["params"]["context"]["triggerKind"] == 1


def test_a_late_answer_for_where_the_cursor_was_is_dropped(nvim: Editor) -> None:
    edit(nvim, "a = \nb = \n")
    nvim.lua(
        """
        Scripted.delay_ms = 1000
        Scripted.ignore_cancel = true  -- the first answer arrives although it was cancelled
        Scripted.answer = function(params)
          local line = params.position.line
          return { items = { { insertText = 'line' .. line, range = {
            start = { line = line, character = 4 }, ['end'] = { line = line, character = 4 } } } } }
        end
        """
    )
    nvim.type("A")
    wait_for(lambda: requests(nvim), 10, "a request on line 1")
    nvim.type("<Down>")
    assert nvim.wait_suggestion(10) == "line1"
    assert nvim.lua("return Scripted.answered") == 2
    assert requests(nvim)[0]["id"] in nvim.lua("return Scripted.cancelled")
    assert screen_row(nvim, 1) == "a =" and screen_row(nvim, 2) == "b = line1"


def test_an_empty_answer_clears_unless_the_text_changed_meanwhile(nvim: Editor) -> None:
    nvim.lua("vim.g.ouzel = { debounce_ms = 60000 }")  # only <Plug>(ouzel-next) asks
    edit(nvim, "def add(a, b):\n    \n")
    answer(nvim, item("return a + b", (1, 4)))
    nvim.type("2GA<Plug>(ouzel-next)")
    assert nvim.wait_suggestion(10) == "return a + b"
    nvim.lua("Scripted.hold = true; Scripted.answer = { items = {} }")

    # Asked again, then the user types what is shown before the (empty) answer comes.
    nvim.type("<Plug>(ouzel-next)")
    wait_for(lambda: nvim.lua("return #Scripted.held") == 1, 5, "a held request")
    nvim.type("r")
    wait_for(lambda: nvim.line(2) == "    r", 5, "typing")
    answered = nvim.lua("return Scripted.answered")
    nvim.lua("Scripted.release()")
    wait_for(lambda: nvim.lua("return Scripted.answered") > answered, 5, "the answer")
    assert nvim.suggestion() == "eturn a + b", "an answer for older text changes nothing"

    # Asked with nothing typed since: the empty answer stands.
    nvim.type("<Plug>(ouzel-next)")
    wait_for(lambda: nvim.lua("return #Scripted.held") == 1, 5, "a held request")
    nvim.lua("Scripted.release()")
    wait_for(lambda: nvim.suggestion() is None, 5, "the empty answer to clear it")


@pytest.mark.parametrize(
    "bad",
    [
        "a string",
        [1, 2, 3],
        {"items": [{"insertText": 42}]},
        {"items": [{"insertText": ""}]},
        {"items": [item("x", (99, 0))]},  # a line past the end of the buffer
        {"items": [item("x", (0, -3))]},
        {"items": [{"insertText": "ok", "range": "nonsense"}]},
        {"items": "nonsense"},
    ],
)
def test_malformed_answers_show_nothing_and_break_nothing(nvim: Editor, bad: Any) -> None:
    edit(nvim, "x = \n")
    nvim.lua("Scripted.answer = ...", bad)
    nvim.type("A")
    wait_for(lambda: requests(nvim), 10, "a request")
    nvim.type("1")
    wait_for(lambda: nvim.line(1) == "x = 1", 5, "typing to go on")
    answer(nvim, item("23", (0, 5)))
    nvim.type("<Plug>(ouzel-next)")
    assert nvim.wait_suggestion(10) == "23"


def test_a_server_error_is_shown_once(nvim: Editor) -> None:
    edit(nvim, "x = \n")
    nvim.lua("Scripted.error = { code = -32603, message = 'model exploded' }")
    nvim.type("A1")
    wait_for(lambda: "model exploded" in nvim.messages(), 10, "the error message")
    nvim.type("2")
    wait_for(lambda: len(requests(nvim)) >= 2, 10, "another request")
    assert nvim.messages().count("model exploded") == 1


def test_snippet_items_are_inserted_as_plain_text(nvim: Editor) -> None:
    edit(nvim, "x = \n")
    answer(
        nvim,
        {
            "insertText": {"kind": "snippet", "value": "max(${1:a}, ${2:b})$0"},
            "range": item("", (0, 4))["range"],
        },
    )
    nvim.type("A")
    assert nvim.wait_suggestion(10) == "max(a, b)"
    nvim.type("<Tab>")
    wait_for(lambda: nvim.line(1) == "x = max(a, b)", 5, "the accepted text")


def test_toggle_off_hides_and_stops_asking(nvim: Editor) -> None:
    edit(nvim, "x = \n")
    answer(nvim, item("1", (0, 4)))
    nvim.type("A")
    nvim.wait_suggestion(10)
    nvim.lua("require('ouzel').toggle(false)")
    assert nvim.suggestion() is None
    before = len(requests(nvim))
    nvim.type("2")
    wait_for(lambda: nvim.line(1) == "x = 2", 5, "typing")
    assert nvim.lua("return require('ouzel.inline').busy()") is False
    assert len(requests(nvim)) == before
    assert nvim.lua("return require('ouzel').statusline()") == "ouzel: off"


def test_index_command_runs_the_servers_index_command(nvim: Editor) -> None:
    nvim.lua("Scripted.offered_commands = { 'ouzel.accepted', 'ouzel.index' }")
    edit(nvim, "x = 1\n")
    nvim.command("Ouzel index")
    wait_for(lambda: nvim.lua("return Scripted.commands"), 5, "the index command")
    assert nvim.lua("return Scripted.commands") == [{"command": "ouzel.index"}]
    assert "indexing the workspace" in nvim.messages()


def test_index_command_says_when_the_server_cannot_index(nvim: Editor) -> None:
    edit(nvim, "x = 1\n")
    nvim.command("Ouzel index")
    assert "this server does not offer indexing (ouzel.index)" in nvim.messages()
    assert nvim.lua("return Scripted.commands") == []
