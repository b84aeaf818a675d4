"""Ghost-text latency: a typing session through `ouzel serve`, next to raw llama-cpp-python.

A scripted typist works on a real file over a real stdio LSP connection with the embedded
model: at a few places it clears a line and types it again at human speed (jittered
keystrokes, pauses between words), asking for ghost text after every keystroke like an
editor does (`$/cancelRequest` for the previous request, as VS Code sends); at some places
it takes a suggestion by typing its first characters and accepting the rest.

Every model call ouzel finished is replayed at once, in this process, straight through
llama-cpp-python (`Llama.generate`, its own KV prefix reuse) with the same prompt (checked
by hash against ouzel's telemetry) and the same number of generated tokens, while the
server is idle: the two latencies are measured side by side, under the same machine load.

Prints p50/p95 per kind of request (cold, KV-reused, type-through), the share of prompt
tokens evaluated again, stale results shown (must be 0), and ouzel/raw.

    python benchmarks/completion_latency.py [--file F] [--places 6] [--seed 7] [--cps 8]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Queue
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from rpc import StdioServer  # noqa: E402  (tests/rpc.py: a raw JSON-RPC client)

from ouzel.inference import catalog  # noqa: E402
from ouzel.inference.llama_cpp import (  # noqa: E402
    LlamaOptions,
    fim_token_texts,
    find_model_file,
    open_llama,
)
from ouzel.inference.templates import detect_template  # noqa: E402
from ouzel.server.convert import line_starts  # noqa: E402
from ouzel.server.features.completion_prompt import build_prompt  # noqa: E402
from ouzel.server.features.telemetry import percentile  # noqa: E402
from ouzel.server.settings import load_settings  # noqa: E402

SETTINGS = {"completion": {"debounceMs": 0}}  # latency without deliberate waiting


class StampedQueue(Queue):  # type: ignore[type-arg]
    """Stamps each message with its arrival time on the reader thread."""

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        item["_at"] = time.perf_counter()
        super().put(item, block, timeout)


@dataclass
class Request:
    id: int
    version: int
    offset: int
    sent: float
    text: str  # the document when it was sent
    answered: float | None = None
    items: list[dict[str, Any]] | None = None
    error: int | None = None
    client_cancelled: bool = False
    kind: str = "none"  # cold / reused / cache / none (no model call)
    raw_s: float | None = None
    stale: bool = False
    crossed: bool = False

    @property
    def latency_ms(self) -> float | None:
        return (self.answered - self.sent) * 1000 if self.answered is not None else None


@dataclass
class Typist:
    """Drives one document over the connection and keeps the client's view of it."""

    server: StdioServer
    uri: str
    text: str
    telemetry: Path
    raw: RawModel
    rng: random.Random
    version: int = 1
    requests: list[Request] = field(default_factory=list)
    pending: Request | None = None
    shown: Request | None = None
    shift: float = 0.0  # time spent in raw replays, added to the typist's schedule
    telemetry_offset: int = 0
    models: dict[int, dict[str, Any]] = field(default_factory=dict)
    served: dict[int, dict[str, Any]] = field(default_factory=dict)
    accepted: int = 0
    hash_mismatches: int = 0
    cps: float = 8.0

    # --- editing ---------------------------------------------------------------------

    def position(self, offset: int) -> tuple[int, int]:
        """The LSP position (UTF-16) of a code point offset."""
        before = self.text[:offset]
        line_start = before.rfind("\n") + 1
        return before.count("\n"), len(before[line_start:].encode("utf-16-le")) // 2

    def edit(self, start: int, end: int, new: str) -> None:
        (sl, sc), (el, ec) = self.position(start), self.position(end)
        self.text = self.text[:start] + new + self.text[end:]
        self.version += 1
        self.server.client.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": self.uri, "version": self.version},
                "contentChanges": [
                    {
                        "range": {
                            "start": {"line": sl, "character": sc},
                            "end": {"line": el, "character": ec},
                        },
                        "text": new,
                    }
                ],
            },
        )

    def ask(self, offset: int) -> Request:
        """Cancel the outstanding request (as VS Code does) and ask at `offset`."""
        if self.pending is not None and self.pending.answered is None:
            self.pending.client_cancelled = True
            self.server.client.notify("$/cancelRequest", {"id": self.pending.id})
        line, character = self.position(offset)
        request_id = self.server.client.request_async(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": self.uri},
                "position": {"line": line, "character": character},
                "context": {"triggerKind": 2},
            },
        )
        request = Request(request_id, self.version, offset, time.perf_counter(), self.text)
        self.requests.append(request)
        self.pending = request
        self.shown = None
        return request

    # --- time passing ------------------------------------------------------------------

    def wait(self, seconds: float, until: Callable[[], bool] = lambda: False) -> None:
        """Handle responses for `seconds` of typist time (raw replays do not count)."""
        deadline = time.perf_counter() + seconds
        while not until():
            remaining = deadline + self.shift - time.perf_counter()
            if remaining <= 0:
                break
            try:
                message = self.server.client.inbox.get(timeout=remaining)
            except Empty:
                break
            self.receive(message)
        self.shift = 0.0

    def receive(self, message: dict[str, Any]) -> None:
        request = next((r for r in self.requests if r.id == message.get("id")), None)
        if request is None:
            return
        request.answered = message["_at"]
        if "error" in message:
            request.error = message["error"]["code"]
            return
        request.items = message["result"]["items"]
        self.read_telemetry()
        if request.version in self.served and self.served[request.version]["kind"] == "cache":
            request.kind = "cache"
        elif request.version in self.models:
            request.kind = self.models[request.version]["kind"]
        if request.items and request.version != self.version:
            # Answered for an older version. Stale for sure if a newer request was already
            # answered (the server had seen the newer version); else it crossed a keystroke
            # in flight, and the client drops it because it cancelled the request.
            newer_answered = any(
                r.answered is not None
                and r.version > request.version
                and r.answered < request.answered
                for r in self.requests
            )
            request.stale = newer_answered
            request.crossed = not newer_answered
        elif request.items:
            self.shown = request
            self.server.client.notify("textDocument/didShowCompletion", {"item": request.items[0]})
        model = self.models.get(request.version)
        if request.kind in ("cold", "reused") and model and model["stopReason"] != "cancelled":
            started = time.perf_counter()
            request.raw_s = self.raw.replay(request, model, self)
            self.shift += time.perf_counter() - started

    def read_telemetry(self) -> None:
        if not self.telemetry.exists():
            return
        with self.telemetry.open(encoding="utf-8") as handle:
            handle.seek(self.telemetry_offset)
            for line in handle:
                event = json.loads(line)
                if event["event"] == "model":
                    self.models[event["version"]] = event
                elif event["event"] == "served":
                    self.served.setdefault(event["version"], event)
            self.telemetry_offset = handle.tell()

    # --- the session -------------------------------------------------------------------

    def keystroke_delay(self, typed: str) -> float:
        delay = self.rng.uniform(0.6, 1.4) / self.cps
        if typed in " (,.:=" and self.rng.random() < 0.15:
            delay += self.rng.uniform(0.4, 0.9)  # a pause between words
        return delay

    def retype(self, line_text: str, start: int, take_suggestion: bool) -> None:
        """Clear the line after its indentation and type it again."""
        indent = len(line_text) - len(line_text.lstrip())
        content = line_text[indent:]
        cursor = start + indent
        self.edit(cursor, cursor + len(content), "")
        request = self.ask(cursor)
        self.wait(60, until=lambda: request.answered is not None)  # reading the code
        self.wait(0.8)
        take_at = len(content) * 2 // 5 if take_suggestion else -1
        for index, ch in enumerate(content):
            if index == take_at and self.take_suggestion(cursor):
                return
            self.edit(cursor, cursor, ch)
            cursor += 1
            self.ask(cursor)
            self.wait(self.keystroke_delay(ch))
        self.wait(1.5)  # end of line: a suggestion for what comes next may show

    def take_suggestion(self, cursor: int) -> bool:
        """Wait for a suggestion, type three characters of it, accept the rest."""
        self.wait(8, until=lambda: self.shown is not None)
        if self.shown is None or not self.shown.items:
            return False
        item = self.shown.items[0]
        suggestion, suggestion_id = item["insertText"], item["command"]["arguments"][0]
        for ch in suggestion[:3]:
            self.edit(cursor, cursor, ch)
            cursor += 1
            request = self.ask(cursor)
            self.wait(self.keystroke_delay(ch), until=lambda r=request: r.answered is not None)
            self.wait(self.keystroke_delay(ch))
        rest = suggestion[3:]
        if rest:
            self.edit(cursor, cursor, rest)
            self.server.client.request_async(
                "workspace/executeCommand",
                {"command": "ouzel.accepted", "arguments": [suggestion_id]},
            )
            self.accepted += 1
        self.wait(1.0)
        return True


