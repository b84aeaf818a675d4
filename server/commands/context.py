"""`ouzel context FILE:LINE:COL`: what a completion at that cursor would be given.

Prints the packed repository context (where each part came from, its tokens and score)
and the exact prompt; `--json` prints what the `ouzel/context` request returns.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ouzel.server.cli import Command, register

if TYPE_CHECKING:
    # The pipeline loads when the command runs, so `ouzel --help` stays fast.
    from ouzel.indexer.index import WorkspaceIndex
    from ouzel.server.documents import Document
    from ouzel.server.features.context.service import ContextReport
    from ouzel.server.settings import Settings

ANALYSIS_WAIT_S = 60.0
LANGUAGE_IDS = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".ts": "typescript",
    ".tsx": "typescriptreact",
    ".rs": "rust",
    ".go": "go",
    ".md": "markdown",
}

DESCRIPTION = (
    "show the repository context and the exact prompt a completion at FILE:LINE:COL would "
    "get. LINE and COL count from 1, as compilers print them; COL counts characters. "
    "With --json, ranges are 0-based (as in the ouzel/context request), characters in "
    "code points."
)


def parse_location(value: str) -> tuple[Path, int, int]:
    """FILE:LINE:COL (1-based) → (file, line, column)."""
    rest, sep1, column = value.rpartition(":")
    path, sep2, line = rest.rpartition(":")
    if not (sep1 and sep2 and path and line.isdigit() and column.isdigit()):
        raise argparse.ArgumentTypeError(f"expected FILE:LINE:COL (from 1), got {value!r}")
    if int(line) < 1 or int(column) < 1:
        raise argparse.ArgumentTypeError(f"LINE and COL count from 1, got {value!r}")
    return Path(path), int(line), int(column)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.add_argument(
        "location",
        metavar="FILE:LINE:COL",
        type=parse_location,
        nargs="+",
        help="the cursor; LINE and COL are 1-based (COL in characters); several cursors "
        "share one model load (--json then prints a list)",
    )
    parser.add_argument("--json", action="store_true", help="print the ouzel/context result")
    parser.add_argument(
        "--root",
        metavar="PATH",
        help="workspace folder (default: the nearest folder above FILE with .ouzel/ or .git)",
    )
    parser.add_argument("--index-dir", metavar="DIR", help="an explicit index folder")


def _offset(text: str, line: int, column: int) -> int | str:
    """Code point offset of a 1-based (line, column), or why it is not in the file."""
    from ouzel.server.convert import line_content_end, line_starts

    starts = line_starts(text)
    if line > len(starts):
        return f"line {line} is past the end of the file ({len(starts)} lines)"
    begin = starts[line - 1]
    length = line_content_end(text, starts, line - 1) - begin
    if column > length + 1:
        return f"column {column} is past the end of line {line} ({length} characters)"
    return begin + column - 1


@dataclass(frozen=True)
class Cursor:
    path: Path
    text: str
    line: int  # 1-based, as given
    column: int
    offset: int  # code points into `text`


def _run(args: argparse.Namespace) -> int:
    cursors = []
    for given, line, column in args.location:
        cursor = _cursor(given.expanduser().resolve(), line, column)
        if isinstance(cursor, str):
            print(f"ouzel: {cursor}", file=sys.stderr)
            return 2
        cursors.append(cursor)
    root = Path(args.root).resolve() if args.root else find_root(cursors[0].path)
    index_dir = Path(args.index_dir).resolve() if args.index_dir else None
    reports, notes = asyncio.run(_reports(root, cursors, index_dir))
    if args.json:
        from ouzel.server.handlers.context import report_json

        results = []
        for cursor, (report, doc) in zip(cursors, reports, strict=True):
            result = report_json(report, doc, cursor.offset, "utf-32")
            result["notes"] = notes
            results.append(result)
        shown: Any = results[0] if len(results) == 1 else results
        print(json.dumps(shown, indent=2, ensure_ascii=False))
    else:
        for cursor, (report, _) in zip(cursors, reports, strict=True):
            _print(report, cursor.path, cursor.line, cursor.column, notes)
    return 0


def _cursor(path: Path, line: int, column: int) -> Cursor | str:
    """The cursor at a 1-based (line, column) of the file, or why there is none."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    except UnicodeDecodeError:
        return f"{path} is not UTF-8 text"
    offset = _offset(text, line, column)
    if isinstance(offset, str):
        return f"{path}: {offset}"
    return Cursor(path, text, line, column, offset)


