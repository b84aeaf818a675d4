"""Two `ouzel serve` processes on one workspace: one writes the index, the other reads it
and takes over when the first goes; `workspace/didChangeWatchedFiles` with watching off;
`ouzel index` while a server writes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from rpc import RawClient, StdioServer, server_env
from waiting import wait_for

pytestmark = pytest.mark.e2e

# `python -m ouzel.server.cli` would register feature commands on a second copy of the module.
OUZEL = [sys.executable, "-c", "from ouzel.server.cli import main; raise SystemExit(main())"]


def index_status(client: RawClient) -> dict[str, Any]:
    result: dict[str, Any] = client.request("ouzel/status")["result"].get("index", {})
    return result


def root_status(client: RawClient) -> dict[str, Any] | None:
    status = index_status(client)
    roots = status.get("roots") or []
    return roots[0] if roots and roots[0].get("phase") == "idle" else None


def names(client: RawClient, query: str) -> list[str]:
    return [s["name"] for s in client.request("workspace/symbol", {"query": query})["result"]]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("index-servers")
    root = base / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.py").write_text("def first_function():\n    return 1\n")
    (root / "src" / "lib.go").write_text("package src\n\nfunc GoHelper() int { return 1 }\n")
    homes = [base / "one", base / "two"]
    for home in homes:
        home.mkdir()
    first = StdioServer(homes[0])
    first.client.initialize(root, options={"index": {"watch": False}})
    wait_for(lambda: root_status(first.client), 30, "the first server's index")
    second = StdioServer(homes[1])
    second.client.initialize(root)
    wait_for(lambda: root_status(second.client), 30, "the second server's index")
    yield {"root": root, "base": base, "first": first, "second": second}
    for server in (first, second):
        if server.process.poll() is None:
            server.client.request("shutdown")
            server.client.notify("exit")
        server.close()


def test_one_writer_one_reader(servers: dict[str, Any]) -> None:
    first: StdioServer = servers["first"]
    second: StdioServer = servers["second"]
    writer = root_status(first.client)
    reader = root_status(second.client)
    assert writer is not None and reader is not None
    assert writer["writable"] is True and writer["watching"] is False
    assert reader["writable"] is False
    assert reader["writerPid"] == first.process.pid
    assert reader["filesIndexed"] == writer["filesIndexed"] == 2
    assert names(second.client, "GoHelper") == ["GoHelper"]


def test_watched_files_notification_and_the_reader_follows(servers: dict[str, Any]) -> None:
    first: StdioServer = servers["first"]
    second: StdioServer = servers["second"]
    path = servers["root"] / "src" / "added.py"
    path.write_text("def announced_by_the_editor():\n    pass\n")
    time.sleep(1.0)
    assert names(first.client, "announced_by_the_editor") == []  # watching is off
    first.client.notify(
        "workspace/didChangeWatchedFiles", {"changes": [{"uri": path.as_uri(), "type": 1}]}
    )
    wait_for(
        lambda: names(first.client, "announced_by_the_editor"),
        30,
        "the first server to see the file",
    )
    wait_for(
        lambda: names(second.client, "announced_by_the_editor"),
        30,
        "the second server to see the file",
    )


def test_ouzel_index_waits_for_the_writer_then_shows_its_state(servers: dict[str, Any]) -> None:
    out = subprocess.run(
        [*OUZEL, "index", str(servers["root"]), "--json", "--wait", "1"],
        capture_output=True,
        text=True,
        env=server_env(servers["base"]),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "is writing this index; waiting up to 1 s" in out.stderr
    assert "keeps the index up to date" in out.stderr
    state = json.loads(out.stdout)
    assert state["status"]["writable"] is False
    assert state["status"]["files_indexed"] == 3
    assert "summary" not in state


def test_the_reader_takes_over_when_the_writer_exits(servers: dict[str, Any]) -> None:
    first: StdioServer = servers["first"]
    second: StdioServer = servers["second"]
    first.client.request("shutdown")
    first.client.notify("exit")
    assert first.close() == 0
    wait_for(lambda: (root_status(second.client) or {}).get("writable"), 30, "the takeover")
    status = wait_for(lambda: root_status(second.client), 30, "the new writer's status")
    assert status["watching"] is True
    path = servers["root"] / "src" / "late.py"
    path.write_text("def after_the_first_server_left():\n    pass\n")
    wait_for(lambda: names(second.client, "after_the_first_server_left"), 30, "late.py indexed")
