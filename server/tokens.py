"""Per-user tokens for a team server: a JSON file of name → sha256 of the token.

The file holds no token itself, only hashes, so reading it (or a backup of it) gives no
access. `ouzel tokens add NAME` prints a new token once. The server re-reads the file when
its modification time or size changes, so `ouzel tokens revoke NAME` takes effect without
a restart (and the server closes that user's open sessions).

    {"version": 1, "tokens": {"alice": {"sha256": "…", "created": "2026-12-02T15:00:00Z"}}}
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class TokensFileError(ValueError):
    pass


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_name(name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise TokensFileError(
            f"invalid user name {name!r}: 1-64 characters, letters, digits and . _ @ -"
        )


def read_tokens_file(path: Path) -> dict[str, str]:
    """name → sha256 hex; a missing file is an empty team. Raises TokensFileError."""
    if not path.exists():
        return {}
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TokensFileError(f"{path} is readable by other users: chmod 600 {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError) as exc:
        raise TokensFileError(f"cannot read the tokens file {path}: {exc}") from exc
    entries = data.get("tokens", {}) if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise TokensFileError(f"{path}: expected {{'tokens': {{name: {{'sha256': …}}}}}}")
    hashes: dict[str, str] = {}
    for name, entry in entries.items():
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise TokensFileError(f"{path}: the entry {name!r} has no valid sha256")
        hashes[str(name)] = digest
    return hashes


def _load_raw(path: Path) -> dict[str, dict[str, str]]:
    read_tokens_file(path)  # validates mode and shape
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8") or "{}")
    tokens: dict[str, dict[str, str]] = data.get("tokens", {})
    return tokens


def _write_atomically(path: Path, entries: dict[str, dict[str, str]]) -> None:
    """Write 0600 to a temporary file and rename it, so the server never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump({"version": 1, "tokens": entries}, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(temporary, path)


def add_token(path: Path, name: str, replace: bool = False) -> str:
    """A new random token for `name` (returned once; only its hash is stored)."""
    _check_name(name)
    entries = _load_raw(path)
    if name in entries and not replace:
        raise TokensFileError(f"{name} already has a token: revoke it first, or use --replace")
    token = secrets.token_urlsafe(32)
    entries[name] = {
        "sha256": token_hash(token),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _write_atomically(path, entries)
    return token


def revoke_token(path: Path, name: str) -> None:
    entries = _load_raw(path)
    if name not in entries:
        raise TokensFileError(f"no token named {name!r} in {path}")
    del entries[name]
    _write_atomically(path, entries)


def list_tokens(path: Path) -> list[tuple[str, str]]:
    """(name, created) pairs, sorted by name."""
    return sorted((name, entry.get("created", "?")) for name, entry in _load_raw(path).items())


@dataclass
class TokenStore:
    """The tokens file as the server sees it, re-read when it changes on disk."""

    path: Path
    _hashes: dict[str, str] = field(default_factory=dict)
    _stamp: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        self.reload_if_changed()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        return info.st_mtime_ns, info.st_size

    def reload_if_changed(self) -> bool:
        """Re-read the file when its mtime or size moved; True when it did.

        A file that became invalid keeps the last good set (and raises, so it is logged):
        a typo must not lock the whole team out, nor let a revoked user back in.
        """
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return False
        self._hashes = read_tokens_file(self.path)
        self._stamp = stamp
        return True

    @property
    def users(self) -> frozenset[str]:
        return frozenset(self._hashes)

    def identify(self, offered: object) -> str | None:
        """The user whose token this is, or None. Compares every entry in constant time."""
        if not isinstance(offered, str) or not offered:
            return None
        digest = token_hash(offered).encode("ascii")
        found: str | None = None
        for name, expected in self._hashes.items():
            if hmac.compare_digest(digest, expected.encode("ascii")):
                found = name
        return found
