"""docs/DEPLOY.md "One box", followed step by step: the commands are read from the doc's
code blocks and run as written (the `ouzel` command is this checkout's; the listen
addresses are mapped to free loopback ports)."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from rpc import RawClient, server_env
from test_team_server import free_port, scrape
from waiting import wait_for

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "DEPLOY.md"


def block_after(heading: str, language: str) -> str:
    text = DOC.read_text()
    start = text.index(heading)
    match = re.compile(rf"```{language}\n(.*?)```", re.S).search(text, start)
    assert match, f"no {language} block after {heading!r} in {DOC}"
    return match.group(1)


def run_shell(script: str, cwd: Path) -> str:
    preamble = f'set -euo pipefail\nouzel() {{ "{sys.executable}" -m ouzel.server.cli "$@"; }}\n'
    done = subprocess.run(
        ["bash", "-c", preamble + script],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=server_env(cwd),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_one_box_steps_from_the_doc(tmp_path: Path) -> None:
    printed = run_shell(block_after("### 1. Users and their tokens", "sh"), tmp_path)
    alice, bob = printed.splitlines()[:2]
    assert {"alice", "bob", "prometheus"} <= {
        line.split("\t")[0] for line in printed.splitlines()[2:]
    }
    run_shell(block_after("### 2. A TLS certificate", "sh"), tmp_path)
    config = tmp_path / "config" / "ouzel"
    config.mkdir(parents=True)
    (config / "config.toml").write_text(block_after("### 3. The model server", "toml"))

    lsp_port, metrics_port = free_port(), free_port()
    serve = block_after("### 4. The team server", "sh").replace("\\\n", " ")
    serve = serve.replace("0.0.0.0:7658", f"127.0.0.1:{lsp_port}")
    serve = serve.replace("127.0.0.1:9464", f"127.0.0.1:{metrics_port}")
    preamble = f'ouzel() {{ exec "{sys.executable}" -m ouzel.server.cli "$@"; }}\n'
    with (tmp_path / "serve.log").open("wb") as log:
        server = subprocess.Popen(
            ["bash", "-c", preamble + serve],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server_env(tmp_path),
        )
    try:

        def listening() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", lsp_port), timeout=1):
                    return True
            except OSError:
                return False

        wait_for(listening, 60, "the team server from DEPLOY.md step 4 to listen")
        context = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        sock = context.wrap_socket(
            socket.create_connection(("127.0.0.1", lsp_port), timeout=30), server_hostname="gpu-box"
        )
        client = RawClient(sock.makefile("rb"), sock.sendall)
        assert "result" in client.initialize(tmp_path, options={"authToken": alice})
        assert client.request("ouzel/status")["result"]["version"]
        sessions = {s.labels["user"]: s.value for s in scrape(metrics_port)["ouzel_sessions"]}
        assert sessions == {"alice": 1.0}
        sock.close()
        assert bob
    finally:
        server.terminate()
        server.wait(timeout=20)
