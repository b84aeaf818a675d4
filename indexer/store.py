"""The LanceDB store: three tables, their schema version, checks, ordered writes, upkeep.

Layout of an index folder:

    meta.json      {"schema_version": N, ...}; written last when the store is created
    db/            the LanceDB database: files.lance, symbols.lance, chunks.lance
    writer.lock    held by the one process allowed to write (see lock.py)
    .gitignore     "*", so the index never shows up in `git status`

Writes of one batch commit in an order that keeps the index consistent whatever step a
crash interrupts: the files' rows are deleted first, then their symbols and chunks are
replaced, and only then are the new file rows (with the content hash) added. A file is
therefore marked indexed only after its rows are committed; a crash leaves it unmarked,
and the next start re-indexes it and drops its orphan rows.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import warnings
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

# Lance logs from Rust to stderr; keep it to errors unless the user asks for more.
os.environ.setdefault("LANCE_LOG", "error")
os.environ.setdefault("LANCEDB_LOG", "error")

import lancedb
import pyarrow as pa
from lancedb.index import FTS

from ouzel.indexer import schema

log = logging.getLogger("ouzel.indexer.store")

META = "meta.json"
DB = "db"
FTS_COLUMNS = {"chunks": "text", "symbols": "words"}
DELETE_BATCH = 2000  # paths per delete statement
# Rows added since the last full-text index update before it is brought up to date (new
# rows are searchable before that too, by a slower scan).
FTS_REFRESH_ROWS = 4000
# `optimize` (compaction, index merge, pruning) costs seconds on a large index whatever
# changed, so it runs after this many commits, and only when the scheduler is idle.
COMPACT_EVERY_COMMITS = 120
# Code, not prose: no stemming ("parser" is not "parse"), which also halves the build time.
FTS_CONFIG = FTS(with_position=False, stem=False, memory_limit=64)
# Lance caches index and metadata pages; the defaults (gigabytes) suit servers, not editors.
INDEX_CACHE_BYTES = 64 << 20
METADATA_CACHE_BYTES = 32 << 20
KEEP_VERSIONS_FOR = timedelta(minutes=2)


class StoreProblem(Exception):
    """The store cannot be used as it is: `reason` says why (it will be rebuilt)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class FileRecord:
    hash: str
    size: int
    mtime_ns: int
    language: str
    skipped: str
    symbols: int
    chunks: int


def sql_list(values: Iterable[str]) -> str:
    """A SQL list of string literals."""
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


def _batches(values: list[str], size: int = DELETE_BATCH) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _same_schema(actual: pa.Schema, expected: pa.Schema) -> bool:
    return [(f.name, f.type) for f in actual] == [(f.name, f.type) for f in expected]


