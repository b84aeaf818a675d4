"""The index over real LSP connections: one `ouzel serve --tcp` process, a UTF-16 and a
UTF-8 client on the same workspace (one shared index). workspace/symbol, documentSymbol
on CRLF/emoji/CJK text, `$/progress`, `ouzel/status`, saves and unsaved buffers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from rpc import RawClient, TcpServer
from waiting import wait_for

from ouzel.server.convert import Encoding
from ouzel.server.documents import Document

pytestmark = pytest.mark.e2e

# Non-ASCII before names on the same line, CRLF line ends, a lone CR nowhere.
UNICODE_PY = (
    's = "🎉日本"; 名前 = 1\r\n'
    "class Größe:\r\n"
    '    """Size 🎉."""\r\n'
    '    def método(self, arg="日本🎉"):\r\n'
    "        return arg\r\n"
    "\r\n"
    "def 🎉_not_an_identifier(): pass\r\n"
    'label = "🎉"; def_after_emoji = 2\r\n'
)

WORKSPACE = {
    "app/models.py": "class UserAccount:\n    def get_user_name(self):\n        return 'x'\n",
    "app/helpers.py": "def getUserName():\n    return 1\n\ndef username():\n    return 2\n",
    "web/session.ts": "export class SessionStore {\n  open(): void {}\n}\n",
    "native/vec.rs": "pub struct Vector { x: f64 }\nimpl Vector { pub fn norm(&self) -> f64 { self.x } }\n",
    "docs/guide.md": "# Guide\n\n## Installing 日本\n\nSteps.\n",
    "unicode.py": UNICODE_PY,
    ".env": "SECRET_TOKEN=1\ndef secret_function(): pass\n",
}
INDEXED_FILES = 6


def index_status(client: RawClient) -> dict[str, Any]:
    """The "index" section (empty until the session has started after `initialized`)."""
    result: dict[str, Any] = client.request("ouzel/status")["result"].get("index", {})
    return result


def idle(client: RawClient) -> dict[str, Any] | None:
    status = index_status(client)
    ready = status.get("phase") == "idle" and status["pending"] == 0 and status["filesIndexed"]
    return status if ready else None


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("index-lsp")
    root = home / "ws"
    for name, text in WORKSPACE.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8", newline="")
    server = TcpServer(home)
    utf16 = server.connect()
    utf8 = server.connect()
    capabilities = {
        "window": {"workDoneProgress": True},
        "workspace": {"configuration": True, "workspaceFolders": True, "symbol": {}},
        "textDocument": {
            "documentSymbol": {"hierarchicalDocumentSymbolSupport": True},
            "synchronization": {"didSave": True},
        },
    }
    init16 = utf16.initialize(
        root, capabilities={**capabilities, "general": {"positionEncodings": ["utf-16"]}}
    )
    wait_for(lambda: idle(utf16), 60, "the first index", every=0.1)
    init8 = utf8.initialize(
        root, capabilities={**capabilities, "general": {"positionEncodings": ["utf-8"]}}
    )
    yield {
        "root": root,
        "home": home,
        "server": server,
        "clients": {"utf-16": utf16, "utf-8": utf8},
        "init": {"utf-16": init16, "utf-8": init8},
    }
    for client in (utf16, utf8):
        client.request("shutdown")
        client.notify("exit")
    server.close()


def symbols(client: RawClient, query: str) -> list[dict[str, Any]]:
    response = client.request("workspace/symbol", {"query": query})
    assert "result" in response, response
    result: list[dict[str, Any]] = response["result"]
    return result


def test_capabilities_and_status(session: dict[str, Any]) -> None:
    capabilities = session["init"]["utf-16"]["result"]["capabilities"]
    assert capabilities["workspaceSymbolProvider"] == {"resolveProvider": False}
    assert capabilities["documentSymbolProvider"] == {"label": "ouzel"}
    assert session["init"]["utf-8"]["result"]["capabilities"]["positionEncoding"] == "utf-8"
    status = wait_for(lambda: idle(session["clients"]["utf-8"]), 60, "an idle index", every=0.1)
    assert status["filesIndexed"] == INDEXED_FILES
    assert (status["errors"], status["lastError"], status["pending"]) == (0, "", 0)
    (root_status,) = status["roots"]
    assert root_status["writable"] is True and root_status["watching"] is True
    assert root_status["lastUpdate"]["skipped"]["secret"] == 1
    assert root_status["indexDir"] == str(session["root"] / ".ouzel" / "index")


def test_indexing_was_reported_with_progress(session: dict[str, Any]) -> None:
    client: RawClient = session["clients"]["utf-16"]
    created = [r for r in client.server_requests if r["method"] == "window/workDoneProgress/create"]
    tokens = {r["params"]["token"] for r in created}
    progress = [n["params"] for n in client.notifications if n["method"] == "$/progress"]
    ours = [p for p in progress if p["token"] in tokens and "index" in p["token"]]
    kinds = [p["value"]["kind"] for p in ours]
    assert kinds[0] == "begin" and kinds[-1] == "end"
    assert ours[0]["value"]["title"] == "Indexing ws"
    assert "files indexed" in ours[-1]["value"]["message"]


def test_workspace_symbol_is_fuzzy_and_ranked(session: dict[str, Any]) -> None:
    client: RawClient = session["clients"]["utf-16"]
    found = symbols(client, "username")
    names = [s["name"] for s in found]
    assert names[:2] == ["username", "getUserName"] or names[0] == "username"
    assert names.index("username") < names.index("getUserName") < names.index("get_user_name")
    humps = symbols(client, "gUN")
    assert {s["name"] for s in humps[:2]} == {"getUserName", "get_user_name"}
    rust = symbols(client, "norm")
    assert rust[0]["name"] == "norm" and rust[0]["containerName"] == "Vector"
    assert rust[0]["kind"] == 6  # Method
    assert rust[0]["location"]["uri"].endswith("/native/vec.rs")
    assert symbols(client, "secret_function") == []
    assert symbols(client, "zzzz_nothing_like_it") == []


def expected_range(
    text: str, needle: str, encoding: Encoding, occurrence: int = 0
) -> dict[str, Any]:
    """The LSP range of `needle` in `text`, computed with the server's own conversions."""
    doc = Document.create("file:///x", "python", 1, text)
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(needle, start + 1)
    (sl, sc), (el, ec) = doc.position(start, encoding), doc.position(start + len(needle), encoding)
    return {"start": {"line": sl, "character": sc}, "end": {"line": el, "character": ec}}


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8"])
def test_workspace_symbol_ranges_in_the_client_encoding(
    session: dict[str, Any], encoding: Encoding
) -> None:
    client: RawClient = session["clients"][encoding]
    for name in ("名前", "def_after_emoji", "método"):
        (hit,) = [s for s in symbols(client, name) if s["name"] == name]
        assert hit["location"]["uri"].endswith("/unicode.py")
        assert hit["location"]["range"] == expected_range(UNICODE_PY, name, encoding), name
    (size,) = [s for s in symbols(client, "Größe") if s["name"] == "Größe"]
    assert size["location"]["range"] == expected_range(UNICODE_PY, "Größe", encoding)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8"])
