"""What `ouzel --help`, `ouzel serve --help` and the `serve --tcp` banner tell a user."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ouzel.server.remote import RemoteConfig
from ouzel.server.server import announce_tcp

ROOT = Path(__file__).resolve().parents[1]
NEOVIM_CONFIG = ROOT / "clients" / "neovim" / "lua" / "ouzel" / "config.lua"
VSCODE_PACKAGE = ROOT / "clients" / "vscode" / "package.json"


def ouzel_help(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "ouzel.server.cli", *args, "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def neovim_options() -> set[str]:
    """The keys of the plugin's `M.defaults`: every option `vim.g.ouzel` really has."""
    defaults = NEOVIM_CONFIG.read_text().split("M.defaults = {", 1)[1].split("\n}", 1)[0]
    return set(re.findall(r"^  (\w+) =", defaults, re.M))


def vscode_settings() -> set[str]:
    package = json.loads(VSCODE_PACKAGE.read_text())
    sections = package["contributes"]["configuration"]
    return {key for section in sections for key in section["properties"]}


def test_help_lists_the_subcommands_alphabetically() -> None:
    listed = re.findall(r"^    (\w+) ", ouzel_help(), re.M)
    assert {"serve", "ask", "index", "doctor"} <= set(listed)
    assert listed == sorted(listed)


def test_tcp_help_says_what_a_non_loopback_address_needs() -> None:
    text = " ".join(ouzel_help("serve").split())
    tcp = text.split("--tcp HOST:PORT", 1)[1].split(" --token-file TOKEN_FILE", 1)[0]
    assert "loopback only" not in tcp
    assert "--token-file" in tcp and "--tls-cert" in tcp


@pytest.mark.parametrize(
    "remote",
    [
        RemoteConfig(),
        RemoteConfig(token="secret"),
        RemoteConfig(token="secret", tls_cert=Path("c.pem"), tls_key=Path("k.pem")),
    ],
    ids=["plain", "token", "token-tls"],
)
def test_the_banner_names_only_options_the_clients_have(
    remote: RemoteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    announce_tcp("127.0.0.1", 4711, remote, Path("/home/me/.ouzel-token"))
    banner = capsys.readouterr().err
    neovim = re.search(r"vim\.g\.ouzel = \{(.*?)\}", banner)
    assert neovim is not None, banner
    named = set(re.findall(r"(\w+) = ", neovim.group(1)))
    assert named <= neovim_options(), banner
    assert set(re.findall(r'"(ouzel\.[\w.]+)"', banner)) <= vscode_settings(), banner
    assert "secret" not in banner  # the token itself is never printed
    if remote.token:
        assert "token_file = '/home/me/.ouzel-token'" in banner
        assert '"ouzel.server.tokenFile": "/home/me/.ouzel-token"' in banner
        assert "$OUZEL_TOKEN" in banner
    if remote.tls:
        assert "tls = true" in banner and '"ouzel.server.tls": true' in banner
        assert "tls_ca" in banner
