"""The agent in a real VS Code (code-server + headless Chromium), end to end.

The extension starts the real `ouzel serve`; its `remote` profile (`routing.agent`) is a
scripted OpenAI-compatible server (tests/inference/scripted_openai_server.py) that answers
each model call with the next planned tool calls: read both files, rename `area` to
`surface` in geometry.py and in its caller main.py, create test_geometry.py. The chat view's
Agent toggle starts the turn; each proposed file change opens VS Code's Refactor Preview
(one row per hunk, unticked: nothing is written unless the user ticks), where the driver
(clients/vscode/e2e/driver.mjs) ticks everything and applies. The test checks what reached
the disk, that no document is left modified, then presses "Undo agent turn" and checks both
files are restored byte for byte and the new file is gone. Screenshots: test-artifacts/.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_vscode import (
    ARTIFACTS,
    CodeServer,
    drive,
    events_named,
    install_extension,
    launch_code_server,
    make_workspace,
    require_setup,
    stop,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from scripted_openai_server import (
    Reply,
    ScriptedServer,
    Seen,
    chat_text_events,
    models_reply,
    tool_calls_events,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

GEOMETRY = (
    "def area(width, height):\n"
    "    return width * height\n"
    "\n"
    "\n"
    "def perimeter(width, height):\n"
    "    return 2 * (width + height)\n"
)
MAIN = "from geometry import area\n\nprint(area(2, 3))\n"
NEW_TEST = "from geometry import surface\n\n\ndef test_surface():\n    assert surface(2, 3) == 6\n"
TASK = "Rename area to surface in geometry.py and main.py, and add a test for it."
ANSWER = "Renamed area to surface in geometry.py and main.py and added test_geometry.py."
FILES = ["geometry.py", "main.py", "test_geometry.py"]
PYPROJECT = '[project]\nname = "geometry"\nversion = "0.1.0"\n'
COMMAND_TASK = "Call surface in main.py and bump the version in pyproject.toml."
COMMAND_ANSWER = "Bumped the version."

# One list of tool calls per model call; then the final answer.
PLAN: list[list[tuple[str, dict[str, Any]]]] = [
    [("read_file", {"path": "geometry.py"}), ("read_file", {"path": "main.py"})],
    [
        (
            "propose_edit",
            {
                "path": "geometry.py",
                "old_text": "def area(width, height):\n",
                "new_text": "def surface(width, height):\n",
                "description": "rename area to surface",
            },
        )
    ],
    [
        (
            "propose_edit",
            {
                "path": "main.py",
                "old_text": MAIN,
                "new_text": MAIN.replace("area", "surface"),
                "description": "call surface",
            },
        )
    ],
    [("create_file", {"path": "test_geometry.py", "content": NEW_TEST})],
]


class Plan:
    """The scripted model: the next step of the loaded plan per chat call, then `answer`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.load(PLAN, ANSWER)

    def load(self, steps: list[list[tuple[str, dict[str, Any]]]], answer: str) -> None:
        with self.lock:
            self.steps = list(steps)
            self.answer = answer
            self.calls = 0

    def script(self, seen: Seen) -> Reply:
        if seen.path.endswith("/models"):
            return models_reply("scripted")
        with self.lock:
            step = self.steps.pop(0) if self.steps else None
            self.calls += 1
            calls = self.calls
        if step is None:
            return Reply(events=chat_text_events([self.answer[:20], self.answer[20:]]))
        return Reply(
            events=tool_calls_events(
                [
                    (f"call_{calls}_{i}", name, json.dumps(args))
                    for i, (name, args) in enumerate(step)
                ]
            )
        )


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[ScriptedServer, Plan]]:
    plan = Plan()
    with ScriptedServer(plan.script) as server:
        yield server, plan


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, scripted: tuple[ScriptedServer, Plan]) -> Path:
    """code-server's folders, the workspace and the user's ouzel config (the scripted model
    serves `routing.agent`)."""
    require_setup()
    server, _ = scripted
    root = tmp_path_factory.mktemp("vscode-agent")
    workspace = root / "workspace"
    make_workspace(workspace)
    (workspace / "geometry.py").write_text(GEOMETRY)
    (workspace / "main.py").write_text(MAIN)
    (workspace / "pyproject.toml").write_text(PYPROJECT)
    config = root / "config" / "ouzel" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        "[models.remote]\n"
        'backend = "openai"\n'
        f'base_url = "{server.base_url}"\n'
        'model = "scripted"\n'
        "[routing]\n"
        'agent = ["remote"]\n'
    )
    install_extension(root)
    # Verbose LSP trace: the output channel then holds the exact workspace/applyEdit sent.
    settings_file = root / "user-data" / "User" / "settings.json"
    settings = json.loads(settings_file.read_text())
    settings["ouzel.trace.server"] = "verbose"
    settings_file.write_text(json.dumps(settings, indent=2))
    return root


