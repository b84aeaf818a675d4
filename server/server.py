"""The language server: the routing table and the stdio / TCP entry points.

`ROUTES` lists every method ouzel answers, with the plain function behind it. Each handler
takes `(session, params)`; `create_server` binds them to one connection's session.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cattrs import Converter
from lsprotocol import converters, types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import JsonRPCNotification, JsonRPCRequestMessage, JsonRPCResponseMessage

from ouzel.server import __version__, app, logs
from ouzel.server.app import Engine
from ouzel.server.client import LspClient
from ouzel.server.documents import UnknownDocumentError
from ouzel.server.handlers import (
    agent,
    chat,
    code_actions,
    completion,
    context,
    lifecycle,
    status,
    symbols,
    text_sync,
    workspace,
)
from ouzel.server.protocol import OuzelProtocol
from ouzel.server.remote import RemoteConfig, check_listen_policy, server_ssl_context
from ouzel.server.session import Session
from ouzel.server.team import TeamServer
from ouzel.server.transport import StdoutWriter, start_stdin_reader

log = logging.getLogger("ouzel.server")


@dataclass(frozen=True)
class Route:
    method: str
    handler: Callable[..., Any]
    options: Any = None
    # A `workspace/executeCommand` command named `method`; the handler gets
    # (session, arguments list).
    command: bool = False


def routes() -> list[Route]:
    """Every LSP method ouzel answers. Feature areas append theirs in `feature_routes`."""
    table = [
        Route(types.INITIALIZE, lifecycle.on_initialize),
        Route(types.INITIALIZED, lifecycle.on_initialized),
        Route(types.SHUTDOWN, lifecycle.on_shutdown),
        Route(types.TEXT_DOCUMENT_DID_OPEN, text_sync.did_open),
        Route(types.TEXT_DOCUMENT_DID_CHANGE, text_sync.did_change),
        Route(types.TEXT_DOCUMENT_DID_CLOSE, text_sync.did_close),
        Route(
            types.TEXT_DOCUMENT_DID_SAVE,
            text_sync.did_save,
            types.SaveOptions(include_text=False),
        ),
        Route(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS, workspace.did_change_workspace_folders),
        Route(types.WORKSPACE_DID_CHANGE_CONFIGURATION, workspace.did_change_configuration),
        Route("ouzel/status", status.status),
    ]
    return table + feature_routes()


def feature_routes() -> list[Route]:
    """Routes of the feature areas (completion, index, context, chat)."""
    return [
        Route(
            types.TEXT_DOCUMENT_INLINE_COMPLETION,
            completion.inline_completion,
            completion.INLINE_OPTIONS,
        ),
        Route(
            types.TEXT_DOCUMENT_COMPLETION,
            completion.completion_popup,
            completion.COMPLETION_OPTIONS,
        ),
        Route(completion.DID_SHOW, completion.did_show),
        Route(completion.DID_PARTIALLY_ACCEPT, completion.did_partially_accept),
        Route(completion.CURSOR_REST, completion.cursor_rest),
        Route(completion.ACCEPT_COMMAND, completion.accepted, command=True),
        Route(types.WORKSPACE_SYMBOL, symbols.workspace_symbol, symbols.WORKSPACE_SYMBOL_OPTIONS),
        Route(
            types.TEXT_DOCUMENT_DOCUMENT_SYMBOL,
            symbols.document_symbol,
            symbols.DOCUMENT_SYMBOL_OPTIONS,
        ),
        Route(types.WORKSPACE_DID_CHANGE_WATCHED_FILES, symbols.did_change_watched_files),
        Route(symbols.REINDEX_COMMAND, symbols.reindex, command=True),
        Route(context.METHOD, context.context),
        *chat_routes(),
    ]


def chat_routes() -> list[Route]:
    """AI code actions and chat (docs/CHAT.md), the agent (docs/AGENT.md)."""
    return [
        Route(types.TEXT_DOCUMENT_CODE_ACTION, code_actions.code_action, code_actions.OPTIONS),
        Route(types.CODE_ACTION_RESOLVE, code_actions.resolve),
        Route(code_actions.RUN_COMMAND, code_actions.run, command=True),
        Route(code_actions.APPLY_BLOCK_COMMAND, code_actions.apply_code_block, command=True),
        Route(chat.CHAT, chat.chat),
        Route(chat.CHAT_COMMAND, chat.chat_command, command=True),
        Route(chat.LIST, chat.chat_list),
        Route(chat.LOAD, chat.chat_load),
        Route(chat.SEARCH, chat.chat_search),
        Route(chat.DELETE, chat.chat_delete),
        Route(agent.AGENT_COMMAND, agent.agent_command, command=True),
        Route(agent.UNDO_COMMAND, agent.undo_command, command=True),
    ]


def plain_json_converter() -> Converter:
    """lsprotocol's converter, but custom methods keep their params as plain JSON (dicts).

    pygls' default turns them into namedtuples, which no validation library understands.
    """
    converter = converters.get_converter()

    def keep_params(obj: dict[str, Any], cls: type) -> Any:
        return cls(**obj)

    for message_type in (JsonRPCRequestMessage, JsonRPCNotification, JsonRPCResponseMessage):
        converter.register_structure_hook(message_type, keep_params)
    return converter


class OuzelServer(LanguageServer):
    def __init__(self, engine: Engine) -> None:
        super().__init__(
            name="ouzel",
            version=__version__,
            protocol_cls=OuzelProtocol,
            converter_factory=plain_json_converter,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
        )
        client = LspClient(self)
        self.session = app.build_session(engine, client, self)
        client.session = self.session

    @property
    def ouzel_protocol(self) -> OuzelProtocol:
        assert isinstance(self.protocol, OuzelProtocol)
        return self.protocol

    def report_server_error(self, error: Exception, source: Any) -> None:
        # Request errors already went back as error responses; notification errors are
        # logged with their traceback. Neither is worth a pop-up in the editor.
        log.error("%s: %s", getattr(source, "__name__", source), error, exc_info=error)


def _bind(session: Session, handler: Callable[..., Any]) -> Callable[..., Any]:
    """Give `handler(session, params)` the one-argument shape pygls calls."""
    if inspect.iscoroutinefunction(handler):

        async def call_async(params: Any) -> Any:
            try:
                return await handler(session, params)
            except UnknownDocumentError as exc:
                raise JsonRpcInvalidParams(str(exc)) from exc

        call_async.__name__ = handler.__name__
        return call_async

    def call(params: Any) -> Any:
        try:
            return handler(session, params)
        except UnknownDocumentError as exc:
            raise JsonRpcInvalidParams(str(exc)) from exc

    # No functools.wraps: pygls inspects the signature to decide whether to pass itself.
    call.__name__ = handler.__name__
    return call


def _bind_command(session: Session, handler: Callable[..., Any]) -> Callable[..., Any]:
    """Give `handler(session, arguments)` the shape pygls calls commands with."""
    if inspect.iscoroutinefunction(handler):

        async def call_async(*arguments: Any) -> Any:
            try:
                return await handler(session, list(arguments))
            except UnknownDocumentError as exc:
                raise JsonRpcInvalidParams(str(exc)) from exc

        call_async.__name__ = handler.__name__
        return call_async

    def call(*arguments: Any) -> Any:
        return handler(session, list(arguments))

    call.__name__ = handler.__name__
    return call


def create_server(engine: Engine) -> OuzelServer:
    server = OuzelServer(engine)
    for route in routes():
        if route.command:
            server.command(route.method)(_bind_command(server.session, route.handler))
        else:
            server.feature(route.method, route.options)(_bind(server.session, route.handler))
    return server


def _attach_client_log(server: OuzelServer) -> logs.ClientLogHandler:
    handler = logs.ClientLogHandler(server.session.client.log)
    logging.getLogger("ouzel").addHandler(handler)
    return handler


async def serve_connection(
    server: OuzelServer, receive: Callable[[], Any], writer: Any, token: str | None = None
) -> int:
    """Feed message bodies from `receive()` to the server until exit or end of stream."""
    loop = asyncio.get_running_loop()
    server.session.bind_loop(loop)
    protocol = server.ouzel_protocol
    protocol.set_writer(writer)
    exited: asyncio.Future[int] = loop.create_future()

    def on_exit(code: int) -> None:
        if not exited.done():
            exited.set_result(code)

    protocol.on_exit = on_exit
    protocol.required_token = token
    protocol.on_auth_failure = lambda: on_exit(1)
    client_log = _attach_client_log(server)
    try:
        while not exited.done():
            next_body = asyncio.ensure_future(receive())
            await asyncio.wait({next_body, exited}, return_when=asyncio.FIRST_COMPLETED)
            if not next_body.done():
                next_body.cancel()
                break
            body = next_body.result()
            if body is None:
                log.info("the client closed the connection")
                break
            try:
                protocol.handle_body(body)
            except JsonRpcException as exc:
                log.warning("message rejected: %s", exc)
            except Exception:
                log.exception("unexpected failure handling a message")
        code = exited.result() if exited.done() else (0 if protocol._shutdown else 1)
    finally:
        logging.getLogger("ouzel").removeHandler(client_log)
        app.end_session(server.session)
    return code


def run_stdio(engine: Engine, stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Serve one client over stdin/stdout; returns the process exit code."""

    async def main() -> int:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        start_stdin_reader(stdin, loop, queue.put_nowait)
        server = create_server(engine)
        writer = StdoutWriter(
            stdout, on_closed=lambda: loop.call_soon_threadsafe(queue.put_nowait, None)
        )
        return await serve_connection(server, queue.get, writer)

    try:
        return asyncio.run(main())
    finally:
        engine.close()


