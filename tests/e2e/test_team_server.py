"""The team server on a real `ouzel serve --tcp`: per-user tokens, revocation, limits, metrics."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rpc import RawClient, TcpServer, server_env
from waiting import wait_for

pytestmark = pytest.mark.e2e

AUTH_FAILED = -32001
REQUEST_FAILED = -32803


def ouzel_tokens(tmp: Path, tokens_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ouzel.server.cli", "tokens", "--file", str(tokens_file), *args],
        capture_output=True,
        text=True,
        env=server_env(tmp),
        timeout=60,
    )


def add_user(tmp: Path, tokens_file: Path, name: str) -> str:
    done = ouzel_tokens(tmp, tokens_file, "add", name)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int, token: str | None = None) -> dict[str, list[Any]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"]
        + ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key


def _read_to_end(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a TLS alert record, or nothing)."""
    received = b""
    for _ in range(100):
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError("the server kept the connection open")


def test_tokens_command_keeps_only_hashes_in_a_private_file(tmp_path: Path) -> None:
    tokens_file = tmp_path / "team" / "tokens.json"
    token = add_user(tmp_path, tokens_file, "alice")
    assert len(token) >= 32
    assert tokens_file.stat().st_mode & 0o777 == 0o600
    assert token not in tokens_file.read_text()
    again = ouzel_tokens(tmp_path, tokens_file, "add", "alice")
    assert again.returncode == 2 and "already has a token" in again.stderr
    bad = ouzel_tokens(tmp_path, tokens_file, "add", "../evil")
    assert bad.returncode == 2 and "invalid user name" in bad.stderr
    add_user(tmp_path, tokens_file, "bob")
    listed = ouzel_tokens(tmp_path, tokens_file, "list").stdout
    assert [line.split("\t")[0] for line in listed.splitlines()] == ["alice", "bob"]
    assert ouzel_tokens(tmp_path, tokens_file, "revoke", "bob").returncode == 0
    missing = ouzel_tokens(tmp_path, tokens_file, "revoke", "bob")
    assert missing.returncode == 2 and "no token named" in missing.stderr
    tokens_file.chmod(0o644)
    loose = ouzel_tokens(tmp_path, tokens_file, "list")
    assert loose.returncode == 2 and "chmod 600" in loose.stderr


def test_fifty_users_sessions_revocation_and_metrics(tmp_path: Path) -> None:
    """50 connections, each its own session; revoking bob closes only bob's; a real scrape."""
    tokens_file = tmp_path / "tokens.json"
    alice, bob = add_user(tmp_path, tokens_file, "alice"), add_user(tmp_path, tokens_file, "bob")
    metrics_port = free_port()
    server = TcpServer(
        tmp_path,
        "--tokens-file",
        str(tokens_file),
        "--metrics",
        f"127.0.0.1:{metrics_port}",
    )
    try:
        clients: list[RawClient] = []
        for index in range(50):
            client = server.connect()
            token = bob if index % 10 == 0 else alice
            assert "result" in client.initialize(tmp_path, options={"authToken": token})
            clients.append(client)
        for client in clients:
            assert client.request("ouzel/status")["result"]["version"]
        families = scrape(metrics_port)
        sessions = {s.labels["user"]: s.value for s in families["ouzel_sessions"]}
        assert sessions == {"alice": 45.0, "bob": 5.0}
        requests = [
            s
            for s in families["ouzel_requests"]
            if s.name == "ouzel_requests_total" and s.labels["method"] == "ouzel/status"
        ]
        assert {s.labels["user"]: s.value for s in requests} == {"alice": 45.0, "bob": 5.0}
        buckets = [
            s.labels["le"]
            for s in families["ouzel_request_duration_seconds"]
            if s.name.endswith("_bucket") and s.labels["method"] == "ouzel/status"
        ]
        assert buckets[:9] == [
            "0.025",
            "0.05",
            "0.075",
            "0.1",
            "0.125",
            "0.15",
            "0.175",
            "0.2",
            "0.25",
        ]

        assert ouzel_tokens(tmp_path, tokens_file, "revoke", "bob").returncode == 0
        bobs = clients[::10]
        for client in bobs:
            assert client.closed.wait(15), "a revoked user's session must be closed"
        assert any("revoked" in json.dumps(list(c.inbox.queue)) for c in bobs)
        assert clients[1].request("ouzel/status")["result"]["version"]
        refused = server.connect().initialize(tmp_path, options={"authToken": bob})
        assert refused["error"]["code"] == AUTH_FAILED
        sessions = {s.labels["user"]: s.value for s in scrape(metrics_port)["ouzel_sessions"]}
        assert sessions["bob"] == 0.0 and sessions["alice"] == 45.0
    finally:
        server.close()
    log = (tmp_path / "state" / "ouzel" / "ouzel.log").read_text()
    assert "authenticated as alice" in log and "revoked" in log
    assert alice not in log and bob not in log
    assert "Traceback" not in server.stderr_path.read_text()