def test_document_symbol_of_the_open_buffer(session: dict[str, Any], encoding: Encoding) -> None:
    client: RawClient = session["clients"][encoding]
    uri = (session["root"] / "buffer_only.py").as_uri()
    # Not on disk: the outline comes from the buffer's current text.
    text = UNICODE_PY + "class Extra:\r\n    def 🎉x(self): pass\r\n    def ok(self): pass\r\n"
    client.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
    )
    try:
        response = client.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
        outline = response["result"]
        names = [s["name"] for s in outline]
        # tree-sitter recovers from the emoji in `def 🎉_not_an_identifier`.
        assert names == [
            "s",
            "名前",
            "Größe",
            "_not_an_identifier",
            "label",
            "def_after_emoji",
            "Extra",
        ]
        size = outline[2]
        assert size["kind"] == 5  # Class
        assert size["selectionRange"] == expected_range(text, "Größe", encoding)
        whole_start = text.index("class Größe")
        whole_end = text.index("return arg") + len("return arg")
        doc = Document.create(uri, "python", 1, text)
        (sl, sc), (el, ec) = doc.position(whole_start, encoding), doc.position(whole_end, encoding)
        assert size["range"] == {
            "start": {"line": sl, "character": sc},
            "end": {"line": el, "character": ec},
        }
        (method,) = size["children"]
        assert method["name"] == "método" and method["kind"] == 6
        assert method["selectionRange"] == expected_range(text, "método", encoding)
        assert method["detail"] == 'def método(self, arg="日本🎉")'
        after = outline[5]
        assert after["selectionRange"] == expected_range(text, "def_after_emoji", encoding)
        extra = outline[6]
        assert [c["name"] for c in extra["children"]] == ["x", "ok"]
        x_start = text.index("🎉x(self)") + 1  # right after the emoji
        (line, character) = doc.position(x_start, encoding)
        assert extra["children"][0]["selectionRange"]["start"] == {
            "line": line,
            "character": character,
        }
        # An edit is reflected at once: the outline is of the current text.
        client.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": 2},
                "contentChanges": [{"text": "def only_this():\n    pass\n"}],
            },
        )
        changed = client.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
        assert [s["name"] for s in changed["result"]] == ["only_this"]
    finally:
        client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})


