"""AI code actions and chat over a real `ouzel serve`: list latency, first token, cancel.

Measured from the client's side of a stdio LSP connection (what an editor sees):

- `textDocument/codeAction` round trip, p50/p95 over many requests at different lines of
  a 600-line file (no model call is made for the list);
- time to the first streamed delta (`$/progress` report) of `ouzel.codeAction.run`
  (explain, add docstring) and of `ouzel/chat`, per model route;
- cancel latency: from `window/workDoneProgress/cancel` (chat) or `$/cancelRequest`
  (command) to the answer, which comes only after generation stopped; and the deltas
  that still arrived after the cancel.

Routes: `remote` is Qwen2.5-Coder on a real `llama_cpp.server` (127.0.0.1); `local:NAME`
runs the same GGUF in process through the `local-chat` profile.

    python benchmarks/code_actions.py [--list-requests 300] [--runs 2] [--max-tokens 24]
        [--local qwen2.5-coder-0.5b,qwen2.5-coder-1.5b] [--remote qwen2.5-coder-0.5b]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from queue import Queue
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "inference"))

from models import model_file  # noqa: E402  (tests/models.py: where the GGUFs are)
from real_servers import LlamaServer  # noqa: E402
from rpc import RawClient, StdioServer  # noqa: E402

KEY = "bench-key"
KEY_VARIABLE = "OUZEL_BENCH_KEY"


class Stamped(list):  # type: ignore[type-arg]
    """Notifications stamped with their arrival time on the reader thread."""

    def append(self, item: Any) -> None:
        item["_at"] = time.perf_counter()
        super().append(item)


class StampedQueue(Queue):  # type: ignore[type-arg]
    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        item["_at"] = time.perf_counter()
        super().put(item, block, timeout)


def source_file(functions: int = 100) -> str:
    blocks = [
        f"def function_{n}(value, scale={n}):\n"
        f"    total = value * scale\n"
        f"    if total > {n * 10}:\n"
        f"        return total - {n}\n"
        f"    return total\n"
        for n in range(functions)
    ]
    return "\n\n".join(blocks) + "\n"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start(tmp: Path, workspace: Path, options: dict[str, Any]) -> StdioServer:
    os.environ[KEY_VARIABLE] = KEY
    process = StdioServer(tmp)
    client = process.client
    client.notifications = Stamped(client.notifications)
    client.inbox = StampedQueue()
    client.request_handlers["workspace/applyEdit"] = lambda m: {"applied": False}
    client.initialize(root=workspace, options=options)
    return process


def open_doc(client: RawClient, path: Path) -> str:
    uri = path.as_uri()
    client.notify(
        "textDocument/didOpen",
        {
            "textDocument": {
                "uri": uri,
                "languageId": "python",
                "version": 1,
                "text": path.read_text(),
            }
        },
    )
    return uri


def deltas(client: RawClient, token: Any) -> list[dict[str, Any]]:
    return [
        n
        for n in list(client.notifications)
        if n["method"] == "$/progress"
        and n["params"]["token"] == token
        and n["params"]["value"].get("delta")
    ]


def wait(what: str, predicate: Any, timeout: float = 300.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.002)
    raise TimeoutError(f"no {what} after {timeout} s")


def list_latency(client: RawClient, uri: str, requests: int) -> list[float]:
    times = []
    for n in range(requests):
        line = (n * 37) % 590
        params = {
            "textDocument": {"uri": uri},
            "range": {
                "start": {"line": line, "character": 4},
                "end": {"line": line, "character": 4},
            },
            "context": {"diagnostics": []},
        }
        sent = time.perf_counter()
        answer = client.request("textDocument/codeAction", params)
        times.append((answer["_at"] - sent) * 1000)
        assert answer["result"], answer
    return times


def first_delta_of_command(client: RawClient, uri: str, action: str, line: int) -> float:
    before = len(client.server_requests)
    argument = {
        "action": action,
        "textDocument": {"uri": uri, "version": 1},
        "range": {"start": {"line": line, "character": 4}, "end": {"line": line, "character": 4}},
    }
    sent = time.perf_counter()
    msg_id = client.request_async(
        "workspace/executeCommand", {"command": "ouzel.codeAction.run", "arguments": [argument]}
    )
    token = wait(
        "progress token",
        lambda: next(
            (
                r["params"]["token"]
                for r in client.server_requests[before:]
                if r["method"] == "window/workDoneProgress/create"
                and str(r["params"]["token"]).startswith("ouzel-code-action")
            ),
            None,
        ),
    )
    first = wait("first delta", lambda: deltas(client, token))[0]["_at"]
    client.wait_response(msg_id, timeout=600)
    return (first - sent) * 1000


def first_delta_of_chat(client: RawClient, token: str) -> float:
    sent = time.perf_counter()
    msg_id = client.request_async(
        "ouzel/chat",
        {
            "message": "In one sentence: what does function_3 return?",
            "workDoneToken": token,
            "maxTokens": 24,
        },
    )
    first = wait("first chat delta", lambda: deltas(client, token))[0]["_at"]
    client.wait_response(msg_id, timeout=600)
    return (first - sent) * 1000


def cancel_chat(client: RawClient, token: str) -> tuple[float, int]:
    msg_id = client.request_async(
        "ouzel/chat",
        {
            "message": "Write a long story about a river.",
            "workDoneToken": token,
            "context": {"index": False, "openFiles": False, "history": False},
        },
    )
    wait("a delta to cancel", lambda: len(deltas(client, token)) >= 3)
    cancelled = time.perf_counter()
    client.notify("window/workDoneProgress/cancel", {"token": token})
    answer = client.wait_response(msg_id, timeout=120)
    assert answer["result"]["cancelled"], answer
    late = [d for d in deltas(client, token) if d["_at"] > cancelled]
    return (answer["_at"] - cancelled) * 1000, len(late)


def cancel_command(client: RawClient, uri: str) -> tuple[float, int]:
    before = len(client.server_requests)
    argument = {
        "action": "explain",
        "textDocument": {"uri": uri, "version": 1},
        "range": {"start": {"line": 0, "character": 0}, "end": {"line": 40, "character": 0}},
    }
    msg_id = client.request_async(
        "workspace/executeCommand", {"command": "ouzel.codeAction.run", "arguments": [argument]}
    )
    token = wait(
        "progress token",
        lambda: next(
            (
                r["params"]["token"]
                for r in client.server_requests[before:]
                if r["method"] == "window/workDoneProgress/create"
                and str(r["params"]["token"]).startswith("ouzel-code-action")
            ),
            None,
        ),
    )
    wait("a delta to cancel", lambda: len(deltas(client, token)) >= 3)
    cancelled = time.perf_counter()
    client.notify("$/cancelRequest", {"id": msg_id})
    wait(
        "the end of the stream",
        lambda: [
            n
            for n in list(client.notifications)
            if n["method"] == "$/progress"
            and n["params"]["token"] == token
            and n["params"]["value"]["kind"] == "end"
        ],
        timeout=120,
    )
    ended = next(
        n["_at"]
        for n in client.notifications
        if n["method"] == "$/progress"
        and n["params"]["token"] == token
        and n["params"]["value"]["kind"] == "end"
    )
    late = [d for d in deltas(client, token) if d["_at"] > cancelled]
    return (ended - cancelled) * 1000, len(late)


def run_route(
    name: str, options: dict[str, Any], tmp: Path, workspace: Path, args: Any
) -> dict[str, Any]:
    process = start(tmp / name.replace(":", "-"), workspace, options)
    client = process.client
    try:
        uri = open_doc(client, workspace / "big.py")
        row: dict[str, Any] = {"route": name}
        first_delta_of_chat(client, f"{name}-warm")  # loads the model, warms the cache
        row["explain"] = [
            first_delta_of_command(client, uri, "explain", 7 * k + 1) for k in range(args.runs)
        ]
        row["docstring"] = [
            first_delta_of_command(client, uri, "docstring", 7 * k + 1) for k in range(args.runs)
        ]
        row["chat"] = [first_delta_of_chat(client, f"{name}-{k}") for k in range(args.runs)]
        row["cancel_chat"] = [cancel_chat(client, f"{name}-cancel-{k}") for k in range(args.runs)]
        row["cancel_command"] = [cancel_command(client, uri) for _ in range(args.runs)]
        if name == "remote":
            row["list"] = list_latency(client, uri, args.list_requests)
        return row
    finally:
        process.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list-requests", type=int, default=300)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument(
        "--max-tokens", type=int, default=24, help="chat.max_tokens: answers only need to start"
    )
    parser.add_argument("--remote", default="qwen2.5-coder-0.5b")
    parser.add_argument("--local", default="qwen2.5-coder-0.5b,qwen2.5-coder-1.5b")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ouzel-bench-") as folder:
        tmp = Path(folder)
        workspace = tmp / "ws"
        workspace.mkdir()
        (workspace / "big.py").write_text(source_file())
        for sub in ("remote", *[f"local-{m}" for m in args.local.split(",") if m]):
            (tmp / sub).mkdir()
        rows = []
        llama = LlamaServer(
            KEY, tmp / "llama.log", model=model_file(args.remote), chat_format=None, n_ctx=4096
        )
        llama.start(timeout=300)
        try:
            remote = {
                "models": {
                    "remote": {
                        "backend": "openai",
                        "base_url": llama.base_url,
                        "api_key_env": KEY_VARIABLE,
                    }
                },
                "routing": {"chat": ["remote"], "code_action": ["remote"]},
                "chat": {"max_tokens": args.max_tokens},
            }
            rows.append(run_route("remote", remote, tmp, workspace, args))
            print_table(rows, args)
        finally:
            llama.stop()
        for name in [m for m in args.local.split(",") if m]:
            local = {
                "models": {
                    "local-chat": {
                        "backend": "llama_cpp",
                        "model_path": str(model_file(name)),
                        "context_length": 4096,
                    }
                },
                "routing": {"chat": ["local-chat"], "code_action": ["local-chat"]},
                "chat": {"max_tokens": args.max_tokens},
            }
            rows.append(run_route(f"local-{name}", local, tmp, workspace, args))
            print_table(rows, args)  # after each route: a slow machine still leaves figures


def print_table(rows: list[dict[str, Any]], args: Any) -> None:
    load = os.getloadavg()
    print(
        f"\nouzel code actions and chat (load average {load[0]:.1f}, {os.cpu_count()} cores, runs={args.runs})\n"
    )
    for row in rows:
        if "list" in row:
            times = row["list"]
            print(
                f"textDocument/codeAction round trip over {len(times)} requests: "
                f"p50 {statistics.median(times):.2f} ms, p95 {pct(times, 0.95):.2f} ms, "
                f"max {max(times):.2f} ms\n"
            )
    header = f"{'route':<28} {'explain 1st':>12} {'docstring 1st':>14} {'chat 1st':>10} {'cancel chat':>12} {'cancel cmd':>11} {'late deltas':>12}"
    print(header)
    print("-" * len(header))
    for row in rows:
        cancels = row["cancel_chat"] + row["cancel_command"]
        late = sum(n for _, n in cancels)
        print(
            f"{row['route']:<28} {statistics.median(row['explain']):>9.0f} ms "
            f"{statistics.median(row['docstring']):>11.0f} ms {statistics.median(row['chat']):>7.0f} ms "
            f"{statistics.median([t for t, _ in row['cancel_chat']]):>9.0f} ms "
            f"{statistics.median([t for t, _ in row['cancel_command']]):>8.0f} ms {late:>12d}"
        )
    print(
        "\n1st: median time from the request to the first streamed delta; cancel: median time "
        "from the cancel to the answer (chat) / the end of the stream (command), i.e. until "
        "generation stopped; late deltas: deltas that arrived after a cancel, all runs."
    )


if __name__ == "__main__":
    main()