def check_tcp_host(host: str, remote: RemoteConfig | None = None) -> None:
    """Refuse addresses that would expose the server without a token and TLS."""
    check_listen_policy(host, remote or RemoteConfig())


def run_tcp(
    engine: Engine,
    host: str,
    port: int,
    ready: Callable[[str, int], None] | None = None,
    remote: RemoteConfig | None = None,
) -> int:
    """Serve clients over TCP until interrupted; each connection gets its own session."""
    remote = remote or RemoteConfig()
    check_tcp_host(host, remote)
    tls = (
        server_ssl_context(remote.tls_cert, remote.tls_key)
        if remote.tls_cert and remote.tls_key
        else None
    )

    team = TeamServer(remote)  # identities, limits, metrics: server/team.py

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await team.handle(reader, writer, create_server(engine), serve_connection)

    async def main() -> int:
        handshake_s = remote.limits.tls_handshake_timeout_s if tls else None
        listener = await asyncio.start_server(
            handle, host, port, ssl=tls, ssl_handshake_timeout=handshake_s
        )
        async with listener, team.running(engine):
            bound = listener.sockets[0].getsockname()
            if ready is not None:
                ready(bound[0], bound[1])
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        return 0

    try:
        return asyncio.run(main())
    finally:
        engine.close()


