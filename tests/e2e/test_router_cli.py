"""`ouzel ask` as a user runs it: workspace excerpts from a real index in the question,
the privacy gate on the command line, and what happens without an index."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ouzel.server.settings import user_config_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from scripted_openai_server import Reply, ScriptedServer, Seen, chat_text_events, models_reply

pytestmark = pytest.mark.e2e

OUZEL = str(Path(sys.executable).with_name("ouzel"))
CODE = '''"""Widgets."""


def frobnicate_widgets(count: int) -> list[str]:
    """Turn `count` widgets inside out."""
    return [f"widget-{i}" for i in range(count)]
'''


@pytest.fixture
def remote() -> Iterator[ScriptedServer]:
    def script(seen: Seen) -> Reply:
        if seen.path.endswith("/models"):
            return models_reply("scripted")
        return Reply(events=chat_text_events(["It turns ", "widgets inside out."]))

    with ScriptedServer(script) as server:
        yield server


def ouzel(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OUZEL, *args], cwd=cwd, env=dict(os.environ), capture_output=True, text=True, timeout=120
    )


def asked(server: ScriptedServer) -> str:
    chats = [seen for seen in server.seen if seen.path.endswith("/chat/completions")]
    assert len(chats) == 1
    return str(chats[0].body["messages"][-1]["content"])


def test_ask_puts_workspace_excerpts_in_the_question(
    remote: ScriptedServer, tmp_path: Path
) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "widgets.py").write_text(CODE)
    indexed = ouzel("index", str(tmp_path), cwd=tmp_path)
    assert indexed.returncode == 0, indexed.stderr
    out = ouzel(
        "ask", "--endpoint", remote.base_url, "what does frobnicate_widgets do?", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "It turns widgets inside out.\n"
    assert "answered by 'remote'" in out.stderr
    question = asked(remote)
    assert "### widgets.py:" in question and "def frobnicate_widgets" in question
    assert question.endswith("Question: what does frobnicate_widgets do?")
    # Excerpt labels count lines from 1, as editors do: the label names the excerpt's lines.
    for first, last, body in re.findall(
        r"### widgets\.py:(\d+)-(\d+)\n```\n(.*?)\n```", question, re.S
    ):
        assert body.splitlines() == CODE.splitlines()[int(first) - 1 : int(last)]
    assert re.findall(r"### widgets\.py:(\d+)-", question)


def test_ask_without_an_index_still_answers(remote: ScriptedServer, tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    out = ouzel("ask", "--endpoint", remote.base_url, "hello?", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "no workspace context" in out.stderr
    assert asked(remote) == "hello?"


def test_ask_refuses_a_remote_endpoint_unless_allowed(tmp_path: Path) -> None:
    # Routing is the user's: a workspace file cannot set it (server/settings_trust.py).
    user_config_path().parent.mkdir(parents=True)
    user_config_path().write_text("[routing]\nallow_fallback = false\n")
    endpoint = "https://gpu.invalid/v1"
    out = ouzel("ask", "--endpoint", endpoint, "--no-context", "hi", cwd=tmp_path)
    assert out.returncode == 1
    assert "gpu.invalid" in out.stderr and "privacy.allow_remote" in out.stderr
    allowed = ouzel(
        "ask", "--endpoint", endpoint, "--allow-remote", "--no-context", "hi", cwd=tmp_path
    )
    assert allowed.returncode == 1  # allowed now, so it is tried: the name does not resolve
    assert "cannot reach https://gpu.invalid/v1" in allowed.stderr


def test_empty_question_is_refused(tmp_path: Path) -> None:
    out = ouzel("ask", "  ", cwd=tmp_path)
    assert out.returncode == 2 and "empty" in out.stderr


def test_ask_with_the_remote_down_gets_a_bounded_answer_from_the_named_local_model(
    tmp_path: Path,
) -> None:
    # The reported case: the embedded model looped on this question for 58 s.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"  # nothing listens there
    out = ouzel(
        "ask",
        "--endpoint",
        dead,
        "--no-context",
        "--max-tokens",
        "400",
        "Write one word: hello",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    model = "'local-chat' (qwen2.5-coder-1.5b-instruct-q4_k_m.gguf)"  # the chat default
    assert f"answering with {model} instead" in out.stderr
    assert f"answered by {model}" in out.stderr
    # It ended on its end-of-turn token or on the repetition rule, not at the token cap.
    assert "reached --max-tokens" not in out.stderr, out.stdout
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert all(lines[i : i + 7] != [lines[i]] * 7 for i in range(len(lines))), out.stdout
