"""run_command: destructive detection (argv, `sh -c`, long chains) and the real sandbox."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from ouzel.inference.types import CancelToken
from ouzel.server.agent import commands
from ouzel.server.agent.commands import destructive_reasons


@pytest.mark.parametrize(
    "argv",
    [
        ["rm", "-rf", "build"],
        ["rm", "-r", "x"],
        ["rm", "--recursive", "x"],
        ["/bin/rm", "-fR", "x"],
        ["sudo", "rm", "-rf", "/"],
        ["env", "A=1", "rm", "-rf", "x"],
        ["timeout", "5", "rm", "-rf", "x"],
        ["xargs", "-0", "rm", "-rf"],
        ["git", "reset", "--hard", "HEAD~3"],
        ["git", "-C", "repo", "reset", "--hard"],
        ["git", "push", "--force", "origin", "main"],
        ["git", "push", "-f"],
        ["git", "push", "origin", "+main"],
        ["git", "push", "--force-with-lease"],
        ["git", "clean", "-fdx"],
        ["git", "checkout", "--", "."],
        ["git", "branch", "-D", "feature"],
        ["git", "stash", "clear"],
        ["find", ".", "-name", "*.py", "-delete"],
        ["dd", "if=/dev/zero", "of=disk.img"],
        ["chmod", "-R", "777", "."],
        ["sh", "-c", "echo hi && rm -rf /"],
        ["bash", "-lc", "cd x; git reset --hard"],
        ["sh", "-c", "echo $(rm -rf x)"],
        ["sh", "-c", "echo `rm -rf x`"],
        ["sh", "-c", "sh -c 'bash -c \"rm -rf x\"'"],
        ["sh", "-c", "true | xargs rm -rf"],
        ["sh", "-c", "if true; then git push --force; fi"],
        ["sh", "-c", "echo 'unbalanced"],
        ["python3", "-c", "import shutil; shutil.rmtree('x')"],
        ["bash", "deploy.sh"],
    ],
)
def test_destructive_commands_are_found(argv: list[str]) -> None:
    assert destructive_reasons(argv), argv


@pytest.mark.parametrize(
    "argv",
    [
        ["ls", "-la"],
        ["rm", "file.txt"],
        ["git", "status"],
        ["git", "push", "origin", "main"],
        ["git", "commit", "-m", "rm -rf is mentioned here"],
        ["pytest", "-q"],
        ["sh", "-c", "echo 'rm -rf /'"],
        ["grep", "-r", "reset --hard", "."],
        ["python3", "script.py"],
    ],
)
def test_ordinary_commands_are_not_destructive(argv: list[str]) -> None:
    assert destructive_reasons(argv) == [], argv


def test_a_chain_of_a_thousand_parts_is_checked_to_the_end() -> None:
    script = " && ".join(["echo ok"] * 999 + ["rm -rf ~"])
    assert destructive_reasons(["sh", "-c", script])
    separators = ["; ", " && ", " || ", " | ", "\n"]
    script = "".join(f"true{separators[i % 5]}" for i in range(999)) + "git reset --hard"
    assert destructive_reasons(["bash", "-c", script])


pytestmark_bwrap = pytest.mark.skipif(commands.bwrap_path() is None, reason="bwrap missing")


@pytestmark_bwrap
async def test_bwrap_sandbox_has_no_network_and_writes_only_in_the_workspace(
    tmp_path: Path,
) -> None:
    ws = tmp_path / "ws"
    (ws / ".git").mkdir(parents=True)
    (ws / ".git" / "config").write_text("[core]\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    script = (
        "echo made > inside.txt; "
        f"echo bad > {outside}/escaped.txt 2>/dev/null || echo outside-refused; "
        "echo bad >> .git/config 2>/dev/null || echo git-refused; "
        f"(exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo net-open || echo net-refused; "
        "env"
    )
    result = await commands.run(
        ["bash", "-c", script], str(ws), [str(ws)], CancelToken(), 20, 100_000
    )
    listener.setblocking(False)
    try:
        listener.accept()  # a connection that got through would wait in the backlog
        connected = True
    except BlockingIOError:
        connected = False
    listener.close()
    assert result.sandboxed and result.exit_code == 0, result.output
    assert (ws / "inside.txt").read_text() == "made\n"
    assert not (outside / "escaped.txt").exists()
    assert (ws / ".git" / "config").read_text() == "[core]\n"
    assert "outside-refused" in result.output and "git-refused" in result.output
    assert "net-refused" in result.output and not connected
    assert "OPENAI" not in result.output and "XDG_CONFIG_HOME" not in result.output


async def test_timeout_output_cap_and_cancel(tmp_path: Path) -> None:
    result = await commands.run(
        ["sh", "-c", "yes | head -c 200000; sleep 30"],
        str(tmp_path),
        [str(tmp_path)],
        CancelToken(),
        2,
        5000,
    )
    assert result.timed_out and result.exit_code is None
    assert result.truncated and len(result.output) == 5000
    cancel = CancelToken()
    asyncio.get_running_loop().call_later(0.3, cancel.cancel)
    result = await commands.run(["sleep", "30"], str(tmp_path), [str(tmp_path)], cancel, 60, 1000)
    assert result.exit_code is None and not result.timed_out


async def test_without_bwrap_the_result_says_so(tmp_path: Path) -> None:
    result = await commands.run(
        ["sh", "-c", "echo $HOME"],
        str(tmp_path),
        [str(tmp_path)],
        CancelToken(),
        10,
        1000,
        use_bwrap=False,
    )
    assert not result.sandboxed and result.exit_code == 0
    assert result.output.strip() == str(tmp_path)


async def test_a_missing_program_is_a_clear_result(tmp_path: Path) -> None:
    result = await commands.run(
        ["no-such-program-xyz"],
        str(tmp_path),
        [str(tmp_path)],
        CancelToken(),
        10,
        1000,
        use_bwrap=False,
    )
    assert result.exit_code is None and "cannot start" in result.output
