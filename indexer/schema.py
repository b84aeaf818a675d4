"""The tables of the index and their version.

Bump `SCHEMA_VERSION` whenever a table's columns or the meaning of a value changes (how
symbols or chunks are cut counts): an index with another version is rebuilt on open.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

SCHEMA_VERSION: Final = 1

SYMBOLS = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("qualified_name", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("language", pa.string(), nullable=False),
        pa.field("start_line", pa.int32(), nullable=False),
        pa.field("start_col", pa.int32(), nullable=False),
        pa.field("end_line", pa.int32(), nullable=False),
        pa.field("end_col", pa.int32(), nullable=False),
        pa.field("name_start_line", pa.int32(), nullable=False),
        pa.field("name_start_col", pa.int32(), nullable=False),
        pa.field("name_end_line", pa.int32(), nullable=False),
        pa.field("name_end_col", pa.int32(), nullable=False),
        pa.field("signature", pa.string(), nullable=False),
        pa.field("doc", pa.string(), nullable=False),
        pa.field("parent", pa.string(), nullable=False),
        # The name cut into words ("getUserName" → "get user name"), for full-text search.
        pa.field("words", pa.string(), nullable=False),
    ]
)

CHUNKS = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("language", pa.string(), nullable=False),
        pa.field("start_line", pa.int32(), nullable=False),
        pa.field("end_line", pa.int32(), nullable=False),
        pa.field("symbols", pa.list_(pa.string()), nullable=False),
        pa.field("text", pa.string(), nullable=False),
    ]
)

FILES = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("hash", pa.string(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("mtime_ns", pa.int64(), nullable=False),
        pa.field("language", pa.string(), nullable=False),
        # Why the file has no rows ("binary", "minified", "generated"), "" when indexed.
        pa.field("skipped", pa.string(), nullable=False),
        pa.field("symbols", pa.int32(), nullable=False),
        pa.field("chunks", pa.int32(), nullable=False),
        pa.field("schema_version", pa.int32(), nullable=False),
        pa.field("indexed_at", pa.float64(), nullable=False),
    ]
)

TABLES: Final = {"files": FILES, "symbols": SYMBOLS, "chunks": CHUNKS}


def tables(vector_dimensions: int | None) -> dict[str, pa.Schema]:
    """The tables of a store; chunks carry a vector column when embeddings are on."""
    if vector_dimensions is None:
        return dict(TABLES)
    vector = pa.field("vector", pa.list_(pa.float32(), vector_dimensions), nullable=True)
    return {**TABLES, "chunks": CHUNKS.append(vector)}


def empty(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()


def from_columns(columns: list[list[object]], table_schema: pa.Schema) -> pa.Table:
    """A table from one Python list per column (what parser processes send)."""
    if not columns or not columns[0]:
        return empty(table_schema)
    arrays = [
        pa.array(values, type=f.type) for values, f in zip(columns, table_schema, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=table_schema)