class RawModel:
    """llama-cpp-python without ouzel: the same model file, options and prompts."""

    def __init__(self, settings: Any, path_in_prompt: str) -> None:
        # The file `ouzel serve` loads for the default `local` profile.
        self.llm = open_llama(find_model_file(catalog.default_model()), LlamaOptions())
        self.template = detect_template(self.llm.metadata, fim_token_texts(self.llm))
        self.settings = settings
        self.path_in_prompt = path_in_prompt
        self.counts: dict[str, int] = {}
        self.prompt_tokens = 0
        self.reused_tokens = 0

    def count(self, text: str) -> int:
        if text not in self.counts:
            self.counts[text] = len(
                self.llm.tokenize(text.encode("utf-8", "replace"), add_bos=False)
            )
        return self.counts[text]

    def replay(self, request: Request, model: dict[str, Any], typist: Typist) -> float:
        import hashlib

        import llama_cpp
        import numpy as np

        plan = build_prompt(
            request.text,
            line_starts(request.text),
            request.offset,
            path=self.path_in_prompt,
            language_id="python",
            template=self.template,
            count_tokens=self.count,
            settings=self.settings,
        )
        assert plan is not None
        prompt = plan.request.prompt
        if hashlib.sha256(prompt.encode("utf-8", "replace")).hexdigest()[:16] != model["promptSha"]:
            typist.hash_mismatches += 1
        target = int(model["generatedTokens"])
        vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        started = time.perf_counter()
        tokens = self.llm.tokenize(prompt.encode("utf-8", "replace"), add_bos=True, special=False)
        limit = min(self.llm.n_tokens, len(tokens))
        differs = np.flatnonzero(self.llm.input_ids[:limit] != np.asarray(tokens[:limit]))
        reused = int(differs[0]) if len(differs) else limit
        stream = self.llm.generate(tokens, temp=0.0, top_k=1, repeat_penalty=1.0)
        for generated, token in enumerate(stream):
            if generated >= target or llama_cpp.llama_vocab_is_eog(vocab, token):
                break
        elapsed = time.perf_counter() - started
        self.prompt_tokens += len(tokens)
        self.reused_tokens += reused
        return elapsed


