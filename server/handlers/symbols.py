"""`workspace/symbol`, `textDocument/documentSymbol` and `workspace/didChangeWatchedFiles`.

Symbols come from the index (workspace) or from tree-sitter on the open document's
current text (document). Their positions are lines and code point columns; they become
the client's units here, through `convert`, using the open document's text or else the
file's text on disk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.uris import from_fs_path

from ouzel.server import convert
from ouzel.server.convert import Encoding
from ouzel.server.documents import Document
from ouzel.server.features import indexing
from ouzel.server.features.indexing import FoundSymbol
from ouzel.server.handlers import ranges
from ouzel.server.session import Session

if TYPE_CHECKING:
    from ouzel.indexer.symbols import SymbolNode

log = logging.getLogger("ouzel.server.handlers.symbols")

WORKSPACE_SYMBOL_OPTIONS = types.WorkspaceSymbolOptions(resolve_provider=False)
DOCUMENT_SYMBOL_OPTIONS = types.DocumentSymbolOptions(label="ouzel")

KINDS: dict[str, types.SymbolKind] = {
    "class": types.SymbolKind.Class,
    "interface": types.SymbolKind.Interface,
    "struct": types.SymbolKind.Struct,
    "trait": types.SymbolKind.Interface,
    "enum": types.SymbolKind.Enum,
    "type": types.SymbolKind.TypeParameter,
    "function": types.SymbolKind.Function,
    "method": types.SymbolKind.Method,
    "constructor": types.SymbolKind.Constructor,
    "impl": types.SymbolKind.Object,
    "module": types.SymbolKind.Module,
    "namespace": types.SymbolKind.Namespace,
    "macro": types.SymbolKind.Function,
    "constant": types.SymbolKind.Constant,
    "field": types.SymbolKind.Field,
    "enum_member": types.SymbolKind.EnumMember,
    "variable": types.SymbolKind.Variable,
    "heading": types.SymbolKind.String,
}


def symbol_kind(kind: str) -> types.SymbolKind:
    return KINDS.get(kind, types.SymbolKind.Variable)


class _Text:
    """Text and line starts of one file, for converting its positions."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = convert.line_starts(text)

    def offset(self, line: int, column: int) -> int:
        if line >= len(self.starts):
            return len(self.text)
        end = convert.line_content_end(self.text, self.starts, line)
        return min(self.starts[max(line, 0)] + column, end)

    def range(
        self, start: tuple[int, int], end: tuple[int, int], encoding: Encoding
    ) -> types.Range:
        span = convert.Span(self.offset(*start), self.offset(*end))
        return ranges.to_lsp_range(self.text, self.starts, span, encoding)


def _read(path: Path) -> _Text | None:
    try:
        return _Text(path.read_bytes().decode("utf-8", errors="replace"))
    except OSError:
        return None


def _locate(
    found: list[FoundSymbol], open_texts: dict[str, str], encoding: Encoding
) -> list[types.WorkspaceSymbol]:
    """Symbols with ranges in the client's units (worker thread: reads files)."""
    texts: dict[Path, _Text | None] = {}
    result = []
    for item in found:
        hit, path = item.hit, item.path
        uri = from_fs_path(str(path)) or path.as_uri()
        if path not in texts:
            text = open_texts.get(uri)
            texts[path] = _Text(text) if text is not None else _read(path)
        text_of = texts[path]
        if text_of is None:
            continue  # the file is gone; the index will catch up
        name_range = text_of.range(
            (hit.name_start_line, hit.name_start_col),
            (hit.name_end_line, hit.name_end_col),
            encoding,
        )
        result.append(
            types.WorkspaceSymbol(
                name=hit.name or "?",
                kind=symbol_kind(hit.kind),
                location=types.Location(uri=uri, range=name_range),
                container_name=hit.parent or None,
            )
        )
    return result


async def workspace_symbol(
    session: Session, params: types.WorkspaceSymbolParams
) -> list[types.WorkspaceSymbol]:
    indexes = session.engine.index.indexes_for(session)
    if not indexes:
        return []
    open_texts = {doc.uri: doc.text for doc in session.documents.all()}
    encoding = session.encoding

    def run() -> list[types.WorkspaceSymbol]:
        found = indexing.find_symbols(indexes, params.query, indexing.WORKSPACE_SYMBOL_LIMIT)
        return _locate(found, open_texts, encoding)

    return await asyncio.to_thread(run)


def _document_symbols(
    nodes: list[SymbolNode], text: _Text, encoding: Encoding
) -> list[types.DocumentSymbol]:
    result = []
    for node in nodes:
        s = node.symbol
        whole = text.range((s.start_line, s.start_col), (s.end_line, s.end_col), encoding)
        name = text.range(
            (s.name_start_line, s.name_start_col), (s.name_end_line, s.name_end_col), encoding
        )
        if not _contains(whole, name):
            name = types.Range(start=whole.start, end=whole.start)
        result.append(
            types.DocumentSymbol(
                name=s.name or "?",
                kind=symbol_kind(s.kind),
                range=whole,
                selection_range=name,
                detail=s.signature or None,
                children=_document_symbols(node.children, text, encoding),
            )
        )
    return result


def _contains(outer: types.Range, inner: types.Range) -> bool:
    def key(p: types.Position) -> tuple[int, int]:
        return (p.line, p.character)

    return key(outer.start) <= key(inner.start) and key(inner.end) <= key(outer.end)


def _flat(
    symbols: Sequence[types.DocumentSymbol], uri: str, container: str | None
) -> list[types.SymbolInformation]:
    result = []
    for symbol in symbols:
        result.append(
            types.SymbolInformation(
                name=symbol.name,
                kind=symbol.kind,
                location=types.Location(uri=uri, range=symbol.range),
                container_name=container,
            )
        )
        result.extend(_flat(symbol.children or [], uri, symbol.name))
    return result


async def document_symbol(
    session: Session, params: types.DocumentSymbolParams
) -> list[types.DocumentSymbol] | list[types.SymbolInformation]:
    doc: Document = session.documents.get(params.text_document.uri)  # the snapshot
    encoding = session.encoding
    hierarchical = session.supports(
        "text_document.document_symbol.hierarchical_document_symbol_support"
    )
    path = session.uri_to_path(doc.uri)

    def run() -> list[types.DocumentSymbol]:
        nodes = indexing.outline(doc.text, doc.language_id, str(path or doc.uri))
        return _document_symbols(nodes, _Text(doc.text), encoding)

    symbols = await asyncio.to_thread(run)
    return symbols if hierarchical else _flat(symbols, doc.uri, None)


def did_change_watched_files(session: Session, params: types.DidChangeWatchedFilesParams) -> None:
    session.engine.index.files_changed(session, [c.uri for c in params.changes])


REINDEX_COMMAND = "ouzel.index"


def reindex(session: Session, arguments: list[Any]) -> dict[str, Any]:
    """`workspace/executeCommand` "ouzel.index": re-walk every workspace folder now.

    Unchanged files are skipped by content hash, so this is cheap when little changed;
    progress arrives as `$/progress` like any indexing.
    """
    schedulers = session.engine.index.schedulers_for(session)
    for scheduler in schedulers:
        scheduler.request_full()
    log.info("reindex requested for %d workspace folder(s)", len(schedulers))
    return {"folders": len(schedulers)}