@pytest.fixture
def code_server(root: Path) -> Iterator[CodeServer]:
    server = launch_code_server(root, root / "workspace")
    try:
        yield server
    finally:
        stop(server.process)


def traced_apply_edits(code_server: CodeServer) -> list[dict[str, Any]]:
    """The params of every `workspace/applyEdit` the server sent, from the verbose trace."""
    channel = code_server.output_channel()
    found = []
    pattern = re.compile(r"Received request 'workspace/applyEdit - \([^)]+\)'\.\nParams: ")
    for match in pattern.finditer(channel):
        params, _ = json.JSONDecoder().raw_decode(channel, match.end())
        found.append(params)
    return found


def create_uri(code_server: CodeServer) -> str:
    return (code_server.workspace / "test_geometry.py").as_uri()


def test_two_file_change_reviewed_accepted_and_undone(
    code_server: CodeServer, scripted: tuple[ScriptedServer, Plan]
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    _, plan = scripted
    events = drive(
        code_server,
        timeout_s=600,
        file="geometry.py",
        edits=[],
        workspace=str(code_server.workspace),
        agent=[
            {
                "ask": TASK,
                "previews": [
                    {
                        "accept": "all",
                        "screenshotPreview": str(ARTIFACTS / "vscode-agent-preview-edit.png"),
                    },
                    {
                        "accept": "all",
                        "screenshotPreview": str(ARTIFACTS / "vscode-agent-preview-hunks.png"),
                    },
                    {
                        "accept": "all",
                        "screenshotPreview": str(ARTIFACTS / "vscode-agent-preview-create.png"),
                    },
                ],
                "files": FILES,
                "undo": "button",
                "screenshotTurn": str(ARTIFACTS / "vscode-agent-turn.png"),
                "screenshotUndone": str(ARTIFACTS / "vscode-agent-undone.png"),
            }
        ],
        screenshotFailure=str(ARTIFACTS / "vscode-agent-failure.png"),
    )
    assert plan.calls == len(PLAN) + 1, plan.calls
    mode = events_named(events, "agentMode")[0]
    assert mode == {**mode, "checked": True, "button": "Run agent"}, mode

    # Three confirmable edits, as docs/AGENT.md says: one per file, every hunk annotated;
    # then the undo's edit of the open buffers, unconfirmed (the user asked for it).
    *edits, undo_edit = traced_apply_edits(code_server)
    assert [edit["label"] for edit in edits] == [
        "Ouzel agent: geometry.py",
        "Ouzel agent: main.py",
        "Ouzel agent: create test_geometry.py",
    ], edits
    assert undo_edit["label"] == "Ouzel agent: undo", undo_edit
    assert not any(
        a.get("needsConfirmation") for a in undo_edit["edit"].get("changeAnnotations", {}).values()
    )
    assert {
        "kind": "delete",
        "uri": create_uri(code_server),
        "options": {"ignoreIfNotExists": True},
    } in (undo_edit["edit"]["documentChanges"]), undo_edit
    for edit in edits:
        annotations = edit["edit"]["changeAnnotations"]
        assert annotations and all(a["needsConfirmation"] for a in annotations.values()), edit
    create = edits[2]["edit"]["documentChanges"]
    assert create[0]["kind"] == "create" and create[0]["uri"].endswith("/test_geometry.py")
    assert create[0]["annotationId"] in edits[2]["edit"]["changeAnnotations"]

    # The Refactor Preview listed each hunk unticked; main.py's rename is two hunks.
    previews = events_named(events, "preview")
    assert len(previews) == 3, previews
    for preview in previews:
        assert preview["tickedBefore"] and not any(preview["tickedBefore"]), preview
    assert len(previews[1]["rows"]) == 2, previews[1]
    assert all(all(ticked["ticked"]) for ticked in events_named(events, "ticked"))

    turn = events_named(events, "agentTurn")[0]
    assert "status-done" in turn["status"], turn
    assert turn["question"].endswith(TASK), turn
    assert turn["answer"].strip() == ANSWER, turn
    # Tool steps streamed into the view: the reads were listed before the first preview.
    first = turn["samples"][0]
    assert first["streaming"] and any(
        t.startswith("read_file: geometry.py") for t in first["tools"]
    )
    assert [t.split(":")[0] for t in turn["tools"]] == [
        "read_file",
        "read_file",
        "propose_edit",
        "propose_edit",
        "create_file",
    ], turn
    assert turn["summary"] == [
        "3 file(s) changed: geometry.py (1 of 1 change), main.py (2 of 2 changes), "
        "test_geometry.py (created)"
    ], turn
    assert turn["undoButtons"] == 1, turn

    accepted = events_named(events, "agentDisk")[0]
    assert accepted["when"] == "accepted"
    assert accepted["files"] == {
        "geometry.py": GEOMETRY.replace("def area", "def surface"),
        "main.py": MAIN.replace("area", "surface"),
        "test_geometry.py": NEW_TEST,
    }, accepted
    # The documents the agent edited hold the disk's text: the extension saved them.
    assert accepted["dirtyTabs"] == [], accepted
    channel = code_server.output_channel()
    assert "left modified: []" in channel, channel[-3000:]

    undone = events_named(events, "agentUndone")[0]
    assert (
        undone["text"]
        == "undid the agent turn: restored geometry.py, main.py; deleted test_geometry.py"
    )
    assert undone["undoButtons"] == 0, undone
    restored = events_named(events, "agentDisk")[1]
    assert restored["when"] == "undone"
    assert restored["files"] == {"geometry.py": GEOMETRY, "main.py": MAIN, "test_geometry.py": None}
    assert restored["dirtyTabs"] == [], restored
    assert (code_server.workspace / "geometry.py").read_bytes() == GEOMETRY.encode()
    assert (code_server.workspace / "main.py").read_bytes() == MAIN.encode()
    assert not (code_server.workspace / "test_geometry.py").exists()


# From the palette: main.py's two hunks (only the first ticked) and pyproject.toml, a
# protected file (a package manifest: its change is a warning with "Allow this change" first).
COMMAND_PLAN: list[list[tuple[str, dict[str, Any]]]] = [
    [("read_file", {"path": "main.py"}), ("read_file", {"path": "pyproject.toml"})],
    [
        (
            "propose_edit",
            {"path": "main.py", "old_text": MAIN, "new_text": MAIN.replace("area", "surface")},
        )
    ],
    [
        (
            "propose_edit",
            {
                "path": "pyproject.toml",
                "old_text": 'version = "0.1.0"\n',
                "new_text": 'version = "0.2.0"\n',
            },
        )
    ],
]


def test_agent_from_the_command_protected_file_one_hunk_then_undo_command(
    code_server: CodeServer, scripted: tuple[ScriptedServer, Plan]
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    _, plan = scripted
    plan.load(COMMAND_PLAN, COMMAND_ANSWER)
    files = ["main.py", "pyproject.toml"]
    before = {path: (code_server.workspace / path).read_bytes() for path in files}
    assert before == {"main.py": MAIN.encode(), "pyproject.toml": PYPROJECT.encode()}
    events = drive(
        code_server,
        timeout_s=600,
        file="main.py",
        edits=[],
        workspace=str(code_server.workspace),
        agent=[
            {
                "ask": COMMAND_TASK,
                "via": "command",
                "previews": [
                    {"accept": [0]},
                    {
                        "protected": "Allow this change",
                        "accept": "all",
                        "screenshotProtected": str(ARTIFACTS / "vscode-agent-protected.png"),
                    },
                ],
                "files": files,
                "undo": "command",
            }
        ],
        screenshotFailure=str(ARTIFACTS / "vscode-agent-failure.png"),
    )
    assert plan.calls == len(COMMAND_PLAN) + 1, plan.calls
    warning = events_named(events, "agentProtected")[0]
    assert "pyproject.toml" in warning["text"] and "package manifest" in warning["text"], warning
    assert warning["buttons"][:2] == ["Allow this change", "Refuse"], warning
    assert warning["warning"], warning
    previews = events_named(events, "preview")
    assert [len(preview["rows"]) for preview in previews] == [2, 1], previews
    assert [ticked["ticked"] for ticked in events_named(events, "ticked")] == [
        [True, False],
        [True],
    ]
    (manifest,) = [
        edit
        for edit in traced_apply_edits(code_server)
        if edit["label"] == "Ouzel agent: pyproject.toml"
    ]
    assert all(
        "PROTECTED: package manifest" in annotation["description"]
        for annotation in manifest["edit"]["changeAnnotations"].values()
    ), manifest

    turn = events_named(events, "agentTurn")[0]
    assert "status-done" in turn["status"], turn
    assert turn["question"].endswith(COMMAND_TASK), turn
    assert turn["answer"].strip() == COMMAND_ANSWER, turn
    assert turn["summary"] == [
        "2 file(s) changed: main.py (1 of 2 changes), pyproject.toml (1 of 1 change)"
    ], turn
    # Exactly the ticked hunk reached the disk: the import, not the call.
    accepted = events_named(events, "agentDisk")[0]
    assert accepted["files"] == {
        "main.py": "from geometry import surface\n\nprint(area(2, 3))\n",
        "pyproject.toml": PYPROJECT.replace("0.1.0", "0.2.0"),
    }, accepted
    assert accepted["dirtyTabs"] == [], accepted

    undone = events_named(events, "agentUndone")[0]
    assert undone["text"] == "undid the agent turn: restored main.py, pyproject.toml", undone
    restored = events_named(events, "agentDisk")[1]
    assert restored["files"] == {"main.py": MAIN, "pyproject.toml": PYPROJECT}, restored
    assert restored["dirtyTabs"] == [], restored
    assert {path: (code_server.workspace / path).read_bytes() for path in files} == before
