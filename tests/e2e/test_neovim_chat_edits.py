"""The plugin's `workspace/applyEdit` confirmation in a real Neovim 0.11, against the scripted
in-process server (tests/e2e/nvim/scripted_server.lua), which sends the edits a test makes.

Neovim 0.11 applies edits silently and ignores change annotations; the plugin shows each
annotated hunk in a diff float (y / n / a / q) and applies exactly the accepted ones. The
real server's edits are in test_neovim_chat.py.
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

THREE = "def a():\n    return 1\n\n\ndef b():\n    return 2\n\n\ndef c():\n    return 3\n"


@pytest.fixture
def nvim(tmp_path: Path) -> Iterator[Editor]:
    workspace = tmp_path / "project"
    workspace.mkdir()
    with editor(workspace, tmp_path / "home") as running:
        running.lua("vim.lsp.config('ouzel', { cmd = dofile(...).cmd })", str(SCRIPTED))
        yield running


def open_file(nvim: Editor, name: str, text: str | bytes) -> str:
    path = nvim.workspace / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    nvim.open(path)
    nvim.wait_attached(timeout=10)
    return path.as_uri()


def position(line: int, character: int) -> dict[str, int]:
    return {"line": line, "character": character}


def text_edit(
    start: tuple[int, int], end: tuple[int, int], text: str, annotation: str | None
) -> dict[str, Any]:
    edit: dict[str, Any] = {
        "range": {"start": position(*start), "end": position(*end)},
        "newText": text,
    }
    if annotation is not None:
        edit["annotationId"] = annotation
    return edit


def annotated(
    uri: str, edits: list[dict[str, Any]], labels: dict[str, str], version: int | None = 0
) -> dict[str, Any]:
    # JSON null reaches a Neovim handler as a missing key (luanil), so None leaves it out.
    document = {"uri": uri} if version is None else {"uri": uri, "version": version}
    return {
        "label": "Ouzel: Add docstrings",
        "edit": {
            "documentChanges": [{"textDocument": document, "edits": edits}],
            "changeAnnotations": {
                name: {"label": label, "needsConfirmation": True, "description": "Ouzel: test"}
                for name, label in labels.items()
            },
        },
    }


def send(nvim: Editor, params: dict[str, Any]) -> None:
    nvim.lua("Scripted.apply_edit(...)", params)


def wait_float(nvim: Editor, what: str) -> str:
    """Wait until the confirmation float shows `what`; return the screen."""
    return wait_for(
        lambda: (
            nvim.lua("return vim.bo.filetype") == "ouzelconfirm"
            and what in (screen := nvim.screen_text())
            and screen
        ),
        10,
        f"the confirmation float showing {what!r}",
    )


def answer_of(nvim: Editor, count: int = 1) -> dict[str, Any]:
    results = wait_for(
        lambda: (r := nvim.lua("return Scripted.apply_results")) and len(r) >= count and r,
        10,
        "the answer to workspace/applyEdit",
    )
    result = results[count - 1]
    assert result["ok"] is True, result
    return result["result"]


def three_hunks(uri: str) -> dict[str, Any]:
    return annotated(
        uri,
        [
            text_edit((1, 0), (1, 0), '    """A."""\n', "ouzel-1"),
            text_edit((5, 0), (6, 0), "    return 20\n", "ouzel-2"),
            text_edit((9, 0), (9, 0), '    """C."""\n', "ouzel-3"),
        ],
        {
            "ouzel-1": "Change 1 of 3: before line 2 (insert)",
            "ouzel-2": "Change 2 of 3: line 6 (replace)",
            "ouzel-3": "Change 3 of 3: before line 10 (insert)",
        },
    )


def test_three_hunks_accept_the_first_and_third_reject_the_second(nvim: Editor) -> None:
    uri = open_file(nvim, "three.py", THREE)
    send(nvim, three_hunks(uri))
    screen = wait_float(nvim, "Change 1 of 3")
    assert "three.py:2" in screen
    assert '+     """A."""' in screen
    assert "[y] accept" in screen
    assert nvim.lines() != []  # nothing applied while the user decides
    assert nvim.lua("return Scripted.apply_results") == []
    nvim.type("y")
    screen = wait_float(nvim, "Change 2 of 3")
    assert "-     return 2" in screen and "+     return 20" in screen
    nvim.type("n")
    wait_float(nvim, "Change 3 of 3")
    nvim.type("y")
    assert answer_of(nvim) == {"applied": True}
    assert nvim.lua("return vim.bo.filetype") == "python", "back in the file"
    assert "\n".join(nvim.lines()) + "\n" == (
        'def a():\n    """A."""\n    return 1\n\n\ndef b():\n    return 2\n\n\n'
        'def c():\n    """C."""\n    return 3\n'
    )


def test_a_accepts_the_rest_and_q_rejects_the_rest(nvim: Editor) -> None:
    uri = open_file(nvim, "three.py", THREE)
    send(nvim, three_hunks(uri))
    wait_float(nvim, "Change 1 of 3")
    nvim.type("n")
    wait_float(nvim, "Change 2 of 3")
    nvim.type("a")
    assert answer_of(nvim) == {"applied": True}
    assert nvim.lines()[5] == "    return 20" and nvim.lines()[9] == '    """C."""'
    assert nvim.lines()[1] == "    return 1"
    nvim.command("edit!")  # back to the file as it is on disk
    nvim.wait("return vim.api.nvim_buf_line_count(0) == 10", 5, "the reload")
    send(nvim, three_hunks(uri) | {"edit": three_hunks(uri)["edit"]})
    wait_float(nvim, "Change 1 of 3")
    nvim.type("q")
    answer = answer_of(nvim, 2)
    assert answer["applied"] is False and "rejected" in answer["failureReason"]
    assert "\n".join(nvim.lines()) + "\n" == THREE


def test_closing_the_float_rejects_what_is_left(nvim: Editor) -> None:
    uri = open_file(nvim, "three.py", THREE)
    send(nvim, three_hunks(uri))
    wait_float(nvim, "Change 1 of 3")
    nvim.type("y")
    wait_float(nvim, "Change 2 of 3")
    nvim.command("close")
    assert answer_of(nvim) == {"applied": True}
    assert nvim.lines()[1] == '    """A."""'
    assert nvim.lines()[6] == "    return 2" and len(nvim.lines()) == 11


def test_crlf_document_keeps_its_line_ends(nvim: Editor) -> None:
    original = b"x = 1\r\ny = 2\r\nz = 3\r\n"
    uri = open_file(nvim, "crlf.py", original)
    assert nvim.lua("return vim.bo.fileformat") == "dos"
    params = annotated(
        uri,
        [
            text_edit((0, 0), (1, 0), "x = 10\r\n", "ouzel-1"),
            text_edit((2, 0), (3, 0), "z = 30\r\nw = 4\r\n", "ouzel-2"),
        ],
        {"ouzel-1": "Change 1 of 2: line 1", "ouzel-2": "Change 2 of 2: line 3"},
    )
    send(nvim, params)
    screen = wait_float(nvim, "Change 1 of 2")
    assert "+ x = 10" in screen and "^M" not in screen
    nvim.type("n")
    screen = wait_float(nvim, "Change 2 of 2")
    assert "- z = 3" in screen and "+ z = 30" in screen and "+ w = 4" in screen
    nvim.type("y")
    assert answer_of(nvim) == {"applied": True}
    assert nvim.lines() == ["x = 1", "y = 2", "z = 30", "w = 4"]
    nvim.command("write")
    path = nvim.workspace / "crlf.py"
    assert path.read_bytes() == b"x = 1\r\ny = 2\r\nz = 30\r\nw = 4\r\n"


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_multibyte_lines_use_utf16_positions(nvim: Editor) -> None:
    line = 's = "名前😀x" + "é"'
    uri = open_file(nvim, "wide.py", line + "\nt = 1\n")
    x_at = utf16('s = "名前😀')
    e_at = utf16('s = "名前😀x" + "')
    params = annotated(
        uri,
        [
            text_edit((0, x_at), (0, x_at + 1), "ÿ", "ouzel-1"),
            text_edit((0, e_at), (0, e_at + 1), "😀", "ouzel-2"),
        ],
        {"ouzel-1": "Change 1 of 2", "ouzel-2": "Change 2 of 2"},
    )
    send(nvim, params)
    screen = wait_float(nvim, "Change 1 of 2")
    assert '+ s = "名前😀ÿ" + "é"' in screen
    nvim.type("n")
    screen = wait_float(nvim, "Change 2 of 2")
    assert '+ s = "名前😀x" + "😀"' in screen
    nvim.type("y")
    assert answer_of(nvim) == {"applied": True}
    assert nvim.lines() == ['s = "名前😀x" + "😀"', "t = 1"]


def test_an_edit_naming_a_missing_annotation_is_asked_about(nvim: Editor) -> None:
    uri = open_file(nvim, "three.py", THREE)
    params = annotated(
        uri,
        [
            text_edit((1, 0), (2, 0), "    return 10\n", "ouzel-1"),
            text_edit((5, 0), (6, 0), "    return 20\n", "ouzel-9"),
        ],
        {"ouzel-1": "Change 1 of 2: line 2"},
    )
    send(nvim, params)
    wait_float(nvim, "Change 1 of 2")
    nvim.type("y")
    screen = wait_float(nvim, 'annotation "ouzel-9" is missing')
    assert "did not describe this change" in screen
    nvim.type("n")
    assert answer_of(nvim) == {"applied": True}
    assert nvim.lines()[1] == "    return 10" and nvim.lines()[5] == "    return 2"
    # An edit naming only missing annotations (no changeAnnotations at all) is asked too.
    edit = annotated(uri, [text_edit((8, 0), (9, 0), "def d():\n", "nope")], {})
    del edit["edit"]["changeAnnotations"]
    del edit["edit"]["documentChanges"][0]["textDocument"]["version"]
    send(nvim, edit)
    wait_float(nvim, 'annotation "nope" is missing')
    nvim.type("y")
    assert answer_of(nvim, 2) == {"applied": True}
    assert nvim.lines()[8] == "def d():"


def test_edits_without_confirmation_keep_neovims_behaviour(nvim: Editor) -> None:
    uri = open_file(nvim, "three.py", THREE)
    plain = {
        "label": "rename",
        "edit": {"changes": {uri: [text_edit((0, 4), (0, 5), "first", None)]}},
    }
    send(nvim, plain)
    assert answer_of(nvim)["applied"] is True
    assert nvim.lines()[0] == "def first():"
    no_confirm = annotated(uri, [text_edit((4, 4), (4, 5), "second", "x")], {"x": "x"}, None)
    no_confirm["edit"]["changeAnnotations"]["x"]["needsConfirmation"] = False
    send(nvim, no_confirm)
    assert answer_of(nvim, 2)["applied"] is True, answer_of(nvim, 2)
    assert nvim.lines()[4] == "def second():"
    assert nvim.lua("return vim.bo.filetype") == "python", "no float was shown"


def test_a_stale_or_malformed_edit_is_refused_with_a_reason(nvim: Editor) -> None:
    uri = open_file(nvim, "three.py", THREE)
    nvim.type("ggOimport os<Esc>")
    wait_for(lambda: nvim.lines()[0] == "import os", 5, "the typed line")
    send(nvim, three_hunks(uri))  # computed for version 0; the buffer has moved on
    answer = answer_of(nvim)
    assert (
        answer["applied"] is False and "changed since the edit was made" in answer["failureReason"]
    )
    assert nvim.lines()[0] == "import os" and len(nvim.lines()) == 11
    bad = annotated(uri, [text_edit((1, 0), (1, 0), "x", "ouzel-1")], {"ouzel-1": "x"}, None)
    bad["edit"]["documentChanges"][0]["edits"][0]["range"]["start"]["line"] = -3
    send(nvim, bad)
    answer = answer_of(nvim, 2)
    assert answer["applied"] is False and "malformed" in answer["failureReason"]
    bad["edit"]["documentChanges"][0]["edits"][0]["range"] = "garbage"
    send(nvim, bad)
    assert answer_of(nvim, 3)["applied"] is False
    assert nvim.lua("return vim.bo.filetype") == "python"


def test_out_of_range_positions_are_clamped_like_neovim_does(nvim: Editor) -> None:
    uri = open_file(nvim, "short.py", "a = 1\n")
    params = annotated(
        uri,
        [text_edit((0, 99), (40, 0), "  # one\nb = 2\n", "ouzel-1")],
        {"ouzel-1": "Change 1 of 1"},
    )
    send(nvim, params)
    screen = wait_float(nvim, "Change 1 of 1")
    assert "+ a = 1  # one" in screen and "+ b = 2" in screen
    nvim.type("y")
    assert answer_of(nvim) == {"applied": True}
    assert nvim.lines()[:2] == ["a = 1  # one", "b = 2"]


def test_a_two_file_edit_with_a_new_file_is_asked_file_by_file(nvim: Editor) -> None:
    """The shape of an agent turn (issue 13): a new file and an edit of another one."""
    uri = open_file(nvim, "three.py", THREE)
    new_uri = (nvim.workspace / "helpers.py").as_uri()
    params = {
        "label": "Ouzel agent: move b into helpers.py",
        "edit": {
            "documentChanges": [
                {"kind": "create", "uri": new_uri, "annotationId": "create"},
                {
                    "textDocument": {"uri": new_uri},
                    "edits": [text_edit((0, 0), (0, 0), "def b():\n    return 2\n", "body")],
                },
                {
                    "textDocument": {"uri": uri, "version": 0},
                    "edits": [text_edit((4, 0), (8, 0), "", "remove")],
                },
            ],
            "changeAnnotations": {
                "create": {"label": "Create helpers.py", "needsConfirmation": True},
                "body": {"label": "helpers.py: add b", "needsConfirmation": True},
                "remove": {"label": "three.py: remove b", "needsConfirmation": True},
            },
        },
    }
    send(nvim, params)
    screen = wait_float(nvim, "Create helpers.py  (1 of 3)")
    assert "create file helpers.py" in screen
    nvim.type("y")
    screen = wait_float(nvim, "helpers.py: add b  (2 of 3)")
    assert "helpers.py:1" in screen and "+ def b():" in screen
    nvim.type("y")
    screen = wait_float(nvim, "three.py: remove b  (3 of 3)")
    assert "- def b():" in screen and "-     return 2" in screen
    nvim.type("n")
    assert answer_of(nvim) == {"applied": True}
    # The new file is a buffer, attached to the server, which writes the file itself
    # (docs/AGENT.md); the editor does not create or truncate anything on disk.
    assert not (nvim.workspace / "helpers.py").exists()
    helpers = nvim.lua(
        "return vim.api.nvim_buf_get_lines(vim.uri_to_bufnr(...), 0, -1, false)", new_uri
    )
    assert helpers == ["def b():", "    return 2"], "the file's text, its last line end in 'eol'"
    assert nvim.lua(
        "return vim.lsp.buf_is_attached(vim.uri_to_bufnr(...), require('ouzel').client().id)",
        new_uri,
    )
    opened = [
        n
        for n in nvim.lua("return Scripted.notifications")
        if n["method"] == "textDocument/didOpen"
    ]
    assert new_uri in [n["params"]["textDocument"]["uri"] for n in opened]
    assert "\n".join(nvim.lines()) + "\n" == THREE


def test_creating_a_file_that_exists_is_refused_and_leaves_it_alone(nvim: Editor) -> None:
    uri = open_file(nvim, "three.py", THREE)
    existing = nvim.workspace / "notes.txt"
    existing.write_text("keep me\n")
    params = {
        "label": "Ouzel agent: create notes.txt",
        "edit": {
            "documentChanges": [
                {
                    "kind": "create",
                    "uri": existing.as_uri(),
                    "options": {"overwrite": False, "ignoreIfExists": False},
                    "annotationId": "create",
                },
                {
                    "textDocument": {"uri": existing.as_uri()},
                    "edits": [text_edit((0, 0), (0, 0), "new text\n", "create")],
                },
            ],
            "changeAnnotations": {
                "create": {"label": "Create notes.txt", "needsConfirmation": True},
            },
        },
    }
    send(nvim, params)
    answer = answer_of(nvim)
    assert answer["applied"] is False and "already exists" in answer["failureReason"]
    assert existing.read_text() == "keep me\n"
    assert nvim.lua("return vim.bo.filetype") == "python", "nothing was asked"
    assert uri == (nvim.workspace / "three.py").as_uri()


def test_two_edits_at_once_are_asked_one_after_the_other(nvim: Editor) -> None:
    uri = open_file(nvim, "three.py", THREE)
    first = annotated(uri, [text_edit((1, 0), (2, 0), "    return 10\n", "a")], {"a": "First"})
    # Unversioned: the first edit moves the buffer on (a versioned one would be stale).
    second = annotated(
        uri, [text_edit((5, 0), (6, 0), "    return 20\n", "b")], {"b": "Second"}, None
    )
    send(nvim, first)
    send(nvim, second)
    wait_float(nvim, "First  (1 of 1)")
    assert (
        nvim.lua(
            "return #vim.tbl_filter(function(w) return vim.api.nvim_win_get_config(w).relative ~= '' end, vim.api.nvim_list_wins())"
        )
        == 1
    )
    nvim.type("y")
    wait_float(nvim, "Second  (1 of 1)")
    nvim.type("y")
    assert answer_of(nvim, 2) == {"applied": True}
    assert nvim.lines()[1] == "    return 10" and nvim.lines()[5] == "    return 20"
