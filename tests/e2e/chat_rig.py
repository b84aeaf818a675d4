"""Shared pieces of the chat and code-action end-to-end tests: Qwen2.5-Coder on a real
`llama_cpp.server` as the remote, a real `ouzel serve`, and a client that applies edits."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import waiting
from rpc import RawClient, StdioServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models import model_file
from real_servers import LlamaServer

KEY = "e2e-chat-key"
KEY_VARIABLE = "OUZEL_E2E_CHAT_KEY"
STAND_IN = "qwen2.5-coder-0.5b"  # the faster Qwen: e2e answers take seconds

GEOMETRY = (
    "def area(width, height):\n"
    "    return width * height\n"
    "\n"
    "\n"
    "def perimeter(width, height):\n"
    "    return 2 * (width + height)\n"
)


def start_llama(log: Path) -> LlamaServer:
    # Not `interrupt_requests`: the router's `/v1/models` probes would cut streams short.
    server = LlamaServer(KEY, log, model=model_file(STAND_IN), chat_format=None, n_ctx=4096)
    server.start(timeout=180)
    return server


def options(llama: LlamaServer, **chat: Any) -> dict[str, Any]:
    return {
        "models": {
            "remote": {"backend": "openai", "base_url": llama.base_url, "api_key_env": KEY_VARIABLE}
        },
        "routing": {"chat": ["remote"], "code_action": ["remote"]},
        "chat": {"max_tokens": 200, **chat},
    }


def start_ouzel(tmp: Path, workspace: Path, llama: LlamaServer, **chat: Any) -> StdioServer:
    os.environ[KEY_VARIABLE] = KEY  # inherited by `ouzel serve` through server_env
    process = StdioServer(tmp)
    process.client.initialize(root=workspace, options=options(llama, **chat))
    return process


def open_file(client: RawClient, path: Path, version: int = 1) -> str:
    uri = path.as_uri()
    client.notify(
        "textDocument/didOpen",
        {
            "textDocument": {
                "uri": uri,
                "languageId": "python",
                "version": version,
                "text": path.read_text(),
            }
        },
    )
    return uri


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
    return waiting.wait_for(predicate, timeout, what)


def progress_values(client: RawClient, token: Any) -> list[dict[str, Any]]:
    return [
        n["params"]["value"]
        for n in list(client.notifications)
        if n["method"] == "$/progress" and n["params"]["token"] == token
    ]


def utf16_offset(text: str, line: int, character: int) -> int:
    lines = text.split("\n")
    if line >= len(lines):
        return len(text)
    offset = sum(len(item) + 1 for item in lines[:line])
    units = 0
    for index, ch in enumerate(lines[line]):
        if units >= character:
            return offset + index
        units += 2 if ord(ch) > 0xFFFF else 1
    return offset + len(lines[line])


def apply_edits(text: str, edits: list[dict[str, Any]]) -> str:
    """Apply LSP TextEdits (ranges of the original text), as an editor does."""
    spans = []
    for edit in edits:
        start, end = edit["range"]["start"], edit["range"]["end"]
        spans.append(
            (
                utf16_offset(text, start["line"], start["character"]),
                utf16_offset(text, end["line"], end["character"]),
                edit["newText"],
            )
        )
    for begin, finish, new in sorted(spans, reverse=True):
        text = text[:begin] + new + text[finish:]
    return text