def test_failed_authentications_are_rate_limited_per_peer(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.json"
    alice = add_user(tmp_path, tokens_file, "alice")
    server = TcpServer(tmp_path, "--tokens-file", str(tokens_file))
    try:
        codes = []
        for attempt in range(6):
            response = server.connect().initialize(
                tmp_path, options={"authToken": f"guess{attempt}"}
            )
            codes.append(response["error"])
        assert all(error["code"] == AUTH_FAILED for error in codes)
        assert "retry after" in codes[-1]["message"] and codes[-1]["data"]["retryAfter"] >= 1
        # Even the right token waits now: a guesser cannot tell a hit from the limit.
        limited = server.connect().initialize(tmp_path, options={"authToken": alice})
        assert limited["error"]["code"] == AUTH_FAILED and "retryAfter" in limited["error"]["data"]
    finally:
        server.close()


def test_connection_limits_message_size_headers_and_concurrency(tmp_path: Path) -> None:
    metrics_port = free_port()
    server = TcpServer(
        tmp_path,
        "--metrics",
        f"127.0.0.1:{metrics_port}",
        "--max-message-mb",
        "1",
        "--header-timeout",
        "1",
        "--max-concurrent-requests",
        "1",
    )
    try:
        big = server.connect()
        big.send_bytes(b"Content-Length: %d\r\n\r\n" % (2 * 1024 * 1024))  # no body sent
        assert big.closed.wait(10), "an oversized message must close the connection"
        assert "exceeds the limit" in big.inbox.get(timeout=5)["error"]["message"]

        slow = server.connect()
        slow.send_bytes(b"Content-Length: 40\r\n")  # the header never ends (slowloris)
        assert slow.closed.wait(10), "a header that never ends must close the connection"

        busy = server.connect()
        assert "result" in busy.initialize(tmp_path)
        source = tmp_path / "busy.py"
        source.write_text("def add(a, b):\n    return ")
        uri = source.as_uri()
        busy.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": uri,
                    "languageId": "python",
                    "version": 1,
                    "text": source.read_text(),
                }
            },
        )
        params = {
            "textDocument": {"uri": uri},
            "position": {"line": 1, "character": 11},
            "context": {"triggerKind": 2},
        }
        ids = [busy.request_async("textDocument/inlineCompletion", params) for _ in range(4)]
        answers = [busy.wait_response(msg_id, timeout=120) for msg_id in ids]
        refused = [a for a in answers if a.get("error", {}).get("code") == REQUEST_FAILED]
        assert refused and "concurrent requests" in refused[0]["error"]["message"]
        assert "result" in answers[0]
        assert busy.request("ouzel/status")["result"]["version"]

        families = scrape(metrics_port)
        closed = {
            s.labels["reason"]: s.value
            for s in families["ouzel_connections_closed_by_limit"]
            if s.name.endswith("_total")
        }
        assert closed == {"message_size": 1.0, "header_deadline": 1.0}
        outcomes = {
            s.labels["outcome"]
            for s in families["ouzel_requests"]
            if s.labels["method"] == "textDocument/inlineCompletion" and s.name.endswith("_total")
        }
        assert {"ok", "refused"} <= outcomes
        served = [
            s
            for s in families["ouzel_inference_duration_seconds"]
            if s.name.endswith("_count") and s.labels["task"] == "inline_completion"
        ]
        assert served and served[0].value >= 1 and served[0].labels["backend"] == "local"
        health = {s.labels["backend"]: s.value for s in families["ouzel_backend_healthy"]}
        assert health.get("local") == 1.0
        phases = wait_for(
            lambda: [
                s
                for s in scrape(metrics_port)["ouzel_index_state"]
                if s.labels["root"] == str(tmp_path)
            ],
            60,
            "an ouzel_index_state sample for the workspace root",
        )
        assert phases[0].value == 1.0 and phases[0].labels["phase"]
    finally:
        server.close()
    log = (tmp_path / "state" / "ouzel" / "ouzel.log").read_text()
    assert "exceeds the limit" in log and "headers not complete" in log