def pick_places(text: str, count: int, rng: random.Random) -> list[int]:
    """Line numbers worth typing: code lines inside blocks, 20 to 70 characters."""
    lines = text.split("\n")
    candidates = []
    in_docstring = False
    for number, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(('"""', "'''")):
            in_docstring = (
                not (stripped.count('"""') == 2 or stripped.count("'''") == 2) and not in_docstring
            )
            continue
        if in_docstring or not line.startswith("    ") or stripped.startswith("#"):
            continue
        if 20 <= len(stripped) <= 70 and not stripped.startswith(("def ", "class ", "@")):
            candidates.append(number)
    step = max(1, len(candidates) // count)
    chosen = [
        candidates[min(len(candidates) - 1, i * step + rng.randrange(step))] for i in range(count)
    ]
    return sorted(set(chosen))


def summarize(typist: Typist, raw: RawModel, elapsed: float) -> dict[str, Any]:
    done = [r for r in typist.requests if r.answered is not None and r.error is None]
    by_kind: dict[str, list[Request]] = {}
    for request in done:
        by_kind.setdefault(request.kind, []).append(request)
    rows = {}
    for kind in ("cold", "reused", "cache"):
        requests = by_kind.get(kind, [])
        ouzel = [r.latency_ms for r in requests if r.latency_ms is not None]
        raws = [r.raw_s * 1000 for r in requests if r.raw_s is not None]
        ratios = [r.latency_ms / (r.raw_s * 1000) for r in requests if r.raw_s and r.latency_ms]
        rows[kind] = {
            "n": len(requests),
            "ouzel_p50": percentile(ouzel, 0.5),
            "ouzel_p95": percentile(ouzel, 0.95),
            "raw_p50": percentile(raws, 0.5),
            "raw_p95": percentile(raws, 0.95),
            "ratio_median": statistics.median(ratios) if ratios else None,
        }
    uncached = [r for r in done if r.raw_s and r.latency_ms]
    ratios = [r.latency_ms / (r.raw_s * 1000) for r in uncached if r.latency_ms]
    models = list(typist.models.values())
    prompt = sum(m["promptTokens"] for m in models)
    reused = sum(m["reusedTokens"] for m in models)
    in_line = [m for m in models if m.get("sameLine")]
    in_line_prompt = sum(m["promptTokens"] for m in in_line)
    in_line_reused = sum(m["reusedTokens"] for m in in_line)
    return {
        "seconds": round(elapsed, 1),
        "requests": len(typist.requests),
        "answered": len(done),
        "cancelled_by_client": sum(r.client_cancelled for r in typist.requests),
        "shown": sum(1 for r in typist.requests if r.items and not r.stale and not r.crossed),
        "accepted": typist.accepted,
        "rows": rows,
        "uncached_ratio_median": statistics.median(ratios) if ratios else None,
        "uncached_ratio_of_medians": (
            statistics.median([r.latency_ms for r in uncached if r.latency_ms])
            / statistics.median([r.raw_s * 1000 for r in uncached if r.raw_s])
            if uncached
            else None
        ),
        "model_calls": len(models),
        "evaluated_again_share": (prompt - reused) / prompt if prompt else None,
        "in_line_calls": len(in_line),
        "in_line_reused_share": in_line_reused / in_line_prompt if in_line_prompt else None,
        "raw_reused_share": raw.reused_tokens / raw.prompt_tokens if raw.prompt_tokens else None,
        "cache_server_p95": percentile(
            [e["latencyMs"] for e in typist.served.values() if e["kind"] == "cache"], 0.95
        ),
        "stale_shown": sum(r.stale for r in typist.requests),
        "crossed_in_flight": sum(r.crossed for r in typist.requests),
        "prompt_hash_mismatches": typist.hash_mismatches,
    }


def print_report(report: dict[str, Any], args: argparse.Namespace) -> None:
    def ms(value: float | None) -> str:
        return "–" if value is None else f"{value:,.1f}"

    def share(value: float | None) -> str:
        return "–" if value is None else f"{value:.1%}"

    def ratio(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    labels = {"cold": "cold", "reused": "KV-reused", "cache": "type-through"}
    print(
        f"\nouzel completion latency: {args.file.name}, {args.places} places, seed {args.seed}, "
        f"{args.cps} chars/s, {report['seconds']} s"
    )
    print(
        f"{'kind':<14}{'n':>5}{'ouzel p50':>12}{'ouzel p95':>12}{'raw p50':>10}{'raw p95':>10}{'ouzel/raw':>11}"
    )
    for kind, row in report["rows"].items():
        print(
            f"{labels[kind]:<14}{row['n']:>5}{ms(row['ouzel_p50']):>12}{ms(row['ouzel_p95']):>12}"
            f"{ms(row['raw_p50']):>10}{ms(row['raw_p95']):>10}{ratio(row['ratio_median']):>11}"
        )
    print(
        "(ms at the client; ouzel/raw is the median of per-request ratios; type-through "
        f"p95 inside the server: {ms(report['cache_server_p95'])} ms)"
    )
    print(
        f"uncached requests, ouzel/raw: median ratio {ratio(report['uncached_ratio_median'])}, "
        f"ratio of medians {ratio(report['uncached_ratio_of_medians'])}"
    )
    print(
        f"prompt tokens evaluated again: {share(report['evaluated_again_share'])} "
        f"over {report['model_calls']} model calls "
        f"(raw llama-cpp-python on the finished prompts: "
        f"{share(1 - report['raw_reused_share'] if report['raw_reused_share'] is not None else None)})"
    )
    print(
        f"prompt tokens reused on consecutive keystrokes within a line: "
        f"{share(report['in_line_reused_share'])} over {report['in_line_calls']} calls"
    )
    print(
        f"stale results shown: {report['stale_shown']} "
        f"(answers that crossed a keystroke in flight, dropped by the client: "
        f"{report['crossed_in_flight']})"
    )
    print(
        f"requests {report['requests']}, answered {report['answered']}, cancelled by the client "
        f"{report['cancelled_by_client']}, suggestions shown {report['shown']}, "
        f"accepted {report['accepted']}, prompt hash mismatches {report['prompt_hash_mismatches']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--file", type=Path, default=Path(textwrap.__file__), help="a real source file"
    )
    parser.add_argument("--places", type=int, default=6, help="lines to clear and type again")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cps", type=float, default=8.0, help="typing speed, characters/second")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    source = args.file.read_text(encoding="utf-8")
    settings = load_settings(SETTINGS).settings.completion
    with tempfile.TemporaryDirectory(prefix="ouzel-bench-") as folder:
        tmp = Path(folder)
        workspace = tmp / "workspace"
        workspace.mkdir()
        (workspace / args.file.name).write_text(source, encoding="utf-8")
        raw = RawModel(settings, args.file.name)
        server = StdioServer(tmp)
        server.client.inbox = StampedQueue()
        try:
            server.client.initialize(root=workspace, options=SETTINGS)
            warm = (workspace / "warm.py").as_uri()
            server.client.notify(
                "textDocument/didOpen",
                {
                    "textDocument": {
                        "uri": warm,
                        "languageId": "python",
                        "version": 1,
                        "text": "x = 1\n",
                    }
                },
            )
            server.client.request(  # loads the model (not part of the figures)
                "textDocument/inlineCompletion",
                {
                    "textDocument": {"uri": warm},
                    "position": {"line": 1, "character": 0},
                    "context": {"triggerKind": 1},
                },
                timeout=300,
            )
            uri = (workspace / args.file.name).as_uri()
            server.client.notify(
                "textDocument/didOpen",
                {
                    "textDocument": {
                        "uri": uri,
                        "languageId": "python",
                        "version": 1,
                        "text": source,
                    }
                },
            )
            typist = Typist(
                server, uri, source, tmp / "state" / "ouzel" / "completions.jsonl", raw, rng
            )
            typist.cps = args.cps
            started = time.perf_counter()
            for number, place in enumerate(pick_places(source, args.places, rng)):
                starts = line_starts(typist.text)
                line_text = typist.text[starts[place] : starts[place + 1]].rstrip("\n")
                typist.retype(line_text, starts[place], take_suggestion=number % 3 == 1)
            typist.wait(3)
            report = summarize(typist, raw, time.perf_counter() - started)
        finally:
            server.close()
    print_report(report, args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