async def _reports(
    root: Path, cursors: list[Cursor], index_dir: Path | None
) -> tuple[list[tuple[ContextReport, Document]], list[str]]:
    """The server's own pipeline in a headless session built by the composition root:
    the same settings, context engine, model and prompt as a completion in an editor.
    Each cursor gets its file opened afresh, as if an editor had just opened it."""
    from ouzel.server import app  # the composition root: the server's own objects
    from ouzel.server.handlers.lifecycle import add_folder, reload_settings

    engine = app.build_engine()
    index: WorkspaceIndex | None = None
    session = app.build_session(engine, indexes=lambda: [index] if index is not None else [])
    session.bind_loop(asyncio.get_running_loop())
    try:
        add_folder(session, root.as_uri())
        for problem in reload_settings(session, announce=False):
            print(f"ouzel: {problem}", file=sys.stderr)
        notes = ["no editor session here: the only recent code is the file as just opened"]
        index, note = _open_index(root, session.settings_for(root), index_dir)
        if note:
            notes.append(note)
        reports = []
        for cursor in cursors:
            uri = cursor.path.as_uri()
            doc = session.documents.open(uri, _language_id(cursor.path), 0, cursor.text)
            snap = session.snapshot(doc)
            # Jedi's analysis is waited for: there is no next keystroke to bring it.
            await session.context.settle(snap, cursor.offset, ANALYSIS_WAIT_S)
            report = await session.context.inspect(snap, cursor.offset, session.completion)
            reports.append((report, doc))
            session.documents.close(uri)
        return reports, notes
    finally:
        app.end_session(session)
        engine.close()
        if index is not None:
            index.close()


def _open_index(
    root: Path, settings: Settings, index_dir: Path | None
) -> tuple[WorkspaceIndex | None, str]:
    """The workspace's index, read-only (an editor's server may be writing it), or why not."""
    from ouzel.indexer.index import WorkspaceIndex
    from ouzel.server.commands.workspace import cli_index_config, has_index

    config = cli_index_config(settings, index_dir=str(index_dir) if index_dir else None)
    if not has_index(root, config):
        return None, f"no index of {root}: run `ouzel index` for search results"
    index = WorkspaceIndex(root, config, writer=False)
    if index.problem:
        index.close()
        return None, f"the index of {root} cannot be read ({index.problem})"
    return index, ""


def find_root(path: Path) -> Path:
    """The workspace of `path` as every command finds it (else the file's folder)."""
    from ouzel.server.commands.workspace import find_workspace_root

    return find_workspace_root(path.parent) or path.parent


def _language_id(path: Path) -> str:
    """The LSP language id an editor would send for `path`."""
    return LANGUAGE_IDS.get(path.suffix.lower(), path.suffix.lstrip(".").lower())


def _print(report: ContextReport, path: Path, line: int, column: int, notes: list[str]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.rule import Rule
    from rich.table import Table

    console = Console(highlight=False)
    result = report.result
    console.print(
        f"[bold]{escape(str(path))}:{line}:{column}[/bold]  template {report.template}, "
        f"context {result.tokens}/{result.budget} tokens from {result.candidates} candidates, "
        f"{result.timings_ms.get('total', 0):.0f} ms"
    )
    if result.skipped:
        console.print(f"[yellow]no context: {escape(result.skipped)}[/yellow]")
    table = Table(show_edge=False)
    for column_name in ("source", "where (lines from 1)", "name", "tokens", "score"):
        table.add_column(
            column_name, justify="right" if column_name in ("tokens", "score") else "left"
        )
    for part in report.parts:
        where = (
            f"{part.display_path}:{part.start_line + 1}-{max(part.start_line + 1, part.end_line)}"
        )
        source = part.source + (f" (+{', '.join(part.also_from)})" if part.also_from else "")
        table.add_row(
            source, escape(where), escape(part.label), str(part.tokens), f"{part.score:.3f}"
        )
    window = report.window
    if window is not None:
        table.add_row(
            "prefix",
            f"{escape(path.name)}:{window.first_line + 1}-{line}",
            "",
            str(window.prefix_tokens),
            "",
        )
        if window.suffix:
            table.add_row(
                "suffix",
                f"{escape(path.name)}:{line}-{window.last_line + 1}",
                "",
                str(window.suffix_tokens),
                "",
            )
    console.print(table)
    for note in [*notes, *([report.note] if report.note else [])]:
        console.print(f"[dim]note: {escape(note)}[/dim]")
    if report.prompt is None:
        console.print("[yellow]no prompt: no completion would be made at this cursor[/yellow]")
        return
    console.print(Rule("prompt (exactly as sent)"))
    sys.stdout.write(report.prompt)
    sys.stdout.write("\n")
    sys.stdout.flush()
    console.print(Rule("cursor"))


register(Command("context", DESCRIPTION.split(". ")[0], _arguments, _run))
