"""The LSP side of code actions in process: the list's shape, `only`, resolve, and the
WorkspaceEdit built from hunks (UTF-16 positions, CRLF, end of document)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lsprotocol import converters, types

from ouzel.server.app import build_engine
from ouzel.server.features.edits import Hunk, Region, hunks_for
from ouzel.server.handlers import code_actions
from ouzel.server.server import create_server
from ouzel.server.session import Session

URI = "file:///ws/shapes.py"
SOURCE = "def area(w, h):\n    return w * h\n"
_converter = converters.get_converter()


@pytest.fixture
def session() -> Iterator[Session]:
    server = create_server(build_engine())
    yield server.session
    server.session.engine.close()


def params(
    line: int, end_line: int, only: list[str] | None = None, **extra: object
) -> types.CodeActionParams:
    raw = {
        "textDocument": {"uri": URI},
        "range": {
            "start": {"line": line, "character": 0},
            "end": {"line": end_line, "character": 0},
        },
        "context": {
            "diagnostics": extra.get("diagnostics", []),
            **({"only": only} if only else {}),
        },
    }
    return _converter.structure(raw, types.CodeActionParams)


def test_actions_carry_tag_command_and_data(session: Session) -> None:
    session.documents.open(URI, "python", 3, SOURCE)
    actions = code_actions.code_action(session, params(1, 1))
    assert [a.kind for a in actions] == [
        "refactor.ouzel.explain",
        "refactor.rewrite.ouzel.docstring",
        "refactor.ouzel.tests",
    ]
    for action in actions:
        assert action.tags == [types.CodeActionTag.LlmGenerated] and action.edit is None
        assert action.command is not None and action.command.command == "ouzel.codeAction.run"
        (argument,) = action.command.arguments or []
        assert argument["textDocument"] == {"uri": URI, "version": 3}
    stripped = types.CodeAction(title=actions[1].title, data=actions[1].data)
    resolved = code_actions.resolve(session, stripped)
    assert (
        resolved.command is not None and resolved.command.arguments == actions[1].command.arguments
    )  # type: ignore[union-attr]


def test_only_and_diagnostics(session: Session) -> None:
    session.documents.open(URI, "python", 1, SOURCE)
    diagnostic = {
        "range": {"start": {"line": 1, "character": 4}, "end": {"line": 1, "character": 10}},
        "message": "unused",
    }
    fixes = code_actions.code_action(session, params(1, 1, ["quickfix"], diagnostics=[diagnostic]))
    assert [a.title for a in fixes] == ['Ouzel: Fix "unused"']
    assert fixes[0].diagnostics is not None and fixes[0].diagnostics[0].message == "unused"
    assert code_actions.OPTIONS.resolve_provider is True


def test_hunks_become_one_annotated_edit_each_in_utf16(session: Session) -> None:
    text = "s = '😀'\r\nt = 1\r\nu = '漢'"
    doc = session.documents.open(URI, "python", 5, text)
    hunks = hunks_for(text, Region(0, 3), "s = '😀'\nt = 2\nu = '漢'\nv = 3\n")
    assert hunks == [Hunk(1, 2, "t = 2\r\n"), Hunk(3, 3, "\r\nv = 3")]
    edit = code_actions.workspace_edit(session, doc, hunks, "Ouzel: Edit selection")
    raw = _converter.unstructure(edit)
    (change,) = raw["documentChanges"]
    assert change["textDocument"] == {"uri": URI, "version": 5}
    first, second = change["edits"]
    assert first["range"] == {
        "start": {"line": 1, "character": 0},
        "end": {"line": 2, "character": 0},
    }
    # The end of a document without a final line break: after '漢' (one UTF-16 unit).
    assert second["range"]["start"] == {"line": 2, "character": 7}
    assert [e["annotationId"] for e in change["edits"]] == ["ouzel-1", "ouzel-2"]
    annotations = raw["changeAnnotations"]
    assert annotations["ouzel-1"] == {
        "label": "Change 1 of 2: line 2 (replace)",
        "needsConfirmation": True,
        "description": "Ouzel: Edit selection",
    }
    assert annotations["ouzel-2"]["label"] == "Change 2 of 2: before line 4 (insert)"


def test_no_actions_in_a_secret_file(session: Session) -> None:
    uri = "file:///ws/.env"
    session.documents.open(uri, "dotenv", 1, "TOKEN=abc\n")
    raw = {
        "textDocument": {"uri": uri},
        "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 3}},
        "context": {"diagnostics": []},
    }
    assert (
        code_actions.code_action(session, _converter.structure(raw, types.CodeActionParams)) == []
    )
