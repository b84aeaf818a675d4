"""Reading other files for context: open documents first, then disk; secrets never."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path

log = logging.getLogger("ouzel.context.files")
RECHECK_AFTER_S = 10.0


class SecretGuard:
    """Says whether a path may enter a prompt (the settings' `index.secret_globs`)."""

    def __init__(self, roots: Iterable[Path], globs: Iterable[str]) -> None:
        self.roots = [root.resolve() for root in roots]
        self.globs = tuple(globs)
        # path -> (checked at, secret): a symlink may be re-pointed, so answers expire.
        self._known: dict[Path, tuple[float, bool]] = {}

    def is_secret(self, path: Path | None) -> bool:
        if path is None:
            return False
        now = time.monotonic()
        known = self._known.get(path)
        if known is not None and now - known[0] < RECHECK_AFTER_S:
            return known[1]
        secret = self._check(path)
        if len(self._known) > 4096:
            self._known.clear()
        self._known[path] = (now, secret)
        return secret

    def _check(self, path: Path) -> bool:
        from ouzel.indexer.walk import is_secret_path

        # Both the name the user sees and the file a symlink points to must be clean.
        for candidate in {path, path.resolve()}:
            roots = [root for root in self.roots if candidate.is_relative_to(root)]
            for root in roots or [Path("/")]:
                if is_secret_path(candidate, root, self.globs):
                    return True
        return False

    def allowed(self, path: Path | None) -> bool:
        return not self.is_secret(path)


class FileTexts:
    """Text of files by path: open documents' current snapshots, else the file on disk.

    Disk reads are cached by (mtime, size); binary, undecodable and oversized files are
    refused, so a stray `.bin` in a definition list cannot flood a prompt.
    """

    def __init__(self, max_bytes: int = 1_000_000, cache_size: int = 256) -> None:
        self.max_bytes = max_bytes
        self._cache: OrderedDict[Path, tuple[int, int, str | None]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def read(self, path: Path, open_documents: Mapping[Path, str] | None = None) -> str | None:
        if open_documents is not None and path in open_documents:
            return open_documents[path]
        try:
            info = os.stat(path)
        except OSError:
            return None
        with self._lock:
            cached = self._cache.get(path)
            if cached is not None and cached[:2] == (info.st_mtime_ns, info.st_size):
                self._cache.move_to_end(path)
                return cached[2]
        text = self._load(path, info.st_size)
        with self._lock:
            self._cache[path] = (info.st_mtime_ns, info.st_size, text)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return text

    def _load(self, path: Path, size: int) -> str | None:
        if size > self.max_bytes:
            return None
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.debug("cannot read %s: %s", path, exc)
            return None
        if b"\0" in data[:8192]:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return None