def test_document_symbol_errors_and_other_languages(session: dict[str, Any]) -> None:
    client: RawClient = session["clients"]["utf-16"]
    missing = client.request(
        "textDocument/documentSymbol", {"textDocument": {"uri": "file:///not/open.py"}}
    )
    assert missing["error"]["code"] == -32602
    uri = (session["root"] / "notes.txt").as_uri()
    client.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "plaintext", "version": 1, "text": "hi\n"}},
    )
    assert (
        client.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})["result"]
        == []
    )
    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    md_uri = (session["root"] / "docs" / "guide.md").as_uri()
    md = WORKSPACE["docs/guide.md"]
    client.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": md_uri, "languageId": "markdown", "version": 1, "text": md}},
    )
    (guide,) = client.request("textDocument/documentSymbol", {"textDocument": {"uri": md_uri}})[
        "result"
    ]
    assert guide["name"] == "Guide" and guide["kind"] == 15  # String
    assert [c["name"] for c in guide["children"]] == ["Installing 日本"]
    client.notify("textDocument/didClose", {"textDocument": {"uri": md_uri}})


def test_a_saved_file_is_searchable_quickly(session: dict[str, Any]) -> None:
    client: RawClient = session["clients"]["utf-16"]
    path = session["root"] / "app" / "fresh.py"
    path.write_text("def freshly_saved_function():\n    return 1\n")
    started = time.monotonic()
    client.notify("textDocument/didSave", {"textDocument": {"uri": path.as_uri()}})
    found = wait_for(lambda: symbols(client, "freshly_saved_function"), 10, "the saved symbol")
    assert found[0]["location"]["uri"] == path.as_uri()
    assert time.monotonic() - started < 5
    other: RawClient = session["clients"]["utf-8"]  # the same index serves both sessions
    assert symbols(other, "freshly_saved_function")[0]["name"] == "freshly_saved_function"


def test_unsaved_buffer_edits_are_searchable(session: dict[str, Any]) -> None:
    client: RawClient = session["clients"]["utf-16"]
    path = session["root"] / "app" / "helpers.py"
    uri = path.as_uri()
    original = path.read_text()
    client.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": original}},
    )
    client.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": uri, "version": 2},
            "contentChanges": [{"text": original + "\ndef typed_not_saved():\n    pass\n"}],
        },
    )
    wait_for(lambda: symbols(client, "typed_not_saved"), 10, "the typed symbol", every=0.1)
    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    wait_for(lambda: not symbols(client, "typed_not_saved"), 10, "the typed symbol gone", every=0.1)
    assert symbols(client, "getUserName")[0]["name"] == "getUserName"


def test_watched_file_notifications_are_accepted(session: dict[str, Any]) -> None:
    client: RawClient = session["clients"]["utf-8"]
    path = session["root"] / "web" / "extra.ts"
    path.write_text("export function fromWatchedFiles(): number { return 1 }\n")
    client.notify(
        "workspace/didChangeWatchedFiles", {"changes": [{"uri": path.as_uri(), "type": 1}]}
    )
    wait_for(lambda: symbols(client, "fromWatchedFiles"), 10, "the watched file", every=0.1)
    path.unlink()
    client.notify(
        "workspace/didChangeWatchedFiles", {"changes": [{"uri": path.as_uri(), "type": 3}]}
    )
    wait_for(
        lambda: not symbols(client, "fromWatchedFiles"), 10, "the watched file gone", every=0.1
    )
    status = index_status(client)
    assert status["errors"] == 0


def test_reindex_command_walks_every_folder_again(session: dict[str, Any]) -> None:
    client: RawClient = session["clients"]["utf-16"]
    commands = session["init"]["utf-16"]["result"]["capabilities"]["executeCommandProvider"]
    assert "ouzel.index" in commands["commands"]

    def full_walks() -> list[dict[str, Any]]:
        """The `$/progress` values of every full walk ("Indexing ws"), begin to end."""
        progress = [n["params"] for n in client.notifications if n["method"] == "$/progress"]
        tokens = {p["token"] for p in progress if p["value"].get("title") == "Indexing ws"}
        return [p["value"] for p in progress if p["token"] in tokens]

    before = [v for v in full_walks() if v["kind"] == "end"]
    response = client.request("workspace/executeCommand", {"command": "ouzel.index"})
    assert response["result"] == {"folders": 1}
    ends = wait_for(
        lambda: [v for v in full_walks() if v["kind"] == "end"][len(before) :],
        60,
        "a full walk",
        every=0.1,
    )
    # nothing changed on disk: the walk recognises every file and parses none again
    assert ends[0]["message"].startswith("0 files indexed")
