"""The compose file's CPU profile run as processes (docker is not available here).

The commands come from deploy/compose/compose.yaml itself (`llama` and `ouzel` services),
with container paths and addresses mapped to this machine: llama_cpp.server with the embedded
model, the ouzel team server with a tokens file, TLS and /metrics, and the ouzel config file
the compose stack mounts. A client completes over TLS with a per-user token; a scrape shows
the request served by the `remote` profile (the model server)."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from rpc import RawClient, server_env
from test_team_server import _self_signed, add_user, free_port, scrape
from waiting import wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from real_servers import EMBEDDED_MODEL

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy" / "compose"


def _replace(args: list[Any], mapping: dict[str, str]) -> list[str]:
    return [mapping.get(str(arg), str(arg)) for arg in args]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_cpu_profile_runs_end_to_end(tmp_path: Path) -> None:
    services = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())["services"]
    llm_port, metrics_port, lsp_port = free_port(), free_port(), free_port()
    tokens_file = tmp_path / "secrets" / "tokens.json"
    alice = add_user(tmp_path, tokens_file, "alice")
    cert, key = _self_signed(tmp_path)
    config_dir = tmp_path / "config" / "ouzel"
    config_dir.mkdir(parents=True)
    config = (COMPOSE_DIR / "ouzel" / "config.toml").read_text()
    (config_dir / "config.toml").write_text(
        config.replace("http://llm:8000/v1", f"http://127.0.0.1:{llm_port}/v1")
    )
    llama = services["llama"]
    llama_command = [sys.executable, *llama["entrypoint"][1:]] + _replace(
        llama["command"],
        {"/models/model.gguf": str(EMBEDDED_MODEL), "0.0.0.0": "127.0.0.1", "8000": str(llm_port)},
    )
    ouzel_command = [sys.executable, "-m", "ouzel.server.cli"] + _replace(
        services["ouzel"]["command"],
        {
            "0.0.0.0:7658": f"127.0.0.1:{lsp_port}",
            "0.0.0.0:9464": f"127.0.0.1:{metrics_port}",
            "/run/secrets/ouzel_tokens": str(tokens_file),
            "/run/secrets/ouzel_tls_cert": str(cert),
            "/run/secrets/ouzel_tls_key": str(key),
        },
    )
    env = server_env(tmp_path)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with (tmp_path / "llama.log").open("wb") as log:
            processes.append(
                subprocess.Popen(llama_command, stdout=log, stderr=subprocess.STDOUT, env=env)
            )
        wait_for(lambda: _answers(llm_port), 120, "llama_cpp.server to listen")
        with (tmp_path / "ouzel.log").open("wb") as log:
            processes.append(
                subprocess.Popen(ouzel_command, stdout=log, stderr=subprocess.STDOUT, env=env)
            )
        wait_for(lambda: _answers(lsp_port), 60, "the ouzel team server to listen")

        context = ssl.create_default_context(cafile=str(cert))
        sock = context.wrap_socket(
            socket.create_connection(("127.0.0.1", lsp_port), timeout=60),
            server_hostname="localhost",
        )
        client = RawClient(sock.makefile("rb"), sock.sendall)
        assert "result" in client.initialize(tmp_path, options={"authToken": alice})
        source = tmp_path / "fib.py"
        source.write_text("def fib(n):\n    ")
        client.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": source.as_uri(),
                    "languageId": "python",
                    "version": 1,
                    "text": source.read_text(),
                }
            },
        )
        answer = client.request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": source.as_uri()},
                "position": {"line": 1, "character": 4},
                "context": {"triggerKind": 1},
            },
            timeout=180,
        )
        assert "result" in answer, answer
        families = scrape(metrics_port)
        served = {
            (s.labels["task"], s.labels["backend"]): s.value
            for s in families["ouzel_inference_duration_seconds"]
            if s.name.endswith("_count")
        }
        assert served.get(("inline_completion", "remote"), 0) >= 1, served
        sessions = {s.labels["user"]: s.value for s in families["ouzel_sessions"]}
        assert sessions == {"alice": 1.0}
        sock.close()
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert "Traceback" not in (tmp_path / "ouzel.log").read_text()
