"""Optional chunk embeddings: the provider interface and the vector column.

Off by default: `IndexConfig.embedder` is None and the chunks table has no vector column.
With a provider (a local embedding model the user configured; nothing is downloaded),
every new chunk gets a vector when its batch is written, and `search_similar` finds
nearest neighbours by cosine distance (brute force: fine up to a few hundred thousand
chunks). Another model or size of vector means another index: the store records the
provider's name and dimensions and is rebuilt when they change.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import pyarrow as pa

log = logging.getLogger("ouzel.indexer.embeddings")

BATCH = 64  # texts per call to the provider


@runtime_checkable
class EmbeddingProvider(Protocol):
    """Turns texts into vectors of `dimensions` floats (from a local model)."""

    @property
    def name(self) -> str:
        """Identifies the model and its settings; a new name rebuilds the index."""
        ...

    @property
    def dimensions(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


def vector_type(dimensions: int) -> pa.DataType:
    return pa.list_(pa.float32(), dimensions)


def with_vectors(chunks: pa.Table, provider: EmbeddingProvider) -> tuple[pa.Table, str]:
    """`chunks` plus a vector column; vectors the provider fails to make stay null.

    Returns the table and the provider's error message ("" when all went well): a
    failing model must not stop the index, whose text search still works."""
    texts: list[str] = chunks.column("text").to_pylist()
    vectors: list[list[float] | None] = []
    error = ""
    for start in range(0, len(texts), BATCH):
        part = texts[start : start + BATCH]
        try:
            made = provider.embed(part)
            if len(made) != len(part) or any(len(v) != provider.dimensions for v in made):
                raise ValueError(f"expected {len(part)} vectors of {provider.dimensions} floats")
            vectors.extend(made)
        except Exception as exc:
            error = f"embedding with {provider.name} failed: {exc}"
            log.warning("%s", error)
            vectors.extend([None] * len(part))
    column = pa.array(vectors, type=vector_type(provider.dimensions))
    return chunks.append_column(pa.field("vector", column.type, nullable=True), column), error
