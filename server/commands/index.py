"""`ouzel index PATH` and `ouzel search QUERY`: the workspace index from the command line.

`ouzel index` brings the index of a folder up to date with a progress bar and prints a
summary; when a running ouzel server is the index's writer, it waits for it a little,
then shows the state that server keeps. `ouzel search` reads the index (never writes it):
symbols by fuzzy name, chunks by full-text search. Human output counts lines from 1 like
compilers do; `--json` keeps the API's 0-based lines.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from ouzel.server.cli import Command, register
from ouzel.server.commands.workspace import (
    cli_index_config,
    find_index_root,
    find_workspace_root,
    load_settings,
)

MAX_ERRORS_SHOWN = 10


def _config(root: Path, args: argparse.Namespace) -> Any:
    """The index configuration for `root`: its settings, then the command line."""
    return cli_index_config(
        load_settings(root), args.location, args.index_dir, getattr(args, "workers", None)
    )


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--location",
        choices=["workspace", "cache"],
        help="where the index lives (default: the `index.location` setting)",
    )
    parser.add_argument("--index-dir", metavar="DIR", help="an explicit index folder")


def _index_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", default=".", help="workspace folder (default: .)")
    _common(parser)
    parser.add_argument("--workers", type=int, help="parser processes (default: one per core)")
    parser.add_argument(
        "--wait",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds to wait when another process writes the index (default: 10)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def _size_on_disk(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _run_index(args: argparse.Namespace) -> int:
    from ouzel.indexer.index import WorkspaceIndex
    from ouzel.server.features.indexing import too_broad

    root = Path(args.path).resolve()
    if not root.is_dir():
        print(f"ouzel: {root} is not a folder", file=sys.stderr)
        return 2
    reason = too_broad(root)
    if reason:
        print(f"ouzel: {reason}: {root}", file=sys.stderr)
        return 2
    config = _config(root, args)
    index = WorkspaceIndex(root, config)
    try:
        if not index.writable:
            owner = index.status().get("writer_pid")
            print(
                f"ouzel: process {owner} is writing this index; waiting up to {args.wait:g} s",
                file=sys.stderr,
            )
            deadline = time.monotonic() + args.wait
            while not index.try_become_writer() and time.monotonic() < deadline:
                time.sleep(0.2)
        if not index.writable:
            print(
                "ouzel: that process (an ouzel server) keeps the index up to date; "
                "this is its current state",
                file=sys.stderr,
            )
            return _print_state(index.status(), None, args.json, {})
        summary = index.update_all() if args.json else _with_progress_bar(index)
        return _print_state(index.status(), summary, args.json, index.errors())
    finally:
        index.close()


def _with_progress_bar(index: Any) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("scanning", total=None)

        def report(progress: Any) -> None:
            total = progress.total or None
            bar.update(task, description=progress.phase, completed=progress.done, total=total)

        return index.update_all(report)


def _print_state(
    status: dict[str, Any], summary: Any, as_json: bool, errors: dict[str, str]
) -> int:
    folder = Path(status["index_dir"])
    size = _size_on_disk(folder) if folder.exists() else 0
    if as_json:
        data = {"status": status, "index_bytes": size, "errors": errors}
        if summary is not None:
            data["summary"] = summary.as_dict()
        print(json.dumps(data, indent=2))
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"ouzel index of {status['root']}", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    if summary is not None:
        rate = summary.lines / summary.seconds if summary.seconds else 0.0
        table.add_row("files found", str(summary.scanned))
        table.add_row("indexed now", str(summary.indexed))
        table.add_row("unchanged", str(summary.unchanged))
        table.add_row("removed", str(summary.removed))
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(summary.skipped.items()))
        table.add_row("skipped", skipped or "0")
        table.add_row("errors", str(summary.errors))
        table.add_row("lines indexed now", f"{summary.lines:,}")
        table.add_row("time", f"{summary.seconds:.2f} s")
        if summary.lines:
            table.add_row("speed", f"{rate:,.0f} lines/s")
    table.add_row("files in the index", str(status["files_indexed"]))
    table.add_row("symbols", f"{status['symbols']:,}")
    table.add_row("chunks", f"{status['chunks']:,}")
    if status.get("rebuilt_reason"):
        table.add_row("rebuilt because", str(status["rebuilt_reason"]))
    if status.get("last_error"):
        table.add_row("last error", str(status["last_error"]))
    table.add_row("index folder", str(folder))
    table.add_row("size on disk", f"{size / 1e6:.1f} MB")
    console = Console()
    console.print(table)
    for path, problem in sorted(errors.items())[:MAX_ERRORS_SHOWN]:
        console.print(f"[red]error[/red] {escape(path)}: {escape(problem)}", highlight=False)
    if len(errors) > MAX_ERRORS_SHOWN:
        console.print(f"… and {len(errors) - MAX_ERRORS_SHOWN} more files with errors")
    return 0


# --- ouzel search --------------------------------------------------------------------------


def _search_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", help="a name (fuzzy: `gUN` finds getUserName) or words")
    parser.add_argument(
        "--kind",
        choices=["symbol", "chunk", "all"],
        default="all",
        help="search symbols, chunks, or both (default)",
    )
    parser.add_argument("--limit", type=int, default=10, help="results of each kind (default 10)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--root",
        metavar="PATH",
        help="workspace folder (default: the nearest folder above . with an index)",
    )
    _common(parser)


def _search_root(start: Path, args: argparse.Namespace) -> Path:
    """`--root`, else the nearest folder above `start` with an index (else `start`).

    Settings are read once, for the workspace `start` is in (they say where indexes live).
    """
    if args.root:
        return Path(args.root).resolve()
    config = _config(find_workspace_root(start) or start, args)
    return find_index_root(start, config) or start


def _run_search(args: argparse.Namespace) -> int:
    from ouzel.indexer.index import WorkspaceIndex
    from ouzel.indexer.search import search_chunks, search_symbols

    root = _search_root(Path.cwd().resolve(), args)
    index = WorkspaceIndex(root, _config(root, args), writer=False)
    try:
        if index.problem:
            print(
                f"ouzel: no usable index for {root} ({index.problem}); "
                f"run `ouzel index {root}` first",
                file=sys.stderr,
            )
            return 1
        limit = max(1, args.limit)
        symbols = search_symbols(index, args.query, limit) if args.kind != "chunk" else []
        chunks = search_chunks(index, args.query, limit) if args.kind != "symbol" else []
    finally:
        index.close()
    if args.json:
        print(
            json.dumps(
                {
                    "root": str(root),
                    "symbols": [dataclasses.asdict(h) for h in symbols],
                    "chunks": [dataclasses.asdict(h) for h in chunks],
                },
                indent=2,
            )
        )
        return 0
    _print_hits(symbols, chunks, args.kind)
    return 0 if symbols or chunks else 1


def _print_hits(symbols: list[Any], chunks: list[Any], kind: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)
    if kind != "chunk":
        console.print(f"[bold]symbols[/bold] ({len(symbols)})")
        for hit in symbols:
            where = f"{hit.path}:{hit.name_start_line + 1}:{hit.name_start_col + 1}"
            console.print(
                f"  {hit.kind:<11} [bold]{escape(hit.qualified_name)}[/bold]  {escape(where)}"
            )
            if hit.signature:
                console.print(f"              [dim]{escape(hit.signature)}[/dim]")
    if kind != "symbol":
        console.print(f"[bold]chunks[/bold] ({len(chunks)})")
        for hit in chunks:
            where = hit.shown_lines()
            console.print(f"  [bold]{escape(where)}[/bold]  score {hit.score:.2f}")
            for line in hit.text.splitlines()[:3]:
                console.print(f"      [dim]{escape(line[:120])}[/dim]")


register(
    Command(
        "index", "index a workspace folder (progress bar and summary)", _index_arguments, _run_index
    )
)
register(
    Command(
        "search", "search the workspace index (symbols and chunks)", _search_arguments, _run_search
    )
)
