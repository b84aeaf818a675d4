"""The editor side of the agent's end-to-end tests: buffers, applyEdit answered by applying
all or some hunks and sending didChange (never saving, unless told), showMessageRequest
answered as told."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chat_rig import apply_edits
from rpc import RawClient


class Editor:
    """Buffers by URI; answers the server's requests as a user reviewing hunks would."""

    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.buffers: dict[str, tuple[int, str]] = {}
        self.edits: list[dict[str, Any]] = []
        self.questions: list[dict[str, Any]] = []
        self.take: Callable[[str, int, dict[str, Any]], bool] = lambda uri, i, a: True
        self.answer_question: Callable[[dict[str, Any]], str | None] = lambda q: None
        self.applied = True
        self.saves = False  # VS Code's files.refactoring.autoSave: the editor writes too
        client.request_handlers["workspace/applyEdit"] = self._apply_edit
        client.request_handlers["window/showMessageRequest"] = self._question

    def open(self, path: Path) -> str:
        uri = path.as_uri()
        text = path.read_text()
        self.buffers[uri] = (1, text)
        self.client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
        )
        return uri

    def change(self, uri: str, text: str) -> None:
        version = self.buffers[uri][0] + 1
        self.buffers[uri] = (version, text)
        self.client.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"text": text}],
            },
        )

    def text(self, uri: str) -> str:
        return self.buffers[uri][1]

    def _question(self, message: dict[str, Any]) -> Any:
        self.questions.append(message["params"])
        title = self.answer_question(message["params"])
        return {"title": title} if title is not None else None

    def _apply_edit(self, message: dict[str, Any]) -> Any:
        params = message["params"]
        self.edits.append(params)
        if not self.applied:
            return {"applied": False}
        edit = params["edit"]
        annotations = edit.get("changeAnnotations") or {}
        for change in edit["documentChanges"]:
            kind = change.get("kind")
            path = Path(change.get("uri", "file:///").removeprefix("file://"))
            if kind == "create":  # as Neovim does: an empty file on disk
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("")
                continue
            if kind == "delete":
                self.buffers.pop(change["uri"], None)
                continue
            uri = change["textDocument"]["uri"]
            if uri not in self.buffers:
                self.open(Path(uri.removeprefix("file://")))
            version = change["textDocument"]["version"]
            assert version is None or version == self.buffers[uri][0], (version, uri)
            taken = [
                e
                for i, e in enumerate(change["edits"])
                if "annotationId" not in e or self.take(uri, i, annotations[e["annotationId"]])
            ]
            if taken:
                self.change(uri, apply_edits(self.text(uri), taken))
                if self.saves:
                    Path(uri.removeprefix("file://")).write_text(self.text(uri))
        return {"applied": True}


def tree(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        if path.is_file()
        else "dir"
        for path in sorted(root.rglob("*"))
    }


def progress(client: RawClient, token: str) -> list[dict[str, Any]]:
    return [
        n["params"]["value"]
        for n in list(client.notifications)
        if n["method"] == "$/progress" and n["params"]["token"] == token
    ]
