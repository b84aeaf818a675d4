"""Remote mode: token authentication and TLS on a real `ouzel serve --tcp`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from rpc import TcpServer, server_env

pytestmark = pytest.mark.e2e

AUTH_FAILED = -32001


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("s3cret-token-for-tests-0123456789\n")
    path.chmod(0o600)
    return path


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


def test_wrong_or_missing_token_is_refused_and_the_connection_closed(
    tmp_path: Path, token_file: Path
) -> None:
    server = TcpServer(tmp_path, "--token-file", str(token_file))
    try:
        for options in (None, {"authToken": "guess"}):
            client = server.connect()
            response = client.initialize(tmp_path, options=options)
            assert response["error"]["code"] == AUTH_FAILED
            assert "authToken" in response["error"]["message"]
            assert client.closed.wait(10), "the server must close a refused connection"
        good = server.connect()
        response = good.initialize(tmp_path, options={"authToken": token_file.read_text().strip()})
        assert "result" in response
        assert good.request("ouzel/status")["result"]["version"]
    finally:
        server.close()
    assert "s3cret" not in server.stderr_path.read_text()


def test_tls_with_token(tmp_path: Path, token_file: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server = TcpServer(
        tmp_path,
        "--token-file",
        str(token_file),
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        tls_ca=cert,
    )
    try:
        client = server.connect()
        response = client.initialize(
            tmp_path, options={"authToken": token_file.read_text().strip()}
        )
        assert response["result"]["serverInfo"]["name"] == "ouzel"
    finally:
        server.close()


def _serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ouzel.server.cli", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=server_env(tmp_path),
    )


def test_non_loopback_needs_token_and_tls(tmp_path: Path, token_file: Path) -> None:
    result = _serve(tmp_path, "--tcp", "0.0.0.0:0", "--token-file", str(token_file))
    assert result.returncode == 2
    assert "needs TLS (--tls-cert/--tls-key)" in result.stderr


def test_token_file_is_created_private_and_group_readable_files_refused(tmp_path: Path) -> None:
    path = tmp_path / "new-token"
    server = TcpServer(tmp_path, "--token-file", str(path))
    server.close()
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(path.read_text().strip()) >= 32
    os.chmod(path, 0o644)
    result = _serve(tmp_path, "--tcp", "127.0.0.1:0", "--token-file", str(path))
    assert result.returncode == 2 and "chmod 600" in result.stderr
