"""Garbage, lifecycle and encodings against a real server over stdio and TCP (raw bytes)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rpc import RawClient, StdioServer, TcpServer, frame, server_env

pytestmark = pytest.mark.e2e

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
SERVER_NOT_INITIALIZED = -32002


@pytest.fixture(params=["stdio", "tcp"])
def connect(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RawClient]:
    if request.param == "stdio":
        stdio = StdioServer(tmp_path)
        yield stdio.client
        stdio.close()
    else:
        tcp = TcpServer(tmp_path)
        yield tcp.connect()
        tcp.close()


def _error_code(response: dict) -> int:
    assert "error" in response, response
    return int(response["error"]["code"])


def _next_unsolicited(client: RawClient) -> dict:
    return client.inbox.get(timeout=20)


def test_requests_before_initialize_are_refused(connect: RawClient) -> None:
    assert _error_code(connect.request("ouzel/status")) == SERVER_NOT_INITIALIZED
    connect.notify("textDocument/didOpen", {"textDocument": {}})  # dropped silently
    assert "result" in connect.initialize()


def test_garbage_gets_the_right_errors_and_the_server_keeps_serving(
    connect: RawClient, tmp_path: Path
) -> None:
    connect.initialize(tmp_path)
    connect.send_bytes(frame(b"{not json"))
    response = _next_unsolicited(connect)
    assert _error_code(response) == PARSE_ERROR and response["id"] is None
    connect.send_bytes(frame(b"\xff\xfe\x00garbage"))
    assert _error_code(_next_unsolicited(connect)) == PARSE_ERROR
    for value in (b"[]", b"42", b'"text"', b'{"jsonrpc": "1.0", "id": 5, "method": "x"}'):
        connect.send_bytes(frame(value))
        assert _error_code(_next_unsolicited(connect)) == INVALID_REQUEST
    connect.send(json.loads('{"jsonrpc": "2.0", "id": {"nested": 1}, "method": "x"}'))
    assert _error_code(_next_unsolicited(connect)) == INVALID_REQUEST
    # a header without Content-Length is skipped; the next message still works
    connect.send_bytes(b"X-Nonsense: 1\r\n\r\n")
    assert _error_code(connect.request("no/such/method")) == METHOD_NOT_FOUND
    connect.notify("no/such/notification", {"x": 1})  # ignored
    notification_as_request = connect.request("initialized", {})
    assert _error_code(notification_as_request) == INVALID_REQUEST
    assert (
        _error_code(connect.request("textDocument/inlineCompletion", {"bad": 1})) == INVALID_PARAMS
    )
    assert _error_code(connect.request("textDocument/hover", "a string")) == INVALID_REQUEST
    # a document that was never opened
    params = {"textDocument": {"uri": "file:///nowhere.py"}}
    connect.notify("textDocument/didChange", {**params, "contentChanges": [{"text": "x"}]})
    assert "result" in connect.request("ouzel/status")
    assert _error_code(connect.request("initialize", {"capabilities": {}})) == INVALID_REQUEST


def test_shutdown_then_requests_are_invalid_and_exit_code_zero(tmp_path: Path) -> None:
    server = StdioServer(tmp_path)
    client = server.client
    client.initialize(tmp_path)
    assert client.request("shutdown")["result"] is None
    assert _error_code(client.request("ouzel/status")) == INVALID_REQUEST
    client.notify("exit")
    assert server.process.wait(timeout=10) == 0


def test_exit_without_shutdown_is_code_one(tmp_path: Path) -> None:
    server = StdioServer(tmp_path)
    server.client.initialize(tmp_path)
    server.client.notify("exit")
    assert server.process.wait(timeout=10) == 1


def test_tcp_serves_several_clients_and_survives_a_client_exit(tmp_path: Path) -> None:
    server = TcpServer(tmp_path)
    try:
        first = server.connect()
        first.initialize(tmp_path, ["utf-8"])
        first.request("shutdown")
        first.notify("exit")
        second = server.connect()
        result = second.initialize(tmp_path, ["utf-16"])
        assert result["result"]["capabilities"]["positionEncoding"] == "utf-16"
        assert second.request("ouzel/status")["result"]["positionEncoding"] == "utf-16"
        assert server.process.poll() is None
    finally:
        server.close()


def test_tcp_refuses_non_loopback_addresses(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ouzel.server.cli", "serve", "--tcp", "0.0.0.0:0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=server_env(tmp_path),
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr and "0.0.0.0" in result.stderr


def test_utf8_preferred_when_offered(connect: RawClient, tmp_path: Path) -> None:
    result = connect.initialize(tmp_path, ["utf-32", "utf-8", "utf-16"])
    assert result["result"]["capabilities"]["positionEncoding"] == "utf-8"


def test_invalid_settings_are_reported_and_valid_ones_kept(
    connect: RawClient, tmp_path: Path
) -> None:
    connect.configuration = {"completion": {"debounceMs": -1, "maxTokens": 7}, "logLevel": "loud"}
    connect.initialize(tmp_path)
    shown = connect.wait_notification("window/showMessage")
    text = shown["params"]["message"]
    assert "completion.debounce_ms" in text and "log_level" in text and "using the default" in text
    connect.notify("workspace/didChangeConfiguration", {"settings": None})
    assert "result" in connect.request("ouzel/status")


def test_log_lines_carry_method_and_id(tmp_path: Path) -> None:
    log_file = tmp_path / "ouzel.log"
    server = StdioServer(tmp_path, "--log-file", str(log_file), "--log-level", "debug")
    client = server.client
    client.initialize(tmp_path)
    client.request("no/such/method")
    client.request("shutdown")
    client.notify("exit")
    server.process.wait(timeout=10)
    text = log_file.read_text()
    assert "[initialize#1]" in text
    assert "no/such/method" in text


def test_workspace_folders_change_at_run_time(connect: RawClient, tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    connect.initialize(first)
    event = {
        "added": [{"uri": second.as_uri(), "name": "two"}],
        "removed": [{"uri": first.as_uri(), "name": "one"}],
    }
    connect.notify("workspace/didChangeWorkspaceFolders", {"event": event})
    status = connect.request("ouzel/status")["result"]
    assert status["workspaceFolders"] == [str(second)]


def test_client_that_quits_without_reading_the_answer_is_no_error(tmp_path: Path) -> None:
    log_file = tmp_path / "quiet.log"
    server = StdioServer(tmp_path, "--log-file", str(log_file))
    server.client.initialize(tmp_path)
    server.client.send({"jsonrpc": "2.0", "id": 99, "method": "shutdown"})
    assert server.process.stdout is not None
    server.process.stdout.close()  # like Neovim on :qa, it does not wait for the answer
    assert server.process.stdin is not None
    server.process.stdin.close()
    assert server.process.wait(timeout=60) in (0, 1)
    text = log_file.read_text()
    assert "Traceback" not in text and "BrokenPipeError" not in text
