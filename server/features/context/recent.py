"""Recently edited and viewed code: a small ring buffer of regions, never of text.

The buffer remembers *where* the user worked (document, line range), not what the text
was. Text is read when a prompt is built, from the current version of the document (or the
file on disk once it is closed), so content from an older version never reaches a prompt.
Fed by `DocumentStore.on_change` (open: the top of the file; change: the edited lines) and
by context requests (the lines around the cursor).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ouzel.indexer.text import line_of
from ouzel.server.documents import Document, file_path


@dataclass(frozen=True)
class RecentRegion:
    uri: str
    path: Path | None
    start_line: int  # 0-based, inclusive
    end_line: int  # 0-based, exclusive
    stamp: int  # higher is more recent

    def overlap(self, start: int, end: int) -> int:
        return max(0, min(self.end_line, end) - max(self.start_line, start))


class RecentBuffer:
    """The last `capacity` regions the user opened, edited or had the cursor in."""

    def __init__(
        self,
        capacity: int = 16,
        chunk_lines: int = 32,
        allowed: Callable[[Path | None], bool] = lambda path: True,
        path_of: Callable[[str], Path | None] = file_path,
    ) -> None:
        self.capacity = capacity
        self.chunk_lines = chunk_lines
        self.allowed = allowed  # False for secret files: they are never remembered
        self.path_of = path_of  # a document's file (None: untitled)
        self._regions: list[RecentRegion] = []  # oldest first
        self._stamp = 0
        self._lock = threading.Lock()

    def regions(self) -> list[RecentRegion]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._regions))

    def clear(self) -> None:
        with self._lock:
            self._regions.clear()

    # --- feeding -------------------------------------------------------------------------

    def on_document(self, kind: str, doc: Document, previous: Document | None) -> None:
        """A `DocumentStore.on_change` listener."""
        path = self.path_of(doc.uri)
        if kind == "open":
            self._forget(doc.uri)
            self.touch(doc.uri, path, 0, doc.line_count())
        elif kind == "change" and previous is not None:
            first, delta = changed_lines(previous, doc)
            self._shift(doc.uri, first, delta)
            self.touch(doc.uri, path, first, doc.line_count())

    def touch(self, uri: str, path: Path | None, line: int, line_count: int) -> None:
        """Remember the region around `line` as the most recent one."""
        if not self.allowed(path):
            return
        half = self.chunk_lines // 2
        start = max(0, min(line - half, line_count - self.chunk_lines))
        end = min(line_count, start + self.chunk_lines)
        with self._lock:
            self._stamp += 1
            for index, region in enumerate(self._regions):
                # Still inside a remembered region: it just becomes the newest.
                if region.uri == uri and region.start_line + 3 <= line < region.end_line - 3:
                    del self._regions[index]
                    self._regions.append(replace(region, stamp=self._stamp))
                    return
            self._regions = [
                r
                for r in self._regions
                if r.uri != uri or r.overlap(start, end) * 2 < (r.end_line - r.start_line)
            ]
            self._regions.append(RecentRegion(uri, path, start, end, self._stamp))
            del self._regions[: -self.capacity]

    def _forget(self, uri: str) -> None:
        with self._lock:
            self._regions = [r for r in self._regions if r.uri != uri]

    def _shift(self, uri: str, first_changed: int, delta: int) -> None:
        """Keep regions below an edit on the same lines of code."""
        if delta == 0:
            return
        with self._lock:
            self._regions = [
                replace(r, start_line=max(0, r.start_line + delta), end_line=r.end_line + delta)
                if r.uri == uri and r.start_line > first_changed
                else r
                for r in self._regions
            ]


def changed_lines(old: Document, new: Document) -> tuple[int, int]:
    """(first line of `new` that differs from `old`, change in line count)."""
    prefix = common_prefix_length(old.text, new.text)
    # The line of `new` containing the first differing character.
    return line_of(new.starts, prefix), new.line_count() - old.line_count()


def common_prefix_length(a: str, b: str) -> int:
    """Length of the longest common prefix, by bisection on C-speed slice comparisons."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low
