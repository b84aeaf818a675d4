"""The recent source: regions of the recent-code ring buffer, read now.

The buffer keeps only where the user worked (document, lines); the text comes from the
open document's current version, or the file once closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ouzel.server.features.context.model import Candidate, ContextRequest
from ouzel.server.features.context.recent import RecentBuffer
from ouzel.server.features.context.snippets import split_lines
from ouzel.server.features.context.sources.common import CodeReader, focus, words
from ouzel.server.features.context.window import Cursor


class RecentSource:
    def __init__(self, buffer: RecentBuffer, reader: CodeReader) -> None:
        self.buffer = buffer
        self.reader = reader

    def find(
        self, request: ContextRequest, cursor: Cursor, documents: Mapping[Path, str]
    ) -> list[Candidate]:
        """Recent regions, those sharing the most words with the cursor's lines first."""
        around = words(cursor.lines_text(cursor.line - 15, cursor.line + 5))
        scored: list[tuple[float, int, Candidate]] = []
        for age, region in enumerate(self.buffer.regions()):
            if region.path is None:
                continue
            text = self.reader.files.read(region.path, documents)
            if text is None:
                continue
            lines = self.reader.snippets.lines(region.path, text)
            start = max(0, min(region.start_line, len(lines) - 1))
            end = max(start, min(region.end_line, len(lines)))
            body = "".join(lines[start:end])
            if not body.strip():
                continue
            used = words(body)
            similarity = len(used & around) / len(used | around) if used or around else 0.0
            first, text = focus(start, body, around)
            candidate = Candidate(
                "recent", region.path, first, first + len(split_lines(text)), text, 0
            )
            scored.append((-similarity, age, candidate))
        scored.sort(key=lambda item: item[:2])
        for rank, (_, _, candidate) in enumerate(scored):
            candidate.rank = rank
        return [candidate for _, _, candidate in scored]
