"""The VS Code extension in a real VS Code (code-server) driven through headless Chromium.

The packaged .vsix is installed into a fresh code-server, which opens a throwaway copy of a
small Python project whose `.venv/bin/ouzel` is this checkout's. The extension finds it,
starts `ouzel serve` over stdio with the real default model, and clients/vscode/e2e/driver.mjs
(playwright-core) types into a function body, waits for ouzel's ghost text, accepts it with
Tab and saves. Screenshots go to test-artifacts/. scripts/setup-vscode-e2e installs
code-server, Chromium and the .vsix; a missing piece fails here with that hint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rpc import TcpServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "clients" / "vscode"
CODE_SERVER = EXTENSION / ".e2e" / "code-server" / "node_modules" / ".bin" / "code-server"
VSIX = EXTENSION / "ouzel.vsix"
DRIVER = EXTENSION / "e2e" / "driver.mjs"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

SOURCE = '''\
def add(a, b):
    """Return the sum of a and b."""
    return


def multiply(a, b):
    """Return the product of a and b."""
    return
'''
FILE = "calc.py"
TYPED = " a"
# Ctrl+Right takes the next word; typed up to a space, the suggestion starts with one.
WORD_TYPED = " a "
# 1-based lines: the cursor goes to the end of each `    return`.
WHOLE_LINE = 3  # Tab accepts the whole suggestion here
WORD_LINE = 8  # Ctrl+Right accepts its next word here

USER_SETTINGS = {
    # Nothing else may take Tab or cover the editor.
    "editor.quickSuggestions": {"other": "off", "comments": "off", "strings": "off"},
    "editor.suggestOnTriggerCharacters": False,
    "editor.wordBasedSuggestions": "off",
    "editor.inlineSuggest.enabled": True,
    "files.autoSave": "off",
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": False,
    "telemetry.telemetryLevel": "off",
    "extensions.autoCheckUpdates": False,
    "extensions.autoUpdate": False,
}


@dataclass
class CodeServer:
    url: str
    root: Path
    workspace: Path
    state: Path
    user_data: Path
    process: subprocess.Popen[str]
    output: list[str]

    def telemetry(self) -> list[dict[str, Any]]:
        """The server's local completion telemetry (served / shown / accepted events)."""
        path = self.state / "ouzel" / "completions.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        return [json.loads(line) for line in lines if line.strip()]

    def server_log(self) -> str:
        log = self.state / "ouzel" / "ouzel.log"
        return log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""

    def output_channel(self) -> str:
        """The extension's output channel (the server's log as VS Code shows it)."""
        texts = [
            path.read_text(encoding="utf-8", errors="replace")
            for path in sorted(self.user_data.glob("logs/*/exthost*/output_logging_*/*ouzel*.log"))
        ]
        return "\n".join(texts)


def require_setup() -> None:
    missing = [str(path) for path in (CODE_SERVER, VSIX, DRIVER) if not path.exists()]
    if not Path(CHROMIUM).exists():
        missing.append("chromium")
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/setup-vscode-e2e first")


def make_workspace(workspace: Path) -> None:
    workspace.mkdir()
    (workspace / FILE).write_text(SOURCE, encoding="utf-8")
    # Ghost text from the small embedded model: this test is about the extension (show,
    # accept, partial accept, status), and gemma's answer at these places is known to come;
    # the default Qwen model's ghost text is covered by test_completion.py and test_neovim.py.
    (workspace / ".ouzel").mkdir()
    (workspace / ".ouzel" / "config.toml").write_text('[models.local]\nmodel = "gemma3-270m"\n')
    venv_bin = workspace / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "ouzel").symlink_to(Path(sys.executable).parent / "ouzel")


def wait_for_url(process: subprocess.Popen[str], output: list[str], timeout: float) -> str:
    """Read code-server's output until it names the address it listens on."""
    found = threading.Event()
    address: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            match = re.search(r"HTTP server listening on (http://127\.0\.0\.1:\d+)/", line)
            if match and not address:
                address.append(match.group(1))
                found.set()
        found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(timeout) or not address:
        raise AssertionError("code-server did not start:\n" + "".join(output))
    return address[0]


def stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM to code-server's process group ends the extension host and ouzel too."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def code_server_env(root: Path) -> dict[str, str]:
    """code-server (and the extension host, and `ouzel serve`) keep everything under `root`."""
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(root / "config"),
        "XDG_DATA_HOME": str(root / "data"),
        "XDG_STATE_HOME": str(root / "state"),
        "XDG_CACHE_HOME": str(root / "cache"),
    }
    env.pop("VIRTUAL_ENV", None)
    return env


def install_extension(root: Path) -> None:
    user_data = root / "user-data"
    if not (user_data / "User" / "settings.json").exists():
        (user_data / "User").mkdir(parents=True, exist_ok=True)
        (user_data / "User" / "settings.json").write_text(json.dumps(USER_SETTINGS, indent=2))
    dirs = ["--user-data-dir", str(user_data), "--extensions-dir", str(root / "extensions")]
    installed = subprocess.run(
        [str(CODE_SERVER), *dirs, "--install-extension", str(VSIX)],
        env=code_server_env(root),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr


def launch_code_server(root: Path, workspace: Path) -> CodeServer:
    """Start code-server on a free port with the folders under `root` (the extension must
    be installed there); stop it with `stop(server.process)`. A second launch on the same
    `root` is a restart: same settings, same ouzel state (chat history)."""
    user_data = root / "user-data"
    config = root / "code-server.yaml"
    config.write_text("bind-addr: 127.0.0.1:0\nauth: none\ncert: false\n")
    process = subprocess.Popen(
        [
            str(CODE_SERVER),
            "--config",
            str(config),
            "--bind-addr",
            "127.0.0.1:0",
            "--auth",
            "none",
            "--disable-telemetry",
            "--disable-update-check",
            "--disable-workspace-trust",
            *("--user-data-dir", str(user_data), "--extensions-dir", str(root / "extensions")),
        ],
        env=code_server_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    try:
        url = wait_for_url(process, output, timeout=60)
    except BaseException:
        stop(process)
        raise
    return CodeServer(url, root, workspace, root / "state", user_data, process, output)


@pytest.fixture(scope="module")
def code_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CodeServer]:
    require_setup()
    root = tmp_path_factory.mktemp("vscode")
    workspace = root / "workspace"
    make_workspace(workspace)
    install_extension(root)
    server = launch_code_server(root, workspace)
    try:
        yield server
    finally:
        stop(server.process)


def drive(code_server: CodeServer, timeout_s: float = 400, **options: Any) -> list[dict[str, Any]]:
    runs = len(list(code_server.root.glob("chromium-*")))
    config = {
        "url": f"{code_server.url}/?folder={code_server.workspace}",
        "profileDir": str(code_server.root / f"chromium-{runs}"),
        "chromium": CHROMIUM,
        "timeoutMs": 120_000,
        **options,
    }
    result = subprocess.run(
        ["node", str(DRIVER), json.dumps(config)],
        cwd=EXTENSION,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    failed = result.returncode != 0 or not any(event["event"] == "done" for event in events)
    if failed:
        keep_logs(code_server)
        (ARTIFACTS / "vscode-driver-events.jsonl").write_text(result.stdout + result.stderr)
        raise AssertionError(
            "the VS Code scenario failed:\n"
            + "\n".join(json.dumps(event) for event in events)
            + f"\nstderr:\n{result.stderr[-3000:]}"
            + f"\nouzel output channel (end):\n{code_server.output_channel()[-3000:]}"
            + f"\nouzel server log (end):\n{code_server.server_log()[-3000:]}"
        )
    return events


def keep_logs(code_server: CodeServer) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "vscode-ouzel-server.log").write_text(code_server.server_log())
    (ARTIFACTS / "vscode-output-channel.log").write_text(code_server.output_channel())
    (ARTIFACTS / "vscode-code-server.log").write_text("".join(code_server.output))


def events_named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [item for item in events if item["event"] == name]


def ghost_text(events: list[dict[str, Any]], index: int) -> str:
    ghost = next(item for item in events_named(events, "ghost") if item["index"] == index)
    return "\n".join(ghost["parts"]).replace("\xa0", " ")


def added_at_end_of(saved_lines: list[str], line: int, typed_text: str) -> str:
    """What was inserted after `    return` + typed_text on a 1-based line of the saved file."""
    text = saved_lines[line - 1]
    typed = "    return" + typed_text
    assert text.startswith(typed), text
    return text[len(typed) :]


def start_afresh(code_server: CodeServer) -> float:
    """The file and the completions toggle as a first attempt finds them (code-server lives
    as long as the module: a rerun would find the file edited and completions toggled off
    by the attempt before). Returns the time telemetry of this attempt starts at."""
    (code_server.workspace / FILE).write_text(SOURCE, encoding="utf-8")
    user_settings = code_server.user_data / "User" / "settings.json"
    settings = json.loads(user_settings.read_text())
    settings.pop("ouzel.completion.enabled", None)
    user_settings.write_text(json.dumps(settings, indent=2))
    return time.time()


def test_ghost_text_appears_and_is_accepted(code_server: CodeServer) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for stale in ARTIFACTS.glob("vscode-*"):
        stale.unlink()
    started = start_afresh(code_server)
    events = drive(
        code_server,
        file=FILE,
        edits=[
            {
                "line": WHOLE_LINE,
                "type": TYPED,
                "accept": "tab",
                "screenshot": str(ARTIFACTS / "vscode-ghost-text.png"),
            },
            {"line": WORD_LINE, "type": WORD_TYPED, "accept": "word"},
        ],
        commands=[
            # The status view shows the server's own answer (its position encoding).
            {
                "title": "ouzel: Show Status",
                "tab": "status.md",
                "text": "Position encoding",
                "screenshot": str(ARTIFACTS / "vscode-status.png"),
            },
            {"title": "ouzel: Toggle Completions", "status": "off"},
        ],
        screenshotStarted=str(ARTIFACTS / "vscode-started.png"),
        screenshotSaved=str(ARTIFACTS / "vscode-accepted.png"),
        screenshotTooltip=str(ARTIFACTS / "vscode-status-tooltip.png"),
        screenshotFailure=str(ARTIFACTS / "vscode-failure.png"),
    )
    keep_logs(code_server)

    # The extension found the workspace's .venv/bin/ouzel and started it over stdio.
    channel = code_server.output_channel()
    venv_ouzel = code_server.workspace / ".venv" / "bin" / "ouzel"
    assert f"starting the language server: stdio {venv_ouzel} serve (venv)" in channel
    assert "initialize from code-server" in channel
    assert "failed" not in events_named(events, "server")[0]["status"]
    # The status bar names the model and the last latency once a suggestion came back.
    saved_status = events_named(events, "saved")[0]["status"]
    assert "gemma" in saved_status.lower() and re.search(r"\d+ ms", saved_status), saved_status
    tooltip = events_named(events, "tooltip")[0]["text"].replace("\xa0", " ")
    # Shown: the two typed places, and the speculative suggestion after the Tab accept
    # when it arrived before the next step (it often does: it is computed in the background).
    # (The tooltip's counts are the server's; telemetry below checks this attempt exactly.)
    counts = re.search(r"suggestions shown (\d+), accepted (\d+)\b", tooltip)
    assert "model: gemma" in tooltip and counts, tooltip
    assert int(counts.group(1)) >= 2 and int(counts.group(2)) >= 1, tooltip
    commands = [item["title"] for item in events_named(events, "command")]
    assert commands == ["ouzel: Show Status", "ouzel: Toggle Completions"]
    user_settings = json.loads((code_server.user_data / "User" / "settings.json").read_text())
    assert user_settings["ouzel.completion.enabled"] is False

    saved = (code_server.workspace / FILE).read_text(encoding="utf-8")
    saved_lines = saved.splitlines()
    source_lines = SOURCE.splitlines()
    # Only the two `return` lines changed.
    assert len(saved_lines) == len(source_lines), saved
    for number, (old, new) in enumerate(zip(source_lines, saved_lines, strict=True), 1):
        if number not in (WHOLE_LINE, WORD_LINE):
            assert old == new, saved

    telemetry = [record for record in code_server.telemetry() if record["ts"] >= started]
    by_event: dict[str, list[dict[str, Any]]] = {}
    for record in telemetry:
        by_event.setdefault(record["event"], []).append(record)

    # Tab inserted the whole suggestion that was served, shown and reported accepted.
    whole = added_at_end_of(saved_lines, WHOLE_LINE, TYPED)
    first_ghost = ghost_text(events, 0)
    assert whole.strip() and first_ghost.strip()
    assert whole.strip().startswith(first_ghost.splitlines()[0].strip()), (whole, first_ghost)
    (accepted,) = by_event["accepted"]
    served = {record["id"]: record for record in by_event["served"]}
    assert served[accepted["id"]]["chars"] == len(whole), (served, whole)
    assert accepted["id"] in {record["id"] for record in by_event["shown"]}

    # Ctrl+Right inserted the start of the second suggestion, reported as a partial accept.
    part = added_at_end_of(saved_lines, WORD_LINE, WORD_TYPED)
    second_ghost = ghost_text(events, 1)
    assert part.strip(), saved
    assert second_ghost.startswith(part) or second_ghost.startswith(part.lstrip()), (
        part,
        second_ghost,
    )
    (partial,) = by_event["partial"]
    assert partial["id"] != accepted["id"]
    assert partial["id"] in served
    assert partial["acceptedChars"] == len(part), (partial, part)
    assert len(part) <= served[partial["id"]]["chars"]


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"]
        + ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_remote_mode_over_tls_with_a_token(code_server: CodeServer, tmp_path: Path) -> None:
    """`ouzel.server.mode: tcp` against `ouzel serve --tcp --token-file --tls-cert`."""
    token_file = tmp_path / "token"
    token_file.write_text("vscode-e2e-token-0123456789abcdef\n")
    token_file.chmod(0o600)
    cert, key = self_signed_certificate(tmp_path)
    server = TcpServer(
        tmp_path,
        *("--token-file", str(token_file), "--tls-cert", str(cert), "--tls-key", str(key)),
    )
    try:
        settings = {
            **USER_SETTINGS,
            "ouzel.server.mode": "tcp",
            "ouzel.server.host": "127.0.0.1",
            "ouzel.server.port": server.port,
            "ouzel.server.tls": True,
            "ouzel.server.tlsCa": str(cert),
            "ouzel.server.tokenFile": str(token_file),
        }
        settings_file = code_server.user_data / "User" / "settings.json"
        settings_file.write_text(json.dumps(settings, indent=2))
        (code_server.workspace / "remote.py").write_text(SOURCE, encoding="utf-8")
        events = drive(
            code_server,
            file="remote.py",
            edits=[
                {
                    "line": WHOLE_LINE,
                    "type": TYPED,
                    "accept": "tab",
                    "screenshot": str(ARTIFACTS / "vscode-remote-ghost-text.png"),
                }
            ],
            screenshotFailure=str(ARTIFACTS / "vscode-remote-failure.png"),
        )
        channel = code_server.output_channel()
        assert f"starting the language server: tls 127.0.0.1:{server.port}" in channel

        saved_lines = (code_server.workspace / "remote.py").read_text().splitlines()
        whole = added_at_end_of(saved_lines, WHOLE_LINE, TYPED)
        assert whole.strip(), saved_lines
        # The TCP server (not a stdio child) served it and heard the accept.
        telemetry_file = tmp_path / "state" / "ouzel" / "completions.jsonl"
        records = [json.loads(line) for line in telemetry_file.read_text().splitlines()]
        accepted = [record for record in records if record["event"] == "accepted"]
        assert len(accepted) == 1 and accepted[0]["chars"] == len(whole), records
        assert any(event["event"] == "ghost" for event in events)
    finally:
        server.close()
    assert "vscode-e2e-token" not in server.stderr_path.read_text()


def test_a_server_that_is_down_is_reported(code_server: CodeServer) -> None:
    """TCP mode with nothing listening: a red status bar item and a notification that says
    how to start the server, instead of silence."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = {
        **USER_SETTINGS,
        "ouzel.server.mode": "tcp",
        "ouzel.server.host": "127.0.0.1",
        "ouzel.server.port": port,
    }
    (code_server.user_data / "User" / "settings.json").write_text(json.dumps(settings, indent=2))
    events = drive(
        code_server,
        expectServerFailure=True,
        screenshotServerFailure=str(ARTIFACTS / "vscode-server-down.png"),
        screenshotFailure=str(ARTIFACTS / "vscode-failure.png"),
    )
    failure = events_named(events, "failure")[0]
    assert "server failed" in failure["status"]
    expected = f"cannot reach the ouzel server at tcp 127.0.0.1:{port} (connect ECONNREFUSED"
    messages = failure["notifications"]
    assert any(
        expected in text and f"ouzel serve --tcp 127.0.0.1:{port}" in text for text in messages
    ), messages
    # Said once, in words that help: not the language client's generic message as well.
    assert not any("couldn't create connection" in text for text in messages), messages
