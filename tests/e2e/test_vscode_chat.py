"""AI code actions and the chat view in a real VS Code (code-server + headless Chromium).

The extension starts the real `ouzel serve` (the workspace's `.venv/bin/ouzel`), whose
`remote` profile is a real `llama_cpp.server` with Qwen2.5-Coder-0.5B (tests/e2e/chat_rig.py),
set in the user's own `config.toml` as a user would. clients/vscode/e2e/driver.mjs selects a
function, runs "Add a docstring" from the Ctrl+. menu, ticks hunks in VS Code's Refactor
Preview, applies and saves; "Edit selection with an instruction" proposes one hunk per
function, of which only the first is ticked; then it asks in the chat view, opens a cited file, and after a
restart of code-server finds the conversation in the history. Screenshots: test-artifacts/.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chat_rig import GEOMETRY, KEY, KEY_VARIABLE, LlamaServer, apply_edits, start_llama
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

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

FILE = "geometry.py"
# A second copy of the two functions for the edit that proposes one hunk per function.
EDIT_FILE = "rect.py"
RULES = "Keep answers short. Cite code as path:line.\n"
QUESTION = "What does the perimeter function in geometry.py return?"
LONG_QUESTION = "Write a long essay about sorting algorithms."
BLOCK_QUESTION = "Write a Python function square(x) that returns x * x. Reply with one code block."
# Two functions selected, one instruction: the model's rewrite becomes one hunk per function.
INSTRUCTION = "Add a one-line docstring to each function. Change nothing else."


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    require_setup()
    server = start_llama(tmp_path_factory.mktemp("llama") / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, llama: LlamaServer) -> Path:
    """code-server's folders, the workspace and the user's ouzel config pointing at llama."""
    monkey = pytest.MonkeyPatch()
    monkey.setenv(KEY_VARIABLE, KEY)  # inherited by code-server, its extension host and ouzel
    root = tmp_path_factory.mktemp("vscode-chat")
    workspace = root / "workspace"
    make_workspace(workspace)
    (workspace / FILE).write_text(GEOMETRY)
    (workspace / EDIT_FILE).write_text(GEOMETRY)
    (workspace / "AGENTS.md").write_text(RULES)
    config = root / "config" / "ouzel" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        "[models.remote]\n"
        'backend = "openai"\n'
        f'base_url = "{llama.base_url}"\n'
        f'api_key_env = "{KEY_VARIABLE}"\n'
        "[routing]\n"
        'chat = ["remote"]\n'
        'code_action = ["remote"]\n'
        "[chat]\n"
        "max_tokens = 200\n"
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


def test_add_docstring_then_accept_one_hunk_and_reject_another(code_server: CodeServer) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = code_server.workspace / FILE
    events = drive(
        code_server,
        timeout_s=900,
        file=FILE,
        edits=[],
        codeActions=[
            {
                # `area`: lines 1-2 (1-based). Every proposed hunk is ticked and applied.
                "fromLine": 1,
                "toLine": 2,
                "title": "Add a docstring to area",
                "accept": "all",
                "screenshotMenu": str(ARTIFACTS / "vscode-code-action-menu.png"),
                "screenshotProgress": str(ARTIFACTS / "vscode-code-action-progress.png"),
                "screenshotPreview": str(ARTIFACTS / "vscode-refactor-preview-docstring.png"),
            },
        ],
        screenshotFailure=str(ARTIFACTS / "vscode-code-action-failure.png"),
    )
    menu = events_named(events, "codeActionMenu")[0]["items"]
    assert any("Add a docstring to area" in item for item in menu), menu
    progress = events_named(events, "codeActionProgress")[0]
    assert progress["cancellable"], progress
    preview = events_named(events, "preview")[0]
    # Entries that need confirmation start unticked: nothing is written unless the user ticks.
    assert preview["tickedBefore"] and not any(preview["tickedBefore"]), preview
    (docstring_edit,) = traced_apply_edits(code_server)
    edits = docstring_edit["edit"]["documentChanges"][0]["edits"]
    assert len(preview["rows"]) == len(edits) >= 1, (preview, edits)
    after_docstring = apply_edits(GEOMETRY, edits)
    assert path.read_text() == after_docstring
    tree = ast.parse(after_docstring)
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert ast.get_docstring(functions["area"]), after_docstring
    assert after_docstring.endswith(GEOMETRY[GEOMETRY.index("def perimeter") :])

    # Both functions and an instruction: one hunk per function. Tick the first, not the rest.
    events = drive(
        code_server,
        timeout_s=900,
        file=EDIT_FILE,
        edits=[],
        codeActions=[
            {
                "fromLine": 1,
                "toLine": GEOMETRY.count("\n"),
                "title": "Edit selection with an instruction",
                "instruction": INSTRUCTION,
                "accept": [0],
                "screenshotPreview": str(ARTIFACTS / "vscode-refactor-preview-hunks.png"),
                "screenshotApplied": str(ARTIFACTS / "vscode-code-action-applied.png"),
            },
        ],
        screenshotFailure=str(ARTIFACTS / "vscode-code-action-failure.png"),
    )
    preview = events_named(events, "preview")[0]
    ticked = events_named(events, "ticked")[0]["ticked"]
    assert ticked == [True] + [False] * (len(ticked) - 1), events
    _, second_edit = traced_apply_edits(code_server)
    edits = second_edit["edit"]["documentChanges"][0]["edits"]
    annotations = second_edit["edit"]["changeAnnotations"]
    assert len(edits) == len(preview["rows"]) >= 2, (edits, preview)
    assert all(annotation["needsConfirmation"] for annotation in annotations.values())
    # The file holds exactly the original plus the first hunk: the others were rejected.
    saved = (code_server.workspace / EDIT_FILE).read_text()
    assert saved == apply_edits(GEOMETRY, edits[:1])
    assert saved != apply_edits(GEOMETRY, edits)


def test_chat_view_streams_cites_a_file_and_keeps_history_after_a_restart(root: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = root / "workspace" / FILE
    before = path.read_text()
    server = launch_code_server(root, root / "workspace")
    try:
        events = drive(
            server,
            timeout_s=600,
            file=FILE,
            edits=[],
            chat={
                "ask": QUESTION,
                "openReference": FILE,
                "screenshotAnswer": str(ARTIFACTS / "vscode-chat-answer.png"),
                "screenshotReference": str(ARTIFACTS / "vscode-chat-reference.png"),
                "stop": LONG_QUESTION,
                "insertBlock": {
                    "ask": BLOCK_QUESTION,
                    "accept": "all",
                    "screenshotPreview": str(ARTIFACTS / "vscode-chat-insert-preview.png"),
                },
            },
            screenshotFailure=str(ARTIFACTS / "vscode-chat-failure.png"),
        )
    finally:
        stop(server.process)
    answer = events_named(events, "chatAnswer")[0]
    assert "status-done" in answer["status"], answer
    assert answer["text"].strip(), answer
    # Streamed: the view showed the answer growing while Stop was visible.
    growing = [sample for sample in answer["samples"] if sample["streaming"] and sample["chars"]]
    assert len(growing) >= 2, answer["samples"]
    assert growing[-1]["chars"] <= len(answer["text"])
    # The answer cites a file of the workspace, as a link the extension opens.
    assert any(ref.startswith(f"{FILE}:") for ref in answer["references"]), answer
    assert answer["rules"] == "Project rules: AGENTS.md", answer
    # Model text is escaped: no tag but the renderer's own.
    assert not re.search(
        r"<(?!/?(p|br|strong|em|code|pre|ul|li|a|div|span|button)\b)", answer["html"]
    )
    opened = events_named(events, "referenceOpened")[0]
    assert FILE in opened["tab"], opened
    # Stop ended the stream early; the turn says "stopped".
    stopped = events_named(events, "chatStopped")[0]
    assert stopped["note"] == "stopped", stopped
    # Insert put the code block before the cursor line (line 1, where the link put it),
    # through the Refactor Preview, and nothing else changed.
    inserted = events_named(events, "blockInserted")[0]
    preview = events_named(events, "preview")[0]
    assert preview["tickedBefore"] and not any(preview["tickedBefore"]), preview
    code = inserted["code"].replace("\xa0", " ").rstrip("\n") + "\n"
    assert code.strip(), inserted
    assert path.read_text() == code + before, (path.read_text(), code)

    again = launch_code_server(root, root / "workspace")
    try:
        events = drive(
            again,
            timeout_s=300,
            file=FILE,
            edits=[],
            chat={
                "resume": QUESTION,
                "screenshotHistory": str(ARTIFACTS / "vscode-chat-history.png"),
                "screenshotResumed": str(ARTIFACTS / "vscode-chat-resumed.png"),
            },
            screenshotFailure=str(ARTIFACTS / "vscode-chat-failure.png"),
        )
    finally:
        stop(again.process)
    resumed = events_named(events, "resumed")[0]
    # One conversation: the question, the stopped one (stored as cancelled), the code block.
    assert resumed["questions"] == [QUESTION, LONG_QUESTION, BLOCK_QUESTION], resumed
    assert resumed["answers"][0].strip() == answer["text"].strip(), (resumed, answer)
