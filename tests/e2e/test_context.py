"""`ouzel/context` over a real LSP connection and `ouzel context` on the command line, with
the real default model, Jedi and the workspace index.

One server for the module (the model and the Jedi worker start once).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rpc import RawClient, StdioServer, server_env
from waiting import wait_for

pytestmark = pytest.mark.e2e

HELPER_DEF = "def helper(value: int, scale: float = 2.0) -> float:"
PROJECT = {
    "pkg/__init__.py": "from .impl import helper, Widget\n",
    "pkg/impl.py": (
        "def helper(value: int, scale: float = 2.0) -> float:\n"
        '    """Scale a value."""\n'
        "    return value * scale\n"
        "\n\n"
        "class Widget:\n"
        "    def __init__(self, size: int) -> None:\n"
        "        self.size = size\n"
    ),
    "keys_secret.py": "API_KEY = 'sk-live-SECRET-VALUE-123'\n",
    ".env": "PASSWORD=hunter2-SECRET-VALUE\n",
    "app.py": (
        "from pkg import helper, Widget\n"
        "from keys_secret import API_KEY\n"
        "\n\n"
        "def main() -> None:\n"
        "    w = Widget(3)\n"
        "    label = '🎉 日本'; total = helper(w.size)\n"
        "    \n"
    ),
}
CURSOR = (7, 4)  # the empty line at the end of main()
# coldPromptTokens 0: every ghost-text request gets the full prompt with repository
# context (a new place would otherwise get the small prompt without it, by design).
SETTINGS = {
    "index": {"secretGlobs": [".env", "*_secret.py"]},
    "completion": {"coldPromptTokens": 0},
}


class Client:
    def __init__(self, raw: RawClient, root: Path) -> None:
        self.raw = raw
        self.root = root
        self.versions: dict[str, int] = {}

    def open(self, name: str, text: str | None = None, language: str = "python") -> str:
        path = self.root / name
        uri = path.as_uri()
        self.versions[uri] = 1
        document = {
            "uri": uri,
            "languageId": language,
            "version": 1,
            "text": path.read_text() if text is None else text,
        }
        self.raw.notify("textDocument/didOpen", {"textDocument": document})
        return uri

    def replace(self, uri: str, text: str) -> None:
        self.versions[uri] += 1
        self.raw.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": self.versions[uri]},
                "contentChanges": [{"text": text}],
            },
        )

    def context(self, uri: str, line: int, character: int) -> dict[str, Any]:
        params = {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}
        return self.raw.request("ouzel/context", params, timeout=120)

    def prompt(self, uri: str, line: int, character: int) -> dict[str, Any]:
        """The result once the model has loaded (the first answers say it is loading)."""

        def loaded() -> dict[str, Any] | None:
            result: dict[str, Any] = self.context(uri, line, character)["result"]
            loading = result["prompt"] is None and "loading" in result["note"]
            return None if loading else result

        result: dict[str, Any] = wait_for(loaded, 180, "the model to load", every=0.5)
        return result


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    (root / ".git").mkdir(exist_ok=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, Path]]:
    home = tmp_path_factory.mktemp("context")
    root = home / "workspace"
    write(root, PROJECT)
    stdio = StdioServer(home)
    stdio.client.configuration = SETTINGS
    stdio.client.initialize(root=root, options=SETTINGS)
    yield Client(stdio.client, root), home
    stdio.close()


def _context_parts(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in result["parts"] if p["source"] not in ("prefix", "suffix")]


def test_definitions_and_the_exact_prompt(server: tuple[Client, Path]) -> None:
    client, _ = server
    uri = client.open("app.py")
    result = client.prompt(uri, *CURSOR)
    prompt = result["prompt"]
    assert prompt is not None, result
    parts = _context_parts(result)
    helper = next(p for p in parts if p["label"] == "helper")
    assert helper["source"] == "definition"
    assert helper["path"].endswith("pkg/impl.py") and helper["displayPath"] == "pkg/impl.py"
    assert helper["range"]["start"] == {"line": 0, "character": 0}
    assert helper["text"].startswith(HELPER_DEF)
    assert HELPER_DEF in prompt
    # The prompt is exactly the context block (a file per snippet: the default Qwen model
    # reads repository-level FIM), the file's path, then the text before the cursor and
    # after it; the context parts' tokens add up to what the block costs.
    prefix = next(p for p in result["parts"] if p["source"] == "prefix")
    suffix = next(p for p in result["parts"] if p["source"] == "suffix")
    assert prompt.startswith("<|file_sep|>pkg/impl.py\n" + HELPER_DEF)
    assert prompt.endswith(
        f"<|file_sep|>app.py\n<|fim_prefix|>{prefix['text']}<|fim_suffix|>{suffix['text']}"
        "<|fim_middle|>"
    )
    assert prefix["range"]["end"] == {"line": CURSOR[0], "character": CURSOR[1]}
    # Each part is counted alone; the block is counted whole, and BPE may merge a token
    # or two across a snippet boundary, so the sum may exceed the block by that much.
    total = sum(p["tokens"] for p in parts)
    assert result["contextTokens"] <= total <= result["contextTokens"] + len(parts)
    assert result["contextTokens"] <= result["contextBudget"]
    assert result["template"] == "qwen"
    assert result["positionInRange"] is True


def test_secret_files_stay_out(server: tuple[Client, Path]) -> None:
    client, _ = server
    uri = client.open("app.py")
    client.open(".env", language="dotenv")
    client.open("keys_secret.py")
    result = client.prompt(uri, *CURSOR)
    assert "SECRET-VALUE" not in (result["prompt"] or "")
    assert all("SECRET-VALUE" not in p["text"] for p in result["parts"])
    secret = client.context((client.root / "keys_secret.py").as_uri(), 0, 5)["result"]
    assert secret["skipped"] == "secret file" and _context_parts(secret) == []


def test_an_edited_document_shows_only_its_newest_text(server: tuple[Client, Path]) -> None:
    client, _ = server
    app = client.open("app.py")
    impl = client.open("pkg/impl.py")
    client.prompt(app, *CURSOR)
    edited = PROJECT["pkg/impl.py"].replace("Scale a value.", "Scale by the NEWEST factor.")
    client.replace(impl, edited)
    result = client.prompt(app, *CURSOR)
    assert "Scale by the NEWEST factor." in result["prompt"]
    assert "Scale a value." not in result["prompt"]


def test_utf16_positions_after_emoji(server: tuple[Client, Path]) -> None:
    client, _ = server
    uri = client.open("app.py")
    line = PROJECT["app.py"].split("\n")[6]
    character = len(line.encode("utf-16-le")) // 2  # 🎉 takes two UTF-16 units
    result = client.prompt(uri, 6, character)
    prefix = next(p for p in result["parts"] if p["source"] == "prefix")
    assert prefix["text"].endswith(line)
    assert prefix["range"]["end"] == {"line": 6, "character": character}
    # Mid-line, the FIM model fills in before the rest of the line (after the emoji and CJK).
    middle = len(line[: line.index("total")].encode("utf-16-le")) // 2
    inside = client.prompt(uri, 6, middle)
    assert "label = '🎉 日本'; <|fim_suffix|>total = helper(w.size)\n" in inside["prompt"]


def test_bad_requests_get_clear_errors(server: tuple[Client, Path]) -> None:
    client, _ = server
    uri = client.open("app.py")
    missing = client.raw.request("ouzel/context", {"textDocument": {"uri": uri}})
    assert missing["error"]["code"] == -32602
    negative = client.context(uri, -1, 0)
    assert negative["error"]["code"] == -32602
    closed = client.context((client.root / "nothing.py").as_uri(), 0, 0)
    assert closed["error"]["code"] == -32602 and "not open" in closed["error"]["message"]
    far = client.context(uri, 999, 999)["result"]
    assert far["positionInRange"] is False
    assert client.raw.request("ouzel/status")["result"]["context"]["enabled"] is True


def test_completions_use_the_context_engine(server: tuple[Client, Path]) -> None:
    client, _ = server
    uri = client.open("app.py")
    client.prompt(uri, *CURSOR)  # the model is loaded
    before = client.raw.request("ouzel/status")["result"]["context"]["requests"]
    params = {
        "textDocument": {"uri": uri},
        "position": {"line": CURSOR[0], "character": CURSOR[1]},
        "context": {"triggerKind": 1},
    }
    response = client.raw.request("textDocument/inlineCompletion", params, timeout=120)
    assert "result" in response, response
    after = client.raw.request("ouzel/status")["result"]["context"]["requests"]
    # At least this request; background work (warm-ups, the speculative next suggestion)
    # builds its prompts through the engine too.
    assert after >= before + 1


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ouzel.server.cli", "context", *args],
        capture_output=True,
        text=True,
        env=server_env(home),
        cwd=home / "workspace",
        timeout=300,
    )


def test_the_command_line_prints_the_same(server: tuple[Client, Path]) -> None:
    _, home = server
    (home / "workspace" / ".ouzel").mkdir(exist_ok=True)
    (home / "workspace" / ".ouzel" / "config.toml").write_text(
        '[index]\nsecret_globs = [".env", "*_secret.py"]\n'
    )
    done = _cli(home, "app.py:8:5", "--json")  # 1-based: the empty line, after its indent
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert HELPER_DEF in result["prompt"]
    assert "SECRET-VALUE" not in result["prompt"]
    assert any(p["label"] == "helper" for p in result["parts"])
    prefix = next(p for p in result["parts"] if p["source"] == "prefix")
    assert prefix["range"]["end"] == {"line": 7, "character": 4}  # 0-based in JSON
    human = _cli(home, "app.py:8:5")
    assert human.returncode == 0, human.stderr
    assert "prompt (exactly as sent)" in human.stdout and HELPER_DEF in human.stdout
    assert "pkg/impl.py:1-" in human.stdout
    wrong = _cli(home, "app.py:80:1")
    assert wrong.returncode == 2 and "past the end of the file" in wrong.stderr
    malformed = _cli(home, "app.py:0:1")
    assert malformed.returncode == 2 and "count from 1" in malformed.stderr
    assert "1-based" in _cli(home, "--help").stdout
