"""`ouzel tokens add NAME | revoke NAME | list`: the team server's per-user tokens file."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import platformdirs

from ouzel.server.cli import Command, register


def default_tokens_path() -> Path:
    return Path(platformdirs.user_config_dir("ouzel", appauthor=False)) / "tokens.json"


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", type=Path, help=f"tokens file (default: {default_tokens_path()})")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="make a token for NAME and print it once")
    add.add_argument("name")
    add.add_argument("--replace", action="store_true", help="replace NAME's existing token")
    revoke = sub.add_parser("revoke", help="remove NAME's token (open sessions are closed)")
    revoke.add_argument("name")
    listing = sub.add_parser("list", help="the names that have a token")
    for action in (add, revoke, listing):  # `--file` before or after the action
        action.add_argument("--file", type=Path, default=argparse.SUPPRESS, help="tokens file")


def _run(args: argparse.Namespace) -> int:
    from ouzel.server import tokens

    path: Path = args.file or Path(os.environ.get("OUZEL_TOKENS_FILE") or default_tokens_path())
    try:
        if args.action == "add":
            token = tokens.add_token(path, args.name, replace=args.replace)
            print(token)
            print(
                f"ouzel: added {args.name} to {path}; give them the token above (shown once)",
                file=sys.stderr,
            )
        elif args.action == "revoke":
            tokens.revoke_token(path, args.name)
            print(f"ouzel: revoked {args.name} in {path}", file=sys.stderr)
        else:
            for name, created in tokens.list_tokens(path):
                print(f"{name}\t{created}")
    except tokens.TokensFileError as exc:
        print(f"ouzel: {exc}", file=sys.stderr)
        return 2
    return 0


register(Command("tokens", "manage a team server's per-user tokens", _arguments, _run))
