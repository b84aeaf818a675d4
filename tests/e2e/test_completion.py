"""Ghost text end to end: `ouzel serve` over stdio with the real default model (greedy):
Qwen2.5-Coder 0.5B with fill-in-the-middle (`ouzel models install qwen2.5-coder-0.5b`).

One server for the module (the model loads once); each test opens its own documents.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rpc import RawClient, StdioServer
from waiting import wait_for

pytestmark = pytest.mark.e2e

REQUEST_CANCELLED = -32800


def unique_name(client: RawClient, name: str) -> str:
    """`name`, or `name` with a number when this server already has it open.

    The server lives as long as the module; a rerun of a failed test (--reruns) would
    otherwise reopen its documents with the same text and be answered from the
    suggestions its first attempt cached, not by the model the test measures.
    """
    opened: set[str] = client.__dict__.setdefault("opened_names", set())
    stem, dot, suffix = name.rpartition(".")
    candidate, number = name, 1
    while candidate in opened:
        number += 1
        candidate = f"{stem}_{number}.{suffix}" if dot else f"{name}_{number}"
    opened.add(candidate)
    return candidate


class Editor:
    """A scripted editor on a RawClient: documents with versions, requests by position."""

    def __init__(self, client: RawClient, root: Path) -> None:
        self.client = client
        self.root = root
        self.versions: dict[str, int] = {}
        self.texts: dict[str, str] = {}

    def open(self, name: str, text: str, language: str = "python") -> str:
        uri = (self.root / unique_name(self.client, name)).as_uri()
        self.versions[uri] = 1
        self.texts[uri] = text
        self.client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": language, "version": 1, "text": text}},
        )
        return uri

    def type(self, uri: str, line: int, character: int, text: str) -> None:
        self.versions[uri] += 1
        self.client.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": self.versions[uri]},
                "contentChanges": [
                    {
                        "range": {
                            "start": {"line": line, "character": character},
                            "end": {"line": line, "character": character},
                        },
                        "text": text,
                    }
                ],
            },
        )

    def inline_async(self, uri: str, line: int, character: int, invoked: bool = False) -> int:
        return self.client.request_async(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": uri},
                "position": {"line": line, "character": character},
                "context": {"triggerKind": 1 if invoked else 2},
            },
        )

    def inline(
        self, uri: str, line: int, character: int, invoked: bool = False
    ) -> list[dict[str, Any]]:
        response = self.client.wait_response(self.inline_async(uri, line, character, invoked), 120)
        assert "result" in response, response
        items: list[dict[str, Any]] = response["result"]["items"]
        return items

    def model(self) -> dict[str, Any]:
        status: dict[str, Any] = self.client.request("ouzel/status")["result"]["model"]
        return status

    def configure(self, completion: dict[str, Any]) -> None:
        self.client.configuration = {"completion": completion}
        pulls = sum(r["method"] == "workspace/configuration" for r in self.client.server_requests)
        self.client.notify("workspace/didChangeConfiguration", {"settings": {}})
        wait_for(
            lambda: (
                sum(r["method"] == "workspace/configuration" for r in self.client.server_requests)
                > pulls
            ),
            30,
            "the server to pull the new settings",
        )
        self.client.request("ouzel/status")  # one round trip: the answer has been applied


def end_of(text: str) -> tuple[int, int]:
    """The LSP position (UTF-16) at the end of `text`."""
    lines = text.split("\n")
    return len(lines) - 1, len(lines[-1].encode("utf-16-le")) // 2


INITIALIZED: dict[str, Any] = {}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StdioServer, Path]]:
    root = tmp_path_factory.mktemp("completion")
    (root / "workspace").mkdir()
    stdio = StdioServer(root)
    INITIALIZED.update(stdio.client.initialize(root=root / "workspace"))
    yield stdio, root
    stdio.close()


@pytest.fixture
def editor(server: tuple[StdioServer, Path]) -> Editor:
    stdio, root = server
    stdio.client.configuration = {}
    return Editor(stdio.client, root / "workspace")


def telemetry(server: tuple[StdioServer, Path]) -> list[dict[str, Any]]:
    path = server[1] / "state" / "ouzel" / "completions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


FIB = 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n    '


def test_the_capability_is_advertised(editor: Editor) -> None:
    capabilities = INITIALIZED["result"]["capabilities"]
    assert capabilities["inlineCompletionProvider"] == {}
    assert "ouzel.accepted" in capabilities["executeCommandProvider"]["commands"]
    assert capabilities["completionProvider"]["triggerCharacters"] == ["."]


def test_a_function_body_gets_a_suggestion(editor: Editor) -> None:
    uri = editor.open("fib.py", FIB + "\n")
    line, character = end_of(FIB)
    items = editor.inline(uri, line, character)
    assert len(items) == 1
    item = items[0]
    assert item["insertText"].strip()
    position = {"line": line, "character": character}
    assert item["range"] == {"start": position, "end": position}
    assert item["command"]["command"] == "ouzel.accepted" and item["command"]["arguments"][0]
    model = editor.model()
    assert model["state"] == "ready" and model["template"] == "qwen"
    # The model loaded (once, on first use) with work-done progress.
    # Other work (the indexer) reports on its own tokens, in any order with this one.
    progress = [n["params"] for n in editor.client.notifications if n["method"] == "$/progress"]
    loading = [
        p["token"] for p in progress if p["value"].get("title") == "Loading qwen2.5-coder-0.5b"
    ]
    assert len(loading) == 1
    kinds = [p["value"]["kind"] for p in progress if p["token"] == loading[0]]
    assert kinds[0] == "begin" and kinds[-1] == "end"


def test_typing_through_is_served_from_the_cache(
    editor: Editor, server: tuple[StdioServer, Path]
) -> None:
    uri = editor.open("through.py", FIB + "\n")
    line, character = end_of(FIB)
    suggestion = editor.inline(uri, line, character)[0]
    text, suggestion_id = suggestion["insertText"], suggestion["command"]["arguments"][0]
    editor.client.notify("textDocument/didShowCompletion", {"item": suggestion})
    model_calls = editor.model()["requests"]

    editor.type(uri, line, character, text[:3])
    rest = editor.inline(uri, line, character + 3)
    assert [item["insertText"] for item in rest] == [text[3:]]
    assert rest[0]["command"]["arguments"][0] == suggestion_id

    # A partial accept (the client inserted two more characters) is a cache hit too.
    editor.type(uri, line, character + 3, text[3:5])
    editor.client.notify(
        "textDocument/didPartiallyAcceptCompletion", {"item": rest[0], "acceptedLength": 2}
    )
    after_partial = editor.inline(uri, line, character + 5)
    assert [item["insertText"] for item in after_partial] == [text[5:]]
    assert editor.model()["requests"] == model_calls  # the model was not asked again

    editor.client.request(
        "workspace/executeCommand", {"command": "ouzel.accepted", "arguments": [suggestion_id]}
    )
    events = [e for e in telemetry(server) if e.get("id") == suggestion_id]
    assert [e["event"] for e in events] == [
        "served",
        "shown",
        "served",
        "partial",
        "served",
        "accepted",
    ]
    assert [e["kind"] for e in events if e["event"] == "served"][1:] == ["cache", "cache"]


def test_a_cancelled_request_stops_generating(editor: Editor) -> None:
    # Room for a long answer, so the generation is surely running when the cancel lands.
    editor.configure({"maxTokens": 400, "maxTimeMs": 60000, "maxLines": 100, "debounceMs": 0})
    try:
        text = "NUMBERS = [\n    1,\n    2,\n    3,\n    "
        uri = editor.open("numbers.py", text + "\n]\n")
        editor.inline(uri, 0, 0)  # the model is loaded
        before = editor.model()
        request_id = editor.inline_async(uri, *end_of(text))
        wait_for(lambda: (editor.model()["generating"] or 0) >= 3, 60, "3 generated tokens")
        editor.client.notify("$/cancelRequest", {"id": request_id})
        response = editor.client.wait_response(request_id, 60)
        assert response["error"]["code"] == REQUEST_CANCELLED  # answered at once
        # The worker stops at its next token.
        model = wait_for(
            lambda: (m := editor.model())["generating"] is None and m, 60, "the worker to stop"
        )
        assert model["last"]["stopReason"] == "cancelled"
        assert model["last"]["generatedTokens"] < 400
        assert model["cancelled"] > before["cancelled"]
    finally:
        editor.configure({})


def test_a_result_for_an_old_version_is_not_shown(editor: Editor) -> None:
    text = "def area(width, height):\n    total = "
    uri = editor.open("stale.py", text + "\n    return total\n")
    line, character = end_of(text)
    request_id = editor.inline_async(uri, line, character)
    editor.type(uri, line, character, "w")  # a keystroke right after the request
    response = editor.client.wait_response(request_id, 120)
    assert response["result"]["items"] == []
    # The request for the new version is answered normally.
    assert isinstance(editor.inline(uri, line, character + 1), list)


def test_single_line_and_multi_line_rules(editor: Editor) -> None:
    # The rules, not the time cap: on busy cores the 0.5B model needs more than 1.5 s here.
    editor.configure({"maxTimeMs": 20000})
    end_of_statement = "def area(width, height):\n    total = "
    uri = editor.open("rules_single.py", end_of_statement + "\n    return total\n")
    single = editor.inline(uri, *end_of(end_of_statement))
    assert single and "\n" not in single[0]["insertText"]

    empty_line = "def is_prime(n):\n    if n < 2:\n        return False\n    "
    uri = editor.open("rules_multi.py", empty_line + "\n    return True\n")
    block = editor.inline(uri, *end_of(empty_line))[0]["insertText"]
    lines = block.split("\n")
    assert 1 < len(lines) <= 8  # completion.max_lines
    assert all(line.startswith("    ") for line in lines[1:])  # never past the block's end

    opener = "class Point:\n    def __init__(self, x, y):"
    uri = editor.open("rules_opener.py", opener + "\n")
    body = editor.inline(uri, *end_of(opener))[0]["insertText"]
    assert body.startswith("\n") and all(
        line.startswith("        ") for line in body.split("\n")[1:]
    )

    # Mid-line, the FIM model fills the gap before the text after the cursor, which the
    # suggestion does not repeat.
    before = "    return math.sqrt(x * x + "
    uri = editor.open("rules_mid.py", f"import math\n\n\ndef distance(x, y):\n{before})\n")
    assert [item["insertText"] for item in editor.inline(uri, 4, len(before))] == ["y * y"]


def test_utf16_positions_on_a_line_with_emoji(editor: Editor) -> None:
    text = 'label = "😀"; total = '
    uri = editor.open("emoji.py", text + "\n")
    line, character = end_of(text)
    assert character == len(text) + 1  # the emoji is two UTF-16 code units
    items = editor.inline(uri, line, character)
    assert items, "the model suggests something here at temperature 0"
    position = {"line": line, "character": character}
    assert items[0]["range"] == {"start": position, "end": position}
    suggestion = items[0]["insertText"]
    editor.type(uri, line, character, suggestion[:1])
    if len(suggestion) > 1:
        rest = editor.inline(uri, line, character + 1)
        assert [item["insertText"] for item in rest] == [suggestion[1:]]
    # Positions past the end of the line, or in no line, give no items (and no error).
    assert editor.inline(uri, line, character + 50) == []
    assert editor.inline(uri, 40, 0) == []


def test_the_popup_has_the_suggestion_and_jedi_items(editor: Editor) -> None:
    # Jedi's very first completion loads its stubs, which takes seconds on a busy machine.
    editor.configure({"jediTimeoutMs": 10000})
    text = "import os\nos.path.jo"
    uri = editor.open("popup.py", text + "\n")
    line, character = end_of(text)
    params = {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}

    # Jedi's first answer in a fresh server was seen empty now and then in CI (cause not yet
    # pinned down; failures are now logged as warnings), and on busy cores, next to the
    # default 0.5B model's call, Jedi's first completion can run past its cap; popups skip
    # Jedi while that call runs. A user's next popup has it.
    def popup_with_join() -> dict[str, Any] | None:
        result = editor.client.request("textDocument/completion", params, timeout=120)["result"]
        return result if any(item["label"] == "join" for item in result["items"]) else None

    result = wait_for(popup_with_join, 120, "a popup with Jedi's `join`", every=1.0)
    join = next(item for item in result["items"] if item["label"] == "join")
    assert join["textEdit"]["range"]["start"] == {"line": line, "character": len("os.path.")}
    assert join["textEdit"]["newText"] == "join"
    suggestions = [item for item in result["items"] if item.get("detail") == "ouzel suggestion"]
    for item in suggestions:  # the AI item (if the model had one) comes first
        assert item is result["items"][0] and item["textEdit"]["newText"].startswith("jo")


def test_a_document_that_is_not_open_is_an_error(editor: Editor) -> None:
    response = editor.client.request(
        "textDocument/inlineCompletion",
        {
            "textDocument": {"uri": (editor.root / "never-opened.py").as_uri()},
            "position": {"line": 0, "character": 0},
            "context": {"triggerKind": 2},
        },
    )
    assert response["error"]["code"] == -32602


def test_huge_binary_crlf_and_cjk_documents(editor: Editor) -> None:
    # 2 MB of code: the prompt stays within its budget, the answer comes, nothing breaks.
    huge = "".join(f"value_{i} = compute({i})\n" for i in range(80_000)) + "total = "
    uri = editor.open("huge.py", huge)
    items = editor.inline(uri, *end_of(huge), invoked=True)
    assert isinstance(items, list)
    assert editor.model()["last"]["promptTokens"] <= 1024

    # NUL bytes and control characters from a binary file opened as text.
    binary = "\x00\x01\x02PK\x03\x04\x00\x00\nheader = \x00\x7f"
    uri = editor.open("blob.bin", binary, language="plaintext")
    assert isinstance(editor.inline(uri, 1, len("header = \x00\x7f"), invoked=True), list)

    # Windows line endings: what comes has "\n" alone between its lines (clients insert it
    # as the document's line break; a "\r" would show as ^M in Neovim). Whether the real
    # model proposes a block here varies (the FIM model may propose nothing before
    # `return True`); tests/completion/test_completion_pipeline.py checks a CRLF block from
    # scripted model output.
    editor.configure({"maxTimeMs": 20000})  # a whole block, also on busy cores
    crlf = "def is_prime(n):\r\n    if n < 2:\r\n        return False\r\n    "
    uri = editor.open("crlf.py", crlf + "\r\n    return True\r\n")
    items = editor.inline(uri, 3, 4, invoked=True)
    assert all("\r" not in item["insertText"] for item in items), items

    # CJK text before the cursor (one UTF-16 unit each) and a supplementary character.
    cjk = 'greeting = "你好，世界𠀋"\nname = '
    uri = editor.open("cjk.py", cjk + "\n")
    line, character = end_of(cjk)
    for item in editor.inline(uri, line, character):
        assert item["range"]["start"] == {"line": line, "character": character}
    # A position inside the surrogate pair of 𠀋 snaps to its start; still no error.
    assert isinstance(editor.inline(uri, 0, len('greeting = "你好，世界') + 1), list)


def ghost_status(editor: Editor) -> dict[str, Any]:
    status: dict[str, Any] = editor.client.request("ouzel/status")["result"]["ghostText"]
    return status


def test_a_resting_cursor_warms_and_an_accept_is_answered_speculatively(
    editor: Editor, server: tuple[StdioServer, Path]
) -> None:
    text = "import math\n\n\ndef circle_area(radius):\n    return math.pi * radius ** 2\n\n\n" + FIB
    uri = editor.open("rest.py", text + "\n")
    line, character = end_of(text)
    warmed = ghost_status(editor)["counts"].get("warmed", 0)
    editor.client.notify(
        "ouzel/cursorRest",
        {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}},
    )
    # (Opening the file warmed its start too; the rest's warm-up replaces or follows it.)
    wait_for(
        lambda: (
            (status := ghost_status(editor))["counts"].get("warmed", 0) > warmed
            and status["background"] is None
        ),
        120,
        "the warm-up after ouzel/cursorRest",
    )
    calls_before = len([e for e in telemetry(server) if e["event"] == "model"])
    items = editor.inline(uri, line, character)
    model_calls = [e for e in telemetry(server) if e["event"] == "model"]
    assert len(model_calls) > calls_before, "the request here made no model call"
    model_call = model_calls[-1]
    # The warm-up had evaluated this very prompt: only its last token was left.
    assert model_call["reusedTokens"] >= model_call["promptTokens"] - 2, model_call
    assert model_call["kind"] == "reused"
    if not items:
        pytest.skip("the model proposed nothing here this time; nothing to accept")

    # The suggestion's acceptance is being prepared in the background; accept it (the
    # client inserts the text) once that is done, and ask where the cursor ends up.
    suggestion = items[0]["insertText"]
    wait_for(lambda: ghost_status(editor)["background"] is None, 120, "the speculation")
    counts = ghost_status(editor)["counts"]
    assert counts.get("speculative", 0) >= 1
    requests = editor.model()["requests"]
    editor.type(uri, line, character, suggestion)
    after = end_of(text + suggestion)
    next_items = editor.inline(uri, *after)
    served = [e for e in telemetry(server) if e["event"] == "served"][-1]
    if counts.get("speculated", 0):
        assert served["kind"] == "speculative" and next_items
        assert editor.model()["requests"] == requests  # from the cache, no model call
    else:  # the model's continuation was empty after post-processing: a normal request
        assert served["kind"] != "speculative" or not next_items