def announce_tcp(
    host: str, port: int, remote: RemoteConfig | None = None, token_file: Path | None = None
) -> None:
    """How to connect each client, in the options each client really has."""
    remote = remote or RemoteConfig()
    scheme = "TLS" if remote.tls else "TCP"
    auth = "token required" if remote.token else "no token"
    neovim = f"host = '{host}', port = {port}"
    vscode = (
        f'"ouzel.server.mode": "tcp", "ouzel.server.host": "{host}", "ouzel.server.port": {port}'
    )
    if remote.token:
        where = str(token_file) if token_file else "/path/to/token"
        neovim += f", token_file = '{where}'"
        vscode += f', "ouzel.server.tokenFile": "{where}"'
    if remote.tls:
        neovim += ", tls = true"
        vscode += ', "ouzel.server.tls": true'
    hints = ""
    if remote.token:
        hints += "  Instead of a token file, both clients read the token from $OUZEL_TOKEN.\n"
    if remote.tls:
        hints += (
            "  A self-signed certificate: add its CA (Neovim: tls_ca = '/path/to/ca.pem'; "
            'VS Code: "ouzel.server.tlsCa").\n'
        )
    print(
        f"ouzel {__version__} listening on {host}:{port} (LSP over {scheme}, {auth})\n"
        f"  Neovim:  vim.g.ouzel = {{ {neovim} }} then vim.lsp.enable('ouzel')\n"
        f"  VS Code: {vscode}\n"
        f"{hints}"
        "  Stop with Ctrl-C.",
        file=sys.stderr,
        flush=True,
    )
