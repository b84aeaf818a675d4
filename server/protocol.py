"""JSON-RPC framing and the LSP lifecycle, stricter than pygls' defaults.

pygls parses a message inside `json.loads(object_hook=...)`, so invalid JSON, a message
that is no JSON-RPC, or params of the wrong shape are only logged and the client waits
forever. Here every received body goes through `handle_body`, which answers each of these
with the right JSON-RPC error, and the lifecycle rules of the LSP specification hold:
ServerNotInitialized before `initialize`, InvalidRequest after `shutdown`, exit code 0 only
after `shutdown`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import attrs
from lsprotocol import types
from pygls.capabilities import ServerCapabilitiesBuilder
from pygls.exceptions import JsonRpcException
from pygls.protocol.language_server import LanguageServerProtocol, lsp_method
from pygls.uris import from_fs_path
from pygls.workspace import Workspace

from ouzel.server.logs import LSP_CONTEXT
from ouzel.server.remote import (
    AUTH_FAILED,
    REQUEST_FAILED,
    SINGLE_TOKEN_USER,
    AuthResult,
    token_matches,
)

if TYPE_CHECKING:
    from pygls.protocol.json_rpc import MsgId

log = logging.getLogger("ouzel.server.protocol")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
SERVER_NOT_INITIALIZED = -32002
REQUEST_CANCELLED = -32800

# (method, seconds, outcome "ok" | "error" | "cancelled" | "refused") for every request.
RequestObserver = Callable[[str, float, str], None]


def choose_position_encoding(capabilities: types.ClientCapabilities) -> str:
    """UTF-8 when the client offers it (no conversion work), else UTF-16 (the default)."""
    general = capabilities.general
    offered = (general.position_encodings if general else None) or []
    if types.PositionEncodingKind.Utf8 in offered:
        return types.PositionEncodingKind.Utf8
    return types.PositionEncodingKind.Utf16


# The id of the request being handled (contextvars reach the handler's asyncio task).
REQUEST_ID: contextvars.ContextVar[MsgId | None] = contextvars.ContextVar(
    "ouzel_request_id", default=None
)


class OuzelProtocol(LanguageServerProtocol):
    """One LSP connection's JSON-RPC state."""

    def __init__(self, server: Any, converter: Any) -> None:
        super().__init__(server, converter)
        self.initialized = False
        self.exit_code: int | None = None
        self.on_exit: Callable[[int], None] = lambda code: None
        # Remote mode: `initialize` must carry this token (see server/remote.py).
        self.required_token: str | None = None
        self.on_auth_failure: Callable[[], None] = lambda: None
        # Team server (server/team.py): identifies the user of an offered token; set, it
        # replaces `required_token`. `user` is who this connection belongs to.
        self.authenticate: Callable[[object], AuthResult] | None = None
        self.on_authenticated: Callable[[str], None] = lambda user: None
        self.user: str | None = None
        self.max_concurrent_requests: int | None = None
        self.on_request_done: RequestObserver = lambda method, seconds, outcome: None
        self._in_flight: dict[Any, tuple[str, float]] = {}
        self.position_encoding: str = types.PositionEncodingKind.Utf16
        # `$/cancelRequest` listeners by request id: pygls cannot cancel the task behind a
        # `workspace/executeCommand` (it runs under another id), so long commands register.
        self.cancel_listeners: dict[MsgId, Callable[[], None]] = {}

    # --- receiving -----------------------------------------------------------------------

    def handle_body(self, body: bytes) -> None:
        """Handle one framed message body, answering malformed ones with an error."""
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            log.warning("received invalid JSON: %s", exc)
            self.send_error(None, PARSE_ERROR, f"Parse error: {exc}")
            return
        problem = _envelope_problem(data)
        if problem is not None:
            msg_id = data.get("id") if isinstance(data, dict) else None
            if not _valid_id(msg_id):
                msg_id = None
            log.warning("received an invalid JSON-RPC message: %s", problem)
            self.send_error(msg_id, INVALID_REQUEST, f"Invalid request: {problem}")
            return
        if "id" in data and _is_notification_method(data.get("method")):
            self.send_error(
                data["id"], INVALID_REQUEST, f"{data['method']} is a notification, not a request"
            )
            return
        if not self._passes_lifecycle(data):
            return
        if "method" in data:
            data.setdefault("params", None)
        try:
            message = self.structure_message(data)
        except Exception as exc:
            self._answer_bad_params(data, exc)
            return
        self.handle_message(message)

    def _passes_lifecycle(self, data: dict[str, Any]) -> bool:
        method = data.get("method")
        if method is None:  # a response to one of our requests
            return True
        is_request = "id" in data
        if method == types.EXIT:
            return True
        if self._shutdown:
            if is_request:
                self.send_error(data["id"], INVALID_REQUEST, "The server is shut down")
            return False
        if method == types.INITIALIZE and is_request and not self._authenticated(data):
            return False
        if not self.initialized and method != types.INITIALIZE:
            if is_request:
                self.send_error(
                    data["id"], SERVER_NOT_INITIALIZED, "The server is not initialized yet"
                )
            return False
        if self.initialized and method == types.INITIALIZE and is_request:
            self.send_error(data["id"], INVALID_REQUEST, "The server is already initialized")
            return False
        return True

    def _authenticated(self, data: dict[str, Any]) -> bool:
        if self.initialized or (self.required_token is None and self.authenticate is None):
            return True
        params = data.get("params")
        options = params.get("initializationOptions") if isinstance(params, dict) else None
        offered = options.get("authToken") if isinstance(options, dict) else None
        if self.authenticate is not None:
            result = self.authenticate(offered)
        elif token_matches(self.required_token or "", offered):
            result = AuthResult(user=SINGLE_TOKEN_USER)
        else:
            result = AuthResult(user=None, message="wrong token" if offered else "no token")
        if result.user is not None:
            self.user = result.user
            self.on_authenticated(result.user)
            return True
        log.warning("refused a client: %s", result.message)
        detail = (
            f"too many failed attempts, retry after {result.retry_after_s:.0f} s"
            if result.retry_after_s
            else "send the server's token as initializationOptions.authToken"
        )
        extra = {"retryAfter": round(result.retry_after_s)} if result.retry_after_s else None
        self.send_error(data["id"], AUTH_FAILED, f"Authentication failed: {detail}", extra)
        self.on_auth_failure()
        return False

    def _answer_bad_params(self, data: dict[str, Any], exc: Exception) -> None:
        method = data.get("method", "?")
        cause = exc.__cause__ or exc
        detail = _short_error(cause)
        if "id" in data and "method" in data:
            log.warning("invalid params for %s: %s", method, detail)
            self.send_error(data["id"], INVALID_PARAMS, f"Invalid params for {method}: {detail}")
        else:
            log.warning("ignored a malformed %s message: %s", method, detail)

    def _handle_request(self, msg_id: MsgId, method_name: str, params: Any) -> None:
        LSP_CONTEXT.set(f"{method_name}#{msg_id}")
        REQUEST_ID.set(msg_id)  # inherited by the handler's task
        limit = self.max_concurrent_requests
        if limit is not None and len(self._in_flight) >= limit:
            log.warning("refused %s: %d requests already running", method_name, limit)
            self.on_request_done(method_name, 0.0, "refused")
            self.send_error(
                msg_id,
                REQUEST_FAILED,
                f"Too many concurrent requests on this connection (limit {limit}): "
                "wait for an answer or cancel a request",
            )
            return
        self._in_flight[msg_id] = (method_name, time.perf_counter())
        super()._handle_request(msg_id, method_name, params)

    def _handle_cancel_notification(self, msg_id: MsgId) -> None:
        listener = self.cancel_listeners.pop(msg_id, None)
        if listener is not None:
            listener()
        super()._handle_cancel_notification(msg_id)

    def _send_response(self, msg_id: Any, result: Any = None, error: Any = None) -> None:
        started = self._in_flight.pop(msg_id, None)
        if started is not None:
            method, since = started
            code = getattr(error, "code", None)
            outcome = (
                "ok" if error is None else "cancelled" if code == REQUEST_CANCELLED else "error"
            )
            self.on_request_done(method, time.perf_counter() - since, outcome)
        super()._send_response(msg_id, result, error)

    def _handle_notification(self, method_name: str, params: Any) -> None:
        LSP_CONTEXT.set(method_name)
        super()._handle_notification(method_name, params)

    # --- sending -------------------------------------------------------------------------

    def send_error(self, msg_id: MsgId | None, code: int, message: str, data: Any = None) -> None:
        error: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            error["data"] = data
        self._send_data({"jsonrpc": "2.0", "id": msg_id, "error": error})

    # --- lifecycle -----------------------------------------------------------------------

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(
        self, params: types.InitializeParams
    ) -> Generator[Any, Any, types.InitializeResult]:
        self._server.process_id = params.process_id
        self.client_capabilities = params.capabilities
        self.position_encoding = choose_position_encoding(params.capabilities)
        root_uri = params.root_uri
        if params.root_path is not None and root_uri is None:
            root_uri = from_fs_path(params.root_path)
        self._workspace = Workspace(
            root_uri,
            self._server._text_document_sync_kind,
            params.workspace_folders or [],
            self.position_encoding,
        )
        if (user_handler := self.fm.features.get(types.INITIALIZE)) is not None:
            yield user_handler, (params,), None
        self.server_capabilities = ServerCapabilitiesBuilder(
            self.client_capabilities,
            set({**self.fm.features, **self.fm.builtin_features}.keys()),
            self.fm.feature_options,
            list(self.fm.commands.keys()),
            self._server._text_document_sync_kind,
            self._server._notebook_document_sync,
            self.position_encoding,
        ).build()
        self.initialized = True
        return types.InitializeResult(
            capabilities=self.server_capabilities, server_info=self.server_info
        )

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> None:  # type: ignore[override]
        self.exit_code = 0 if self._shutdown else 1
        log.info("exit (code %d)", self.exit_code)
        self.on_exit(self.exit_code)

    # Text sync goes to ouzel's own document store only (server/documents.py): pygls'
    # workspace splits lines like str.splitlines(), which LSP does not.
    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams) -> Any:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_OPEN)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> Any:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams) -> Any:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CLOSE)) is not None:
            yield handler, (params,), None


