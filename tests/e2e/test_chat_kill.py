"""Chat history survives `kill -9` of a real `ouzel serve` in the middle of a stream, 20 times:
no completed turn is lost, the store stays intact, the killed turn reads `interrupted`."""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from chat_rig import LlamaServer, progress_values, start_llama, start_ouzel, wait_for

pytestmark = pytest.mark.e2e

KILLS = 20


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    server = start_llama(tmp_path_factory.mktemp("llama") / "server.log")
    yield server
    server.stop()


@pytest.mark.timeout(1200)
def test_kill_9_mid_stream_loses_no_completed_turn(tmp_path: Path, llama: LlamaServer) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "notes.py").write_text("def note():\n    return 'kept'\n")
    completed: dict[str, str] = {}  # turn id -> reply, as the client received them
    for round_number in range(KILLS):
        process = start_ouzel(tmp_path, workspace, llama)
        client = process.client
        try:
            short = client.request(
                "ouzel/chat",
                {
                    "message": f"Say the number {round_number}.",
                    "maxTokens": 6,
                    "context": {"index": False, "openFiles": False, "history": False},
                },
                timeout=120,
            )["result"]
            assert short["stopReason"] in ("stop", "length"), short["error"]
            completed[short["turnId"]] = short["reply"]
            token = f"killed-{round_number}"
            client.request_async(
                "ouzel/chat",
                {
                    "message": "Write a long story about a river.",
                    "workDoneToken": token,
                    "context": {"index": False, "openFiles": False, "history": False},
                },
            )
            wait_for(
                f"a streamed delta in round {round_number}",
                lambda token=token, client=client: [
                    v for v in progress_values(client, token) if v["kind"] == "report"
                ],
                timeout=120,
            )
            process.process.send_signal(signal.SIGKILL)
            process.process.wait(10)
        finally:
            process.close()
    stores = list((tmp_path / "state" / "ouzel" / "chat").glob("*.sqlite3"))
    assert len(stores) == 1
    with sqlite3.connect(stores[0]) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    survivor = start_ouzel(tmp_path, workspace, llama)
    try:
        conversations = survivor.client.request("ouzel/chatList", {"limit": 100})["result"][
            "conversations"
        ]
        assert len(conversations) == 2 * KILLS
        stored: dict[str, dict[str, str]] = {}
        for conversation in conversations:
            loaded = survivor.client.request(
                "ouzel/chatLoad", {"conversationId": conversation["conversationId"]}
            )["result"]
            for turn in loaded["turns"]:
                stored[turn["turnId"]] = turn
        for turn_id, reply in completed.items():
            assert stored[turn_id]["status"] == "done" and stored[turn_id]["reply"] == reply
        killed = [t for t in stored.values() if t["turnId"] not in completed]
        assert len(killed) == KILLS and {t["status"] for t in killed} == {"interrupted"}
    finally:
        survivor.close()
