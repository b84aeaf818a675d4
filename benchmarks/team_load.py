"""Team server load: many LSP clients typing against one `ouzel serve --tcp` (token + TLS).

Starts a real model server (`llama_cpp.server` with the embedded model), a team server with
a tokens file (one user per client), a self-signed certificate (openssl CLI) and /metrics,
then N clients over TLS type into their own file for `--seconds`: a keystroke, then ghost
text, waiting for its answer before the next keystroke (so the latency is the user's), and
now and then another request (`workspace/symbol` every 15 keystrokes, a short `ouzel/chat`
turn every `--chat-every` keystrokes, on the same model server). One probe client
types at the same pace throughout; in the middle third one more client floods the server
(requests as fast as it can, far past its concurrency limit): the probe's ghost-text
latency with and without the flood is the isolation figure.

Fault cases, once each, at 80% of the run (after the flood): a client that disconnects
mid-request, an oversized message, a bad token, TLS handshake garbage, and the model server
killed and restarted. Prints p50/p95 per method, errors of the regular clients (must be 0), each fault's
outcome, and the server's RSS growth.

    python benchmarks/team_load.py [--clients 50] [--seconds 120] [--cps 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "inference"))

from real_servers import EMBEDDED_MODEL, free_port  # noqa: E402
from rpc import RawClient, server_env  # noqa: E402

from ouzel.server import tokens  # noqa: E402

CANCELLED = -32800
TEXT = "def total(values):\n    result = 0\n    for value in values:\n        result += value\n"


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    cancelled: int = 0
    # Chat turns refused with the router's reason while the model server was down (the
    # fault case kills it): a clear answer, not an error.
    chat_refused_down: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, method: str, seconds: float) -> None:
        with self.lock:
            self.latencies.setdefault(method, []).append(seconds)

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)


def start_model_server(port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(EMBEDDED_MODEL)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"]
    command += ["--api_key", "bench-key", "--chat_format", "gemma"]
    command += ["--interrupt_requests", "False"]  # queue, as a team's server must (DEPLOY.md)
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


def wait_port(port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"]
        + ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key


class Team:
    def __init__(self, folder: Path, clients: int) -> None:
        self.folder = folder
        self.model_port, self.lsp_port, self.metrics_port = free_port(), free_port(), free_port()
        self.cert, key = self_signed(folder)
        self.tokens_file = folder / "tokens.json"
        names = [f"user{index:02d}" for index in range(clients)] + ["flood", "fault", "warm"]
        self.tokens = {name: tokens.add_token(self.tokens_file, name) for name in names}
        config = folder / "config" / "ouzel"
        config.mkdir(parents=True)
        (config / "config.toml").write_text(
            "[models.remote]\nbackend = 'openai'\n"
            f"base_url = 'http://127.0.0.1:{self.model_port}/v1'\napi_key_env = 'BENCH_KEY'\n"
            "[routing]\ninline_completion = ['remote']\nchat = ['remote']\n"
            "[index]\nenabled = false\n"
        )
        self.model = start_model_server(self.model_port, folder / "model.log")
        wait_port(self.model_port, 120, "llama_cpp.server")
        env = server_env(folder) | {"BENCH_KEY": "bench-key"}
        command = [sys.executable, "-m", "ouzel.server.cli", "serve"]
        command += ["--tcp", f"127.0.0.1:{self.lsp_port}", "--tokens-file", str(self.tokens_file)]
        command += ["--tls-cert", str(self.cert), "--tls-key", str(key)]
        command += ["--metrics", f"127.0.0.1:{self.metrics_port}", "--max-message-mb", "32"]
        with (folder / "ouzel.stderr").open("wb") as out:
            self.server = subprocess.Popen(command, stderr=out, stdout=subprocess.DEVNULL, env=env)
        wait_port(self.lsp_port, 60, "ouzel serve --tcp")
        self.context = ssl.create_default_context(cafile=str(self.cert))

    def connect(self) -> tuple[RawClient, ssl.SSLSocket]:
        raw = socket.create_connection(("127.0.0.1", self.lsp_port), timeout=60)
        sock = self.context.wrap_socket(raw, server_hostname="localhost")
        sock.settimeout(None)
        return RawClient(sock.makefile("rb"), sock.sendall), sock

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.server.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def restart_model(self) -> None:
        self.model.send_signal(signal.SIGKILL)
        self.model.wait()
        time.sleep(5)
        self.model = start_model_server(self.model_port, self.folder / "model.log")
        wait_port(self.model_port, 120, "llama_cpp.server (restarted)")

    def close(self) -> None:
        for process in (self.server, self.model):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def open_session(team: Team, user: str, index: int, stats: Stats) -> tuple[RawClient, Any, str]:
    client, sock = team.connect()
    started = time.perf_counter()
    answer = client.initialize(team.folder, options={"authToken": team.tokens[user]})
    if "result" not in answer:
        raise RuntimeError(f"{user}: initialize failed: {answer}")
    stats.record("initialize", time.perf_counter() - started)
    path = team.folder / f"work{index:02d}.py"
    path.write_text(TEXT)
    client.notify(
        "textDocument/didOpen",
        {
            "textDocument": {
                "uri": path.as_uri(),
                "languageId": "python",
                "version": 1,
                "text": TEXT,
            }
        },
    )
    return client, sock, path.as_uri()


# A short chat turn without workspace context: it loads the shared model server as a
# team's chat does, without making each turn minutes long on a CPU.
CHAT_TURN: dict[str, Any] = {
    "message": "In one sentence: what does a function that returns its argument do?",
    "context": {"openFiles": False, "index": False, "definitions": False, "history": False},
    "maxTokens": 16,
}


def typist(
    team: Team,
    index: int,
    deadline: float,
    cps: float,
    stats: Stats,
    probe: list[tuple[float, float]] | None = None,
    chat_every: int = 0,
) -> None:
    """Type `    return result` at the end of the file, again and again, asking ghost text
    (and a short chat turn every `chat_every` keystrokes; 0: none)."""
    rng = random.Random(index)
    try:
        client, sock, uri = open_session(team, f"user{index:02d}", index, stats)
    except Exception as exc:
        stats.error(f"client {index}: {exc}")
        return
    text, version, line = TEXT, 1, TEXT.count("\n")
    typed = ""
    previous: int | None = None
    keystrokes = 0
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.5, 1.5) / cps)
        target = "    return result"
        if typed == target:
            typed = ""
        typed += target[len(typed)]
        version += 1
        client.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"text": text + typed}],
            },
        )
        if previous is not None:
            client.notify("$/cancelRequest", {"id": previous})
        started = time.perf_counter()
        msg_id = client.request_async(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": uri},
                "position": {"line": line, "character": len(typed)},
                "context": {"triggerKind": 2},
            },
        )
        previous = msg_id
        # An editor shows the answer when it comes; the typist waits for it at a pause.
        try:
            answer = client.wait_response(msg_id, timeout=60)
        except TimeoutError:
            stats.error(f"client {index}: no answer to inlineCompletion in 60 s")
            continue
        previous = None
        elapsed = time.perf_counter() - started
        error = answer.get("error")
        if error and error.get("code") == CANCELLED:
            stats.cancelled += 1
        elif error:
            stats.error(f"client {index}: {error}")
        else:
            stats.record("textDocument/inlineCompletion", elapsed)
            if probe is not None:
                probe.append((time.monotonic(), elapsed))
        keystrokes += 1
        if keystrokes % 15 == 0:
            started = time.perf_counter()
            answer = client.request("workspace/symbol", {"query": "total"}, timeout=60)
            if "error" in answer:
                stats.error(f"client {index}: workspace/symbol {answer['error']}")
            else:
                stats.record("workspace/symbol", time.perf_counter() - started)
        if chat_every and keystrokes % chat_every == 0:
            started = time.perf_counter()
            try:
                answer = client.request("ouzel/chat", CHAT_TURN, timeout=180)
            except TimeoutError:
                stats.error(f"client {index}: no answer to ouzel/chat in 180 s")
                continue
            failed = answer.get("error") or (answer.get("result") or {}).get("error")
            if failed and "it is down" in str(failed):
                stats.chat_refused_down += 1
            elif failed:
                stats.error(f"client {index}: ouzel/chat {failed}")
            else:
                stats.record("ouzel/chat", time.perf_counter() - started)
    sock.close()


def flooder(team: Team, start: float, stop: float, counts: dict[str, int]) -> None:
    """One client sending ghost-text requests as fast as it can in [start, stop)."""
    time.sleep(max(0.0, start - time.monotonic()))
    client, sock, uri = open_session(team, "flood", 97, Stats())
    sent = 0
    while time.monotonic() < stop:
        client.request_async(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": uri},
                "position": {"line": 4, "character": 0},
                "context": {"triggerKind": 2},
            },
        )
        sent += 1
        if sent % 50 == 0:
            time.sleep(0.05)  # let the reader thread keep up
    counts["sent"] = sent
    time.sleep(2)
    refused = [m for m in list(client.inbox.queue) if m.get("error", {}).get("code") == -32803]
    counts["refused"] = len(refused)
    sock.close()


def faults(team: Team, at: float, results: dict[str, str]) -> None:
    time.sleep(max(0.0, at - time.monotonic()))
    # 1. A client that disconnects in the middle of a request.
    client, sock, uri = open_session(team, "fault", 98, Stats())
    client.request_async(
        "textDocument/inlineCompletion",
        {
            "textDocument": {"uri": uri},
            "position": {"line": 4, "character": 0},
            "context": {"triggerKind": 2},
        },
    )
    sock.close()
    results["disconnect mid-request"] = "closed by the client"
    # 2. An oversized message: refused from its Content-Length, the connection closed.
    client, sock = team.connect()
    client.send_bytes(b"Content-Length: %d\r\n\r\n" % (64 * 1024 * 1024))
    closed = client.closed.wait(20)
    results["oversized message (64 MB)"] = "connection closed" if closed else "NOT CLOSED"
    sock.close()
    # 3. A bad token.
    client, sock = team.connect()
    answer = client.initialize(team.folder, options={"authToken": "not-a-token"})
    code = answer.get("error", {}).get("code")
    results["bad token"] = f"error {code}" + (" (as expected)" if code == -32001 else " UNEXPECTED")
    sock.close()
    # 4. TLS handshake garbage.
    raw = socket.create_connection(("127.0.0.1", team.lsp_port), timeout=20)
    raw.sendall(b"\x16\x03\x01\x00\x05garbage-garbage" + os.urandom(64))
    try:
        while raw.recv(4096):
            pass
        results["TLS handshake garbage"] = "connection closed"
    except OSError as exc:
        results["TLS handshake garbage"] = f"connection closed ({type(exc).__name__})"
    raw.close()
    # 5. The model server killed and restarted.
    started = time.monotonic()
    team.restart_model()
    results["model server killed + restarted"] = f"back after {time.monotonic() - started:.1f} s"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def scrape_metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--cps", type=float, default=1.0, help="keystrokes per second per client")
    parser.add_argument(
        "--chat-every",
        type=int,
        default=60,
        help="keystrokes between a client's short chat turns (0: no chat; never the probe)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ouzel-team-load-") as folder_name:
        folder = Path(folder_name)
        team = Team(folder, args.clients)
        try:
            return run(team, args)
        finally:
            team.close()


def run(team: Team, args: argparse.Namespace) -> int:
    stats = Stats()
    warm, warm_socket, uri = open_session(team, "warm", 99, Stats())  # the first call loads
    warm.request(
        "textDocument/inlineCompletion",
        {
            "textDocument": {"uri": uri},
            "position": {"line": 4, "character": 0},
            "context": {"triggerKind": 1},
        },
        timeout=120,
    )
    warm_socket.close()
    rss_start = team.rss_kb()
    began = time.monotonic()
    deadline = began + args.seconds
    flood_window = (began + args.seconds / 3, began + 2 * args.seconds / 3)
    probe: list[tuple[float, float]] = []
    threads = [
        threading.Thread(
            target=typist,
            args=(team, i, deadline, args.cps, stats, None, args.chat_every),
            daemon=True,
        )
        for i in range(1, args.clients)
    ]
    threads.append(
        threading.Thread(
            target=typist, args=(team, 0, deadline, args.cps, stats, probe), daemon=True
        )
    )
    flood: dict[str, int] = {}
    fault_results: dict[str, str] = {}
    threads.append(threading.Thread(target=flooder, args=(team, *flood_window, flood), daemon=True))
    threads.append(
        threading.Thread(
            target=faults, args=(team, began + 0.8 * args.seconds, fault_results), daemon=True
        )
    )
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=args.seconds + 240)
    wall = time.monotonic() - began
    rss_end = team.rss_kb()
    metrics = scrape_metrics(team.metrics_port)
    report(
        args, stats, probe, flood_window, flood, fault_results, rss_start, rss_end, wall, metrics
    )
    return 0 if not stats.errors else 1


def report(
    args: argparse.Namespace,
    stats: Stats,
    probe: list[tuple[float, float]],
    window: tuple[float, float],
    flood: dict[str, int],
    fault_results: dict[str, str],
    rss_start: int,
    rss_end: int,
    wall: float,
    metrics: str,
) -> None:
    print(
        f"\n{args.clients} clients over TLS + per-user tokens, {wall:.0f} s, {args.cps:g} keystrokes/s each"
    )
    print(f"{'method':34} {'n':>6} {'p50 ms':>8} {'p95 ms':>8}")
    for method, values in sorted(stats.latencies.items()):
        print(
            f"{method:34} {len(values):>6} {percentile(values, 0.5) * 1000:>8.0f}"
            f" {percentile(values, 0.95) * 1000:>8.0f}"
        )
    print(f"cancelled (superseded by the next keystroke): {stats.cancelled}")
    print(f"chat turns refused while the model server was down: {stats.chat_refused_down}")
    print(f"errors of the regular clients: {len(stats.errors)}")
    for line in stats.errors[:10]:
        print(f"  {line}")
    # Before the flood only: after it come the faults (the model server's restart).
    quiet = [s for at, s in probe if at < window[0]]
    flooded = [s for at, s in probe if window[0] <= at < window[1]]
    if quiet and flooded:
        ratio = statistics.median(flooded) / statistics.median(quiet)
        print(
            f"probe ghost text p50/p95 before the flood {percentile(quiet, 0.5) * 1000:.0f}/"
            f"{percentile(quiet, 0.95) * 1000:.0f} ms, during flood {percentile(flooded, 0.5) * 1000:.0f}/"
            f"{percentile(flooded, 0.95) * 1000:.0f} ms (p50 x{ratio:.2f}); flood sent "
            f"{flood.get('sent', 0)}, refused -32803: {flood.get('refused', 0)}"
        )
    print("faults:")
    for name, outcome in fault_results.items():
        print(f"  {name:34} {outcome}")
    print(
        f"server RSS {rss_start / 1024:.0f} MB -> {rss_end / 1024:.0f} MB ({(rss_end - rss_start) / 1024:+.0f} MB)"
    )
    closes = [
        line
        for line in metrics.splitlines()
        if line.startswith("ouzel_connections_closed_by_limit_total")
    ]
    auth = [line for line in metrics.splitlines() if line.startswith("ouzel_auth_failures_total")]
    print("metrics: " + "; ".join(closes + auth))
    print(json.dumps({"errors": len(stats.errors)}))


if __name__ == "__main__":
    sys.exit(main())