def _is_notification_method(method: Any) -> bool:
    """True for LSP methods that are notifications (their message type has no id)."""
    if not isinstance(method, str) or method not in types.METHOD_TO_TYPES:
        return False
    message_type = types.METHOD_TO_TYPES[method][0]
    return attrs.has(message_type) and "id" not in attrs.fields_dict(message_type)


def _valid_id(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def _envelope_problem(data: Any) -> str | None:
    if isinstance(data, list):
        return "batch messages are not part of LSP"
    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    if data.get("jsonrpc") != "2.0":
        return 'the "jsonrpc" member must be "2.0"'
    has_method = "method" in data
    if has_method and not isinstance(data["method"], str):
        return '"method" must be a string'
    if "id" in data and not _valid_id(data["id"]) and has_method:
        return '"id" must be a string or an integer'
    if not has_method and "id" not in data:
        return 'a message needs a "method" or an "id"'
    if (
        "params" in data
        and data["params"] is not None
        and not isinstance(data["params"], (dict, list))
    ):
        return '"params" must be an object or an array'
    return None


def _short_error(exc: BaseException) -> str:
    if isinstance(exc, JsonRpcException):
        return exc.message or type(exc).__name__
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    exceptions = getattr(exc, "exceptions", None)
    if exceptions:
        text += ": " + "; ".join(_short_error(inner) for inner in exceptions[:3])
    return text[:500]
