"""The Neovim plugin against a running `ouzel serve --tcp`: token, TLS, health.

The server is started once per module; each test opens its own headless Neovim whose config is
the one-line `vim.lsp.enable('ouzel')` plus `vim.g.ouzel` pointing at the port.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "nvim"))
from harness import Editor, editor, wait_for
from rpc import TcpServer

pytestmark = pytest.mark.e2e

TOKEN = "tcp-token-for-the-neovim-tests-0123456789"
SOURCE = 'def add(a, b):\n    """Return the sum of a and b."""\n    \n'


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("neovim-tcp")
    token_file = root / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    return root


@pytest.fixture(scope="module")
def tcp_server(shared: Path) -> Iterator[TcpServer]:
    home = shared / "tcp-server"
    home.mkdir()
    server = TcpServer(home, "--token-file", str(shared / "token"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def tls_server(shared: Path) -> Iterator[tuple[TcpServer, Path]]:
    home = shared / "tls-server"
    home.mkdir()
    cert, key = home / "cert.pem", home / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"]
        + ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    server = TcpServer(
        home,
        "--token-file",
        str(shared / "token"),
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        tls_ca=cert,
    )
    yield server, cert
    server.close()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / ".git").mkdir()
    (root / "calc.py").write_text(SOURCE)
    return root


def status_text(nvim: Editor) -> str:
    nvim.command("Ouzel status")
    return wait_for(
        lambda: (m := nvim.messages()) and "open documents" in m and m, 20, ":Ouzel status output"
    )


def checkhealth(nvim: Editor) -> str:
    nvim.command("checkhealth ouzel")
    return "\n".join(nvim.lines())


def test_tcp_with_the_token_from_the_environment_gives_ghost_text(
    tcp_server: TcpServer, workspace: Path, tmp_path: Path
) -> None:
    with editor(
        workspace,
        tmp_path / "home",
        options={"port": tcp_server.port},
        env={"OUZEL_TOKEN": TOKEN},
    ) as nvim:
        nvim.open(workspace / "calc.py")
        nvim.wait_attached()
        nvim.type("3GA")
        suggestion = nvim.wait_suggestion(180)  # the server loads the model on first use
        first = suggestion.split("\n")[0]
        assert nvim.screen()[2] == "    " + first
        nvim.type("<Tab>")
        wait_for(lambda: nvim.lines()[2] == "    " + first, 10, "the accepted suggestion")
        nvim.type("<Esc>")
        assert f"(tcp 127.0.0.1:{tcp_server.port})" in status_text(nvim)
        report = checkhealth(nvim)
        assert "ERROR" not in report, report
        assert f"OK 127.0.0.1:{tcp_server.port} is reachable" in report
        assert "OK a token is sent ($OUZEL_TOKEN)" in report
        assert f"over tcp 127.0.0.1:{tcp_server.port}" in report
        assert TOKEN not in report
    # Quitting the editor ends its connection, not the shared server.
    assert tcp_server.process.poll() is None


def test_a_wrong_token_is_refused_visibly(
    tcp_server: TcpServer, workspace: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad-token"
    bad.write_text("not-the-token-at-all-0000\n")
    with editor(
        workspace, tmp_path / "home", options={"port": tcp_server.port, "token_file": str(bad)}
    ) as nvim:
        nvim.open(workspace / "calc.py")
        wait_for(lambda: "Authentication failed" in nvim.messages(), 20, "the authentication error")
        assert nvim.lua("return require('ouzel').client()") is None
        nvim.command("messages clear")  # Neovim reports the failed initialize as a Lua error
    assert tcp_server.process.poll() is None


def test_tls_with_a_self_signed_certificate(
    tls_server: tuple[TcpServer, Path], workspace: Path, tmp_path: Path
) -> None:
    server, cert = tls_server
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    options = {"port": server.port, "tls": True, "tls_ca": str(cert), "token_file": str(token_file)}
    with editor(workspace, tmp_path / "home", options=options) as nvim:
        nvim.open(workspace / "calc.py")
        nvim.wait_attached()
        assert f"(tls 127.0.0.1:{server.port})" in status_text(nvim)
        report = checkhealth(nvim)
        assert "ERROR" not in report, report
        assert f"OK TLS through openssl s_client (CA {cert})" in report


def test_tls_refuses_a_certificate_it_cannot_verify(
    tls_server: tuple[TcpServer, Path], workspace: Path, tmp_path: Path
) -> None:
    server, _cert = tls_server
    options = {"port": server.port, "tls": True}  # no CA: the self-signed cert does not verify
    with editor(workspace, tmp_path / "home", options=options, env={"OUZEL_TOKEN": TOKEN}) as nvim:
        nvim.open(workspace / "calc.py")
        message = wait_for(
            lambda: (m := nvim.messages()) and "TLS connection" in m and m,
            20,
            "the TLS failure message",
        )
        assert f"the TLS connection to 127.0.0.1:{server.port} failed" in message
        assert "vim.g.ouzel.tls_ca" in message
        assert "certificate verify failed" in nvim.lsp_log()
        assert nvim.lua("return #vim.lsp.get_clients({ name = 'ouzel' })") == 0
