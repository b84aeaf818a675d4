"""From a file's bytes to table rows: hash, checks, parse, symbols, chunks.

Runs in parser processes (`process_batch`) or, for a few small files, in the indexing
thread. Every function here is pure: it reads files and returns rows as one Python list
per column. Arrow is not imported here: it would cost each parser process 40 MB; the
indexing thread turns the columns into tables (`schema.from_columns`).
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ouzel.indexer.chunking import Chunk, chunk_plain, chunk_tree
from ouzel.indexer.languages import SPECS, grammar, language_for_path
from ouzel.indexer.symbols import Symbol, extract_symbols, name_words
from ouzel.indexer.text import LineMap, decode
from ouzel.indexer.walk import content_skip_reason


@dataclass(frozen=True)
class Task:
    """One file to (re)index; `known_hash` lets an unchanged file skip parsing."""

    path: str
    known_hash: str = ""


@dataclass
class Analysis:
    language: str
    symbols: list[Symbol]
    chunks: list[Chunk]


@dataclass
class FileOutcome:
    path: str
    hash: str = ""
    size: int = 0
    mtime_ns: int = 0
    language: str = "text"
    skipped: str = ""  # "binary", "minified", "generated", "too large"
    error: str = ""  # the file could not be read
    missing: bool = False  # the file was gone when its turn came
    unchanged: bool = False  # same hash as `known_hash`: nothing to write but the mtime
    symbols: int = 0
    chunks: int = 0
    lines: int = 0


Columns = list[list[object]]  # one list per column of schema.SYMBOLS or schema.CHUNKS


@dataclass
class BatchOutcome:
    files: list[FileOutcome] = field(default_factory=list)
    symbols: Columns = field(default_factory=list)
    chunks: Columns = field(default_factory=list)
    text_bytes: int = 0


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def analyze(data: bytes, language: str, budget: int, with_chunks: bool = True) -> Analysis:
    """Symbols and chunks of a file's bytes (must be valid UTF-8)."""
    lines = LineMap(data)
    if language not in SPECS:
        return Analysis(language, [], chunk_plain(lines, budget) if with_chunks else [])
    loaded = grammar(language)
    tree = loaded.parser.parse(data)
    symbols = extract_symbols(tree, data, lines, loaded)
    if not with_chunks:
        return Analysis(language, symbols, [])
    chunks = chunk_tree(
        tree.root_node,
        lines,
        symbols,
        loaded.spec.comment_types,
        budget,
        isolate_definitions=language == "markdown",
    )
    return Analysis(language, symbols, chunks)


class RowBuilder:
    """Collects the rows of many files, then builds one Arrow table per table."""

    def __init__(self) -> None:
        self.symbol_rows: list[tuple[object, ...]] = []
        self.chunk_rows: list[tuple[object, ...]] = []
        self.text_bytes = 0

    def add(self, path: str, analysis: Analysis) -> None:
        words = name_words
        self.symbol_rows.extend(
            (
                path,
                s.name,
                s.qualified_name,
                s.kind,
                s.language,
                s.start_line,
                s.start_col,
                s.end_line,
                s.end_col,
                s.name_start_line,
                s.name_start_col,
                s.name_end_line,
                s.name_end_col,
                s.signature,
                s.doc,
                s.parent,
                words(s.name, s.qualified_name),
            )
            for s in analysis.symbols
        )
        language = analysis.language
        self.chunk_rows.extend(
            (path, language, c.start_line, c.end_line, c.symbols, c.text) for c in analysis.chunks
        )
        self.text_bytes += sum(len(c.text) for c in analysis.chunks)

    @staticmethod
    def _columns(rows: list[tuple[object, ...]]) -> Columns:
        return [list(column) for column in zip(*rows, strict=True)]

    def columns(self) -> tuple[Columns, Columns]:
        return self._columns(self.symbol_rows), self._columns(self.chunk_rows)


def process_data(
    path: str, data: bytes, known_hash: str, budget: int, builder: RowBuilder
) -> FileOutcome:
    """Check, hash and analyze one file's bytes; rows go to `builder`."""
    outcome = FileOutcome(path, size=len(data), language=language_for_path(path))
    outcome.hash = content_hash(data)
    if known_hash and outcome.hash == known_hash:
        outcome.unchanged = True
        return outcome
    reason = content_skip_reason(data)
    if reason:
        outcome.skipped = reason
        return outcome
    outcome.lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    _, valid = decode(data)
    analysis = analyze(valid, outcome.language, budget)
    outcome.symbols = len(analysis.symbols)
    outcome.chunks = len(analysis.chunks)
    builder.add(path, analysis)
    return outcome


def process_batch(root: str, tasks: list[Task], budget: int, max_bytes: int) -> BatchOutcome:
    """Read and analyze files of one workspace (the parser processes run this)."""
    builder = RowBuilder()
    files: list[FileOutcome] = []
    base = Path(root)
    for task in tasks:
        target = base / task.path
        try:
            info = target.stat()
            if info.st_size > max_bytes:
                files.append(
                    FileOutcome(
                        task.path, size=info.st_size, mtime_ns=info.st_mtime_ns, skipped="too large"
                    )
                )
                continue
            data = target.read_bytes()
        except FileNotFoundError:
            files.append(FileOutcome(task.path, missing=True))
            continue
        except OSError as exc:
            files.append(
                FileOutcome(task.path, error=f"{type(exc).__name__}: {exc.strerror or exc}")
            )
            continue
        outcome = process_data(task.path, data, task.known_hash, budget, builder)
        outcome.mtime_ns = info.st_mtime_ns
        files.append(outcome)
    symbols, chunks = builder.columns()
    return BatchOutcome(files, symbols, chunks, builder.text_bytes)


def worker_init(parent_pid: int | None = None) -> None:
    """Parser processes yield to the editor's work, leave Ctrl-C to their parent, and end
    with it, also when it was killed (kill -9 leaves no one to stop them)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    release_stdio()
    end_with_parent(parent_pid)
    try:
        os.nice(5)
    except OSError:
        pass


PARENT_CHECK_S = 1.0


def release_stdio() -> None:
    # A spawned process inherits fds 0-2: the server's stdin/stdout are the editor's LSP
    # pipes, and an editor learns that a killed server is gone only once every holder of
    # them has closed them (Neovim's vim.system waits for the pipes). Parser processes
    # talk to the server through their own pipes and need none of the three.
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return
    for fd in (0, 1, 2):
        try:
            os.dup2(devnull, fd)
        except OSError:
            pass
    os.close(devnull)


def end_with_parent(parent_pid: int | None) -> None:
    # A watch on the parent's pid rather than prctl(PR_SET_PDEATHSIG): that signal comes
    # when the *thread* that started the process ends, and the pool starts processes from
    # whichever thread submits work.
    if parent_pid is None:
        return

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="ouzel-parent-watch", daemon=True).start()
