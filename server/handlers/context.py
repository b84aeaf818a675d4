"""`ouzel/context`: the repository context and the exact prompt a completion would send.

Params are `TextDocumentPositionParams`. The result: `prompt` (the exact text, or null when
no completion would be made there, with a `note` saying why) and `parts`, in prompt order,
each `{source, path, range, score, tokens, text}` plus `displayPath` (the path as the
prompt writes it), `label` (the name a definition defines) and `alsoFrom` (other sources
that proposed the same lines). `source` is one of definition, bm25, recent, vector for
repository context and prefix, suffix for the document's own window.
"""

from __future__ import annotations

from typing import Any

from lsprotocol import converters, types
from pygls.exceptions import JsonRpcInvalidParams

from ouzel.server import convert
from ouzel.server.documents import Document
from ouzel.server.features.context.model import ContextPart
from ouzel.server.features.context.service import ContextReport
from ouzel.server.session import Session

METHOD = "ouzel/context"
_converter = converters.get_converter()


async def context(session: Session, params: Any) -> dict[str, Any]:
    position = _position_params(params)
    snap = session.snapshot(position.text_document.uri)  # before any await
    doc = snap.document
    resolved = doc.offset(position.position.line, position.position.character, snap.encoding)
    report = await session.context.inspect(snap, resolved.offset, session.completion)
    result = report_json(report, doc, resolved.offset, snap.encoding)
    result["positionInRange"] = resolved.in_range
    return result


def _position_params(params: Any) -> types.TextDocumentPositionParams:
    try:
        parsed = _converter.structure(params, types.TextDocumentPositionParams)
    except Exception as exc:
        raise JsonRpcInvalidParams(
            f"{METHOD} expects {{textDocument: {{uri}}, position: {{line, character}}}}: {exc}"
        ) from exc
    if parsed.position.line < 0 or parsed.position.character < 0:
        raise JsonRpcInvalidParams(f"{METHOD}: a position cannot be negative")
    return parsed


def report_json(
    report: ContextReport, doc: Document, offset: int, encoding: convert.Encoding
) -> dict[str, Any]:
    parts = [_part_json(part) for part in report.parts]
    window = report.window
    if window is not None:
        cursor = doc.position(offset, encoding)
        begin = {"line": window.first_line, "character": 0}
        end_offset = offset + len(window.suffix)
        end_line, end_character = doc.position(end_offset, encoding)
        here = {"line": cursor[0], "character": cursor[1]}
        parts.append(_window_json("prefix", doc, begin, here, window.prefix_tokens, window.prefix))
        if window.suffix:
            there = {"line": end_line, "character": end_character}
            parts.append(
                _window_json("suffix", doc, here, there, window.suffix_tokens, window.suffix)
            )
    result = report.result
    return {
        "prompt": report.prompt,
        "template": report.template,
        "parts": parts,
        "contextTokens": result.tokens,
        "contextBudget": result.budget,
        "candidates": result.candidates,
        "timingsMs": report.timings_ms or result.timings_ms,
        "skipped": result.skipped,
        "note": report.note,
    }


def _part_json(part: ContextPart) -> dict[str, Any]:
    return {
        "source": part.source,
        "path": str(part.path) if part.path is not None else None,
        "displayPath": part.display_path,
        "range": {
            "start": {"line": part.start_line, "character": 0},
            "end": {"line": part.end_line, "character": 0},
        },
        "score": part.score,
        "tokens": part.tokens,
        "text": part.text,
        "label": part.label,
        "alsoFrom": list(part.also_from),
    }


def _window_json(
    source: str,
    doc: Document,
    start: dict[str, int],
    end: dict[str, int],
    tokens: int,
    text: str,
) -> dict[str, Any]:
    path = Session.uri_to_path(doc.uri)
    return {
        "source": source,
        "path": str(path) if path is not None else doc.uri,
        "displayPath": path.name if path is not None else doc.uri,
        "range": {"start": start, "end": end},
        "score": None,
        "tokens": tokens,
        "text": text,
        "label": "",
        "alsoFrom": [],
    }
