"""The `ouzel` command line.

Subcommands register themselves in `COMMANDS`; each module adds its own arguments and
runs lazily, so `ouzel --help` stays fast and `ouzel serve` loads no model until needed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ouzel.inference.privacy import is_loopback_host
from ouzel.server import __version__, remote, tokens
from ouzel.server.pathmap import PathMap
from ouzel.server.remote import ConnectionLimits, RemoteConfig
from ouzel.server.transport import ReadLimits

if TYPE_CHECKING:
    from ouzel.server.settings import TeamServerSettings


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def parse_tcp_address(value: str) -> tuple[str, int]:
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {port}")
    return host.strip("[]") or "127.0.0.1", port


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stdio", action="store_true", help="speak LSP over stdin/stdout (the default)"
    )
    parser.add_argument(
        "--tcp",
        metavar="HOST:PORT",
        type=parse_tcp_address,
        help="listen for LSP clients on TCP; port 0 picks a free port. A loopback address "
        "needs nothing more; any other address needs --token-file (or $OUZEL_TOKEN) and "
        "--tls-cert/--tls-key",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        help="remote mode: clients must send this file's token (created, mode 0600, if missing); "
        "the OUZEL_TOKEN environment variable works too",
    )
    parser.add_argument(
        "--tokens-file",
        type=Path,
        help="team server: per-user tokens (`ouzel tokens add NAME`); re-read on change, so a "
        "revoked user's sessions close without a restart",
    )
    parser.add_argument(
        "--path-map",
        action="append",
        default=[],
        metavar="EDITOR=SERVER",
        help="TCP: map the editor's folder to the server's checkout in URIs both ways "
        "(e.g. /home/me/proj=/srv/proj); repeatable",
    )
    limits = parser.add_argument_group("team server limits (per connection)")
    limits.add_argument("--max-message-mb", type=float, help="default: 32")
    limits.add_argument("--max-concurrent-requests", type=int, help="default: 16")
    limits.add_argument("--idle-timeout", type=float, help="seconds; 3600")
    limits.add_argument("--header-timeout", type=float, help="seconds to send a header; 10")
    limits.add_argument("--tls-handshake-timeout", type=float, help="seconds; 10")
    limits.add_argument(
        "--max-messages-per-second",
        type=float,
        help="messages read per connection per second (burst 2x); past it reading pauses; 40",
    )
    limits.add_argument(
        "--auth-failures-per-minute",
        type=float,
        help="failed authentications allowed per peer address (burst 5); default: 5",
    )
    parser.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        type=parse_tcp_address,
        help="serve Prometheus /metrics there (a non-loopback address needs a bearer token)",
    )
    parser.add_argument("--tls-cert", type=Path, help="remote mode: TLS certificate (PEM)")
    parser.add_argument("--tls-key", type=Path, help="remote mode: TLS private key (PEM)")
    parser.add_argument("--log-file", type=Path, help="log file (default: the user state folder)")
    parser.add_argument(
        "--log-level",
        choices=["error", "warning", "info", "debug"],
        help="overrides the `log_level` setting (default: info)",
    )
    parser.add_argument(
        "--model",
        metavar="GGUF|NAME",
        help="local model file, or an installed model's name from `ouzel models list` "
        "(default: qwen2.5-coder-0.5b when installed, else the embedded gemma3-270m)",
    )


def _run_serve(args: argparse.Namespace) -> int:
    from ouzel.server import app, logs, server

    log_file = logs.configure(args.log_level or "info", args.log_file)
    overrides: dict[str, object] = {"log_level": args.log_level} if args.log_level else {}
    if args.model:
        from ouzel.inference.catalog import MODELS

        local: dict[str, object] = {"backend": "llama_cpp", "model_path": args.model}
        if args.model in MODELS:  # a name, not a file
            local.update(model=args.model, model_path=None)
        overrides["models"] = {"local": local}
    engine = app.build_engine(overrides)
    if args.tcp:
        host, port = args.tcp
        try:
            remote_config = _remote_config(args)
            server.check_tcp_host(host, remote_config)
        except ValueError as exc:
            print(f"ouzel: {exc}", file=sys.stderr)
            return 2
        if log_file:
            print(f"ouzel: logging to {log_file}", file=sys.stderr)
        return server.run_tcp(
            engine,
            host,
            port,
            ready=lambda h, p: server.announce_tcp(h, p, remote_config, args.token_file),
            remote=remote_config,
        )
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    # Anything printed by a library must not corrupt the LSP stream on stdout.
    sys.stdout = sys.stderr
    return server.run_stdio(engine, stdin, stdout)


def _remote_config(args: argparse.Namespace) -> RemoteConfig:
    token = os.environ.get(remote.TOKEN_ENV) or None
    if args.token_file:
        token, created = remote.load_or_create_token(args.token_file)
        if created:
            print(f"ouzel: wrote a new token to {args.token_file}", file=sys.stderr)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    from ouzel.server.settings import load_for_workspace

    team = load_for_workspace(None).settings.team_server
    tokens_file = args.tokens_file or (
        Path(team.tokens_file).expanduser() if team.tokens_file else None
    )
    if tokens_file:
        tokens.read_tokens_file(tokens_file)  # fail early on a bad file
    path_map = args.path_map or team.path_map
    config = RemoteConfig(
        token=token,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tokens_file=tokens_file,
        limits=_limits(args, team),
        metrics=args.metrics,
        path_map=PathMap.parse(path_map) if path_map else None,
    )
    if config.metrics and not is_loopback_host(config.metrics[0]) and not config.authenticated:
        raise ValueError("--metrics on a non-loopback address needs --token-file or --tokens-file")
    if config.tls_cert and config.tls_key:
        remote.server_ssl_context(config.tls_cert, config.tls_key)  # fail early and clearly
    return config


def _limits(args: argparse.Namespace, team: TeamServerSettings) -> ConnectionLimits:
    """Each limit from its flag, else from the user config's [team_server] (a workspace file
    never reaches these: they are "user" settings)."""

    def pick(flag: str, setting: str) -> float:
        value = getattr(args, flag)
        value = getattr(team, setting) if value is None else value
        if value <= 0:
            raise ValueError(f"--{flag.replace('_', '-')} must be positive")
        return float(value)

    return ConnectionLimits(
        read=ReadLimits(
            max_message_bytes=int(pick("max_message_mb", "max_message_mb") * 1024 * 1024),
            idle_timeout_s=pick("idle_timeout", "idle_timeout_s"),
            header_timeout_s=pick("header_timeout", "header_timeout_s"),
        ),
        max_concurrent_requests=int(pick("max_concurrent_requests", "max_concurrent_requests")),
        tls_handshake_timeout_s=pick("tls_handshake_timeout", "tls_handshake_timeout_s"),
        auth_failures_per_minute=pick("auth_failures_per_minute", "auth_failures_per_minute"),
        max_messages_per_s=pick("max_messages_per_second", "max_messages_per_second"),
    )


COMMANDS: list[Command] = [
    Command("serve", "run the language server (stdio by default)", _serve_arguments, _run_serve),
]


def register(command: Command) -> None:
    COMMANDS.append(command)


def _load_feature_commands() -> None:
    """Import the modules that add subcommands (index, search, context, ask, doctor, …)."""
    import importlib

    for module in FEATURE_COMMAND_MODULES:
        importlib.import_module(module)


# Modules whose import calls `register(...)`.
FEATURE_COMMAND_MODULES: list[str] = [
    "ouzel.server.commands.gpu",
    "ouzel.server.commands.doctor",
    "ouzel.server.commands.ask",
    "ouzel.server.commands.stats",
    "ouzel.server.commands.index",
    "ouzel.server.commands.context",
    "ouzel.server.commands.plan",
    "ouzel.server.commands.sim",
    "ouzel.server.commands.models",
    "ouzel.server.commands.tokens",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ouzel",
        description="ouzel: a self-hosted AI coding assistant that speaks LSP.",
    )
    parser.add_argument("--version", action="version", version=f"ouzel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in sorted(COMMANDS, key=lambda command: command.name):  # --help lists A-Z
        command_parser = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(command_parser)
        command_parser.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    _load_feature_commands()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    # `python -m` runs this file as `__main__`, a second copy of the module: feature commands
    # register in `ouzel.server.cli`, so run that copy's main.
    from ouzel.server.cli import main as installed_main

    sys.exit(installed_main())