def test_tls_handshake_garbage_and_silence_are_closed(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    tokens_file = tmp_path / "tokens.json"
    alice = add_user(tmp_path, tokens_file, "alice")
    server = TcpServer(
        tmp_path,
        "--tokens-file",
        str(tokens_file),
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        "--tls-handshake-timeout",
        "1",
        tls_ca=cert,
    )
    try:
        silent = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        started = time.monotonic()
        assert silent.recv(1) == b"", "a silent TLS client must be dropped"
        assert time.monotonic() - started < 15
        garbage = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        garbage.sendall(b"GET / HTTP/1.0\r\n\r\n" + bytes(range(256)))
        assert _read_to_end(garbage).startswith((b"", b"\x15")), "garbage gets an alert at most"
        good = server.connect()
        assert "result" in good.initialize(tmp_path, options={"authToken": alice})
        assert good.request("ouzel/status")["result"]["version"]
    finally:
        server.close()
        for sock in (locals().get("silent"), locals().get("garbage")):
            if isinstance(sock, (socket.socket, ssl.SSLSocket)):
                sock.close()


def test_path_map_serves_an_editor_folder_from_the_server_checkout(tmp_path: Path) -> None:
    checkout = tmp_path / "srv" / "proj"
    checkout.mkdir(parents=True)
    (checkout / "mod.py").write_text("def served_here():\n    return 1\n")
    editor_root = Path("/home/editor-only/proj")  # does not exist on this machine
    server = TcpServer(tmp_path, "--path-map", f"{editor_root}={checkout}")
    try:
        client = server.connect()
        assert "result" in client.initialize(editor_root)
        editor_uri = (editor_root / "mod.py").as_uri()
        client.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": editor_uri,
                    "languageId": "python",
                    "version": 1,
                    "text": (checkout / "mod.py").read_text(),
                }
            },
        )
        outline = client.request(
            "textDocument/documentSymbol", {"textDocument": {"uri": editor_uri}}
        )
        assert [s["name"] for s in outline["result"]] == ["served_here"]

        def found() -> list[dict[str, Any]] | None:
            answer = client.request("workspace/symbol", {"query": "served_here"})
            return answer.get("result") or None

        symbols = wait_for(found, 90, "the server-side checkout to be indexed and found")
        assert symbols[0]["location"]["uri"] == editor_uri, "server paths map back to the editor's"
        assert str(checkout) not in json.dumps(symbols)
    finally:
        server.close()


def test_bad_path_map_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ouzel.server.cli", "serve", "--tcp", "127.0.0.1:0"]
        + ["--path-map", "relative=/srv"],
        capture_output=True,
        text=True,
        env=server_env(tmp_path),
        timeout=60,
    )
    assert done.returncode == 2 and "must be absolute" in done.stderr


def test_limits_come_from_the_user_config_too(tmp_path: Path) -> None:
    config = tmp_path / "config" / "ouzel"
    config.mkdir(parents=True)
    tokens_file = tmp_path / "tokens.json"
    alice = add_user(tmp_path, tokens_file, "alice")
    (config / "config.toml").write_text(
        f"[team_server]\nmax_message_mb = 1\ntokens_file = '{tokens_file}'\n"
    )
    server = TcpServer(tmp_path)
    try:
        refused = server.connect().initialize(tmp_path, options={"authToken": "guess"})
        assert refused["error"]["code"] == AUTH_FAILED, "tokens_file from the user config"
        client = server.connect()
        assert "result" in client.initialize(tmp_path, options={"authToken": alice})
        client.send_bytes(b"Content-Length: %d\r\n\r\n" % (2 * 1024 * 1024))
        assert client.closed.wait(10), "max_message_mb = 1 from the user config"
    finally:
        server.close()
