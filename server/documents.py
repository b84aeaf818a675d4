"""Open documents: text, version and language, updated in order by text sync.

Text is an immutable `str`, so a `Document` taken by a request handler is a snapshot: later
edits build a new `Document` and never change the one a handler holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from ouzel.server import convert
from ouzel.server.convert import Encoding, Span


def file_path(uri: str) -> Path | None:
    """The file a `file:` URI names; None for untitled buffers and other schemes.

    The same answer as pygls' `to_fs_path` (a test compares them), without importing pygls,
    so the LSP-free features can turn a document's URI into its path.
    """
    if not uri.startswith("file:"):
        return None
    parts = urlsplit(uri)
    path = url2pathname(parts.path)  # unquotes; on Windows also "/C:/x" → "C:\\x"
    if parts.netloc and parts.netloc != "localhost":
        path = f"//{parts.netloc}{path}"  # a UNC share
    return Path(path) if path else None


@dataclass(frozen=True)
class Document:
    uri: str
    language_id: str
    version: int
    text: str
    starts: list[int] = field(repr=False, compare=False)

    @staticmethod
    def create(uri: str, language_id: str, version: int, text: str) -> Document:
        return Document(uri, language_id, version, text, convert.line_starts(text))

    def offset(self, line: int, character: int, encoding: Encoding) -> convert.ResolvedOffset:
        return convert.offset_at(self.text, self.starts, line, character, encoding)

    def position(self, offset: int, encoding: Encoding) -> tuple[int, int]:
        return convert.position_at(self.text, self.starts, offset, encoding)

    def line_count(self) -> int:
        return len(self.starts)

    def line_text(self, line: int) -> str:
        begin = self.starts[line]
        return self.text[begin : convert.line_content_end(self.text, self.starts, line)]

    def with_edit(self, span: Span | None, new_text: str, version: int) -> Document:
        """The document after replacing `span` (None: the whole text) with `new_text`."""
        text = (
            new_text if span is None else self.text[: span.start] + new_text + self.text[span.end :]
        )
        return Document.create(self.uri, self.language_id, version, text)


@dataclass(frozen=True)
class TextChange:
    """One content change in plain terms: a range in LSP units, or None for full text."""

    range: tuple[int, int, int, int] | None  # start line, start char, end line, end char
    text: str


class UnknownDocumentError(KeyError):
    """A request named a document that is not open."""

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.uri = uri

    def __str__(self) -> str:
        return f"document is not open: {self.uri}"


# listener(kind, document, previous): kind is "open", "change" or "close"; on "close"
# `document` is the last version and `previous` is None.
ChangeListener = Callable[[str, Document, Document | None], None]


class DocumentStore:
    """The open documents of one session."""

    def __init__(self) -> None:
        self._docs: dict[str, Document] = {}
        self._listeners: list[ChangeListener] = []

    def on_change(self, listener: ChangeListener) -> None:
        """Call `listener` after every open, change and close, in order."""
        self._listeners.append(listener)

    def open(self, uri: str, language_id: str, version: int, text: str) -> Document:
        doc = Document.create(uri, language_id, version, text)
        old = self._docs.get(uri)
        self._docs[uri] = doc
        self._notify("open", doc, old)
        return doc

    def change(
        self, uri: str, version: int, changes: Iterable[TextChange], encoding: Encoding
    ) -> Document:
        doc = self.get(uri)
        old = doc
        for change in changes:
            span = None
            if change.range is not None:
                start_line, start_char, end_line, end_char = change.range
                start = doc.offset(start_line, start_char, encoding).offset
                end = doc.offset(end_line, end_char, encoding).offset
                span = Span(min(start, end), max(start, end))
            doc = doc.with_edit(span, change.text, version)
        self._docs[uri] = doc
        self._notify("change", doc, old)
        return doc

    def close(self, uri: str) -> Document | None:
        doc = self._docs.pop(uri, None)
        if doc is not None:
            self._notify("close", doc, None)
        return doc

    def get(self, uri: str) -> Document:
        doc = self._docs.get(uri)
        if doc is None:
            raise UnknownDocumentError(uri)
        return doc

    def find(self, uri: str) -> Document | None:
        return self._docs.get(uri)

    def all(self) -> list[Document]:
        return list(self._docs.values())

    def _notify(self, kind: str, doc: Document, previous: Document | None) -> None:
        for listener in self._listeners:
            listener(kind, doc, previous)