class Store:
    def __init__(
        self, folder: Path, writable: bool, embedder: tuple[str, int] | None = None
    ) -> None:
        """`embedder`: (name, dimensions) of the embedding model, None without vectors."""
        self.folder = folder
        self.writable = writable
        self.embedder = list(embedder) if embedder else None
        self.schemas = schema.tables(embedder[1] if embedder else None)
        self._db: Any = None
        self._tables: dict[str, Any] = {}
        self._lock = threading.RLock()
        self.commits_since_compaction = 0
        self.unindexed_rows = 0

    # --- opening, checking, creating ------------------------------------------------------

    @property
    def db_path(self) -> Path:
        return self.folder / DB

    def _connect(self) -> Any:
        # A reader process sees the writer's commits within half a second.
        interval = None if self.writable else timedelta(milliseconds=500)
        session = lancedb.Session(
            index_cache_size_bytes=INDEX_CACHE_BYTES, metadata_cache_size_bytes=METADATA_CACHE_BYTES
        )
        return lancedb.connect(
            str(self.db_path), read_consistency_interval=interval, session=session
        )

    def open(self) -> None:
        """Open an existing store; raise StoreProblem when it is missing, old or corrupt."""
        meta_path = self.folder / META
        if not meta_path.exists():
            raise StoreProblem("no index yet")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise StoreProblem(f"unreadable {META}: {exc}") from exc
        version = meta.get("schema_version") if isinstance(meta, dict) else None
        if version != schema.SCHEMA_VERSION:
            raise StoreProblem(
                f"schema version {version} (this ouzel uses {schema.SCHEMA_VERSION})"
            )
        if meta.get("embedder") != self.embedder:
            raise StoreProblem(
                f"embedding model changed ({meta.get('embedder')} → {self.embedder})"
            )
        try:
            db = self._connect()
            tables = {name: db.open_table(name) for name in self.schemas}
        except Exception as exc:
            raise StoreProblem(f"corrupt store: cannot open tables ({exc})") from exc
        for name, expected in self.schemas.items():
            if not _same_schema(tables[name].schema, expected):
                raise StoreProblem(f"table {name} has an unexpected schema")
        with self._lock:
            self._db = db
            self._tables = tables
            self.unindexed_rows = self._count_unindexed()

    def _count_unindexed(self) -> int:
        total = 0
        for name, column in FTS_COLUMNS.items():
            for index in self.table(name).list_indices():
                if column in index.columns:
                    stats = self.table(name).index_stats(index.name)
                    total += stats.num_unindexed_rows if stats is not None else 0
        return total

    def create(self) -> None:
        """Replace whatever is in the folder with empty tables (writers only)."""
        assert self.writable
        with self._lock:
            self._tables = {}
            self._db = None
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / ".gitignore").write_text("*\n")
            # meta.json goes first and comes back last: a crash in between leaves no
            # meta, so the next start rebuilds again.
            (self.folder / META).unlink(missing_ok=True)
            shutil.rmtree(self.db_path, ignore_errors=True)
            db = self._connect()
            tables = {
                name: db.create_table(name, schema=table_schema, mode="overwrite")
                for name, table_schema in self.schemas.items()
            }
            # Indexes on the empty tables make full-text search work from the first commit:
            # rows added later are scanned until `build_fts` or `upkeep` folds them in.
            self._tables = tables
            self.build_fts()
            meta = {
                "schema_version": schema.SCHEMA_VERSION,
                "embedder": self.embedder,
                "created_at": time.time(),
            }
            temporary = self.folder / (META + ".tmp")
            temporary.write_text(json.dumps(meta))
            temporary.replace(self.folder / META)
            self._db = db
            self._tables = tables
            self.commits_since_compaction = 0
            self.unindexed_rows = 0

    def close(self) -> None:
        with self._lock:
            self._tables = {}
            self._db = None

    def table(self, name: str) -> Any:
        tables = self._tables
        if name not in tables:
            raise StoreProblem("the store is not open")
        return tables[name]

    def scan(self, name: str, columns: list[str] | None = None) -> pa.Table:
        query = self.table(name).search()
        if columns is not None:
            query = query.select(columns)
        result: pa.Table = query.limit(None).to_arrow()
        return result

    def load_files(self) -> dict[str, FileRecord]:
        """Every file row; reading all data also proves the table is intact."""
        try:
            files = self.scan("files")
        except StoreProblem:
            raise
        except Exception as exc:
            raise StoreProblem(f"corrupt store: files table unreadable ({exc})") from exc
        records: dict[str, FileRecord] = {}
        for row in files.to_pylist():
            records[row["path"]] = FileRecord(
                row["hash"],
                row["size"],
                row["mtime_ns"],
                row["language"],
                row["skipped"],
                row["symbols"],
                row["chunks"],
            )
        return records

    def verify_all(self) -> None:
        """Read every column of every table (after an error: is any data unreadable?)."""
        for name in self.schemas:
            try:
                self.scan(name)
            except StoreProblem:
                raise
            except Exception as exc:
                raise StoreProblem(f"corrupt store: {name} table unreadable ({exc})") from exc

    def row_counts(self, name: str) -> dict[str, int]:
        """Rows per path in the symbols or chunks table."""
        try:
            paths = self.scan(name, ["path"])
        except StoreProblem:
            raise
        except Exception as exc:
            raise StoreProblem(f"corrupt store: {name} table unreadable ({exc})") from exc
        if paths.num_rows == 0:
            return {}
        counted = paths.group_by("path").aggregate([("path", "count")])
        return dict(
            zip(
                counted.column("path").to_pylist(),
                counted.column("path_count").to_pylist(),
                strict=True,
            )
        )

    # --- writing ---------------------------------------------------------------------------

    def commit(
        self,
        replace: Collection[str],
        files: pa.Table,
        symbols: pa.Table,
        chunks: pa.Table,
        had_rows: Collection[str],
    ) -> None:
        """One batch, in crash-safe order.

        `replace`: paths whose file rows go (changed, removed, touched); `had_rows`: those of
        them with symbol or chunk rows to delete; `files`: the new file rows.
        """
        assert self.writable
        with self._lock:
            files_table = self.table("files")
            for group in _batches(sorted(replace)):
                files_table.delete(f"path IN ({sql_list(group)})")
                self.commits_since_compaction += 1
            for name in ("symbols", "chunks"):
                target = self.table(name)
                for group in _batches(sorted(had_rows)):
                    target.delete(f"path IN ({sql_list(group)})")
                    self.commits_since_compaction += 1
            if symbols.num_rows:
                self.table("symbols").add(symbols)
            if chunks.num_rows:
                self.table("chunks").add(chunks)
            if files.num_rows:
                files_table.add(files)
            self.commits_since_compaction += 3
            self.unindexed_rows += symbols.num_rows + chunks.num_rows

    def delete_paths(self, name: str, paths: Collection[str]) -> None:
        with self._lock:
            target = self.table(name)
            for group in _batches(sorted(paths)):
                target.delete(f"path IN ({sql_list(group)})")

    def build_fts(self) -> None:
        """(Re)build the full-text indexes over everything (after a cold index)."""
        with self._lock, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, column in FTS_COLUMNS.items():
                self.table(name).create_index(column, config=FTS_CONFIG, replace=True)
            self.unindexed_rows = 0

    def upkeep_due(self) -> bool:
        return (
            self.unindexed_rows >= FTS_REFRESH_ROWS // 4
            or self.commits_since_compaction >= COMPACT_EVERY_COMMITS
        )

    def upkeep(self, force: bool = False) -> bool:
        """Fold new rows into the full-text indexes and compact old versions when due.

        Mostly new rows (a cold index): the full-text indexes are built afresh, which beats
        merging, and compaction waits for later. Otherwise `optimize` merges the new rows
        into the indexes, compacts small fragments and prunes old versions."""
        fts_due = self.unindexed_rows >= FTS_REFRESH_ROWS or (force and self.unindexed_rows > 0)
        compact_due = force
        if not (fts_due or compact_due):
            return False
        with self._lock, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            total = sum(self.table(name).count_rows() for name in FTS_COLUMNS)
            if fts_due and self.unindexed_rows * 2 >= total:
                self.build_fts()
                if not compact_due:
                    return True
            for name in self.schemas:
                self.table(name).optimize(cleanup_older_than=KEEP_VERSIONS_FOR)
            self.commits_since_compaction = 0
            self.unindexed_rows = 0
        return True

    def version_count(self) -> int:
        return sum(len(self.table(name).list_versions()) for name in self.schemas)

    # --- reading ---------------------------------------------------------------------------

    def search_text(
        self, query: str, limit: int, exclude_paths: Collection[str], columns: list[str]
    ) -> pa.Table:
        builder = self.table("chunks").search(query, query_type="fts")
        if exclude_paths:
            builder = builder.where(f"path NOT IN ({sql_list(exclude_paths)})", prefilter=True)
        result: pa.Table = builder.select(columns).limit(limit).to_arrow()
        return result

    def search_vector(
        self, vector: list[float], limit: int, exclude_paths: Collection[str], columns: list[str]
    ) -> pa.Table:
        builder = self.table("chunks").search(vector, vector_column_name="vector")
        builder = builder.distance_type("cosine")
        if exclude_paths:
            builder = builder.where(f"path NOT IN ({sql_list(exclude_paths)})", prefilter=True)
        result: pa.Table = builder.select(columns).limit(limit).to_arrow()
        return result

    def search_symbol_words(self, query: str, limit: int) -> pa.Table:
        result: pa.Table = (
            self.table("symbols").search(query, query_type="fts").limit(limit).to_arrow()
        )
        return result

    def table_version(self, name: str) -> int:
        version: int = self.table(name).version
        return version

    def symbols_table(self) -> pa.Table:
        return self.scan("symbols")
