"""Path mapping for a team server whose checkout lives elsewhere than the editor's files.

`--path-map /home/me/proj=/srv/proj`: URIs (and `rootPath`) under the editor's folder are
rewritten to the server's folder in every message the client sends, and back in every
message the server sends, so the index and repository context read the server-side
checkout while the editor keeps seeing its own paths. Only URI-valued fields are touched
(keys named `uri`, `…Uri`, `rootPath`, and the keys of a WorkspaceEdit's `changes`), never
document text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from pygls.uris import from_fs_path


class PathMapError(ValueError):
    pass


def _is_uri_key(key: str) -> bool:
    return key == "uri" or key.endswith("Uri")


@dataclass(frozen=True)
class PathMap:
    """(editor, server) pairs of folder URIs and of folder paths."""

    uris: tuple[tuple[str, str], ...]
    paths: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, specs: list[str]) -> PathMap:
        uris, paths = [], []
        for spec in specs:
            editor, sep, server = spec.partition("=")
            if not sep or not editor or not server:
                raise PathMapError(f"--path-map expects EDITOR_PATH=SERVER_PATH, got {spec!r}")
            pair = [str(PurePosixPath(p)) for p in (editor, server)]
            for path in pair:
                if not PurePosixPath(path).is_absolute():
                    raise PathMapError(f"--path-map paths must be absolute: {path!r}")
            paths.append((pair[0], pair[1]))
            uris.append((from_fs_path(pair[0]) or "", from_fs_path(pair[1]) or ""))
        return cls(tuple(uris), tuple(paths))

    def _swap(self, value: str, pairs: tuple[tuple[str, str], ...], to_server: bool) -> str:
        for editor, server in pairs:
            source, target = (editor, server) if to_server else (server, editor)
            if value == source or value.startswith(source.rstrip("/") + "/"):
                return target + value[len(source) :]
        return value

    def rewrite(self, data: Any, to_server: bool) -> Any:
        if isinstance(data, list):
            return [self.rewrite(item, to_server) for item in data]
        if not isinstance(data, dict):
            return data
        result: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, str) and _is_uri_key(key):
                value = self._swap(value, self.uris, to_server)
            elif isinstance(value, str) and key == "rootPath":
                value = self._swap(value, self.paths, to_server)
            elif key == "changes" and isinstance(value, dict):
                value = {
                    self._swap(uri, self.uris, to_server): self.rewrite(edits, to_server)
                    for uri, edits in value.items()
                }
            else:
                value = self.rewrite(value, to_server)
            result[key] = value
        return result

    def incoming(self, body: bytes) -> bytes:
        """A client message body with editor URIs mapped to server ones (bad JSON untouched)."""
        try:
            data = json.loads(body)
        except ValueError:
            return body  # the protocol answers it with a parse error
        return json.dumps(self.rewrite(data, to_server=True)).encode("utf-8")

    def outgoing(self, framed: bytes) -> bytes:
        """A framed server message with server URIs mapped back to the editor's."""
        header, sep, body = framed.partition(b"\r\n\r\n")
        if not sep:
            return framed
        try:
            data = json.loads(body)
        except ValueError:
            return framed
        mapped = json.dumps(self.rewrite(data, to_server=False)).encode("utf-8")
        lines = [
            line
            for line in header.split(b"\r\n")
            if not line.lower().startswith(b"content-length:")
        ]
        return b"\r\n".join([b"Content-Length: %d" % len(mapped), *lines]) + sep + mapped
