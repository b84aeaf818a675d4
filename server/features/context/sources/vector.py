"""The vector source: the index's embedding neighbours of the lines around the cursor.

Silent unless an embedding model is configured (`Retrieval.similar` returns None).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ouzel.server.features.context.model import Candidate, ContextRequest
from ouzel.server.features.context.sources.common import (
    PER_SOURCE_LIMIT,
    CodeReader,
    RetrievalFor,
    focused,
    words,
)
from ouzel.server.features.context.window import Cursor


class VectorSource:
    def __init__(self, retrieval_for: RetrievalFor, reader: CodeReader) -> None:
        self.retrieval_for = retrieval_for
        self.reader = reader

    def find(
        self, request: ContextRequest, cursor: Cursor, documents: Mapping[Path, str]
    ) -> list[Candidate]:
        retrieval = self.retrieval_for(request.root)
        if retrieval is None:
            return []
        exclude = [request.path] if request.path is not None else []
        around = cursor.lines_text(cursor.line - 12, cursor.line + 4)
        hits = retrieval.similar(around, PER_SOURCE_LIMIT, exclude) or []
        wanted = words(around)
        kept = self.reader.usable(hits, documents)[:PER_SOURCE_LIMIT]
        return [focused(hit, rank, wanted) for rank, hit in enumerate(kept)]
