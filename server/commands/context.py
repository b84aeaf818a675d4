"""`ouzel context FILE:LINE:COL`: what a completion at that cursor would be given.

Prints the packed repository context (where each part came from, its tokens and score)
and the exact prompt; `--json` prints what the `ouzel/context` request returns.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ouzel.server.cli import Command, register

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
        help="the cursor; LINE and COL are 1-based (COL in characters)",
    )
    parser.add_argument("--json", action="store_true", help="print the ouzel/context result")
    parser.add_argument(
        "--root",
        metavar="PATH",
        help="workspace folder (default: the nearest folder above FILE with .git, .ouzel, "
        "pyproject.toml, …)",
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


def _run(args: argparse.Namespace) -> int:
    from ouzel.server.features.context.standalone import Standalone, find_root
    from ouzel.server.settings import load_for_workspace

    path, line, column = args.location
    path = path.expanduser().resolve()
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
    except OSError as exc:
        print(f"ouzel: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except UnicodeDecodeError:
        print(f"ouzel: {path} is not UTF-8 text", file=sys.stderr)
        return 2
    offset = _offset(text, line, column)
    if isinstance(offset, str):
        print(f"ouzel: {path}: {offset}", file=sys.stderr)
        return 2
    root = Path(args.root).resolve() if args.root else find_root(path)
    loaded = load_for_workspace(root)
    for problem in loaded.problems:
        print(f"ouzel: {problem}", file=sys.stderr)
    index_dir = Path(args.index_dir).resolve() if args.index_dir else None
    standalone = Standalone(root, loaded.settings, index_dir)
    report, notes = standalone.report(path, text, offset)
    if args.json:
        print(json.dumps(_json(report, path, text, offset, notes), indent=2, ensure_ascii=False))
    else:
        _print(report, path, line, column, notes)
    return 0


def _json(report: Any, path: Path, text: str, offset: int, notes: list[str]) -> dict[str, Any]:
    from ouzel.server.documents import Document
    from ouzel.server.handlers.context import report_json

    doc = Document.create(path.as_uri(), "", 0, text)
    result = report_json(report, doc, offset, "utf-32")
    result["notes"] = notes
    return result


def _print(report: Any, path: Path, line: int, column: int, notes: list[str]) -> None:
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
