"""A raw JSON-RPC client for end-to-end tests: frames bytes itself, so tests can send garbage."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from queue import Empty, Queue
from typing import Any, BinaryIO

from models import MODELS_DIR


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class RawClient:
    """Talks LSP over a pair of byte streams; collects every message the server sends."""

    def __init__(self, reader: BinaryIO, writer: Callable[[bytes], None]) -> None:
        self._write = writer
        self._reader = reader
        self.inbox: Queue[dict[str, Any]] = Queue()
        self.notifications: list[dict[str, Any]] = []
        self._next_id = 0
        self._pending: dict[Any, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read_loop, daemon=True)
        self._thread.start()
        self.server_requests: list[dict[str, Any]] = []
        self.answer_server_requests = True
        self.configuration: dict[str, Any] = {}
        # Answers to server requests by method (e.g. workspace/applyEdit): message -> result.
        self.request_handlers: dict[str, Callable[[dict[str, Any]], Any]] = {}
        self.closed = threading.Event()  # set when the server closes the connection

    def _read_loop(self) -> None:
        while True:
            headers = {}
            while True:
                try:
                    line = self._reader.readline()
                except (OSError, ValueError):  # the test closed the stream
                    line = b""
                if not line:
                    self.closed.set()
                    return
                line = line.strip()
                if not line:
                    break
                name, _, value = line.decode().partition(":")
                headers[name.lower()] = value.strip()
            body = self._reader.read(int(headers["content-length"]))
            message = json.loads(body)
            if "method" in message and "id" in message:
                self.server_requests.append(message)
                if self.answer_server_requests:
                    self._answer_server_request(message)
                continue
            if "method" in message:
                self.notifications.append(message)
                continue
            self.inbox.put(message)

    def _answer_server_request(self, message: dict[str, Any]) -> None:
        result: Any = None
        if message["method"] == "workspace/configuration":
            result = [self.configuration for _ in message["params"]["items"]]
        elif message["method"] in self.request_handlers:
            result = self.request_handlers[message["method"]](message)
        try:
            self.send({"jsonrpc": "2.0", "id": message["id"], "result": result})
        except (OSError, ValueError):  # the test already closed the connection
            pass

    def send_bytes(self, data: bytes) -> None:
        self._write(data)

    def send(self, message: dict[str, Any]) -> None:
        self._write(frame(json.dumps(message).encode()))

    def request_async(self, method: str, params: Any = None) -> int:
        with self._lock:
            self._next_id += 1
            msg_id = self._next_id
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return msg_id

    def wait_response(self, msg_id: Any, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while msg_id not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no response to {msg_id}")
            try:
                message = self.inbox.get(timeout=remaining)
            except Empty as exc:
                raise TimeoutError(f"no response to {msg_id}") from exc
            self._pending[message.get("id")] = message
        return self._pending.pop(msg_id)

    def request(self, method: str, params: Any = None, timeout: float = 30.0) -> dict[str, Any]:
        return self.wait_response(self.request_async(method, params), timeout)

    def notify(self, method: str, params: Any = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)

    def wait_notification(
        self,
        method: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda m: True,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for message in self.notifications[seen:]:
                if message["method"] == method and predicate(message):
                    return message
            seen = 0
            time.sleep(0.02)
        raise TimeoutError(f"no {method} notification")

    def initialize(
        self,
        root: Path | None = None,
        encodings: list[str] | None = None,
        capabilities: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        caps = (
            capabilities
            if capabilities is not None
            else {
                "general": {"positionEncodings": encodings or ["utf-16"]},
                "window": {"workDoneProgress": True},
                "workspace": {"configuration": True, "workspaceFolders": True},
                "textDocument": {"inlineCompletion": {}, "synchronization": {"didSave": True}},
            }
        )
        params: dict[str, Any] = {
            "processId": os.getpid(),
            "capabilities": caps,
            "clientInfo": {"name": "ouzel-tests", "version": "1"},
        }
        if root is not None:
            params["rootUri"] = root.as_uri()
            params["workspaceFolders"] = [{"uri": root.as_uri(), "name": root.name}]
        if options is not None:
            params["initializationOptions"] = options
        response = self.request("initialize", params)
        self.notify("initialized", {})
        return response


def server_env(tmp: Path) -> dict[str, str]:
    """Environment that keeps the server's config, state and cache inside `tmp`."""
    env = dict(os.environ)
    env["XDG_CONFIG_HOME"] = str(tmp / "config")
    env["XDG_STATE_HOME"] = str(tmp / "state")
    env["XDG_CACHE_HOME"] = str(tmp / "cache")
    # Installed catalog models (Qwen for local chat) stay where `ouzel models install` put them.
    env.setdefault("OUZEL_MODELS_DIR", str(MODELS_DIR))
    env["PYTHONUNBUFFERED"] = "1"
    return env


class StdioServer:
    """`ouzel serve` as a subprocess with a RawClient on its pipes."""

    def __init__(self, tmp: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ouzel.server.cli", "serve", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(tmp / "server.stderr", "wb"),  # noqa: SIM115 (lives as long as the process)
            env=server_env(tmp),
            cwd=tmp,
        )
        assert self.process.stdin and self.process.stdout
        stdin = self.process.stdin

        def write(data: bytes) -> None:
            stdin.write(data)
            stdin.flush()

        self.client = RawClient(self.process.stdout, write)

    def close(self) -> int:
        if self.process.poll() is None:
            try:
                self.process.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass
            try:
                return self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


class TcpServer:
    """`ouzel serve --tcp 127.0.0.1:0`; `connect()` opens a RawClient connection."""

    def __init__(self, tmp: Path, *args: str, tls_ca: Path | None = None) -> None:
        self.tls_ca = tls_ca
        self.stderr_path = tmp / "server.stderr"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ouzel.server.cli", "serve", "--tcp", "127.0.0.1:0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=server_env(tmp),
            cwd=tmp,
        )
        assert self.process.stderr
        self.port = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.process.stderr.readline().decode()
            if not line:
                break
            if "listening on" in line:
                self.port = int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
                break
        if not self.port:
            self.process.kill()
            raise RuntimeError("the TCP server did not start")
        threading.Thread(target=self._drain, daemon=True).start()
        self.sockets: list[socket.socket] = []

    def _drain(self) -> None:
        assert self.process.stderr
        with open(self.stderr_path, "ab") as out:
            for line in self.process.stderr:
                out.write(line)

    def connect(self) -> RawClient:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        if self.tls_ca is not None:
            context = ssl.create_default_context(cafile=str(self.tls_ca))
            sock = context.wrap_socket(sock, server_hostname="localhost")
        sock.settimeout(None)
        self.sockets.append(sock)
        return RawClient(sock.makefile("rb"), sock.sendall)

    def close(self) -> None:
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
