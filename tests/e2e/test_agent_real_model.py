"""The agent with a real tool-calling model: Qwen2.5-Coder-1.5B-Instruct behind
`python -m llama_cpp.server`, doing a two-file rename through the real loop and backend.

`--chat_format chatml-function-calling` is the format that makes this model's tool calls
work there: the GGUF's own template lets the 1.5B invent tool names in fenced JSON. That
format streams only the first word of a tool call and drops `tool` messages, so the
backend asks unstreamed (`stream_tool_calls=False`) and results go back as delimited
`user` messages. Slow on two shared cores (each model call takes tens of seconds).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agent"))
from agent_fixtures import RecordingConfirmer, make_context, tree_hashes
from agent_models import qwen_15b
from real_servers import LlamaServer

from ouzel.inference.openai_compat import Endpoint, OpenAICompatBackend
from ouzel.server.agent.checkpoint import TurnHistory
from ouzel.server.agent.loop import AgentLoop
from ouzel.server.settings import AgentSettings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

# Seen on 2 shared cores (load 12-19): the 1.5B renames util.py, fixes main.py's call after
# the "did you mean" round, and runs out of 14 steps before the import line (it rereads
# files). The loop, tools and confirmations work; the model does not finish the task yet.
NOT_YET = pytest.mark.xfail(
    reason="Qwen2.5-Coder-1.5B via chatml-function-calling does not finish the two-file "
    "rename within 14 steps (see the comment above)",
    strict=False,
)

API_KEY = "agent-e2e-key"


@pytest.fixture(scope="module")
def qwen_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    model = qwen_15b()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    server = LlamaServer(
        API_KEY, log, model=model, chat_format="chatml-function-calling", n_ctx=4096
    )
    server.start(timeout=300)
    try:
        yield server
    finally:
        server.stop()


@NOT_YET
async def test_two_file_rename_with_the_real_model(
    qwen_server: LlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUZEL_AGENT_E2E_KEY", API_KEY)
    ws = tmp_path / "repo"
    ws.mkdir()
    (ws / "util.py").write_text("def add(a, b):\n    return a + b\n")
    (ws / "main.py").write_text("from util import add\n\nprint(add(1, 2))\n")
    before = tree_hashes(ws)
    confirmer = RecordingConfirmer()
    history = TurnHistory()
    ctx = make_context(ws, confirmer, AgentSettings(max_steps=14, max_wall_s=1200))
    ctx.checkpoint = history.start("rename")
    endpoint = Endpoint(
        base_url=qwen_server.base_url,
        api_key_env="OUZEL_AGENT_E2E_KEY",
        read_timeout_s=600,
        stream_tool_calls=False,
    )
    backend = OpenAICompatBackend("qwen-1.5b", endpoint)
    loop = AgentLoop(
        backend,
        ctx,
        max_answer_tokens=200,
        only_tools=("read_file", "propose_edit"),
        tool_results_role="user",
    )
    try:
        result = await loop.run(
            "Rename the function `add` to `plus`. Two files: in util.py change "
            "`def add(a, b):` to `def plus(a, b):`; in main.py change `add` to `plus` in the "
            "import and in the call. Then stop."
        )
    finally:
        await backend.aclose()
    transcript = "\n".join(str(record) for record in result.transcript)
    util, main = (ws / "util.py").read_text(), (ws / "main.py").read_text()
    assert "def plus(a, b):" in util, transcript
    assert "plus" in main and "add" not in main, transcript
    run = subprocess.run(
        [sys.executable, "main.py"], cwd=ws, capture_output=True, text=True, check=False
    )
    assert run.stdout.strip() == "3", run.stderr
    assert {proposal.path for proposal in confirmer.asked_edits} >= {"util.py", "main.py"}
    # The whole turn is undone in one step, byte for byte.
    turn, problems = history.undo_last(ctx.sandbox)
    assert turn == "rename" and problems == []
    assert tree_hashes(ws) == before
