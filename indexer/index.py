"""`WorkspaceIndex`: keeps the index of one workspace root up to date and answers reads.

Every method may be called from any thread; writes are serialized. Only the process that
holds the writer lock writes; another one opens the index read-only, follows the writer's
commits, and takes over when the writer goes away (`try_become_writer`).

Write path: the walk (or the changed paths) gives files whose size or mtime differ from
their row in `files`; parser processes hash, check, parse and cut them into Arrow tables;
results are committed in batches of a few megabytes (a crash-safe order, see store.py).
The full-text indexes exist from the start and take new rows in at the end of a cold
index, or once enough rows have piled up; until then new rows are found by a scan.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from ouzel.indexer import schema
from ouzel.indexer.config import IndexConfig, index_dir_for
from ouzel.indexer.embeddings import with_vectors
from ouzel.indexer.extract import (
    BatchOutcome,
    FileOutcome,
    RowBuilder,
    Task,
    process_batch,
    process_data,
)
from ouzel.indexer.lock import WriterLock
from ouzel.indexer.pool import ParserPool
from ouzel.indexer.search import SymbolSnapshot
from ouzel.indexer.store import FileRecord, Store, StoreProblem
from ouzel.indexer.walk import IGNORE_FILES, FileEntry, IgnoreRules

log = logging.getLogger("ouzel.indexer")

T = TypeVar("T")

# Files parsed in the calling thread rather than in parser processes (a save, a buffer).
IN_THREAD_FILES = 8
IN_THREAD_BYTES = 128_000  # tree-sitter holds the GIL while it parses: ~20 ms at most
# Work handed to a parser process at once.
GROUP_BYTES = 256_000
GROUP_FILES = 64
# A batch is committed when it holds this much chunk text, or is this old.
COMMIT_TEXT_BYTES = 8_000_000
COMMIT_SECONDS = 3.0
READER_REFRESH_S = 0.5
BUFFER_MTIME = -1  # a row made from an editor buffer, not from the file on disk


@dataclass(frozen=True)
class Progress:
    phase: str  # "scanning", "indexing", "finishing"
    done: int
    total: int


ProgressCallback = Callable[[Progress], None]


@dataclass
class UpdateSummary:
    scanned: int = 0  # files the walk found
    indexed: int = 0  # files parsed and written
    unchanged: int = 0  # files whose content hash had not changed
    removed: int = 0
    errors: int = 0
    symbols: int = 0
    chunks: int = 0
    lines: int = 0
    bytes: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    read_only: bool = False
    cancelled: bool = False

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["skipped"] = dict(self.skipped)
        return data


@dataclass
class _Batch:
    """Results waiting to be committed."""

    outcomes: list[FileOutcome] = field(default_factory=list)
    symbols: list[pa.Table] = field(default_factory=list)
    chunks: list[pa.Table] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    text_bytes: int = 0
    started: float = field(default_factory=time.monotonic)

    def add(self, outcome: BatchOutcome) -> None:
        self.outcomes.extend(outcome.files)
        if outcome.symbols:
            self.symbols.append(schema.from_columns(outcome.symbols, schema.SYMBOLS))
        if outcome.chunks:
            self.chunks.append(schema.from_columns(outcome.chunks, schema.CHUNKS))
        self.text_bytes += outcome.text_bytes

    def empty(self) -> bool:
        return not self.outcomes and not self.removed


def _concat(tables: list[pa.Table], table_schema: pa.Schema) -> pa.Table:
    return pa.concat_tables(tables) if tables else schema.empty(table_schema)


def _records_table(records: dict[str, FileRecord]) -> pa.Table:
    now = time.time()
    rows = [
        {
            "path": path,
            "hash": r.hash,
            "size": r.size,
            "mtime_ns": r.mtime_ns,
            "language": r.language,
            "skipped": r.skipped,
            "symbols": r.symbols,
            "chunks": r.chunks,
            "schema_version": schema.SCHEMA_VERSION,
            "indexed_at": now,
        }
        for path, r in records.items()
    ]
    return pa.Table.from_pylist(rows, schema=schema.FILES)


def _groups(tasks: list[tuple[Task, int]]) -> list[list[Task]]:
    """Tasks in groups of about GROUP_BYTES (sizes come from the walk)."""
    groups: list[list[Task]] = []
    current: list[Task] = []
    size = 0
    for task, task_size in tasks:
        current.append(task)
        size += task_size
        if size >= GROUP_BYTES or len(current) >= GROUP_FILES:
            groups.append(current)
            current, size = [], 0
    if current:
        groups.append(current)
    return groups


class WorkspaceIndex:
    """The index of one workspace root. `writer=False` opens it for reading only (a search
    from the command line), never taking the writer lock."""

    def __init__(
        self, root: Path, config: IndexConfig | None = None, *, writer: bool = True
    ) -> None:
        self.root = Path(root).resolve()
        self.config = config or IndexConfig()
        self.folder = self._usable_folder(writer)
        self.rules = IgnoreRules(self.root, self.config)
        self._lock_file = WriterLock(self.folder)
        self._write_lock = threading.RLock()
        self._cancel = threading.Event()
        self._files: dict[str, FileRecord] = {}
        self._snapshot = SymbolSnapshot(schema.empty(schema.SYMBOLS))
        self._snapshot_version = -1
        self._errors: dict[str, str] = {}
        self._last_error = ""
        self._pending = 0
        self._phase = "opening"
        self._needs_check = False
        self._closed = False
        self._last_refresh = 0.0
        self._last_summary: UpdateSummary | None = None
        self.rebuilt_reason = ""
        self.problem = ""  # why a read-only index cannot be read yet
        self._pool = ParserPool(self.config.worker_count())
        self._may_write = writer
        if not writer:
            writable = False
        elif self.config.lock_wait_s > 0:
            writable = self._lock_file.acquire(self.config.lock_wait_s)
        else:
            writable = self._lock_file.try_acquire()
        if writer and not writable:
            log.info(
                "index %s is written by process %s; opening it read-only",
                self.folder,
                self._lock_file.owner(),
            )
        self.store = self._new_store(writable)
        self._open_store()
        self._phase = "idle"

    def _usable_folder(self, writer: bool) -> Path:
        """The index folder; the user cache when the workspace cannot be written to."""
        folder = index_dir_for(self.root, self.config)
        if not writer or self.config.index_dir is not None or self.config.location == "cache":
            return folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return folder
        except OSError as exc:
            cached = index_dir_for(self.root, dataclasses.replace(self.config, location="cache"))
            log.warning("cannot write %s (%s); the index lives in %s", folder, exc, cached)
            return cached

    def _new_store(self, writable: bool) -> Store:
        embedder = self.config.embedder
        described = (embedder.name, embedder.dimensions) if embedder is not None else None
        return Store(self.folder, writable, described)

    # --- state -------------------------------------------------------------------------------

    @property
    def writable(self) -> bool:
        return self.store.writable

    def _open_store(self, read_everything: bool = False) -> None:
        """Open the store, checking and repairing it; rebuild it when it cannot be used."""
        store = self.store
        try:
            store.open()
            if read_everything:
                store.verify_all()
            files = store.load_files()
            if store.writable:
                files = self._repair(files)
            table = store.symbols_table()
            version = store.table_version("symbols")
        except Exception as exc:
            reason = exc.reason if isinstance(exc, StoreProblem) else f"corrupt store: {exc}"
            if not store.writable:
                self.problem = reason
                log.info("index %s cannot be read yet: %s", self.folder, reason)
                return
            if reason != "no index yet":
                log.warning("index %s is rebuilt: %s", self.folder, reason)
                self.rebuilt_reason = reason
            self._phase = "rebuilding"
            store.create()
            files = {}
            table = schema.empty(schema.SYMBOLS)
            version = store.table_version("symbols")
        self.problem = ""
        self._files = files
        self._snapshot = SymbolSnapshot(table)
        self._snapshot_version = version

    def _repair(self, files: dict[str, FileRecord]) -> dict[str, FileRecord]:
        """Drop rows a crash left behind, and files whose rows are incomplete."""
        symbol_counts = self.store.row_counts("symbols")
        chunk_counts = self.store.row_counts("chunks")
        damaged = {p for p, n in symbol_counts.items() if p not in files or files[p].symbols != n}
        damaged |= {p for p, n in chunk_counts.items() if p not in files or files[p].chunks != n}
        damaged |= {
            path
            for path, record in files.items()
            if record.symbols != symbol_counts.get(path, 0)
            or record.chunks != chunk_counts.get(path, 0)
        }
        if damaged:
            log.warning(
                "index %s: %d files have rows from an interrupted write; they are indexed again",
                self.folder,
                len(damaged),
            )
            known = [p for p in damaged if p in files]
            empty_files = schema.empty(schema.FILES)
            self.store.commit(
                known,
                empty_files,
                schema.empty(schema.SYMBOLS),
                schema.empty(schema.CHUNKS),
                damaged,
            )
            files = {p: r for p, r in files.items() if p not in damaged}
        return files

    def _check_if_needed(self) -> None:
        """After a failed read or write, verify the store (and rebuild it if broken)."""
        if not self._needs_check:
            return
        self._needs_check = False
        log.info("index %s: checking the store after an error", self.folder)
        self._open_store(read_everything=True)

    def try_become_writer(self) -> bool:
        """Take the writer lock if its holder has gone; True when this index may write."""
        with self._write_lock:
            if self.store.writable:
                return True
            if self._closed or not self._may_write or not self._lock_file.try_acquire():
                return False
            log.info("index %s: the writer went away; this process writes now", self.folder)
            self.store.close()
            self.store = self._new_store(writable=True)
            self._open_store()
            return True

    def refresh(self) -> None:
        """Readers: follow the writer's commits (at most every READER_REFRESH_S)."""
        if self.store.writable or self._closed:
            return
        now = time.monotonic()
        if now - self._last_refresh < READER_REFRESH_S:
            return
        self._last_refresh = now
        with self._write_lock:
            if self.store.writable:
                return
            try:
                if self.problem:
                    self._open_store()
                    return
                version = self.store.table_version("symbols")
                if version != self._snapshot_version:
                    self._files = self.store.load_files()
                    self._snapshot = SymbolSnapshot(self.store.symbols_table())
                    self._snapshot_version = version
            except Exception as exc:
                log.info("index %s: reopening after %s", self.folder, exc)
                self.store.close()
                self.store = self._new_store(writable=False)
                self._open_store()

    def symbol_snapshot(self) -> SymbolSnapshot:
        self.refresh()
        return self._snapshot

    def read_store(self, read: Callable[[Store], T], default: T) -> T:
        """`read(store)`, or `default` when the store fails (the failure is recorded)."""
        self.refresh()
        try:
            return read(self.store)
        except StoreProblem:
            return default
        except Exception as exc:
            log.warning("index %s: a read failed: %s", self.folder, exc)
            self._last_error = f"search failed: {exc}"
            self._needs_check = True
            return default

    def status(self) -> dict[str, Any]:
        # list() copies in one step under the GIL; the update thread may be changing _files.
        records = list(self._files.values())
        indexed = sum(1 for r in records if not r.skipped)
        result: dict[str, Any] = {
            "root": str(self.root),
            "index_dir": str(self.folder),
            "writable": self.store.writable,
            "phase": self._phase,
            "files_indexed": indexed,
            "files_skipped": len(records) - indexed,
            "pending": self._pending,
            "errors": len(self._errors),
            "last_error": self._last_error,
            "symbols": self._snapshot.size,
            "chunks": sum(r.chunks for r in records),
        }
        if self.rebuilt_reason:
            result["rebuilt_reason"] = self.rebuilt_reason
        if self.problem:
            result["problem"] = self.problem
        if not self.store.writable:
            result["writer_pid"] = self._lock_file.owner()
        if self._last_summary is not None:
            result["last_update"] = self._last_summary.as_dict()
        return result

    def errors(self) -> dict[str, str]:
        return dict(self._errors)

    def cancel(self) -> None:
        """Stop the running update after its current batch (what is done stays)."""
        self._cancel.set()

    def close(self) -> None:
        self._closed = True
        self._cancel.set()
        acquired = self._write_lock.acquire(timeout=30)
        try:
            self._pool.shutdown()
            self.store.close()
            self._lock_file.release()
        finally:
            if acquired:
                self._write_lock.release()

    # --- updates -----------------------------------------------------------------------------

    def _relative(self, path: Path | str) -> str | None:
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = self.root / candidate
        try:
            relative = candidate.relative_to(self.root)
        except ValueError:
            try:
                relative = candidate.resolve().relative_to(self.root)
            except (ValueError, OSError):
                return None
        text = relative.as_posix()
        return None if text in ("", ".") else text

    def _begin(self) -> bool:
        """Common start of a write: the lock, and a store check when one is due."""
        if self._closed:
            return False
        if not self.store.writable and not self.try_become_writer():
            return False
        self._cancel.clear()
        self._check_if_needed()
        return True

    def update_all(self, progress: ProgressCallback | None = None) -> UpdateSummary:
        """Bring the whole workspace up to date (walk, re-index what changed, drop the gone)."""
        with self._write_lock:
            if not self._begin():
                return UpdateSummary(read_only=True)
            started = time.monotonic()
            self._phase = "scanning"
            if progress:
                progress(Progress("scanning", 0, 0))
            self.rules.forget()
            walk = self.rules.walk()
            present = {entry.path for entry in walk.files}
            removed = [path for path in self._files if path not in present]
            todo = [entry for entry in walk.files if self._stale(entry)]
            summary = self._index(todo, removed, progress, keep_parsers=False)
            summary.scanned = len(walk.files)
            summary.skipped.update(walk.skipped)
            summary.seconds = time.monotonic() - started
            self._last_summary = summary
            return summary

    def _stale(self, entry: FileEntry) -> bool:
        record = self._files.get(entry.path)
        return (
            record is None
            or record.size != entry.size
            or record.mtime_ns != entry.mtime_ns
            or entry.path in self._errors
        )

    def update_paths(
        self, paths: Iterable[Path | str], progress: ProgressCallback | None = None
    ) -> UpdateSummary:
        """Re-index these files or folders (changed, created, deleted or renamed).

        Paths are absolute or relative to the root; ones outside the root are ignored."""
        with self._write_lock:
            if not self._begin():
                return UpdateSummary(read_only=True)
            started = time.monotonic()
            relatives = {r for r in (self._relative(p) for p in paths) if r}
            if any(r.rpartition("/")[2] in IGNORE_FILES or r == ".ouzel/ignore" for r in relatives):
                log.info("index %s: ignore rules changed; rescanning", self.folder)
                return self.update_all(progress)
            todo: dict[str, FileEntry] = {}
            removed: set[str] = set()
            for relative in relatives:
                target = self.root / relative
                if target.is_dir():
                    walk = self.rules.walk(under=relative)
                    found = {entry.path: entry for entry in walk.files}
                    todo.update(found)
                    removed.update(p for p in self._under(relative) if p not in found)
                    continue
                entry = self.rules.entry_for(relative)
                if isinstance(entry, FileEntry):
                    todo[relative] = entry
                else:
                    removed.update(
                        p for p in [relative, *self._under(relative)] if p in self._files
                    )
            summary = self._index(list(todo.values()), sorted(removed), progress)
            summary.seconds = time.monotonic() - started
            self._last_summary = summary
            return summary

    def _under(self, folder: str) -> list[str]:
        prefix = folder + "/"
        return [path for path in self._files if path.startswith(prefix)]

    def remove_paths(self, paths: Iterable[Path | str]) -> UpdateSummary:
        """Drop these files (or everything under these folders) from the index."""
        with self._write_lock:
            if not self._begin():
                return UpdateSummary(read_only=True)
            removed: set[str] = set()
            for relative in (r for r in (self._relative(p) for p in paths) if r):
                removed.update(p for p in [relative, *self._under(relative)] if p in self._files)
            return self._index([], sorted(removed), None)

    def update_text(self, path: Path | str, text: str) -> UpdateSummary:
        """Index an editor buffer's text in place of the file on disk (unsaved changes)."""
        with self._write_lock:
            relative = self._relative(path)
            if relative is None or not self._begin():
                return UpdateSummary(read_only=not self.store.writable)
            if self.rules.excluded(relative):
                return UpdateSummary()
            data = text.encode("utf-8", errors="replace")
            if len(data) > self.config.max_file_bytes:
                return UpdateSummary()
            record = self._files.get(relative)
            builder = RowBuilder()
            outcome = process_data(
                relative, data, record.hash if record else "", self.config.chunk_max_bytes, builder
            )
            if outcome.unchanged:
                return UpdateSummary(unchanged=1)
            outcome.mtime_ns = BUFFER_MTIME
            symbols, chunks = builder.columns()
            batch = _Batch()
            batch.add(BatchOutcome([outcome], symbols, chunks, builder.text_bytes))
            summary = UpdateSummary()
            self._commit(batch, summary)
            return summary

    # --- the write path ----------------------------------------------------------------------

    def _index(
        self,
        todo: list[FileEntry],
        removed: list[str],
        progress: ProgressCallback | None,
        keep_parsers: bool = True,
    ) -> UpdateSummary:
        summary = UpdateSummary()
        tasks = [
            (Task(e.path, self._files[e.path].hash if e.path in self._files else ""), e.size)
            for e in todo
        ]
        total = len(tasks)
        self._pending = total
        self._phase = "indexing"
        batch = _Batch(removed=list(removed))
        done = 0
        try:
            for outcome in self._parse(tasks):
                batch.add(outcome)
                done += len(outcome.files)
                self._pending = total - done
                if progress:
                    progress(Progress("indexing", done, total))
                if (
                    batch.text_bytes >= COMMIT_TEXT_BYTES
                    or time.monotonic() - batch.started >= COMMIT_SECONDS
                ):
                    self._commit(batch, summary)
                    batch = _Batch()
                if self._cancel.is_set():
                    summary.cancelled = True
                    break
            if not batch.empty():
                self._commit(batch, summary)
            if not keep_parsers:
                self._pool.shutdown()  # free their memory before the full-text indexes build
            self._phase = "finishing"
            if progress:
                progress(Progress("finishing", done, total))
            if not summary.cancelled:  # closing: the next start folds the rows in
                self._upkeep()
        finally:
            self._pending = 0
            self._phase = "idle"
        return summary

    def _parse(self, tasks: list[tuple[Task, int]]) -> Iterable[BatchOutcome]:
        if not tasks:
            return
        root = str(self.root)
        budget, max_bytes = self.config.chunk_max_bytes, self.config.max_file_bytes
        total_bytes = sum(size for _, size in tasks)
        if len(tasks) <= IN_THREAD_FILES and total_bytes <= IN_THREAD_BYTES:
            for task, _ in tasks:  # one at a time: the GIL is free between files
                yield process_batch(root, [task], budget, max_bytes)
            return
        work = functools.partial(process_batch, root, budget=budget, max_bytes=max_bytes)

        def crashed(group: list[Task], error: BaseException) -> BatchOutcome:
            message = f"the parser crashed on this file ({error})"
            return BatchOutcome([FileOutcome(t.path, error=message) for t in group])

        in_flight = 2 * self.config.worker_count()
        yield from self._pool.run(work, _groups(tasks), in_flight, crashed)

    def _commit(self, batch: _Batch, summary: UpdateSummary) -> None:
        files = self._files
        written = [o for o in batch.outcomes if not o.error and not o.unchanged and not o.missing]
        touched = [
            o
            for o in batch.outcomes
            if o.unchanged and o.path in files and files[o.path].mtime_ns != o.mtime_ns
        ]
        gone = [o.path for o in batch.outcomes if o.missing]
        removed = [p for p in [*batch.removed, *gone] if p in files]
        written_paths = {o.path for o in written}
        replace = {o.path for o in [*written, *touched] if o.path in files} | set(removed)
        had_rows = {
            p
            for p in written_paths | set(removed)
            if p in files and (files[p].symbols or files[p].chunks)
        }
        records = {
            o.path: FileRecord(
                o.hash, o.size, o.mtime_ns, o.language, o.skipped, o.symbols, o.chunks
            )
            for o in written
        }
        for o in touched:
            records[o.path] = dataclasses.replace(files[o.path], mtime_ns=o.mtime_ns, size=o.size)
        symbols = _concat(batch.symbols, schema.SYMBOLS)
        chunks = _concat(batch.chunks, schema.CHUNKS)
        embedder = self.config.embedder
        if embedder is not None and chunks.num_rows:
            chunks, problem = with_vectors(chunks, embedder)
            if problem:
                self._last_error = problem
        if records or replace:
            try:
                self.store.commit(replace, _records_table(records), symbols, chunks, had_rows)
            except Exception as exc:
                self._needs_check = True
                self._last_error = f"writing the index failed: {exc}"
                log.error("index %s: writing a batch failed: %s", self.folder, exc)
                summary.errors += len(written)
                return
        for path in removed:
            files.pop(path, None)
            self._errors.pop(path, None)
        files.update(records)
        if had_rows or symbols.num_rows:
            self._snapshot = self._snapshot.replace(had_rows, symbols)
        for o in batch.outcomes:
            if o.error:
                self._errors[o.path] = o.error
                self._last_error = f"{o.path}: {o.error}"
            else:
                self._errors.pop(o.path, None)
        summary.indexed += sum(1 for o in written if not o.skipped)
        summary.unchanged += sum(1 for o in batch.outcomes if o.unchanged)
        summary.removed += len(removed)
        summary.errors += sum(1 for o in batch.outcomes if o.error)
        summary.symbols += symbols.num_rows
        summary.chunks += chunks.num_rows
        summary.lines += sum(o.lines for o in written)
        summary.bytes += sum(o.size for o in written)
        for o in written:
            if o.skipped:
                summary.skipped[o.skipped] += 1

    def _upkeep(self, force: bool = False) -> None:
        try:
            if self.store.upkeep(force=force):
                log.debug("index %s: compacted; full-text indexes up to date", self.folder)
        except Exception as exc:
            self._needs_check = True
            self._last_error = f"index upkeep failed: {exc}"
            log.warning("index %s: upkeep failed: %s", self.folder, exc)

    def upkeep(self, force: bool = False) -> None:
        """Compact, prune old versions and fold new rows into the full-text indexes, when
        enough has changed (or `force`). Takes seconds on a large index: idle time only."""
        with self._write_lock:
            store = self.store
            if not store.writable or self._closed:
                return
            if force or store.upkeep_due():
                self._upkeep(force=True)
